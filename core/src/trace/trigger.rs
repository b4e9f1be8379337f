//! trace::trigger: which handshakes start a trace, and what the last trace
//! to each destination found.
//!
//! The remote end of each handshake is a target: the server of an outbound
//! connection, **the remote client of an inbound one** (never the sensor's
//! own address), the server of transit traffic, and of internal traffic
//! only when configured. Each destination is traced once per `cache_for`;
//! the cache is bounded; a re-trace after expiry that finds another path
//! is reported as changed, with the previous hops. No I/O, no clock.

use std::net::IpAddr;
use std::time::Duration;

use ipnet::IpNet;
use rustc_hash::FxHashMap;

use super::{HopResult, Protocol, TraceResult};
use crate::event::{Direction, Handshake};
use crate::time::Timestamp;

#[derive(Clone, Debug, PartialEq)]
pub struct TriggerSettings {
    /// How long a destination's route is kept before it is traced again.
    pub cache_for: Duration,
    /// Destinations remembered at most.
    pub max_cached: usize,
    /// Destinations never traced.
    pub exclude: Vec<IpNet>,
    /// Trace internal traffic (both ends local) too.
    pub internal: bool,
    /// The probe protocol; `None`: TCP to the connection's service port,
    /// ICMP towards the remote client of an inbound connection.
    pub protocol: Option<Protocol>,
}

impl Default for TriggerSettings {
    fn default() -> Self {
        TriggerSettings {
            cache_for: Duration::from_secs(3600),
            max_cached: 100_000,
            exclude: Vec::new(),
            internal: false,
            protocol: None,
        }
    }
}

/// What a trace needs of a handshake (the capture thread sends these to
/// the tracer).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Seen {
    pub id: u64,
    pub client: (IpAddr, u16),
    pub server: (IpAddr, u16),
    pub direction: Direction,
    /// Hop-count guesses from the TTLs of the SYN and the SYN-ACK.
    pub client_hops: u8,
    pub server_hops: Option<u8>,
}

impl From<&Handshake> for Seen {
    fn from(h: &Handshake) -> Seen {
        Seen {
            id: h.id,
            client: (h.client_ip, h.client_port),
            server: (h.server_ip, h.server_port),
            direction: h.direction,
            client_hops: h.client_hops,
            server_hops: h.server_hops,
        }
    }
}

/// A destination to trace.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Target {
    pub dst: IpAddr,
    pub protocol: Protocol,
    pub port: Option<u16>,
    pub handshake_id: u64,
    /// Hops to it, guessed from the TTL of its packets.
    pub hops: Option<u8>,
}

/// Why a handshake started no trace.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Skip {
    /// Traced, or being traced, within `cache_for`.
    Cached,
    Excluded,
    /// The sensor's own address, loopback, multicast, unspecified.
    NotRemote,
    /// Internal traffic while `internal` is off.
    Internal,
}

struct Cached {
    at: Timestamp,
    running: bool,
    reached: bool,
    hops: Vec<HopResult>,
}

pub struct Trigger {
    settings: TriggerSettings,
    own: Vec<IpAddr>,
    cache: FxHashMap<IpAddr, Cached>,
}

/// What a finished trace means against the previous one.
pub struct Verdict {
    pub changed: bool,
    /// The previous trace's hops when the path changed.
    pub previous: Vec<HopResult>,
}

impl Trigger {
    /// `own`: the sensor's addresses, never traced.
    pub fn new(settings: TriggerSettings, own: Vec<IpAddr>) -> Self {
        Trigger {
            settings,
            own,
            cache: FxHashMap::default(),
        }
    }

    pub fn cached(&self) -> usize {
        self.cache.len()
    }

    /// The target of handshake `h` at `now`, or why there is none. A
    /// target is marked as being traced at once: one trace per destination.
    pub fn target(&mut self, h: &Seen, now: Timestamp) -> Result<Target, Skip> {
        let (dst, auto, port, hops) = match h.direction {
            Direction::Outbound | Direction::Transit => (h.server.0, Protocol::Tcp, Some(h.server.1), h.server_hops),
            Direction::Inbound => (h.client.0, Protocol::Icmp, None, Some(h.client_hops)),
            Direction::Internal if self.settings.internal => {
                (h.server.0, Protocol::Tcp, Some(h.server.1), h.server_hops)
            }
            Direction::Internal => return Err(Skip::Internal),
        };
        if self.own.contains(&dst) || !remote_kind(dst) {
            return Err(Skip::NotRemote);
        }
        if self.settings.exclude.iter().any(|n| n.contains(&dst)) {
            return Err(Skip::Excluded);
        }
        if let Some(c) = self.cache.get(&dst) {
            if c.running || now - c.at < self.settings.cache_for {
                return Err(Skip::Cached);
            }
        }
        self.make_room(now);
        let entry = self.cache.entry(dst).or_insert(Cached {
            at: now,
            running: true,
            reached: false,
            hops: Vec::new(),
        });
        entry.at = now;
        entry.running = true;
        let protocol = self.settings.protocol.unwrap_or(auto);
        Ok(Target {
            dst,
            protocol,
            port: match protocol {
                Protocol::Tcp => port.or(Some(80)),
                Protocol::Udp | Protocol::Icmp => None,
            },
            handshake_id: h.id,
            hops,
        })
    }

    /// A trace ended: remember its path, and say whether it changed.
    pub fn finished(&mut self, r: &TraceResult) -> Verdict {
        let dst = r.request.dst;
        let entry = self.cache.entry(dst).or_insert(Cached {
            at: r.started,
            running: false,
            reached: false,
            hops: Vec::new(),
        });
        let had = !entry.hops.is_empty();
        let changed = had && paths_differ(&entry.hops, entry.reached, &r.hops, r.reached);
        // A hop silent this time keeps what the last trace heard there, so
        // an intermittently silent router does not hide a later change.
        let mut known = r.hops.clone();
        for (new, old) in known.iter_mut().zip(&entry.hops) {
            if new.addr.is_none() && new.ttl == old.ttl {
                new.addr = old.addr;
                new.other_addrs.clone_from(&old.other_addrs);
            }
        }
        let old = std::mem::replace(&mut entry.hops, known);
        entry.running = false;
        entry.reached = r.reached;
        entry.at = r.started;
        Verdict {
            changed,
            previous: if changed { old } else { Vec::new() },
        }
    }

    /// A trace could not start (no route, socket error): try again later.
    pub fn abandoned(&mut self, dst: IpAddr) {
        if let Some(c) = self.cache.get_mut(&dst) {
            c.running = false;
        }
    }

    /// Keeps the cache under its bound: expired entries go first, then the
    /// oldest eighth.
    fn make_room(&mut self, now: Timestamp) {
        if self.cache.len() < self.settings.max_cached.max(1) {
            return;
        }
        let ttl = self.settings.cache_for;
        self.cache.retain(|_, c| c.running || now - c.at < ttl);
        if self.cache.len() < self.settings.max_cached {
            return;
        }
        let mut ages: Vec<Timestamp> = self.cache.values().filter(|c| !c.running).map(|c| c.at).collect();
        let cut = ages.len() / 8;
        if cut == 0 {
            return;
        }
        let (_, &mut oldest_kept, _) = ages.select_nth_unstable(cut);
        self.cache.retain(|_, c| c.running || c.at >= oldest_kept);
    }
}

/// Addresses worth tracing: not loopback, multicast, unspecified or
/// link-local.
fn remote_kind(a: IpAddr) -> bool {
    match a {
        IpAddr::V4(v4) => {
            !(v4.is_loopback() || v4.is_multicast() || v4.is_unspecified() || v4.is_broadcast() || v4.is_link_local())
        }
        IpAddr::V6(v6) => {
            !(v6.is_loopback() || v6.is_multicast() || v6.is_unspecified() || (v6.segments()[0] & 0xffc0) == 0xfe80)
        }
    }
}

/// Two traces found different paths: a TTL where both heard from
/// responders that have none in common, or both reached the destination
/// at different distances. A hop silent in one of them is no difference.
pub fn paths_differ(old: &[HopResult], old_reached: bool, new: &[HopResult], new_reached: bool) -> bool {
    if old_reached && new_reached && old.len() != new.len() {
        return true;
    }
    old.iter().zip(new).any(|(a, b)| {
        let (Some(aa), Some(ba)) = (a.addr, b.addr) else {
            return false;
        };
        let seen_a = |x: IpAddr| x == aa || a.other_addrs.contains(&x);
        !(seen_a(ba) || b.other_addrs.iter().any(|&x| seen_a(x)))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Handshake, Outcome};
    use crate::trace::{Request, Style};

    fn handshake(id: u64, client: [u8; 4], server: [u8; 4], direction: Direction) -> Seen {
        let h = Handshake::sample(
            id,
            (IpAddr::from(client), 40000),
            (IpAddr::from(server), 443),
            direction,
            Outcome::Established,
        );
        Seen::from(&h)
    }

    fn hop(ttl: u8, addr: Option<[u8; 4]>) -> HopResult {
        HopResult {
            ttl,
            addr: addr.map(IpAddr::from),
            other_addrs: Vec::new(),
            sent: 3,
            received: if addr.is_some() { 3 } else { 0 },
            rtt_min_us: None,
            rtt_avg_us: None,
            rtt_max_us: None,
            icmp_type: None,
            icmp_code: None,
            quoted_ttl: None,
        }
    }

    fn result(dst: [u8; 4], at: Timestamp, hops: Vec<HopResult>) -> TraceResult {
        TraceResult {
            request: Request {
                src: IpAddr::from([10, 0, 0, 1]),
                dst: IpAddr::from(dst),
                protocol: Protocol::Tcp,
                port: Some(443),
                handshake_id: Some(1),
                hops_hint: None,
            },
            protocol: Protocol::Tcp,
            style: Style::Paris,
            dst_port: Some(443),
            started: at,
            finished: at,
            reached: true,
            hops,
            probes: Vec::new(),
        }
    }

    fn at(s: u64) -> Timestamp {
        Timestamp::from_micros(1_700_000_000_000_000) + Duration::from_secs(s)
    }

    #[test]
    fn the_remote_end_is_the_target_never_the_sensor() {
        let own = IpAddr::from([10, 0, 0, 1]);
        let mut t = Trigger::new(TriggerSettings::default(), vec![own]);
        let out = t.target(&handshake(1, [10, 0, 0, 5], [192, 0, 2, 9], Direction::Outbound), at(0));
        assert_eq!(
            out.map(|x| (x.dst, x.protocol, x.port)),
            Ok((IpAddr::from([192, 0, 2, 9]), Protocol::Tcp, Some(443)))
        );
        // Inbound: the remote client, by ICMP (it has no service port).
        let inbound = t.target(
            &handshake(2, [198, 51, 100, 7], [10, 0, 0, 1], Direction::Inbound),
            at(0),
        );
        assert_eq!(
            inbound.map(|x| (x.dst, x.protocol)),
            Ok((IpAddr::from([198, 51, 100, 7]), Protocol::Icmp))
        );
        // A connection to the sensor's own address seen "outbound" (a
        // misconfigured local network) still never traces the sensor.
        let own_target = t.target(
            &handshake(3, [198, 51, 100, 8], [10, 0, 0, 1], Direction::Outbound),
            at(0),
        );
        assert_eq!(own_target, Err(Skip::NotRemote));
        let internal = t.target(&handshake(4, [10, 0, 0, 5], [10, 0, 0, 6], Direction::Internal), at(0));
        assert_eq!(internal, Err(Skip::Internal));
    }

    #[test]
    fn one_trace_per_destination_per_cache_period_and_exclusions() {
        let settings = TriggerSettings {
            cache_for: Duration::from_secs(60),
            exclude: vec!["203.0.113.0/24".parse().unwrap()],
            ..TriggerSettings::default()
        };
        let mut t = Trigger::new(settings, vec![]);
        let h = handshake(1, [10, 0, 0, 5], [192, 0, 2, 9], Direction::Outbound);
        assert!(t.target(&h, at(0)).is_ok());
        assert_eq!(t.target(&h, at(1)), Err(Skip::Cached), "running");
        t.finished(&result([192, 0, 2, 9], at(0), vec![hop(1, Some([1, 1, 1, 1]))]));
        assert_eq!(t.target(&h, at(59)), Err(Skip::Cached));
        assert!(t.target(&h, at(61)).is_ok(), "expired: traced again");
        let excluded = handshake(2, [10, 0, 0, 5], [203, 0, 113, 4], Direction::Outbound);
        assert_eq!(t.target(&excluded, at(0)), Err(Skip::Excluded));
    }

    #[test]
    fn the_cache_stays_bounded() {
        let settings = TriggerSettings {
            max_cached: 100,
            ..TriggerSettings::default()
        };
        let mut t = Trigger::new(settings, vec![]);
        for i in 0..1000u32 {
            let [_, a, b, c] = (0x0a00_0000u32 + i).to_be_bytes();
            let dst = [192, a, b, c];
            let h = handshake(i as u64, [10, 0, 0, 5], dst, Direction::Outbound);
            assert!(t.target(&h, at(i as u64)).is_ok());
            t.finished(&result(dst, at(i as u64), vec![]));
            assert!(t.cached() <= 100);
        }
    }

    #[test]
    fn a_different_path_after_expiry_is_a_change_a_silent_hop_is_not() {
        let a = vec![
            hop(1, Some([1, 1, 1, 1])),
            hop(2, Some([2, 2, 2, 2])),
            hop(3, Some([192, 0, 2, 9])),
        ];
        let silent = vec![hop(1, Some([1, 1, 1, 1])), hop(2, None), hop(3, Some([192, 0, 2, 9]))];
        let other = vec![
            hop(1, Some([1, 1, 1, 1])),
            hop(2, Some([2, 2, 2, 3])),
            hop(3, Some([192, 0, 2, 9])),
        ];
        let longer = vec![
            hop(1, Some([1, 1, 1, 1])),
            hop(2, Some([2, 2, 2, 2])),
            hop(3, Some([3, 3, 3, 3])),
            hop(4, Some([192, 0, 2, 9])),
        ];
        assert!(!paths_differ(&a, true, &silent, true));
        assert!(paths_differ(&a, true, &other, true));
        assert!(paths_differ(&a, true, &longer, true));
        let unfinished = &longer[..2];
        assert!(
            !paths_differ(unfinished, false, &a, true),
            "an unfinished trace says nothing about the length"
        );

        let mut t = Trigger::new(TriggerSettings::default(), vec![]);
        assert!(
            !t.finished(&result([192, 0, 2, 9], at(0), a.clone())).changed,
            "first trace"
        );
        assert!(!t.finished(&result([192, 0, 2, 9], at(4000), silent)).changed);
        let v = t.finished(&result([192, 0, 2, 9], at(8000), other));
        assert!(v.changed);
        assert_eq!(v.previous.len(), 3);
    }
}
