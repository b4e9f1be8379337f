//! outputs: where events leave the process.
//!
//! Outputs run on their own thread behind a bounded queue ([`EventQueue`]):
//! live capture never waits for a slow output; an event that does not fit
//! is dropped and counted. Replay waits instead, so it loses nothing.
//! Events cross to the output thread in batches (one wake-up per batch, not
//! per event); the capture side sends a partial batch whenever it flushes.

pub mod json;
mod jsonl;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::Arc;
use std::thread::JoinHandle;

pub use jsonl::JsonLines;

use crate::event::Event;

/// A destination for events.
pub trait Output: Send {
    fn name(&self) -> &str;
    fn write(&mut self, event: &Event) -> std::io::Result<()>;
    fn flush(&mut self) -> std::io::Result<()>;
}

/// How long written events may wait in an output's buffer.
const FLUSH_AFTER: std::time::Duration = std::time::Duration::from_millis(200);

/// What to do when the queue is full.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backpressure {
    /// Drop the event and count it (live capture).
    Drop,
    /// Wait for room (replay).
    Wait,
}

/// Events per batch handed to the output thread.
const BATCH: usize = 256;

/// The sending end, owned by the capture thread.
pub struct EventQueue {
    tx: SyncSender<Vec<Event>>,
    batch: Vec<Event>,
    drops: Arc<AtomicU64>,
    policy: Backpressure,
}

impl EventQueue {
    /// Starts the output thread writing every event to each output in turn;
    /// `capacity` events may wait for it.
    pub fn spawn(outputs: Vec<Box<dyn Output>>, capacity: usize, policy: Backpressure) -> (EventQueue, OutputThread) {
        let (tx, rx) = mpsc::sync_channel(capacity.div_ceil(BATCH));
        let handle = std::thread::Builder::new()
            .name("ng-output".into())
            .spawn(move || write_all(rx, outputs))
            .ok();
        (
            EventQueue {
                tx,
                batch: Vec::with_capacity(BATCH),
                drops: Arc::new(AtomicU64::new(0)),
                policy,
            },
            OutputThread { handle },
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
        let sent = match self.policy {
            Backpressure::Wait => self.tx.send(batch).is_ok(),
            Backpressure::Drop => match self.tx.try_send(batch) {
                Ok(()) => true,
                Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => false,
            },
        };
        if !sent {
            self.drops.fetch_add(n, Ordering::Relaxed);
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
}

/// What the output thread did.
#[derive(Clone, Debug, Default)]
pub struct OutputReport {
    pub written: u64,
    /// The first write error per output, if any.
    pub errors: Vec<String>,
}

impl OutputThread {
    pub fn join(self) -> OutputReport {
        self.handle.and_then(|h| h.join().ok()).unwrap_or_default()
    }
}

impl Drop for EventQueue {
    fn drop(&mut self) {
        self.flush();
    }
}

fn write_all(rx: Receiver<Vec<Event>>, mut outputs: Vec<Box<dyn Output>>) -> OutputReport {
    let mut report = OutputReport::default();
    let mut failed = vec![false; outputs.len()];
    let mut pending = 0usize;
    loop {
        // Wait for the next event; with events written but not flushed,
        // wait at most FLUSH_AFTER, then flush. A burst thus becomes a few
        // large writes, and a quiet sensor's last events still leave soon.
        let batch = if pending == 0 {
            match rx.recv() {
                Ok(e) => e,
                Err(_) => break,
            }
        } else {
            match rx.recv_timeout(FLUSH_AFTER) {
                Ok(e) => e,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    flush(&mut outputs, &mut failed, &mut report);
                    pending = 0;
                    continue;
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
        };
        for event in &batch {
            for (i, out) in outputs.iter_mut().enumerate() {
                if failed[i] {
                    continue;
                }
                if let Err(e) = out.write(event) {
                    tracing::error!(output = out.name(), error = %e, "output failed; its further events are dropped");
                    report.errors.push(format!("{}: {e}", out.name()));
                    failed[i] = true;
                }
            }
        }
        report.written += batch.len() as u64;
        pending += batch.len();
    }
    flush(&mut outputs, &mut failed, &mut report);
    report
}

fn flush(outputs: &mut [Box<dyn Output>], failed: &mut [bool], report: &mut OutputReport) {
    for (i, out) in outputs.iter_mut().enumerate() {
        if !failed[i] {
            if let Err(e) = out.flush() {
                tracing::error!(output = out.name(), error = %e, "output failed; its further events are dropped");
                report.errors.push(format!("{}: {e}", out.name()));
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
        let (mut queue, thread) = EventQueue::spawn(vec![Box::new(out)], 4, Backpressure::Wait);
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
}
