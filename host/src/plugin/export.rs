//! Exporters: plugins that get the events which passed the chain, each on
//! a thread of its own with a bounded queue, so a slow or hung exporter
//! (an HTTP endpoint that does not answer) never delays capture, the
//! filters or the outputs. When its queue is full the events are not
//! queued and are counted (`export_dropped`, one WARN line per interval);
//! at a stop or a reload the exporter gets its last events and a last
//! `on-tick` to flush, within a bounded time, and what it did not take by
//! then is counted the same way.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::metrics::PluginMetrics;
use super::supervise::Running;
use crate::event::Tagged;
use crate::time::Timestamp;

/// Events an exporter's queue holds at most.
pub const QUEUE_EVENTS: u64 = 100_000;
/// Messages (batches, ticks) it holds at most, whatever their size.
const QUEUE_MESSAGES: usize = 4096;
/// How often a full queue is logged at most.
const DROP_LOG_INTERVAL: Duration = Duration::from_secs(10);
/// How long an exporter may take to finish at a stop or a reload (its
/// thread is left to end on its own after that, and what it did not take
/// is counted).
pub const STOP_WAIT: Duration = Duration::from_secs(5);

enum Msg {
    Events(Vec<Tagged>),
    Tick(Timestamp),
    Stop,
}

/// Events in and out of the queue.
#[derive(Default)]
struct Counts {
    queued: AtomicU64,
    /// Handed to the plugin (counted when the call starts).
    taken: AtomicU64,
    /// Done with (counted when the call returns).
    finished: AtomicU64,
    /// The stop's time ran out: what is still queued was counted as
    /// dropped and is not given to the plugin any more.
    cancelled: std::sync::atomic::AtomicBool,
}

impl Counts {
    fn waiting(&self) -> u64 {
        self.queued
            .load(Ordering::Relaxed)
            .saturating_sub(self.taken.load(Ordering::Relaxed))
    }
}

/// One exporter, seen from the output thread.
pub struct Lane {
    name: String,
    tx: SyncSender<Msg>,
    done: Receiver<()>,
    metrics: Arc<PluginMetrics>,
    counts: Arc<Counts>,
    dropped_since_log: u64,
    last_log: Option<Instant>,
}

impl Lane {
    /// Starts the exporter's thread.
    pub fn spawn(mut running: Running) -> std::io::Result<Lane> {
        let name = running.name().to_string();
        let metrics = Arc::clone(&running.metrics);
        let counts = Arc::new(Counts::default());
        let (tx, rx) = mpsc::sync_channel::<Msg>(QUEUE_MESSAGES);
        let (done_tx, done) = mpsc::channel();
        let thread_counts = Arc::clone(&counts);
        std::thread::Builder::new()
            .name(format!("ng-export-{name}"))
            .spawn(move || {
                loop {
                    match rx.recv_timeout(Duration::from_secs(1)) {
                        Ok(Msg::Events(mut items)) => {
                            if thread_counts.cancelled.load(Ordering::Relaxed) {
                                continue;
                            }
                            let n = items.len() as u64;
                            thread_counts.taken.fetch_add(n, Ordering::Relaxed);
                            running.run_all(&mut items);
                            thread_counts.finished.fetch_add(n, Ordering::Relaxed);
                        }
                        Ok(Msg::Tick(now)) => running.tick(now),
                        Ok(Msg::Stop) | Err(RecvTimeoutError::Disconnected) => {
                            running.tick(crate::clock::now());
                            break;
                        }
                        Err(RecvTimeoutError::Timeout) => {}
                    }
                }
                let _ = done_tx.send(());
            })?;
        Ok(Lane {
            name,
            tx,
            done,
            metrics,
            counts,
            dropped_since_log: 0,
            last_log: None,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Queues a copy of `items` (but stats, which plugins do not get), or
    /// counts them when the queue is full (without copying them).
    pub fn send(&mut self, items: &[Tagged]) {
        let exported = |t: &&Tagged| !matches!(t.event, crate::event::Event::Stats(_));
        let n = items.iter().filter(exported).count() as u64;
        if n == 0 {
            return;
        }
        if self.counts.waiting().saturating_add(n) > QUEUE_EVENTS {
            self.dropped(n);
            return;
        }
        // Counted before it can be taken, so `waiting` never goes below.
        self.counts.queued.fetch_add(n, Ordering::Relaxed);
        let copy: Vec<Tagged> = items.iter().filter(exported).cloned().collect();
        if let Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) = self.tx.try_send(Msg::Events(copy)) {
            self.counts.queued.fetch_sub(n, Ordering::Relaxed);
            self.dropped(n);
        }
    }

    fn dropped(&mut self, n: u64) {
        self.metrics.export_dropped.fetch_add(n, Ordering::Relaxed);
        self.dropped_since_log += n;
        let now = Instant::now();
        if self.last_log.is_none_or(|t| now.duration_since(t) >= DROP_LOG_INTERVAL) {
            tracing::warn!(
                plugin = %self.name,
                dropped = self.dropped_since_log,
                "exporter queue full: events not exported (the exporter is slower than the events; see export_dropped)"
            );
            self.last_log = Some(now);
            self.dropped_since_log = 0;
        }
    }

    /// `on-tick` for the exporter (skipped when its queue is full: it is
    /// busy, and gets the next one).
    pub fn tick(&mut self, now: Timestamp) {
        let _ = self.tx.try_send(Msg::Tick(now));
    }

    /// Lets the exporter take what is queued and flush, waiting at most
    /// `wait`; what it did not take by then is counted as dropped.
    pub fn stop(self, wait: Duration) {
        let deadline = Instant::now() + wait;
        let mut stop = Msg::Stop;
        loop {
            match self.tx.try_send(stop) {
                Ok(()) | Err(TrySendError::Disconnected(_)) => break,
                Err(TrySendError::Full(m)) if Instant::now() < deadline => {
                    stop = m;
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(TrySendError::Full(_)) => break,
            }
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if self.done.recv_timeout(left).is_err() {
            // Nothing queued is handed over any more; what was not done
            // with, the batch in the plugin's hands included, is counted.
            self.counts.cancelled.store(true, Ordering::Relaxed);
            let c = &self.counts;
            let not_done = c
                .queued
                .load(Ordering::Relaxed)
                .saturating_sub(c.finished.load(Ordering::Relaxed));
            let in_flight = c
                .taken
                .load(Ordering::Relaxed)
                .saturating_sub(c.finished.load(Ordering::Relaxed));
            self.metrics.export_dropped.fetch_add(not_done, Ordering::Relaxed);
            tracing::warn!(
                plugin = %self.name,
                not_exported = not_done,
                in_flight,
                "exporter did not finish within {} ms; its thread ends on its own",
                wait.as_millis()
            );
        }
    }
}
