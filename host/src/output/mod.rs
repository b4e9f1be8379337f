//! outputs: where events leave the process.
//!
//! Outputs run on their own thread behind a bounded queue ([`EventQueue`]):
//! live capture never waits for a slow output; an event that does not fit
//! is dropped and counted. Replay waits instead, so it loses nothing.
//! Events cross to the output thread in batches (one wake-up per batch, not
//! per event); the capture side sends a partial batch whenever it flushes.
//! On that thread a [`Stage`] (the plugin chain) sees each batch before the
//! outputs do, and may tag or drop events.

pub mod delivery;
pub mod json;
pub mod jsonl;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::Arc;
use std::thread::JoinHandle;

pub use jsonl::JsonLines;

use crate::event::{Event, Tagged};
use crate::time::Timestamp;

/// A destination for events.
pub trait Output: Send {
    fn name(&self) -> &str;
    fn write(&mut self, item: &Tagged) -> std::io::Result<()>;
    fn flush(&mut self) -> std::io::Result<()>;
}

/// Work on the output thread between the queue and the outputs.
pub trait Stage: Send {
    /// Tags or removes events of one batch, keeping the order of the rest.
    fn process(&mut self, batch: &mut Vec<Tagged>);
    /// About once a second, and when the queue is idle.
    fn tick(&mut self, _now: Timestamp) {}
    /// Something changed outside the event stream (a reloaded plugin chain
    /// arrived): act on it now rather than at the next batch or tick.
    fn wake(&mut self) {}
    /// The queue closed: last work before the outputs flush.
    fn finish(&mut self) {}
}

/// What crosses to the output thread.
enum Msg {
    Batch(Vec<Event>),
    Wake,
}

/// Wakes the output thread's [`Stage`] (see [`Stage::wake`]).
#[derive(Clone)]
pub struct Waker(SyncSender<Msg>);

impl Waker {
    pub fn wake(&self) {
        // A full queue means the thread is busy and sees the change at its
        // next batch anyway.
        let _ = self.0.try_send(Msg::Wake);
    }
}

/// No work: events go straight to the outputs.
pub struct Passthrough;

impl Stage for Passthrough {
    fn process(&mut self, _batch: &mut Vec<Tagged>) {}
}

/// How long written events may wait in an output's buffer.
const FLUSH_AFTER: std::time::Duration = std::time::Duration::from_millis(200);
/// How often the stage's `tick` runs.
const TICK_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// What to do when the queue is full.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backpressure {
    /// Drop the event and count it (live capture).
    Drop,
    /// Wait for room (replay).
    Wait,
    /// Wait for room until then, and drop (and count) after (the final
    /// flush of a stop: [`EventQueue::finish_by`]).
    Until(std::time::Instant),
}

/// Events per batch handed to the output thread.
const BATCH: usize = 256;

/// Sends `msg`, waiting for room until `deadline`; false when the time ran
/// out or the output thread is gone. (std's bounded channel has no timed
/// send: short sleeps, only ever at a stop.)
fn send_until(tx: &SyncSender<Msg>, mut msg: Msg, deadline: std::time::Instant) -> bool {
    let mut pause = std::time::Duration::from_micros(50);
    loop {
        match tx.try_send(msg) {
            Ok(()) => return true,
            Err(TrySendError::Disconnected(_)) => return false,
            Err(TrySendError::Full(m)) => {
                if std::time::Instant::now() >= deadline {
                    return false;
                }
                msg = m;
                std::thread::sleep(pause);
                pause = (pause * 2).min(std::time::Duration::from_millis(2));
            }
        }
    }
}

/// The sending end, owned by the capture thread.
pub struct EventQueue {
    tx: SyncSender<Msg>,
    batch: Vec<Event>,
    drops: Arc<AtomicU64>,
    /// Events handed over and not yet taken by the output thread.
    queued: Arc<AtomicU64>,
    policy: Backpressure,
}

impl EventQueue {
    /// Starts the output thread: each batch goes through `stage`, then to
    /// each output in turn; `capacity` events may wait for it.
    pub fn spawn(
        outputs: Vec<Box<dyn Output>>,
        stage: Box<dyn Stage>,
        capacity: usize,
        policy: Backpressure,
    ) -> (EventQueue, OutputThread) {
        let (tx, rx) = mpsc::sync_channel(capacity.div_ceil(BATCH));
        let queued = Arc::new(AtomicU64::new(0));
        let taken = Arc::clone(&queued);
        let abandon = Arc::new(AtomicBool::new(false));
        let give_up = Arc::clone(&abandon);
        let (done_tx, done_rx) = mpsc::sync_channel(1);
        let handle = std::thread::Builder::new()
            .name("ng-output".into())
            .spawn(move || {
                let report = write_all(rx, stage, outputs, &taken, &give_up);
                let _ = done_tx.send(());
                report
            })
            .ok();
        (
            EventQueue {
                tx,
                batch: Vec::with_capacity(BATCH),
                drops: Arc::new(AtomicU64::new(0)),
                queued,
                policy,
            },
            OutputThread {
                handle,
                abandon,
                done: done_rx,
            },
        )
    }

    pub fn send(&mut self, event: Event) {
        self.batch.push(event);
        if self.batch.len() >= BATCH {
            self.flush();
        }
    }

    /// Hands the partial batch to the output thread.
    pub fn flush(&mut self) {
        if self.batch.is_empty() {
            return;
        }
        let batch = std::mem::replace(&mut self.batch, Vec::with_capacity(BATCH));
        let n = batch.len() as u64;
        // Counted before the send: the output thread may take it at once.
        self.queued.fetch_add(n, Ordering::Relaxed);
        let sent = match self.policy {
            Backpressure::Wait => self.tx.send(Msg::Batch(batch)).is_ok(),
            Backpressure::Drop => self.tx.try_send(Msg::Batch(batch)).is_ok(),
            Backpressure::Until(deadline) => send_until(&self.tx, Msg::Batch(batch), deadline),
        };
        if !sent {
            self.queued.fetch_sub(n, Ordering::Relaxed);
            self.drops.fetch_add(n, Ordering::Relaxed);
        }
    }

    /// From now on, wait for room in the queue until `deadline` (then
    /// drop and count): the final flush of a stop loses nothing to a full
    /// queue while the output thread keeps up, and never waits past it.
    pub fn finish_by(&mut self, deadline: std::time::Instant) {
        self.policy = Backpressure::Until(deadline);
    }

    /// Events waiting for the output thread (the metrics endpoint).
    pub fn queued(&self) -> Arc<AtomicU64> {
        Arc::clone(&self.queued)
    }

    pub fn waker(&self) -> Waker {
        Waker(self.tx.clone())
    }

    /// Another sending end into the same output thread (the tracer's),
    /// with its own batch and the same drop counter.
    pub fn producer(&self) -> EventQueue {
        EventQueue {
            tx: self.tx.clone(),
            batch: Vec::with_capacity(BATCH),
            drops: Arc::clone(&self.drops),
            queued: Arc::clone(&self.queued),
            policy: self.policy,
        }
    }

    /// Events dropped because the queue was full or the outputs had failed.
    pub fn drops(&self) -> u64 {
        self.drops.load(Ordering::Relaxed)
    }
}

/// The output thread; join it after dropping the [`EventQueue`].
pub struct OutputThread {
    handle: Option<JoinHandle<OutputReport>>,
    /// Set when the stop's deadline passed: the thread counts what is
    /// left instead of processing it.
    abandon: Arc<AtomicBool>,
    /// Says the thread is done.
    done: Receiver<()>,
}

/// What the output thread did.
#[derive(Clone, Debug, Default)]
pub struct OutputReport {
    pub written: u64,
    /// The first write error per output, if any.
    pub errors: Vec<String>,
    /// Events left unprocessed because the stop's deadline passed.
    pub abandoned: u64,
    /// The thread did not end in time (stuck in an output): what it had
    /// not taken from the queue then is in `abandoned`, what it held is
    /// unknown.
    pub stuck: bool,
}

/// After a stop's deadline, how long the output thread gets to notice and
/// flush its outputs.
const ABANDON_GRACE: std::time::Duration = std::time::Duration::from_secs(2);

impl OutputThread {
    /// Waits for the thread to write everything queued.
    pub fn join(self) -> OutputReport {
        self.handle.and_then(|h| h.join().ok()).unwrap_or_default()
    }

    /// Waits until `deadline` for the thread to write everything queued;
    /// then tells it to leave the rest (counted), and gives it a moment to
    /// flush. `queued` is the queue's count of events not yet taken.
    pub fn join_until(self, deadline: std::time::Instant, queued: &AtomicU64) -> OutputReport {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if self.done.recv_timeout(left).is_err() {
            self.abandon.store(true, Ordering::Relaxed);
            if self.done.recv_timeout(ABANDON_GRACE).is_err() {
                // Stuck (an output that blocks): leave it behind.
                return OutputReport {
                    abandoned: queued.load(Ordering::Relaxed),
                    stuck: true,
                    ..OutputReport::default()
                };
            }
        }
        self.join()
    }
}

impl Drop for EventQueue {
    fn drop(&mut self) {
        self.flush();
    }
}

fn write_all(
    rx: Receiver<Msg>,
    mut stage: Box<dyn Stage>,
    mut outputs: Vec<Box<dyn Output>>,
    queued: &AtomicU64,
    abandon: &AtomicBool,
) -> OutputReport {
    let mut report = OutputReport::default();
    let mut failed = vec![false; outputs.len()];
    let mut pending = 0usize;
    let mut next_tick = std::time::Instant::now() + TICK_EVERY;
    loop {
        // Wait for the next batch, at most until the stage's next tick; with
        // events written but not flushed, at most FLUSH_AFTER, then flush. A
        // burst thus becomes a few large writes, and a quiet sensor's last
        // events still leave soon.
        let now = std::time::Instant::now();
        let mut wait = next_tick.saturating_duration_since(now);
        if pending > 0 {
            wait = wait.min(FLUSH_AFTER);
        }
        let batch = match rx.recv_timeout(wait) {
            Ok(Msg::Batch(batch)) if abandon.load(Ordering::Relaxed) => {
                queued.fetch_sub(batch.len() as u64, Ordering::Relaxed);
                report.abandoned += batch.len() as u64;
                continue;
            }
            Ok(Msg::Batch(batch)) => {
                queued.fetch_sub(batch.len() as u64, Ordering::Relaxed);
                batch
            }
            Ok(Msg::Wake) => {
                stage.wake();
                continue;
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                if pending > 0 {
                    flush(&mut outputs, &mut failed, &mut report);
                    pending = 0;
                }
                if std::time::Instant::now() >= next_tick {
                    stage.tick(crate::clock::now());
                    next_tick = std::time::Instant::now() + TICK_EVERY;
                }
                continue;
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        };
        let mut batch: Vec<Tagged> = batch.into_iter().map(Tagged::new).collect();
        stage.process(&mut batch);
        for item in &batch {
            for (i, out) in outputs.iter_mut().enumerate() {
                if failed[i] {
                    continue;
                }
                if let Err(e) = out.write(item) {
                    output_failed(out.as_ref(), &e, &mut report);
                    failed[i] = true;
                }
            }
        }
        report.written += batch.len() as u64;
        pending += batch.len();
        if std::time::Instant::now() >= next_tick {
            stage.tick(crate::clock::now());
            next_tick = std::time::Instant::now() + TICK_EVERY;
        }
    }
    stage.finish();
    flush(&mut outputs, &mut failed, &mut report);
    report
}

/// An output that failed: an error of the run, logged, unless it is
/// standard output whose reader went away (`… | head`), which ends a
/// replay quietly.
fn output_failed(out: &dyn Output, e: &std::io::Error, report: &mut OutputReport) {
    if jsonl::reader_gone(out.name(), e) {
        tracing::info!("standard output closed by its reader; no more events written there");
        return;
    }
    tracing::error!(output = out.name(), error = %e, "output failed; its further events are dropped");
    report.errors.push(format!("{}: {e}", out.name()));
}

fn flush(outputs: &mut [Box<dyn Output>], failed: &mut [bool], report: &mut OutputReport) {
    for (i, out) in outputs.iter_mut().enumerate() {
        if !failed[i] {
            if let Err(e) = out.flush() {
                output_failed(out.as_ref(), &e, report);
                failed[i] = true;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::Mutex;

    use super::*;
    use crate::event::Stats;

    /// A writer the test can read back.
    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0
                .lock()
                .map_err(|_| std::io::Error::other("poisoned"))?
                .extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn every_event_arrives_once_in_order_across_partial_batches() {
        let sink = Shared::default();
        let out = JsonLines::new("test".into(), Box::new(sink.clone()));
        let (mut queue, thread) = EventQueue::spawn(vec![Box::new(out)], Box::new(Passthrough), 4, Backpressure::Wait);
        let n = BATCH as u64 * 3 + 17;
        for i in 0..n {
            queue.send(Event::Stats(Stats {
                packets: i,
                ..Stats::default()
            }));
        }
        drop(queue); // flushes the partial batch
        let report = thread.join();
        assert_eq!(report.written, n);
        let text = String::from_utf8(sink.0.lock().unwrap().clone()).unwrap();
        let packets: Vec<u64> = text
            .lines()
            .map(|l| {
                serde_json::from_str::<serde_json::Value>(l).unwrap()["packets"]
                    .as_u64()
                    .unwrap()
            })
            .collect();
        assert_eq!(packets, (0..n).collect::<Vec<_>>());
    }

    /// A stage that holds the output thread until told to go on.
    struct Gate(std::sync::mpsc::Receiver<()>);

    impl Stage for Gate {
        fn process(&mut self, _batch: &mut Vec<Tagged>) {
            let _ = self.0.recv();
        }
    }

    #[test]
    fn queued_counts_what_waits_and_not_what_was_dropped() {
        let (go, gate) = std::sync::mpsc::channel();
        let out = JsonLines::new("test".into(), Box::new(Shared::default()));
        // Room for one batch in the channel (capacity ≤ BATCH events).
        let (mut queue, thread) = EventQueue::spawn(vec![Box::new(out)], Box::new(Gate(gate)), 1, Backpressure::Drop);
        let queued = queue.queued();
        let batch = |q: &mut EventQueue| {
            for _ in 0..BATCH {
                q.send(Event::Stats(Stats::default()));
            }
        };
        batch(&mut queue); // taken by the output thread, which waits at the gate
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while queued.load(Ordering::Relaxed) != 0 {
            assert!(std::time::Instant::now() < deadline, "the first batch was taken");
            std::thread::yield_now();
        }
        batch(&mut queue); // waits in the channel
        batch(&mut queue); // the channel is full: dropped
        assert_eq!(queued.load(Ordering::Relaxed), BATCH as u64);
        assert_eq!(queue.drops(), BATCH as u64);
        for _ in 0..3 {
            let _ = go.send(());
        }
        drop(queue);
        let report = thread.join();
        assert_eq!(report.written, 2 * BATCH as u64);
        assert_eq!(queued.load(Ordering::Relaxed), 0);
    }
}
