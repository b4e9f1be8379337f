//! A plugin for the daemon's own tests, built against contract 0.2 (the
//! previous contract, straight on `wit/net-gazer-plugin.wit`: this host
//! must keep running plugins of that version). Its `mode` makes it a
//! well-behaved tagger or one of the hostile plugins the host must survive.
//! Not shipped.
//!
//! Modes: `tag` (adds the tag `key` whose value lists the tag keys it saw),
//! `drop`, `keep` (the benchmarks' plugin: keeps every event), `loop` (never returns), `grow` (allocates 1 MiB per event and keeps
//! it), `trap` (panics on every event), `read` (tags `read` with the first
//! line of the file `path`, or the error), `http` (tags `http` with the status
//! of a GET of `url` through contract 0.2's `http-send`, or the error;
//! `wasi-http`: the same through `wasi:http/outgoing-handler`), `http-loop`
//! (GETs `url` forever), `garbage` (per event: tags with an empty key and a
//! 1 MiB value; in batches: one verdict too many), `init-fail` (refuses its
//! configuration).

wit_bindgen::generate!({
    path: "../../wit",
    world: "sensor-plugin",
});

use std::cell::RefCell;

use exports::net_gazer::plugin::plugin::Guest;
use net_gazer::plugin::host;
use net_gazer::plugin::types::{Event, EventKind, Flow, Handshake, HttpRequest, Info, Route, Scan, Tag, Verdict};
use serde::Deserialize;

#[derive(Deserialize)]
struct Settings {
    #[serde(default = "default_mode")]
    mode: String,
    /// The tag to set (default: `testkit`, or `read` / `http` in those modes).
    #[serde(default)]
    key: Option<String>,
    #[serde(default)]
    path: String,
    #[serde(default)]
    url: String,
}

fn default_mode() -> String {
    "tag".into()
}

struct Testkit {
    s: Settings,
    hoard: Vec<Vec<u8>>,
}

impl Testkit {
    fn key(&self, default: &str) -> String {
        self.s.key.clone().unwrap_or_else(|| default.to_string())
    }

    fn judge(&mut self, seen: &[Tag]) -> Verdict {
        match self.s.mode.as_str() {
            "drop" => Verdict::Drop,
            // Nothing: the cost of the call alone (the benchmarks).
            "keep" => Verdict::Keep,
            "loop" => {
                let mut n = 0u64;
                loop {
                    n = std::hint::black_box(n.wrapping_add(1));
                }
            }
            "grow" => {
                self.hoard.push(vec![1u8; 1 << 20]);
                Verdict::Keep
            }
            "trap" => panic!("testkit: trap mode"),
            // Tags the host must refuse: an empty key, an oversized value.
            "garbage" => Verdict::Tag(vec![tag("", "empty key"), tag("big", &"x".repeat(1 << 20))]),
            "read" => {
                let value = match std::fs::read_to_string(&self.s.path) {
                    Ok(text) => text.lines().next().unwrap_or("").to_string(),
                    Err(e) => format!("error: {e}"),
                };
                Verdict::Tag(vec![tag(&self.key("read"), &value)])
            }
            // Host calls that fail at once, forever: the deadline must
            // still come (time in the host is not the plugin's to keep).
            "http-loop" => loop {
                let _ = std::hint::black_box(http_get(&self.s.url));
            },
            // The same GET through the standard wasi:http/outgoing-handler.
            "wasi-http" => {
                let value = match wasi_get(&self.s.url) {
                    Ok(status) => status.to_string(),
                    Err(e) => format!("error: {e}"),
                };
                Verdict::Tag(vec![tag(&self.key("http"), &value)])
            }
            "http" => {
                let value = match http_get(&self.s.url) {
                    Ok(r) => r.status.to_string(),
                    Err(e) => format!("error: {e}"),
                };
                Verdict::Tag(vec![tag(&self.key("http"), &value)])
            }
            _ => {
                let keys: Vec<&str> = seen.iter().map(|t| t.key.as_str()).collect();
                Verdict::Tag(vec![tag(&self.key("testkit"), &keys.join(","))])
            }
        }
    }
}

fn tag(key: &str, value: &str) -> Tag {
    Tag {
        key: key.into(),
        value: value.into(),
    }
}

fn tags(e: &Event) -> &[Tag] {
    match e {
        Event::Handshake(e) => &e.tags,
        Event::Flow(e) => &e.tags,
        Event::Scan(e) => &e.tags,
        Event::Route(e) => &e.tags,
    }
}

/// A GET through contract 0.2's `http-send`: the response, or why not.
fn http_get(url: &str) -> Result<net_gazer::plugin::types::HttpResponse, String> {
    host::http_send(&HttpRequest {
        method: "GET".into(),
        url: url.into(),
        headers: Vec::new(),
        body: Vec::new(),
    })
}

thread_local! {
    // One instance is single-threaded: the plugin made by `init` lives here.
    static STATE: RefCell<Option<Testkit>> = const { RefCell::new(None) };
}

fn with<R>(default: R, f: impl FnOnce(&mut Testkit) -> R) -> R {
    STATE.with(|s| match s.borrow_mut().as_mut() {
        Some(t) => f(t),
        None => default,
    })
}

impl Guest for Testkit {
    fn describe() -> Info {
        // Per event (the tests exercise that path); the operator's
        // `batch = true` switches to batches.
        Info {
            name: "testkit".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            wants: vec![EventKind::Handshake, EventKind::Flow, EventKind::Scan, EventKind::Route],
            batch: false,
        }
    }

    fn init(config: String) -> Result<(), String> {
        let s: Settings = serde_json::from_str(&config).map_err(|e| format!("configuration: {e}"))?;
        if s.mode == "init-fail" {
            return Err("testkit: init-fail mode refuses every configuration".into());
        }
        STATE.with(|st| *st.borrow_mut() = Some(Testkit { s, hoard: Vec::new() }));
        Ok(())
    }

    fn on_handshake(e: Handshake) -> Verdict {
        with(Verdict::Keep, |t| t.judge(&e.tags))
    }

    fn on_flow(e: Flow) -> Verdict {
        with(Verdict::Keep, |t| t.judge(&e.tags))
    }

    fn on_scan(e: Scan) -> Verdict {
        with(Verdict::Keep, |t| t.judge(&e.tags))
    }

    fn on_route(e: Route) -> Verdict {
        with(Verdict::Keep, |t| t.judge(&e.tags))
    }

    fn on_batch(events: Vec<Event>) -> Vec<Verdict> {
        with(vec![Verdict::Keep; events.len()], |t| {
            if t.s.mode == "garbage" {
                return vec![Verdict::Keep; events.len() + 1];
            }
            events.iter().map(|e| t.judge(tags(e))).collect()
        })
    }

    fn on_tick(_now_us: i64) {}
}

export!(Testkit);

/// A GET of `url` (`http://host:port/path`) through
/// `wasi:http/outgoing-handler`: the status, or the error.
fn wasi_get(url: &str) -> Result<u16, String> {
    use wasi::http::types::{Fields, Method, OutgoingRequest, Scheme};
    let rest = url.strip_prefix("http://").ok_or("only http:// here")?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let request = OutgoingRequest::new(Fields::new());
    request.set_method(&Method::Get).map_err(|()| "method")?;
    request.set_scheme(Some(&Scheme::Http)).map_err(|()| "scheme")?;
    request.set_authority(Some(authority)).map_err(|()| "authority")?;
    request.set_path_with_query(Some(path)).map_err(|()| "path")?;
    let pending = wasi::http::outgoing_handler::handle(request, None).map_err(|e| format!("{e:?}"))?;
    pending.subscribe().block();
    match pending.get() {
        Some(Ok(Ok(response))) => Ok(response.status()),
        Some(Ok(Err(e))) => Err(format!("{e:?}")),
        Some(Err(())) | None => Err("no response".into()),
    }
}
