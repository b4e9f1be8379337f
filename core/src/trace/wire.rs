//! trace::wire: the bytes of probes, and what the answers to them say.
//!
//! A probe is filed under its [`Signature`]: the fields of its first eight
//! transport bytes, which every ICMP error quotes (RFC 792 asks for eight;
//! RFC 1812 routers and Linux quote more), plus its destination and
//! protocol. An answer — time exceeded or unreachable quoting the probe, an
//! echo reply, a SYN-ACK or RST from the destination — yields the same
//! signature, so matching is one table look-up whatever the method.
//!
//! **Paris-style** probes keep what load balancers hash constant within a
//! trace (addresses, protocol, ports, ICMP identifier *and checksum*) and
//! number themselves with a field they do not hash: the UDP checksum (two
//! payload bytes make it equal the probe's key), the ICMP sequence (two
//! payload bytes compensate it, so the checksum stays constant) or the TCP
//! sequence number. **Classic** probes vary the UDP destination port, the
//! TCP source port and the ICMP checksum, as traceroute(8) does.

use std::net::{IpAddr, Ipv6Addr};

use crate::craft::{fold, sum};
use crate::decode::TcpFlags;
use crate::packet::ip::{self, Ipv4Packet, Ipv6Packet, IPV6_HEADER_LEN};
use crate::packet::ip_proto;
use crate::packet::tcp::{self, TcpPacket, TcpQuote};

use super::{Protocol, Style};

/// traceroute's UDP base port (nothing listens there).
pub const UDP_BASE_PORT: u16 = 33434;
/// The ICMP types of an echo request (IPv4, IPv6).
const ECHO_REQUEST: (u8, u8) = (8, 128);
/// Recognisable payload: a capture shows where a probe came from.
const MARK: &[u8; 8] = b"ngtrace\0";
/// TCP SYN probes carry an MSS option, as real SYNs do (some firewalls
/// drop SYNs without options).
const TCP_MSS: u16 = 1460;

/// The number of a probe within its trace: TTL and attempt.
pub fn key(ttl: u8, attempt: u8) -> u16 {
    (ttl as u16) << 4 | (attempt as u16 & 0xf)
}

/// The TTL and attempt a key numbers (see [`key`]).
pub fn unkey(key: u16) -> (u8, u8) {
    ((key >> 4) as u8, (key & 0xf) as u8)
}

/// What stays constant through one trace.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Flow {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub protocol: Protocol,
    pub style: Style,
    /// The UDP or TCP source port; the ICMP identifier.
    pub ident: u16,
    /// The UDP or TCP destination port (Paris; the base port in classic
    /// UDP); unused for ICMP.
    pub port: u16,
    /// Random per trace, in TCP sequence numbers and payloads.
    pub cookie: u16,
}

/// What an answer reveals of the probe it answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Signature {
    pub dst: IpAddr,
    pub protocol: Protocol,
    /// UDP/TCP source port; 0 for ICMP.
    pub a: u16,
    /// UDP/TCP destination port; the ICMP identifier.
    pub b: u16,
    /// UDP checksum, TCP sequence number, ICMP sequence number.
    pub c: u32,
}

impl Flow {
    /// The transport header and payload of probe `key` (the kernel adds the
    /// IP header with the TTL the driver sets).
    pub fn probe(&self, key: u16) -> Vec<u8> {
        match self.protocol {
            Protocol::Icmp => self.icmp(key),
            Protocol::Udp => self.udp(key),
            Protocol::Tcp => self.tcp(key),
        }
    }

    fn v6(&self) -> bool {
        self.dst.is_ipv6()
    }

    fn payload(&self, compensation: u16) -> Vec<u8> {
        let mut p = Vec::with_capacity(12);
        p.extend_from_slice(&self.cookie.to_be_bytes());
        p.extend_from_slice(&compensation.to_be_bytes());
        p.extend_from_slice(MARK);
        p
    }

    fn icmp(&self, seq: u16) -> Vec<u8> {
        let kind = if self.v6() { ECHO_REQUEST.1 } else { ECHO_REQUEST.0 };
        // seq + !seq is ones'-complement zero whatever seq: the sum, and so
        // the checksum, stays constant (Paris).
        let compensation = match self.style {
            Style::Paris => !seq,
            Style::Classic => 0,
        };
        let mut m = vec![kind, 0, 0, 0];
        m.extend_from_slice(&self.ident.to_be_bytes());
        m.extend_from_slice(&seq.to_be_bytes());
        m.extend_from_slice(&self.payload(compensation));
        let csum = !fold(sum(&m, self.pseudo_header(58, m.len())));
        m[2..4].copy_from_slice(&csum.to_be_bytes());
        m
    }

    fn udp(&self, key: u16) -> Vec<u8> {
        let dport = match self.style {
            Style::Paris => self.port,
            Style::Classic => self.port.wrapping_add(key),
        };
        let mut u = Vec::with_capacity(20);
        u.extend_from_slice(&self.ident.to_be_bytes());
        u.extend_from_slice(&dport.to_be_bytes());
        u.extend_from_slice(&20u16.to_be_bytes());
        u.extend_from_slice(&[0, 0]);
        u.extend_from_slice(&self.payload(0));
        let partial = fold(sum(&u, self.pseudo_header(17, u.len())));
        let csum = match self.style {
            // Two payload bytes make the checksum equal the key:
            // !(partial + c) = key  ⇔  c = !key − partial (ones' complement).
            Style::Paris => {
                let c = fold(!key as u32 + !partial as u32);
                u[10..12].copy_from_slice(&c.to_be_bytes());
                key
            }
            Style::Classic => match !partial {
                0 => 0xffff,
                c => c,
            },
        };
        u[6..8].copy_from_slice(&csum.to_be_bytes());
        u
    }

    fn tcp(&self, key: u16) -> Vec<u8> {
        let sport = match self.style {
            Style::Paris => self.ident,
            Style::Classic => self.ident.wrapping_add(key),
        };
        // A 24-byte header: the MSS option, as a SYN of a real stack has.
        let mut t = vec![0u8; tcp::HEADER_LEN + 4];
        let [mss_high, mss_low] = TCP_MSS.to_be_bytes();
        t[tcp::HEADER_LEN..].copy_from_slice(&[2, 4, mss_high, mss_low]);
        let len = t.len();
        let Some(mut p) = TcpPacket::new_checked(&mut t[..]) else {
            unreachable!("a header of at least {} bytes was just made", tcp::HEADER_LEN);
        };
        p.set_src_port(sport);
        p.set_dst_port(self.port);
        p.set_seq((key as u32) << 16 | self.cookie as u32);
        p.set_header_len_and_flags(len, TcpFlags::SYN);
        p.set_window(64240);
        let csum = !fold(sum(p.as_bytes(), self.pseudo_header(ip_proto::TCP, len)));
        p.set_checksum(csum);
        t
    }

    /// The checksum's pseudo-header sum for next header `next` (58: ICMP,
    /// which has none over IPv4).
    fn pseudo_header(&self, next: u8, len: usize) -> u32 {
        let addresses = match (self.src, self.dst) {
            (IpAddr::V4(_), _) if next == 58 => return 0,
            (IpAddr::V4(s), IpAddr::V4(d)) => sum(&d.octets(), sum(&s.octets(), 0)),
            (IpAddr::V6(s), IpAddr::V6(d)) => sum(&d.octets(), sum(&s.octets(), 0)),
            _ => 0,
        };
        addresses + next as u32 + len as u32
    }

    /// The signature probe `key` is filed under.
    pub fn signature(&self, key: u16) -> Option<Signature> {
        signature_of(self.dst, self.protocol, &self.probe(key))
    }
}

/// The signature in the first eight transport bytes of a probe (sent or
/// quoted) to `dst`.
pub fn signature_of(dst: IpAddr, protocol: Protocol, t: &[u8]) -> Option<Signature> {
    let t: &[u8; 8] = t.get(..8)?.try_into().ok()?;
    let u16_at = |i: usize| u16::from_be_bytes([t[i], t[i + 1]]);
    Some(match protocol {
        Protocol::Icmp => Signature {
            dst,
            protocol,
            a: 0,
            b: u16_at(4),
            c: u16_at(6) as u32,
        },
        Protocol::Udp => Signature {
            dst,
            protocol,
            a: u16_at(0),
            b: u16_at(2),
            c: u16_at(6) as u32,
        },
        Protocol::Tcp => {
            let quote = TcpQuote::new_checked(&t[..])?;
            Signature {
                dst,
                protocol,
                a: quote.src_port(),
                b: quote.dst_port(),
                c: quote.seq(),
            }
        }
    })
}

/// What answered a probe.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AnswerKind {
    /// A router on the way: TTL exceeded in transit.
    TimeExceeded,
    /// Destination unreachable: from the destination itself with "port
    /// unreachable" (a UDP probe arrived), else a router or host refusing.
    Unreachable,
    /// The destination answered an echo request.
    EchoReply,
    /// The destination answered a SYN with SYN-ACK or RST.
    TcpAnswer,
}

/// One answer to a probe.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Answer {
    /// The responder.
    pub from: IpAddr,
    pub kind: AnswerKind,
    pub signature: Signature,
    /// ICMP type and code, for ICMP answers.
    pub icmp: Option<(u8, u8)>,
    /// The TTL (hop limit) of the probe as the responder quoted it.
    pub quoted_ttl: Option<u8>,
}

impl Answer {
    /// The destination itself answered.
    pub fn from_destination(&self) -> bool {
        self.from == self.signature.dst
    }

    /// The path ends here: the destination answered, or something refused
    /// to forward (unreachable from a router: `!H`, `!N`, `!X`).
    pub fn ends_path(&self) -> bool {
        self.kind != AnswerKind::TimeExceeded
    }
}

fn protocol_of(number: u8) -> Option<Protocol> {
    match number {
        ip_proto::ICMP | ip_proto::ICMPV6 => Some(Protocol::Icmp),
        ip_proto::UDP => Some(Protocol::Udp),
        ip_proto::TCP => Some(Protocol::Tcp),
        _ => None,
    }
}

/// An IPv4 packet from a raw ICMP or TCP socket (header included).
pub fn parse_ipv4(p: &[u8]) -> Option<Answer> {
    if ip::version(p)? != 4 {
        return None;
    }
    let packet = Ipv4Packet::new_checked(p)?;
    let total = usize::from(packet.total_len()).min(p.len());
    let from = IpAddr::V4(packet.src());
    let body = p.get(packet.header_len()..total)?;
    match packet.protocol() {
        ip_proto::ICMP => icmp_answer(from, body, &ICMPV4),
        ip_proto::TCP => tcp_answer(from, body),
        _ => None,
    }
}

fn echo_reply(from: IpAddr, m: &[u8], icmp: (u8, u8)) -> Option<Answer> {
    Some(Answer {
        from,
        kind: AnswerKind::EchoReply,
        signature: Signature {
            dst: from,
            protocol: Protocol::Icmp,
            a: 0,
            b: u16::from_be_bytes([*m.get(4)?, *m.get(5)?]),
            c: u16::from_be_bytes([*m.get(6)?, *m.get(7)?]) as u32,
        },
        icmp: Some(icmp),
        quoted_ttl: None,
    })
}

/// An ICMPv6 message from a raw ICMPv6 socket (no IP header) sent by `from`.
pub fn parse_icmpv6(from: Ipv6Addr, m: &[u8]) -> Option<Answer> {
    icmp_answer(IpAddr::V6(from), m, &ICMPV6)
}

/// The ICMP types of one IP version, and how it quotes a probe.
struct Icmp {
    echo_reply: u8,
    time_exceeded: u8,
    unreachable: u8,
    quote: fn(&[u8]) -> Option<Quote>,
}

const ICMPV4: Icmp = Icmp {
    echo_reply: 0,
    time_exceeded: 11,
    unreachable: 3,
    quote: quote_v4,
};

const ICMPV6: Icmp = Icmp {
    echo_reply: 129,
    time_exceeded: 3,
    unreachable: 1,
    quote: quote_v6,
};

/// What an ICMP error quotes of the probe's IP header.
struct Quote {
    dst: IpAddr,
    protocol: u8,
    ttl: u8,
    /// Where the probe's transport header starts.
    transport: usize,
}

fn quote_v4(inner: &[u8]) -> Option<Quote> {
    if ip::version(inner)? != 4 {
        return None;
    }
    let quoted = Ipv4Packet::new_checked(inner)?;
    Some(Quote {
        dst: IpAddr::V4(quoted.dst()),
        protocol: quoted.protocol(),
        ttl: quoted.ttl(),
        transport: quoted.header_len(),
    })
}

fn quote_v6(inner: &[u8]) -> Option<Quote> {
    if ip::version(inner)? != 6 {
        return None;
    }
    let quoted = Ipv6Packet::new_checked(inner)?;
    Some(Quote {
        dst: IpAddr::V6(quoted.dst()),
        protocol: quoted.next_header(),
        ttl: quoted.hop_limit(),
        transport: IPV6_HEADER_LEN,
    })
}

/// An ICMP message from `from`: an echo reply, or an error quoting a probe
/// (the quoted datagram follows the 8-byte ICMP header; RFC 4884's
/// extensions, when present, come after it).
fn icmp_answer(from: IpAddr, m: &[u8], icmp: &Icmp) -> Option<Answer> {
    let (kind, code) = (*m.first()?, *m.get(1)?);
    let kind_of = match kind {
        k if k == icmp.echo_reply => return echo_reply(from, m, (kind, code)),
        k if k == icmp.time_exceeded => AnswerKind::TimeExceeded,
        k if k == icmp.unreachable => AnswerKind::Unreachable,
        _ => return None,
    };
    let inner = m.get(8..)?;
    let quote = (icmp.quote)(inner)?;
    let protocol = protocol_of(quote.protocol)?;
    Some(Answer {
        from,
        kind: kind_of,
        signature: signature_of(quote.dst, protocol, inner.get(quote.transport..)?)?,
        icmp: Some((kind, code)),
        quoted_ttl: Some(quote.ttl),
    })
}

/// A TCP segment from a raw IPv6 TCP socket (no IP header) sent by `from`.
pub fn parse_tcpv6(from: Ipv6Addr, t: &[u8]) -> Option<Answer> {
    tcp_answer(IpAddr::V6(from), t)
}

/// A SYN-ACK or RST answering a SYN probe: its ports mirror the probe's
/// and it acknowledges the probe's sequence number + 1.
fn tcp_answer(from: IpAddr, t: &[u8]) -> Option<Answer> {
    let answer = TcpPacket::new_checked(t)?;
    let flags = answer.flags();
    if !(flags.syn() && flags.ack() || flags.rst()) {
        return None;
    }
    Some(Answer {
        from,
        kind: AnswerKind::TcpAnswer,
        signature: Signature {
            dst: from,
            protocol: Protocol::Tcp,
            a: answer.dst_port(),
            b: answer.src_port(),
            c: answer.ack().wrapping_sub(1),
        },
        icmp: None,
        quoted_ttl: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flow(protocol: Protocol, style: Style, v6: bool) -> Flow {
        let (src, dst): (IpAddr, IpAddr) = if v6 {
            ("fd00::1".parse().unwrap(), "2001:db8::7".parse().unwrap())
        } else {
            ("10.0.0.1".parse().unwrap(), "192.0.2.7".parse().unwrap())
        };
        Flow {
            src,
            dst,
            protocol,
            style,
            ident: 47001,
            port: if protocol == Protocol::Tcp { 443 } else { UDP_BASE_PORT },
            cookie: 0xbeef,
        }
    }

    /// The ones'-complement sum over pseudo-header and message is all ones
    /// for a correct checksum.
    fn checksum_ok(f: &Flow, m: &[u8]) -> bool {
        let next = match f.protocol {
            Protocol::Icmp => 58,
            Protocol::Udp => 17,
            Protocol::Tcp => 6,
        };
        fold(sum(m, f.pseudo_header(next, m.len()))) == 0xffff
    }

    /// The bytes load balancers hash: ports (or ICMP type, code, checksum
    /// and identifier) and the length.
    fn hashed(f: &Flow, m: &[u8]) -> Vec<u8> {
        match f.protocol {
            Protocol::Icmp => [&m[..6], &[m.len() as u8]].concat(),
            Protocol::Udp | Protocol::Tcp => [&m[..4], &[m.len() as u8]].concat(),
        }
    }

    #[test]
    fn paris_probes_differ_only_where_load_balancers_do_not_look() {
        for protocol in [Protocol::Icmp, Protocol::Udp, Protocol::Tcp] {
            for v6 in [false, true] {
                let f = flow(protocol, Style::Paris, v6);
                let first = f.probe(key(1, 0));
                let mut signatures = std::collections::HashSet::new();
                for ttl in 1..=64u8 {
                    for attempt in 0..16 {
                        let p = f.probe(key(ttl, attempt));
                        assert!(checksum_ok(&f, &p), "{protocol:?} v6={v6} ttl {ttl}: bad checksum");
                        assert_eq!(hashed(&f, &p), hashed(&f, &first), "{protocol:?} v6={v6} ttl {ttl}");
                        assert!(signatures.insert(f.signature(key(ttl, attempt)).unwrap()));
                    }
                }
            }
        }
    }

    #[test]
    fn paris_udp_checksum_is_the_key_for_every_key_and_source() {
        for src_last in 0..=255u8 {
            let mut f = flow(Protocol::Udp, Style::Paris, false);
            f.src = IpAddr::from([10, 0, 0, src_last]);
            for k in (16..4096u16).step_by(7) {
                let p = f.probe(k);
                assert_eq!(u16::from_be_bytes([p[6], p[7]]), k);
                assert!(checksum_ok(&f, &p), "source .{src_last} key {k}");
            }
        }
    }

    #[test]
    fn classic_probes_vary_the_hashed_fields() {
        for protocol in [Protocol::Icmp, Protocol::Udp, Protocol::Tcp] {
            let f = flow(protocol, Style::Classic, false);
            let (a, b) = (f.probe(key(1, 0)), f.probe(key(2, 0)));
            assert!(checksum_ok(&f, &a) && checksum_ok(&f, &b));
            assert_ne!(hashed(&f, &a), hashed(&f, &b), "{protocol:?}");
        }
    }

    fn ipv4_header(proto: u8, ttl: u8, src: [u8; 4], dst: [u8; 4], payload_len: usize) -> Vec<u8> {
        let mut h = vec![0x45, 0];
        h.extend_from_slice(&((20 + payload_len) as u16).to_be_bytes());
        h.extend_from_slice(&[0, 0, 0x40, 0, ttl, proto, 0, 0]);
        h.extend_from_slice(&src);
        h.extend_from_slice(&dst);
        h
    }

    #[test]
    fn time_exceeded_quoting_a_probe_yields_its_signature() {
        for protocol in [Protocol::Icmp, Protocol::Udp, Protocol::Tcp] {
            let f = flow(protocol, Style::Paris, false);
            let probe = f.probe(key(5, 2));
            let proto = match protocol {
                Protocol::Icmp => 1,
                Protocol::Udp => 17,
                Protocol::Tcp => 6,
            };
            // A router quoting only the RFC 792 minimum: IP header + 8 bytes.
            let mut inner = ipv4_header(proto, 1, [10, 0, 0, 1], [192, 0, 2, 7], probe.len());
            inner.extend_from_slice(&probe[..8]);
            let mut icmp = vec![11, 0, 0, 0, 0, 0, 0, 0];
            icmp.extend_from_slice(&inner);
            let mut packet = ipv4_header(1, 250, [198, 51, 100, 9], [10, 0, 0, 1], icmp.len());
            packet.extend_from_slice(&icmp);
            let a = parse_ipv4(&packet).expect("an answer");
            assert_eq!(a.signature, f.signature(key(5, 2)).unwrap());
            assert_eq!(a.kind, AnswerKind::TimeExceeded);
            assert_eq!(a.from, IpAddr::from([198, 51, 100, 9]));
            assert_eq!((a.icmp, a.quoted_ttl), (Some((11, 0)), Some(1)));
            assert!(!a.from_destination() && !a.ends_path());
            // Every truncation is refused or parsed, never a panic.
            for cut in 0..packet.len() {
                let _ = parse_ipv4(&packet[..cut]);
            }
        }
    }

    #[test]
    fn destination_answers_yield_the_probe_signature() {
        // Echo reply (IPv6).
        let f = flow(Protocol::Icmp, Style::Paris, true);
        let mut reply = f.probe(key(7, 1));
        reply[0] = 129;
        let a = parse_icmpv6("2001:db8::7".parse().unwrap(), &reply).unwrap();
        assert_eq!(a.signature, f.signature(key(7, 1)).unwrap());
        assert!(a.from_destination() && a.ends_path());
        // SYN-ACK and RST (IPv4).
        let f = flow(Protocol::Tcp, Style::Paris, false);
        let probe = f.probe(key(9, 0));
        let seq = u32::from_be_bytes(probe[4..8].try_into().unwrap());
        for flags in [0x12u8, 0x14] {
            let mut t = vec![0u8; 20];
            t[0..2].copy_from_slice(&443u16.to_be_bytes());
            t[2..4].copy_from_slice(&47001u16.to_be_bytes());
            t[8..12].copy_from_slice(&seq.wrapping_add(1).to_be_bytes());
            t[12] = 0x50;
            t[13] = flags;
            let mut packet = ipv4_header(6, 60, [192, 0, 2, 7], [10, 0, 0, 1], t.len());
            packet.extend_from_slice(&t);
            let a = parse_ipv4(&packet).unwrap();
            assert_eq!(a.signature, f.signature(key(9, 0)).unwrap());
            assert!(a.from_destination());
        }
        // A plain ACK answers nothing.
        let mut t = vec![0u8; 20];
        t[13] = 0x10;
        assert!(parse_tcpv6("2001:db8::7".parse().unwrap(), &t).is_none());
    }

    #[test]
    fn port_unreachable_over_ipv6_quotes_the_udp_probe() {
        let f = flow(Protocol::Udp, Style::Classic, true);
        let probe = f.probe(key(3, 0));
        let mut m = vec![1, 4, 0, 0, 0, 0, 0, 0];
        m.extend_from_slice(&[0x60, 0, 0, 0, 0, probe.len() as u8, 17, 2]);
        if let (IpAddr::V6(s), IpAddr::V6(d)) = (f.src, f.dst) {
            m.extend_from_slice(&s.octets());
            m.extend_from_slice(&d.octets());
        }
        m.extend_from_slice(&probe);
        let a = parse_icmpv6("2001:db8::7".parse().unwrap(), &m).unwrap();
        assert_eq!(a.signature, f.signature(key(3, 0)).unwrap());
        assert_eq!((a.kind, a.quoted_ttl), (AnswerKind::Unreachable, Some(2)));
        assert!(a.from_destination() && a.ends_path());
        for cut in 0..m.len() {
            let _ = parse_icmpv6("2001:db8::7".parse().unwrap(), &m[..cut]);
        }
    }
}
