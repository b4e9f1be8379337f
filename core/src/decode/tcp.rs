//! TCP header (RFC 9293) and the options the tracker reports: MSS, window
//! scale (RFC 7323), SACK-permitted and SACK blocks (RFC 2018), timestamps
//! (RFC 7323).

use std::fmt;

use super::{DecodeError, Ignored, Interest, Skip};
use crate::packet::tcp::{TcpPacket, HEADER_LEN};

/// The nine TCP flag bits (NS/AE, CWR, ECE, URG, ACK, PSH, RST, SYN, FIN).
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct TcpFlags(u16);

impl TcpFlags {
    pub const FIN: TcpFlags = TcpFlags(0x001);
    pub const SYN: TcpFlags = TcpFlags(0x002);
    pub const RST: TcpFlags = TcpFlags(0x004);
    pub const PSH: TcpFlags = TcpFlags(0x008);
    pub const ACK: TcpFlags = TcpFlags(0x010);
    pub const URG: TcpFlags = TcpFlags(0x020);
    pub const ECE: TcpFlags = TcpFlags(0x040);
    pub const CWR: TcpFlags = TcpFlags(0x080);
    pub const AE: TcpFlags = TcpFlags(0x100);

    pub const fn from_bits(bits: u16) -> Self {
        TcpFlags(bits & 0x1ff)
    }

    pub const fn bits(self) -> u16 {
        self.0
    }

    pub const fn contains(self, other: TcpFlags) -> bool {
        self.0 & other.0 == other.0
    }

    pub const fn union(self, other: TcpFlags) -> TcpFlags {
        TcpFlags(self.0 | other.0)
    }

    pub const fn syn(self) -> bool {
        self.contains(Self::SYN)
    }
    pub const fn ack(self) -> bool {
        self.contains(Self::ACK)
    }
    pub const fn rst(self) -> bool {
        self.contains(Self::RST)
    }
    pub const fn fin(self) -> bool {
        self.contains(Self::FIN)
    }
}

impl std::ops::BitOr for TcpFlags {
    type Output = TcpFlags;
    fn bitor(self, rhs: TcpFlags) -> TcpFlags {
        self.union(rhs)
    }
}

impl fmt::Debug for TcpFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const NAMES: [&str; 9] = ["FIN", "SYN", "RST", "PSH", "ACK", "URG", "ECE", "CWR", "AE"];
        let mut first = true;
        for (bit, name) in NAMES.iter().enumerate() {
            if self.0 & (1 << bit) != 0 {
                if !first {
                    f.write_str("|")?;
                }
                f.write_str(name)?;
                first = false;
            }
        }
        if first {
            f.write_str("-")?;
        }
        Ok(())
    }
}

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
