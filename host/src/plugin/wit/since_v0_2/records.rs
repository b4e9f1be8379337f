//! The sensor's events as contract 0.2's records.

use super::{ip, protocol, style, types, vlan};
use crate::event;

/// The record a plugin sees; `None` for events plugins do not get (stats).
pub fn record(event: &event::Event, tags: &[event::Tag]) -> Option<types::Event> {
    let tags = tags
        .iter()
        .map(|t| types::Tag {
            key: t.key.clone(),
            value: t.value.clone(),
        })
        .collect();
    Some(match event {
        event::Event::Handshake(h) => types::Event::Handshake(handshake(h, tags)),
        event::Event::Flow(f) => types::Event::Flow(flow(f, tags)),
        event::Event::Scan(s) => types::Event::Scan(scan(s, tags)),
        event::Event::Route(r) => types::Event::Route(route(r, tags)),
        event::Event::Stats(_) => return None,
    })
}

fn direction(d: event::Direction) -> types::Direction {
    match d {
        event::Direction::Outbound => types::Direction::Outbound,
        event::Direction::Inbound => types::Direction::Inbound,
        event::Direction::Internal => types::Direction::Internal,
        event::Direction::Transit => types::Direction::Transit,
    }
}

fn side(s: event::Side) -> types::Side {
    match s {
        event::Side::Client => types::Side::Client,
        event::Side::Server => types::Side::Server,
    }
}

fn handshake(h: &event::Handshake, tags: Vec<types::Tag>) -> types::Handshake {
    types::Handshake {
        id: h.id,
        ts_us: h.ts_us,
        client_ip: ip(h.client_ip),
        client_port: h.client_port,
        server_ip: ip(h.server_ip),
        server_port: h.server_port,
        ip_version: h.ip_version,
        vlan: vlan(&h.vlan),
        direction: direction(h.direction),
        outcome: match h.outcome {
            event::Outcome::Established => types::Outcome::Established,
            event::Outcome::Refused => types::Outcome::Refused,
            event::Outcome::Unanswered => types::Outcome::Unanswered,
            event::Outcome::Incomplete => types::Outcome::Incomplete,
        },
        completed: h.completed,
        syn_count: h.syn_count,
        syns_before_synack: h.syns_before_synack,
        synack_count: h.synack_count,
        first_syn_us: h.first_syn_us,
        first_synack_us: h.first_synack_us,
        ack_us: h.ack_us,
        rtt_last_syn_us: h.rtt_last_syn_us,
        rtt_first_syn_us: h.rtt_first_syn_us,
        client_rtt_us: h.client_rtt_us,
        reordered: h.reordered,
        synack_seq_changed: h.synack_seq_changed,
        rst_from: h.rst_from.map(side),
        client_ttl: h.client_ttl,
        client_initial_ttl: h.client_initial_ttl,
        client_hops: h.client_hops,
        server_ttl: h.server_ttl,
        server_initial_ttl: h.server_initial_ttl,
        server_hops: h.server_hops,
        client_mss: h.client_mss,
        client_wscale: h.client_wscale,
        client_sack_permitted: h.client_sack_permitted,
        client_timestamps: h.client_timestamps,
        server_mss: h.server_mss,
        server_wscale: h.server_wscale,
        server_sack_permitted: h.server_sack_permitted,
        server_timestamps: h.server_timestamps,
        syn_data_len: h.syn_data_len,
        ecn_setup: h.ecn_setup,
        tags,
    }
}

fn flow(f: &event::Flow, tags: Vec<types::Tag>) -> types::Flow {
    types::Flow {
        id: f.id,
        ts_us: f.ts_us,
        client_ip: ip(f.client_ip),
        client_port: f.client_port,
        server_ip: ip(f.server_ip),
        server_port: f.server_port,
        ip_version: f.ip_version,
        vlan: vlan(&f.vlan),
        direction: direction(f.direction),
        handshake_seen: f.handshake_seen,
        end_reason: match f.end_reason {
            event::FlowEnd::Fin => types::FlowEnd::Fin,
            event::FlowEnd::Rst => types::FlowEnd::Rst,
            event::FlowEnd::Idle => types::FlowEnd::Idle,
            event::FlowEnd::Reused => types::FlowEnd::Reused,
            event::FlowEnd::Evicted => types::FlowEnd::Evicted,
            event::FlowEnd::Shutdown => types::FlowEnd::Shutdown,
        },
        end_us: f.end_us,
        duration_us: f.duration_us,
        rst_from: f.rst_from.map(side),
        packets_c2s: f.packets_c2s,
        packets_s2c: f.packets_s2c,
        bytes_c2s: f.bytes_c2s,
        bytes_s2c: f.bytes_s2c,
        retrans_c2s: f.retrans_c2s,
        retrans_s2c: f.retrans_s2c,
        sack_blocks_c2s: f.sack_blocks_c2s,
        sack_blocks_s2c: f.sack_blocks_s2c,
        dup_acks_c2s: f.dup_acks_c2s,
        dup_acks_s2c: f.dup_acks_s2c,
        zero_window_c2s: f.zero_window_c2s,
        zero_window_s2c: f.zero_window_s2c,
        tags,
    }
}

fn scan(s: &event::Scan, tags: Vec<types::Tag>) -> types::Scan {
    types::Scan {
        ts_us: s.ts_us,
        src_ip: ip(s.src_ip),
        scan_type: match s.scan_type {
            event::ScanType::PortScan => types::ScanType::PortScan,
            event::ScanType::AddressScan => types::ScanType::AddressScan,
        },
        phase: match s.phase {
            event::ScanPhase::Detected => types::ScanPhase::Detected,
            event::ScanPhase::Ended => types::ScanPhase::Ended,
        },
        target_ip: s.target_ip.map(ip),
        target_port: s.target_port,
        distinct: s.distinct,
        ports: s.ports.clone(),
        hosts: s.hosts.iter().copied().map(ip).collect(),
        attempts: s.attempts,
        first_us: s.first_us,
        last_us: s.last_us,
        tags,
    }
}

fn hop(h: &crate::trace::HopResult) -> types::Hop {
    types::Hop {
        ttl: h.ttl,
        addr: h.addr.map(ip),
        other_addrs: h.other_addrs.iter().copied().map(ip).collect(),
        sent: h.sent,
        received: h.received,
        rtt_min_us: h.rtt_min_us,
        rtt_avg_us: h.rtt_avg_us,
        rtt_max_us: h.rtt_max_us,
        icmp_type: h.icmp_type,
        icmp_code: h.icmp_code,
        quoted_ttl: h.quoted_ttl,
    }
}

fn route(r: &event::Route, tags: Vec<types::Tag>) -> types::Route {
    types::Route {
        id: r.id,
        ts_us: r.ts_us,
        handshake_id: r.handshake_id,
        src_ip: ip(r.src_ip),
        dst_ip: ip(r.dst_ip),
        ip_version: r.ip_version,
        protocol: protocol(r.protocol),
        style: style(r.style),
        dst_port: r.dst_port,
        reached: r.reached,
        hop_count: r.hop_count,
        duration_us: r.duration_us,
        hops: r.hops.iter().map(hop).collect(),
        changed: r.changed,
        previous_hops: r.previous_hops.iter().map(hop).collect(),
        tags,
    }
}

/// Replaces the tags of a record with `tags` (after a plugin added some).
pub fn set_tags(record: &mut types::Event, tags: &[event::Tag]) {
    let list = match record {
        types::Event::Handshake(e) => &mut e.tags,
        types::Event::Flow(e) => &mut e.tags,
        types::Event::Scan(e) => &mut e.tags,
        types::Event::Route(e) => &mut e.tags,
    };
    list.clear();
    list.extend(tags.iter().map(|t| types::Tag {
        key: t.key.clone(),
        value: t.value.clone(),
    }));
}
