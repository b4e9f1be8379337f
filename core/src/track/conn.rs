//! One tracked connection: the handshake record and, in quality mode, the
//! flow counters. Knows how to turn itself into events; knows nothing of
//! tables or timers.

use std::hash::{Hash, Hasher};
use std::net::IpAddr;
use std::time::Duration;

use super::flow::HalfFlow;
use crate::decode::{Segment, TcpFlags, VlanStack};
use crate::event::{initial_ttl_guess, Direction, Flow, FlowEnd, Handshake, Outcome, Side};
use crate::time::Timestamp;

/// The table key: the attempt's 4-tuple seen from the client, plus the VLAN
/// stack when `vlan_in_key` is on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Key {
    pub client: IpAddr,
    pub server: IpAddr,
    pub client_port: u16,
    pub server_port: u16,
    pub vlan: VlanStack,
}

impl Key {
    /// The key of a segment sent by the client.
    pub fn from_client(seg: &Segment, vlan_in_key: bool) -> Key {
        Key {
            client: seg.src,
            server: seg.dst,
            client_port: seg.src_port,
            server_port: seg.dst_port,
            vlan: if vlan_in_key { seg.vlan } else { VlanStack::NONE },
        }
    }

    /// The key of a segment sent by the server.
    pub fn from_server(seg: &Segment, vlan_in_key: bool) -> Key {
        Key {
            client: seg.dst,
            server: seg.src,
            client_port: seg.dst_port,
            server_port: seg.src_port,
            vlan: if vlan_in_key { seg.vlan } else { VlanStack::NONE },
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum State {
    /// SYN seen, no answer yet.
    SynSent,
    /// SYN-ACK seen, waiting for the client's ACK.
    SynAckSeen,
    /// The handshake event was written; quality mode keeps counting the flow.
    Reported,
}

/// What one side announced in its SYN or SYN-ACK (compact: one per side
/// in every table entry).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Hello {
    pub ttl: u8,
    pub mss: Option<u16>,
    pub wscale: Option<u8>,
    pub sack_permitted: bool,
    pub timestamps: bool,
}

impl Hello {
    pub fn of(seg: &Segment) -> Self {
        let o = seg.options;
        Hello {
            ttl: seg.ttl,
            mss: o.mss,
            wscale: o.wscale,
            sack_permitted: o.sack_permitted,
            timestamps: o.timestamps.is_some(),
        }
    }
}

/// The last segment seen one way, for duplicate detection: the same packet
/// captured twice has the same IP id, sequence, acknowledgement, flags,
/// length and TCP checksum (which covers the payload); a retransmission
/// differs in at least one of them or comes later than `duplicate_window`.
/// Kept as a 64-bit hash of those fields to keep entries small.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct LastSeen {
    pub fingerprint: u64,
    pub ts: Timestamp,
}

impl LastSeen {
    pub fn of(seg: &Segment, ts: Timestamp) -> Self {
        let mut h = rustc_hash::FxHasher::default();
        (
            seg.seq,
            seg.ack,
            seg.ip_id,
            seg.checksum,
            seg.flags.bits(),
            seg.payload_len,
        )
            .hash(&mut h);
        LastSeen {
            fingerprint: h.finish(),
            ts,
        }
    }
}

/// Flow counters (quality mode only, boxed to keep handshake entries small).
#[derive(Clone, Debug, Default)]
pub(crate) struct FlowState {
    pub c2s: HalfFlow,
    pub s2c: HalfFlow,
    pub last: Timestamp,
    pub handshake_seen: bool,
    /// Both FINs seen; the flow ends at the last ACK.
    pub closing: bool,
}

/// The two directions of an entry, indexing `Conn::last`.
pub(crate) const C2S: usize = 0;
pub(crate) const S2C: usize = 1;

/// What a non-SYN segment did to an entry, for the tracker to act on with
/// its table, timers and counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Step {
    /// The same packet captured twice: counted once, nothing else.
    pub duplicate: bool,
    /// Both FINs seen: the flow ends at the last ACK or `ack_timeout` later.
    pub closing: bool,
    /// The entry's state changes ([`Conn::settle`] applies it).
    pub change: Option<Change>,
}

/// A segment that changes an entry's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Change {
    pub rst: bool,
    /// The client's ACK of the SYN-ACK.
    pub completes: bool,
    pub flow_ended: Option<FlowEnd>,
}

/// What a SYN-ACK did to a known entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SynAck {
    /// The first answer: the attempt now waits for the client's ACK.
    AwaitsAck,
    /// It came after the attempt was reported unanswered.
    Late,
    /// Counted (a retransmission, or of an entry already reported).
    Counted,
}

#[derive(Clone, Debug)]
pub(crate) struct Conn {
    pub id: u64,
    pub state: State,
    pub direction: Direction,
    /// VLAN stack of the first packet (reported even when not in the key).
    pub vlan: VlanStack,
    /// The first packet of this entry: first SYN, or first packet of a flow
    /// picked up mid-stream.
    pub first_seen: Timestamp,
    pub first_syn: Option<Timestamp>,
    pub last_syn: Timestamp,
    /// The last SYN before the first SYN-ACK (SYNs may follow it).
    pub syn_before_synack: Option<Timestamp>,
    pub syn_count: u32,
    pub syns_before_synack: u32,
    pub isn: u32,
    pub syn_flags: TcpFlags,
    pub syn_data_len: u32,
    pub client: Hello,
    pub first_synack: Option<Timestamp>,
    pub synack_count: u32,
    pub server_isn: u32,
    pub synack_seq_changed: bool,
    pub server: Hello,
    pub ack: Option<Timestamp>,
    pub reordered: bool,
    pub rst_from: Option<Side>,
    /// Last segment each way (client→server, server→client).
    pub last: [Option<LastSeen>; 2],
    pub flow: Option<Box<FlowState>>,
}

impl Conn {
    pub fn from_syn(id: u64, now: Timestamp, seg: &Segment, direction: Direction) -> Self {
        Conn {
            state: State::SynSent,
            first_syn: Some(now),
            syn_count: 1,
            isn: seg.seq,
            syn_flags: seg.flags,
            syn_data_len: seg.payload_len,
            client: Hello::of(seg),
            vlan: seg.vlan,
            ..Conn::blank(id, now, direction)
        }
    }

    /// A flow whose handshake the sensor did not see (quality mode).
    pub fn midstream(id: u64, now: Timestamp, seg: &Segment, direction: Direction) -> Self {
        Conn {
            flow: Some(Box::new(FlowState {
                last: now,
                ..FlowState::default()
            })),
            vlan: seg.vlan,
            ..Conn::blank(id, now, direction)
        }
    }

    fn blank(id: u64, now: Timestamp, direction: Direction) -> Self {
        Conn {
            id,
            state: State::Reported,
            direction,
            vlan: VlanStack::NONE,
            first_seen: now,
            first_syn: None,
            last_syn: now,
            syn_before_synack: None,
            syn_count: 0,
            syns_before_synack: 0,
            isn: 0,
            syn_flags: TcpFlags::default(),
            syn_data_len: 0,
            client: Hello::default(),
            first_synack: None,
            synack_count: 0,
            server_isn: 0,
            synack_seq_changed: false,
            server: Hello::default(),
            ack: None,
            reordered: false,
            rst_from: None,
            last: [None; 2],
            flow: None,
        }
    }

    /// A non-SYN segment of this entry going `dir` ([`C2S`] or [`S2C`]):
    /// counts it and says what changes. With `handshake_only` (handshake
    /// mode) only RSTs and the client's ACK of a SYN-ACK are looked at.
    pub fn on_segment(
        &mut self,
        dir: usize,
        seg: &Segment,
        now: Timestamp,
        handshake_only: bool,
        duplicate_window: Duration,
    ) -> Step {
        let f = seg.flags;
        if handshake_only && !f.rst() && (dir != C2S || self.state != State::SynAckSeen) {
            return Step::default();
        }
        if self.is_duplicate(dir, seg, now, duplicate_window) {
            return Step {
                duplicate: true,
                ..Step::default()
            };
        }
        let mut flow_ended = None;
        let mut closing = false;
        if let Some(flow) = self.flow.as_deref_mut() {
            let half = if dir == C2S { &mut flow.c2s } else { &mut flow.s2c };
            half.update(seg);
            flow.last = flow.last.max(now);
            if f.rst() {
                flow_ended = Some(FlowEnd::Rst);
            } else if flow.c2s.fin && flow.s2c.fin {
                // The ACK of the second FIN closes the flow; until it comes
                // (or `ack_timeout` passes) the flow keeps counting.
                if flow.closing && !f.fin() && f.ack() {
                    flow_ended = Some(FlowEnd::Fin);
                } else if !flow.closing {
                    flow.closing = true;
                    closing = true;
                }
            }
        }
        // The client's ACK of the SYN-ACK acknowledges the server's ISN + 1
        // (of the latest SYN-ACK when a retransmission changed it).
        let completes = self.state == State::SynAckSeen
            && dir == C2S
            && f.ack()
            && (seg.ack == self.server_isn.wrapping_add(1) || self.synack_seq_changed);
        let change = (f.rst() || completes || flow_ended.is_some()).then_some(Change {
            rst: f.rst(),
            completes,
            flow_ended,
        });
        Step {
            duplicate: false,
            closing,
            change,
        }
    }

    /// Applies `change`, made by a segment from `side`, to the handshake:
    /// who reset it, the client's ACK. The outcome to report now, if any.
    pub fn settle(&mut self, change: Change, side: Side, now: Timestamp) -> Option<Outcome> {
        match self.state {
            State::SynSent if change.rst => {
                self.rst_from = Some(side);
                (side == Side::Server).then_some(Outcome::Refused)
            }
            State::SynAckSeen if change.rst => {
                self.rst_from = Some(side);
                Some(Outcome::Established)
            }
            State::SynAckSeen if change.completes => {
                self.ack = Some(now);
                Some(Outcome::Established)
            }
            State::Reported if change.rst => {
                self.rst_from = Some(side);
                None
            }
            _ => None,
        }
    }

    /// The server's SYN-ACK reaches this entry.
    pub fn on_synack(&mut self, now: Timestamp, seg: &Segment) -> SynAck {
        if let Some(flow) = self.flow.as_deref_mut() {
            flow.s2c.update(seg);
            flow.last = flow.last.max(now);
        }
        match self.state {
            State::SynSent => {
                self.handle_synack(now, seg);
                self.state = State::SynAckSeen;
                self.last[S2C] = Some(LastSeen::of(seg, now));
                SynAck::AwaitsAck
            }
            State::SynAckSeen => {
                self.handle_synack(now, seg);
                SynAck::Counted
            }
            State::Reported if self.first_syn.is_some() => {
                let late = self.first_synack.is_none();
                self.synack_count += 1;
                if late {
                    SynAck::Late
                } else {
                    SynAck::Counted
                }
            }
            State::Reported => SynAck::Counted,
        }
    }

    /// The same segment captured twice (NFLOG, loopback, `any`) is one
    /// packet: true for the second within `window`.
    pub fn is_duplicate(&mut self, dir: usize, seg: &Segment, now: Timestamp, window: Duration) -> bool {
        let seen = LastSeen::of(seg, now);
        if let Some(last) = self.last[dir] {
            if last.fingerprint == seen.fingerprint
                && now.micros_since(last.ts).abs() * 1_000.0 <= window.as_nanos() as f64
            {
                return true;
            }
        }
        self.last[dir] = Some(seen);
        false
    }

    /// Records a SYN-ACK.
    fn handle_synack(&mut self, now: Timestamp, seg: &Segment) {
        self.synack_count += 1;
        match self.first_synack {
            None => {
                self.first_synack = Some(now);
                self.server_isn = seg.seq;
                self.server = Hello::of(seg);
                self.syns_before_synack = self.syn_count;
                self.syn_before_synack = Some(self.last_syn);
                if self.first_syn.is_some_and(|syn| syn > now) {
                    // Captured before its SYN (the SYN was queued longer).
                    self.reordered = true;
                    self.syns_before_synack = 0;
                    self.syn_before_synack = None;
                }
            }
            Some(_) if seg.seq != self.server_isn => self.synack_seq_changed = true,
            Some(_) => {}
        }
    }

    pub fn handshake_event(&self, key: &Key, outcome: Outcome) -> Handshake {
        let first_syn = self.first_syn.unwrap_or(self.first_seen);
        let rtt_last_syn = self
            .first_synack
            .zip(self.syn_before_synack)
            .map(|(sa, syn)| sa.micros_since(syn));
        let server_seen = self.first_synack.is_some();
        Handshake {
            id: self.id,
            ts: first_syn,
            ts_us: first_syn.as_micros(),
            client_ip: key.client,
            client_port: key.client_port,
            server_ip: key.server,
            server_port: key.server_port,
            ip_version: if key.client.is_ipv4() { 4 } else { 6 },
            vlan: self.vlan,
            direction: self.direction,
            outcome,
            completed: self.ack.is_some(),
            syn_count: self.syn_count,
            syns_before_synack: self.syns_before_synack,
            synack_count: self.synack_count,
            first_syn_us: first_syn.as_micros(),
            first_synack_us: self.first_synack.map(Timestamp::as_micros),
            ack_us: self.ack.map(Timestamp::as_micros),
            rtt_last_syn_us: rtt_last_syn,
            rtt_first_syn_us: self.first_synack.map(|sa| sa.micros_since(first_syn)),
            client_rtt_us: self.ack.zip(self.first_synack).map(|(ack, sa)| ack.micros_since(sa)),
            reordered: self.reordered,
            synack_seq_changed: self.synack_seq_changed,
            rst_from: self.rst_from,
            client_ttl: self.client.ttl,
            client_initial_ttl: initial_ttl_guess(self.client.ttl),
            client_hops: initial_ttl_guess(self.client.ttl) - self.client.ttl,
            server_ttl: server_seen.then_some(self.server.ttl),
            server_initial_ttl: server_seen.then(|| initial_ttl_guess(self.server.ttl)),
            server_hops: server_seen.then(|| initial_ttl_guess(self.server.ttl) - self.server.ttl),
            client_mss: self.client.mss,
            client_wscale: self.client.wscale,
            client_sack_permitted: self.client.sack_permitted,
            client_timestamps: self.client.timestamps,
            server_mss: self.server.mss.filter(|_| server_seen),
            server_wscale: self.server.wscale.filter(|_| server_seen),
            server_sack_permitted: server_seen.then_some(self.server.sack_permitted),
            server_timestamps: server_seen.then_some(self.server.timestamps),
            syn_data_len: self.syn_data_len,
            ecn_setup: self.syn_flags.contains(TcpFlags::ECE | TcpFlags::CWR),
        }
    }

    pub fn flow_event(&self, key: &Key, end: FlowEnd) -> Option<Flow> {
        let f = self.flow.as_deref()?;
        let start = self.first_seen;
        let end_ts = f.last.max(start);
        Some(Flow {
            id: self.id,
            ts: start,
            ts_us: start.as_micros(),
            client_ip: key.client,
            client_port: key.client_port,
            server_ip: key.server,
            server_port: key.server_port,
            ip_version: if key.client.is_ipv4() { 4 } else { 6 },
            vlan: self.vlan,
            direction: self.direction,
            handshake_seen: f.handshake_seen,
            end_reason: end,
            end_us: end_ts.as_micros(),
            duration_us: end_ts.micros_since(start),
            rst_from: self.rst_from,
            packets_c2s: f.c2s.packets,
            packets_s2c: f.s2c.packets,
            bytes_c2s: f.c2s.bytes,
            bytes_s2c: f.s2c.bytes,
            retrans_c2s: f.c2s.retrans,
            retrans_s2c: f.s2c.retrans,
            sack_blocks_c2s: f.c2s.sack_blocks,
            sack_blocks_s2c: f.s2c.sack_blocks,
            dup_acks_c2s: f.c2s.dup_acks,
            dup_acks_s2c: f.s2c.dup_acks,
            zero_window_c2s: f.c2s.zero_window,
            zero_window_s2c: f.s2c.zero_window,
        })
    }
}
