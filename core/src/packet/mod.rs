//! Packet views in the smoltcp style: a header's field offsets written
//! once, a checked constructor that makes every getter in bounds, getters,
//! and setters where packets are built. Decoding, the fast path, packet
//! crafting and the traceroute's probes and answers all read and write IP
//! and TCP headers through [`Ipv4Packet`], [`Ipv6Packet`] and
//! [`TcpPacket`] (and quoted TCP headers through [`TcpQuote`]).

pub mod ip;
pub mod tcp;

pub use ip::{Ipv4Packet, Ipv6Packet};
pub use tcp::{TcpPacket, TcpQuote};

/// EtherTypes (IEEE 802.3 type field).
pub mod ethertype {
    pub const IPV4: u16 = 0x0800;
    pub const IPV6: u16 = 0x86dd;
    /// 802.1Q VLAN tag.
    pub const VLAN: u16 = 0x8100;
    /// 802.1ad outer tag (Q-in-Q).
    pub const QINQ: u16 = 0x88a8;
    /// Pre-standard Q-in-Q outer tag, still seen on older switches.
    pub const QINQ_OLD: u16 = 0x9100;
}

/// IP protocol numbers (IPv4 protocol, IPv6 next header).
pub mod ip_proto {
    pub const ICMP: u8 = 1;
    pub const TCP: u8 = 6;
    pub const UDP: u8 = 17;
    pub const ICMPV6: u8 = 58;
}

/// The big-endian u16 at `at`, if `b` holds it.
#[inline(always)]
pub fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at.checked_add(1)?)?]))
}

/// The big-endian u32 at `at`, if `b` holds it.
#[inline(always)]
pub fn be32(b: &[u8], at: usize) -> Option<u32> {
    let s = b.get(at..at.checked_add(4)?)?;
    Some(u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
}
