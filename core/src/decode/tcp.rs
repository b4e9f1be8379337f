//! TCP header (RFC 9293) and the options the tracker reports: MSS, window
//! scale (RFC 7323), SACK-permitted and SACK blocks (RFC 2018), timestamps
//! (RFC 7323).

use super::{DecodeError, Ignored, Interest, Skip};
pub use crate::packet::tcp::TcpFlags;
use crate::packet::tcp::{TcpPacket, HEADER_LEN};

/// The options the tracker reports, from one segment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TcpOptions {
    pub mss: Option<u16>,
    pub wscale: Option<u8>,
    pub sack_permitted: bool,
    /// (TSval, TSecr)
    pub timestamps: Option<(u32, u32)>,
    /// Number of SACK blocks in this segment (0–4).
    pub sack_blocks: u8,
}

/// A TCP header that passed the checks, with what decoding derived from it.
pub(crate) struct Checked<'a> {
    pub header: TcpPacket<&'a [u8]>,
    /// From the IP lengths, not limited by the snap length.
    pub payload_len: u32,
    pub options: TcpOptions,
}

/// Parses the header from the captured bytes `seg`; `ip_payload_len` is the
/// segment length the IP header claims.
/// Segments `interest` does not want are `Ignored::OutsideMode`, checked
/// before the options are read.
pub(crate) fn parse(
    seg: &[u8],
    ip_payload_len: u32,
    interest: Interest,
) -> Result<(Checked<'_>, Option<DecodeError>), Skip> {
    let Some(tcp) = TcpPacket::new_checked(seg) else {
        return Err(if (ip_payload_len as usize) < HEADER_LEN {
            DecodeError::TcpHeaderBeyondIpPayload
        } else {
            DecodeError::TruncatedTcp
        }
        .into());
    };
    let header_len = tcp.header_len();
    if header_len < HEADER_LEN {
        return Err(DecodeError::BadTcpDataOffset.into());
    }
    if header_len > ip_payload_len as usize {
        return Err(DecodeError::TcpHeaderBeyondIpPayload.into());
    }
    let flags = tcp.flags();
    let payload_len = ip_payload_len - header_len as u32;
    if !interest.wants(flags, payload_len) {
        return Err(Ignored::OutsideMode.into());
    }
    let raw_options = tcp.options().ok_or(DecodeError::TruncatedTcp)?;
    let (options, warning) = parse_options(raw_options);
    Ok((
        Checked {
            header: tcp,
            payload_len,
            options,
        },
        warning,
    ))
}

fn parse_options(mut b: &[u8]) -> (TcpOptions, Option<DecodeError>) {
    let mut o = TcpOptions::default();
    while let Some(&kind) = b.first() {
        match kind {
            0 => break,
            1 => {
                b = &b[1..];
                continue;
            }
            _ => {}
        }
        let Some(&len) = b.get(1) else {
            return (o, Some(DecodeError::MalformedTcpOption));
        };
        let len = len as usize;
        if len < 2 || len > b.len() {
            return (o, Some(DecodeError::MalformedTcpOption));
        }
        let body = &b[2..len];
        let well_formed = match (kind, body.len()) {
            (2, 2) => {
                o.mss = Some(u16::from_be_bytes([body[0], body[1]]));
                true
            }
            (3, 1) => {
                o.wscale = Some(body[0]);
                true
            }
            (4, 0) => {
                o.sack_permitted = true;
                true
            }
            (5, n) if n % 8 == 0 && n > 0 => {
                o.sack_blocks = (n / 8) as u8;
                true
            }
            (8, 8) => {
                let val = u32::from_be_bytes([body[0], body[1], body[2], body[3]]);
                let ecr = u32::from_be_bytes([body[4], body[5], body[6], body[7]]);
                o.timestamps = Some((val, ecr));
                true
            }
            (2..=5 | 8, _) => false,
            // Unknown kinds are skipped by their length.
            _ => true,
        };
        if !well_formed {
            return (o, Some(DecodeError::MalformedTcpOption));
        }
        b = &b[len..];
    }
    (o, None)
}
