//! `net-gazer-collector`: receives, stores and serves the events of
//! net-gazer sensors (see the library's documentation and
//! docs/collector-api.md).

use std::process::ExitCode;

use anyhow::Context;

use net_gazer_collector::cli::Cli;
use net_gazer_collector::config::Config;
use net_gazer_collector::server;
use net_gazer_collector::store::Store;

/// How often the WAL is checkpointed (off the ingest connection).
const CHECKPOINT_EVERY: std::time::Duration = std::time::Duration::from_millis(250);

fn main() -> ExitCode {
    let cli: Cli = net_gazer_common::exit::parse_args();
    net_gazer_common::logging::init(cli.verbose);
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => net_gazer_common::exit::report("net-gazer-collector", &e),
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let (mut config, path) = Config::load(cli.config.as_deref())?;
    if let Some(l) = cli.listen {
        config.listen = l;
    }
    if let Some(d) = cli.database {
        config.database = d;
    }
    match &path {
        Some(p) => tracing::info!(file = %p.display(), "configuration loaded"),
        None => tracing::info!("no configuration file found; using defaults"),
    }
    if config.sensors.is_empty() && config.source.nats.is_none() {
        tracing::warn!("no [sensors.<id>] table: every batch will be refused (401)");
    }
    let at = config.store();
    if let Some(net_gazer_collector::cli::Command::Migrate { from }) = &cli.command {
        return net_gazer_collector::migrate::run(from, &at);
    }
    let store = Store::open_ingest(&at).with_context(|| format!("opening the store {at}"))?;
    if config.postgres.is_none() {
        net_gazer_collector::store::spawn_checkpointer(&config.database, CHECKPOINT_EVERY)
            .context("starting the WAL checkpoint thread")?;
    }
    // Read by the retention thread each round: a reload (SIGHUP) changes it.
    let retention_days = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(config.retention_days));
    spawn_retention(&config, std::sync::Arc::clone(&retention_days))?;
    let graph_stats = std::sync::Arc::new(net_gazer_collector::graphdb::GraphStats::default());
    if let Some(f) = config.falkordb.clone() {
        use net_gazer_collector::graphdb::Source;
        let store = match Store::open(&at).with_context(|| format!("opening the store {at}"))? {
            Store::Sqlite(s) => Source::Sqlite(s),
            Store::Postgres(p) => Source::Postgres(p),
        };
        tracing::info!(url = %f.url, graph = %f.graph, "writing traced paths to FalkorDB");
        net_gazer_collector::graphdb::spawn(f, store, std::sync::Arc::clone(&graph_stats))
            .context("starting the FalkorDB thread")?;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("listening on {}", config.listen))?;
        tracing::info!(listen = %config.listen, store = %config.store(), "listening");
        let bound = listener.local_addr()?;
        // Tests and scripts wait for this line on standard error.
        eprintln!("net-gazer-collector: listening on {bound}");
        // systemd (Type=notify): ready now; the watchdog is fed only while
        // the server answers its own GET /health. Nothing outside systemd.
        let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Ready]);
        let mut usec = 0;
        if sd_notify::watchdog_enabled(false, &mut usec) && usec > 0 {
            tokio::spawn(watchdog(bound, std::time::Duration::from_micros(usec / 2)));
        }
        let limits = server::listen::Limits {
            max_connections: config.max_connections,
            header_timeout: config.header_timeout,
            idle_timeout: config.idle_timeout,
        };
        let connections = std::sync::Arc::new(server::listen::ConnectionStats::default());
        let nats = config.source.nats.clone();
        let state = server::state(config, store, graph_stats, std::sync::Arc::clone(&connections));
        tokio::spawn(reload_on_hangup(path, std::sync::Arc::clone(&state), retention_days));
        if let Some(n) = nats {
            tokio::spawn(net_gazer_collector::source::nats::run(n, std::sync::Arc::clone(&state)));
        }
        let app = server::router(state);
        server::listen::serve(listener, app, limits, connections, shutdown())
            .await
            .context("serving")
    })
}

/// On SIGHUP (systemd's `reload`, logrotate's convention), reads the
/// configuration file again and puts it in force (the sensors and their
/// tokens, locations, limits read per request, `retention_days`); keys
/// that need a restart are named in a warning. A file with an error is
/// logged and changes nothing.
async fn reload_on_hangup(
    path: Option<std::path::PathBuf>,
    state: std::sync::Arc<server::AppState>,
    retention_days: std::sync::Arc<std::sync::atomic::AtomicU32>,
) {
    let Ok(mut hangups) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) else {
        tracing::warn!("cannot watch for SIGHUP: reload by restarting");
        return;
    };
    while hangups.recv().await.is_some() {
        let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Reloading]);
        match Config::load(path.as_deref()) {
            Ok((mut new, _)) => {
                // What the command line set stays set.
                let old = state.config();
                new.listen = old.listen;
                new.database = old.database.clone();
                retention_days.store(new.retention_days, std::sync::atomic::Ordering::Relaxed);
                let sensors = new.sensors.len();
                // Off the async threads: a reload may close reading
                // connections (a PostgreSQL client blocks to close).
                let task_state = std::sync::Arc::clone(&state);
                let restart = tokio::task::spawn_blocking(move || task_state.reload(new))
                    .await
                    .unwrap_or_default();
                tracing::info!(sensors, "configuration reloaded");
                if !restart.is_empty() {
                    tracing::warn!(keys = ?restart, "changed keys that take effect at the next start only");
                }
            }
            Err(e) => tracing::error!(error = %e, "configuration not reloaded; the one in force stays"),
        }
        let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Ready]);
    }
}

/// Pings systemd's watchdog each `every` while `GET /health` on our own
/// address answers `UP`.
async fn watchdog(addr: std::net::SocketAddr, every: std::time::Duration) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tick = tokio::time::interval(every);
    loop {
        tick.tick().await;
        let check = async {
            let mut conn = tokio::net::TcpStream::connect(addr).await?;
            conn.write_all(b"GET /health HTTP/1.0\r\nHost: localhost\r\n\r\n")
                .await?;
            let mut answer = Vec::new();
            conn.read_to_end(&mut answer).await?;
            Ok::<bool, std::io::Error>(answer.ends_with(b"UP"))
        };
        match tokio::time::timeout(every, check).await {
            Ok(Ok(true)) => {
                let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Watchdog]);
            }
            other => tracing::warn!(result = ?other, "watchdog: GET /health failed; not pinging systemd"),
        }
    }
}

async fn shutdown() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => return std::future::pending().await,
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    tracing::info!("stopping");
    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Stopping]);
}

/// Deletes events older than `retention_days` (as it is at each round: a
/// reload changes it; 0 keeps everything), at start and every hour, on a
/// connection of its own.
fn spawn_retention(config: &Config, days: std::sync::Arc<std::sync::atomic::AtomicU32>) -> anyhow::Result<()> {
    let at = config.store();
    let mut store = Store::open(&at).with_context(|| format!("opening the store {at}"))?;
    std::thread::Builder::new()
        .name("retention".into())
        .spawn(move || loop {
            let days = days.load(std::sync::atomic::Ordering::Relaxed);
            if days > 0 {
                let keep = std::time::Duration::from_secs(u64::from(days) * 86_400);
                let cutoff = std::time::SystemTime::now()
                    .checked_sub(keep)
                    .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                    .map_or(0, |d| d.as_micros() as i64);
                match store.expire(cutoff) {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(deleted = n, "retention: old events deleted"),
                    Err(e) => tracing::error!(error = %e, "retention failed"),
                }
            }
            std::thread::sleep(std::time::Duration::from_secs(3600));
        })
        .context("starting the retention thread")?;
    Ok(())
}
