//! The HTTP API.
//!
//! - `POST /api/v1/events`: a batch from a sensor (`ingest`), with
//!   `Authorization: Bearer <token>`, JSON, optionally
//!   `Content-Encoding: gzip`. 200 `{"stored": n, "duplicates": m,
//!   "refused": [{"index", "seq", "error"}]}`: the valid events are stored,
//!   each invalid one is named with the reason; 401 without a known token;
//!   403 when the body names another sensor than the token's; 400 for a
//!   body that does not decode at all; 408 when the body does not arrive
//!   within `body_timeout`; 413 over the size limit (at once when
//!   `Content-Length` says so); 503 when the store fails (the sensor
//!   retries); 500 when a handler panicked (logged with its cause; every
//!   other request goes on).
//! - `GET /health`: `UP` while the store takes writes (one small write,
//!   at most once a second), else 503 `DOWN: <reason>`.
//! - `GET /metrics`: Prometheus text ([`metrics`]).
//! - `GET /api/v1/summary`: events stored, by sensor and kind.
//! - `GET /api/v1/sensors`, `/hosts`, `/hosts/{ip}`, `/graph`, `/inbound`,
//!   `/internal`, `/rtt`: the queries (`query`), JSON, each on a reading
//!   connection of its own (never waiting for ingest) and stopped after
//!   `query_timeout`.
//! - `GET /`, `/ui/*`: the web UI (`ui`), bundled in the binary.
//!
//! No state here can be poisoned by a panic ([`Lock`]), and the
//! connections themselves are bounded in [`listen`].

pub mod listen;
mod metrics;

use std::any::Any;
use std::collections::BTreeMap;
use std::io::Read;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use http_body_util::BodyExt;
use net_gazer_common::sync::Lock;
use tower_http::catch_panic::CatchPanicLayer;

use crate::config::Config;
use crate::ingest;
use crate::query;
use crate::store::Store;

/// Counters for `/metrics`.
#[derive(Default)]
struct Metrics {
    /// (sensor, kind) → events received, stored, duplicates.
    events: BTreeMap<(String, String), [u64; 3]>,
    /// Events refused one by one, by sensor.
    refused: BTreeMap<String, u64>,
    /// Rejected requests by reason.
    rejected: BTreeMap<&'static str, u64>,
    batches: u64,
    ingest_seconds: f64,
    /// Requests that panicked.
    panics: u64,
}

/// The NATS source's counters (`crate::source::nats`), for `/metrics`.
#[derive(Default)]
pub struct NatsStats {
    /// 1 while connected and consuming.
    pub connected: std::sync::atomic::AtomicU64,
    pub stored: std::sync::atomic::AtomicU64,
    /// Messages not acknowledged, to be delivered again.
    pub retried: std::sync::atomic::AtomicU64,
    /// Messages moved whole to the dead-letter stream.
    pub dead_letters: std::sync::atomic::AtomicU64,
    /// Events moved to the dead-letter stream (whole messages' included).
    pub dead_letter_events: std::sync::atomic::AtomicU64,
    /// The consumer's messages not yet delivered to any collector (lag),
    /// and delivered but not acknowledged, as of the last look.
    pub pending: std::sync::atomic::AtomicU64,
    pub ack_pending: std::sync::atomic::AtomicU64,
}

/// The last answer of the store to a write, for `GET /health`.
#[derive(Clone)]
struct Health {
    at: Instant,
    problem: Option<String>,
}

/// How long a good write probe stands for `/health`.
const HEALTH_CACHE: Duration = Duration::from_secs(1);
/// How long `/health` waits for the store.
const HEALTH_WAIT: Duration = Duration::from_secs(5);
/// Reading connections kept open between queries.
const IDLE_READERS: usize = 4;

pub struct AppState {
    /// The configuration in force: replaced on SIGHUP ([`AppState::reload`]).
    config: Lock<Arc<Config>>,
    graph: Arc<crate::graphdb::GraphStats>,
    connections: Arc<listen::ConnectionStats>,
    /// The ingest connection.
    writer: Lock<Store>,
    readers: Readers,
    metrics: Lock<Metrics>,
    health: Lock<Option<Health>>,
    /// The NATS source's counters (`[source.nats]`).
    nats: Arc<NatsStats>,
}

/// Reading connections to the database, opened when needed: WAL lets them
/// read while ingest writes.
struct Readers {
    at: crate::store::Location,
    /// Statements stop after this on the store's side too (PostgreSQL):
    /// `query_timeout`, which a reload may change.
    timeout: Lock<Duration>,
    idle: Lock<Vec<Store>>,
}

impl Readers {
    fn take(&self) -> crate::store::Result<Store> {
        match self.idle.lock().pop() {
            Some(s) => Ok(s),
            None => Store::open_reader(&self.at, *self.timeout.lock()),
        }
    }

    fn give(&self, store: Store) {
        let mut idle = self.idle.lock();
        if idle.len() < IDLE_READERS {
            idle.push(store);
        }
    }
}

/// The collector's state over `writer` (the ingest connection to
/// `config.database`), with the counters of the FalkorDB thread and of the
/// accept loop for `/metrics`: what the HTTP API ([`router`]) and the NATS
/// source (`crate::source`, which uses this module, not the reverse) share.
pub fn state(
    config: Config,
    writer: Store,
    graph_stats: Arc<crate::graphdb::GraphStats>,
    connections: Arc<listen::ConnectionStats>,
) -> Arc<AppState> {
    Arc::new(AppState {
        readers: Readers {
            at: config.store(),
            timeout: Lock::new(config.query_timeout),
            idle: Lock::default(),
        },
        config: Lock::new(Arc::new(config)),
        graph: graph_stats,
        connections,
        writer: Lock::new(writer),
        metrics: Lock::default(),
        health: Lock::default(),
        nats: Arc::default(),
    })
}

/// The HTTP API and web UI over `state`.
pub fn router(state: Arc<AppState>) -> Router {
    let panics = Arc::clone(&state);
    Router::new()
        .route("/health", get(health))
        .route("/metrics", get(metrics::serve))
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
        .layer(CatchPanicLayer::custom(move |cause: Box<dyn Any + Send>| {
            panics.panicked(&*cause)
        }))
        .with_state(state)
}

/// What a panic said.
fn panic_message(cause: &(dyn Any + Send)) -> String {
    cause
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| cause.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".into())
}

/// 500 for a bug met by one request, logged with its cause.
fn internal_error(cause: &str) -> Response {
    tracing::error!(cause, "a request failed on a bug (answered 500; the service goes on)");
    let body = Json(serde_json::json!({ "error": format!("internal error: {cause}") }));
    (StatusCode::INTERNAL_SERVER_ERROR, body).into_response()
}

fn json_error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(serde_json::json!({ "error": message.into() }))).into_response()
}

fn reject(state: &AppState, status: StatusCode, reason: &'static str, message: String) -> Response {
    state.count_rejected(reason, &message);
    json_error(status, message)
}

/// The same, and the connection closes after the answer: the rest of the
/// body is not read.
fn reject_and_close(state: &AppState, status: StatusCode, reason: &'static str, message: String) -> Response {
    let mut r = reject(state, status, reason, message);
    r.headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    r
}

/// Why a body was not read.
enum BodyError {
    TooLarge,
    Slow,
    Broken(String),
}

/// Reads a body of at most `limit` bytes within `deadline`.
async fn read_body(body: Body, limit: u64, deadline: Duration) -> Result<Bytes, BodyError> {
    let read = async {
        let mut body = body;
        let mut out: Vec<u8> = Vec::new();
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| BodyError::Broken(e.to_string()))?;
            if let Ok(data) = frame.into_data() {
                if (out.len() + data.len()) as u64 > limit {
                    return Err(BodyError::TooLarge);
                }
                out.extend_from_slice(&data);
            }
        }
        Ok(Bytes::from(out))
    };
    tokio::time::timeout(deadline, read)
        .await
        .unwrap_or(Err(BodyError::Slow))
}

async fn events(State(state): State<Arc<AppState>>, headers: HeaderMap, body: Body) -> Response {
    let started = Instant::now();
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let config = state.config();
    let Some(sensor) = token.and_then(|t| config.sensor_of(t)).map(String::from) else {
        return reject_and_close(
            &state,
            StatusCode::UNAUTHORIZED,
            "token",
            "unknown or missing bearer token".into(),
        );
    };
    let limit_mb = config.body_limit_mb;
    let limit = limit_mb.saturating_mul(1024 * 1024);
    let too_large = |what: &str| format!("the body is larger than {limit_mb} MiB{what}");
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit) {
        return reject_and_close(&state, StatusCode::PAYLOAD_TOO_LARGE, "size", too_large(""));
    }
    let body_timeout = config.body_timeout;
    let body = match read_body(body, limit, body_timeout).await {
        Ok(b) => b,
        Err(BodyError::TooLarge) => {
            return reject_and_close(&state, StatusCode::PAYLOAD_TOO_LARGE, "size", too_large(""))
        }
        Err(BodyError::Slow) => {
            let message = format!(
                "the body did not arrive within body_timeout ({})",
                net_gazer_common::duration::format_duration(body_timeout)
            );
            return reject_and_close(&state, StatusCode::REQUEST_TIMEOUT, "slow", message);
        }
        Err(BodyError::Broken(e)) => {
            return reject_and_close(
                &state,
                StatusCode::BAD_REQUEST,
                "body",
                format!("reading the body: {e}"),
            )
        }
    };
    let gzip = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("gzip"));
    match state.intake(&sensor, body, gzip, started).await {
        Ok(intake) => Json(serde_json::json!({ "stored": intake.stored.stored,
            "duplicates": intake.stored.duplicates, "refused": intake.batch.refused }))
        .into_response(),
        Err(Refusal::Invalid { status, message, .. }) => json_error(status, message),
        Err(Refusal::Unavailable(message)) => json_error(StatusCode::SERVICE_UNAVAILABLE, message),
        Err(Refusal::Failed(message)) => internal_error(&message),
        Err(Refusal::Panicked(response)) => *response,
    }
}

/// A batch stored: what the store did, and the batch (with the events it
/// refused one by one).
pub struct Intake {
    pub stored: crate::store::Stored,
    pub batch: ingest::Batch,
}

/// Why a batch was not stored.
pub enum Refusal {
    /// The body as a whole: it does not decode, or names another sensor
    /// (counted as rejected, by `reason`). Retrying it cannot help.
    Invalid {
        status: StatusCode,
        reason: &'static str,
        message: String,
    },
    /// The store does not take writes now (full, busy, down): try later.
    Unavailable(String),
    /// The store failed on this batch's data: a bug, which retrying the
    /// same batch cannot mend (the sender isolates it).
    Failed(String),
    /// The storing task panicked (answered 500, counted).
    Panicked(Box<Response>),
}

impl AppState {
    /// Decodes (`gzip`: decompressed, at most `body_limit_mb`), checks and
    /// stores one batch from `sensor`, whichever way it came (HTTP, NATS);
    /// counts it for `/metrics` from `started`.
    pub async fn intake(
        self: &Arc<Self>,
        sensor: &str,
        body: Bytes,
        gzip: bool,
        started: Instant,
    ) -> Result<Intake, Refusal> {
        let limit_mb = self.config().body_limit_mb;
        let limit = limit_mb.saturating_mul(1024 * 1024);
        let invalid = |status, reason, message: String| {
            self.count_rejected(reason, &message);
            Err(Refusal::Invalid {
                status,
                reason,
                message,
            })
        };
        let body = if gzip {
            let mut out = Vec::new();
            let mut d = flate2::read::GzDecoder::new(&body[..]).take(limit.saturating_add(1));
            if let Err(e) = d.read_to_end(&mut out) {
                return invalid(
                    StatusCode::BAD_REQUEST,
                    "gzip",
                    format!("the gzip body does not decode: {e}"),
                );
            }
            if out.len() as u64 > limit {
                return invalid(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "size",
                    format!("the body is larger than {limit_mb} MiB decompressed"),
                );
            }
            Bytes::from(out)
        } else {
            body
        };
        let batch = match ingest::parse(&body) {
            Ok(b) => b,
            Err(bad) => return invalid(StatusCode::BAD_REQUEST, "invalid", bad.to_string()),
        };
        if batch.sensor != sensor {
            let message = format!("the sender is sensor `{sensor}`, the batch says `{}`", batch.sensor);
            return invalid(StatusCode::FORBIDDEN, "sensor", message);
        }
        if !batch.refused.is_empty() {
            let first = &batch.refused[0];
            tracing::warn!(sensor = %sensor, refused = batch.refused.len(), first = %first.error, "events refused");
        }
        let now_us = now_us();
        let task_state = Arc::clone(self);
        let result = tokio::task::spawn_blocking(move || {
            let mut store = task_state.writer.lock();
            let result = store.insert(&batch, now_us);
            task_state.note_write(result.as_ref().err());
            result.map(|r| (r, batch))
        })
        .await;
        let (stored, batch) = match result {
            Ok(Ok(r)) => r,
            Ok(Err(e)) if e.is_transient() => {
                let message = format!("storing failed: {e}");
                self.count_rejected("database", &message);
                return Err(Refusal::Unavailable(message));
            }
            Ok(Err(e)) => return Err(Refusal::Failed(format!("storing this batch failed: {e}"))),
            Err(e) => return Err(Refusal::Panicked(Box::new(self.join_failed(e)))),
        };
        self.count_stored(sensor, &batch, stored, started);
        Ok(Intake { stored, batch })
    }

    /// A batch not stored, by reason: counted for `/metrics` and logged.
    fn count_rejected(&self, reason: &'static str, message: &str) {
        *self.metrics.lock().rejected.entry(reason).or_default() += 1;
        tracing::warn!(reason, %message, "batch rejected");
    }

    fn count_stored(&self, sensor: &str, batch: &ingest::Batch, stored: crate::store::Stored, started: Instant) {
        let mut m = self.metrics.lock();
        m.batches += 1;
        m.ingest_seconds += started.elapsed().as_secs_f64();
        for row in &batch.rows {
            m.events.entry((sensor.to_string(), row.kind.to_string())).or_default()[0] += 1;
        }
        if !batch.refused.is_empty() {
            *m.refused.entry(sensor.to_string()).or_default() += batch.refused.len() as u64;
        }
        // Stored and duplicate counts are per batch; attribute them by kind
        // only when the batch has one kind (the common case: all events).
        let kinds: std::collections::BTreeSet<&str> = batch.rows.iter().map(|r| r.kind).collect();
        if let [kind] = kinds.into_iter().collect::<Vec<_>>()[..] {
            let e = m.events.entry((sensor.to_string(), kind.to_string())).or_default();
            e[1] += stored.stored;
            e[2] += stored.duplicates;
        }
    }
}

fn now_us() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}

impl AppState {
    /// The configuration in force (a reload replaces it; a request keeps
    /// the one it started with).
    pub fn config(&self) -> Arc<Config> {
        Arc::clone(&self.config.lock())
    }

    /// Puts `new` in force for what is read per request (the sensors and
    /// their tokens and locations, `location`, `body_limit_mb`,
    /// `body_timeout`, `query_timeout`); returns the keys that changed
    /// but take effect only at the next start. Blocks (it may close
    /// reading connections): call it off the async threads.
    pub fn reload(&self, new: Config) -> Vec<&'static str> {
        let old = self.config();
        let mut restart = Vec::new();
        let mut differs = |key: &'static str, changed: bool| {
            if changed {
                restart.push(key);
            }
        };
        differs("listen", old.listen != new.listen);
        differs("database", old.database != new.database);
        differs("postgres", old.postgres != new.postgres);
        differs("falkordb", old.falkordb != new.falkordb);
        differs("source", old.source != new.source);
        differs("max_connections", old.max_connections != new.max_connections);
        differs("header_timeout", old.header_timeout != new.header_timeout);
        differs("idle_timeout", old.idle_timeout != new.idle_timeout);
        if new.query_timeout != old.query_timeout {
            // Idle reading connections carry the old one (PostgreSQL's
            // statement_timeout): new ones are opened.
            *self.readers.timeout.lock() = new.query_timeout;
            self.readers.idle.lock().clear();
        }
        *self.config.lock() = Arc::new(new);
        restart
    }

    /// The NATS source's counters.
    pub fn nats_stats(&self) -> Arc<NatsStats> {
        Arc::clone(&self.nats)
    }

    /// 500 for a request that panicked, counted.
    fn panicked(&self, cause: &(dyn Any + Send)) -> Response {
        self.metrics.lock().panics += 1;
        internal_error(&panic_message(cause))
    }

    /// 500 for a blocking task that panicked or could not finish.
    fn join_failed(&self, e: tokio::task::JoinError) -> Response {
        if e.is_panic() {
            return self.panicked(&*e.into_panic());
        }
        internal_error(&e.to_string())
    }

    /// Remembers how the store answered a write, for `/health`.
    fn note_write(&self, error: Option<&crate::store::Error>) {
        *self.health.lock() = Some(Health {
            at: Instant::now(),
            problem: error.map(|e| format!("the store cannot take writes: {e}")),
        });
    }
}

/// `UP` while the store takes writes. A write (a batch or a probe) that
/// succeeded within the last second stands; otherwise one small write is
/// tried, waiting at most [`HEALTH_WAIT`] for the store.
async fn health(State(state): State<Arc<AppState>>) -> Response {
    let recent = state.health.lock().clone().filter(|h| h.at.elapsed() < HEALTH_CACHE);
    let problem = match recent {
        Some(h) => h.problem,
        None => {
            let task_state = Arc::clone(&state);
            let probe = tokio::task::spawn_blocking(move || {
                let result = task_state.writer.lock().probe_write(now_us());
                task_state.note_write(result.as_ref().err());
                result
            });
            match tokio::time::timeout(HEALTH_WAIT, probe).await {
                Ok(Ok(Ok(()))) => None,
                Ok(Ok(Err(e))) => Some(format!("the store cannot take writes: {e}")),
                Ok(Err(e)) => Some(format!("the health check failed: {e}")),
                Err(_) => Some(format!("the store did not answer within {} s", HEALTH_WAIT.as_secs())),
            }
        }
    };
    match problem {
        None => "UP".into_response(),
        Some(p) => (StatusCode::SERVICE_UNAVAILABLE, format!("DOWN: {p}")).into_response(),
    }
}

/// Runs a read query on a reading connection of its own, off the async
/// threads; 503 when the database fails or the query runs past
/// `query_timeout` (it is interrupted), 500 when it panics.
async fn read<T, Q>(state: &Arc<AppState>, q: Q) -> Response
where
    T: serde::Serialize + Send + 'static,
    Q: FnOnce(&Store) -> crate::store::Result<T> + Send + 'static,
{
    // The connection is taken (perhaps opened: a PostgreSQL client
    // blocks) on the blocking thread, which hands back what stops it.
    let interrupt: Arc<Lock<Option<crate::store::Interrupt>>> = Arc::default();
    let task_state = Arc::clone(state);
    let task_interrupt = Arc::clone(&interrupt);
    let task = tokio::task::spawn_blocking(move || {
        let store = task_state.readers.take().map_err(Unread::Open)?;
        *task_interrupt.lock() = Some(store.interrupt_handle());
        let result = q(&store);
        task_state.readers.give(store);
        result.map_err(Unread::Query)
    });
    let limit = state.config().query_timeout;
    let mut task = std::pin::pin!(task);
    let joined = match tokio::time::timeout(limit, task.as_mut()).await {
        Ok(j) => j,
        Err(_) => {
            if let Some(i) = interrupt.lock().take() {
                i.interrupt();
            }
            let _ = task.await;
            let message = format!(
                "the query ran longer than query_timeout ({}); narrow it (since_us, until_us, sensor)",
                net_gazer_common::duration::format_duration(limit)
            );
            return json_error(StatusCode::SERVICE_UNAVAILABLE, message);
        }
    };
    match joined {
        Ok(Ok(v)) => Json(v).into_response(),
        Ok(Err(e)) => json_error(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
        Err(e) => state.join_failed(e),
    }
}

/// Why a query was not answered.
enum Unread {
    Open(crate::store::Error),
    Query(crate::store::Error),
}

impl std::fmt::Display for Unread {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unread::Open(e) => write!(f, "opening the store: {e}"),
            Unread::Query(e) => write!(f, "{e}"),
        }
    }
}

async fn summary(State(state): State<Arc<AppState>>) -> Response {
    read(&state, |s| Ok(serde_json::json!({ "events": s.counts()? }))).await
}

async fn hosts(State(state): State<Arc<AppState>>, Query(f): Query<query::Filter>) -> Response {
    read(&state, move |s| query::hosts(s, &f)).await
}

async fn graph(State(state): State<Arc<AppState>>, Query(f): Query<query::Filter>) -> Response {
    read(&state, move |s| query::graph(s, &f)).await
}

async fn inbound(State(state): State<Arc<AppState>>, Query(f): Query<query::Filter>) -> Response {
    read(&state, move |s| query::inbound(s, &f)).await
}

async fn internal(State(state): State<Arc<AppState>>, Query(f): Query<query::Filter>) -> Response {
    read(&state, move |s| query::internal(s, &f)).await
}

async fn rtt(
    State(state): State<Arc<AppState>>,
    Query(f): Query<query::Filter>,
    Query(q): Query<query::Series>,
) -> Response {
    if let Some(Err(e)) = q.network.as_deref().map(str::parse::<query::Network>) {
        return json_error(StatusCode::BAD_REQUEST, e.to_string());
    }
    read(&state, move |s| query::rtt_series(s, &f, &q)).await
}

/// The sensors that have sent, with their configured location (the map's
/// origin).
async fn sensors(State(state): State<Arc<AppState>>) -> Response {
    let config = state.config();
    read(&state, move |s| {
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
    .await
}

async fn host(State(state): State<Arc<AppState>>, Path(ip): Path<String>, Query(f): Query<query::Filter>) -> Response {
    if ip.parse::<std::net::IpAddr>().is_err() {
        return json_error(StatusCode::BAD_REQUEST, format!("`{ip}` is not an IP address"));
    }
    read(&state, move |s| query::host(s, &ip, &f)).await
}
