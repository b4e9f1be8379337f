//! A plugin for the daemon's own tests: its `mode` makes it a well-behaved
//! tagger or one of the hostile plugins the host must survive. Not shipped.
//!
//! Modes: `tag` (adds the tag `key` whose value lists the tag keys it saw),
//! `drop`, `loop` (never returns), `grow` (allocates 1 MiB per event and keeps
//! it), `trap` (panics on every event), `read` (tags `read` with the first
//! line of the file `path`, or the error), `http` (tags `http` with the status
//! of a GET of `url`, or the error; `wasi-http`: the same through
//! `wasi:http/outgoing-handler`), `http-loop` (GETs `url` forever), `garbage` (per event: tags with an empty
//! key and a 1 MiB value; in batches: one verdict too many), `init-fail` (refuses its configuration), `echo` (tags a handshake with
//! everything it received, `{:?}`).

use net_gazer_sdk::{
    export_plugin, Config, Event, EventKind, Flow, Handshake, Info, Plugin, Route, Scan, Tagged, Verdict,
};
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

    fn judge(&mut self, seen: &dyn Tagged) -> Verdict {
        match self.s.mode.as_str() {
            "drop" => Verdict::Drop,
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
            "garbage" => Verdict::Tag(vec![
                net_gazer_sdk::Tag::new("", "empty key"),
                net_gazer_sdk::Tag::new("big", "x".repeat(1 << 20)),
            ]),
            "read" => {
                let value = match std::fs::read_to_string(&self.s.path) {
                    Ok(text) => text.lines().next().unwrap_or("").to_string(),
                    Err(e) => format!("error: {e}"),
                };
                Verdict::tag(self.key("read"), value)
            }
            // Host calls that fail at once, forever: the deadline must
            // still come (time in the host is not the plugin's to keep).
            "http-loop" => loop {
                let _ = std::hint::black_box(net_gazer_sdk::http::get(&self.s.url));
            },
            // The same GET through the standard wasi:http/outgoing-handler.
            "wasi-http" => {
                let value = match wasi_get(&self.s.url) {
                    Ok(status) => status.to_string(),
                    Err(e) => format!("error: {e}"),
                };
                Verdict::tag(self.key("http"), value)
            }
            "http" => {
                let value = match net_gazer_sdk::http::get(&self.s.url) {
                    Ok(r) => r.status.to_string(),
                    Err(e) => format!("error: {e}"),
                };
                Verdict::tag(self.key("http"), value)
            }
            _ => {
                let keys: Vec<&str> = seen.tags().iter().map(|t| t.key.as_str()).collect();
                Verdict::tag(self.key("testkit"), keys.join(","))
            }
        }
    }
}

impl Plugin for Testkit {
    fn info() -> Info {
        // Per event (the tests exercise that path); the operator's
        // `batch = true` switches to batches.
        Info::new("testkit", env!("CARGO_PKG_VERSION"))
            .per_event()
            .wants(&EventKind::ALL)
    }

    fn init(config: Config) -> Result<Self, String> {
        let s: Settings = config.parse()?;
        if s.mode == "init-fail" {
            return Err("testkit: init-fail mode refuses every configuration".into());
        }
        Ok(Testkit { s, hoard: Vec::new() })
    }

    fn handshake(&mut self, e: &Handshake) -> Verdict {
        if self.s.mode == "echo" {
            // Everything it received, for the host's lowering tests.
            return Verdict::tag("echo", format!("{e:?}"));
        }
        self.judge(e)
    }

    fn flow(&mut self, e: &Flow) -> Verdict {
        self.judge(e)
    }

    fn scan(&mut self, e: &Scan) -> Verdict {
        self.judge(e)
    }

    fn route(&mut self, e: &Route) -> Verdict {
        self.judge(e)
    }

    fn batch(&mut self, events: &[Event]) -> Vec<Verdict> {
        if self.s.mode == "garbage" {
            return vec![Verdict::Keep; events.len() + 1];
        }
        if self.s.mode == "echo" {
            return events.iter().map(|e| Verdict::tag("echo", format!("{e:?}"))).collect();
        }
        events.iter().map(|e| self.judge(e)).collect()
    }
}

export_plugin!(Testkit);

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
