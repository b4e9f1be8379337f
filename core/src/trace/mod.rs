//! trace: the traceroute engine.
//!
//! - [`wire`] builds probes and reads the answers (ICMP errors quoting a
//!   probe, echo replies, SYN-ACK/RST);
//! - [`engine`] runs many traces at once under a probe budget: a state
//!   machine with no I/O;
//! - [`trigger`] decides which handshakes start a trace, caches routes per
//!   destination and tells when one changed;
//!
//! The daemon drives them (`net-gazer`'s `trace::tracer`, with raw sockets
//! in `trace::socket`). The route event's own types ([`Protocol`],
//! [`Style`], [`HopResult`]) belong to the event schema, in [`crate::event`].

pub mod engine;
pub mod trigger;
pub mod wire;

use std::net::IpAddr;

use serde::Serialize;

pub use crate::event::{HopResult, Protocol, Style};
use crate::time::Timestamp;

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
