//! The sensor's Prometheus endpoint (`[metrics] listen`): `GET /metrics`
//! answers the latest counters as Prometheus text. The capture loop
//! publishes a [`Stats`] snapshot about once a second; the plugin counters
//! are read when scraped. A plain thread on a std listener: one scrape at a
//! time, a few a minute, nothing to gain from more.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;

use net_gazer_common::sync::Lock;
use std::time::Duration;

use crate::event::Stats;
use crate::plugin::metrics::{Registry, Snapshot, BUCKETS_NS};

/// What the capture loop publishes and the endpoint reads.
#[derive(Clone, Default)]
pub struct Published {
    latest: Arc<Lock<Option<Stats>>>,
    /// Events waiting for the output thread (plugins, outputs), live.
    queued: Arc<std::sync::atomic::AtomicU64>,
}

impl Published {
    /// Published counters that follow `queued` (the pipeline's output queue).
    pub fn with_queue(queued: Arc<std::sync::atomic::AtomicU64>) -> Published {
        Published {
            latest: Arc::default(),
            queued,
        }
    }

    pub fn set(&self, stats: Stats) {
        *self.latest.lock() = Some(stats);
    }

    fn get(&self) -> Option<Stats> {
        self.latest.lock().clone()
    }
}

/// Scrapes answered at once; one more is answered 503 and closed.
const MAX_SCRAPES: usize = 4;
/// A scrape's request line and headers must arrive within this, and be
/// at most [`MAX_HEAD`] bytes: a client sending a byte at a time, or
/// without end, holds one slot for 5 s at most.
const HEAD_TIMEOUT: Duration = Duration::from_secs(5);
const MAX_HEAD: usize = 8 * 1024;

/// Binds `listen` and answers scrapes, each on a thread of its own (at most
/// [`MAX_SCRAPES`] at once); the address bound (port 0 picks one).
/// `spool`: the delivery spool directories (`[output.collector]`, `[output.nats]`), summed
/// (its contents are read per scrape).
pub fn serve(
    listen: SocketAddr,
    published: Published,
    plugins: Registry,
    spool: Vec<std::path::PathBuf>,
) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind(listen)?;
    let bound = listener.local_addr()?;
    let busy = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    std::thread::Builder::new().name("metrics".into()).spawn(move || {
        for mut conn in listener.incoming().flatten() {
            use std::sync::atomic::Ordering::SeqCst;
            if busy.fetch_add(1, SeqCst) >= MAX_SCRAPES {
                busy.fetch_sub(1, SeqCst);
                let _ = conn.set_write_timeout(Some(Duration::from_millis(100)));
                let _ = conn
                    .write_all(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
                continue;
            }
            let (published, plugins, spool, slot) =
                (published.clone(), plugins.clone(), spool.clone(), Arc::clone(&busy));
            let spawned = std::thread::Builder::new()
                .name("metrics-scrape".into())
                .spawn(move || {
                    if let Err(e) = answer(conn, &published, &plugins, &spool) {
                        tracing::debug!(error = %e, "metrics request failed");
                    }
                    slot.fetch_sub(1, SeqCst);
                });
            if spawned.is_err() {
                busy.fetch_sub(1, SeqCst);
            }
        }
    })?;
    Ok(bound)
}

/// Reads a request's line and headers: up to the empty line, at most
/// [`MAX_HEAD`] bytes, within [`HEAD_TIMEOUT`] in all.
fn read_head(conn: &mut TcpStream) -> std::io::Result<String> {
    let deadline = std::time::Instant::now() + HEAD_TIMEOUT;
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "request head too slow",
            ));
        }
        conn.set_read_timeout(Some(left))?;
        let n = conn.read(&mut buf)?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
        if head.windows(4).any(|w| w == b"\r\n\r\n") || head.windows(2).any(|w| w == b"\n\n") {
            break;
        }
        if head.len() > MAX_HEAD {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "request head too large",
            ));
        }
    }
    Ok(String::from_utf8_lossy(&head).into_owned())
}

fn answer(
    mut conn: TcpStream,
    published: &Published,
    plugins: &Registry,
    spool: &[std::path::PathBuf],
) -> std::io::Result<()> {
    conn.set_write_timeout(Some(HEAD_TIMEOUT))?;
    let head = read_head(&mut conn)?;
    let request = head.lines().next().unwrap_or("");
    let mut parts = request.split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let (status, content_type, body) = match (method, path.split('?').next().unwrap_or("")) {
        ("GET", "/metrics") => {
            let snapshots: Vec<(String, Snapshot)> =
                plugins.snapshot().into_iter().map(|(n, m)| (n, m.snapshot())).collect();
            let mut body = published
                .get()
                .map(|s| render(&s, &snapshots))
                .unwrap_or_else(|| render_plugins(&snapshots));
            let mut o = Out(String::new());
            o.one(
                "output_queue_events",
                "gauge",
                "Events waiting for the plugins and outputs.",
                published.queued.load(std::sync::atomic::Ordering::Relaxed),
            );
            body.push_str(&o.0);
            if !spool.is_empty() {
                let usage = spool.iter().map(|d| crate::output::delivery::spool_usage(d));
                let sum = usage.fold((0, 0, 0), |t, u| (t.0 + u.0, t.1 + u.1, t.2 + u.2));
                body.push_str(&render_spool(sum));
            }
            ("200 OK", "text/plain; version=0.0.4; charset=utf-8", body)
        }
        ("GET", _) => ("404 Not Found", "text/plain", "only /metrics here\n".to_string()),
        _ => ("405 Method Not Allowed", "text/plain", "GET only\n".to_string()),
    };
    write!(
        conn,
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    conn.flush()
}

/// A label value, escaped as the text format wants.
fn label(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

struct Out(String);

impl Out {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.0, "# HELP netgazer_{name} {help}");
        let _ = writeln!(self.0, "# TYPE netgazer_{name} {kind}");
    }

    fn value(&mut self, name: &str, labels: &[(&str, &str)], v: impl std::fmt::Display) {
        let _ = write!(self.0, "netgazer_{name}");
        if !labels.is_empty() {
            let l: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{}\"", label(v))).collect();
            let _ = write!(self.0, "{{{}}}", l.join(","));
        }
        let _ = writeln!(self.0, " {v}");
    }

    fn one(&mut self, name: &str, kind: &str, help: &str, v: impl std::fmt::Display) {
        self.family(name, kind, help);
        self.value(name, &[], v);
    }

    /// A sample only when the sensor has it (tracing, delivery, live).
    fn maybe(&mut self, name: &str, kind: &str, help: &str, v: Option<u64>) {
        if let Some(v) = v {
            self.one(name, kind, help, v);
        }
    }

    fn by(&mut self, name: &str, help: &str, key: &str, values: &BTreeMap<&'static str, u64>) {
        self.family(name, "counter", help);
        for (k, v) in values {
            self.value(name, &[(key, k)], v);
        }
    }
}

/// The whole exposition: the sensor's counters, then the plugins'.
pub fn render(s: &Stats, plugins: &[(String, Snapshot)]) -> String {
    let mut o = Out(String::new());
    o.one("packets_total", "counter", "Packets read from the capture.", s.packets);
    o.one("segments_total", "counter", "TCP segments decoded.", s.segments);
    o.maybe(
        "kernel_drops_total",
        "counter",
        "Packets the kernel dropped (buffer full).",
        s.kernel_drops,
    );
    o.maybe(
        "interface_drops_total",
        "counter",
        "Packets the interface or driver dropped.",
        s.interface_drops,
    );
    o.by(
        "decode_errors_total",
        "Truncated or malformed packets, by kind.",
        "kind",
        &s.decode_errors,
    );
    o.by(
        "ignored_total",
        "Packets that were not TCP, by reason.",
        "reason",
        &s.ignored,
    );
    o.one(
        "duplicates_total",
        "counter",
        "Packets captured twice, counted once.",
        s.duplicates,
    );
    o.by(
        "attempts_total",
        "Connection attempts decided, by outcome.",
        "outcome",
        &s.attempts,
    );
    o.one(
        "synack_without_syn_total",
        "counter",
        "SYN-ACKs that met no SYN.",
        s.synack_without_syn,
    );
    o.one(
        "late_synacks_total",
        "counter",
        "SYN-ACKs after their attempt was reported unanswered.",
        s.late_synacks,
    );
    o.one(
        "table_entries",
        "gauge",
        "Pending attempts and flows tracked.",
        s.table_size,
    );
    o.one(
        "table_peak_entries",
        "gauge",
        "Largest table size so far.",
        s.table_peak,
    );
    o.one(
        "evictions_total",
        "counter",
        "Entries pushed out of the full table.",
        s.evictions,
    );
    o.one("flows_total", "counter", "Flow events (quality mode).", s.flows);
    o.one("scans_total", "counter", "Scans detected.", s.scans);
    o.one(
        "queue_drops_total",
        "counter",
        "Events lost because an output could not keep up.",
        s.queue_drops,
    );
    o.one(
        "trace_probe_segments_total",
        "counter",
        "TCP segments of the sensor's own probes, left out.",
        s.trace_probes,
    );
    o.maybe("trace_routes_total", "counter", "Traces finished.", s.routes);
    o.maybe(
        "trace_probes_sent_total",
        "counter",
        "Traceroute probes sent.",
        s.probes_sent,
    );
    o.maybe(
        "delivered_total",
        "counter",
        "Events the collector stored.",
        s.delivered,
    );
    o.maybe(
        "delivery_retries_total",
        "counter",
        "Batches sent again after a failure.",
        s.delivery_retries,
    );
    o.maybe(
        "spool_dropped_total",
        "counter",
        "Events dropped from the full spool.",
        s.spool_dropped,
    );
    o.maybe(
        "delivery_rejected_total",
        "counter",
        "Events in batches the collector refused.",
        s.delivery_rejected,
    );
    o.0.push_str(&render_plugins(plugins));
    o.0
}

/// The delivery spool: (batches, events, bytes) waiting for the collector.
pub fn render_spool((batches, events, bytes): (u64, u64, u64)) -> String {
    let mut o = Out(String::new());
    o.one(
        "spool_batches",
        "gauge",
        "Batches waiting in the delivery spool.",
        batches,
    );
    o.one("spool_events", "gauge", "Events waiting in the delivery spool.", events);
    o.one("spool_bytes", "gauge", "Size of the delivery spool.", bytes);
    o.0
}

/// A per-plugin counter: name, help, and where it is in a snapshot.
type Counter = (&'static str, &'static str, fn(&Snapshot) -> u64);

/// The plugins' counters, time per event histogram and memory.
pub fn render_plugins(plugins: &[(String, Snapshot)]) -> String {
    let mut o = Out(String::new());
    let counters: [Counter; 12] = [
        ("plugin_calls_total", "Calls into the plugin.", |p| p.calls),
        ("plugin_events_total", "Events the plugin was given.", |p| p.events),
        ("plugin_errors_total", "Failed calls of any kind.", |p| p.errors),
        ("plugin_traps_total", "Calls that trapped.", |p| p.traps),
        ("plugin_timeouts_total", "Calls over the plugin's time limit.", |p| {
            p.timeouts
        }),
        (
            "plugin_out_of_memory_total",
            "Calls over the plugin's memory limit.",
            |p| p.out_of_memory,
        ),
        ("plugin_dropped_total", "Events the plugin dropped.", |p| p.dropped),
        ("plugin_tagged_total", "Events the plugin tagged.", |p| p.tagged),
        ("plugin_restarts_total", "Fresh instances after a failure.", |p| {
            p.restarts
        }),
        (
            "plugin_disabled_total",
            "Times the plugin was disabled after repeated failures.",
            |p| p.disabled,
        ),
        ("plugin_skipped_total", "Events passed unseen while disabled.", |p| {
            p.skipped
        }),
        (
            "plugin_export_dropped_total",
            "Events an exporter did not get: its queue was full, or it did not finish in time at a stop.",
            |p| p.export_dropped,
        ),
    ];
    for (name, help, get) in counters {
        o.family(name, "counter", help);
        for (plugin, p) in plugins {
            o.value(name, &[("plugin", plugin)], get(p));
        }
    }
    o.family("plugin_event_seconds", "histogram", "Time per event of each call.");
    for (plugin, p) in plugins {
        let mut cumulative = 0;
        for (i, n) in p.histogram.iter().enumerate() {
            cumulative += n;
            let le = BUCKETS_NS
                .get(i)
                .map_or("+Inf".to_string(), |ns| format!("{}", *ns as f64 / 1e9));
            o.value(
                "plugin_event_seconds_bucket",
                &[("plugin", plugin), ("le", &le)],
                cumulative,
            );
        }
        let seconds = p.busy_ns as f64 / 1e9;
        o.value("plugin_event_seconds_sum", &[("plugin", plugin)], seconds);
        o.value("plugin_event_seconds_count", &[("plugin", plugin)], p.calls);
    }
    o.family("plugin_memory_bytes", "gauge", "Largest linear memory of the plugin.");
    for (plugin, p) in plugins {
        o.value("plugin_memory_bytes", &[("plugin", plugin)], p.memory_bytes);
    }
    o.family("plugin_custom", "gauge", "Counters and gauges the plugin set itself.");
    for (plugin, p) in plugins {
        for (name, v) in &p.custom {
            o.value("plugin_custom", &[("plugin", plugin), ("name", name)], v);
        }
    }
    o.0
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every counter of the stats event (the schema's `stats` record) is
    /// exported: `render` reads each field (`s.<field>`), but the instant.
    #[test]
    fn every_stats_field_is_exported() {
        let source = include_str!("metrics.rs");
        let render = source.split("pub fn render(").nth(1).unwrap_or("");
        let render = render.split("\npub fn ").next().unwrap_or("");
        let missing: Vec<&str> = Stats::FIELDS
            .iter()
            .map(|f| f.name)
            .filter(|n| !matches!(*n, "ts" | "ts_us"))
            .filter(|n| !render.contains(&format!("s.{n},")) && !render.contains(&format!("s.{n})")))
            .collect();
        assert!(missing.is_empty(), "stats fields without a metric: {missing:?}");
    }

    fn scrape(addr: SocketAddr) -> String {
        let mut c = TcpStream::connect(addr).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        c.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        let mut out = String::new();
        let _ = c.read_to_string(&mut out);
        out
    }

    /// Clients that send nothing (or a byte at a time) hold a slot for the
    /// head timeout at most; beyond the slots, 503 at once; scrapes go on.
    #[test]
    fn slow_clients_are_bounded_and_scrapes_go_on() {
        let addr = serve(
            "127.0.0.1:0".parse().unwrap(),
            Published::default(),
            Registry::default(),
            Vec::new(),
        )
        .unwrap();
        assert!(scrape(addr).starts_with("HTTP/1.1 200 OK"));
        let mut slow: Vec<TcpStream> = (0..MAX_SCRAPES).map(|_| TcpStream::connect(addr).unwrap()).collect();
        for s in &mut slow {
            s.write_all(b"GET /met").unwrap();
        }
        // Once the server has taken them all (waiting for that, not for a
        // guessed time: the tests run side by side on a loaded machine),
        // the next scrape is refused at once.
        let taking = std::time::Instant::now();
        loop {
            let answer = scrape(addr);
            if answer.starts_with("HTTP/1.1 503") {
                break;
            }
            assert!(taking.elapsed() < Duration::from_secs(10), "every slot taken: {answer}");
            std::thread::sleep(Duration::from_millis(50));
        }
        let started = std::time::Instant::now();
        for s in &mut slow {
            s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
            let mut b = [0u8; 64];
            // Closed by the server once HEAD_TIMEOUT passed.
            assert!(matches!(s.read(&mut b), Ok(0) | Err(_)));
        }
        assert!(started.elapsed() < Duration::from_secs(15));
        assert!(scrape(addr).starts_with("HTTP/1.1 200 OK"), "slots free again");
    }

    #[test]
    fn the_text_format_with_labels_escaped() {
        let stats = Stats {
            packets: 42,
            attempts: [("established", 3)].into(),
            kernel_drops: Some(1),
            ..Stats::default()
        };
        let p = Snapshot {
            calls: 2,
            busy_ns: 3_000,
            histogram: vec![1, 1, 0, 0, 0, 0, 0, 0, 0],
            custom: [("hits".to_string(), 5.0)].into(),
            ..Snapshot::default()
        };
        let text = render(&stats, &[("we\"ird".into(), p)]);
        assert!(text.contains("netgazer_packets_total 42\n"), "{text}");
        assert!(text.contains("netgazer_attempts_total{outcome=\"established\"} 3\n"));
        assert!(text.contains("netgazer_kernel_drops_total 1\n"));
        assert!(!text.contains("netgazer_trace_routes_total"), "absent when not tracing");
        assert!(text.contains("netgazer_plugin_calls_total{plugin=\"we\\\"ird\"} 2\n"));
        assert!(text.contains("netgazer_plugin_event_seconds_bucket{plugin=\"we\\\"ird\",le=\"0.000001\"} 2\n"));
        assert!(text.contains("netgazer_plugin_event_seconds_bucket{plugin=\"we\\\"ird\",le=\"+Inf\"} 2\n"));
        assert!(text.contains("netgazer_plugin_custom{plugin=\"we\\\"ird\",name=\"hits\"} 5\n"));
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("00000000000000000001-20.json.gz"), [0u8; 100]).unwrap();
        std::fs::write(dir.path().join("00000000000000000021-5.json.gz"), [0u8; 50]).unwrap();
        std::fs::write(dir.path().join("next-seq"), b"1000").unwrap();
        let spool = render_spool(crate::output::delivery::spool_usage(dir.path()));
        assert!(spool.contains("netgazer_spool_batches 2\n"), "{spool}");
        assert!(spool.contains("netgazer_spool_events 25\n"), "{spool}");
        assert!(spool.contains("netgazer_spool_bytes 150\n"), "{spool}");
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let value = line.rsplit(' ').next().unwrap_or("");
            assert!(value.parse::<f64>().is_ok(), "a number ends every sample: {line}");
        }
    }
}
