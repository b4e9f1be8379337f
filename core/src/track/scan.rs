//! Scan detection: remote sources trying many ports or hosts of the local
//! networks.
//!
//! Zeek's scan policy, by default: within one window (5 min) from a source's
//! first inbound attempt, 15 distinct ports on one local host make a port
//! scan, 25 distinct local hosts on one port an address scan. Every inbound
//! attempt counts, whatever its outcome (a SYN scan against open ports gets
//! SYN-ACKs). A `detected` event fires when a threshold is crossed, an
//! `ended` event with the totals when the window closes. Memory is bounded by
//! `max_sources` sources and `max_tracked` distinct (host, port) pairs per
//! source.

use std::collections::VecDeque;
use std::net::IpAddr;
use std::time::Duration;

use rustc_hash::FxHashMap;

use crate::event::{Event, Scan, ScanPhase, ScanType};
use crate::time::Timestamp;

#[derive(Clone, Debug)]
pub struct ScanConfig {
    pub enabled: bool,
    pub window: Duration,
    pub port_threshold: u32,
    pub host_threshold: u32,
    /// Sources tracked at once; the oldest window is dropped beyond it.
    pub max_sources: usize,
    /// Distinct (local host, port) pairs remembered per source; events list
    /// the ports or hosts among them.
    pub max_tracked: usize,
}

impl Default for ScanConfig {
    /// Zeek's scan policy: 15 ports on one host or 25 hosts on one port in
    /// 5 minutes.
    fn default() -> Self {
        ScanConfig {
            enabled: true,
            window: Duration::from_secs(300),
            port_threshold: 15,
            host_threshold: 25,
            max_sources: 65_536,
            max_tracked: 1_024,
        }
    }
}

/// One distinct (local host, port) pair a source tried.
#[derive(Clone, Copy, Debug)]
struct Try {
    host: IpAddr,
    port: u16,
    /// Attempts at this pair, repeats included.
    attempts: u32,
    first: Timestamp,
    last: Timestamp,
}

/// A scan target already reported as detected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Target {
    Host(IpAddr),
    Port(u16),
}

/// One source's window: the distinct pairs it tried, in one small vector
/// (most sources try one or two; a scanner at most `max_tracked`), so a
/// flood of one-SYN sources costs little.
struct Source {
    id: u64,
    /// Pairs beyond `max_tracked` are not remembered.
    tried: Vec<Try>,
    reported: Vec<Target>,
}

impl Source {
    fn record(&mut self, now: Timestamp, host: IpAddr, port: u16, cap: usize) {
        if let Some(t) = self.tried.iter_mut().find(|t| t.host == host && t.port == port) {
            t.attempts += 1;
            t.last = t.last.max(now);
        } else if self.tried.len() < cap {
            self.tried.push(Try {
                host,
                port,
                attempts: 1,
                first: now,
                last: now,
            });
        }
    }

    fn matching(&self, target: Target) -> impl Iterator<Item = &Try> {
        self.tried.iter().filter(move |t| match target {
            Target::Host(h) => t.host == h,
            Target::Port(p) => t.port == p,
        })
    }

    /// Distinct ports tried on a host, or hosts on a port.
    fn distinct(&self, target: Target) -> usize {
        self.matching(target).count()
    }

    fn event(&self, now: Timestamp, src: IpAddr, target: Target, phase: ScanPhase) -> Scan {
        let (mut ports, mut hosts) = (Vec::new(), Vec::new());
        let (mut attempts, mut first, mut last) = (0u64, Timestamp::MAX, Timestamp::ZERO);
        for t in self.matching(target) {
            match target {
                Target::Host(_) => ports.push(t.port),
                Target::Port(_) => hosts.push(t.host),
            }
            attempts += t.attempts as u64;
            first = first.min(t.first);
            last = last.max(t.last);
        }
        ports.sort_unstable();
        hosts.sort_unstable();
        let (scan_type, target_ip, target_port) = match target {
            Target::Host(h) => (ScanType::PortScan, Some(h), None),
            Target::Port(p) => (ScanType::AddressScan, None, Some(p)),
        };
        Scan {
            ts: now,
            ts_us: now.as_micros(),
            src_ip: src,
            scan_type,
            phase,
            target_ip,
            target_port,
            distinct: (ports.len() + hosts.len()) as u32,
            ports,
            hosts,
            attempts,
            first_us: first.as_micros(),
            last_us: last.as_micros(),
        }
    }
}

pub(crate) struct ScanDetector {
    cfg: ScanConfig,
    sources: FxHashMap<IpAddr, Source>,
    expiry: VecDeque<(Timestamp, IpAddr, u64)>,
    next_id: u64,
    pub detected: u64,
}

impl ScanDetector {
    pub fn new(cfg: ScanConfig) -> Self {
        ScanDetector {
            cfg,
            sources: FxHashMap::default(),
            expiry: VecDeque::new(),
            next_id: 0,
            detected: 0,
        }
    }

    /// An inbound attempt from `src` to local `dst:port`.
    pub fn handle_attempt(&mut self, now: Timestamp, src: IpAddr, dst: IpAddr, port: u16, out: &mut VecDeque<Event>) {
        if !self.cfg.enabled {
            return;
        }
        if !self.sources.contains_key(&src) {
            if self.sources.len() >= self.cfg.max_sources {
                self.evict_oldest(now, out);
            }
            self.next_id += 1;
            // Keep the queue ordered when packets arrive out of order.
            let deadline = (now + self.cfg.window).max(self.expiry.back().map_or(Timestamp::ZERO, |b| b.0));
            self.expiry.push_back((deadline, src, self.next_id));
            self.sources.insert(
                src,
                Source {
                    id: self.next_id,
                    tried: Vec::new(),
                    reported: Vec::new(),
                },
            );
        }
        let Some(source) = self.sources.get_mut(&src) else {
            return;
        };
        source.record(now, dst, port, self.cfg.max_tracked);
        let checks = [
            (Target::Host(dst), self.cfg.port_threshold),
            (Target::Port(port), self.cfg.host_threshold),
        ];
        for (target, threshold) in checks {
            if !source.reported.contains(&target) && source.distinct(target) >= threshold as usize {
                source.reported.push(target);
                self.detected += 1;
                out.push_back(Event::Scan(source.event(now, src, target, ScanPhase::Detected)));
            }
        }
    }

    pub fn next_deadline(&self) -> Option<Timestamp> {
        self.expiry.front().map(|e| e.0)
    }

    pub fn handle_timeout(&mut self, now: Timestamp, out: &mut VecDeque<Event>) {
        while let Some(&(deadline, src, id)) = self.expiry.front() {
            if deadline > now {
                break;
            }
            self.expiry.pop_front();
            if self.sources.get(&src).is_some_and(|s| s.id == id) {
                self.close(deadline, src, out);
            }
        }
    }

    /// Closes every window (shutdown).
    pub fn flush(&mut self, now: Timestamp, out: &mut VecDeque<Event>) {
        while let Some((_, src, id)) = self.expiry.pop_front() {
            if self.sources.get(&src).is_some_and(|s| s.id == id) {
                self.close(now, src, out);
            }
        }
    }

    /// Makes room: the oldest window is cut short at `now` and reported.
    fn evict_oldest(&mut self, now: Timestamp, out: &mut VecDeque<Event>) {
        while let Some((_, src, id)) = self.expiry.pop_front() {
            if self.sources.get(&src).is_some_and(|s| s.id == id) {
                self.close(now, src, out);
                return;
            }
        }
    }

    fn close(&mut self, now: Timestamp, src: IpAddr, out: &mut VecDeque<Event>) {
        let Some(source) = self.sources.remove(&src) else {
            return;
        };
        for &target in &source.reported {
            out.push_back(Event::Scan(source.event(now, src, target, ScanPhase::Ended)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn t(s: u64) -> Timestamp {
        Timestamp::from_nanos(s as i64 * 1_000_000_000)
    }

    #[test]
    fn fifteen_ports_on_one_host_is_a_port_scan() {
        let mut d = ScanDetector::new(ScanConfig::default());
        let mut out = VecDeque::new();
        for port in 1..=14 {
            d.handle_attempt(t(port as u64), a("198.51.100.7"), a("10.0.0.1"), port, &mut out);
        }
        assert!(out.is_empty(), "14 ports are not a scan");
        // Repeating a port does not make it distinct.
        d.handle_attempt(t(20), a("198.51.100.7"), a("10.0.0.1"), 3, &mut out);
        assert!(out.is_empty());
        d.handle_attempt(t(21), a("198.51.100.7"), a("10.0.0.1"), 15, &mut out);
        let Some(Event::Scan(s)) = out.pop_front() else {
            panic!("expected a scan event")
        };
        assert_eq!(
            (s.scan_type, s.phase, s.distinct, s.attempts),
            (ScanType::PortScan, ScanPhase::Detected, 15, 16)
        );
        assert_eq!(s.ports, (1..=15).collect::<Vec<u16>>());
        assert_eq!(s.target_ip, Some(a("10.0.0.1")));
        // More ports: no second detection; the window's end reports totals.
        d.handle_attempt(t(22), a("198.51.100.7"), a("10.0.0.1"), 16, &mut out);
        assert!(out.is_empty());
        assert_eq!(d.next_deadline(), Some(t(301)));
        d.handle_timeout(t(300), &mut out);
        assert!(out.is_empty());
        d.handle_timeout(t(301), &mut out);
        let Some(Event::Scan(s)) = out.pop_front() else {
            panic!("expected the ended event")
        };
        assert_eq!((s.phase, s.distinct), (ScanPhase::Ended, 16));
    }

    #[test]
    fn twenty_five_hosts_on_one_port_is_an_address_scan() {
        let mut d = ScanDetector::new(ScanConfig::default());
        let mut out = VecDeque::new();
        for host in 1..=25u8 {
            d.handle_attempt(t(1), a("203.0.113.9"), IpAddr::from([10, 0, 0, host]), 445, &mut out);
        }
        assert_eq!(out.len(), 1);
        let Some(Event::Scan(s)) = out.pop_front() else {
            panic!()
        };
        assert_eq!(
            (s.scan_type, s.target_port, s.hosts.len()),
            (ScanType::AddressScan, Some(445), 25)
        );
    }

    #[test]
    fn memory_is_bounded_by_max_sources() {
        let cfg = ScanConfig {
            max_sources: 100,
            ..ScanConfig::default()
        };
        let mut d = ScanDetector::new(cfg);
        let mut out = VecDeque::new();
        for i in 0..10_000u32 {
            d.handle_attempt(t(1), IpAddr::from(i.to_be_bytes()), a("10.0.0.1"), 80, &mut out);
        }
        assert_eq!(d.sources.len(), 100);
        assert!(out.is_empty());
    }
}
