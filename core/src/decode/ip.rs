//! IPv4 (RFC 791) and IPv6 (RFC 8200) down to the TCP header.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::{be16, DecodeError, Ignored, Network, Skip};

use crate::packet::ip_proto::TCP as PROTO_TCP;
const IPV6_HEADER_LEN: usize = 40;

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
    if p.len() < 20 {
        return Err(DecodeError::TruncatedIpv4.into());
    }
    let ihl = ((p[0] & 0x0f) as usize) * 4;
    if ihl < 20 {
        return Err(DecodeError::BadIpv4HeaderLength.into());
    }
    if p.len() < ihl {
        return Err(DecodeError::TruncatedIpv4.into());
    }
    let total = be16(p, 2, DecodeError::TruncatedIpv4)? as usize;
    if total < ihl {
        return Err(DecodeError::BadIpv4TotalLength.into());
    }
    if p[9] != PROTO_TCP {
        return Err(Ignored::NotTcp.into());
    }
    let frag = be16(p, 6, DecodeError::TruncatedIpv4)?;
    // More-fragments set or a non-zero offset: not a whole segment.
    if frag & 0x3fff != 0 {
        return Err(Ignored::Fragment.into());
    }
    // Ethernet pads short frames: trust the total length, not the capture.
    let end = total.min(p.len());
    Ok(IpPacket {
        src: IpAddr::V4(Ipv4Addr::new(p[12], p[13], p[14], p[15])),
        dst: IpAddr::V4(Ipv4Addr::new(p[16], p[17], p[18], p[19])),
        ttl: p[8],
        id: be16(p, 4, DecodeError::TruncatedIpv4)?,
        payload: &p[ihl..end],
        payload_len: (total - ihl) as u32,
    })
}

fn ipv6(p: &[u8]) -> Result<IpPacket<'_>, Skip> {
    if p.len() < IPV6_HEADER_LEN {
        return Err(DecodeError::TruncatedIpv6.into());
    }
    let payload_len = be16(p, 4, DecodeError::TruncatedIpv6)? as usize;
    if payload_len == 0 {
        // Zero means a Jumbo Payload option (RFC 2675); not on a gateway's TCP.
        return Err(DecodeError::Ipv6Jumbogram.into());
    }
    let mut next = p[6];
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
    let mut src = [0u8; 16];
    let mut dst = [0u8; 16];
    src.copy_from_slice(&p[8..24]);
    dst.copy_from_slice(&p[24..40]);
    Ok(IpPacket {
        src: IpAddr::V6(Ipv6Addr::from(src)),
        dst: IpAddr::V6(Ipv6Addr::from(dst)),
        ttl: p[7],
        id: 0,
        payload: &p[at..end_of_packet.min(p.len())],
        payload_len: (end_of_packet - at) as u32,
    })
}
