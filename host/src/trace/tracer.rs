//! trace::tracer: the daemon's traceroute thread, and one-off traces.
//!
//! The capture thread offers every handshake event through a [`TraceHook`]
//! (a bounded channel: capture never waits; overflow is counted); the
//! tracer thread asks the [`Trigger`] whether the remote end needs a trace,
//! runs the [`Engine`] against the raw [`Sockets`], and sends a `route`
//! event per finished trace into the same output queue as the handshakes,
//! so routes pass through the plugin chain too.

use std::collections::VecDeque;
use std::io;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TryRecvError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rustc_hash::FxHashMap;

use super::engine::{Engine, Settings, Transmit};
use super::socket::{self, Sockets};
use super::trigger::{Seen, Trigger, TriggerSettings, Verdict};
use super::{ProbeFilter, Protocol, Request, TraceResult};
use crate::decode::Segment;
use crate::event::{Event, Handshake, Route};
use crate::output::EventQueue;
use crate::time::Timestamp;

/// Handshakes waiting for the tracer thread; beyond, they are counted and
/// skipped (a destination is traced once an hour anyway).
const OFFERS: usize = 4096;
/// Longest sleep of the tracer thread (it checks for stop and new
/// handshakes at least this often).
const IDLE: Duration = Duration::from_millis(50);
/// At shutdown, traces running get this long to finish.
const DRAIN: Duration = Duration::from_secs(3);

/// The capture thread's side: offers handshakes, recognises probes.
#[derive(Clone)]
pub struct TraceHook {
    offers: SyncSender<Seen>,
    filter: Arc<ProbeFilter>,
    stats: Arc<TracerStats>,
}

impl TraceHook {
    pub fn offer(&self, h: &Handshake) {
        if self.offers.try_send(Seen::from(h)).is_err() {
            self.stats.skipped.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn stats(&self) -> &TracerStats {
        &self.stats
    }

    /// The segment is one of our TCP probes or an answer to one.
    pub fn is_probe(&self, s: &Segment) -> bool {
        self.filter.matches(s.src, s.src_port, s.dst, s.dst_port)
    }
}

/// Counters of the tracer thread, readable from others.
#[derive(Default)]
pub struct TracerStats {
    pub traces: AtomicU64,
    pub probes: AtomicU64,
    pub send_errors: AtomicU64,
    pub changed: AtomicU64,
    /// Handshakes not offered because the tracer was behind.
    pub skipped: AtomicU64,
}

pub struct Tracer {
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
    hook: TraceHook,
    stats: Arc<TracerStats>,
}

impl Tracer {
    /// Opens the raw sockets (the error says when CAP_NET_RAW is missing)
    /// and starts the thread; routes go to `queue`.
    pub fn spawn(engine: Settings, trigger: TriggerSettings, queue: EventQueue) -> io::Result<Tracer> {
        let sockets = Sockets::open()?;
        let (tx, rx) = mpsc::sync_channel(OFFERS);
        let filter = Arc::new(ProbeFilter::default());
        let stats = Arc::new(TracerStats::default());
        let stop = Arc::new(AtomicBool::new(false));
        let own = socket::own_addresses();
        let seed = crate::clock::now().as_nanos() as u64 ^ (std::process::id() as u64) << 32;
        let mut worker = Worker {
            engine: Engine::new(engine, seed),
            trigger: Trigger::new(trigger, own),
            sockets,
            offers: rx,
            queue,
            filter: Arc::clone(&filter),
            registered: FxHashMap::default(),
            stats: Arc::clone(&stats),
            next_route: 1,
        };
        let thread_stop = Arc::clone(&stop);
        let handle = std::thread::Builder::new()
            .name("ng-trace".into())
            .spawn(move || worker.run(&thread_stop))?;
        Ok(Tracer {
            stop,
            handle: Some(handle),
            hook: TraceHook {
                offers: tx,
                filter,
                stats: Arc::clone(&stats),
            },
            stats,
        })
    }

    pub fn hook(&self) -> TraceHook {
        self.hook.clone()
    }

    pub fn stats(&self) -> Arc<TracerStats> {
        Arc::clone(&self.stats)
    }

    /// Lets the traces running finish (a few seconds at most), then stops.
    pub fn stop(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

struct Worker {
    engine: Engine,
    trigger: Trigger,
    sockets: Sockets,
    offers: Receiver<Seen>,
    queue: EventQueue,
    filter: Arc<ProbeFilter>,
    /// TCP probe flows in the filter, with when their last probe left.
    registered: FxHashMap<(IpAddr, u16, u16), Timestamp>,
    stats: Arc<TracerStats>,
    next_route: u64,
}

impl Worker {
    fn run(&mut self, stop: &AtomicBool) {
        let mut draining: Option<Instant> = None;
        loop {
            if draining.is_none() && stop.load(Ordering::Relaxed) {
                self.engine.drop_waiting();
                draining = Some(Instant::now() + DRAIN);
            }
            match draining {
                Some(until) if self.engine.busy() == 0 || Instant::now() >= until => break,
                Some(_) => {}
                None => self.take_offers(),
            }
            let (registered, filter, stats) = (&mut self.registered, &self.filter, &self.stats);
            let sent = |t: &Transmit, ok: bool| note_sent(registered, filter, stats, t, ok);
            if let Err(e) = pump(&mut self.engine, &self.sockets, IDLE, sent) {
                tracing::error!(error = %e, "traceroute sockets failed; tracing stops");
                break;
            }
            while let Some(r) = self.engine.poll_result() {
                self.finished(r);
            }
            self.queue.flush();
            self.forget_old_probes();
        }
        self.queue.flush();
    }

    fn take_offers(&mut self) {
        let now = crate::clock::now();
        loop {
            let seen = match self.offers.try_recv() {
                Ok(s) => s,
                Err(TryRecvError::Empty | TryRecvError::Disconnected) => return,
            };
            let Ok(target) = self.trigger.target(&seen, now) else {
                continue;
            };
            let src = match socket::source_for(target.dst) {
                Ok(src) => src,
                Err(e) => {
                    tracing::debug!(dst = %target.dst, error = %e, "no route to trace");
                    self.trigger.abandoned(target.dst);
                    continue;
                }
            };
            let request = Request {
                src,
                dst: target.dst,
                protocol: target.protocol,
                port: target.port,
                handshake_id: Some(target.handshake_id),
                hops_hint: target.hops,
            };
            if !self.engine.start(request, now) {
                self.trigger.abandoned(target.dst);
            }
        }
    }

    /// Probe flows quiet for longer than a timeout and a margin leave the
    /// filter (their answers, even late, are in).
    fn forget_old_probes(&mut self) {
        if self.registered.is_empty() {
            return;
        }
        let cutoff = self.engine.settings().timeout + Duration::from_secs(2);
        let now = crate::clock::now();
        let filter = &self.filter;
        self.registered.retain(|&(dst, sport, dport), last| {
            let keep = now - *last < cutoff;
            if !keep {
                filter.remove(dst, sport, dport);
            }
            keep
        });
    }

    fn finished(&mut self, r: TraceResult) {
        self.stats.traces.fetch_add(1, Ordering::Relaxed);
        let verdict = self.trigger.finished(&r);
        if verdict.changed {
            self.stats.changed.fetch_add(1, Ordering::Relaxed);
            tracing::info!(dst = %r.request.dst, "route changed");
        }
        let route = route_event(self.next_route, &r, verdict);
        self.next_route += 1;
        self.queue.send(Event::Route(route));
    }
}

/// Counts a probe; a TCP probe's flow goes into the filter that keeps it
/// out of the handshake tracker.
fn note_sent(
    registered: &mut FxHashMap<(IpAddr, u16, u16), Timestamp>,
    filter: &ProbeFilter,
    stats: &TracerStats,
    t: &Transmit,
    ok: bool,
) {
    stats.probes.fetch_add(1, Ordering::Relaxed);
    if !ok {
        stats.send_errors.fetch_add(1, Ordering::Relaxed);
    }
    if t.protocol != Protocol::Tcp {
        return;
    }
    if let Some(ports) = t.bytes.get(..4) {
        let sport = u16::from_be_bytes([ports[0], ports[1]]);
        let dport = u16::from_be_bytes([ports[2], ports[3]]);
        if registered.insert((t.dst, sport, dport), crate::clock::now()).is_none() {
            filter.add(t.dst, sport, dport);
        }
    }
}

/// One round of the engine against the sockets: expire, send what the
/// budget allows, wait for answers (at most `max_wait`, less when a
/// deadline is nearer), read them. `sent` hears of every probe and whether
/// the kernel took it.
pub fn pump(
    engine: &mut Engine,
    sockets: &Sockets,
    max_wait: Duration,
    mut sent: impl FnMut(&Transmit, bool),
) -> io::Result<()> {
    let now = crate::clock::now();
    engine.handle_timeout(now);
    // Each probe is stamped just before it leaves. Answers already in are
    // read between sends: on a short path the destination's answer can
    // arrive before the next probe leaves, and cancels the probes beyond.
    while let Some(t) = engine.poll_transmit(crate::clock::now()) {
        // A refused probe (no route, firewall) is left to time out.
        let ok = sockets.send(&t).is_ok();
        sent(&t, ok);
        sockets.receive(|a, at| engine.handle_answer(&a, at))?;
    }
    if engine.has_results() {
        // Finished while sending: hand the results over before waiting.
        return Ok(());
    }
    let wait = engine
        .poll_timeout()
        .map_or(max_wait, |at| (at - now).max(Duration::from_micros(100)))
        .min(max_wait);
    sockets.wait(wait)?;
    sockets.receive(|a, at| engine.handle_answer(&a, at))?;
    engine.handle_timeout(crate::clock::now());
    Ok(())
}

/// The `route` event of a finished trace.
pub fn route_event(id: u64, r: &TraceResult, verdict: Verdict) -> Route {
    Route {
        id,
        ts: r.started,
        ts_us: r.started.as_micros(),
        handshake_id: r.request.handshake_id,
        src_ip: r.request.src,
        dst_ip: r.request.dst,
        ip_version: if r.request.dst.is_ipv4() { 4 } else { 6 },
        protocol: r.protocol,
        style: r.style,
        dst_port: r.dst_port,
        reached: r.reached,
        hop_count: r.reached.then(|| r.hops.last().map_or(0, |h| h.ttl)),
        duration_us: r.finished.micros_since(r.started),
        hops: r.hops.clone(),
        changed: verdict.changed,
        previous_hops: verdict.previous,
    }
}

/// Runs traces to completion on their own (the `trace` command): every
/// request at once, results in order of completion.
pub fn trace_now(settings: Settings, requests: Vec<Request>) -> io::Result<Vec<TraceResult>> {
    let v6 = |r: &Request| r.dst.is_ipv6();
    let sockets = Sockets::open_only(requests.iter().any(|r| !v6(r)), requests.iter().any(v6))?;
    let seed = crate::clock::now().as_nanos() as u64 ^ (std::process::id() as u64) << 32;
    let mut engine = Engine::new(settings, seed);
    let now = crate::clock::now();
    let wanted = requests.len();
    for r in requests {
        engine.start(r, now);
    }
    let mut done = VecDeque::new();
    while done.len() < wanted {
        pump(&mut engine, &sockets, IDLE, |_, _| {})?;
        while let Some(r) = engine.poll_result() {
            done.push_back(r);
        }
        if engine.busy() == 0 && done.len() < wanted {
            break;
        }
    }
    Ok(done.into())
}
