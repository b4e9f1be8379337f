//! The IPv4 (RFC 791) and IPv6 (RFC 8200) fixed headers.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::ops::Range;

mod v4 {
    use std::ops::Range;

    /// Version (4 bits) and header length in 32-bit words (4 bits).
    pub const VERSION_IHL: usize = 0;
    pub const TOTAL_LEN: Range<usize> = 2..4;
    pub const IDENT: Range<usize> = 4..6;
    /// Flags (3 bits) and fragment offset (13 bits).
    pub const FLAGS_FRAG: Range<usize> = 6..8;
    pub const TTL: usize = 8;
    pub const PROTOCOL: usize = 9;
    pub const CHECKSUM: Range<usize> = 10..12;
    pub const SRC: Range<usize> = 12..16;
    pub const DST: Range<usize> = 16..20;
}

mod v6 {
    use std::ops::Range;

    /// Version (4 bits), traffic class, flow label.
    pub const VERSION: usize = 0;
    pub const PAYLOAD_LEN: Range<usize> = 4..6;
    pub const NEXT_HEADER: usize = 6;
    pub const HOP_LIMIT: usize = 7;
    pub const SRC: Range<usize> = 8..24;
    pub const DST: Range<usize> = 24..40;
}

/// An IPv4 header without options.
pub const IPV4_HEADER_LEN: usize = 20;
/// The IPv6 fixed header.
pub const IPV6_HEADER_LEN: usize = 40;

/// The version nibble of an IP packet's first byte.
pub fn version(packet: &[u8]) -> Option<u8> {
    packet.first().map(|b| b >> 4)
}

fn u16_at(b: &[u8], r: Range<usize>) -> u16 {
    let s = &b[r];
    u16::from_be_bytes([s[0], s[1]])
}

/// An IPv4 header (and what follows it) in `buffer`, at least
/// [`IPV4_HEADER_LEN`] bytes long. The version is not checked here.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ipv4Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Ipv4Packet<T> {
    #[inline(always)]
    pub fn new_checked(buffer: T) -> Option<Self> {
        (buffer.as_ref().len() >= IPV4_HEADER_LEN).then_some(Ipv4Packet { buffer })
    }

    /// The header length the IHL claims (it may be shorter than
    /// [`IPV4_HEADER_LEN`] or longer than the buffer: a malformed header).
    #[inline(always)]
    pub fn header_len(&self) -> usize {
        usize::from(self.buffer.as_ref()[v4::VERSION_IHL] & 0x0f) * 4
    }

    #[inline(always)]
    pub fn total_len(&self) -> u16 {
        u16_at(self.buffer.as_ref(), v4::TOTAL_LEN)
    }

    #[inline(always)]
    pub fn ident(&self) -> u16 {
        u16_at(self.buffer.as_ref(), v4::IDENT)
    }

    /// More-fragments set or a non-zero offset: part of a datagram.
    #[inline(always)]
    pub fn is_fragment(&self) -> bool {
        u16_at(self.buffer.as_ref(), v4::FLAGS_FRAG) & 0x3fff != 0
    }

    #[inline(always)]
    pub fn ttl(&self) -> u8 {
        self.buffer.as_ref()[v4::TTL]
    }

    #[inline(always)]
    pub fn protocol(&self) -> u8 {
        self.buffer.as_ref()[v4::PROTOCOL]
    }

    #[inline(always)]
    pub fn src(&self) -> Ipv4Addr {
        let s = &self.buffer.as_ref()[v4::SRC];
        Ipv4Addr::new(s[0], s[1], s[2], s[3])
    }

    #[inline(always)]
    pub fn dst(&self) -> Ipv4Addr {
        let s = &self.buffer.as_ref()[v4::DST];
        Ipv4Addr::new(s[0], s[1], s[2], s[3])
    }

    pub fn as_bytes(&self) -> &[u8] {
        self.buffer.as_ref()
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv4Packet<T> {
    /// Version 4 and a header of `header_len` bytes (a multiple of 4, up
    /// to 60).
    pub fn set_version_and_header_len(&mut self, header_len: usize) {
        self.buffer.as_mut()[v4::VERSION_IHL] = 0x40 | ((header_len / 4) & 0x0f) as u8;
    }

    pub fn set_total_len(&mut self, v: u16) {
        self.buffer.as_mut()[v4::TOTAL_LEN].copy_from_slice(&v.to_be_bytes());
    }

    pub fn set_ident(&mut self, v: u16) {
        self.buffer.as_mut()[v4::IDENT].copy_from_slice(&v.to_be_bytes());
    }

    /// Don't-fragment set, not a fragment.
    pub fn set_dont_fragment(&mut self) {
        self.buffer.as_mut()[v4::FLAGS_FRAG].copy_from_slice(&0x4000u16.to_be_bytes());
    }

    pub fn set_ttl(&mut self, v: u8) {
        self.buffer.as_mut()[v4::TTL] = v;
    }

    pub fn set_protocol(&mut self, v: u8) {
        self.buffer.as_mut()[v4::PROTOCOL] = v;
    }

    pub fn set_checksum(&mut self, v: u16) {
        self.buffer.as_mut()[v4::CHECKSUM].copy_from_slice(&v.to_be_bytes());
    }

    pub fn set_src(&mut self, a: Ipv4Addr) {
        self.buffer.as_mut()[v4::SRC].copy_from_slice(&a.octets());
    }

    pub fn set_dst(&mut self, a: Ipv4Addr) {
        self.buffer.as_mut()[v4::DST].copy_from_slice(&a.octets());
    }
}

/// An IPv6 fixed header (and what follows it) in `buffer`, at least
/// [`IPV6_HEADER_LEN`] bytes long. The version is not checked here.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ipv6Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Ipv6Packet<T> {
    #[inline(always)]
    pub fn new_checked(buffer: T) -> Option<Self> {
        (buffer.as_ref().len() >= IPV6_HEADER_LEN).then_some(Ipv6Packet { buffer })
    }

    #[inline(always)]
    pub fn payload_len(&self) -> u16 {
        u16_at(self.buffer.as_ref(), v6::PAYLOAD_LEN)
    }

    #[inline(always)]
    pub fn next_header(&self) -> u8 {
        self.buffer.as_ref()[v6::NEXT_HEADER]
    }

    #[inline(always)]
    pub fn hop_limit(&self) -> u8 {
        self.buffer.as_ref()[v6::HOP_LIMIT]
    }

    #[inline(always)]
    pub fn src(&self) -> Ipv6Addr {
        let mut a = [0u8; 16];
        a.copy_from_slice(&self.buffer.as_ref()[v6::SRC]);
        Ipv6Addr::from(a)
    }

    #[inline(always)]
    pub fn dst(&self) -> Ipv6Addr {
        let mut a = [0u8; 16];
        a.copy_from_slice(&self.buffer.as_ref()[v6::DST]);
        Ipv6Addr::from(a)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv6Packet<T> {
    /// Version 6, traffic class and flow label zero.
    pub fn set_version(&mut self) {
        self.buffer.as_mut()[v6::VERSION..v6::VERSION + 4].copy_from_slice(&[0x60, 0, 0, 0]);
    }

    pub fn set_payload_len(&mut self, v: u16) {
        self.buffer.as_mut()[v6::PAYLOAD_LEN].copy_from_slice(&v.to_be_bytes());
    }

    pub fn set_next_header(&mut self, v: u8) {
        self.buffer.as_mut()[v6::NEXT_HEADER] = v;
    }

    pub fn set_hop_limit(&mut self, v: u8) {
        self.buffer.as_mut()[v6::HOP_LIMIT] = v;
    }

    pub fn set_src(&mut self, a: Ipv6Addr) {
        self.buffer.as_mut()[v6::SRC].copy_from_slice(&a.octets());
    }

    pub fn set_dst(&mut self, a: Ipv6Addr) {
        self.buffer.as_mut()[v6::DST].copy_from_slice(&a.octets());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv4_fields_read_back_what_was_set() {
        let mut b = [0u8; 24];
        let mut p = Ipv4Packet::new_checked(&mut b[..]).unwrap();
        p.set_version_and_header_len(24);
        p.set_total_len(44);
        p.set_ident(7);
        p.set_dont_fragment();
        p.set_ttl(63);
        p.set_protocol(6);
        p.set_checksum(0xbeef);
        p.set_src(Ipv4Addr::new(10, 0, 0, 1));
        p.set_dst(Ipv4Addr::new(192, 0, 2, 1));
        let p = Ipv4Packet::new_checked(&b[..]).unwrap();
        assert_eq!(version(p.as_bytes()), Some(4));
        assert_eq!((p.header_len(), p.total_len(), p.ident()), (24, 44, 7));
        assert!(!p.is_fragment());
        assert_eq!((p.ttl(), p.protocol()), (63, 6));
        assert_eq!(
            (p.src(), p.dst()),
            (Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(192, 0, 2, 1))
        );
        assert!(Ipv4Packet::new_checked(&b[..19]).is_none());
    }

    #[test]
    fn ipv6_fields_read_back_what_was_set() {
        let mut b = [0u8; 40];
        let mut p = Ipv6Packet::new_checked(&mut b[..]).unwrap();
        p.set_version();
        p.set_payload_len(20);
        p.set_next_header(6);
        p.set_hop_limit(64);
        p.set_src("2001:db8::1".parse().unwrap());
        p.set_dst("2001:db8::2".parse().unwrap());
        let p = Ipv6Packet::new_checked(&b[..]).unwrap();
        assert_eq!(version(&b), Some(6));
        assert_eq!((p.payload_len(), p.next_header(), p.hop_limit()), (20, 6, 64));
        assert_eq!(p.src(), "2001:db8::1".parse::<Ipv6Addr>().unwrap());
        assert_eq!(p.dst(), "2001:db8::2".parse::<Ipv6Addr>().unwrap());
        assert!(Ipv6Packet::new_checked(&b[..39]).is_none());
    }
}
