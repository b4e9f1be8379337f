//! pipeline: capture → decode → track → outputs, one packet at a time.
//!
//! The same [`Pipeline`] serves live capture and replay; the drivers in
//! [`crate::app`] feed it packets and wall-clock ticks. It owns the decode
//! counters and the tracker, and hands every event to the output queue.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::capture::live::KernelStats;
use crate::capture::RawPacket;
use crate::decode::{self, DecodeCounters, Interest, LinkType};
use crate::event::{Event, Outcome, Stats};
use crate::output::EventQueue;
use crate::time::Timestamp;
use crate::trace::tracer::TraceHook;
use crate::track::Tracker;

/// A replay filter libpcap does not compile.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("capture filter `{expression}` is invalid: {reason}")]
pub struct InvalidFilter {
    pub expression: String,
    pub reason: String,
}

/// A user-space BPF filter for replays (`--filter`), compiled once per link
/// type with libpcap so it means exactly what it means live.
pub struct ReplayFilter {
    expression: String,
    compiled: Vec<(LinkType, Option<crate::capture::libpcap::Program>)>,
}

impl ReplayFilter {
    /// Checks the expression compiles (for Ethernet) before any file is read.
    pub fn new(expression: String) -> Result<Self, InvalidFilter> {
        let mut f = ReplayFilter {
            expression: expression.clone(),
            compiled: Vec::new(),
        };
        if let Err(reason) = f.program(LinkType::Ethernet) {
            return Err(InvalidFilter { expression, reason });
        }
        Ok(f)
    }

    fn program(&mut self, link: LinkType) -> Result<Option<&crate::capture::libpcap::Program>, String> {
        if let Some(i) = self.compiled.iter().position(|(l, _)| *l == link) {
            return Ok(self.compiled[i].1.as_ref());
        }
        let prog =
            crate::capture::libpcap::Program::compile(link.to_linktype(), &self.expression).map_err(|e| e.to_string());
        let prog = match prog {
            Ok(p) => Some(p),
            Err(e) if link == LinkType::Ethernet => return Err(e),
            Err(e) => {
                // Some expressions do not apply to some link types (`ether
                // host` on raw IP): such packets do not match.
                tracing::warn!(link = ?link, error = %e, "filter does not apply to this link type; its packets are skipped");
                None
            }
        };
        self.compiled.push((link, prog));
        Ok(self.compiled.last().and_then(|(_, p)| p.as_ref()))
    }

    fn matches(&mut self, pkt: &RawPacket) -> bool {
        match self.program(pkt.link) {
            Ok(Some(p)) => p.matches(pkt.data),
            _ => false,
        }
    }
}

pub struct Pipeline {
    tracker: Tracker,
    decode: DecodeCounters,
    queue: EventQueue,
    filter: Option<ReplayFilter>,
    interest: Interest,
    next_timeout: Option<Timestamp>,
    packets: u64,
    filtered: u64,
    last_ts: Timestamp,
    trace: Option<TraceHook>,
    trace_probes: u64,
    delivery: Vec<std::sync::Arc<crate::output::delivery::DeliveryStats>>,
}

impl Pipeline {
    pub fn new(tracker: Tracker, queue: EventQueue, filter: Option<ReplayFilter>, interest: Interest) -> Self {
        Pipeline {
            tracker,
            decode: DecodeCounters::default(),
            queue,
            filter,
            interest,
            next_timeout: None,
            packets: 0,
            filtered: 0,
            last_ts: Timestamp::ZERO,
            trace: None,
            trace_probes: 0,
            delivery: Vec::new(),
        }
    }

    /// Reports the collector delivery's counters in the stats events.
    /// A delivery counter summed over the deliveries; none without one.
    fn delivery_sum(&self, counter: impl Fn(&crate::output::delivery::DeliveryStats) -> &AtomicU64) -> Option<u64> {
        (!self.delivery.is_empty()).then(|| self.delivery.iter().map(|d| counter(d).load(Ordering::Relaxed)).sum())
    }

    pub fn set_delivery_stats(&mut self, stats: Vec<std::sync::Arc<crate::output::delivery::DeliveryStats>>) {
        self.delivery = stats;
    }

    /// Offers handshakes to the tracer, and leaves its probes out.
    pub fn set_trace_hook(&mut self, hook: TraceHook) {
        self.trace = Some(hook);
    }

    /// Another sending end into the outputs (for the tracer's routes).
    pub fn event_producer(&self) -> EventQueue {
        self.queue.producer()
    }

    /// Events waiting for the output thread, as it changes (metrics).
    pub fn queued(&self) -> std::sync::Arc<std::sync::atomic::AtomicU64> {
        self.queue.queued()
    }

    /// Events dropped so far because the output queue was full.
    pub fn queue_drops(&self) -> u64 {
        self.queue.drops()
    }

    /// Wakes the output thread (for a reloaded plugin chain).
    pub fn waker(&self) -> crate::output::Waker {
        self.queue.waker()
    }

    pub fn tracker(&self) -> &Tracker {
        &self.tracker
    }

    pub fn decode_counters(&self) -> &DecodeCounters {
        &self.decode
    }

    pub fn packets(&self) -> u64 {
        self.packets
    }

    /// Packets a replay `--filter` left out.
    pub fn filtered(&self) -> u64 {
        self.filtered
    }

    /// The latest packet time seen.
    pub fn last_ts(&self) -> Timestamp {
        self.last_ts
    }

    pub fn handle_packet(&mut self, pkt: &RawPacket) {
        self.packets += 1;
        self.last_ts = self.last_ts.max(pkt.ts);
        if let Some(f) = self.filter.as_mut() {
            if !f.matches(pkt) {
                self.filtered += 1;
                return;
            }
        }
        // The tracker changes (and has events or a new deadline to give)
        // only on a timeout or a segment: most packets are neither.
        let mut changed = false;
        if self.next_timeout.is_some_and(|t| t <= pkt.ts) {
            self.tracker.handle_timeout(pkt.ts);
            changed = true;
        }
        let decode = &mut self.decode;
        match decode::decode(pkt.link, pkt.data, self.interest, |w| decode.count_error(w)) {
            Ok(seg) if self.trace.as_ref().is_some_and(|t| t.is_probe(&seg)) => self.trace_probes += 1,
            Ok(seg) => {
                self.tracker.handle_segment(pkt.ts, &seg);
                changed = true;
            }
            Err(skip) => self.decode.count(skip),
        }
        if changed {
            self.drain();
        }
    }

    /// Runs timers at wall-clock `now` and hands pending events to the
    /// outputs (live capture, between packets and every few thousand).
    pub fn tick(&mut self, now: Timestamp) {
        if self.next_timeout.is_some_and(|t| t <= now) {
            self.tracker.handle_timeout(now);
            self.drain();
        }
        self.queue.flush();
    }

    fn drain(&mut self) {
        while let Some(event) = self.tracker.poll_event() {
            if let (Some(t), Event::Handshake(h)) = (&self.trace, &event) {
                t.offer(h);
            }
            self.queue.send(event);
        }
        self.next_timeout = self.tracker.poll_timeout();
    }

    /// End of capture: reports what is open as of `now` (flows with
    /// `end_reason` `shutdown`), then a final stats event. The queue waits
    /// for the output thread until `deadline` instead of dropping, so a stop
    /// loses nothing unless the outputs cannot keep up by then. Returns the
    /// queue so the caller can close it.
    pub fn finish(
        mut self,
        now: Timestamp,
        kernel: Option<KernelStats>,
        deadline: std::time::Instant,
    ) -> (EventQueue, Stats) {
        self.queue.finish_by(deadline);
        while self.tracker.flush_step(now, 4096) {
            self.drain();
        }
        self.drain();
        let stats = self.stats(now, kernel);
        self.queue.send(Event::Stats(stats.clone()));
        self.queue.flush();
        (self.queue, stats)
    }

    /// Writes a stats event now and returns it.
    pub fn emit_stats(&mut self, now: Timestamp, kernel: Option<KernelStats>) -> Stats {
        let stats = self.stats(now, kernel);
        self.queue.send(Event::Stats(stats.clone()));
        self.queue.flush();
        stats
    }

    pub fn stats(&self, now: Timestamp, kernel: Option<KernelStats>) -> Stats {
        let t = self.tracker.stats();
        Stats {
            ts: now,
            ts_us: now.as_micros(),
            packets: self.packets,
            segments: t.segments,
            ignored: self.decode.ignored_by_kind().map(|(k, n)| (k.name(), n)).collect(),
            decode_errors: self.decode.errors_by_kind().map(|(k, n)| (k.name(), n)).collect(),
            kernel_drops: kernel.map(|k| k.dropped),
            interface_drops: kernel.map(|k| k.if_dropped),
            duplicates: t.duplicates,
            attempts: Outcome::VALUES
                .iter()
                .map(|&o| (o.name(), t.attempts(o)))
                .collect::<BTreeMap<_, _>>(),
            synack_without_syn: t.synack_without_syn,
            table_size: self.tracker.table_size() as u64,
            table_peak: t.table_peak,
            evictions: t.evictions,
            late_synacks: t.late_synacks,
            flows: t.flows,
            scans: self.tracker.scans_detected(),
            queue_drops: self.queue.drops(),
            trace_probes: self.trace_probes,
            routes: self.trace.as_ref().map(|t| t.stats().traces.load(Ordering::Relaxed)),
            probes_sent: self.trace.as_ref().map(|t| t.stats().probes.load(Ordering::Relaxed)),
            delivered: self.delivery_sum(|d| &d.delivered),
            delivery_retries: self.delivery_sum(|d| &d.retries),
            spool_dropped: self.delivery_sum(|d| &d.dropped),
            delivery_rejected: self.delivery_sum(|d| &d.rejected),
        }
    }
}

/// Every event a replay of `file` gives (no filter, plugins or tracer;
/// private ranges as the local networks), in order, collected in memory:
/// for tests and tools that need a capture's events rather than JSON lines.
pub fn events_of(
    track: crate::track::TrackConfig,
    interest: Interest,
    file: &mut crate::capture::file::CaptureFile,
) -> Vec<crate::event::Tagged> {
    use crate::output::{Backpressure, Output, Passthrough};

    struct Collect(std::sync::mpsc::Sender<crate::event::Tagged>);
    impl Output for Collect {
        fn name(&self) -> &str {
            "collect"
        }
        fn write(&mut self, item: &crate::event::Tagged) -> std::io::Result<()> {
            let _ = self.0.send(item.clone());
            Ok(())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    let (tx, rx) = std::sync::mpsc::channel();
    let (queue, thread) = EventQueue::spawn(
        vec![Box::new(Collect(tx))],
        Box::new(Passthrough),
        4096,
        Backpressure::Wait,
    );
    let tracker = Tracker::new(track, crate::track::LocalNetworks::private_ranges());
    let mut pipeline = Pipeline::new(tracker, queue, None, interest);
    let mut records = file.records();
    while let Some(Ok(packet)) = records.next_packet() {
        pipeline.handle_packet(&packet);
    }
    let end = pipeline.last_ts();
    drop(pipeline.finish(
        end,
        None,
        std::time::Instant::now() + std::time::Duration::from_secs(60),
    ));
    thread.join();
    rx.try_iter().collect()
}
