"""webhook: an exporter (contract 0.3) that POSTs the events that passed
the chain to an HTTP endpoint as JSON, in batches, gzip-compressed, and
retries with exponential backoff while the endpoint is down.

    [plugins.webhook]
    url = "http://collector.example:8080/events"   # http:// or https://
    http_allow = ["collector.example:8080"]         # the daemon's grant
    timeout_ms = 2000       # the daemon's limit per call: JSON takes time
    kinds = ["handshake", "flow", "scan", "route"]  # the default
    batch_size = 500        # events per POST (1 to 10000)
    max_buffer = 20000      # events held while the endpoint is down
    gzip = true             # Content-Encoding: gzip
    retry_max_s = 60        # the longest wait between two tries
    [plugins.webhook.headers]
    Authorization = "Bearer …"

Each POST carries a JSON array of events, each an object with `kind`, the
fields of docs/events.md (read through the contract's getters, in its
order; addresses as text, enums as their names, `vlan` as a list of ids)
and `tags`. A 2xx answer delivers the batch; a 4xx other than 408 and 429
refuses it for good (counted in `rejected`, logged); anything else (5xx,
408, 429, no connection, a timeout) keeps it at the head of the buffer
and tries again after 1 s, then 2, 4, … up to `retry_max_s`. When the
buffer is full the oldest events go (counted in `dropped`). Counters:
`posts`, `sent`, `failed_posts`, `rejected`, `dropped`; gauge `buffered`.
The daemon calls it off the sensor's path ([exporters]), about once a
second and before a stop or reload (the last chance to send: what is
still buffered then is lost, and counted in `dropped`).
"""

import dataclasses
import enum
import ipaddress
import json
import time

from componentize_py_types import Err, Ok
from wit_world import exports
from wit_world.imports import event, flow, handshake, host, outgoing_handler, route, scan
from wit_world.imports import wasi_http_types as http
from wit_world.imports.net_gazer_plugin_types import (
    EventKind,
    Info,
    Interest,
    IpAddress_Ipv4,
    Level,
    Role,
    Verdict,
)

try:
    import gzip
except ImportError:  # a CPython built without zlib
    gzip = None

KINDS = {
    "handshake": (EventKind.HANDSHAKE, handshake),
    "flow": (EventKind.FLOW, flow),
    "scan": (EventKind.SCAN, scan),
    "route": (EventKind.ROUTE, route),
}


def getters(module):
    """The getter functions of a kind's interface, in the contract's order
    (the generated module defines them in that order)."""
    return [
        (name, f)
        for name, f in vars(module).items()
        if callable(f) and not name.startswith("_") and getattr(f, "__module__", None) == module.__name__
    ]


GETTERS = {kind: getters(module) for kind, (_, module) in KINDS.items()}
BY_KIND = {k: name for name, (k, _) in KINDS.items()}


def plain(value):
    """A value of the contract as JSON would have it."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, IpAddress_Ipv4):
        return str(ipaddress.IPv4Address(value.value))
    if isinstance(value, enum.Enum):
        return value.name.lower()
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if dataclasses.is_dataclass(value):
        if type(value).__name__ == "IpAddress_Ipv6":
            high, low = value.value
            return str(ipaddress.IPv6Address((high << 64) | low))
        return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    return str(value)


class Settings:
    def __init__(self, table):
        known = {
            "url", "kinds", "batch_size", "max_buffer", "gzip", "retry_max_s", "headers",
            "dirs", "http_allow",
        }
        unknown = sorted(set(table) - known)
        if unknown:
            raise ValueError(f"unknown key `{unknown[0]}` (known: {', '.join(sorted(known - {'dirs', 'http_allow'}))})")
        url = table.get("url")
        if not isinstance(url, str):
            raise ValueError("key `url`: required, the endpoint (http://host:port/path)")
        if url.startswith("http://"):
            self.scheme, rest = http.Scheme_Http(), url[len("http://"):]
        elif url.startswith("https://"):
            self.scheme, rest = http.Scheme_Https(), url[len("https://"):]
        else:
            raise ValueError(f"key `url`: {url!r} is not http:// or https://")
        slash = rest.find("/")
        self.authority, self.path = (rest, "/") if slash < 0 else (rest[:slash], rest[slash:])
        if not self.authority:
            raise ValueError(f"key `url`: {url!r} has no host")
        self.url = url
        allowed = table.get("http_allow") or []
        default_port = "443" if url.startswith("https://") else "80"
        host_port = self.authority if ":" in self.authority.rsplit("]", 1)[-1] else f"{self.authority}:{default_port}"
        if not any(a in (self.authority, host_port) for a in allowed):
            raise ValueError(f"key `url`: {self.authority} is not in http_allow {allowed}: add \"{host_port}\"")
        kinds = table.get("kinds", list(KINDS))
        if not isinstance(kinds, list) or not kinds or any(k not in KINDS for k in kinds):
            raise ValueError(f"key `kinds`: a non-empty list of {', '.join(KINDS)}")
        self.kinds = kinds
        self.batch_size = number(table, "batch_size", 500, 1, 10000)
        self.max_buffer = number(table, "max_buffer", 20000, self.batch_size, 1000000)
        self.retry_max_s = number(table, "retry_max_s", 60, 1, 3600)
        self.gzip = table.get("gzip", True)
        if not isinstance(self.gzip, bool):
            raise ValueError("key `gzip`: true or false")
        if self.gzip and gzip is None:
            raise ValueError("key `gzip`: this Python has no zlib; set gzip = false")
        headers = table.get("headers", {})
        if not isinstance(headers, dict) or any(not isinstance(v, str) for v in headers.values()):
            raise ValueError("key `headers`: a table of strings")
        for k, v in headers.items():
            if not k or any(c in k + v for c in "\r\n\0") or any(c in k for c in " :"):
                raise ValueError(f"key `headers`: {k!r} is not a header name and value")
        self.headers = [(k.lower(), v.encode()) for k, v in headers.items()]


def number(table, key, default, low, high):
    value = table.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise ValueError(f"key `{key}`: a whole number from {low} to {high}")
    return value


# Module globals: `init` and the event functions do not run on the same
# Plugin object (componentize-py).
SETTINGS = None
BUFFER = []  # events (dicts), oldest first
FAILURES = 0  # consecutive failed tries
NEXT_TRY = 0.0  # time.monotonic() before which no try is made
LAST_WARNING = {}  # what -> time.monotonic() of its last log line


def warn_now_and_then(what, message, level=Level.WARN):
    """One line per `what` per minute at most."""
    now = time.monotonic()
    if now - LAST_WARNING.get(what, -1e9) >= 60:
        LAST_WARNING[what] = now
        host.log(level, message)


def current():
    kind = BY_KIND[event.kind()]
    out = {"kind": kind}
    for name, get in GETTERS[kind]:
        out[name] = plain(get())
    out["tags"] = {t.key: t.value for t in event.tags()}
    return out


def add(e):
    BUFFER.append(e)
    over = len(BUFFER) - SETTINGS.max_buffer
    if over > 0:
        del BUFFER[:over]
        host.counter_add("dropped", over)
        warn_now_and_then(
            "full",
            f"webhook: buffer full ({SETTINGS.max_buffer} events): oldest events dropped; "
            f"{SETTINGS.url} is down or slower than the events",
        )


def post(body):
    """The status of a POST of `body`, or raises Err with why it failed."""
    s = SETTINGS
    headers = [("content-type", b"application/json")] + s.headers
    if s.gzip:
        body = gzip.compress(body, compresslevel=5)
        headers.append(("content-encoding", b"gzip"))
    headers.append(("content-length", str(len(body)).encode()))
    request = http.OutgoingRequest(http.Fields.from_list(headers))
    request.set_method(http.Method_Post())
    request.set_scheme(s.scheme)
    request.set_authority(s.authority)
    request.set_path_with_query(s.path)
    outgoing = request.body()
    future = outgoing_handler.handle(request, None)
    with outgoing.write() as stream:
        for i in range(0, len(body), 4096):
            stream.blocking_write_and_flush(body[i : i + 4096])
    http.OutgoingBody.finish(outgoing, None)
    with future:
        with future.subscribe() as ready:
            ready.block()
        answer = future.get()
    if answer is None or isinstance(answer, Err):
        raise Err("no response")
    if isinstance(answer.value, Err):
        raise Err(answer.value.value)
    with answer.value.value as response:
        return response.status()


def send(everything):
    """Sends batches from the head of the buffer while the endpoint takes
    them: the full ones, and the last partial one too when `everything`."""
    global FAILURES, NEXT_TRY
    while BUFFER and time.monotonic() >= NEXT_TRY:
        n = min(len(BUFFER), SETTINGS.batch_size)
        if n < SETTINGS.batch_size and not everything:
            return
        body = json.dumps(BUFFER[:n], separators=(",", ":")).encode()
        host.counter_add("posts", 1)
        try:
            status = post(body)
            why = None if 200 <= status < 300 else f"HTTP {status}"
        except Err as e:
            status, why = None, f"{e.value}"
        if why is None:
            del BUFFER[:n]
            host.counter_add("sent", n)
            if FAILURES:
                host.log(Level.INFO, f"webhook: {SETTINGS.url} answers again after {FAILURES} failed tries")
            FAILURES = 0
        elif status is not None and 400 <= status < 500 and status not in (408, 429):
            del BUFFER[:n]
            host.counter_add("rejected", n)
            warn_now_and_then("rejected", f"webhook: {SETTINGS.url} refused {n} events ({why}): not sent again")
        else:
            FAILURES += 1
            host.counter_add("failed_posts", 1)
            wait = min(SETTINGS.retry_max_s, 2 ** min(FAILURES - 1, 16))
            NEXT_TRY = time.monotonic() + wait
            warn_now_and_then(
                "failed",
                f"webhook: POST to {SETTINGS.url} failed ({why}); retrying in {wait} s, {len(BUFFER)} events buffered",
            )
            return


class Plugin(exports.Plugin):
    def describe(self) -> Info:
        kinds = SETTINGS.kinds if SETTINGS else list(KINDS)
        return Info(
            name="webhook",
            version="0.1.0",
            role=Role.EXPORTER,
            wants=[KINDS[k][0] for k in kinds],
            interest=Interest(
                server_ports=[],
                directions=[],
                outcomes=[],
                local_networks=[],
                remote_networks=[],
            ),
            batch=True,
        )

    def init(self, config: str) -> None:
        global SETTINGS
        try:
            table = json.loads(config) if config.strip() else {}
            if not isinstance(table, dict):
                raise ValueError("the table is not a table")
            SETTINGS = Settings(table)
        except ValueError as e:
            raise Err(f"webhook: {e}")

    def on_event(self) -> Verdict:
        add(current())
        send(False)
        return Verdict.KEEP

    def on_batch(self, count: int) -> list[Verdict]:
        for i in range(count):
            if not event.select(i):
                break
            add(current())
        send(False)
        return [Verdict.KEEP] * count

    def on_tick(self, now_us: int) -> None:
        send(True)
        host.gauge_set("buffered", float(len(BUFFER)))
