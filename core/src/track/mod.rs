//! track: TCP segments and `now` in, events out (sans-IO).
//!
//! The [`Tracker`] follows every connection attempt from its first SYN to its
//! answer (SYN-ACK, RST or nothing) and, in quality mode, every flow to its
//! end; it feeds inbound attempts to the scan detector. It never reads a
//! clock or touches a socket: drivers call [`Tracker::handle_segment`] with
//! each decoded segment and its capture time, [`Tracker::handle_timeout`]
//! when [`Tracker::poll_timeout`] says a timer is due, and drain
//! [`Tracker::poll_event`]. Memory is bounded: beyond `max_connections` the
//! oldest entries are evicted and counted.
//!
//! Time is the capture's: packet timestamps may go backwards (a SYN-ACK
//! captured before its SYN); RTTs use the packets' own timestamps, timers use
//! the latest time seen.

mod conn;
mod direction;
mod flow;
mod scan;
mod table;
mod timer;

use std::collections::VecDeque;
use std::time::Duration;

use rustc_hash::{FxHashMap, FxHashSet};

pub use direction::LocalNetworks;
pub use scan::ScanConfig;

use self::conn::{Change, Conn, FlowState, Key, LastSeen, State, Step, SynAck, C2S, S2C};
use self::scan::ScanDetector;
use self::table::ConnTable;
use self::timer::{Timer, TimerTable};
use crate::decode::Segment;
use crate::event::{Direction, Event, FlowEnd, Outcome, Side};
use crate::time::Timestamp;

/// What the tracker follows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Handshakes only: SYN, SYN-ACK, the client's ACK, RST.
    #[default]
    Handshake,
    /// Handshakes and per-flow quality (all TCP).
    Quality,
}

/// Tracker settings. The defaults are here and only here; the sensor's
/// configuration reads them.
#[derive(Clone, Debug)]
pub struct TrackConfig {
    pub mode: Mode,
    pub vlan_in_key: bool,
    /// No SYN-ACK or RST this long after the first SYN: `unanswered`.
    pub unanswered_timeout: Duration,
    /// How long to wait for the client's ACK after the SYN-ACK.
    pub ack_timeout: Duration,
    /// How long a SYN-ACK without SYN waits for a SYN captured after it.
    pub reorder_window: Duration,
    /// The same segment seen again within this time is a duplicate capture.
    pub duplicate_window: Duration,
    /// How long a reported attempt stays to absorb late retransmissions.
    pub linger: Duration,
    /// Quality mode: a flow with no packet this long ends.
    pub flow_idle_timeout: Duration,
    /// Entries (attempts and flows) held at once.
    pub max_connections: usize,
    /// SYN-ACKs without SYN held at once for `reorder_window`.
    pub max_orphans: usize,
    pub scan: ScanConfig,
}

impl Default for TrackConfig {
    fn default() -> Self {
        TrackConfig {
            mode: Mode::Handshake,
            vlan_in_key: false,
            unanswered_timeout: Duration::from_secs(30),
            ack_timeout: Duration::from_secs(5),
            reorder_window: Duration::from_secs(1),
            duplicate_window: Duration::from_millis(1),
            // Covers Linux's SYN retransmissions at 31 s and 63 s after an
            // attempt reported unanswered at 30 s, so they are not taken
            // for new attempts.
            linger: Duration::from_secs(60),
            flow_idle_timeout: Duration::from_secs(300),
            // A full table of this many entries takes about 150 MB under a
            // million-source SYN flood (docs/benchmarks.md).
            max_connections: 200_000,
            max_orphans: 65_536,
            scan: ScanConfig::default(),
        }
    }
}

/// Counters the tracker keeps.
#[derive(Clone, Debug, Default)]
pub struct TrackStats {
    pub segments: u64,
    pub duplicates: u64,
    pub attempts: [u64; 4],
    pub synack_without_syn: u64,
    /// SYN-ACKs that came after their attempt was reported unanswered.
    pub late_synacks: u64,
    pub evictions: u64,
    pub flows: u64,
    pub table_peak: u64,
}

impl TrackStats {
    pub fn attempts(&self, outcome: Outcome) -> u64 {
        self.attempts[outcome as usize]
    }
}

/// A SYN-ACK waiting for its SYN.
struct Orphan {
    id: u64,
    ts: Timestamp,
    seg: Segment,
}

pub struct Tracker {
    cfg: TrackConfig,
    local: LocalNetworks,
    conns: ConnTable,
    orphans: FxHashMap<Key, Orphan>,
    /// Keys whose entry may be waiting for the client's ACK of its SYN-ACK
    /// (a superset: keys enter with the SYN-ACK and leave when the entry
    /// is reported or evicted). In handshake mode a payload-free ACK whose
    /// key is not here cannot matter, and skips the look-up in the full
    /// table: most ACKs belong to connections past their handshake, and the
    /// table, with its lingering entries, is far larger than the cache,
    /// while this set holds one round trip's worth of handshakes.
    awaiting_ack: FxHashSet<Key>,
    timers: TimerTable<Key>,
    scans: ScanDetector,
    events: VecDeque<Event>,
    clock: Timestamp,
    next_id: u64,
    stats: TrackStats,
    /// Entries still to report during a flush, newest first.
    flushing: Option<Vec<(u64, Key)>>,
}

impl Tracker {
    /// The memory the connection table reserves for `max_connections`
    /// entries (each key and entry, and its slot in the index): what the
    /// start checks against the machine's memory.
    pub fn table_bytes(max_connections: usize) -> u64 {
        let entry = std::mem::size_of::<conn::Key>() + std::mem::size_of::<conn::Conn>() + 16;
        (max_connections as u64).saturating_mul(entry as u64)
    }

    pub fn new(cfg: TrackConfig, local: LocalNetworks) -> Self {
        let capacity = cfg.max_connections;
        Tracker {
            scans: ScanDetector::new(cfg.scan.clone()),
            cfg,
            local,
            conns: ConnTable::with_capacity(capacity),
            orphans: FxHashMap::default(),
            awaiting_ack: FxHashSet::default(),
            timers: TimerTable::new(),
            events: VecDeque::new(),
            clock: Timestamp::ZERO,
            next_id: 0,
            stats: TrackStats::default(),
            flushing: None,
        }
    }

    pub fn stats(&self) -> &TrackStats {
        &self.stats
    }

    pub fn scans_detected(&self) -> u64 {
        self.scans.detected
    }

    /// Entries held now (attempts, lingering reports and flows).
    pub fn table_size(&self) -> usize {
        self.conns.len()
    }

    pub fn local_networks(&self) -> &LocalNetworks {
        &self.local
    }

    /// The next event, if any.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When [`Tracker::handle_timeout`] should next be called.
    pub fn poll_timeout(&self) -> Option<Timestamp> {
        match (self.timers.next_deadline(), self.scans.next_deadline()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// One decoded segment captured at `now`.
    pub fn handle_segment(&mut self, now: Timestamp, seg: &Segment) {
        self.stats.segments += 1;
        self.clock = self.clock.max(now);
        let f = seg.flags;
        match (f.syn(), f.ack()) {
            (true, false) => self.on_syn(now, seg),
            (true, true) => self.on_synack(now, seg),
            (false, _) => self.on_other(now, seg),
        }
        self.stats.table_peak = self.stats.table_peak.max(self.conns.len() as u64);
    }

    fn new_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    fn on_syn(&mut self, now: Timestamp, seg: &Segment) {
        let key = Key::from_client(seg, self.cfg.vlan_in_key);
        if let Some(conn) = self.conns.get_mut(&key) {
            if conn.is_duplicate(C2S, seg, now, self.cfg.duplicate_window) {
                self.stats.duplicates += 1;
                return;
            }
            if conn.first_syn.is_some() && conn.isn == seg.seq {
                // A retransmitted SYN (same initial sequence number).
                conn.syn_count += 1;
                conn.last_syn = conn.last_syn.max(now);
                if let Some(flow) = conn.flow.as_deref_mut() {
                    flow.c2s.update(seg);
                    flow.last = flow.last.max(now);
                }
                return;
            }
            // A new ISN: the 4-tuple is reused by a new attempt.
            if let Some(old) = self.conns.remove(&key) {
                self.finish(key, old, FlowEnd::Reused);
            }
        }
        if self.conns.len() >= self.cfg.max_connections {
            self.evict_one();
        }
        let id = self.new_id();
        let direction = self.local.classify(key.client, key.server);
        let mut conn = Conn::from_syn(id, now, seg, direction);
        conn.last[C2S] = Some(LastSeen::of(seg, now));
        if self.cfg.mode == Mode::Quality {
            let mut flow = FlowState {
                last: now,
                handshake_seen: true,
                ..FlowState::default()
            };
            flow.c2s.update(seg);
            conn.flow = Some(Box::new(flow));
            self.timers.push(Timer::Idle, now + self.cfg.flow_idle_timeout, key, id);
        }
        self.timers
            .push(Timer::Unanswered, now + self.cfg.unanswered_timeout, key, id);
        if direction == Direction::Inbound {
            self.scans
                .handle_attempt(now, key.client, key.server, key.server_port, &mut self.events);
        }
        if let Some(orphan) = self.orphans.remove(&key) {
            let answered = conn.on_synack(orphan.ts, &orphan.seg);
            self.answered(answered, key, id, orphan.ts);
        }
        self.conns.insert(key, conn);
    }

    fn on_synack(&mut self, now: Timestamp, seg: &Segment) {
        let key = Key::from_server(seg, self.cfg.vlan_in_key);
        let Some(conn) = self.conns.get_mut(&key) else {
            self.orphan(now, key, seg);
            return;
        };
        if conn.is_duplicate(S2C, seg, now, self.cfg.duplicate_window) {
            self.stats.duplicates += 1;
            return;
        }
        let id = conn.id;
        let answered = conn.on_synack(now, seg);
        self.answered(answered, key, id, now);
    }

    /// What a SYN-ACK did to entry `id` at `key`, in the tracker's tables.
    fn answered(&mut self, answered: SynAck, key: Key, id: u64, now: Timestamp) {
        match answered {
            SynAck::AwaitsAck => {
                self.timers.push(Timer::Ack, now + self.cfg.ack_timeout, key, id);
                self.awaiting_ack.insert(key);
            }
            SynAck::Late => self.stats.late_synacks += 1,
            SynAck::Counted => {}
        }
    }

    fn orphan(&mut self, now: Timestamp, key: Key, seg: &Segment) {
        if self.orphans.contains_key(&key) {
            // A retransmission (or duplicate) of a SYN-ACK already waiting.
            return;
        }
        if self.orphans.len() >= self.cfg.max_orphans || self.cfg.reorder_window.is_zero() {
            self.stats.synack_without_syn += 1;
            return;
        }
        let id = self.new_id();
        self.orphans.insert(key, Orphan { id, ts: now, seg: *seg });
        self.timers.push(Timer::Orphan, now + self.cfg.reorder_window, key, id);
    }

    fn on_other(&mut self, now: Timestamp, seg: &Segment) {
        let f = seg.flags;
        // Handshake mode needs only RSTs and the client's payload-free ACK of
        // a SYN-ACK (what the kernel filter passes live); everything else is
        // dropped before any lookup.
        if self.cfg.mode == Mode::Handshake && !f.rst() && (!f.ack() || f.fin() || seg.payload_len > 0) {
            return;
        }
        // One lookup per direction; each borrow of the table ends with its
        // statement so the other direction can be tried.
        let client_key = Key::from_client(seg, self.cfg.vlan_in_key);
        if self.cfg.mode == Mode::Handshake && !f.rst() && !self.awaiting_ack.contains(&client_key) {
            return;
        }
        let handshake_only = self.cfg.mode == Mode::Handshake;
        let window = self.cfg.duplicate_window;
        let mut hit = self.conns.get_mut(&client_key).map(|conn| {
            (
                client_key,
                C2S,
                conn.id,
                conn.on_segment(C2S, seg, now, handshake_only, window),
            )
        });
        // In handshake mode only the client's ACK and RSTs matter
        // (`Conn::on_segment`), so a server's ACK needs no second look-up.
        let server_side_matters = self.cfg.mode == Mode::Quality || f.rst();
        if hit.is_none() && server_side_matters {
            let server_key = Key::from_server(seg, self.cfg.vlan_in_key);
            hit = self.conns.get_mut(&server_key).map(|conn| {
                (
                    server_key,
                    S2C,
                    conn.id,
                    conn.on_segment(S2C, seg, now, handshake_only, window),
                )
            });
        }
        let (key, dir, id, step) = match hit {
            Some(h) => h,
            None if self.cfg.mode == Mode::Quality && !f.rst() => return self.pick_up(now, seg),
            None => return,
        };
        let Some(change) = self.stepped(step, key, id, now) else {
            return;
        };
        let side = if dir == C2S { Side::Client } else { Side::Server };
        let Some(mut conn) = self.conns.remove(&key) else {
            return;
        };
        if let Some(outcome) = conn.settle(change, side, now) {
            self.report(&mut conn, key, outcome);
        }
        if let Some(end) = change.flow_ended {
            self.end_flow(&mut conn, key, end);
        }
        self.conns.insert(key, conn);
    }

    /// What a segment did to entry `id` at `key`, in the tracker's tables;
    /// the change to its state, if any.
    fn stepped(&mut self, step: Step, key: Key, id: u64, now: Timestamp) -> Option<Change> {
        if step.duplicate {
            self.stats.duplicates += 1;
        }
        if step.closing {
            self.timers.push(Timer::Closing, now + self.cfg.ack_timeout, key, id);
        }
        step.change
    }

    /// Quality mode: a flow already running when capture started.
    fn pick_up(&mut self, now: Timestamp, seg: &Segment) {
        // The higher port is the client's (ephemeral) one; ties: the sender.
        let from_client = seg.src_port >= seg.dst_port;
        let key = if from_client {
            Key::from_client(seg, self.cfg.vlan_in_key)
        } else {
            Key::from_server(seg, self.cfg.vlan_in_key)
        };
        if self.conns.len() >= self.cfg.max_connections {
            self.evict_one();
        }
        let id = self.new_id();
        let mut conn = Conn::midstream(id, now, seg, self.local.classify(key.client, key.server));
        let dir = if from_client { C2S } else { S2C };
        conn.last[dir] = Some(LastSeen::of(seg, now));
        if let Some(flow) = conn.flow.as_deref_mut() {
            if from_client {
                flow.c2s.update(seg);
            } else {
                flow.s2c.update(seg);
            }
        }
        self.timers
            .push(Timer::Unanswered, now + self.cfg.unanswered_timeout, key, id);
        self.timers.push(Timer::Idle, now + self.cfg.flow_idle_timeout, key, id);
        self.conns.insert(key, conn);
    }

    /// Writes the handshake event; the entry stays (flow counting, or
    /// lingering to absorb retransmissions).
    fn report(&mut self, conn: &mut Conn, key: Key, outcome: Outcome) {
        if conn.state == State::Reported {
            return;
        }
        conn.state = State::Reported;
        self.awaiting_ack.remove(&key);
        self.stats.attempts[outcome as usize] += 1;
        self.events
            .push_back(Event::Handshake(conn.handshake_event(&key, outcome)));
        if conn.flow.is_none() {
            self.linger(key, conn.id);
        }
    }

    /// Keeps a reported entry `linger` long to absorb late packets; not
    /// during a flush, whose entries are dropped.
    fn linger(&mut self, key: Key, id: u64) {
        if self.flushing.is_none() {
            self.timers.push(Timer::Linger, self.clock + self.cfg.linger, key, id);
        }
    }

    /// Writes the flow event; the entry lingers without flow counters.
    fn end_flow(&mut self, conn: &mut Conn, key: Key, end: FlowEnd) {
        if let Some(flow) = conn.flow_event(&key, end) {
            self.stats.flows += 1;
            self.events.push_back(Event::Flow(flow));
        }
        conn.flow = None;
        if conn.state == State::Reported {
            self.linger(key, conn.id);
        }
    }

    /// An entry leaves the table: whatever it has not reported yet is
    /// reported now, as of the latest time seen.
    fn finish(&mut self, key: Key, mut conn: Conn, end: FlowEnd) {
        match conn.state {
            State::SynSent => {
                let timed_out = conn
                    .first_syn
                    .is_some_and(|syn| self.clock >= syn + self.cfg.unanswered_timeout);
                let outcome = if timed_out {
                    Outcome::Unanswered
                } else {
                    Outcome::Incomplete
                };
                self.report(&mut conn, key, outcome);
            }
            State::SynAckSeen => self.report(&mut conn, key, Outcome::Established),
            State::Reported => {}
        }
        if conn.flow.is_some() {
            self.end_flow(&mut conn, key, end);
        }
    }

    /// Makes room for one entry: a lingering report if any, else the oldest
    /// entry still within `unanswered_timeout` of its creation (pending
    /// attempts, and flows that young), else the longest-idle flow. Pending
    /// attempts pushed out are counted, not reported; flows pushed out are
    /// reported with `end_reason` `evicted`.
    fn evict_one(&mut self) {
        for timer in [Timer::Linger, Timer::Unanswered, Timer::Idle] {
            while let Some(e) = self.timers.pop_front(timer) {
                if self.conns.get(&e.key).is_none_or(|c| c.id != e.id) {
                    continue;
                }
                let Some(conn) = self.conns.remove(&e.key) else {
                    continue;
                };
                self.awaiting_ack.remove(&e.key);
                if timer != Timer::Linger {
                    self.stats.evictions += 1;
                    // Quality mode: the flow's counters are not lost.
                    if let Some(flow) = conn.flow_event(&e.key, FlowEnd::Evicted) {
                        self.stats.flows += 1;
                        self.events.push_back(Event::Flow(flow));
                    }
                }
                return;
            }
        }
    }

    /// Runs the timers due at `now`.
    pub fn handle_timeout(&mut self, now: Timestamp) {
        self.clock = self.clock.max(now);
        let now = self.clock;
        for timer in Timer::ALL {
            while let Some(e) = self.timers.pop_due(timer, now) {
                if timer == Timer::Orphan {
                    if self.orphans.get(&e.key).is_some_and(|o| o.id == e.id) {
                        self.orphans.remove(&e.key);
                        self.stats.synack_without_syn += 1;
                    }
                    continue;
                }
                let Some(mut conn) = self.conns.remove(&e.key) else {
                    continue;
                };
                if conn.id != e.id {
                    self.conns.insert(e.key, conn);
                    continue;
                }
                match timer {
                    Timer::Unanswered if conn.state == State::SynSent => {
                        self.report(&mut conn, e.key, Outcome::Unanswered)
                    }
                    Timer::Ack if conn.state == State::SynAckSeen => {
                        self.report(&mut conn, e.key, Outcome::Established)
                    }
                    Timer::Linger if conn.flow.is_none() => continue, // removed
                    Timer::Closing if conn.flow.as_ref().is_some_and(|f| f.closing) => {
                        self.end_flow(&mut conn, e.key, FlowEnd::Fin);
                    }
                    Timer::Idle => {
                        if let Some(last) = conn.flow.as_ref().map(|f| f.last) {
                            let idle_until = last + self.cfg.flow_idle_timeout;
                            if idle_until > now {
                                self.timers.push(Timer::Idle, idle_until, e.key, e.id);
                            } else {
                                self.finish(e.key, conn, FlowEnd::Idle);
                                continue;
                            }
                        }
                    }
                    _ => {}
                }
                self.conns.insert(e.key, conn);
            }
        }
        self.scans.handle_timeout(now, &mut self.events);
        self.timers.shrink();
    }

    /// End of capture: reports everything still open, as of `now`.
    /// Attempts whose timeout has passed are `unanswered`, the others
    /// `incomplete`; flows end with `shutdown`. Events accumulate: use
    /// [`Tracker::flush_step`] to drain them as they come.
    pub fn flush(&mut self, now: Timestamp) {
        while self.flush_step(now, usize::MAX) {}
    }

    /// Like [`Tracker::flush`], at most `max` entries per call, in the
    /// order they were created; true while entries remain. Keeps a flush of
    /// a full table from holding a million events at once.
    pub fn flush_step(&mut self, now: Timestamp, max: usize) -> bool {
        if self.flushing.is_none() {
            self.handle_timeout(now);
            let mut order: Vec<(u64, Key)> = self.conns.ids().collect();
            order.sort_unstable_by_key(|e| std::cmp::Reverse(e.0));
            self.flushing = Some(order);
        }
        for _ in 0..max {
            let Some((_, key)) = self.flushing.as_mut().and_then(Vec::pop) else {
                break;
            };
            if let Some(conn) = self.conns.remove(&key) {
                self.finish(key, conn, FlowEnd::Shutdown);
            }
        }
        if self.flushing.as_ref().is_some_and(|order| !order.is_empty()) {
            return true;
        }
        self.flushing = None;
        self.conns.reset();
        self.awaiting_ack = FxHashSet::default();
        self.stats.synack_without_syn += self.orphans.len() as u64;
        self.orphans.clear();
        self.scans.flush(self.clock, &mut self.events);
        false
    }
}

#[cfg(test)]
mod tests;
