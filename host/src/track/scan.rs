//! Scan detection: remote sources trying many ports or hosts of the local
//! networks.
//!
//! Zeek's scan policy, by default: within one window (5 min) from a source's
//! first inbound attempt, 15 distinct ports on one local host make a port
//! scan, 25 distinct local hosts on one port an address scan. Every inbound
//! attempt counts, whatever its outcome (a SYN scan against open ports gets
//! SYN-ACKs). A `detected` event fires when a threshold is crossed, an
//! `ended` event with the totals when the window closes. Memory is bounded by
//! `max_sources` and `max_tracked` distinct items per target.

use std::collections::VecDeque;
use std::hash::Hash;
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
    /// Distinct ports or hosts remembered per target (and listed in events).
    pub max_tracked: usize,
}

impl Default for ScanConfig {
    fn default() -> Self {
        crate::config::defaults::track().scan
    }
}

/// Distinct items tried against one target.
struct Tally<T> {
    items: Vec<T>,
    /// Distinct items beyond `max_tracked` cannot be told apart: counted as
    /// attempts only.
    attempts: u64,
    first: Timestamp,
    last: Timestamp,
    reported: bool,
}

impl<T: PartialEq + Copy> Tally<T> {
    fn new(now: Timestamp) -> Self {
        Tally {
            items: Vec::new(),
            attempts: 0,
            first: now,
            last: now,
            reported: false,
        }
    }

    fn add(&mut self, now: Timestamp, item: T, cap: usize) {
        self.attempts += 1;
        self.last = self.last.max(now);
        if self.items.len() < cap && !self.items.contains(&item) {
            self.items.push(item);
        }
    }
}

struct Source {
    id: u64,
    ports_by_host: FxHashMap<IpAddr, Tally<u16>>,
    hosts_by_port: FxHashMap<u16, Tally<IpAddr>>,
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
                self.evict_oldest(out);
            }
            self.next_id += 1;
            // Keep the queue ordered when packets arrive out of order.
            let deadline = (now + self.cfg.window).max(self.expiry.back().map_or(Timestamp::ZERO, |b| b.0));
            self.expiry.push_back((deadline, src, self.next_id));
            self.sources.insert(
                src,
                Source {
                    id: self.next_id,
                    ports_by_host: FxHashMap::default(),
                    hosts_by_port: FxHashMap::default(),
                },
            );
        }
        let Some(source) = self.sources.get_mut(&src) else {
            return;
        };
        let cap = self.cfg.max_tracked;
        if let Some(t) = tally(&mut source.ports_by_host, dst, now, cap) {
            t.add(now, port, cap);
            if !t.reported && t.items.len() as u32 >= self.cfg.port_threshold {
                t.reported = true;
                self.detected += 1;
                out.push_back(Event::Scan(port_scan(now, src, dst, t, ScanPhase::Detected)));
            }
        }
        if let Some(t) = tally(&mut source.hosts_by_port, port, now, cap) {
            t.add(now, dst, cap);
            if !t.reported && t.items.len() as u32 >= self.cfg.host_threshold {
                t.reported = true;
                self.detected += 1;
                out.push_back(Event::Scan(address_scan(now, src, port, t, ScanPhase::Detected)));
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

    fn evict_oldest(&mut self, out: &mut VecDeque<Event>) {
        while let Some((deadline, src, id)) = self.expiry.pop_front() {
            if self.sources.get(&src).is_some_and(|s| s.id == id) {
                // The window is cut short: report what it found.
                self.close(deadline, src, out);
                return;
            }
        }
    }

    fn close(&mut self, now: Timestamp, src: IpAddr, out: &mut VecDeque<Event>) {
        let Some(source) = self.sources.remove(&src) else {
            return;
        };
        let now = now.max(Timestamp::ZERO);
        for (dst, t) in source.ports_by_host.iter().filter(|(_, t)| t.reported) {
            out.push_back(Event::Scan(port_scan(now, src, *dst, t, ScanPhase::Ended)));
        }
        for (port, t) in source.hosts_by_port.iter().filter(|(_, t)| t.reported) {
            out.push_back(Event::Scan(address_scan(now, src, *port, t, ScanPhase::Ended)));
        }
    }
}

/// The tally for `key`, unless the source already tracks `cap` targets.
fn tally<K: Eq + Hash, T: PartialEq + Copy>(
    map: &mut FxHashMap<K, Tally<T>>,
    key: K,
    now: Timestamp,
    cap: usize,
) -> Option<&mut Tally<T>> {
    if map.len() >= cap && !map.contains_key(&key) {
        return None;
    }
    Some(map.entry(key).or_insert_with(|| Tally::new(now)))
}

fn scan<T>(now: Timestamp, src: IpAddr, scan_type: ScanType, phase: ScanPhase, t: &Tally<T>) -> Scan {
    Scan {
        ts: now,
        ts_us: now.as_micros(),
        src_ip: src,
        scan_type,
        phase,
        target_ip: None,
        target_port: None,
        distinct: t.items.len() as u32,
        ports: Vec::new(),
        hosts: Vec::new(),
        attempts: t.attempts,
        first_us: t.first.as_micros(),
        last_us: t.last.as_micros(),
    }
}

fn port_scan(now: Timestamp, src: IpAddr, dst: IpAddr, t: &Tally<u16>, phase: ScanPhase) -> Scan {
    let mut ports = t.items.clone();
    ports.sort_unstable();
    Scan {
        target_ip: Some(dst),
        ports,
        ..scan(now, src, ScanType::PortScan, phase, t)
    }
}

fn address_scan(now: Timestamp, src: IpAddr, port: u16, t: &Tally<IpAddr>, phase: ScanPhase) -> Scan {
    let mut hosts = t.items.clone();
    hosts.sort_unstable();
    Scan {
        target_port: Some(port),
        hosts,
        ..scan(now, src, ScanType::AddressScan, phase, t)
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
