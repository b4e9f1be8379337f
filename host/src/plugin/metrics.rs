//! Per-plugin statistics, shared between the thread that runs the chain and
//! whoever reports them (the periodic stats, later the metrics endpoint).
//! They outlive reloads: a plugin's counters continue under the same name.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use net_gazer_common::sync::Lock;
use std::time::Duration;

/// Upper bounds of the call-time histogram buckets, in nanoseconds (the
/// last bucket is everything above).
pub const BUCKETS_NS: [u64; 8] = [500, 1_000, 2_000, 5_000, 10_000, 100_000, 1_000_000, 10_000_000];

/// Named counters and gauges a plugin may create (more are ignored).
const MAX_CUSTOM: usize = 64;

/// The calls of one run of a plugin over a batch, counted without atomics
/// (a few per call add up at a few hundred ns per call) and added to the
/// shared [`PluginMetrics`] once.
#[derive(Debug, Default)]
pub struct CallStats {
    calls: u64,
    events: u64,
    busy_ns: u64,
    dropped: u64,
    histogram: [u64; BUCKETS_NS.len() + 1],
}

impl CallStats {
    /// One call for `events` events that took `took`.
    pub fn call(&mut self, events: u64, took: Duration) {
        let ns = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        self.calls += 1;
        self.events += events;
        self.busy_ns += ns;
        let per_event = ns / events.max(1);
        let bucket = BUCKETS_NS
            .iter()
            .position(|&b| per_event <= b)
            .unwrap_or(BUCKETS_NS.len());
        self.histogram[bucket] += 1;
    }

    /// An event the plugin dropped.
    pub fn dropped(&mut self) {
        self.dropped += 1;
    }
}

#[derive(Debug, Default)]
pub struct PluginMetrics {
    pub calls: AtomicU64,
    pub events: AtomicU64,
    /// Failed calls of any kind (the sum of the three below and `bad_results`).
    pub errors: AtomicU64,
    pub traps: AtomicU64,
    pub timeouts: AtomicU64,
    pub out_of_memory: AtomicU64,
    /// Results the host refused (wrong number of verdicts, bad tags).
    pub bad_results: AtomicU64,
    pub dropped: AtomicU64,
    /// Events dropped because the plugin failed on them or was disabled and
    /// its `on_error` is `drop` (fail closed).
    pub dropped_on_error: AtomicU64,
    pub tagged: AtomicU64,
    pub restarts: AtomicU64,
    pub disabled: AtomicU64,
    /// Events that passed (or were dropped, fail-closed) unseen while the
    /// plugin was disabled.
    pub skipped: AtomicU64,
    /// Exporters: events not exported because the queue was full, or left
    /// in it when the exporter did not finish in time at a stop or reload.
    pub export_dropped: AtomicU64,
    pub busy_ns: AtomicU64,
    pub histogram: [AtomicU64; BUCKETS_NS.len() + 1],
    /// Largest linear memory, bytes.
    pub memory_bytes: AtomicU64,
    pub custom: Lock<BTreeMap<String, f64>>,
}

impl PluginMetrics {
    /// Adds what one run of the plugin over a batch counted.
    pub fn add(&self, calls: &CallStats) {
        if calls.calls == 0 && calls.dropped == 0 {
            return;
        }
        self.calls.fetch_add(calls.calls, Ordering::Relaxed);
        self.events.fetch_add(calls.events, Ordering::Relaxed);
        self.busy_ns.fetch_add(calls.busy_ns, Ordering::Relaxed);
        self.dropped.fetch_add(calls.dropped, Ordering::Relaxed);
        for (bucket, n) in self.histogram.iter().zip(calls.histogram) {
            if n > 0 {
                bucket.fetch_add(n, Ordering::Relaxed);
            }
        }
    }

    pub fn counter_add(&self, name: &str, delta: u64) {
        self.custom_update(name, |v| *v += delta as f64);
    }

    pub fn gauge_set(&self, name: &str, value: f64) {
        self.custom_update(name, |v| *v = value);
    }

    fn custom_update(&self, name: &str, f: impl FnOnce(&mut f64)) {
        let mut custom = self.custom.lock();
        if let Some(v) = custom.get_mut(name) {
            f(v);
        } else if custom.len() < MAX_CUSTOM && name.len() <= 64 {
            let mut v = 0.0;
            f(&mut v);
            custom.insert(name.to_string(), v);
        }
    }

    pub fn snapshot(&self) -> Snapshot {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        Snapshot {
            calls: g(&self.calls),
            events: g(&self.events),
            errors: g(&self.errors),
            traps: g(&self.traps),
            timeouts: g(&self.timeouts),
            out_of_memory: g(&self.out_of_memory),
            bad_results: g(&self.bad_results),
            dropped: g(&self.dropped),
            dropped_on_error: g(&self.dropped_on_error),
            tagged: g(&self.tagged),
            restarts: g(&self.restarts),
            disabled: g(&self.disabled),
            skipped: g(&self.skipped),
            export_dropped: g(&self.export_dropped),
            busy_ns: g(&self.busy_ns),
            histogram: self.histogram.iter().map(g).collect(),
            memory_bytes: g(&self.memory_bytes),
            custom: self.custom.lock().clone(),
        }
    }

    /// One line for the periodic stats log.
    pub fn summary(&self) -> String {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let events = g(&self.events);
        let avg = g(&self.busy_ns).checked_div(events).unwrap_or(0);
        let mut line = format!(
            "events={events} calls={} avg_ns_per_event={avg} dropped={} dropped_on_error={} tagged={} errors={} traps={} timeouts={} oom={} bad_results={} restarts={} disabled={} skipped={} export_dropped={} memory_kb={}",
            g(&self.calls),
            g(&self.dropped),
            g(&self.dropped_on_error),
            g(&self.tagged),
            g(&self.errors),
            g(&self.traps),
            g(&self.timeouts),
            g(&self.out_of_memory),
            g(&self.bad_results),
            g(&self.restarts),
            g(&self.disabled),
            g(&self.skipped),
            g(&self.export_dropped),
            g(&self.memory_bytes) / 1024,
        );
        for (k, v) in self.custom.lock().iter() {
            line.push_str(&format!(" {k}={v}"));
        }
        line
    }
}

/// The counters at one moment (for summaries and, later, the metrics
/// endpoint); field meanings as in [`PluginMetrics`].
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Snapshot {
    pub calls: u64,
    pub events: u64,
    pub errors: u64,
    pub traps: u64,
    pub timeouts: u64,
    pub out_of_memory: u64,
    pub bad_results: u64,
    pub dropped: u64,
    pub dropped_on_error: u64,
    pub tagged: u64,
    pub restarts: u64,
    pub disabled: u64,
    pub skipped: u64,
    pub export_dropped: u64,
    pub busy_ns: u64,
    /// Calls by time per event, buckets bounded by [`BUCKETS_NS`].
    pub histogram: Vec<u64>,
    pub memory_bytes: u64,
    pub custom: BTreeMap<String, f64>,
}

/// Every plugin's metrics by name, across reloads.
#[derive(Clone, Debug, Default)]
pub struct Registry {
    inner: Arc<Lock<BTreeMap<String, Arc<PluginMetrics>>>>,
}

impl Registry {
    pub fn get(&self, name: &str) -> Arc<PluginMetrics> {
        self.inner.lock().entry(name.to_string()).or_default().clone()
    }

    /// Drops the metrics of a plugin that never ran (refused at load).
    pub fn forget(&self, name: &str) {
        self.inner.lock().remove(name);
    }

    pub fn snapshot(&self) -> Vec<(String, Arc<PluginMetrics>)> {
        self.inner.lock().iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    }
}
