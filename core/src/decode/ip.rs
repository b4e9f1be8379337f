//! IPv4 (RFC 791) and IPv6 (RFC 8200) down to the TCP header.

use std::net::IpAddr;

use super::{DecodeError, Ignored, Network, Skip};
use crate::packet::ip::{Ipv4Packet, Ipv6Packet, IPV4_HEADER_LEN, IPV6_HEADER_LEN};
use crate::packet::ip_proto::TCP as PROTO_TCP;

pub(crate) struct IpPacket<'a> {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub ttl: u8,
    pub id: u16,
    /// Captured bytes of the TCP segment (may be cut by the snap length).
    pub payload: &'a [u8],
    /// The TCP segment's length according to the IP header.
    pub payload_len: u32,
}

pub(crate) fn parse(network: Network, packet: &[u8]) -> Result<IpPacket<'_>, Skip> {
    let version = packet.first().ok_or(match network {
        Network::Ipv6 => DecodeError::TruncatedIpv6,
        _ => DecodeError::TruncatedIpv4,
    })? >> 4;
    match (network, version) {
        (Network::Ipv4 | Network::FromVersion, 4) => ipv4(packet),
        (Network::Ipv6 | Network::FromVersion, 6) => ipv6(packet),
        _ => Err(DecodeError::BadIpVersion.into()),
    }
}

fn ipv4(p: &[u8]) -> Result<IpPacket<'_>, Skip> {
    let ip = Ipv4Packet::new_checked(p).ok_or(DecodeError::TruncatedIpv4)?;
    let ihl = ip.header_len();
    if ihl < IPV4_HEADER_LEN {
        return Err(DecodeError::BadIpv4HeaderLength.into());
    }
    if p.len() < ihl {
        return Err(DecodeError::TruncatedIpv4.into());
    }
    let total = usize::from(ip.total_len());
    if total < ihl {
        return Err(DecodeError::BadIpv4TotalLength.into());
    }
    if ip.protocol() != PROTO_TCP {
        return Err(Ignored::NotTcp.into());
    }
    // More-fragments set or a non-zero offset: not a whole segment.
    if ip.is_fragment() {
        return Err(Ignored::Fragment.into());
    }
    // Ethernet pads short frames: trust the total length, not the capture.
    let end = total.min(p.len());
    Ok(IpPacket {
        src: IpAddr::V4(ip.src()),
        dst: IpAddr::V4(ip.dst()),
        ttl: ip.ttl(),
        id: ip.ident(),
        payload: &p[ihl..end],
        payload_len: (total - ihl) as u32,
    })
}

fn ipv6(p: &[u8]) -> Result<IpPacket<'_>, Skip> {
    let ip = Ipv6Packet::new_checked(p).ok_or(DecodeError::TruncatedIpv6)?;
    let payload_len = usize::from(ip.payload_len());
    if payload_len == 0 {
        // Zero means a Jumbo Payload option (RFC 2675); not on a gateway's TCP.
        return Err(DecodeError::Ipv6Jumbogram.into());
    }
    let mut next = ip.next_header();
    let mut at = IPV6_HEADER_LEN;
    let end_of_packet = IPV6_HEADER_LEN + payload_len;
    loop {
        match next {
            PROTO_TCP => break,
            // Hop-by-hop, routing, destination options, mobility, HIP, shim6:
            // next header and length in 8-octet units past the first 8.
            0 | 43 | 60 | 135 | 139 | 140 => {
                let h = p.get(at..at + 2).ok_or(DecodeError::TruncatedIpv6ExtHeader)?;
                next = h[0];
                at += (h[1] as usize + 1) * 8;
            }
            // Fragment header: fixed 8 bytes.
            44 => {
                let h = p.get(at..at + 8).ok_or(DecodeError::TruncatedIpv6ExtHeader)?;
                let offset_and_more = u16::from_be_bytes([h[2], h[3]]);
                if offset_and_more & 0xfff9 != 0 {
                    return Err(Ignored::Fragment.into());
                }
                // An atomic fragment (offset 0, M clear) holds the whole packet.
                next = h[0];
                at += 8;
            }
            // Authentication header: length in 4-octet units minus 2 (RFC 4302).
            51 => {
                let h = p.get(at..at + 2).ok_or(DecodeError::TruncatedIpv6ExtHeader)?;
                next = h[0];
                at += (h[1] as usize + 2) * 4;
            }
            _ => return Err(Ignored::NotTcp.into()),
        }
        if at > end_of_packet {
            return Err(DecodeError::TruncatedIpv6ExtHeader.into());
        }
    }
    if at > p.len() {
        return Err(DecodeError::TruncatedIpv6ExtHeader.into());
    }
    Ok(IpPacket {
        src: IpAddr::V6(ip.src()),
        dst: IpAddr::V6(ip.dst()),
        ttl: ip.hop_limit(),
        id: 0,
        payload: &p[at..end_of_packet.min(p.len())],
        payload_len: (end_of_packet - at) as u32,
    })
}
