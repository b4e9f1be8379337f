//! trace: the traceroute driver around the core's engine.
//!
//! The pure parts live in `net_gazer_core::trace` and are re-exported here:
//! [`wire`] (probes and answers), [`engine`] (many traces under a probe
//! budget) and [`trigger`] (which handshakes start a trace, the route cache).
//! This module adds the I/O:
//!
//! - [`socket`] is the thin Linux driver (raw sockets, CAP_NET_RAW);
//! - [`tracer`] runs engine, trigger and sockets on a thread of the daemon,
//!   and [`ProbeFilter`] keeps the probes out of the handshake tracker.

pub mod socket;
pub mod tracer;

pub use net_gazer_core::trace::*;

use net_gazer_common::sync::Lock;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};

use rustc_hash::FxHashSet;

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
