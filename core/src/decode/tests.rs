//! Byte-fixture tests: every link type, VLAN stacks, IPv6 extension
//! headers, options, and every truncation of every fixture.

use std::net::IpAddr;

use super::*;
use crate::craft::{frame, TcpSpec};

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn spec(src: &str, dst: &str, flags: TcpFlags) -> TcpSpec {
    TcpSpec::new(ip(src), 43210, ip(dst), 443, flags)
        .seq(1_000)
        .ack(2_000)
        .ttl(57)
        .ip_id(0x1234)
}

fn ok(link: LinkType, f: &[u8]) -> Segment {
    let mut warning = None;
    let seg = decode(link, f, Interest::ALL, |w| warning = Some(w)).unwrap_or_else(|e| panic!("{link:?}: {e:?}"));
    assert_eq!(warning, None);
    seg
}

const ALL_LINKS: [LinkType; 9] = [
    LinkType::Ethernet,
    LinkType::LinuxSll,
    LinkType::LinuxSll2,
    LinkType::Raw,
    LinkType::Null,
    LinkType::Loop,
    LinkType::Nflog,
    LinkType::Ipv4,
    LinkType::Ipv6,
];

#[test]
fn every_link_type_yields_the_same_segment() {
    for (src, dst) in [("192.0.2.1", "198.51.100.2"), ("2001:db8::1", "2001:db8::2")] {
        let s = spec(src, dst, TcpFlags::SYN).syn_options(77);
        let packet = s.ip_bytes();
        for link in ALL_LINKS {
            if (link == LinkType::Ipv4 && src.contains(':')) || (link == LinkType::Ipv6 && !src.contains(':')) {
                continue;
            }
            let seg = ok(link, &frame(link, VlanStack::NONE, &packet));
            assert_eq!(
                (seg.src, seg.dst, seg.src_port, seg.dst_port),
                (ip(src), ip(dst), 43210, 443),
                "{link:?}"
            );
            assert_eq!((seg.seq, seg.ack, seg.ttl), (1_000, 2_000, 57), "{link:?}");
            assert!(seg.flags.syn() && !seg.flags.ack());
            assert_eq!(seg.options.mss, Some(1460));
            assert_eq!(seg.options.wscale, Some(7));
            assert!(seg.options.sack_permitted);
            assert_eq!(seg.options.timestamps, Some((77, 0)));
            assert_eq!(seg.ip_id, if src.contains(':') { 0 } else { 0x1234 });
        }
    }
}

#[test]
fn vlan_and_q_in_q_tags_are_collected() {
    let packet = spec("192.0.2.1", "198.51.100.2", TcpFlags::ACK).ip_bytes();
    let mut one = VlanStack::NONE;
    one.push(42);
    let mut two = VlanStack::NONE;
    two.push(10);
    two.push(20);
    assert_eq!(
        ok(LinkType::Ethernet, &frame(LinkType::Ethernet, one, &packet))
            .vlan
            .to_string(),
        "42"
    );
    let seg = ok(LinkType::Ethernet, &frame(LinkType::Ethernet, two, &packet));
    assert_eq!(seg.vlan.ids(), &[10, 20]);
    assert_eq!(seg.vlan.to_string(), "10.20");
}

#[test]
fn syn_is_a_syn_whatever_else_is_set_and_may_carry_data() {
    let flags = TcpFlags::SYN | TcpFlags::ECE | TcpFlags::CWR;
    let s = spec("192.0.2.1", "198.51.100.2", flags).payload(b"GET / HTTP/1.1\r\n");
    let seg = ok(LinkType::Raw, &s.ip_bytes());
    assert!(seg.flags.syn() && seg.flags.contains(TcpFlags::ECE | TcpFlags::CWR));
    assert_eq!(seg.payload_len, 16);
}

#[test]
fn sack_blocks_are_counted() {
    let mut s = spec("192.0.2.1", "198.51.100.2", TcpFlags::ACK);
    s.sack = vec![(10, 20), (30, 40)];
    assert_eq!(ok(LinkType::Raw, &s.ip_bytes()).options.sack_blocks, 2);
}

#[test]
fn payload_length_comes_from_ip_when_the_snaplen_cut_the_packet() {
    let mut s = spec("192.0.2.1", "198.51.100.2", TcpFlags::ACK).payload(&[7; 40]);
    s.missing_payload = 1400;
    let packet = s.ip_bytes();
    assert_eq!(ok(LinkType::Raw, &packet).payload_len, 1440);
    // Cut inside the payload: still a segment.
    assert_eq!(ok(LinkType::Raw, &packet[..60]).payload_len, 1440);
}

#[test]
fn ethernet_padding_is_not_payload() {
    let packet = spec("192.0.2.1", "198.51.100.2", TcpFlags::ACK).ip_bytes();
    let mut f = frame(LinkType::Ethernet, VlanStack::NONE, &packet);
    f.extend_from_slice(&[0; 6]);
    assert_eq!(ok(LinkType::Ethernet, &f).payload_len, 0);
}

/// Inserts IPv6 extension headers between the fixed header and TCP.
fn with_ext_headers(packet: &[u8], headers: &[(u8, Vec<u8>)]) -> Vec<u8> {
    let mut out = packet[..40].to_vec();
    let mut next_values: Vec<u8> = headers.iter().map(|h| h.0).collect();
    next_values.push(6);
    out[6] = next_values[0];
    for (i, (_, body)) in headers.iter().enumerate() {
        let mut h = body.clone();
        h[0] = next_values[i + 1];
        out.extend_from_slice(&h);
    }
    out.extend_from_slice(&packet[40..]);
    let plen = (out.len() - 40) as u16;
    out[4..6].copy_from_slice(&plen.to_be_bytes());
    out
}

#[test]
fn ipv6_extension_headers_are_skipped() {
    let packet = spec("2001:db8::1", "2001:db8::2", TcpFlags::SYN)
        .payload(b"abc")
        .ip_bytes();
    let hop_by_hop = (0u8, vec![0, 0, 1, 4, 0, 0, 0, 0]); // PadN
    let dest_opts = (60u8, {
        let mut v = vec![0, 1];
        v.resize(16, 0);
        v
    });
    let routing = (43u8, vec![0, 0, 0, 0, 0, 0, 0, 0]);
    let atomic_fragment = (44u8, vec![0, 0, 0, 0, 0, 0, 0, 1]);
    let auth = (51u8, vec![0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    let all = [hop_by_hop, dest_opts, routing, atomic_fragment, auth];
    let p = with_ext_headers(&packet, &all);
    let seg = ok(LinkType::Raw, &p);
    assert_eq!((seg.src_port, seg.payload_len), (43210, 3));
    // A real (non-atomic) fragment is not decoded as TCP.
    let frag = (44u8, vec![0, 0, 0, 1, 0, 0, 0, 1]);
    let p = with_ext_headers(&packet, &[frag]);
    assert_eq!(
        decode(LinkType::Raw, &p, Interest::ALL, |_| ()),
        Err(Skip::Ignored(Ignored::Fragment))
    );
}

#[test]
fn non_tcp_and_fragments_are_ignored_not_errors() {
    let mut p = spec("192.0.2.1", "198.51.100.2", TcpFlags::SYN).ip_bytes();
    p[9] = 17;
    assert_eq!(
        decode(LinkType::Raw, &p, Interest::ALL, |_| ()),
        Err(Skip::Ignored(Ignored::NotTcp))
    );
    let mut p = spec("192.0.2.1", "198.51.100.2", TcpFlags::SYN).ip_bytes();
    p[6] = 0x20; // more fragments
    assert_eq!(
        decode(LinkType::Raw, &p, Interest::ALL, |_| ()),
        Err(Skip::Ignored(Ignored::Fragment))
    );
    let mut arp = vec![0u8; 42];
    arp[12..14].copy_from_slice(&0x0806u16.to_be_bytes());
    assert_eq!(
        decode(LinkType::Ethernet, &arp, Interest::ALL, |_| ()),
        Err(Skip::Ignored(Ignored::NotIp))
    );
}

#[test]
fn malformed_headers_are_errors_by_kind() {
    let good = spec("192.0.2.1", "198.51.100.2", TcpFlags::SYN).ip_bytes();
    let mut p = good.clone();
    p[0] = 0x44; // IHL 4
    assert_eq!(
        decode(LinkType::Raw, &p, Interest::ALL, |_| ()),
        Err(Skip::Error(DecodeError::BadIpv4HeaderLength))
    );
    let mut p = good.clone();
    p[2..4].copy_from_slice(&10u16.to_be_bytes());
    assert_eq!(
        decode(LinkType::Raw, &p, Interest::ALL, |_| ()),
        Err(Skip::Error(DecodeError::BadIpv4TotalLength))
    );
    let mut p = good.clone();
    p[0] = 0x75;
    assert_eq!(
        decode(LinkType::Raw, &p, Interest::ALL, |_| ()),
        Err(Skip::Error(DecodeError::BadIpVersion))
    );
    let mut p = good.clone();
    p[32] = 0x30; // TCP data offset 3
    assert_eq!(
        decode(LinkType::Raw, &p, Interest::ALL, |_| ()),
        Err(Skip::Error(DecodeError::BadTcpDataOffset))
    );
    assert_eq!(
        decode(LinkType::Other(147), &good, Interest::ALL, |_| ()),
        Err(Skip::Error(DecodeError::UnsupportedLinkType))
    );
}

#[test]
fn a_bad_option_is_counted_and_the_segment_kept() {
    let mut s = spec("192.0.2.1", "198.51.100.2", TcpFlags::SYN);
    s.mss = Some(1460);
    let mut p = s.ip_bytes();
    p[41] = 40; // MSS option length beyond the header
    let mut warning = None;
    let seg = decode(LinkType::Raw, &p, Interest::ALL, |w| warning = Some(w)).expect("segment kept");
    assert_eq!(warning, Some(DecodeError::MalformedTcpOption));
    assert_eq!(seg.options.mss, None);
}

#[test]
fn every_truncation_of_every_fixture_is_an_error_never_a_panic() {
    let mut one = VlanStack::NONE;
    one.push(5);
    for (src, dst) in [("192.0.2.1", "198.51.100.2"), ("2001:db8::1", "2001:db8::2")] {
        let s = spec(src, dst, TcpFlags::SYN).syn_options(1).payload(&[1; 10]);
        for link in ALL_LINKS {
            let f = frame(
                link,
                if link == LinkType::Ethernet {
                    one
                } else {
                    VlanStack::NONE
                },
                &s.ip_bytes(),
            );
            let full_headers = f.len() - 10;
            for cut in 0..full_headers {
                let r = decode(link, &f[..cut], Interest::ALL, |_| ());
                assert!(
                    matches!(r, Err(Skip::Error(_)) | Err(Skip::Ignored(_))),
                    "{link:?} cut at {cut} of {} decoded: {r:?}",
                    f.len()
                );
            }
        }
    }
}

#[test]
fn random_bytes_never_panic() {
    // A small xorshift: deterministic, no dependency.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let template = frame(
        LinkType::Ethernet,
        VlanStack::NONE,
        &spec("192.0.2.1", "198.51.100.2", TcpFlags::SYN)
            .syn_options(3)
            .ip_bytes(),
    );
    for _ in 0..200_000 {
        let mut f = template.clone();
        let flips = next() % 8;
        for _ in 0..flips {
            let i = (next() as usize) % f.len();
            f[i] = next() as u8;
        }
        f.truncate((next() as usize) % (f.len() + 1));
        let link = ALL_LINKS[(next() as usize) % ALL_LINKS.len()];
        let _ = decode(link, &f, Interest::ALL, |_| ());
    }
}

#[test]
fn interest_drops_what_the_mode_does_not_need_before_reading_options() {
    let handshake = Interest {
        all_tcp: false,
        pure_acks: true,
    };
    let handshake_no_acks = Interest {
        all_tcp: false,
        pure_acks: false,
    };
    let raw = |flags: TcpFlags, payload: usize| {
        spec("192.0.2.1", "198.51.100.2", flags)
            .syn_options(1)
            .payload(&vec![0; payload])
            .ip_bytes()
    };
    let outside = Err(Skip::Ignored(Ignored::OutsideMode));
    assert_eq!(
        decode(LinkType::Raw, &raw(TcpFlags::ACK, 100), handshake, |_| ()),
        outside
    );
    assert_eq!(
        decode(
            LinkType::Raw,
            &raw(TcpFlags::ACK | TcpFlags::PSH, 100),
            handshake,
            |_| ()
        ),
        outside
    );
    assert!(decode(LinkType::Raw, &raw(TcpFlags::ACK, 0), handshake, |_| ()).is_ok());
    assert_eq!(
        decode(LinkType::Raw, &raw(TcpFlags::ACK, 0), handshake_no_acks, |_| ()),
        outside
    );
    for flags in [
        TcpFlags::SYN,
        TcpFlags::SYN | TcpFlags::ACK,
        TcpFlags::RST,
        TcpFlags::FIN | TcpFlags::ACK,
    ] {
        let seg = decode(LinkType::Raw, &raw(flags, 20), handshake_no_acks, |_| ()).expect("control segments pass");
        assert_eq!(seg.options.mss, Some(1460));
    }
    assert!(decode(LinkType::Raw, &raw(TcpFlags::ACK, 100), Interest::ALL, |_| ()).is_ok());
}

/// The fast path says "outside the mode" only where the full decode does,
/// on fixtures of every kind and on 300,000 mutations of them; and it does
/// fire on the common data segments.
#[test]
fn fast_path_agrees_with_the_full_decode() {
    let modes = [
        Interest {
            all_tcp: false,
            pure_acks: true,
        },
        Interest {
            all_tcp: false,
            pure_acks: false,
        },
        Interest::ALL,
    ];
    let mut one = VlanStack::NONE;
    one.push(7);
    let mut templates = Vec::new();
    for (src, dst) in [("192.0.2.1", "198.51.100.2"), ("2001:db8::1", "2001:db8::2")] {
        for flags in [
            TcpFlags::ACK,
            TcpFlags::ACK | TcpFlags::PSH,
            TcpFlags::SYN,
            TcpFlags::FIN | TcpFlags::ACK,
            TcpFlags::RST,
        ] {
            for payload in [0usize, 1, 100] {
                let s = spec(src, dst, flags).payload(&vec![7; payload]);
                templates.push(frame(LinkType::Ethernet, VlanStack::NONE, &s.ip_bytes()));
                templates.push(frame(LinkType::Ethernet, one, &s.ip_bytes()));
            }
        }
        let data = spec(src, dst, TcpFlags::ACK).payload(&[1; 40]).ip_bytes();
        let data_frame = frame(LinkType::Ethernet, VlanStack::NONE, &data);
        assert!(
            fast::outside_interest(LinkType::Ethernet, &data_frame, modes[0]),
            "{src}: data segments take the fast path"
        );
        templates.push(frame(
            LinkType::Ethernet,
            VlanStack::NONE,
            &with_ext_headers(&data, &[(0, vec![0; 6])]),
        ));
    }
    let check = |f: &[u8]| {
        for mode in modes {
            if fast::outside_interest(LinkType::Ethernet, f, mode) {
                assert_eq!(
                    decode_all(LinkType::Ethernet, f, mode, |_| ()),
                    Err(Skip::Ignored(Ignored::OutsideMode)),
                    "fast path skipped {f:02x?} in {mode:?}"
                );
            }
        }
    };
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for t in &templates {
        check(t);
        for cut in 0..t.len() {
            check(&t[..cut]);
        }
    }
    for _ in 0..300_000 {
        let mut f = templates[(next() as usize) % templates.len()].clone();
        for _ in 0..next() % 4 {
            // Mostly the header bytes that decide.
            let i = (next() as usize) % f.len().min(80);
            f[i] = next() as u8;
        }
        f.truncate((next() as usize) % (f.len() + 1));
        check(&f);
    }
}
