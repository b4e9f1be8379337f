//! Replays captures the test crafts itself: every link type and file
//! variant, duplicates, reordering, backscatter, scans, malformed packets.

mod common;

use std::net::IpAddr;
use std::path::Path;

use net_gazer::craft::{frame, PcapNgWriter, PcapWriter, TcpSpec, TsResolution};
use net_gazer::decode::{LinkType, TcpFlags, VlanStack};
use net_gazer::time::Timestamp;
use serde_json::Value;

const SYN: TcpFlags = TcpFlags::SYN;
const ACK: TcpFlags = TcpFlags::ACK;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn t(us: i64) -> Timestamp {
    Timestamp::from_nanos(1_700_000_000_000_000_000 + us * 1_000)
}

/// The three packets of a handshake: (SYN, SYN-ACK, ACK).
fn handshake(client: &str, cport: u16, server: &str, sport: u16) -> [TcpSpec; 3] {
    let (c, s) = (ip(client), ip(server));
    [
        TcpSpec::new(c, cport, s, sport, SYN).seq(1000).syn_options(5).ip_id(1),
        TcpSpec::new(s, sport, c, cport, SYN | ACK)
            .seq(9000)
            .ack(1001)
            .ttl(52)
            .syn_options(6)
            .ip_id(2),
        TcpSpec::new(c, cport, s, sport, ACK).seq(1001).ack(9001).ip_id(3),
    ]
}

fn find<'a>(events: &'a [&'a Value], client_port: u64) -> &'a Value {
    events
        .iter()
        .find(|e| e["client_port"].as_u64() == Some(client_port))
        .unwrap_or_else(|| panic!("no event for client port {client_port}: {events:#?}"))
}

#[test]
fn pcapng_with_mixed_link_types_duplicates_backscatter_and_errors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mixed.bin"); // no telling extension on purpose
    let mut w = PcapNgWriter::new(Vec::new(), false).unwrap();
    let eth = w.add_interface(1, TsResolution::Micro, 65535).unwrap();
    let sll2 = w.add_interface(276, TsResolution::Nano, 65535).unwrap();
    let nflog = w.add_interface(239, TsResolution::Nano, 65535).unwrap();
    let null = w.add_interface(0, TsResolution::Micro, 65535).unwrap();
    let raw = w.add_interface(101, TsResolution::Nano, 65535).unwrap();
    fn put(w: &mut PcapNgWriter<Vec<u8>>, iface: u32, link: LinkType, vlan: VlanStack, ts: Timestamp, spec: &TcpSpec) {
        let f = frame(link, vlan, &spec.ip_bytes());
        w.write(iface, ts, &f, f.len() as u32).unwrap();
    }
    // 1. IPv4 over Ethernet with Q-in-Q: RTT 12.345 ms, client RTT 0.5 ms.
    let mut qinq = VlanStack::NONE;
    qinq.push(100);
    qinq.push(200);
    let [s, sa, a] = handshake("10.1.1.10", 40001, "198.51.100.7", 443);
    put(&mut w, eth, LinkType::Ethernet, qinq, t(0), &s);
    put(&mut w, eth, LinkType::Ethernet, qinq, t(12_345), &sa);
    put(&mut w, eth, LinkType::Ethernet, qinq, t(12_845), &a);
    // 2. IPv6 over SLL2, nanosecond RTT 1.234567 ms.
    let [s, sa, a] = handshake("fd00::10", 40002, "2001:db8::80", 80);
    put(&mut w, sll2, LinkType::LinuxSll2, VlanStack::NONE, t(20_000), &s);
    let synack_at = Timestamp::from_nanos(t(20_000).as_nanos() + 1_234_567);
    put(&mut w, sll2, LinkType::LinuxSll2, VlanStack::NONE, synack_at, &sa);
    put(&mut w, sll2, LinkType::LinuxSll2, VlanStack::NONE, t(22_000), &a);
    // 3. NFLOG sees every packet twice: duplicates, not retransmissions.
    let [s, sa, a] = handshake("10.1.1.11", 40003, "198.51.100.8", 22);
    for (ts, p) in [(30_000, &s), (31_000, &sa), (31_100, &a)] {
        put(&mut w, nflog, LinkType::Nflog, VlanStack::NONE, t(ts), p);
        put(&mut w, nflog, LinkType::Nflog, VlanStack::NONE, t(ts + 20), p);
    }
    // 4. Refused over NULL/loopback.
    let [s, _, _] = handshake("10.1.1.12", 40004, "198.51.100.9", 25);
    put(&mut w, null, LinkType::Null, VlanStack::NONE, t(40_000), &s);
    let rst = TcpSpec::new(ip("198.51.100.9"), 25, ip("10.1.1.12"), 40004, TcpFlags::RST | ACK).ack(1001);
    put(&mut w, null, LinkType::Null, VlanStack::NONE, t(40_300), &rst);
    // 5. Backscatter: SYN-ACKs to spoofed sources, never a SYN.
    for i in 0..5u8 {
        let sa = TcpSpec::new(
            ip("10.1.1.20"),
            80,
            IpAddr::from([203, 0, 113, i]),
            5000 + i as u16,
            SYN | ACK,
        )
        .seq(1)
        .ack(77);
        put(&mut w, raw, LinkType::Raw, VlanStack::NONE, t(50_000 + i as i64), &sa);
    }
    // 6. Malformed: a TCP header cut short, and an IPv4 header length of 4.
    let good = handshake("10.1.1.13", 40005, "198.51.100.10", 80)[0].ip_bytes();
    w.write(raw, t(60_000), &good[..30], good.len() as u32).unwrap();
    let mut bad = good.clone();
    bad[0] = 0x44;
    w.write(raw, t(60_001), &bad, bad.len() as u32).unwrap();
    // 7. A SYN-ACK captured 260 µs before its SYN.
    let [s, sa, a] = handshake("10.1.1.14", 40006, "198.51.100.11", 80);
    put(&mut w, eth, LinkType::Ethernet, VlanStack::NONE, t(70_000), &sa);
    put(&mut w, eth, LinkType::Ethernet, VlanStack::NONE, t(70_260), &s);
    put(&mut w, eth, LinkType::Ethernet, VlanStack::NONE, t(70_300), &a);
    // 8. Unanswered: SYNs at 0, 1 and 3 s; later traffic moves time past 30 s.
    let [s, _, _] = handshake("10.1.1.15", 40007, "198.51.100.12", 8443);
    for ts in [100_000, 1_100_000, 3_100_000] {
        put(&mut w, eth, LinkType::Ethernet, VlanStack::NONE, t(ts), &s);
    }
    let [s, sa, a] = handshake("10.1.1.16", 40008, "198.51.100.13", 80);
    put(&mut w, eth, LinkType::Ethernet, VlanStack::NONE, t(40_000_000), &s);
    put(&mut w, eth, LinkType::Ethernet, VlanStack::NONE, t(40_001_000), &sa);
    put(&mut w, eth, LinkType::Ethernet, VlanStack::NONE, t(40_001_100), &a);
    // 9. A SYN just before the end of the capture: incomplete, not unanswered.
    let [s, _, _] = handshake("10.1.1.13", 40005, "198.51.100.10", 80);
    put(&mut w, eth, LinkType::Ethernet, VlanStack::NONE, t(40_001_200), &s);
    std::fs::write(&path, w.into_inner()).unwrap();

    let r = common::replay(&[&path], &[]);
    let hs = r.of_kind("handshake");
    assert_eq!(hs.len(), 8, "{:#?}", hs);

    let h = find(&hs, 40001);
    assert_eq!(
        (h["outcome"].as_str(), h["vlan"].as_str(), h["direction"].as_str()),
        (Some("established"), Some("100.200"), Some("outbound"))
    );
    assert_eq!(
        (h["rtt_last_syn_us"].as_f64(), h["client_rtt_us"].as_f64()),
        (Some(12_345.0), Some(500.0))
    );
    assert_eq!(
        (
            h["server_ttl"].as_u64(),
            h["server_hops"].as_u64(),
            h["server_mss"].as_u64()
        ),
        (Some(52), Some(12), Some(1460))
    );

    let h = find(&hs, 40002);
    assert_eq!(
        (h["ip_version"].as_u64(), h["rtt_last_syn_us"].as_f64()),
        (Some(6), Some(1_234.567))
    );
    assert_eq!(h["direction"], "outbound");

    let h = find(&hs, 40003);
    assert_eq!(
        (
            h["syn_count"].as_u64(),
            h["synack_count"].as_u64(),
            h["rtt_last_syn_us"].as_f64()
        ),
        (Some(1), Some(1), Some(1_000.0))
    );
    // SYN and SYN-ACK copies are counted as duplicates; the ACK's copy comes
    // after the handshake was reported, and handshake mode drops packets it
    // no longer needs before looking at them.
    assert_eq!(r.summary["duplicates"].as_u64(), Some(2));

    let h = find(&hs, 40004);
    assert_eq!(
        (h["outcome"].as_str(), h["rst_from"].as_str()),
        (Some("refused"), Some("server"))
    );

    assert_eq!(r.summary["synack_without_syn"].as_u64(), Some(5));
    assert_eq!(r.summary["decode_errors"]["truncated_tcp"].as_u64(), Some(1));
    assert_eq!(r.summary["decode_errors"]["bad_ipv4_header_length"].as_u64(), Some(1));

    let h = find(&hs, 40005);
    assert_eq!(
        h["outcome"], "incomplete",
        "a SYN whose timeout had not passed when the capture ended"
    );

    let h = find(&hs, 40006);
    assert_eq!(
        (h["reordered"].as_bool(), h["rtt_first_syn_us"].as_f64()),
        (Some(true), Some(-260.0))
    );

    let h = find(&hs, 40007);
    assert_eq!(
        (h["outcome"].as_str(), h["syn_count"].as_u64()),
        (Some("unanswered"), Some(3))
    );

    assert_eq!(
        r.summary["packets"].as_u64(),
        Some(3 + 3 + 6 + 2 + 5 + 2 + 3 + 3 + 3 + 1)
    );
    assert_eq!(r.summary["attempts"]["established"].as_u64(), Some(5));
    let stats = r.of_kind("stats");
    assert_eq!(stats.len(), 1, "a final stats event");
}

#[test]
fn classic_pcap_variants_give_identical_events() {
    let dir = tempfile::tempdir().unwrap();
    let mut outputs = Vec::new();
    for (name, link, res, big_endian) in [
        ("le-us-eth", LinkType::Ethernet, TsResolution::Micro, false),
        ("be-ns-sll", LinkType::LinuxSll, TsResolution::Nano, true),
        ("le-ns-loop", LinkType::Loop, TsResolution::Nano, false),
        ("be-us-raw", LinkType::Raw, TsResolution::Micro, true),
        ("le-us-ipv4", LinkType::Ipv4, TsResolution::Micro, false),
    ] {
        let path = dir.path().join(name);
        let mut w = PcapWriter::new(Vec::new(), link.to_linktype(), res, big_endian, 65535).unwrap();
        let [s, sa, a] = handshake("192.168.5.5", 51000, "192.0.2.33", 443);
        for (ts, p) in [(0, &s), (1_000, &s), (1_250, &sa), (1_300, &a)] {
            let f = frame(link, VlanStack::NONE, &p.ip_bytes());
            w.write(t(ts * 1_000), &f, f.len() as u32).unwrap();
        }
        std::fs::write(&path, w.into_inner()).unwrap();
        let r = common::replay(&[&path], &[]);
        let hs = r.of_kind("handshake");
        assert_eq!(hs.len(), 1, "{name}");
        let mut h = hs[0].clone();
        assert_eq!(h["rtt_last_syn_us"].as_f64(), Some(250_000.0), "{name}");
        assert_eq!(h["rtt_first_syn_us"].as_f64(), Some(1_250_000.0), "{name}");
        h["id"] = Value::Null;
        outputs.push(h);
    }
    assert!(
        outputs.windows(2).all(|w| w[0] == w[1]),
        "every variant gives the same event"
    );
}

#[test]
fn a_damaged_file_is_reported_and_the_next_file_still_read() {
    let dir = tempfile::tempdir().unwrap();
    let mk = |name: &str, port: u16, cut: usize| {
        let path = dir.path().join(name);
        let mut w = PcapWriter::new(Vec::new(), 101, TsResolution::Micro, false, 65535).unwrap();
        for p in handshake("10.0.0.1", port, "192.0.2.1", 80) {
            let b = p.ip_bytes();
            w.write(t(port as i64), &b, b.len() as u32).unwrap();
        }
        let mut bytes = w.into_inner();
        bytes.truncate(bytes.len() - cut);
        std::fs::write(&path, bytes).unwrap();
        path
    };
    let damaged = mk("damaged.pcap", 1111, 7);
    let fine = mk("fine.pcap", 2222, 0);
    let r = common::replay(&[&damaged, &fine], &[]);
    assert_eq!(r.summary["file_errors"]["file_truncated_record"].as_u64(), Some(1));
    assert!(
        r.stderr.contains("damaged.pcap"),
        "the warning names the file: {}",
        r.stderr
    );
    assert_eq!(r.of_kind("handshake").len(), 2);
}

#[test]
fn replay_filter_uses_tcpdump_syntax() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("two.pcap");
    let mut w = PcapWriter::new(Vec::new(), 1, TsResolution::Micro, false, 65535).unwrap();
    for (port, base) in [(22u16, 0i64), (443, 10_000)] {
        for (i, p) in handshake("10.0.0.1", 40000 + port, "192.0.2.1", port)
            .iter()
            .enumerate()
        {
            let f = frame(LinkType::Ethernet, VlanStack::NONE, &p.ip_bytes());
            w.write(t(base + i as i64 * 100), &f, f.len() as u32).unwrap();
        }
    }
    std::fs::write(&path, w.into_inner()).unwrap();
    let r = common::replay(&[&path], &["--filter", "not port 22"]);
    let hs = r.of_kind("handshake");
    assert_eq!(hs.len(), 1);
    assert_eq!(hs[0]["server_port"], 443);
    assert_eq!(r.summary["filtered"].as_u64(), Some(3));
}

#[test]
fn shared_captures_replay_without_errors() {
    let data = common::testdata();
    let files: Vec<_> = std::fs::read_dir(data.join("pcaps"))
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "pcap"))
        .collect();
    let refs: Vec<&Path> = files.iter().map(|p| p.as_path()).collect();
    let r = common::replay(&refs, &["--mode", "quality"]);
    assert!(r.summary["packets"].as_u64().unwrap() > 300);
    assert_eq!(r.summary["decode_errors"], serde_json::json!({}));
}
