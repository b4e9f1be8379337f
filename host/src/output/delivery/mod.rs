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
//! (its answer lost) is stored once. Each delivery has a spool of its own;
//! the numbering is one for all ([`DeliveryOutput`]).

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

/// Hands out sequence numbers, reserving them on disk in blocks, in
/// `next-seq` of every spool directory: the highest there is where a
/// restart continues, whichever deliveries are configured then.
struct Sequence {
    files: Vec<PathBuf>,
    next: u64,
    reserved: u64,
}

impl Sequence {
    fn open(dirs: &[&Path]) -> io::Result<Sequence> {
        let files: Vec<PathBuf> = dirs.iter().map(|d| d.join("next-seq")).collect();
        let mut reserved = 0;
        for file in &files {
            let found = match std::fs::read_to_string(file) {
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
            reserved = reserved.max(found);
        }
        let mut s = Sequence {
            files,
            next: reserved + 1,
            reserved,
        };
        s.reserve()?;
        Ok(s)
    }

    fn reserve(&mut self) -> io::Result<()> {
        self.reserved = self.next + RESERVE - 1;
        for file in &self.files {
            spool::write_atomically(file, self.reserved.to_string().as_bytes())?;
        }
        Ok(())
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

impl Spooling {
    fn of_collector(c: &CollectorSection) -> Spooling {
        Spooling {
            batch_size: c.batch_size,
            batch_interval: c.batch_interval,
            spool_dir: c.spool_dir.clone(),
            spool_max_mb: c.spool_max_mb,
            dead_letter_max_mb: c.dead_letter_max_mb,
        }
    }

    fn of_nats(n: &NatsSection) -> Spooling {
        Spooling {
            batch_size: n.batch_size,
            batch_interval: n.batch_interval,
            spool_dir: n.spool_dir.clone(),
            spool_max_mb: n.spool_max_mb,
            dead_letter_max_mb: n.dead_letter_max_mb,
        }
    }
}

/// The deliveries of a sensor (`[output.collector]`, `[output.nats]`, or
/// both), as one output: each event is numbered **once**, so an event
/// that reaches one store by both ways has one (sensor, `seq`) and is
/// stored once; each delivery batches, spools and sends on its own.
pub struct DeliveryOutput {
    name: String,
    sensor: String,
    seq: Sequence,
    line: Vec<u8>,
    numbered: Vec<u8>,
    lanes: Vec<Lane>,
}

/// One delivery: its open batch, spool and sending thread.
struct Lane {
    name: String,
    settings: Spooling,
    events: Vec<u8>,
    count: usize,
    first_seq: u64,
    opened: Instant,
    wake: Option<SyncSender<()>>,
    thread: Option<JoinHandle<()>>,
    stats: Arc<DeliveryStats>,
}

impl DeliveryOutput {
    /// The deliveries configured, or none.
    pub fn open(
        collector: Option<&CollectorSection>,
        nats: Option<&NatsSection>,
        sensor: String,
    ) -> io::Result<Option<DeliveryOutput>> {
        let mut lanes = Vec::new();
        if let Some(c) = collector {
            lanes.push(Lane::open(Spooling::of_collector(c), Box::new(http::Http::new(c)?))?);
        }
        if let Some(n) = nats {
            lanes.push(Lane::open(
                Spooling::of_nats(n),
                Box::new(nats::Nats::new(n, &sensor)?),
            )?);
        }
        if lanes.is_empty() {
            return Ok(None);
        }
        let dirs: Vec<&Path> = lanes.iter().map(|l| l.settings.spool_dir.as_path()).collect();
        let seq = Sequence::open(&dirs)?;
        Ok(Some(DeliveryOutput {
            name: lanes.iter().map(|l| l.name.as_str()).collect::<Vec<_>>().join(", "),
            sensor,
            seq,
            line: Vec::with_capacity(2048),
            numbered: Vec::with_capacity(2048),
            lanes,
        }))
    }

    /// Each delivery's counters.
    pub fn stats(&self) -> Vec<Arc<DeliveryStats>> {
        self.lanes.iter().map(|l| Arc::clone(&l.stats)).collect()
    }
}

impl Lane {
    /// Opens the spool (creating it) and starts the delivery thread, which
    /// first sends what an earlier run left in the spool.
    fn open(settings: Spooling, transport: Box<dyn Transport>) -> io::Result<Lane> {
        let dir = &settings.spool_dir;
        std::fs::create_dir_all(dir)
            .map_err(|e| io::Error::new(e.kind(), format!("cannot create the spool {}: {e}", dir.display())))?;
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
        Ok(Lane {
            name,
            settings,
            events: Vec::with_capacity(1 << 16),
            count: 0,
            first_seq: 0,
            opened: Instant::now(),
            wake: Some(wake),
            thread: Some(thread),
            stats,
        })
    }

    /// Adds one numbered event to the open batch; seals it when full.
    fn add(&mut self, seq: u64, numbered: &[u8], sensor: &str) -> io::Result<()> {
        if self.count == 0 {
            self.first_seq = seq;
            self.opened = Instant::now();
        } else {
            self.events.push(b',');
        }
        self.events.extend_from_slice(numbered);
        self.count += 1;
        if self.count >= self.settings.batch_size {
            self.seal(sensor)?;
        }
        Ok(())
    }

    /// Closes the open batch: into the spool, and the sender woken.
    fn seal(&mut self, sensor: &str) -> io::Result<()> {
        if self.count == 0 {
            return Ok(());
        }
        let gz = spool::gzip(&spool::body(sensor, [&self.events[..]])?)?;
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

    /// Seals the last batch and waits for the sender (which keeps trying
    /// for `send::DRAIN`, then leaves the rest in the spool).
    fn close(&mut self, sensor: &str) {
        if let Err(e) = self.seal(sensor) {
            tracing::error!(error = %e, events = self.count, output = %self.name, "the last batch could not be spooled");
        }
        // Closing the channel tells the sender to finish.
        self.wake = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let (batches, events, _) = spool_usage(&self.settings.spool_dir);
        let line = |s: &AtomicU64| s.load(Ordering::Relaxed);
        if batches > 0 {
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

impl Output for DeliveryOutput {
    fn name(&self) -> &str {
        &self.name
    }

    fn write(&mut self, item: &Tagged) -> io::Result<()> {
        let seq = self.seq.take()?;
        self.numbered.clear();
        append_numbered(&mut self.numbered, seq, item, &mut self.line)?;
        for lane in &mut self.lanes {
            lane.add(seq, &self.numbered, &self.sensor)?;
        }
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        for lane in &mut self.lanes {
            if lane.opened.elapsed() >= lane.settings.batch_interval {
                lane.seal(&self.sensor)?;
            }
        }
        Ok(())
    }
}

impl Drop for DeliveryOutput {
    fn drop(&mut self) {
        for lane in &mut self.lanes {
            lane.close(&self.sensor);
        }
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
        let mut s = Sequence::open(&[dir.path()]).unwrap();
        let first: Vec<u64> = (0..5).map(|_| s.take().unwrap()).collect();
        assert_eq!(first, [1, 2, 3, 4, 5]);
        drop(s); // a crash: the rest of the block is skipped
        let mut s = Sequence::open(&[dir.path()]).unwrap();
        assert!(s.take().unwrap() > 5);
        let many: Vec<u64> = (0..(RESERVE as usize + 10)).map(|_| s.take().unwrap()).collect();
        assert!(many.windows(2).all(|w| w[1] == w[0] + 1), "one block after another");
    }

    /// A delivery added or removed later continues the numbering of the
    /// others: never a number an earlier run gave another event.
    #[test]
    fn the_numbering_follows_the_highest_spool_of_any_delivery() {
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let mut only_a = Sequence::open(&[a.path()]).unwrap();
        let first = only_a.take().unwrap();
        drop(only_a);
        let mut both = Sequence::open(&[a.path(), b.path()]).unwrap();
        let second = both.take().unwrap();
        assert!(second > first);
        drop(both);
        let mut only_b = Sequence::open(&[b.path()]).unwrap();
        assert!(only_b.take().unwrap() > second, "b's spool knew the reservation too");
    }
}
