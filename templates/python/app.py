"""tls-tag: tags established handshakes to a TLS port as `tls` = "true"
and `tls.rtt_ms` = the server-side RTT (the guide's example, in Python).

    [plugins.tls-tag]
    ports = [443, 8443]     # default [443]

Build (docs/plugins.md, "Writing a plugin in Python"), from this directory
beside a checkout of net-gazer:

    componentize-py -d ../net-gazer/wit/v0.3 -w sensor-plugin componentize -p . app -o tls-tag.wasm
"""

import json

from componentize_py_types import Err
from wit_world import exports
from wit_world.imports import event, handshake, host
from wit_world.imports.types import EventKind, Info, Interest, Level, Outcome, Role, Verdict

# Module globals: `init` and the calls do not share one Plugin object.
PORTS = [443]


def judge() -> Verdict:
    """The current event: an established handshake to one of PORTS (the
    daemon does not call the plugin for others)."""
    host.counter_add("tls", 1)
    rtt = handshake.rtt_last_syn_us()
    if rtt is not None:
        event.set_tag("tls.rtt_ms", f"{rtt / 1000:.1f}")
    event.set_tag("tls", "true")
    return Verdict.KEEP


class Plugin(exports.Plugin):
    def describe(self) -> Info:
        # Asked again after init: the interest follows `ports`.
        return Info(
            name="tls-tag",
            version="0.1.0",
            role=Role.FILTER,
            wants=[EventKind.HANDSHAKE],
            interest=Interest(
                server_ports=PORTS,
                directions=[],
                outcomes=[Outcome.ESTABLISHED],
                local_networks=[],
                remote_networks=[],
            ),
            batch=False,
        )

    def init(self, config: str) -> None:
        global PORTS
        table = json.loads(config) if config.strip() else {}
        unknown = set(table) - {"ports", "dirs", "http_allow"}
        if unknown:
            raise Err(f"tls-tag: unknown key `{sorted(unknown)[0]}`")
        ports = table.get("ports", [443])
        if not isinstance(ports, list) or not all(isinstance(p, int) and 0 < p < 65536 for p in ports):
            raise Err("tls-tag: key `ports`: must be a list of port numbers")
        PORTS = ports
        if host.log_enabled(Level.INFO):
            host.log(Level.INFO, f"tls-tag: ports {', '.join(map(str, PORTS))}")

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
