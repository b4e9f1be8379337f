//! craft: builds TCP/IP packets and capture files.
//!
//! The writing side of [`crate::decode`]: used by the tests to make captures
//! of every link type and corner case, by the benchmark generator, and later
//! by the traceroute prober. Builders take a description and return bytes;
//! they never touch a socket.

mod file;

pub use file::{PcapNgWriter, PcapWriter, TsResolution};

use std::net::IpAddr;

use crate::decode::{LinkType, TcpFlags, VlanStack};
use crate::packet::ip::{Ipv4Packet, Ipv6Packet, IPV4_HEADER_LEN, IPV6_HEADER_LEN};
use crate::packet::ip_proto;
use crate::packet::tcp::{TcpPacket, HEADER_LEN};

/// One TCP segment to build.
#[derive(Clone, Debug)]
pub struct TcpSpec {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub src_port: u16,
    pub dst_port: u16,
    pub seq: u32,
    pub ack: u32,
    pub flags: TcpFlags,
    pub window: u16,
    pub ttl: u8,
    pub ip_id: u16,
    pub mss: Option<u16>,
    pub wscale: Option<u8>,
    pub sack_permitted: bool,
    pub timestamps: Option<(u32, u32)>,
    /// SACK blocks (left, right edges).
    pub sack: Vec<(u32, u32)>,
    pub payload: Vec<u8>,
    /// Payload bytes the IP header claims beyond `payload` (a snaplen cut).
    pub missing_payload: u32,
}

impl TcpSpec {
    pub fn new(src: IpAddr, src_port: u16, dst: IpAddr, dst_port: u16, flags: TcpFlags) -> Self {
        TcpSpec {
            src,
            dst,
            src_port,
            dst_port,
            seq: 0,
            ack: 0,
            flags,
            window: 64240,
            ttl: 64,
            ip_id: 0,
            mss: None,
            wscale: None,
            sack_permitted: false,
            timestamps: None,
            sack: Vec::new(),
            payload: Vec::new(),
            missing_payload: 0,
        }
    }

    pub fn seq(mut self, seq: u32) -> Self {
        self.seq = seq;
        self
    }
    pub fn ack(mut self, ack: u32) -> Self {
        self.ack = ack;
        self
    }
    pub fn ttl(mut self, ttl: u8) -> Self {
        self.ttl = ttl;
        self
    }
    pub fn ip_id(mut self, id: u16) -> Self {
        self.ip_id = id;
        self
    }
    pub fn window(mut self, w: u16) -> Self {
        self.window = w;
        self
    }
    pub fn payload(mut self, p: &[u8]) -> Self {
        self.payload = p.to_vec();
        self
    }
    /// The usual Linux SYN options: MSS 1460, SACK-permitted, timestamps, wscale 7.
    pub fn syn_options(mut self, tsval: u32) -> Self {
        self.mss = Some(1460);
        self.sack_permitted = true;
        self.timestamps = Some((tsval, 0));
        self.wscale = Some(7);
        self
    }

    fn options(&self) -> Vec<u8> {
        let mut o = Vec::new();
        if let Some(mss) = self.mss {
            o.extend_from_slice(&[2, 4]);
            o.extend_from_slice(&mss.to_be_bytes());
        }
        if self.sack_permitted {
            o.extend_from_slice(&[4, 2]);
        }
        if let Some((val, ecr)) = self.timestamps {
            o.extend_from_slice(&[8, 10]);
            o.extend_from_slice(&val.to_be_bytes());
            o.extend_from_slice(&ecr.to_be_bytes());
        }
        if let Some(ws) = self.wscale {
            o.extend_from_slice(&[1, 3, 3, ws]);
        }
        if !self.sack.is_empty() {
            o.extend_from_slice(&[1, 1, 5, 2 + 8 * self.sack.len() as u8]);
            for (l, r) in &self.sack {
                o.extend_from_slice(&l.to_be_bytes());
                o.extend_from_slice(&r.to_be_bytes());
            }
        }
        while o.len() % 4 != 0 {
            o.push(0);
        }
        o
    }

    /// The TCP header and payload, checksummed.
    pub fn tcp_bytes(&self) -> Vec<u8> {
        let options = self.options();
        let header_len = HEADER_LEN + options.len();
        let mut t = vec![0u8; header_len];
        t[HEADER_LEN..].copy_from_slice(&options);
        t.extend_from_slice(&self.payload);
        let Some(mut tcp) = TcpPacket::new_checked(&mut t[..]) else {
            unreachable!("a header of at least {HEADER_LEN} bytes was just made");
        };
        tcp.set_src_port(self.src_port);
        tcp.set_dst_port(self.dst_port);
        tcp.set_seq(self.seq);
        tcp.set_ack(self.ack);
        tcp.set_header_len_and_flags(header_len, self.flags);
        tcp.set_window(self.window);
        let csum = tcp_checksum(self.src, self.dst, tcp.as_bytes(), self.missing_payload);
        tcp.set_checksum(csum);
        t
    }

    /// The IP packet (IPv4 or IPv6 after the addresses) carrying this segment.
    pub fn ip_bytes(&self) -> Vec<u8> {
        let tcp = self.tcp_bytes();
        let claimed = tcp.len() + self.missing_payload as usize;
        let mut p = match (self.src, self.dst) {
            (IpAddr::V4(s), IpAddr::V4(d)) => {
                let mut p = vec![0u8; IPV4_HEADER_LEN];
                let Some(mut ip) = Ipv4Packet::new_checked(&mut p[..]) else {
                    unreachable!("a header of {IPV4_HEADER_LEN} bytes was just made");
                };
                ip.set_version_and_header_len(IPV4_HEADER_LEN);
                ip.set_total_len((IPV4_HEADER_LEN + claimed) as u16);
                ip.set_ident(self.ip_id);
                ip.set_dont_fragment();
                ip.set_ttl(self.ttl);
                ip.set_protocol(ip_proto::TCP);
                ip.set_src(s);
                ip.set_dst(d);
                let c = !fold(sum(ip.as_bytes(), 0));
                ip.set_checksum(c);
                p
            }
            (IpAddr::V6(s), IpAddr::V6(d)) => {
                let mut p = vec![0u8; IPV6_HEADER_LEN];
                let Some(mut ip) = Ipv6Packet::new_checked(&mut p[..]) else {
                    unreachable!("a header of {IPV6_HEADER_LEN} bytes was just made");
                };
                ip.set_version();
                ip.set_payload_len(claimed as u16);
                ip.set_next_header(ip_proto::TCP);
                ip.set_hop_limit(self.ttl);
                ip.set_src(s);
                ip.set_dst(d);
                p
            }
            _ => panic!("craft: source and destination must be the same IP version"),
        };
        p.extend_from_slice(&tcp);
        p
    }
}

/// Wraps an IP packet in a link-layer header of the given type.
pub fn frame(link: LinkType, vlan: VlanStack, ip: &[u8]) -> Vec<u8> {
    let v6 = ip.first().map(|b| b >> 4) == Some(6);
    let ethertype: u16 = if v6 { 0x86dd } else { 0x0800 };
    let mut f = Vec::with_capacity(ip.len() + 32);
    match link {
        LinkType::Ethernet => {
            f.extend_from_slice(&[0x02, 0, 0, 0, 0, 0x02, 0x02, 0, 0, 0, 0, 0x01]);
            let ids = vlan.ids();
            for (i, id) in ids.iter().enumerate() {
                // Outer tag of a stack is 802.1ad, the rest 802.1Q.
                let tpid: u16 = if i == 0 && ids.len() > 1 { 0x88a8 } else { 0x8100 };
                f.extend_from_slice(&tpid.to_be_bytes());
                f.extend_from_slice(&id.to_be_bytes());
            }
            f.extend_from_slice(&ethertype.to_be_bytes());
        }
        LinkType::LinuxSll => {
            f.extend_from_slice(&[0, 0, 0, 1, 0, 6, 0x02, 0, 0, 0, 0, 1, 0, 0]);
            f.extend_from_slice(&ethertype.to_be_bytes());
        }
        LinkType::LinuxSll2 => {
            f.extend_from_slice(&ethertype.to_be_bytes());
            f.extend_from_slice(&[0, 0, 0, 0, 0, 2, 0, 1, 0, 6, 0x02, 0, 0, 0, 0, 1, 0, 0]);
        }
        LinkType::Null => f.extend_from_slice(&(if v6 { 24u32 } else { 2 }).to_le_bytes()),
        LinkType::Loop => f.extend_from_slice(&(if v6 { 24u32 } else { 2 }).to_be_bytes()),
        LinkType::Nflog => {
            f.extend_from_slice(&[if v6 { 10 } else { 2 }, 0, 0, 0]);
            // A prefix TLV first, as iptables' NFLOG target writes, then the payload.
            let prefix = b"ng\0";
            let tlv_len = 4 + prefix.len();
            f.extend_from_slice(&(tlv_len as u16).to_le_bytes());
            f.extend_from_slice(&10u16.to_le_bytes());
            f.extend_from_slice(prefix);
            f.resize(f.len() + ((4 - tlv_len % 4) % 4), 0);
            f.extend_from_slice(&((4 + ip.len()) as u16).to_le_bytes());
            f.extend_from_slice(&9u16.to_le_bytes());
        }
        LinkType::Raw | LinkType::Ipv4 | LinkType::Ipv6 | LinkType::Other(_) => {}
    }
    f.extend_from_slice(ip);
    f
}

pub(crate) fn sum(b: &[u8], mut acc: u32) -> u32 {
    let mut chunks = b.chunks_exact(2);
    for c in &mut chunks {
        acc = acc.wrapping_add(u16::from_be_bytes([c[0], c[1]]) as u32);
    }
    if let [last] = chunks.remainder() {
        acc = acc.wrapping_add((*last as u32) << 8);
    }
    acc
}

pub(crate) fn fold(mut acc: u32) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u16
}

fn tcp_checksum(src: IpAddr, dst: IpAddr, tcp: &[u8], missing: u32) -> u16 {
    let len = tcp.len() as u32 + missing;
    let mut acc = match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => sum(&d.octets(), sum(&s.octets(), 0)),
        (IpAddr::V6(s), IpAddr::V6(d)) => sum(&d.octets(), sum(&s.octets(), 0)),
        _ => 0,
    };
    acc = acc.wrapping_add(6).wrapping_add(len >> 16).wrapping_add(len & 0xffff);
    !fold(sum(tcp, acc))
}
