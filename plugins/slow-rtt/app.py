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

Contract 0.3: it reads the three fields it needs (the RTT, the direction,
one address) through getters, and declares an interest in established
handshakes only (the others have no RTT, and cost nothing).
"""

import ipaddress
import json

from componentize_py_types import Err
from wit_world import exports
from wit_world.imports import event, handshake, host
from wit_world.imports.types import (
    Direction,
    EventKind,
    Info,
    Interest,
    IpAddress_Ipv4,
    Level,
    Outcome,
    Role,
    Verdict,
)

KEEP = Verdict.KEEP


class Plugin(exports.Plugin):
    def describe(self) -> Info:
        return Info(
            name="slow-rtt",
            version="0.3.0",
            role=Role.FILTER,
            wants=[EventKind.HANDSHAKE],
            interest=Interest(
                server_ports=[],
                directions=[],
                outcomes=[Outcome.ESTABLISHED],
                local_networks=[],
                remote_networks=[],
            ),
            batch=False,
        )

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

    def on_event(self) -> Verdict:
        return judge()

    def on_batch(self, count: int) -> list[Verdict]:
        verdicts = []
        for i in range(count):
            event.select(i)
            verdicts.append(judge())
        return verdicts

    def on_tick(self, now_us: int) -> None:
        pass


SETTINGS = (100.0, [])


def judge() -> Verdict:
    """The current event (a handshake: the only kind it wants)."""
    rtt = handshake.rtt_last_syn_us()
    if rtt is None:
        return KEEP
    inbound = handshake.direction() == Direction.INBOUND
    threshold = threshold_ms(handshake.client_ip() if inbound else handshake.server_ip())
    if rtt / 1000.0 > threshold:
        host.counter_add("slow", 1)
        event.set_tag("slow", "true")
        event.set_tag("slow.threshold_ms", format_ms(threshold))
    return KEEP


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
