//! The common case first: an untagged Ethernet frame carrying an IPv4 or
//! IPv6 (no extension headers) TCP segment that the mode does not want,
//! recognised from fixed offsets without decoding it.
//!
//! Most packets on a link are data segments, and handshake mode drops them
//! all: the full decode, building addresses and headers only to count the
//! packet as outside the mode, was two thirds of a replay's time (measured:
//! 0.51 s against 0.17 s without decoding, on the 5M-packet benchmark).
//! This answers `true` only where the full decode would return
//! `Ignored::OutsideMode`; anything unusual (VLAN tags, other link types,
//! extension headers, malformed headers) goes the full way, which names the
//! problem. The tests hold the two to that on fixtures and mutations.

use super::{Interest, LinkType};
use crate::packet::ip::{self, Ipv4Packet, Ipv6Packet, IPV4_HEADER_LEN, IPV6_HEADER_LEN};
use crate::packet::tcp::{TcpPacket, HEADER_LEN};
use crate::packet::{be16, ethertype, ip_proto};

/// Whether `decode` would skip this frame as outside the mode's interest.
#[inline]
pub(crate) fn outside_interest(link: LinkType, frame: &[u8], interest: Interest) -> bool {
    if interest.all_tcp || link != LinkType::Ethernet {
        return false;
    }
    let Some(ip) = frame.get(14..) else { return false };
    let segment = match be16(frame, 12) {
        Some(ethertype::IPV4) => ipv4_segment(ip),
        Some(ethertype::IPV6) => ipv6_segment(ip),
        _ => None,
    };
    let Some((seg, ip_payload_len)) = segment else {
        return false;
    };
    // The TCP checks of `tcp::parse`, up to its interest test.
    let Some(tcp) = TcpPacket::new_checked(seg) else {
        return false;
    };
    let header_len = tcp.header_len();
    if header_len < HEADER_LEN || header_len > ip_payload_len {
        return false;
    }
    !interest.wants(tcp.flags(), (ip_payload_len - header_len) as u32)
}

/// The TCP bytes and the IP payload length of a well-formed, unfragmented
/// IPv4 TCP packet (the checks of `ip::ipv4`).
#[inline(always)]
fn ipv4_segment(p: &[u8]) -> Option<(&[u8], usize)> {
    if ip::version(p)? != 4 {
        return None;
    }
    let ip = Ipv4Packet::new_checked(p)?;
    let ihl = ip.header_len();
    let total = usize::from(ip.total_len());
    if ihl < IPV4_HEADER_LEN || p.len() < ihl || total < ihl || ip.protocol() != ip_proto::TCP || ip.is_fragment() {
        return None;
    }
    Some((&p[ihl..total.min(p.len())], total - ihl))
}

/// The same for IPv6 whose next header is TCP (the checks of `ip::ipv6`).
#[inline(always)]
fn ipv6_segment(p: &[u8]) -> Option<(&[u8], usize)> {
    let ip = Ipv6Packet::new_checked(p)?;
    if ip::version(p)? != 6 || ip.next_header() != ip_proto::TCP {
        return None;
    }
    let payload_len = usize::from(ip.payload_len());
    if payload_len == 0 {
        return None;
    }
    let end = (IPV6_HEADER_LEN + payload_len).min(p.len());
    Some((&p[IPV6_HEADER_LEN..end], payload_len))
}
