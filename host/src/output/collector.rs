//! Delivery to a `net-gazer-collector` (`[output.collector]`).
//!
//! Events are numbered per sensor (`seq`, never reused: the numbers are
//! reserved in blocks in `spool_dir/next-seq`, so a restart skips ahead
//! rather than repeating one), gathered into batches of `batch_size` or
//! `batch_interval`, gzip-compressed and **written to the spool directory
//! before anything is sent**. A delivery thread sends the spooled batches
//! in order and deletes each once the collector stored it; while the
//! collector is down or answers 5xx/429 it retries with exponential backoff
//! (0.5 s doubling to 30 s). Batches survive a collector outage and a
//! sensor restart. When the spool outgrows `spool_max_mb`, the oldest
//! batches are deleted and their events counted as dropped, with a log
//! line. A batch the collector refuses (4xx other than 429) is moved to
//! `spool_dir/rejected/` with a log line: retrying could never succeed.
//! The collector drops duplicates by (sensor, `seq`), so a batch sent twice
//! (its answer lost) is stored once.

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::Output;
use crate::config::CollectorSection;
use crate::event::Tagged;

/// Sequence numbers reserved at a time in `next-seq`.
const RESERVE: u64 = 100_000;
/// At shutdown, how long the delivery thread keeps trying.
const DRAIN: Duration = Duration::from_secs(5);
const BACKOFF_MIN: Duration = Duration::from_millis(500);
const BACKOFF_MAX: Duration = Duration::from_secs(30);

/// What delivery did, for logs and stats.
#[derive(Default)]
pub struct DeliveryStats {
    pub delivered: AtomicU64,
    pub retries: AtomicU64,
    /// Events deleted from a full spool.
    pub dropped: AtomicU64,
    /// Events in batches the collector refused.
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
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("{}: {e}", file.display())))?,
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
        write_atomically(&self.file, self.reserved.to_string().as_bytes())
    }

    fn take(&mut self) -> io::Result<u64> {
        if self.next > self.reserved {
            self.reserve()?;
        }
        self.next += 1;
        Ok(self.next - 1)
    }
}

fn write_atomically(path: &Path, data: &[u8]) -> io::Result<()> {
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(data)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

/// A spooled batch: `<first seq, 20 digits>-<events>.json.gz`.
fn batch_name(first: u64, count: usize) -> String {
    format!("{first:020}-{count}.json.gz")
}

fn events_in(name: &str) -> u64 {
    name.strip_suffix(".json.gz")
        .and_then(|n| n.split_once('-'))
        .and_then(|(_, c)| c.parse().ok())
        .unwrap_or(0)
}

/// The spooled batches, oldest first, with their sizes.
fn spooled(dir: &Path) -> Vec<(PathBuf, u64)> {
    let mut files: Vec<(PathBuf, u64)> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .filter(|e| e.file_name().to_string_lossy().ends_with(".json.gz"))
                .map(|e| (e.path(), e.metadata().map_or(0, |m| m.len())))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

/// What waits in the spool: batches, events, bytes (the metrics endpoint).
pub fn spool_usage(dir: &Path) -> (u64, u64, u64) {
    let files = spooled(dir);
    let events = files
        .iter()
        .map(|(p, _)| p.file_name().map_or(0, |n| events_in(&n.to_string_lossy())))
        .sum();
    (files.len() as u64, events, files.iter().map(|f| f.1).sum())
}

pub struct CollectorOutput {
    name: String,
    settings: CollectorSection,
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

impl CollectorOutput {
    /// Opens the spool (creating it) and starts the delivery thread, which
    /// first sends what an earlier run left in the spool.
    pub fn open(settings: CollectorSection, sensor: String) -> io::Result<CollectorOutput> {
        let dir = &settings.spool_dir;
        std::fs::create_dir_all(dir)
            .map_err(|e| io::Error::new(e.kind(), format!("cannot create the spool {}: {e}", dir.display())))?;
        let seq = Sequence::open(dir)?;
        let (wake, rx) = mpsc::sync_channel(1);
        let stats = Arc::new(DeliveryStats::default());
        let sender = Sender {
            settings: settings.clone(),
            stats: Arc::clone(&stats),
        };
        let thread = std::thread::Builder::new()
            .name("ng-deliver".into())
            .spawn(move || sender.run(rx))?;
        Ok(CollectorOutput {
            name: format!("collector {}", settings.url),
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
        let mut body = Vec::with_capacity(self.events.len() + 64);
        body.extend_from_slice(b"{\"sensor\":");
        body.extend_from_slice(
            serde_json::to_string(&self.sensor)
                .map_err(io::Error::other)?
                .as_bytes(),
        );
        body.extend_from_slice(b",\"events\":[");
        body.extend_from_slice(&self.events);
        body.extend_from_slice(b"]}");
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&body)?;
        let gz = gz.finish()?;
        self.make_room(gz.len() as u64);
        let path = self.settings.spool_dir.join(batch_name(self.first_seq, self.count));
        write_atomically(&path, &gz)?;
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
        let max = self.settings.spool_max_mb * 1024 * 1024;
        let files = spooled(&self.settings.spool_dir);
        let mut total: u64 = files.iter().map(|f| f.1).sum::<u64>() + incoming;
        for (path, size) in files {
            if total <= max {
                break;
            }
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            if std::fs::remove_file(&path).is_ok() {
                let n = events_in(&name);
                self.stats.dropped.fetch_add(n, Ordering::Relaxed);
                tracing::error!(batch = %name, events = n, "collector spool full: oldest batch dropped");
                total -= size;
            }
        }
    }
}

impl Output for CollectorOutput {
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
        self.line.clear();
        super::json::append_tagged(&mut self.line, item).map_err(io::Error::other)?;
        // `{"kind":…}` becomes `{"seq":N,"kind":…}`.
        self.events.extend_from_slice(b"{\"seq\":");
        self.events
            .extend_from_slice(itoa::Buffer::new().format(seq).as_bytes());
        self.events.push(b',');
        self.events.extend_from_slice(self.line.get(1..).unwrap_or_default());
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

impl Drop for CollectorOutput {
    fn drop(&mut self) {
        if let Err(e) = self.seal() {
            tracing::error!(error = %e, "collector: the last batch could not be spooled");
        }
        // Closing the channel tells the sender to finish.
        self.wake = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let left = spooled(&self.settings.spool_dir).len();
        tracing::info!(
            delivered = self.stats.delivered.load(Ordering::Relaxed),
            retries = self.stats.retries.load(Ordering::Relaxed),
            dropped = self.stats.dropped.load(Ordering::Relaxed),
            rejected = self.stats.rejected.load(Ordering::Relaxed),
            batches_left_in_spool = left,
            "collector delivery stopped"
        );
    }
}

/// Waits `d` before a retry; new batches do not cut it short. When the
/// output closes, retries come every 0.5 s until the drain time is up.
fn pause(wake: &Receiver<()>, d: Duration, closing: &mut Option<Instant>) {
    if closing.is_some() {
        std::thread::sleep(d.min(BACKOFF_MIN));
        return;
    }
    let until = Instant::now() + d;
    loop {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return;
        }
        match wake.recv_timeout(left) {
            Ok(()) | Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => {
                *closing = Some(Instant::now() + DRAIN);
                std::thread::sleep(left.min(BACKOFF_MIN));
                return;
            }
        }
    }
}

/// The delivery thread.
struct Sender {
    settings: CollectorSection,
    stats: Arc<DeliveryStats>,
}

enum Sent {
    Stored,
    /// The collector refused it for good (4xx).
    Refused(String),
    /// Try again later (down, 5xx, 429).
    Later(String),
}

impl Sender {
    fn run(self, wake: Receiver<()>) {
        let client = match reqwest::blocking::Client::builder()
            .timeout(self.settings.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
        {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %e, "collector: no HTTP client; events stay in the spool");
                return;
            }
        };
        let mut backoff = BACKOFF_MIN;
        let mut closing: Option<Instant> = None;
        loop {
            let next = spooled(&self.settings.spool_dir).into_iter().next();
            let Some((path, _)) = next else {
                if closing.is_some() {
                    return;
                }
                match wake.recv_timeout(Duration::from_secs(1)) {
                    Ok(()) | Err(RecvTimeoutError::Timeout) => continue,
                    Err(RecvTimeoutError::Disconnected) => return,
                }
            };
            if closing.is_some_and(|until| Instant::now() >= until) {
                return;
            }
            match self.send(&client, &path) {
                Sent::Stored => {
                    backoff = BACKOFF_MIN;
                    let name = path
                        .file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default();
                    self.stats.delivered.fetch_add(events_in(&name), Ordering::Relaxed);
                    let _ = std::fs::remove_file(&path);
                }
                Sent::Refused(why) => {
                    let name = path
                        .file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default();
                    self.stats.rejected.fetch_add(events_in(&name), Ordering::Relaxed);
                    tracing::error!(batch = %name, reason = %why, "collector refused a batch; kept in rejected/");
                    let rejected = self.settings.spool_dir.join("rejected");
                    let _ = std::fs::create_dir_all(&rejected);
                    if std::fs::rename(&path, rejected.join(&name)).is_err() {
                        let _ = std::fs::remove_file(&path);
                    }
                }
                Sent::Later(why) => {
                    self.stats.retries.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(reason = %why, retry_in = ?backoff, "collector unavailable; batches stay in the spool");
                    pause(&wake, backoff, &mut closing);
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                }
            }
            if closing.is_none() {
                if let Err(mpsc::TryRecvError::Disconnected) = wake.try_recv() {
                    closing = Some(Instant::now() + DRAIN);
                }
            }
        }
    }

    fn send(&self, client: &reqwest::blocking::Client, path: &Path) -> Sent {
        let body = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) => return Sent::Refused(format!("cannot read {}: {e}", path.display())),
        };
        let url = format!("{}/api/v1/events", self.settings.url.trim_end_matches('/'));
        let resp = client
            .post(url)
            .bearer_auth(&self.settings.token)
            .header("content-type", "application/json")
            .header("content-encoding", "gzip")
            .body(body)
            .send();
        match resp {
            Ok(r) if r.status().is_success() => Sent::Stored,
            Ok(r) if r.status().is_server_error() || r.status().as_u16() == 429 => {
                Sent::Later(format!("HTTP {}", r.status()))
            }
            Ok(r) => {
                let status = r.status();
                Sent::Refused(format!("HTTP {status}: {}", r.text().unwrap_or_default()))
            }
            Err(e) => Sent::Later(e.to_string()),
        }
    }
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

    #[test]
    fn batch_names_sort_in_sequence_order_and_carry_their_count() {
        let a = batch_name(9, 3);
        let b = batch_name(10, 1000);
        assert!(a < b);
        assert_eq!((events_in(&a), events_in(&b)), (3, 1000));
    }
}
