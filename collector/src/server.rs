//! The HTTP API.
//!
//! - `POST /api/v1/events`: a batch from a sensor (`ingest`), with
//!   `Authorization: Bearer <token>`, JSON, optionally
//!   `Content-Encoding: gzip`. 200 `{"stored": n, "duplicates": m}`; 401
//!   without a known token; 403 when the body names another sensor than
//!   the token's; 400 for a body that does not decode or does not check
//!   (with the reason; nothing of the batch is stored); 413 over the size
//!   limit; 503 when the database fails (the sensor retries).
//! - `GET /health`: `UP` (as the original collector answered).
//! - `GET /metrics`: Prometheus text.
//! - `GET /api/v1/summary`: events stored, by sensor and kind.
//! - `GET /api/v1/sensors`, `/hosts`, `/hosts/{ip}`, `/graph`, `/inbound`,
//!   `/internal`, `/rtt`: the queries (`query`), JSON.
//! - `GET /`, `/ui/*`: the web UI (`ui`), bundled in the binary.

use std::collections::BTreeMap;
use std::io::Read;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};

use crate::config::Config;
use crate::ingest;
use crate::query;
use crate::store::Store;

/// Counters for `/metrics`.
#[derive(Default)]
struct Metrics {
    /// (sensor, kind) → events received, stored, duplicates.
    events: BTreeMap<(String, String), [u64; 3]>,
    /// Rejected requests by reason.
    rejected: BTreeMap<&'static str, u64>,
    batches: u64,
    ingest_seconds: f64,
}

pub struct AppState {
    config: Config,
    graph: Arc<crate::graphdb::GraphStats>,
    store: Mutex<Store>,
    metrics: Mutex<Metrics>,
}

pub fn app(config: Config, store: Store) -> Router {
    app_with(config, store, Arc::default())
}

/// The app, with the counters of the FalkorDB thread for `/metrics`.
pub fn app_with(config: Config, store: Store, graph_stats: Arc<crate::graphdb::GraphStats>) -> Router {
    let limit = (config.body_limit_mb * 1024 * 1024) as usize;
    let state = Arc::new(AppState {
        config,
        graph: graph_stats,
        store: Mutex::new(store),
        metrics: Mutex::new(Metrics::default()),
    });
    Router::new()
        .route("/health", get(|| async { "UP" }))
        .route("/metrics", get(metrics))
        .route("/api/v1/summary", get(summary))
        .route("/api/v1/sensors", get(sensors))
        .route("/api/v1/hosts", get(hosts))
        .route("/api/v1/hosts/{ip}", get(host))
        .route("/api/v1/graph", get(graph))
        .route("/api/v1/inbound", get(inbound))
        .route("/api/v1/internal", get(internal))
        .route("/api/v1/rtt", get(rtt))
        .route("/api/v1/events", post(events))
        .merge(crate::ui::routes())
        .layer(DefaultBodyLimit::max(limit))
        .with_state(state)
}

fn reject(state: &AppState, status: StatusCode, reason: &'static str, message: String) -> Response {
    if let Ok(mut m) = state.metrics.lock() {
        *m.rejected.entry(reason).or_default() += 1;
    }
    tracing::warn!(reason, %message, "batch rejected");
    (status, Json(serde_json::json!({ "error": message }))).into_response()
}

async fn events(State(state): State<Arc<AppState>>, headers: HeaderMap, body: Bytes) -> Response {
    let started = Instant::now();
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let Some(sensor) = token.and_then(|t| state.config.sensor_of(t)).map(String::from) else {
        return reject(
            &state,
            StatusCode::UNAUTHORIZED,
            "token",
            "unknown or missing bearer token".into(),
        );
    };
    let gzip = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("gzip"));
    let limit = state.config.body_limit_mb * 1024 * 1024;
    let body = if gzip {
        let mut out = Vec::new();
        let mut d = flate2::read::GzDecoder::new(&body[..]).take(limit + 1);
        if let Err(e) = d.read_to_end(&mut out) {
            return reject(
                &state,
                StatusCode::BAD_REQUEST,
                "gzip",
                format!("the gzip body does not decode: {e}"),
            );
        }
        if out.len() as u64 > limit {
            return reject(
                &state,
                StatusCode::PAYLOAD_TOO_LARGE,
                "size",
                format!(
                    "the body is larger than {} MiB decompressed",
                    state.config.body_limit_mb
                ),
            );
        }
        Bytes::from(out)
    } else {
        body
    };
    let batch = match ingest::parse(&body) {
        Ok(b) => b,
        Err(message) => return reject(&state, StatusCode::BAD_REQUEST, "invalid", message),
    };
    if batch.sensor != sensor {
        let message = format!("the token is sensor `{sensor}`'s, the batch says `{}`", batch.sensor);
        return reject(&state, StatusCode::FORBIDDEN, "sensor", message);
    }
    let now_us = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64);
    let task_state = Arc::clone(&state);
    let result = tokio::task::spawn_blocking(move || {
        let mut store = task_state
            .store
            .lock()
            .map_err(|_| "the store lock is poisoned".to_string())?;
        store
            .insert(&batch, now_us)
            .map(|r| (r, batch))
            .map_err(|e| e.to_string())
    })
    .await;
    let (stored, batch) = match result {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => {
            return reject(
                &state,
                StatusCode::SERVICE_UNAVAILABLE,
                "database",
                format!("storing failed: {e}"),
            )
        }
        Err(e) => {
            return reject(
                &state,
                StatusCode::SERVICE_UNAVAILABLE,
                "database",
                format!("storing failed: {e}"),
            )
        }
    };
    if let Ok(mut m) = state.metrics.lock() {
        m.batches += 1;
        m.ingest_seconds += started.elapsed().as_secs_f64();
        for row in &batch.rows {
            m.events.entry((sensor.clone(), row.kind.to_string())).or_default()[0] += 1;
        }
        // Stored and duplicate counts are per batch; attribute them by kind
        // only when the batch has one kind (the common case: all events).
        let kinds: std::collections::BTreeSet<&str> = batch.rows.iter().map(|r| r.kind).collect();
        if let [kind] = kinds.into_iter().collect::<Vec<_>>()[..] {
            let e = m.events.entry((sensor.clone(), kind.to_string())).or_default();
            e[1] += stored.stored;
            e[2] += stored.duplicates;
        }
    }
    Json(serde_json::json!({ "stored": stored.stored, "duplicates": stored.duplicates })).into_response()
}

async fn summary(State(state): State<Arc<AppState>>) -> Response {
    let counts = state
        .store
        .lock()
        .map_err(|_| ())
        .and_then(|s| s.counts().map_err(|_| ()));
    match counts {
        Ok(c) => Json(serde_json::json!({ "events": c })).into_response(),
        Err(()) => (StatusCode::SERVICE_UNAVAILABLE, "database unavailable").into_response(),
    }
}

/// Runs a read query on the store; 400 for a bad filter is axum's (the
/// query string does not parse), 503 when the database fails.
fn read<T: serde::Serialize>(state: &AppState, q: impl FnOnce(&Store) -> rusqlite::Result<T>) -> Response {
    let result = match state.store.lock() {
        Ok(store) => q(&store).map_err(|e| e.to_string()),
        Err(_) => Err("the store lock is poisoned".to_string()),
    };
    match result {
        Ok(v) => Json(v).into_response(),
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, Json(serde_json::json!({ "error": e }))).into_response(),
    }
}

async fn hosts(State(state): State<Arc<AppState>>, Query(f): Query<query::Filter>) -> Response {
    read(&state, |s| query::hosts(s, &f))
}

async fn graph(State(state): State<Arc<AppState>>, Query(f): Query<query::Filter>) -> Response {
    read(&state, |s| query::graph(s, &f))
}

async fn inbound(State(state): State<Arc<AppState>>, Query(f): Query<query::Filter>) -> Response {
    read(&state, |s| query::inbound(s, &f))
}

async fn internal(State(state): State<Arc<AppState>>, Query(f): Query<query::Filter>) -> Response {
    read(&state, |s| query::internal(s, &f))
}

async fn rtt(
    State(state): State<Arc<AppState>>,
    Query(f): Query<query::Filter>,
    Query(q): Query<query::Series>,
) -> Response {
    if let Some(Err(e)) = q.network.as_deref().map(str::parse::<query::Network>) {
        return (StatusCode::BAD_REQUEST, Json(serde_json::json!({ "error": e }))).into_response();
    }
    read(&state, |s| query::rtt_series(s, &f, &q))
}

/// The sensors that have sent, with their configured location (the map's
/// origin).
async fn sensors(State(state): State<Arc<AppState>>) -> Response {
    let config = &state.config;
    read(&state, |s| {
        let rows = s.sensors()?;
        let list: Vec<serde_json::Value> = rows
            .into_iter()
            .map(|(id, first_us, last_us, last_seq)| {
                let location = config.sensors.get(&id).and_then(|c| c.location).or(config.location);
                serde_json::json!({"id": id, "first_us": first_us, "last_us": last_us,
                    "last_seq": last_seq, "location": location})
            })
            .collect();
        Ok(serde_json::json!({ "sensors": list, "location": config.location }))
    })
}

async fn host(State(state): State<Arc<AppState>>, Path(ip): Path<String>, Query(f): Query<query::Filter>) -> Response {
    if ip.parse::<std::net::IpAddr>().is_err() {
        let e = format!("`{ip}` is not an IP address");
        return (StatusCode::BAD_REQUEST, Json(serde_json::json!({ "error": e }))).into_response();
    }
    read(&state, |s| query::host(s, &ip, &f))
}

async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    use std::fmt::Write;
    let mut o = String::new();
    let size = state.store.lock().ok().and_then(|s| s.size_bytes().ok()).unwrap_or(0);
    if let Ok(m) = state.metrics.lock() {
        let _ = writeln!(o, "# TYPE netgazer_collector_events_received_total counter");
        for ((sensor, kind), [received, _, _]) in &m.events {
            let _ = writeln!(
                o,
                "netgazer_collector_events_received_total{{sensor=\"{sensor}\",kind=\"{kind}\"}} {received}"
            );
        }
        let _ = writeln!(o, "# TYPE netgazer_collector_events_stored_total counter");
        for ((sensor, kind), [_, stored, _]) in &m.events {
            let _ = writeln!(
                o,
                "netgazer_collector_events_stored_total{{sensor=\"{sensor}\",kind=\"{kind}\"}} {stored}"
            );
        }
        let _ = writeln!(o, "# TYPE netgazer_collector_events_duplicate_total counter");
        for ((sensor, kind), [_, _, dup]) in &m.events {
            let _ = writeln!(
                o,
                "netgazer_collector_events_duplicate_total{{sensor=\"{sensor}\",kind=\"{kind}\"}} {dup}"
            );
        }
        let _ = writeln!(o, "# TYPE netgazer_collector_requests_rejected_total counter");
        for (reason, n) in &m.rejected {
            let _ = writeln!(
                o,
                "netgazer_collector_requests_rejected_total{{reason=\"{reason}\"}} {n}"
            );
        }
        let _ = writeln!(o, "# TYPE netgazer_collector_ingest_seconds_total counter");
        let _ = writeln!(o, "netgazer_collector_ingest_seconds_total {}", m.ingest_seconds);
        let _ = writeln!(o, "# TYPE netgazer_collector_batches_total counter");
        let _ = writeln!(o, "netgazer_collector_batches_total {}", m.batches);
    }
    if state.config.falkordb.is_some() {
        use std::sync::atomic::Ordering::Relaxed;
        let _ = writeln!(o, "# TYPE netgazer_collector_graph_routes_written_total counter");
        let _ = writeln!(
            o,
            "netgazer_collector_graph_routes_written_total {}",
            state.graph.routes_written.load(Relaxed)
        );
        let _ = writeln!(o, "# TYPE netgazer_collector_graph_errors_total counter");
        let _ = writeln!(
            o,
            "netgazer_collector_graph_errors_total {}",
            state.graph.errors.load(Relaxed)
        );
    }
    let _ = writeln!(o, "# TYPE netgazer_collector_database_bytes gauge");
    let _ = writeln!(o, "netgazer_collector_database_bytes {size}");
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], o).into_response()
}
