//! A plugin built against contract 0.1 (`wit/v0.1`), for the daemon's
//! tests: this host must keep running plugins of that version. Not shipped.
//!
//! Modes (`mode` in its table): `tag` (the default: tags every event
//! `legacy` = "0.1"), `drop`, `echo` (tags a handshake with everything it
//! received, `{:?}`, for the host's lowering tests).

wit_bindgen::generate!({
    path: "../../wit/v0.1",
    world: "sensor-plugin",
});

use exports::net_gazer::plugin::plugin::Guest;
use net_gazer::plugin::types::{Event, EventKind, Flow, Handshake, Info, Route, Scan, Tag, Verdict};

static MODE: std::sync::Mutex<String> = std::sync::Mutex::new(String::new());

fn mode() -> String {
    MODE.lock().map(|m| m.clone()).unwrap_or_default()
}

fn judge(echo: impl FnOnce() -> String) -> Verdict {
    let tag = |key: &str, value: String| Verdict::Tag(vec![Tag { key: key.into(), value }]);
    match mode().as_str() {
        "drop" => Verdict::Drop,
        "echo" => tag("echo", echo()),
        _ => tag("legacy", "0.1".into()),
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
        let mode = table.get("mode").and_then(|m| m.as_str()).unwrap_or("tag");
        *MODE.lock().map_err(|e| e.to_string())? = mode.to_string();
        Ok(())
    }

    fn on_handshake(e: Handshake) -> Verdict {
        judge(|| format!("{e:?}"))
    }

    fn on_flow(e: Flow) -> Verdict {
        judge(|| format!("{e:?}"))
    }

    fn on_scan(e: Scan) -> Verdict {
        judge(|| format!("{e:?}"))
    }

    fn on_route(e: Route) -> Verdict {
        judge(|| format!("{e:?}"))
    }

    fn on_batch(events: Vec<Event>) -> Vec<Verdict> {
        events.iter().map(|e| judge(|| format!("{e:?}"))).collect()
    }

    fn on_tick(_now_us: i64) {}
}

export!(Legacy);
