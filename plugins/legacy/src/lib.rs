//! A plugin built against contract 0.1 (`wit/v0.1`), for the daemon's
//! tests: this host must keep running plugins of that version. Not shipped.
//!
//! Modes (`mode` in its table): `tag` (the default: tags every event with
//! the tag `key`, default `legacy`, whose value lists the tag keys it saw),
//! `drop`, `echo` (tags an event with everything it received, `{:?}`, for
//! the host's lowering tests).

wit_bindgen::generate!({
    path: "../../wit/v0.1",
    world: "sensor-plugin",
});

use exports::net_gazer::plugin::plugin::Guest;
use net_gazer::plugin::types::{Event, EventKind, Flow, Handshake, Info, Route, Scan, Tag, Verdict};

/// (mode, key) from the configuration.
static SETTINGS: std::sync::Mutex<(String, String)> = std::sync::Mutex::new((String::new(), String::new()));

fn judge(seen: &[Tag], echo: impl FnOnce() -> String) -> Verdict {
    let (mode, key) = SETTINGS.lock().map(|s| s.clone()).unwrap_or_default();
    let tag = |key: String, value: String| Verdict::Tag(vec![Tag { key, value }]);
    match mode.as_str() {
        "drop" => Verdict::Drop,
        "echo" => tag("echo".into(), echo()),
        _ => {
            let keys: Vec<&str> = seen.iter().map(|t| t.key.as_str()).collect();
            tag(key, keys.join(","))
        }
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

struct Legacy;

impl Guest for Legacy {
    fn describe() -> Info {
        Info {
            name: "legacy".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            wants: vec![EventKind::Handshake, EventKind::Flow, EventKind::Scan, EventKind::Route],
            batch: false,
        }
    }

    fn init(config: String) -> Result<(), String> {
        let table: serde_json::Value = serde_json::from_str(&config).map_err(|e| e.to_string())?;
        let text = |name: &str, default: &str| table.get(name).and_then(|m| m.as_str()).unwrap_or(default).to_string();
        *SETTINGS.lock().map_err(|e| e.to_string())? = (text("mode", "tag"), text("key", "legacy"));
        Ok(())
    }

    fn on_handshake(e: Handshake) -> Verdict {
        judge(&e.tags, || format!("{e:?}"))
    }

    fn on_flow(e: Flow) -> Verdict {
        judge(&e.tags, || format!("{e:?}"))
    }

    fn on_scan(e: Scan) -> Verdict {
        judge(&e.tags, || format!("{e:?}"))
    }

    fn on_route(e: Route) -> Verdict {
        judge(&e.tags, || format!("{e:?}"))
    }

    fn on_batch(events: Vec<Event>) -> Vec<Verdict> {
        events.iter().map(|e| judge(tags(e), || format!("{e:?}"))).collect()
    }

    fn on_tick(_now_us: i64) {}
}

export!(Legacy);
