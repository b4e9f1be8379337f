//! Events: what the pipeline reports, as typed values.
//!
//! The records are the event schema ([`schema`]): the JSON output is their
//! serde serialisation, and the plugin contract's WIT records, the
//! collector's ingest and tables and `docs/events.md` are checked against
//! their field lists by tests.
//! Every event carries `ts` (RFC 3339, microseconds, UTC) and `ts_us`
//! (integer microseconds since the epoch) for the same instant; other
//! instants are integer microseconds in fields ending in `_us`, and
//! durations are microseconds as numbers with nanosecond precision in fields
//! ending in `_us` too (`rtt_last_syn_us`).

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

pub mod schema;

use crate::decode::VlanStack;
use crate::time::Timestamp;

/// One event out of the tracker.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Event {
    Handshake(Handshake),
    Flow(Flow),
    Scan(Scan),
    Route(Route),
    Stats(Stats),
}

impl Event {
    pub fn ts(&self) -> Timestamp {
        match self {
            Event::Handshake(h) => h.ts,
            Event::Flow(f) => f.ts,
            Event::Scan(s) => s.ts,
            Event::Route(r) => r.ts,
            Event::Stats(s) => s.ts,
        }
    }

    pub fn kind(&self) -> EventKind {
        match self {
            Event::Handshake(_) => EventKind::Handshake,
            Event::Flow(_) => EventKind::Flow,
            Event::Scan(_) => EventKind::Scan,
            Event::Route(_) => EventKind::Route,
            Event::Stats(_) => EventKind::Stats,
        }
    }
}

/// A key/value a plugin added to an event ("geo.country" = "DE").
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tag {
    pub key: String,
    pub value: String,
}

/// Adds `tag` to `tags`, or replaces the value of its key.
pub fn set_tag(tags: &mut Vec<Tag>, tag: Tag) {
    match tags.iter_mut().find(|t| t.key == tag.key) {
        Some(old) => old.value = tag.value,
        None => tags.push(tag),
    }
}

/// An event on its way through the plugin chain to the outputs, with the
/// tags plugins added (in the order they were added; a later tag replaces
/// an earlier one with the same key).
#[derive(Clone, Debug, PartialEq)]
pub struct Tagged {
    pub event: Event,
    pub tags: Vec<Tag>,
}

impl Tagged {
    pub fn new(event: Event) -> Self {
        Tagged {
            event,
            tags: Vec::new(),
        }
    }

    /// Adds `tag`, replacing one with the same key.
    pub fn set(&mut self, tag: Tag) {
        set_tag(&mut self.tags, tag);
    }

    pub fn tag(&self, key: &str) -> Option<&str> {
        self.tags.iter().find(|t| t.key == key).map(|t| t.value.as_str())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    Handshake,
    Flow,
    Scan,
    Route,
    Stats,
}

impl EventKind {
    /// The name in `docs/events.md` and in the plugin contract.
    pub fn name(self) -> &'static str {
        match self {
            EventKind::Handshake => "handshake",
            EventKind::Flow => "flow",
            EventKind::Scan => "scan",
            EventKind::Route => "route",
            EventKind::Stats => "stats",
        }
    }
}

schema::declare_values! {
    /// Where a connection runs relative to the local networks.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
    #[serde(rename_all = "snake_case")]
    pub enum Direction {
        /// Local client, remote server.
        Outbound,
        /// Remote client, local server.
        Inbound,
        /// Both ends local.
        Internal,
        /// Neither end local (the sensor sees traffic it only forwards).
        Transit,
    }
}

schema::declare_values! {
    /// How a connection attempt ended.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
    #[serde(rename_all = "snake_case")]
    pub enum Outcome {
        /// The server answered with a SYN-ACK.
        Established,
        /// The server answered the SYN with a RST.
        Refused,
        /// No answer within the unanswered timeout.
        Unanswered,
        /// Still waiting, before the timeout, when the sensor stopped or when a
        /// new SYN (new ISN) reused the 4-tuple.
        Incomplete,
    }
}

impl Outcome {
    pub fn name(self) -> &'static str {
        match self {
            Outcome::Established => "established",
            Outcome::Refused => "refused",
            Outcome::Unanswered => "unanswered",
            Outcome::Incomplete => "incomplete",
        }
    }
}

schema::declare_values! {
    /// One end of a connection.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
    #[serde(rename_all = "snake_case")]
    pub enum Side {
        Client,
        Server,
    }
}

schema::declare_record! {
    ($) handshake_fields =>
    /// A TCP connection attempt: from the first SYN to its answer.
    #[derive(Clone, Debug, PartialEq, Serialize)]
    pub struct Handshake {
        /// Sensor-local attempt id; the flow event and later the route event of
        /// the same connection carry it too.
        pub id: u64,
        /// Time of the first SYN.
        pub ts: Timestamp,
        pub ts_us: i64,
        #[serde(serialize_with = "crate::event::ip")]
        pub client_ip: IpAddr,
        pub client_port: u16,
        #[serde(serialize_with = "crate::event::ip")]
        pub server_ip: IpAddr,
        pub server_port: u16,
        pub ip_version: u8,
        #[serde(
            skip_serializing_if = "VlanStack::is_empty",
            serialize_with = "crate::event::display"
        )]
        pub vlan: VlanStack,
        pub direction: Direction,
        pub outcome: Outcome,
        /// The client's ACK of the SYN-ACK was seen (three-way handshake complete).
        pub completed: bool,
        pub syn_count: u32,
        pub syns_before_synack: u32,
        pub synack_count: u32,
        pub first_syn_us: i64,
        pub first_synack_us: Option<i64>,
        pub ack_us: Option<i64>,
        /// First SYN-ACK minus the last SYN before it: the server-side RTT.
        pub rtt_last_syn_us: Option<f64>,
        /// First SYN-ACK minus the first SYN: what the user waited.
        pub rtt_first_syn_us: Option<f64>,
        /// Client's ACK minus the first SYN-ACK: the client-side RTT.
        pub client_rtt_us: Option<f64>,
        /// The SYN-ACK was captured before its SYN.
        pub reordered: bool,
        /// Retransmitted SYN-ACKs carried a different sequence number.
        pub synack_seq_changed: bool,
        pub rst_from: Option<Side>,
        pub client_ttl: u8,
        pub client_initial_ttl: u8,
        pub client_hops: u8,
        pub server_ttl: Option<u8>,
        pub server_initial_ttl: Option<u8>,
        /// Hop-count guess: the SYN-ACK's initial TTL guess minus its TTL.
        pub server_hops: Option<u8>,
        pub client_mss: Option<u16>,
        pub client_wscale: Option<u8>,
        pub client_sack_permitted: bool,
        pub client_timestamps: bool,
        pub server_mss: Option<u16>,
        pub server_wscale: Option<u8>,
        pub server_sack_permitted: Option<bool>,
        pub server_timestamps: Option<bool>,
        /// Payload bytes on the SYN (TCP Fast Open).
        pub syn_data_len: u32,
        /// The SYN asked for ECN (ECE and CWR set, RFC 3168).
        pub ecn_setup: bool,
    }
}

schema::declare_values! {
    /// Why a flow summary was written.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
    #[serde(rename_all = "snake_case")]
    pub enum FlowEnd {
        Fin,
        Rst,
        Idle,
        /// The 4-tuple was reused by a new SYN.
        Reused,
        /// Pushed out of a full table.
        Evicted,
        Shutdown,
    }
}

schema::declare_record! {
    ($) flow_fields =>
    /// Per-flow quality summary (capture mode `quality`).
    #[derive(Clone, Debug, PartialEq, Serialize)]
    pub struct Flow {
        /// The handshake id when the handshake was seen, else a fresh id.
        pub id: u64,
        /// Time of the flow's first packet.
        pub ts: Timestamp,
        pub ts_us: i64,
        #[serde(serialize_with = "crate::event::ip")]
        pub client_ip: IpAddr,
        pub client_port: u16,
        #[serde(serialize_with = "crate::event::ip")]
        pub server_ip: IpAddr,
        pub server_port: u16,
        pub ip_version: u8,
        #[serde(
            skip_serializing_if = "VlanStack::is_empty",
            serialize_with = "crate::event::display"
        )]
        pub vlan: VlanStack,
        pub direction: Direction,
        /// The flow began with a SYN the sensor saw; otherwise client and server
        /// are guessed (the higher port is the client).
        pub handshake_seen: bool,
        pub end_reason: FlowEnd,
        pub end_us: i64,
        pub duration_us: f64,
        pub rst_from: Option<Side>,
        pub packets_c2s: u64,
        pub packets_s2c: u64,
        /// TCP payload bytes.
        pub bytes_c2s: u64,
        pub bytes_s2c: u64,
        /// Data segments resent (SYN and SYN-ACK retransmissions not included).
        pub retrans_c2s: u64,
        pub retrans_s2c: u64,
        pub sack_blocks_c2s: u64,
        pub sack_blocks_s2c: u64,
        pub dup_acks_c2s: u64,
        pub dup_acks_s2c: u64,
        pub zero_window_c2s: u64,
        pub zero_window_s2c: u64,
    }
}

schema::declare_values! {
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
    #[serde(rename_all = "snake_case")]
    pub enum ScanType {
        /// One source, one local host, many ports.
        PortScan,
        /// One source, one port, many local hosts.
        AddressScan,
    }
}

schema::declare_values! {
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
    #[serde(rename_all = "snake_case")]
    pub enum ScanPhase {
        /// The threshold was crossed.
        Detected,
        /// The window closed; totals for the whole window.
        Ended,
    }
}

schema::declare_record! {
    ($) scan_fields =>
    /// A remote source trying many ports or hosts of the local networks.
    #[derive(Clone, Debug, PartialEq, Serialize)]
    pub struct Scan {
        /// When the threshold was crossed, or when the window closed.
        pub ts: Timestamp,
        pub ts_us: i64,
        #[serde(serialize_with = "crate::event::ip")]
        pub src_ip: IpAddr,
        pub scan_type: ScanType,
        pub phase: ScanPhase,
        /// The local host of a port scan.
        pub target_ip: Option<IpAddr>,
        /// The port of an address scan.
        pub target_port: Option<u16>,
        /// Distinct ports (port scan) or hosts (address scan) tried.
        pub distinct: u32,
        /// The ports tried (port scan), up to `scan.max_listed`.
        pub ports: Vec<u16>,
        /// The hosts tried (address scan), up to `scan.max_listed`.
        pub hosts: Vec<IpAddr>,
        pub attempts: u64,
        pub first_us: i64,
        pub last_us: i64,
    }
}

schema::declare_record! {
    ($) route_fields =>
    /// A traced path to a remote host (the traceroute engine, [`crate::trace`]).
    #[derive(Clone, Debug, PartialEq, Serialize)]
    pub struct Route {
        /// Sensor-local route id.
        pub id: u64,
        /// When the trace started.
        pub ts: Timestamp,
        pub ts_us: i64,
        /// The handshake whose remote end was traced (join RTT and path on it).
        pub handshake_id: Option<u64>,
        #[serde(serialize_with = "crate::event::ip")]
        pub src_ip: IpAddr,
        #[serde(serialize_with = "crate::event::ip")]
        pub dst_ip: IpAddr,
        pub ip_version: u8,
        pub protocol: Protocol,
        pub style: Style,
        pub dst_port: Option<u16>,
        /// The destination answered.
        pub reached: bool,
        /// TTL of the destination's answer (the path length) when reached.
        pub hop_count: Option<u8>,
        pub duration_us: f64,
        pub hops: Vec<HopResult>,
        /// The path differs from the last trace to this destination
        /// (`route_changed`); the earlier hops are in `previous_hops`.
        pub changed: bool,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        pub previous_hops: Vec<HopResult>,
    }
}

schema::declare_values! {
    /// How probes travel.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
    #[serde(rename_all = "lowercase")]
    pub enum Protocol {
        /// ICMP echo requests (ICMPv6 for IPv6).
        Icmp,
        /// UDP to a closed port (33434 by default): answered by "port unreachable".
        Udp,
        /// TCP SYN to a port (the service's): answered by SYN-ACK or RST; gets
        /// through firewalls that let the service in.
        Tcp,
    }
}

impl Protocol {
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Icmp => "icmp",
            Protocol::Udp => "udp",
            Protocol::Tcp => "tcp",
        }
    }
}

impl std::str::FromStr for Protocol {
    type Err = UnknownName;

    fn from_str(s: &str) -> Result<Self, UnknownName> {
        [Protocol::Icmp, Protocol::Udp, Protocol::Tcp]
            .into_iter()
            .find(|p| p.name() == s)
            .ok_or_else(|| UnknownName(s.to_owned()))
    }
}

/// A name that is not one of an enum's.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown name {0:?}")]
pub struct UnknownName(pub String);

schema::declare_values! {
    /// How probes of one trace differ from each other.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
    #[serde(rename_all = "lowercase")]
    pub enum Style {
        /// What load balancers hash stays constant: one path per trace.
        Paris,
        /// Ports (UDP destination, TCP source) or ICMP checksum vary per probe,
        /// as classic traceroute: per-flow load balancing may mix paths.
        Classic,
    }
}

impl Style {
    pub fn name(self) -> &'static str {
        match self {
            Style::Paris => "paris",
            Style::Classic => "classic",
        }
    }
}

schema::declare_record! {
    ($) hop_fields =>
    /// One TTL of a finished trace.
    #[derive(Clone, Debug, PartialEq, Serialize)]
    pub struct HopResult {
        pub ttl: u8,
        /// The responder that answered most; none when no probe was answered.
        #[serde(serialize_with = "crate::event::opt_ip")]
        pub addr: Option<IpAddr>,
        /// Other responders at this TTL (load balancing, route change).
        #[serde(serialize_with = "crate::event::ips")]
        pub other_addrs: Vec<IpAddr>,
        pub sent: u32,
        pub received: u32,
        pub rtt_min_us: Option<f64>,
        pub rtt_avg_us: Option<f64>,
        pub rtt_max_us: Option<f64>,
        pub icmp_type: Option<u8>,
        pub icmp_code: Option<u8>,
        /// The probe's TTL as the responder quoted it, when not 1: a router
        /// that resets TTLs, or the path length left at an unreachable.
        pub quoted_ttl: Option<u8>,
    }
}

impl HopResult {
    pub fn loss_percent(&self) -> f64 {
        if self.sent == 0 {
            return 0.0;
        }
        100.0 * (self.sent - self.received.min(self.sent)) as f64 / self.sent as f64
    }
}

schema::declare_record! {
    ($) stats_fields =>
    /// Counters, periodically and at the end of a run.
    #[derive(Clone, Debug, Default, PartialEq, Serialize)]
    pub struct Stats {
        pub ts: Timestamp,
        pub ts_us: i64,
        /// Packets read from the capture.
        pub packets: u64,
        /// TCP segments decoded.
        pub segments: u64,
        /// Packets that were not TCP (or fragments), by reason.
        pub ignored: std::collections::BTreeMap<&'static str, u64>,
        /// Truncated or malformed packets, by kind.
        pub decode_errors: std::collections::BTreeMap<&'static str, u64>,
        /// Packets dropped by the kernel (live capture): buffer full.
        pub kernel_drops: Option<u64>,
        /// Packets dropped by the interface or driver (live capture).
        pub interface_drops: Option<u64>,
        /// Same packet captured twice (NFLOG, loopback, `any`): counted once.
        pub duplicates: u64,
        pub attempts: std::collections::BTreeMap<&'static str, u64>,
        /// SYN-ACKs that never met a SYN (backscatter of spoofed floods, or
        /// connections opened before capture started).
        pub synack_without_syn: u64,
        pub table_size: u64,
        pub table_peak: u64,
        /// Entries (pending attempts or flows) pushed out of the full table.
        pub evictions: u64,
        /// SYN-ACKs that came after their attempt was reported unanswered.
        pub late_synacks: u64,
        pub flows: u64,
        pub scans: u64,
        /// Events lost because an output could not keep up.
        pub queue_drops: u64,
        /// TCP segments of the sensor's own traceroute probes, left out.
        pub trace_probes: u64,
        /// Traces finished (live, with `[trace] enabled`).
        pub routes: Option<u64>,
        /// Traceroute probes sent.
        pub probes_sent: Option<u64>,
        /// Delivery to a collector (`[output.collector]`), so far: events the
        /// collector stored, retries, events dropped from a full spool, events
        /// in batches the collector refused.
        pub delivered: Option<u64>,
        pub delivery_retries: Option<u64>,
        pub spool_dropped: Option<u64>,
        pub delivery_rejected: Option<u64>,
    }
}

/// An address as text; IPv4 digits by hand (every event has two addresses,
/// and the formatting machinery was a visible part of the JSON output).
pub(crate) fn ip<S: serde::Serializer>(addr: &IpAddr, s: S) -> Result<S::Ok, S::Error> {
    match addr {
        IpAddr::V4(v4) => {
            let mut buf = [0u8; 15];
            let len = ipv4_text(v4.octets(), &mut buf);
            s.serialize_str(std::str::from_utf8(&buf[..len]).map_err(serde::ser::Error::custom)?)
        }
        IpAddr::V6(_) => s.collect_str(addr),
    }
}

/// Dotted-quad text of `octets` into `buf`; its length.
fn ipv4_text(octets: [u8; 4], buf: &mut [u8; 15]) -> usize {
    let mut len = 0;
    for (i, o) in octets.into_iter().enumerate() {
        if i > 0 {
            buf[len] = b'.';
            len += 1;
        }
        if o >= 100 {
            buf[len] = b'0' + o / 100;
            len += 1;
        }
        if o >= 10 {
            buf[len] = b'0' + (o / 10) % 10;
            len += 1;
        }
        buf[len] = b'0' + o % 10;
        len += 1;
    }
    len
}

pub(crate) fn opt_ip<S: serde::Serializer>(addr: &Option<IpAddr>, s: S) -> Result<S::Ok, S::Error> {
    match addr {
        Some(a) => ip(a, s),
        None => s.serialize_none(),
    }
}

pub(crate) fn ips<S: serde::Serializer>(addrs: &[IpAddr], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(addrs.iter().map(ToString::to_string))
}

pub(crate) fn display<T: std::fmt::Display, S: serde::Serializer>(v: &T, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(v)
}

/// The usual initial TTLs (64: Linux, macOS, BSD; 128: Windows; 255: network
/// gear; 32: old stacks): the smallest one at or above the observed TTL.
pub fn initial_ttl_guess(observed: u8) -> u8 {
    [32u8, 64, 128, 255].into_iter().find(|&i| observed <= i).unwrap_or(255)
}

#[cfg(test)]
impl Handshake {
    /// An established handshake between `client` and `server`, for tests.
    pub(crate) fn sample(
        id: u64,
        client: (IpAddr, u16),
        server: (IpAddr, u16),
        direction: Direction,
        outcome: Outcome,
    ) -> Handshake {
        Handshake {
            id,
            ts: Timestamp::ZERO,
            ts_us: 0,
            client_ip: client.0,
            client_port: client.1,
            server_ip: server.0,
            server_port: server.1,
            ip_version: if client.0.is_ipv4() { 4 } else { 6 },
            vlan: VlanStack::default(),
            direction,
            outcome,
            completed: true,
            syn_count: 1,
            syns_before_synack: 1,
            synack_count: 1,
            first_syn_us: 0,
            first_synack_us: Some(1000),
            ack_us: None,
            rtt_last_syn_us: Some(1000.0),
            rtt_first_syn_us: Some(1000.0),
            client_rtt_us: None,
            reordered: false,
            synack_seq_changed: false,
            rst_from: None,
            client_ttl: 64,
            client_initial_ttl: 64,
            client_hops: 0,
            server_ttl: Some(60),
            server_initial_ttl: Some(64),
            server_hops: Some(4),
            client_mss: Some(1460),
            client_wscale: None,
            client_sack_permitted: true,
            client_timestamps: false,
            server_mss: Some(1460),
            server_wscale: None,
            server_sack_permitted: Some(true),
            server_timestamps: Some(false),
            syn_data_len: 0,
            ecn_setup: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv4_text_by_hand_equals_display() {
        for a in 0..=255u8 {
            for b in [0u8, 1, 9, 10, 99, 100, 199, 255] {
                let addr = std::net::Ipv4Addr::new(a, b, 255 - a, b / 2);
                let mut buf = [0u8; 15];
                let len = ipv4_text(addr.octets(), &mut buf);
                assert_eq!(std::str::from_utf8(&buf[..len]).unwrap(), addr.to_string());
                let json = serde_json::to_string(&Wrap(IpAddr::V4(addr))).unwrap();
                assert_eq!(json, format!("\"{addr}\""));
            }
        }
        let v6: IpAddr = "2001:db8::1".parse().unwrap();
        assert_eq!(serde_json::to_string(&Wrap(v6)).unwrap(), "\"2001:db8::1\"");
    }

    struct Wrap(IpAddr);

    impl serde::Serialize for Wrap {
        fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            ip(&self.0, s)
        }
    }
}
