//! `GET /metrics`: the collector's counters as Prometheus text.

use std::fmt::Write;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};

use super::AppState;

/// What each family counts (`# HELP`).
fn help(name: &str) -> &'static str {
    match name {
        "events_received_total" => "Events received in batches, by sensor and kind.",
        "events_stored_total" => "Events stored (not seen before), by sensor and kind.",
        "events_duplicate_total" => "Events received again and ignored (a retried batch), by sensor and kind.",
        "events_refused_total" => "Events refused one by one (invalid), by sensor.",
        "requests_rejected_total" => "Batches not stored, by reason.",
        "ingest_seconds_total" => "Time spent storing batches.",
        "batches_total" => "Batches stored.",
        "requests_panicked_total" => "Requests that met a bug (answered 500).",
        "connections_open" => "HTTP connections open.",
        "connections_refused_total" => "Connections refused because max_connections were open.",
        "connections_timed_out_total" => "Connections closed for a timeout.",
        "graph_routes_written_total" => "Routes written to FalkorDB.",
        "graph_errors_total" => "Failed rounds of writing to FalkorDB.",
        "nats_connected" => "1 while the NATS source consumes.",
        "nats_messages_total" => "NATS messages handled, by result.",
        "nats_dead_letter_events_total" => "Events sent to the dead-letter stream.",
        "nats_consumer_pending" => "Messages in the stream no collector was handed yet (lag).",
        "nats_consumer_ack_pending" => "Messages handed out and not yet acknowledged.",
        "database_bytes" => "Size of the store (the SQLite file, or the PostgreSQL database).",
        _ => "",
    }
}

/// A label value in the exposition format: `\`, `"` and newlines escaped
/// (sensor ids come from the configuration and may hold any of them).
fn label(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// `# HELP` and `# TYPE` lines, then one sample per (labels, value).
fn family(o: &mut String, name: &str, kind: &str, samples: impl IntoIterator<Item = (String, u64)>) {
    let _ = writeln!(o, "# HELP netgazer_collector_{name} {}", help(name));
    let _ = writeln!(o, "# TYPE netgazer_collector_{name} {kind}");
    for (labels, value) in samples {
        let _ = writeln!(o, "netgazer_collector_{name}{labels} {value}");
    }
}

pub(super) async fn serve(State(state): State<Arc<AppState>>) -> Response {
    // Off the async threads: a PostgreSQL client blocks.
    let task_state = Arc::clone(&state);
    let size = tokio::task::spawn_blocking(move || {
        let store = task_state.readers.take().ok()?;
        let size = store.size_bytes().ok();
        task_state.readers.give(store);
        size
    })
    .await
    .ok()
    .flatten()
    .unwrap_or(0);
    let mut o = String::new();
    {
        let m = state.metrics.lock();
        let by_kind = |i: usize| {
            m.events
                .iter()
                .map(move |((sensor, kind), n)| (format!("{{sensor=\"{}\",kind=\"{kind}\"}}", label(sensor)), n[i]))
        };
        family(&mut o, "events_received_total", "counter", by_kind(0));
        family(&mut o, "events_stored_total", "counter", by_kind(1));
        family(&mut o, "events_duplicate_total", "counter", by_kind(2));
        family(
            &mut o,
            "events_refused_total",
            "counter",
            m.refused
                .iter()
                .map(|(s, n)| (format!("{{sensor=\"{}\"}}", label(s)), *n)),
        );
        family(
            &mut o,
            "requests_rejected_total",
            "counter",
            m.rejected.iter().map(|(r, n)| (format!("{{reason=\"{r}\"}}"), *n)),
        );
        let _ = writeln!(
            o,
            "# HELP netgazer_collector_ingest_seconds_total {}",
            help("ingest_seconds_total")
        );
        let _ = writeln!(o, "# TYPE netgazer_collector_ingest_seconds_total counter");
        let _ = writeln!(o, "netgazer_collector_ingest_seconds_total {}", m.ingest_seconds);
        family(&mut o, "batches_total", "counter", [(String::new(), m.batches)]);
        family(
            &mut o,
            "requests_panicked_total",
            "counter",
            [(String::new(), m.panics)],
        );
    }
    let c = &state.connections;
    family(
        &mut o,
        "connections_open",
        "gauge",
        [(String::new(), c.open.load(Relaxed))],
    );
    family(
        &mut o,
        "connections_refused_total",
        "counter",
        [(String::new(), c.refused.load(Relaxed))],
    );
    family(
        &mut o,
        "connections_timed_out_total",
        "counter",
        [(String::new(), c.timed_out.load(Relaxed))],
    );
    if state.config().falkordb.is_some() {
        let g = &state.graph;
        family(
            &mut o,
            "graph_routes_written_total",
            "counter",
            [(String::new(), g.routes_written.load(Relaxed))],
        );
        family(
            &mut o,
            "graph_errors_total",
            "counter",
            [(String::new(), g.errors.load(Relaxed))],
        );
    }
    if state.config().source.nats.is_some() {
        let n = &state.nats;
        let one = |v: &std::sync::atomic::AtomicU64| [(String::new(), v.load(Relaxed))];
        family(&mut o, "nats_connected", "gauge", one(&n.connected));
        family(
            &mut o,
            "nats_messages_total",
            "counter",
            [
                ("stored", &n.stored),
                ("retried", &n.retried),
                ("dead_letter", &n.dead_letters),
            ]
            .map(|(result, v)| (format!("{{result=\"{result}\"}}"), v.load(Relaxed))),
        );
        family(
            &mut o,
            "nats_dead_letter_events_total",
            "counter",
            one(&n.dead_letter_events),
        );
        family(&mut o, "nats_consumer_pending", "gauge", one(&n.pending));
        family(&mut o, "nats_consumer_ack_pending", "gauge", one(&n.ack_pending));
    }
    family(&mut o, "database_bytes", "gauge", [(String::new(), size)]);
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], o).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(label(r#"gw"1\x"#), r#"gw\"1\\x"#);
        assert_eq!(label("a\nb"), "a\\nb");
        assert_eq!(label("gw1"), "gw1");
    }
}
