//! trace: the traceroute engine.
//!
//! - [`wire`] builds probes and reads the answers (ICMP errors quoting a
//!   probe, echo replies, SYN-ACK/RST);
//! - [`engine`] runs many traces at once under a probe budget: a state
//!   machine with no I/O;
//! - [`trigger`] decides which handshakes start a trace, caches routes per
//!   destination and tells when one changed;
//! - [`socket`] is the thin Linux driver (raw sockets, CAP_NET_RAW);
//! - [`tracer`] runs engine, trigger and sockets on a thread of the daemon,
//!   and [`ProbeFilter`] keeps the probes out of the handshake tracker.

pub mod engine;
pub mod socket;
pub mod tracer;
pub mod trigger;
pub mod wire;

use net_gazer_common::sync::Lock;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};

use rustc_hash::FxHashSet;
use serde::{Deserialize, Serialize};

use crate::time::Timestamp;

/// How probes travel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
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

impl Protocol {
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Icmp => "icmp",
            Protocol::Udp => "udp",
            Protocol::Tcp => "tcp",
        }
    }
}

/// How probes of one trace differ from each other.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Style {
    /// What load balancers hash stays constant: one path per trace.
    Paris,
    /// Ports (UDP destination, TCP source) or ICMP checksum vary per probe,
    /// as classic traceroute: per-flow load balancing may mix paths.
    Classic,
}

impl Style {
    pub fn name(self) -> &'static str {
        match self {
            Style::Paris => "paris",
            Style::Classic => "classic",
        }
    }
}

/// One trace to run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    /// The local address probes leave from (its route to `dst`).
    pub src: IpAddr,
    pub dst: IpAddr,
    pub protocol: Protocol,
    /// Destination port for TCP and UDP (default 80 and 33434).
    pub port: Option<u16>,
    /// The handshake that asked for it.
    pub handshake_id: Option<u64>,
    /// How many hops away the destination probably is (from the TTL of
    /// its packets), if known.
    pub hops_hint: Option<u8>,
}

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

impl HopResult {
    pub fn loss_percent(&self) -> f64 {
        if self.sent == 0 {
            return 0.0;
        }
        100.0 * (self.sent - self.received.min(self.sent)) as f64 / self.sent as f64
    }
}

/// One probe of a finished trace (for `net-gazer trace --json`).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ProbeRecord {
    pub ttl: u8,
    pub attempt: u8,
    pub sent_us: i64,
    #[serde(serialize_with = "crate::event::opt_ip")]
    pub from: Option<IpAddr>,
    pub rtt_us: Option<f64>,
}

/// A finished trace.
#[derive(Clone, Debug, PartialEq)]
pub struct TraceResult {
    pub request: Request,
    pub protocol: Protocol,
    pub style: Style,
    pub dst_port: Option<u16>,
    pub started: Timestamp,
    pub finished: Timestamp,
    /// The destination answered.
    pub reached: bool,
    pub hops: Vec<HopResult>,
    pub probes: Vec<ProbeRecord>,
}

impl TraceResult {
    /// The responders per TTL, for comparing paths.
    pub fn path(&self) -> Vec<Option<IpAddr>> {
        self.hops.iter().map(|h| h.addr).collect()
    }
}

/// The destination itself answered (whatever address a multi-homed host
/// answers a UDP probe from, "port unreachable" means it arrived).
pub fn reached_destination(a: &wire::Answer) -> bool {
    let port_unreachable = matches!(a.icmp, Some((3, 3)) | Some((1, 4)));
    a.from_destination() || (a.kind == wire::AnswerKind::Unreachable && port_unreachable)
}

/// The TCP flows of probes in flight, so the handshake tracker can leave
/// them out: a SYN probe and its SYN-ACK are not a connection attempt.
/// Checked by the capture thread for every TCP segment, so the common case
/// (no TCP trace running) is one atomic load.
#[derive(Default)]
pub struct ProbeFilter {
    active: AtomicUsize,
    flows: Lock<FxHashSet<(IpAddr, u16, u16)>>,
}

impl ProbeFilter {
    /// Probes from local port `sport` to `dst:dport` are in flight.
    pub fn add(&self, dst: IpAddr, sport: u16, dport: u16) {
        if self.flows.lock().insert((dst, sport, dport)) {
            self.active.fetch_add(1, Ordering::Release);
        }
    }

    pub fn remove(&self, dst: IpAddr, sport: u16, dport: u16) {
        if self.flows.lock().remove(&(dst, sport, dport)) {
            self.active.fetch_sub(1, Ordering::Release);
        }
    }

    /// The segment between `a:ap` and `b:bp` (either direction) belongs to
    /// a probe.
    pub fn matches(&self, a: IpAddr, ap: u16, b: IpAddr, bp: u16) -> bool {
        if self.active.load(Ordering::Acquire) == 0 {
            return false;
        }
        let f = self.flows.lock();
        f.contains(&(b, ap, bp)) || f.contains(&(a, bp, ap))
    }
}
