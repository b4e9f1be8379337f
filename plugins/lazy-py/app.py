"""lazy-py: a plugin of contract 0.3 (wit/v0.3, a draft) in Python, for the
daemon's tests and benchmarks. Not shipped.

Modes (`mode` in its table): `tag` (the default: tags every event with the
tag `key`, default `lazy-py`, whose value lists the tag keys it saw),
`three` (reads three fields of a handshake, the server's address, the
direction and the RTT, and keeps it: the benchmarks' plugin), `raise`
(raises an exception on every event), `keep` (reads nothing and keeps
the event: the benchmarks' floor), `three-plain` (three numbers: the
server port, the SYN count and the RTT).
"""

import json

from componentize_py_types import Err
from wit_world import exports
from wit_world.imports import event, handshake
from wit_world.imports.types import EventKind, Info, Interest, Role, Verdict

SETTINGS = ("tag", "lazy-py")


def judge() -> Verdict:
    mode, key = SETTINGS
    if mode == "raise":
        raise ValueError("lazy-py: raise mode")
    if mode == "keep":
        return Verdict.KEEP
    if mode == "three-plain":
        handshake.server_port()
        handshake.syn_count()
        handshake.rtt_last_syn_us()
        return Verdict.KEEP
    if mode == "three":
        handshake.server_ip()
        handshake.direction()
        handshake.rtt_last_syn_us()
        return Verdict.KEEP
    event.set_tag(key, ",".join(t.key for t in event.tags()))
    return Verdict.KEEP


class Plugin(exports.Plugin):
    def describe(self) -> Info:
        return Info(
            name="lazy-py",
            version="0.3.0",
            role=Role.FILTER,
            wants=[EventKind.HANDSHAKE, EventKind.FLOW, EventKind.SCAN, EventKind.ROUTE],
            interest=Interest(
                server_ports=[],
                directions=[],
                outcomes=[],
                local_networks=[],
                remote_networks=[],
            ),
            batch=False,
        )

    def init(self, config: str) -> None:
        global SETTINGS
        try:
            table = json.loads(config) if config.strip() else {}
        except ValueError as e:
            raise Err(f"lazy-py: bad configuration: {e}")
        SETTINGS = (str(table.get("mode", "tag")), str(table.get("key", "lazy-py")))

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
