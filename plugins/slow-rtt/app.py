"""slow-rtt: tags handshakes whose RTT is above a threshold for the remote
network, so slow paths stand out in the outputs (tag `slow` = "true",
`slow.threshold_ms` = the threshold that applied).

    [plugins.slow-rtt]
    default_ms = 100          # everywhere not listed below
    [plugins.slow-rtt.networks]
    "10.0.0.0/8" = 5          # the LAN should answer within 5 ms
    "2001:db8::/32" = 50

The RTT compared is the server-side one (SYN-ACK minus the last SYN);
the remote end is the server of outbound connections and the client of
inbound ones. The most specific network wins.
"""

import ipaddress
import json

from componentize_py_types import Err
from wit_world import exports
from wit_world.imports import host
from wit_world.imports.types import (
    Direction,
    Event_Handshake,
    EventKind,
    Info,
    IpAddress_Ipv4,
    Level,
    Tag,
    Verdict_Keep,
    Verdict_Tag,
)

# One verdict object for every kept event: nothing to build per event.
KEEP = Verdict_Keep()


class Plugin(exports.Plugin):
    def describe(self) -> Info:
        return Info(name="slow-rtt", version="0.2.0", wants=[EventKind.HANDSHAKE], batch=False)

    def init(self, config: str) -> None:
        global SETTINGS
        try:
            table = json.loads(config) if config.strip() else {}
            default_ms = float(table.get("default_ms", 100))
            networks = []
            for cidr, ms in (table.get("networks") or {}).items():
                net = ipaddress.ip_network(cidr, strict=False)
                # As numbers, like the addresses in events: (version,
                # prefix length, network, mask, threshold).
                networks.append((net.version, net.prefixlen, int(net.network_address), int(net.netmask), float(ms)))
        except (ValueError, TypeError, AttributeError) as e:
            raise Err(f"slow-rtt: bad configuration: {e}")
        unknown = set(table) - {"default_ms", "networks", "dirs", "http_allow"}
        if unknown:
            raise Err(f"slow-rtt: unknown keys: {', '.join(sorted(unknown))}")
        # Most specific first.
        networks.sort(key=lambda n: n[1], reverse=True)
        SETTINGS = (default_ms, networks)
        if host.log_enabled(Level.INFO):
            host.log(Level.INFO, f"slow-rtt: default {default_ms} ms, {len(networks)} networks")

    def on_handshake(self, event):
        rtt = event.rtt_last_syn_us
        if rtt is None:
            return KEEP
        remote = event.client_ip if event.direction == Direction.INBOUND else event.server_ip
        threshold = threshold_ms(remote)
        if rtt / 1000.0 > threshold:
            host.counter_add("slow", 1)
            return Verdict_Tag([Tag("slow", "true"), Tag("slow.threshold_ms", format_ms(threshold))])
        return KEEP

    def on_flow(self, event):
        return KEEP

    def on_scan(self, event):
        return KEEP

    def on_route(self, event):
        return KEEP

    def on_batch(self, events):
        out = []
        for e in events:
            out.append(self.on_handshake(e.value) if isinstance(e, Event_Handshake) else KEEP)
        return out

    def on_tick(self, now_us: int) -> None:
        pass


SETTINGS = (100.0, [])


def threshold_ms(address) -> float:
    """The threshold for an `ip-address` (IPv4: a 32-bit number; IPv6:
    the high and low 64 bits)."""
    default_ms, networks = SETTINGS
    if isinstance(address, IpAddress_Ipv4):
        version, ip = 4, address.value
    else:
        high, low = address.value
        version, ip = 6, (high << 64) | low
    for net_version, _, net, mask, ms in networks:
        if version == net_version and ip & mask == net:
            return ms
    return default_ms


def format_ms(ms: float) -> str:
    return str(int(ms)) if ms == int(ms) else str(ms)
