//! trace::engine: many traceroutes at once, as a state machine.
//!
//! Requests, answers and `now` in; probes to send, deadlines and finished
//! traces out; no sockets and no clock (STYLE.md habit 2), so timeouts,
//! reordering, duplicates and the budget are tested in simulated time.
//!
//! A trace queues every probe at once — one per TTL from `first_ttl` to
//! `max_ttl`, then the next attempt of each — and the engine hands them out
//! under a global token bucket (`rate` probes per second, `burst` at once),
//! round-robin across at most `max_concurrent` traces; more wait their turn.
//! The first attempts of all TTLs leave together, with the retries of the
//! TTLs assumed to be on the path (the hop count the handshake suggested,
//! plus one, else `assume_hops`); the other retries follow as soon as their
//! TTL is known to be on the path (its first attempt was answered, or the
//! destination answered further out). A path thus takes about one probe
//! timeout — one round trip when everything answers — not one per hop. The first answer from the destination (or an unreachable
//! that ends the path) at TTL *d* cancels the probes beyond *d* not yet
//! sent — the retries beyond the destination never leave — and stops
//! waiting for the ones in flight there; the trace ends when nothing at or
//! below *d* is queued or in flight.

use std::collections::VecDeque;
use std::net::IpAddr;
use std::time::Duration;

use rustc_hash::FxHashMap;

use super::wire::{self, Answer, Flow, Signature};
use super::{HopResult, ProbeRecord, Protocol, Request, Style, TraceResult};
use crate::time::Timestamp;

/// UDP and TCP probes leave from ports `SOURCE_PORT_BASE..+SOURCE_PORTS`,
/// one per concurrent trace.
const SOURCE_PORT_BASE: u16 = 47000;
const SOURCE_PORTS: u16 = 2048;
/// At most this many attempts per TTL (the key has four bits for it).
pub const MAX_PROBES_PER_HOP: u8 = 15;

#[derive(Clone, Debug, PartialEq)]
pub struct Settings {
    pub first_ttl: u8,
    pub max_ttl: u8,
    pub probes_per_hop: u8,
    /// How long a probe's answer is waited for.
    pub timeout: Duration,
    /// Probes per second, all traces together.
    pub rate: u32,
    /// Probes that may leave at once after a quiet spell.
    pub burst: u32,
    pub max_concurrent: usize,
    /// Requests that may wait for a free slot; more are refused and counted.
    pub max_waiting: usize,
    pub style: Style,
    /// TTLs up to this are taken to be on the path unless the request has
    /// a better guess: their retries leave with the first attempts. Beyond
    /// it, a TTL's retries wait until it is known to be on the path.
    pub assume_hops: u8,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            first_ttl: 1,
            max_ttl: 30,
            probes_per_hop: 3,
            timeout: Duration::from_secs(1),
            rate: 1000,
            burst: 100,
            max_concurrent: 16,
            max_waiting: 1024,
            style: Style::Paris,
            assume_hops: 16,
        }
    }
}

/// A probe to send now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transmit {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub protocol: Protocol,
    pub ttl: u8,
    /// Transport header and payload.
    pub bytes: Vec<u8>,
}

/// What the engine did, for the metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    pub traces_started: u64,
    pub traces_finished: u64,
    pub probes_sent: u64,
    pub answers: u64,
    /// Answers to no probe in flight: duplicates, answers after their
    /// timeout, strangers' traffic on the raw sockets.
    pub unmatched: u64,
    /// Requests refused because too many were waiting.
    pub refused: u64,
}

struct InFlight {
    /// The trace's slot, and its id (a slot is reused by later traces).
    slot: usize,
    trace: u64,
    serial: u64,
    ttl: u8,
    probe: usize,
    sent: Timestamp,
}

#[derive(Default)]
struct Hop {
    sent: u32,
    in_flight: u32,
    /// The first attempt was answered or timed out: the others may go.
    first_done: bool,
    rtts: Vec<f64>,
    /// Responders in order of first answer, with their answer counts.
    responders: Vec<(IpAddr, u32)>,
    icmp: Option<(u8, u8)>,
    quoted_ttl: Option<u8>,
}

struct Trace {
    id: u64,
    request: Request,
    flow: Flow,
    started: Timestamp,
    /// Probes not yet sent: (ttl, attempt), attempt-major.
    queue: VecDeque<(u8, u8)>,
    /// Probes beyond this TTL are not sent or waited for.
    limit: u8,
    /// Retries up to this TTL need not wait for their first attempt.
    assumed: u8,
    reached: bool,
    hops: Vec<Hop>,
    probes: Vec<ProbeRecord>,
}

impl Trace {
    fn hop(&mut self, ttl: u8) -> &mut Hop {
        &mut self.hops[ttl as usize - 1]
    }

    /// The position in the queue of the next probe that may leave: at or
    /// below the limit, and either a first attempt, or a retry once its
    /// TTL is taken to be on the path (up to the assumed length), or known
    /// to be (the end of the path was found further out, or its first
    /// attempt is settled). The retries of TTLs beyond the destination are
    /// thus seldom sent.
    fn next_sendable(&self) -> Option<usize> {
        let end_known = self.limit < self.hops.len() as u8;
        self.queue.iter().position(|&(ttl, attempt)| {
            ttl <= self.limit
                && (attempt == 0 || ttl <= self.assumed || end_known || self.hops[ttl as usize - 1].first_done)
        })
    }

    fn done(&self) -> bool {
        self.queue.iter().all(|&(ttl, _)| ttl > self.limit)
            && self.hops[..self.limit as usize].iter().all(|h| h.in_flight == 0)
    }
}

/// The probes-per-second budget.
struct Bucket {
    tokens: f64,
    at: Timestamp,
    rate: f64,
    burst: f64,
}

impl Bucket {
    fn refill(&mut self, now: Timestamp) {
        let elapsed = now.micros_since(self.at).max(0.0) / 1e6;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        self.at = self.at.max(now);
    }

    /// When the next whole token will be there.
    fn next_token(&self) -> Timestamp {
        let missing = (1.0 - self.tokens).max(0.0);
        self.at + Duration::from_secs_f64(missing / self.rate)
    }
}

pub struct Engine {
    settings: Settings,
    traces: slab::Slab<Trace>,
    /// Slots of traces with probes to send, round-robin.
    turn: VecDeque<usize>,
    waiting: VecDeque<(Request, Timestamp)>,
    in_flight: FxHashMap<Signature, InFlight>,
    deadlines: VecDeque<(Timestamp, Signature, u64)>,
    bucket: Bucket,
    results: VecDeque<TraceResult>,
    next_trace: u64,
    next_serial: u64,
    next_ident: u16,
    rng: u64,
    counters: Counters,
}

impl Engine {
    /// `seed` varies identifiers and cookies between runs (a stale answer
    /// from an earlier run must not match).
    pub fn new(settings: Settings, seed: u64) -> Self {
        let mut settings = settings;
        settings.probes_per_hop = settings.probes_per_hop.clamp(1, MAX_PROBES_PER_HOP);
        settings.first_ttl = settings.first_ttl.max(1);
        settings.max_ttl = settings.max_ttl.max(settings.first_ttl);
        settings.rate = settings.rate.max(1);
        let bucket = Bucket {
            tokens: settings.burst.max(1) as f64,
            at: Timestamp::ZERO,
            rate: settings.rate as f64,
            burst: settings.burst.max(1) as f64,
        };
        let rng = seed | 1;
        Engine {
            traces: slab::Slab::new(),
            turn: VecDeque::new(),
            waiting: VecDeque::new(),
            in_flight: FxHashMap::default(),
            deadlines: VecDeque::new(),
            bucket,
            results: VecDeque::new(),
            next_trace: 1,
            next_serial: 1,
            next_ident: (seed >> 16) as u16,
            rng,
            counters: Counters::default(),
            settings,
        }
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    pub fn counters(&self) -> Counters {
        self.counters
    }

    /// Traces running and waiting.
    pub fn busy(&self) -> usize {
        self.traces.len() + self.waiting.len()
    }

    /// Forgets the traces that have not started (shutdown).
    pub fn drop_waiting(&mut self) {
        self.waiting.clear();
    }

    /// Queues a trace; false when too many wait already (counted).
    pub fn start(&mut self, request: Request, now: Timestamp) -> bool {
        if self.traces.len() < self.settings.max_concurrent {
            self.activate(request, now);
            true
        } else if self.waiting.len() < self.settings.max_waiting {
            self.waiting.push_back((request, now));
            true
        } else {
            self.counters.refused += 1;
            false
        }
    }

    fn random(&mut self) -> u64 {
        // xorshift64: cookies and identifiers need variety, not secrecy.
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        self.rng
    }

    fn activate(&mut self, request: Request, now: Timestamp) {
        let cookie = self.random() as u16;
        let s = &self.settings;
        let ident_seq = self.next_ident;
        self.next_ident = self.next_ident.wrapping_add(1);
        let (ident, port) = match request.protocol {
            Protocol::Icmp => (ident_seq, 0),
            Protocol::Udp => (
                SOURCE_PORT_BASE + ident_seq % SOURCE_PORTS,
                request.port.unwrap_or(wire::UDP_BASE_PORT),
            ),
            Protocol::Tcp => (SOURCE_PORT_BASE + ident_seq % SOURCE_PORTS, request.port.unwrap_or(80)),
        };
        let mut queue = VecDeque::new();
        for attempt in 0..s.probes_per_hop {
            for ttl in s.first_ttl..=s.max_ttl {
                queue.push_back((ttl, attempt));
            }
        }
        let flow = Flow {
            src: request.src,
            dst: request.dst,
            protocol: request.protocol,
            style: s.style,
            ident,
            port,
            cookie,
        };
        let assumed = request.hops_hint.map_or(s.assume_hops, |h| h.saturating_add(1));
        let trace = Trace {
            id: self.next_trace,
            request,
            flow,
            started: now,
            queue,
            limit: s.max_ttl,
            assumed,
            reached: false,
            hops: (0..s.max_ttl).map(|_| Hop::default()).collect(),
            probes: Vec::new(),
        };
        self.next_trace += 1;
        self.counters.traces_started += 1;
        let slot = self.traces.insert(trace);
        self.turn.push_back(slot);
    }

    /// The next probe to send, if the budget allows one now.
    pub fn poll_transmit(&mut self, now: Timestamp) -> Option<Transmit> {
        self.bucket.refill(now);
        if self.bucket.tokens < 1.0 {
            return None;
        }
        let mut held = Vec::new();
        let found = self.next_probe(now, &mut held);
        self.turn.extend(held);
        found
    }

    fn next_probe(&mut self, now: Timestamp, held: &mut Vec<usize>) -> Option<Transmit> {
        while let Some(slot) = self.turn.pop_front() {
            let Some(trace) = self.traces.get_mut(slot) else {
                continue;
            };
            let limit = trace.limit;
            trace.queue.retain(|&(ttl, _)| ttl <= limit);
            let Some((ttl, attempt)) = trace.next_sendable().and_then(|i| trace.queue.remove(i)) else {
                if trace.queue.is_empty() {
                    // Nothing left to send: it ends when its answers are in.
                    self.finish_if_done(slot, now);
                } else {
                    // Retries wait for their first attempts; back in turn.
                    held.push(slot);
                }
                continue;
            };
            let key = wire::key(ttl, attempt);
            let bytes = trace.flow.probe(key);
            let Some(signature) = wire::signature_of(trace.flow.dst, trace.flow.protocol, &bytes) else {
                continue;
            };
            let serial = self.next_serial;
            self.next_serial += 1;
            let probe = trace.probes.len();
            trace.probes.push(ProbeRecord {
                ttl,
                attempt,
                sent_us: now.as_micros(),
                from: None,
                rtt_us: None,
            });
            let hop = trace.hop(ttl);
            hop.sent += 1;
            hop.in_flight += 1;
            let transmit = Transmit {
                src: trace.flow.src,
                dst: trace.flow.dst,
                protocol: trace.flow.protocol,
                ttl,
                bytes,
            };
            // A signature still in flight from an earlier trace is replaced:
            // its answer would be ambiguous anyway.
            self.in_flight.insert(
                signature,
                InFlight {
                    slot,
                    trace: trace.id,
                    serial,
                    ttl,
                    probe,
                    sent: now,
                },
            );
            self.deadlines
                .push_back((now + self.settings.timeout, signature, serial));
            self.turn.push_back(slot);
            self.bucket.tokens -= 1.0;
            self.counters.probes_sent += 1;
            return Some(transmit);
        }
        None
    }

    /// An answer arrived at `now`.
    pub fn handle_answer(&mut self, answer: &Answer, now: Timestamp) {
        let Some(f) = self.in_flight.remove(&answer.signature) else {
            self.counters.unmatched += 1;
            return;
        };
        let slot = f.slot;
        let Some(trace) = self.traces.get_mut(slot).filter(|t| t.id == f.trace) else {
            // Its trace ended (a probe beyond the destination).
            self.counters.unmatched += 1;
            return;
        };
        self.counters.answers += 1;
        let ttl = f.ttl;
        let rtt = now.micros_since(f.sent).max(0.0);
        let limit = trace.limit;
        let first = trace.probes[f.probe].attempt == 0;
        let hop = trace.hop(ttl);
        hop.in_flight -= 1;
        hop.first_done |= first;
        if ttl > limit {
            return;
        }
        hop.rtts.push(rtt);
        match hop.responders.iter_mut().find(|(a, _)| *a == answer.from) {
            Some((_, n)) => *n += 1,
            None => hop.responders.push((answer.from, 1)),
        }
        hop.icmp = hop.icmp.or(answer.icmp);
        if answer.quoted_ttl.is_some_and(|q| q != 1) {
            hop.quoted_ttl = hop.quoted_ttl.or(answer.quoted_ttl);
        }
        let record = &mut trace.probes[f.probe];
        record.from = Some(answer.from);
        record.rtt_us = Some(rtt);
        if answer.ends_path() {
            let reached = super::reached_destination(answer);
            if ttl < trace.limit || (ttl == trace.limit && reached) {
                trace.limit = ttl;
                trace.reached = reached;
            }
        }
        self.finish_if_done(slot, now);
    }

    /// Expires the probes whose time is up.
    pub fn handle_timeout(&mut self, now: Timestamp) {
        while let Some(&(deadline, signature, serial)) = self.deadlines.front() {
            if deadline > now {
                break;
            }
            self.deadlines.pop_front();
            if self.in_flight.get(&signature).is_none_or(|f| f.serial != serial) {
                continue; // answered, or replaced
            }
            let Some(f) = self.in_flight.remove(&signature) else {
                continue;
            };
            if let Some(trace) = self.traces.get_mut(f.slot).filter(|t| t.id == f.trace) {
                let slot = f.slot;
                let first = trace.probes[f.probe].attempt == 0;
                let hop = trace.hop(f.ttl);
                hop.in_flight -= 1;
                hop.first_done |= first;
                self.finish_if_done(slot, now);
            }
        }
        // Traces whose last probes were cancelled rather than expired.
        let slots: Vec<usize> = self.traces.iter().map(|(s, _)| s).collect();
        for slot in slots {
            self.finish_if_done(slot, now);
        }
    }

    /// When `handle_timeout` or `poll_transmit` has work next.
    pub fn poll_timeout(&self) -> Option<Timestamp> {
        let deadline = self.deadlines.front().map(|d| d.0);
        let sending = self
            .turn
            .iter()
            .any(|&s| self.traces.get(s).is_some_and(|t| t.next_sendable().is_some()));
        let token = sending.then(|| self.bucket.next_token());
        match (deadline, token) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Finished traces wait for `poll_result`.
    pub fn has_results(&self) -> bool {
        !self.results.is_empty()
    }

    /// A finished trace.
    pub fn poll_result(&mut self) -> Option<TraceResult> {
        self.results.pop_front()
    }

    fn finish_if_done(&mut self, slot: usize, now: Timestamp) {
        if !self.traces.get(slot).is_some_and(Trace::done) {
            return;
        }
        let trace = self.traces.remove(slot);
        self.turn.retain(|&s| s != slot);
        self.counters.traces_finished += 1;
        self.results.push_back(result(trace, now));
        while self.traces.len() < self.settings.max_concurrent {
            let Some((request, _)) = self.waiting.pop_front() else {
                break;
            };
            self.activate(request, now);
        }
    }
}

fn result(trace: Trace, now: Timestamp) -> TraceResult {
    // Hops up to the end of the path; for a path that did not reach its
    // end, up to the last hop that answered (silent hops in between stay,
    // reported as missing).
    let last = if trace.reached || trace.limit < trace.hops.len() as u8 {
        trace.limit as usize
    } else {
        trace.hops.iter().rposition(|h| !h.rtts.is_empty()).map_or(0, |i| i + 1)
    };
    let hops = trace
        .hops
        .into_iter()
        .enumerate()
        .take(last)
        .filter(|(_, h)| h.sent > 0)
        .map(|(i, h)| {
            let mut responders = h.responders;
            // Most answers first; ties keep the order of first answer.
            responders.sort_by_key(|r| std::cmp::Reverse(r.1));
            let mut addrs = responders.into_iter().map(|(a, _)| a);
            let n = h.rtts.len() as f64;
            HopResult {
                ttl: i as u8 + 1,
                addr: addrs.next(),
                other_addrs: addrs.collect(),
                sent: h.sent,
                received: h.rtts.len() as u32,
                rtt_min_us: h.rtts.iter().copied().reduce(f64::min),
                rtt_avg_us: (n > 0.0).then(|| h.rtts.iter().sum::<f64>() / n),
                rtt_max_us: h.rtts.iter().copied().reduce(f64::max),
                icmp_type: h.icmp.map(|i| i.0),
                icmp_code: h.icmp.map(|i| i.1),
                quoted_ttl: h.quoted_ttl,
            }
        })
        .collect();
    TraceResult {
        request: trace.request,
        protocol: trace.flow.protocol,
        style: trace.flow.style,
        dst_port: (trace.flow.protocol != Protocol::Icmp).then_some(trace.flow.port),
        started: trace.started,
        finished: now,
        reached: trace.reached,
        hops,
        probes: trace.probes,
    }
}

#[cfg(test)]
mod tests;
