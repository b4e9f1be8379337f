//! Simulated-time tests of the tracker: segments and instants in, events out.

use std::net::IpAddr;
use std::time::Duration;

use super::*;
use crate::decode::{Segment, TcpFlags, TcpOptions, VlanStack};
use crate::event::{Direction, Event, FlowEnd, Handshake, Outcome, ScanType, Side};

const SYN: TcpFlags = TcpFlags::SYN;
const ACK: TcpFlags = TcpFlags::ACK;

fn ms(n: i64) -> Timestamp {
    Timestamp::from_nanos(1_700_000_000_000_000_000 + n * 1_000_000)
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// A segment from `src:sport` to `dst:dport`.
fn seg(src: &str, sport: u16, dst: &str, dport: u16, flags: TcpFlags, seq: u32, ack: u32) -> Segment {
    Segment {
        src: ip(src),
        dst: ip(dst),
        src_port: sport,
        dst_port: dport,
        vlan: VlanStack::NONE,
        ttl: 64,
        ip_id: (seq ^ ack) as u16,
        seq,
        ack,
        flags,
        window: 64_000,
        checksum: (seq.wrapping_mul(31) ^ ack ^ flags.bits() as u32) as u16,
        payload_len: 0,
        options: TcpOptions::default(),
    }
}

const C: &str = "10.0.0.5";
const S: &str = "192.0.2.80";

fn syn(isn: u32) -> Segment {
    let mut s = seg(C, 40000, S, 443, SYN, isn, 0);
    s.options = TcpOptions {
        mss: Some(1460),
        wscale: Some(7),
        sack_permitted: true,
        timestamps: Some((1, 0)),
        sack_blocks: 0,
    };
    s
}

fn synack(isn: u32, server_isn: u32) -> Segment {
    let mut s = seg(S, 443, C, 40000, SYN | ACK, server_isn, isn.wrapping_add(1));
    s.ttl = 50;
    s.options = TcpOptions {
        mss: Some(1400),
        wscale: None,
        sack_permitted: false,
        timestamps: None,
        sack_blocks: 0,
    };
    s
}

fn client_ack(isn: u32, server_isn: u32) -> Segment {
    seg(C, 40000, S, 443, ACK, isn.wrapping_add(1), server_isn.wrapping_add(1))
}

fn tracker() -> Tracker {
    tracker_with(TrackConfig::default())
}

fn tracker_with(cfg: TrackConfig) -> Tracker {
    Tracker::new(cfg, LocalNetworks::new(vec!["10.0.0.0/8".parse().unwrap()]))
}

fn events(t: &mut Tracker) -> Vec<Event> {
    std::iter::from_fn(|| t.poll_event()).collect()
}

fn handshakes(t: &mut Tracker) -> Vec<Handshake> {
    events(t)
        .into_iter()
        .filter_map(|e| match e {
            Event::Handshake(h) => Some(h),
            _ => None,
        })
        .collect()
}

fn flows(t: &mut Tracker) -> Vec<crate::event::Flow> {
    events(t)
        .into_iter()
        .filter_map(|e| match e {
            Event::Flow(f) => Some(f),
            _ => None,
        })
        .collect()
}

fn only_handshake(t: &mut Tracker) -> Handshake {
    let mut hs = handshakes(t);
    assert_eq!(hs.len(), 1, "expected one handshake event, got {hs:#?}");
    hs.remove(0)
}

#[test]
fn established_handshake_reports_both_rtts_options_and_hops() {
    let mut t = tracker();
    t.handle_segment(ms(0), &syn(1000));
    t.handle_segment(ms(20), &synack(1000, 5000));
    assert!(t.poll_event().is_none(), "reported only when the client's ACK is seen");
    t.handle_segment(ms(21), &client_ack(1000, 5000));
    let h = only_handshake(&mut t);
    assert_eq!(h.outcome, Outcome::Established);
    assert!(h.completed);
    assert_eq!(h.direction, Direction::Outbound);
    assert_eq!((h.syn_count, h.syns_before_synack, h.synack_count), (1, 1, 1));
    assert_eq!(h.rtt_last_syn_us, Some(20_000.0));
    assert_eq!(h.rtt_first_syn_us, Some(20_000.0));
    assert_eq!(h.client_rtt_us, Some(1_000.0));
    assert_eq!(
        (
            h.client_mss,
            h.client_wscale,
            h.client_sack_permitted,
            h.client_timestamps
        ),
        (Some(1460), Some(7), true, true)
    );
    assert_eq!(
        (
            h.server_mss,
            h.server_wscale,
            h.server_sack_permitted,
            h.server_timestamps
        ),
        (Some(1400), None, Some(false), Some(false))
    );
    assert_eq!(
        (h.server_ttl, h.server_initial_ttl, h.server_hops),
        (Some(50), Some(64), Some(14))
    );
    assert_eq!((h.client_ttl, h.client_hops), (64, 0));
    assert_eq!(h.ts, ms(0));
    assert_eq!(h.first_synack_us, Some(ms(20).as_micros()));
    assert_eq!(t.stats().attempts(Outcome::Established), 1);
}

#[test]
fn retransmitted_syns_separate_last_syn_rtt_from_first_syn_rtt() {
    let mut t = tracker();
    t.handle_segment(ms(0), &syn(7));
    t.handle_segment(ms(1000), &syn(7));
    t.handle_segment(ms(3000), &syn(7));
    t.handle_segment(ms(3040), &synack(7, 99));
    // A SYN crossing the SYN-ACK does not move the last-SYN RTT.
    t.handle_segment(ms(3041), &syn(7));
    t.handle_segment(ms(3042), &client_ack(7, 99));
    let h = only_handshake(&mut t);
    assert_eq!((h.syn_count, h.syns_before_synack), (4, 3));
    assert_eq!(h.rtt_last_syn_us, Some(40_000.0));
    assert_eq!(h.rtt_first_syn_us, Some(3_040_000.0));
}

#[test]
fn rst_from_server_is_refused_at_once() {
    let mut t = tracker();
    t.handle_segment(ms(0), &syn(1));
    t.handle_segment(ms(2), &seg(S, 443, C, 40000, TcpFlags::RST | ACK, 0, 2));
    let h = only_handshake(&mut t);
    assert_eq!(
        (h.outcome, h.rst_from, h.completed),
        (Outcome::Refused, Some(Side::Server), false)
    );
    assert_eq!((h.rtt_last_syn_us, h.server_ttl), (None, None));
}

#[test]
fn no_answer_is_unanswered_at_the_timeout_and_late_syns_are_absorbed() {
    let mut t = tracker();
    t.handle_segment(ms(0), &syn(1));
    t.handle_segment(ms(1000), &syn(1));
    assert_eq!(t.poll_timeout(), Some(ms(30_000)));
    t.handle_timeout(ms(29_999));
    assert!(t.poll_event().is_none());
    t.handle_timeout(ms(30_000));
    let h = only_handshake(&mut t);
    assert_eq!((h.outcome, h.syn_count), (Outcome::Unanswered, 2));
    // Linux keeps retransmitting (31 s, 63 s): the same attempt, not new ones.
    t.handle_segment(ms(31_000), &syn(1));
    t.handle_segment(ms(63_000), &syn(1));
    t.handle_timeout(ms(200_000));
    assert!(handshakes(&mut t).is_empty());
    assert_eq!(t.table_size(), 0, "the entry is gone after lingering");
}

#[test]
fn synack_captured_before_its_syn_gives_a_negative_rtt() {
    let mut t = tracker();
    t.handle_segment(ms(10), &synack(5, 6));
    t.handle_segment(ms(9), &syn(5)); // captured later, stamped earlier? no: later in file, earlier in time
    t.handle_segment(ms(11), &client_ack(5, 6));
    let h = only_handshake(&mut t);
    assert_eq!(h.rtt_first_syn_us, Some(1_000.0));
    assert!(!h.reordered, "timestamps in order: not reordered");
    // The client's ACK completes it, though its SYN-ACK waited for the SYN.
    assert_eq!((h.completed, h.client_rtt_us), (true, Some(1_000.0)));

    let mut t = tracker();
    t.handle_segment(ms(10), &synack(5, 6));
    t.handle_segment(ms(10) + Duration::from_micros(260), &syn(5));
    t.handle_segment(ms(11), &client_ack(5, 6));
    let h = only_handshake(&mut t);
    assert!(h.reordered);
    assert_eq!(h.rtt_first_syn_us, Some(-260.0));
    assert_eq!((h.rtt_last_syn_us, h.syns_before_synack), (None, 0));
    assert_eq!(t.stats().synack_without_syn, 0);
}

#[test]
fn synack_without_syn_is_backscatter_not_a_handshake() {
    let mut t = tracker();
    for i in 0..10u32 {
        let mut s = synack(i, 77);
        s.dst = IpAddr::from([203, 0, 113, i as u8]);
        t.handle_segment(ms(i as i64), &s);
    }
    t.handle_timeout(ms(5_000));
    assert!(events(&mut t).is_empty());
    assert_eq!(t.stats().synack_without_syn, 10);
}

#[test]
fn retransmitted_synacks_count_and_a_changed_sequence_is_flagged() {
    let mut t = tracker();
    t.handle_segment(ms(0), &syn(1));
    t.handle_segment(ms(5), &synack(1, 100));
    t.handle_segment(ms(1005), &synack(1, 100));
    t.handle_segment(ms(3005), &synack(1, 200));
    t.handle_segment(ms(3006), &client_ack(1, 200));
    let h = only_handshake(&mut t);
    assert_eq!(h.synack_count, 3);
    assert!(h.synack_seq_changed);
    assert_eq!(h.rtt_last_syn_us, Some(5_000.0));
}

#[test]
fn the_same_packet_captured_twice_is_a_duplicate_not_a_retransmission() {
    let mut t = tracker();
    t.handle_segment(ms(0), &syn(1));
    t.handle_segment(ms(0) + Duration::from_micros(30), &syn(1));
    t.handle_segment(ms(4), &synack(1, 2));
    t.handle_segment(ms(4) + Duration::from_micros(30), &synack(1, 2));
    t.handle_segment(ms(5), &client_ack(1, 2));
    let h = only_handshake(&mut t);
    assert_eq!((h.syn_count, h.synack_count), (1, 1));
    assert_eq!(t.stats().duplicates, 2);
    // The same bytes a second later are a retransmission.
    let mut t = tracker();
    t.handle_segment(ms(0), &syn(1));
    t.handle_segment(ms(1000), &syn(1));
    t.handle_segment(ms(1004), &synack(1, 2));
    t.handle_segment(ms(1005), &client_ack(1, 2));
    assert_eq!(only_handshake(&mut t).syn_count, 2);
}

#[test]
fn ecn_and_fast_open_syns_are_syns() {
    let mut t = tracker();
    let mut s = syn(1);
    s.flags = SYN | TcpFlags::ECE | TcpFlags::CWR;
    s.payload_len = 120;
    t.handle_segment(ms(0), &s);
    t.handle_segment(ms(3), &synack(1, 2));
    t.handle_segment(ms(4), &client_ack(1, 2));
    let h = only_handshake(&mut t);
    assert!(h.ecn_setup);
    assert_eq!(h.syn_data_len, 120);
}

#[test]
fn synack_then_client_rst_is_answered_but_not_completed() {
    let mut t = tracker();
    t.handle_segment(ms(0), &syn(1));
    t.handle_segment(ms(3), &synack(1, 2));
    t.handle_segment(ms(4), &seg(C, 40000, S, 443, TcpFlags::RST, 2, 0));
    let h = only_handshake(&mut t);
    assert_eq!(
        (h.outcome, h.completed, h.rst_from),
        (Outcome::Established, false, Some(Side::Client))
    );
}

#[test]
fn missing_client_ack_reports_after_the_ack_timeout() {
    let mut t = tracker();
    t.handle_segment(ms(0), &syn(1));
    t.handle_segment(ms(3), &synack(1, 2));
    t.handle_timeout(ms(5_002));
    assert!(t.poll_event().is_none());
    t.handle_timeout(ms(5_003));
    let h = only_handshake(&mut t);
    assert_eq!(
        (h.outcome, h.completed, h.client_rtt_us),
        (Outcome::Established, false, None)
    );
}

#[test]
fn vlan_in_key_tells_the_same_tuple_apart() {
    let tagged = |mut s: Segment, id: u16| {
        s.vlan.push(id);
        s
    };
    for (vlan_in_key, expected) in [(false, 1), (true, 2)] {
        let mut t = tracker_with(TrackConfig {
            vlan_in_key,
            ..TrackConfig::default()
        });
        t.handle_segment(ms(0), &syn(1));
        t.handle_segment(ms(50), &tagged(syn(1), 42));
        t.handle_segment(ms(70), &synack(1, 2));
        t.handle_segment(ms(71), &client_ack(1, 2));
        t.handle_segment(ms(120), &tagged(synack(1, 2), 42));
        t.handle_segment(ms(121), &tagged(client_ack(1, 2), 42));
        let hs = handshakes(&mut t);
        assert_eq!(hs.len(), expected, "vlan_in_key {vlan_in_key}: {hs:#?}");
        if vlan_in_key {
            assert_eq!(hs[1].vlan.to_string(), "42");
            assert!(hs.iter().all(|h| h.rtt_last_syn_us == Some(70_000.0)));
        } else {
            assert_eq!(hs[0].syn_count, 2);
            assert_eq!(hs[0].rtt_last_syn_us, Some(20_000.0));
        }
    }
}

#[test]
fn a_new_isn_on_the_same_tuple_is_a_new_attempt() {
    let mut t = tracker();
    t.handle_segment(ms(0), &syn(1));
    t.handle_segment(ms(10), &syn(5000));
    t.handle_segment(ms(12), &synack(5000, 9));
    t.handle_segment(ms(13), &client_ack(5000, 9));
    let hs = handshakes(&mut t);
    assert_eq!(hs.len(), 2);
    assert_eq!(hs[0].outcome, Outcome::Incomplete);
    assert_eq!(
        (hs[1].outcome, hs[1].syn_count, hs[1].rtt_last_syn_us),
        (Outcome::Established, 1, Some(2_000.0))
    );
}

#[test]
fn flush_reports_pending_attempts_as_incomplete_or_unanswered() {
    let mut t = tracker_with(TrackConfig {
        unanswered_timeout: Duration::from_secs(100),
        ..TrackConfig::default()
    });
    t.handle_segment(ms(0), &syn(1));
    let mut other = syn(1);
    other.src_port = 40001;
    t.handle_segment(ms(90_000), &other);
    // Flushing at 100 s: the first attempt's timeout has passed, the second's not.
    t.flush(ms(100_000));
    let hs = handshakes(&mut t);
    let outcomes: Vec<_> = hs.iter().map(|h| (h.client_port, h.outcome)).collect();
    assert_eq!(
        outcomes,
        vec![(40000, Outcome::Unanswered), (40001, Outcome::Incomplete)]
    );
}

#[test]
fn a_syn_flood_cannot_grow_the_table_past_its_bound() {
    let max = 1_000;
    let mut t = tracker_with(TrackConfig {
        max_connections: max,
        ..TrackConfig::default()
    });
    for i in 0..100_000u32 {
        let mut s = seg("0.0.0.0", (i % 50_000) as u16 + 1024, "10.1.1.1", 80, SYN, i, 0);
        s.src = IpAddr::from((0xc000_0000u32 + i).to_be_bytes());
        t.handle_segment(ms(i as i64 / 100), &s);
        assert!(t.table_size() <= max);
        while t.poll_event().is_some() {}
    }
    assert_eq!(t.table_size(), max);
    assert_eq!(t.stats().evictions, 100_000 - max as u64);
    // Evicted attempts left the scan detector bounded too; nothing panicked.
}

#[test]
fn inbound_attempts_to_many_ports_make_a_port_scan() {
    let mut t = tracker();
    for port in 1..=20u16 {
        let s = seg("198.51.100.9", 50000 + port, "10.0.0.7", port, SYN, port as u32, 0);
        t.handle_segment(ms(port as i64), &s);
        t.handle_segment(
            ms(port as i64) + Duration::from_micros(100),
            &seg(
                "10.0.0.7",
                port,
                "198.51.100.9",
                50000 + port,
                TcpFlags::RST | ACK,
                0,
                port as u32 + 1,
            ),
        );
    }
    let evs = events(&mut t);
    let scans: Vec<_> = evs
        .iter()
        .filter_map(|e| if let Event::Scan(s) = e { Some(s) } else { None })
        .collect();
    assert_eq!(scans.len(), 1);
    assert_eq!((scans[0].scan_type, scans[0].distinct), (ScanType::PortScan, 15));
    let refused_inbound = evs
        .iter()
        .filter(
            |e| matches!(e, Event::Handshake(h) if h.direction == Direction::Inbound && h.outcome == Outcome::Refused),
        )
        .count();
    assert_eq!(refused_inbound, 20);
}

fn data(src: &str, sport: u16, dst: &str, dport: u16, seq: u32, ack: u32, len: u32) -> Segment {
    let mut s = seg(src, sport, dst, dport, ACK, seq, ack);
    s.payload_len = len;
    s
}

#[test]
fn quality_mode_counts_a_flow_until_its_last_ack() {
    let mut t = tracker_with(TrackConfig {
        mode: Mode::Quality,
        ..TrackConfig::default()
    });
    t.handle_segment(ms(0), &syn(100));
    t.handle_segment(ms(10), &synack(100, 500));
    t.handle_segment(ms(11), &client_ack(100, 500));
    t.handle_segment(ms(12), &data(C, 40000, S, 443, 101, 501, 200));
    t.handle_segment(ms(22), &data(S, 443, C, 40000, 501, 301, 1000));
    t.handle_segment(ms(23), &data(S, 443, C, 40000, 1501, 301, 1000));
    t.handle_segment(ms(300), &data(S, 443, C, 40000, 501, 301, 1000)); // retransmission
    let mut sack = data(C, 40000, S, 443, 301, 501, 0);
    sack.options.sack_blocks = 1;
    t.handle_segment(ms(301), &sack);
    t.handle_segment(ms(302), &data(C, 40000, S, 443, 301, 2501, 0));
    t.handle_segment(ms(303), &seg(C, 40000, S, 443, TcpFlags::FIN | ACK, 301, 2501));
    t.handle_segment(ms(304), &seg(S, 443, C, 40000, TcpFlags::FIN | ACK, 2501, 302));
    assert!(flows(&mut t).is_empty(), "the flow ends at the last ACK");
    t.handle_segment(ms(305), &seg(C, 40000, S, 443, ACK, 302, 2502));
    let flows = flows(&mut t);
    assert_eq!(flows.len(), 1);
    let f = &flows[0];
    assert_eq!(f.end_reason, FlowEnd::Fin);
    assert!(f.handshake_seen);
    assert_eq!((f.packets_c2s, f.packets_s2c), (7, 5));
    assert_eq!((f.bytes_c2s, f.bytes_s2c), (200, 3000));
    assert_eq!((f.retrans_c2s, f.retrans_s2c), (0, 1));
    assert_eq!(f.sack_blocks_c2s, 1);
    assert_eq!(f.duration_us, 305_000.0);
}

#[test]
fn quality_mode_picks_up_running_flows_and_ends_them_when_idle() {
    let mut t = tracker_with(TrackConfig {
        mode: Mode::Quality,
        ..TrackConfig::default()
    });
    // Server → client data of a connection opened before capture started.
    t.handle_segment(ms(0), &data(S, 443, C, 40000, 1, 1, 1000));
    t.handle_segment(ms(1), &data(C, 40000, S, 443, 1, 1001, 0));
    t.handle_timeout(ms(299_999));
    assert!(t.poll_event().is_none());
    t.handle_timeout(ms(300_001));
    let flows = flows(&mut t);
    assert_eq!(flows.len(), 1);
    let f = &flows[0];
    assert_eq!((f.end_reason, f.handshake_seen), (FlowEnd::Idle, false));
    assert_eq!((f.client_ip, f.client_port, f.bytes_s2c), (ip(C), 40000, 1000));
    assert!(handshakes(&mut t).is_empty());
}

#[test]
fn timeouts_follow_simulated_time_not_the_clock() {
    // Nothing happens between events unless time is handed in.
    let mut t = tracker();
    t.handle_segment(ms(0), &syn(1));
    std::thread::sleep(Duration::from_millis(5));
    assert!(t.poll_event().is_none());
    assert_eq!(t.poll_timeout(), Some(ms(30_000)));
}

#[test]
fn entries_stay_small() {
    // docs/benchmarks.md derives the default table size from these.
    let entry = std::mem::size_of::<conn::Key>() + std::mem::size_of::<conn::Conn>();
    assert!(entry <= 256, "key + entry = {entry} bytes");
}

#[test]
fn only_an_ack_of_the_synack_completes_the_handshake() {
    let mut t = tracker();
    t.handle_segment(ms(0), &syn(1));
    t.handle_segment(ms(3), &synack(1, 500));
    // A stray ACK on the same tuple (of an older connection) does not count.
    t.handle_segment(ms(4), &client_ack(1, 9999));
    assert!(t.poll_event().is_none());
    t.handle_segment(ms(5), &client_ack(1, 500));
    let h = only_handshake(&mut t);
    assert_eq!((h.completed, h.client_rtt_us), (true, Some(2_000.0)));
}

#[test]
fn late_synacks_after_an_unanswered_report_are_counted() {
    let mut t = tracker();
    t.handle_segment(ms(0), &syn(1));
    t.handle_timeout(ms(30_000));
    assert_eq!(only_handshake(&mut t).outcome, Outcome::Unanswered);
    t.handle_segment(ms(31_000), &synack(1, 2));
    assert_eq!(t.stats().late_synacks, 1);
    assert_eq!(t.stats().synack_without_syn, 0);
}

#[test]
fn only_handshakes_waiting_for_their_ack_are_looked_up_for_acks() {
    let mut t = tracker_with(TrackConfig {
        max_connections: 1,
        ..TrackConfig::default()
    });
    t.handle_segment(ms(0), &syn(1));
    assert!(t.awaiting_ack.is_empty(), "no SYN-ACK yet");
    t.handle_segment(ms(1), &synack(1, 500));
    assert_eq!(t.awaiting_ack.len(), 1);
    t.handle_segment(ms(2), &client_ack(1, 500));
    assert!(t.awaiting_ack.is_empty(), "completed");
    assert!(only_handshake(&mut t).completed);

    // An answered attempt pushed out of a full table leaves no key behind.
    let mut other = syn(7);
    other.src_port = 40001;
    t.handle_segment(ms(3), &syn(2));
    t.handle_segment(ms(4), &synack(2, 600));
    assert_eq!(t.awaiting_ack.len(), 1);
    t.handle_segment(ms(5), &other);
    assert!(t.awaiting_ack.is_empty(), "evicted");

    // Nor does one whose ACK never came.
    let mut t = tracker();
    t.handle_segment(ms(0), &syn(1));
    t.handle_segment(ms(1), &synack(1, 500));
    t.handle_timeout(ms(60_000));
    assert!(!only_handshake(&mut t).completed);
    assert!(t.awaiting_ack.is_empty(), "reported at the ACK timeout");
}
