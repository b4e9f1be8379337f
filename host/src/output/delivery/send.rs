//! The delivery thread: sends the spooled batches in order through a
//! [`Transport`] and decides, from the answer, what becomes of each:
//!
//! | answer | what happens |
//! |---|---|
//! | stored | the batch is deleted; events refused one by one (`refused`) go to the dead-letter file with the reason |
//! | invalid | the batch as a whole can never be stored: all its events go to the dead-letter file |
//! | too large | split in halves and sent again (one event: dead-letter) |
//! | misconfigured | the sensor's settings (token, `[sensor] id`, URL) are wrong: the batch stays in the spool; retried every few minutes at most, an error logged each time, until they are fixed |
//! | failed | the other end failed on this batch: retried after later batches; once a later batch was stored while this one keeps failing (3 times), it is split, down to the one event that fails, which goes to the dead-letter file |
//! | later | transient (no answer, a timeout, overload): retried with exponential backoff (0.5 s doubling to 30 s) |
//!
//! Each transport says which of its answers is which ([`super::http`],
//! [`super::nats`]). Nothing is dropped without a count and a log line;
//! nothing blocks the batches behind it for good.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::dead_letter::DeadLetter;
use super::spool::{self, events_in, name_of};
use super::DeliveryStats;

/// At shutdown, how long the delivery thread keeps trying.
pub(super) const DRAIN: Duration = Duration::from_secs(5);
const BACKOFF_MIN: Duration = Duration::from_millis(500);
const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// Between tries of an end that refuses the sensor's settings.
const MISCONFIGURED_MAX: Duration = Duration::from_secs(300);
/// Failures of one batch before it may be split.
const SUSPECT_AFTER: u32 = 3;

/// What the other end made of a batch.
pub(crate) enum Answer {
    /// Stored, but for these events (index in the batch, reason).
    Stored(Vec<(usize, String)>),
    /// The body as a whole does not check.
    Invalid(String),
    /// Larger than the other end takes.
    TooLarge(String),
    /// The sensor's settings are refused.
    Misconfigured(String),
    /// The other end failed on this batch.
    Failed(String),
    /// No answer, or one that says try later.
    Later(String),
}

/// How batches leave: one spooled batch at a time, answered.
pub(crate) trait Transport: Send {
    /// What it delivers to, for logs and metrics (`collector http://…`).
    fn target(&self) -> &str;
    /// `collector` or `NATS`.
    fn kind(&self) -> &'static str;
    /// What the operator checks when the sensor is refused.
    fn settings_hint(&self) -> &'static str;
    /// Sends the spooled batch `name` (its gzip body, as spooled).
    fn send(&mut self, name: &str, body: Vec<u8>) -> Answer;
}

/// A batch the other end failed on.
struct Suspect {
    failures: u32,
    first: Instant,
    retry_at: Instant,
}

pub(super) struct Sender {
    pub spool_dir: std::path::PathBuf,
    pub stats: Arc<DeliveryStats>,
    pub dead: DeadLetter,
    pub transport: Box<dyn Transport>,
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

impl Sender {
    pub fn run(mut self, wake: Receiver<()>) {
        let mut backoff = BACKOFF_MIN;
        let mut misconfigured = BACKOFF_MIN;
        let mut closing: Option<Instant> = None;
        let mut suspects: HashMap<String, Suspect> = HashMap::new();
        let mut last_stored: Option<Instant> = None;
        loop {
            let now = Instant::now();
            let files = spool::spooled(&self.spool_dir);
            suspects.retain(|name, _| files.iter().any(|(p, _)| name_of(p) == *name));
            let ready = |p: &Path| suspects.get(&name_of(p)).is_none_or(|s| s.retry_at <= now);
            let Some(path) = files.iter().map(|(p, _)| p.clone()).find(|p| ready(p)) else {
                if files.is_empty() && closing.is_some() {
                    return;
                }
                if closing.is_some_and(|until| now >= until) {
                    return;
                }
                // Nothing, or only batches waiting as suspects.
                let wait = suspects
                    .values()
                    .map(|s| s.retry_at.saturating_duration_since(now))
                    .min()
                    .unwrap_or(Duration::from_secs(1));
                if closing.is_some() {
                    std::thread::sleep(wait.min(BACKOFF_MIN));
                    continue;
                }
                match wake.recv_timeout(wait.min(Duration::from_secs(1))) {
                    Ok(()) | Err(RecvTimeoutError::Timeout) => continue,
                    Err(RecvTimeoutError::Disconnected) => {
                        closing = Some(Instant::now() + DRAIN);
                        continue;
                    }
                }
            };
            if closing.is_some_and(|until| now >= until) {
                return;
            }
            let name = name_of(&path);
            let answer = match std::fs::read(&path) {
                Ok(body) => self.transport.send(&name, body),
                Err(e) => Answer::Invalid(format!("cannot read {}: {e}", path.display())),
            };
            match answer {
                Answer::Stored(refused) => {
                    backoff = BACKOFF_MIN;
                    misconfigured = BACKOFF_MIN;
                    last_stored = Some(Instant::now());
                    suspects.remove(&name);
                    let n = events_in(&name);
                    self.stats
                        .delivered
                        .fetch_add(n.saturating_sub(refused.len() as u64), Ordering::Relaxed);
                    if !refused.is_empty() {
                        self.dead_letter(&path, &refused, None);
                    }
                    let _ = std::fs::remove_file(&path);
                }
                Answer::Invalid(why) => {
                    tracing::error!(batch = %name, reason = %why, output = %self.transport.target(), "a whole batch refused");
                    self.dead_letter_all(&path, &why);
                }
                Answer::TooLarge(why) => {
                    self.split_or_dead_letter(&path, &why);
                }
                Answer::Misconfigured(why) => {
                    self.stats.retries.fetch_add(1, Ordering::Relaxed);
                    tracing::error!(
                        batch = %name, reason = %why, retry_in = ?misconfigured, output = %self.transport.target(),
                        "{} refused the sensor (check {}); batches stay in the spool", self.transport.kind(), self.transport.settings_hint()
                    );
                    pause(&wake, misconfigured, &mut closing);
                    misconfigured = (misconfigured * 2).min(MISCONFIGURED_MAX);
                }
                Answer::Failed(why) => {
                    let now = Instant::now();
                    let s = suspects.entry(name.clone()).or_insert(Suspect {
                        failures: 0,
                        first: now,
                        retry_at: now,
                    });
                    s.failures += 1;
                    let poison = s.failures >= SUSPECT_AFTER && last_stored.is_some_and(|t| t > s.first);
                    if poison {
                        let first = s.first;
                        suspects.remove(&name);
                        tracing::warn!(batch = %name, reason = %why, output = %self.transport.target(), "this batch fails while others are stored: isolating the events it fails on");
                        // Its halves inherit the proof: the one that fails
                        // again is split again at once.
                        for half in self.split_or_dead_letter(&path, &why).into_iter().flatten() {
                            let proven = Suspect {
                                failures: SUSPECT_AFTER - 1,
                                first,
                                retry_at: now,
                            };
                            suspects.insert(name_of(&half), proven);
                        }
                    } else {
                        // Its own backoff: the batches after it go on meanwhile.
                        let wait = (BACKOFF_MIN * 2u32.pow(s.failures.min(7) - 1)).min(BACKOFF_MAX);
                        self.stats.retries.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(batch = %name, reason = %why, retry_in = ?wait, output = %self.transport.target(), "delivery failed on a batch; trying later ones first");
                        s.retry_at = now + wait;
                    }
                }
                Answer::Later(why) => {
                    self.stats.retries.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(reason = %why, retry_in = ?backoff, output = %self.transport.target(), "{} unavailable; batches stay in the spool", self.transport.kind());
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

    /// A batch the other end cannot take whole: two halves in its place
    /// (returned), or, for a single event, the dead-letter file.
    fn split_or_dead_letter(&self, path: &Path, why: &str) -> Option<[std::path::PathBuf; 2]> {
        match spool::split(path) {
            Ok(Some([a, b])) => {
                tracing::info!(batch = %name_of(path), halves = %format!("{}, {}", name_of(&a), name_of(&b)), reason = %why, "batch split");
                Some([a, b])
            }
            Ok(None) => {
                tracing::error!(batch = %name_of(path), reason = %why, output = %self.transport.target(), "this event cannot be delivered");
                self.dead_letter_all(path, why);
                None
            }
            Err(e) => {
                tracing::error!(batch = %name_of(path), error = %e, "a spooled batch cannot be read back");
                self.dead_letter_all(path, &format!("{why}; the batch cannot be read back: {e}"));
                None
            }
        }
    }

    fn dead_letter_all(&self, path: &Path, why: &str) {
        let n = events_in(&name_of(path)) as usize;
        let all: Vec<(usize, String)> = (0..n).map(|i| (i, why.to_string())).collect();
        self.dead_letter(path, &all, Some(why));
    }

    /// Moves the `refused` events of the batch at `path` to the dead-letter
    /// file and deletes the batch, counting and logging them once.
    fn dead_letter(&self, path: &Path, refused: &[(usize, String)], whole: Option<&str>) {
        let name = name_of(path);
        self.stats.rejected.fetch_add(refused.len() as u64, Ordering::Relaxed);
        let written = spool::read(path).and_then(|c| {
            let pairs = refused
                .iter()
                .filter_map(|(i, why)| c.events.get(*i).map(|e| (e.as_str(), why.as_str())));
            self.dead.write(&name, pairs)
        });
        match written {
            Ok(()) if whole.is_none() => tracing::warn!(
                batch = %name, refused = refused.len(), first = %refused[0].1,
                file = %self.dead.path().display(), output = %self.transport.target(),
                "{} refused events of a batch; the others are stored", self.transport.kind()
            ),
            Ok(()) => {
                tracing::warn!(batch = %name, events = refused.len(), file = %self.dead.path().display(), "events kept in the dead-letter file")
            }
            Err(e) => {
                tracing::error!(batch = %name, events = refused.len(), error = %e, "the dead-letter file cannot be written: refused events lost")
            }
        }
        let _ = std::fs::remove_file(path);
    }
}

#[cfg(test)]
mod tests {
    use std::io::{BufRead, BufReader, Write};
    use std::net::TcpListener;
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::config::CollectorSection;

    /// A collector that fails (500) on every batch holding an event with
    /// `"poison"`, stores the others, and remembers the `seq`s it stored.
    fn flaky_collector() -> (String, Arc<Mutex<Vec<u64>>>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let stored = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&stored);
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let mut reader = BufReader::new(conn.try_clone().unwrap());
                let mut length = 0usize;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line.trim().is_empty() {
                        break;
                    }
                    if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        length = v.trim().parse().unwrap_or(0);
                    }
                }
                let mut gz = vec![0u8; length];
                std::io::Read::read_exact(&mut reader, &mut gz).unwrap();
                let mut body = String::new();
                std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&gz[..]), &mut body).unwrap();
                let v: serde_json::Value = serde_json::from_str(&body).unwrap();
                let events = v["events"].as_array().unwrap();
                let (status, answer) = if body.contains("poison") {
                    (
                        "500 Internal Server Error",
                        r#"{"error": "internal error: a bug"}"#.to_string(),
                    )
                } else {
                    seen.lock()
                        .unwrap()
                        .extend(events.iter().map(|e| e["seq"].as_u64().unwrap()));
                    (
                        "200 OK",
                        format!(r#"{{"stored": {}, "duplicates": 0, "refused": []}}"#, events.len()),
                    )
                };
                let mut conn = conn;
                let _ = write!(
                    conn,
                    "HTTP/1.1 {status}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{answer}",
                    answer.len()
                );
            }
        });
        (url, stored)
    }

    /// One event the collector always fails on: the batches after it are
    /// delivered meanwhile, its batch is split down to it, and only it
    /// ends in the dead-letter file.
    #[test]
    fn one_poisoned_event_is_isolated_and_the_rest_delivered() {
        let dir = tempfile::tempdir().unwrap();
        let (url, stored) = flaky_collector();
        let event = |seq: u64| {
            let kind = if seq == 7 { "poison" } else { "stats" };
            format!("{{\"seq\":{seq},\"kind\":\"{kind}\",\"ts_us\":1}}")
        };
        for (first, n) in [(1u64, 10u64), (11, 5), (16, 5)] {
            let events: Vec<String> = (first..first + n).map(event).collect();
            let gz = spool::gzip(&spool::body("gw1", events.iter().map(|e| e.as_bytes())).unwrap()).unwrap();
            spool::store(dir.path(), first, n as usize, &gz).unwrap();
        }
        let settings = CollectorSection {
            url,
            token: "t".into(),
            batch_size: 10,
            batch_interval: Duration::from_secs(1),
            spool_dir: dir.path().to_path_buf(),
            spool_max_mb: 16,
            dead_letter_max_mb: 1,
            timeout: Duration::from_secs(5),
        };
        let stats = Arc::new(DeliveryStats::default());
        let sender = Sender {
            spool_dir: dir.path().to_path_buf(),
            transport: Box::new(super::super::http::Http::new(&settings).unwrap()),
            stats: Arc::clone(&stats),
            dead: DeadLetter::new(dir.path(), 1),
        };
        let (wake, rx) = mpsc::sync_channel(1);
        let thread = std::thread::spawn(move || sender.run(rx));
        let started = Instant::now();
        while !spool::spooled(dir.path()).is_empty() {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "still spooled: {:?}",
                spool::spooled(dir.path())
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        drop(wake);
        thread.join().unwrap();
        let mut got = stored.lock().unwrap().clone();
        got.sort_unstable();
        let want: Vec<u64> = (1..=20).filter(|&s| s != 7).collect();
        assert_eq!(got, want, "every other event delivered, once");
        let dead = std::fs::read_to_string(dir.path().join("dead-letter.jsonl")).unwrap();
        let lines: Vec<serde_json::Value> = dead.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(lines.len(), 1, "{dead}");
        assert_eq!(lines[0]["event"]["seq"], 7);
        assert!(lines[0]["reason"].as_str().unwrap().contains("HTTP 500"), "{dead}");
        assert_eq!(stats.rejected.load(Ordering::Relaxed), 1);
        assert_eq!(stats.delivered.load(Ordering::Relaxed), 19);
    }
}
