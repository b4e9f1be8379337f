//! Delivery of numbered, spooled batches: to a `net-gazer-collector` over
//! HTTP (`[output.collector]`, [`http`]) or to a NATS JetStream stream
//! (`[output.nats]`, [`nats`]).
//!
//! Events are numbered per sensor (`seq`, never reused: the numbers are
//! reserved in blocks in `spool_dir/next-seq`, so a restart skips ahead
//! rather than repeating one), gathered into batches of `batch_size` or
//! `batch_interval`, gzip-compressed and **written to the spool directory
//! before anything is sent** ([`spool`]). A delivery thread ([`send`])
//! sends the spooled batches in order through its [`Transport`] and
//! deletes each once the other end has it; what it does with every other
//! answer (retry with backoff, split, keep refused events in the
//! dead-letter file, [`dead_letter`]) is the table in [`send`]. Batches
//! survive an outage and a sensor restart. When the spool outgrows
//! `spool_max_mb`, the oldest batches are deleted and their events counted
//! as dropped, with a log line. The store drops duplicates by (sensor,
//! `seq`) (and JetStream by the message id first), so a batch sent twice
//! (its answer lost) is stored once. Each delivery has a spool (and
//! numbering) of its own.

mod dead_letter;
mod http;
mod nats;
mod send;
mod spool;

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;

pub use spool::{body as batch_body, spool_usage};

use super::Output;
use crate::config::{CollectorSection, NatsSection};
use crate::event::Tagged;
use send::Transport;

/// Sequence numbers reserved at a time in `next-seq`.
const RESERVE: u64 = 100_000;

/// What delivery did, for logs and stats.
#[derive(Default)]
pub struct DeliveryStats {
    pub delivered: AtomicU64,
    pub retries: AtomicU64,
    /// Events deleted from a full spool.
    pub dropped: AtomicU64,
    /// Events the collector refused for good (kept in the dead-letter file).
    pub rejected: AtomicU64,
}

/// Hands out sequence numbers, reserving them on disk in blocks.
struct Sequence {
    file: PathBuf,
    next: u64,
    reserved: u64,
}

impl Sequence {
    fn open(dir: &Path) -> io::Result<Sequence> {
        let file = dir.join("next-seq");
        let reserved = match std::fs::read_to_string(&file) {
            Ok(t) => t
                .trim()
                .parse::<u64>()
                .ok()
                // The collector stores sequence numbers up to 2^63 - 1.
                .filter(|&n| n < (i64::MAX as u64) - 2 * RESERVE)
                .ok_or_else(|| {
                    io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("{}: not a sequence number below 2^63: `{}`", file.display(), t.trim()),
                    )
                })?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => 0,
            Err(e) => return Err(e),
        };
        let mut s = Sequence {
            file,
            next: reserved + 1,
            reserved,
        };
        s.reserve()?;
        Ok(s)
    }

    fn reserve(&mut self) -> io::Result<()> {
        self.reserved = self.next + RESERVE - 1;
        spool::write_atomically(&self.file, self.reserved.to_string().as_bytes())
    }

    fn take(&mut self) -> io::Result<u64> {
        if self.next > self.reserved {
            self.reserve()?;
        }
        self.next += 1;
        Ok(self.next - 1)
    }
}

/// How batches are made and kept until delivered (the keys both
/// `[output.collector]` and `[output.nats]` have).
#[derive(Clone, Debug, PartialEq)]
pub struct Spooling {
    pub batch_size: usize,
    pub batch_interval: std::time::Duration,
    pub spool_dir: PathBuf,
    pub spool_max_mb: u64,
    pub dead_letter_max_mb: u64,
}

pub struct DeliveryOutput {
    name: String,
    settings: Spooling,
    sensor: String,
    seq: Sequence,
    events: Vec<u8>,
    count: usize,
    first_seq: u64,
    opened: Instant,
    line: Vec<u8>,
    wake: Option<SyncSender<()>>,
    thread: Option<JoinHandle<()>>,
    stats: Arc<DeliveryStats>,
}

impl DeliveryOutput {
    /// Delivery to a collector over HTTP.
    pub fn collector(section: &CollectorSection, sensor: String) -> io::Result<DeliveryOutput> {
        let transport = http::Http::new(section)?;
        Self::open(section.spooling(), Box::new(transport), sensor)
    }

    /// Delivery to a NATS JetStream stream.
    pub fn nats(section: &NatsSection, sensor: String) -> io::Result<DeliveryOutput> {
        let transport = nats::Nats::new(section, &sensor)?;
        Self::open(section.spooling(), Box::new(transport), sensor)
    }

    /// Opens the spool (creating it) and starts the delivery thread, which
    /// first sends what an earlier run left in the spool.
    fn open(settings: Spooling, transport: Box<dyn Transport>, sensor: String) -> io::Result<DeliveryOutput> {
        let dir = &settings.spool_dir;
        std::fs::create_dir_all(dir)
            .map_err(|e| io::Error::new(e.kind(), format!("cannot create the spool {}: {e}", dir.display())))?;
        let seq = Sequence::open(dir)?;
        let (wake, rx) = mpsc::sync_channel(1);
        let stats = Arc::new(DeliveryStats::default());
        let name = transport.target().to_string();
        let sender = send::Sender {
            spool_dir: settings.spool_dir.clone(),
            stats: Arc::clone(&stats),
            dead: dead_letter::DeadLetter::new(dir, settings.dead_letter_max_mb),
            transport,
        };
        let thread = std::thread::Builder::new()
            .name("ng-deliver".into())
            .spawn(move || sender.run(rx))?;
        Ok(DeliveryOutput {
            name,
            settings,
            sensor,
            seq,
            events: Vec::with_capacity(1 << 16),
            count: 0,
            first_seq: 0,
            opened: Instant::now(),
            line: Vec::with_capacity(2048),
            wake: Some(wake),
            thread: Some(thread),
            stats,
        })
    }

    pub fn stats(&self) -> Arc<DeliveryStats> {
        Arc::clone(&self.stats)
    }

    /// Closes the open batch: into the spool, and the sender woken.
    fn seal(&mut self) -> io::Result<()> {
        if self.count == 0 {
            return Ok(());
        }
        let gz = spool::gzip(&spool::body(&self.sensor, [&self.events[..]])?)?;
        self.make_room(gz.len() as u64);
        spool::store(&self.settings.spool_dir, self.first_seq, self.count, &gz)?;
        self.events.clear();
        self.count = 0;
        if let Some(w) = &self.wake {
            let _ = w.try_send(());
        }
        Ok(())
    }

    /// Deletes the oldest batches while the spool and `incoming` exceed
    /// `spool_max_mb`, counting their events as dropped.
    fn make_room(&self, incoming: u64) {
        let max = self.settings.spool_max_mb.saturating_mul(1024 * 1024);
        let files = spool::spooled(&self.settings.spool_dir);
        let mut total: u64 = files.iter().map(|f| f.1).sum::<u64>().saturating_add(incoming);
        for (path, size) in files {
            if total <= max {
                break;
            }
            let name = spool::name_of(&path);
            if std::fs::remove_file(&path).is_ok() {
                let n = spool::events_in(&name);
                self.stats.dropped.fetch_add(n, Ordering::Relaxed);
                tracing::error!(batch = %name, events = n, output = %self.name, "spool full: oldest batch dropped");
                total = total.saturating_sub(size);
            }
        }
    }
}

impl Output for DeliveryOutput {
    fn name(&self) -> &str {
        &self.name
    }

    fn write(&mut self, item: &Tagged) -> io::Result<()> {
        let seq = self.seq.take()?;
        if self.count == 0 {
            self.first_seq = seq;
            self.opened = Instant::now();
        } else {
            self.events.push(b',');
        }
        append_numbered(&mut self.events, seq, item, &mut self.line)?;
        self.count += 1;
        if self.count >= self.settings.batch_size {
            self.seal()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.opened.elapsed() >= self.settings.batch_interval {
            self.seal()?;
        }
        Ok(())
    }
}

impl Drop for DeliveryOutput {
    fn drop(&mut self) {
        if let Err(e) = self.seal() {
            tracing::error!(error = %e, events = self.count, output = %self.name, "the last batch could not be spooled");
        }
        // Closing the channel tells the sender to finish (it keeps trying
        // for send::DRAIN, then leaves the rest in the spool).
        self.wake = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let (batches, events, _) = spool_usage(&self.settings.spool_dir);
        let left = (batches > 0).then_some(events);
        let line = |s: &AtomicU64| s.load(Ordering::Relaxed);
        if let Some(events) = left {
            tracing::warn!(
                batches, events, spool = %self.settings.spool_dir.display(), output = %self.name,
                "delivery stopped with events in the spool: they are sent at the next start"
            );
        }
        tracing::info!(
            delivered = line(&self.stats.delivered),
            retries = line(&self.stats.retries),
            dropped = line(&self.stats.dropped),
            rejected = line(&self.stats.rejected),
            batches_left_in_spool = batches,
            output = %self.name,
            "delivery stopped"
        );
    }
}

/// Appends `item` as a collector takes it: its JSON object with `"seq":N`
/// first (`{"kind":…}` becomes `{"seq":N,"kind":…}`); `scratch` holds the
/// serialised event on the way.
pub fn append_numbered(out: &mut Vec<u8>, seq: u64, item: &Tagged, scratch: &mut Vec<u8>) -> io::Result<()> {
    scratch.clear();
    super::json::append_tagged(scratch, item).map_err(io::Error::other)?;
    out.extend_from_slice(b"{\"seq\":");
    out.extend_from_slice(itoa::Buffer::new().format(seq).as_bytes());
    out.push(b',');
    out.extend_from_slice(scratch.get(1..).unwrap_or_default());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequence_numbers_are_never_reused_across_restarts() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Sequence::open(dir.path()).unwrap();
        let first: Vec<u64> = (0..5).map(|_| s.take().unwrap()).collect();
        assert_eq!(first, [1, 2, 3, 4, 5]);
        drop(s); // a crash: the rest of the block is skipped
        let mut s = Sequence::open(dir.path()).unwrap();
        assert!(s.take().unwrap() > 5);
        let many: Vec<u64> = (0..(RESERVE as usize + 10)).map(|_| s.take().unwrap()).collect();
        assert!(many.windows(2).all(|w| w[1] == w[0] + 1), "one block after another");
    }
}
