//! influx: an exporter of handshakes and flows to InfluxDB 1.x, in its line
//! protocol over HTTP (`POST /write`), through the standard
//! `wasi:http/outgoing-handler`. Contract 0.3, role `exporter`: it runs
//! beside the chain on a thread of its own and never delays the sensor.
//!
//! ```toml
//! [plugins.influx]
//! url = "http://127.0.0.1:8086"   # InfluxDB's HTTP API (http only)
//! db = "net_gazer"                # the database (it must exist)
//! points_per_write = 5000         # points per write, at most
//! max_buffer = 100000             # points kept while InfluxDB is away
//! http_allow = ["127.0.0.1:8086"] # the host's grant, checked by the host
//! ```
//!
//! Points: `netgazer_handshake` (tags `direction`, `outcome`, `server_port`
//! and every tag earlier plugins set; fields the addresses, `client_port`,
//! SYN and SYN-ACK counts and the three RTTs when known) and
//! `netgazer_flow` (tags `direction`, `end_reason`, `server_port` and the
//! plugins' tags; fields packets, bytes, retransmissions, duration), at
//! the event's `ts_us` (precision `u`). Points are written when `points_per_write`
//! are waiting and at every tick (about once a second); a write that fails
//! is tried again at the next tick, keeping at most `max_buffer` points
//! (the oldest go first, counted as `dropped`). Counters: `written`,
//! `failed_writes`, `dropped`.

wit_bindgen::generate!({
    path: "../../wit/v0.3",
    world: "sensor-plugin",
});

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::sync::Mutex;

use exports::net_gazer::plugin::plugin::Guest;
use net_gazer::plugin::types::{
    Direction, EventKind, FlowEnd, Info, Interest, IpAddress, Level, Outcome, Role, Verdict,
};
use net_gazer::plugin::{event, flow, handshake, host};

struct Settings {
    authority: String,
    path: String,
    batch: usize,
    max_buffer: usize,
}

struct State {
    settings: Settings,
    lines: VecDeque<String>,
}

static STATE: Mutex<Option<State>> = Mutex::new(None);

fn ip(a: IpAddress) -> String {
    match a {
        IpAddress::Ipv4(v4) => std::net::Ipv4Addr::from(v4).to_string(),
        IpAddress::Ipv6((hi, lo)) => std::net::Ipv6Addr::from((u128::from(hi) << 64) | u128::from(lo)).to_string(),
    }
}

/// A tag key or value: commas, spaces and equals signs escaped.
fn tag_text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, ',' | ' ' | '=') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// A string field, quoted.
fn string_field(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

fn direction(d: Direction) -> &'static str {
    match d {
        Direction::Outbound => "outbound",
        Direction::Inbound => "inbound",
        Direction::Internal => "internal",
        Direction::Transit => "transit",
    }
}

/// The plugins' tags as line-protocol tags, sorted by key (InfluxDB's
/// advice), without empty keys or values.
fn plugin_tags(line: &mut String) {
    let mut tags = event::tags();
    tags.sort_by(|a, b| a.key.cmp(&b.key));
    for t in tags.iter().filter(|t| !t.key.is_empty() && !t.value.is_empty()) {
        let _ = write!(line, ",{}={}", tag_text(&t.key), tag_text(&t.value));
    }
}

/// The point of the current event, if it is one this exporter writes.
fn point() -> Option<String> {
    match event::kind() {
        EventKind::Handshake => {
            let outcome = match handshake::outcome() {
                Outcome::Established => "established",
                Outcome::Refused => "refused",
                Outcome::Unanswered => "unanswered",
                Outcome::Incomplete => "incomplete",
            };
            let mut line = format!(
                "netgazer_handshake,direction={},outcome={outcome},server_port={}",
                direction(handshake::direction()),
                handshake::server_port()
            );
            plugin_tags(&mut line);
            let _ = write!(
                line,
                " client_ip={},server_ip={},client_port={}i,syn_count={}i,synack_count={}i",
                string_field(&ip(handshake::client_ip())),
                string_field(&ip(handshake::server_ip())),
                handshake::client_port(),
                handshake::syn_count(),
                handshake::synack_count()
            );
            for (name, v) in [
                ("rtt_last_syn_us", handshake::rtt_last_syn_us()),
                ("rtt_first_syn_us", handshake::rtt_first_syn_us()),
                ("client_rtt_us", handshake::client_rtt_us()),
            ] {
                if let Some(v) = v.filter(|v| v.is_finite()) {
                    let _ = write!(line, ",{name}={v}");
                }
            }
            let _ = write!(line, " {}", handshake::ts_us());
            Some(line)
        }
        EventKind::Flow => {
            let end = match flow::end_reason() {
                FlowEnd::Fin => "fin",
                FlowEnd::Rst => "rst",
                FlowEnd::Idle => "idle",
                FlowEnd::Reused => "reused",
                FlowEnd::Evicted => "evicted",
                FlowEnd::Shutdown => "shutdown",
            };
            let mut line = format!(
                "netgazer_flow,direction={},end_reason={end},server_port={}",
                direction(flow::direction()),
                flow::server_port()
            );
            plugin_tags(&mut line);
            let _ = write!(
                line,
                " client_ip={},server_ip={},packets_c2s={}i,packets_s2c={}i,bytes_c2s={}i,bytes_s2c={}i,retrans_c2s={}i,retrans_s2c={}i,duration_us={} {}",
                string_field(&ip(flow::client_ip())),
                string_field(&ip(flow::server_ip())),
                flow::packets_c2s(),
                flow::packets_s2c(),
                flow::bytes_c2s(),
                flow::bytes_s2c(),
                flow::retrans_c2s(),
                flow::retrans_s2c(),
                flow::duration_us(),
                flow::ts_us()
            );
            Some(line)
        }
        _ => None,
    }
}

/// Adds the current event's point; writes when a batch is waiting.
fn take() {
    let Some(line) = point() else { return };
    let Ok(mut guard) = STATE.lock() else { return };
    let Some(state) = guard.as_mut() else { return };
    if state.lines.len() >= state.settings.max_buffer {
        state.lines.pop_front();
        host::counter_add("dropped", 1);
    }
    state.lines.push_back(line);
    if state.lines.len() >= state.settings.batch {
        flush(state);
    }
}

/// Writes what is waiting, a batch at a time; stops at the first failure
/// (tried again at the next tick).
fn flush(state: &mut State) {
    while !state.lines.is_empty() {
        let n = state.lines.len().min(state.settings.batch);
        let mut body = String::new();
        for l in state.lines.iter().take(n) {
            body.push_str(l);
            body.push('\n');
        }
        match post(&state.settings.authority, &state.settings.path, body.as_bytes()) {
            Ok(status) if (200..300).contains(&status) => {
                state.lines.drain(..n);
                host::counter_add("written", n as u64);
            }
            other => {
                host::counter_add("failed_writes", 1);
                if host::log_enabled(Level::Warn) {
                    let why = match other {
                        Ok(status) => format!("InfluxDB answered {status}"),
                        Err(e) => e,
                    };
                    host::log(
                        Level::Warn,
                        &format!("influx: writing {n} points failed: {why}; trying again"),
                    );
                }
                return;
            }
        }
    }
}

/// A POST through wasi:http; the status or why there is none.
fn post(authority: &str, path: &str, body: &[u8]) -> Result<u16, String> {
    use wasi::http::types::{Fields, Method, OutgoingBody, OutgoingRequest, Scheme};
    let headers = Fields::from_list(&[("content-type".to_string(), b"text/plain; charset=utf-8".to_vec())])
        .map_err(|e| format!("{e:?}"))?;
    let request = OutgoingRequest::new(headers);
    request.set_method(&Method::Post).map_err(|()| "method")?;
    request.set_scheme(Some(&Scheme::Http)).map_err(|()| "scheme")?;
    request.set_authority(Some(authority)).map_err(|()| "authority")?;
    request.set_path_with_query(Some(path)).map_err(|()| "path")?;
    let out = request.body().map_err(|()| "body")?;
    let pending = wasi::http::outgoing_handler::handle(request, None).map_err(|e| format!("{e:?}"))?;
    {
        let stream = out.write().map_err(|()| "body stream")?;
        for chunk in body.chunks(4096) {
            stream.blocking_write_and_flush(chunk).map_err(|e| format!("{e:?}"))?;
        }
    }
    OutgoingBody::finish(out, None).map_err(|e| format!("{e:?}"))?;
    pending.subscribe().block();
    match pending.get() {
        Some(Ok(Ok(response))) => Ok(response.status()),
        Some(Ok(Err(e))) => Err(format!("{e:?}")),
        Some(Err(())) | None => Err("no response".into()),
    }
}

/// `http://host:port` → (authority, path of /write).
fn parse(table: &serde_json::Value) -> Result<Settings, String> {
    let known = ["url", "db", "points_per_write", "max_buffer", "dirs", "http_allow"];
    if let Some(map) = table.as_object() {
        if let Some(k) = map.keys().find(|k| !known.contains(&k.as_str())) {
            return Err(format!(
                "influx: unknown key `{k}` (known: url, db, points_per_write, max_buffer)"
            ));
        }
    }
    let text = |k: &str, default: &str| -> Result<String, String> {
        match table.get(k) {
            None => Ok(default.to_string()),
            Some(v) => v
                .as_str()
                .map(String::from)
                .ok_or(format!("influx: key `{k}`: a string")),
        }
    };
    let count = |k: &str, default: u64, max: u64| -> Result<usize, String> {
        match table.get(k) {
            None => Ok(default as usize),
            Some(v) => match v.as_u64() {
                Some(n) if (1..=max).contains(&n) => Ok(n as usize),
                _ => Err(format!("influx: key `{k}`: a number from 1 to {max}")),
            },
        }
    };
    let url = text("url", "http://127.0.0.1:8086")?;
    let authority = url
        .strip_prefix("http://")
        .map(|r| r.trim_end_matches('/'))
        .filter(|a| !a.is_empty() && !a.contains('/'))
        .ok_or(format!("influx: key `url`: http://host:port, not `{url}`"))?;
    let db = text("db", "net_gazer")?;
    if db.is_empty() || !db.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
        return Err(format!("influx: key `db`: letters, digits, _ and -, not `{db}`"));
    }
    Ok(Settings {
        authority: authority.to_string(),
        path: format!("/write?db={db}&precision=u"),
        batch: count("points_per_write", 5000, 100_000)?,
        max_buffer: count("max_buffer", 100_000, 10_000_000)?,
    })
}

struct Influx;

impl Guest for Influx {
    fn describe() -> Info {
        Info {
            name: "influx".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            role: Role::Exporter,
            wants: vec![EventKind::Handshake, EventKind::Flow],
            interest: Interest {
                server_ports: Vec::new(),
                directions: Vec::new(),
                outcomes: Vec::new(),
                local_networks: Vec::new(),
                remote_networks: Vec::new(),
            },
            batch: true,
        }
    }

    fn init(config: String) -> Result<(), String> {
        let table: serde_json::Value = serde_json::from_str(&config).map_err(|e| e.to_string())?;
        let settings = parse(&table)?;
        *STATE.lock().map_err(|e| e.to_string())? = Some(State {
            settings,
            lines: VecDeque::new(),
        });
        Ok(())
    }

    fn on_event() -> Verdict {
        take();
        Verdict::Keep
    }

    fn on_batch(count: u32) -> Vec<Verdict> {
        for i in 0..count {
            if event::select(i) {
                take();
            }
        }
        vec![Verdict::Keep; count as usize]
    }

    fn on_tick(_now_us: i64) {
        if let Ok(mut guard) = STATE.lock() {
            if let Some(state) = guard.as_mut() {
                flush(state);
            }
        }
    }
}

export!(Influx);
