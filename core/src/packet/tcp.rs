//! The TCP header (RFC 9293, section 3.1).

use std::fmt;
use std::ops::Range;

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

/// Where each field is.
mod field {
    use std::ops::Range;

    pub const SRC_PORT: Range<usize> = 0..2;
    pub const DST_PORT: Range<usize> = 2..4;
    pub const SEQ: Range<usize> = 4..8;
    pub const ACK: Range<usize> = 8..12;
    /// Data offset (4 bits), reserved, and the nine flag bits.
    pub const OFFSET_FLAGS: Range<usize> = 12..14;
    pub const WINDOW: Range<usize> = 14..16;
    pub const CHECKSUM: Range<usize> = 16..18;
    pub const URGENT: Range<usize> = 18..20;
}

/// A TCP header without options.
pub const HEADER_LEN: usize = 20;
/// A header with options is at most this long (data offset 15).
pub const MAX_HEADER_LEN: usize = 60;

/// A TCP header (and what follows it) in `buffer`, at least
/// [`HEADER_LEN`] bytes long.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TcpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> TcpPacket<T> {
    /// The view, when `buffer` holds the fixed part of a header.
    #[inline(always)]
    pub fn new_checked(buffer: T) -> Option<Self> {
        (buffer.as_ref().len() >= HEADER_LEN).then_some(TcpPacket { buffer })
    }

    #[inline(always)]
    fn u16_at(&self, r: Range<usize>) -> u16 {
        let b = &self.buffer.as_ref()[r];
        u16::from_be_bytes([b[0], b[1]])
    }

    #[inline(always)]
    fn u32_at(&self, r: Range<usize>) -> u32 {
        let b = &self.buffer.as_ref()[r];
        u32::from_be_bytes([b[0], b[1], b[2], b[3]])
    }

    #[inline(always)]
    pub fn src_port(&self) -> u16 {
        self.u16_at(field::SRC_PORT)
    }

    #[inline(always)]
    pub fn dst_port(&self) -> u16 {
        self.u16_at(field::DST_PORT)
    }

    #[inline(always)]
    pub fn seq(&self) -> u32 {
        self.u32_at(field::SEQ)
    }

    #[inline(always)]
    pub fn ack(&self) -> u32 {
        self.u32_at(field::ACK)
    }

    /// The header length the data offset claims (it may be shorter than
    /// [`HEADER_LEN`] or longer than the buffer: a malformed header).
    #[inline(always)]
    pub fn header_len(&self) -> usize {
        usize::from(self.u16_at(field::OFFSET_FLAGS) >> 12) * 4
    }

    #[inline(always)]
    pub fn flags(&self) -> TcpFlags {
        TcpFlags::from_bits(self.u16_at(field::OFFSET_FLAGS) & 0x01ff)
    }

    #[inline(always)]
    pub fn window(&self) -> u16 {
        self.u16_at(field::WINDOW)
    }

    #[inline(always)]
    pub fn checksum(&self) -> u16 {
        self.u16_at(field::CHECKSUM)
    }

    #[inline(always)]
    pub fn urgent(&self) -> u16 {
        self.u16_at(field::URGENT)
    }

    /// The options, when the buffer holds the whole header.
    #[inline(always)]
    pub fn options(&self) -> Option<&[u8]> {
        self.buffer.as_ref().get(HEADER_LEN..self.header_len())
    }

    pub fn as_bytes(&self) -> &[u8] {
        self.buffer.as_ref()
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> TcpPacket<T> {
    #[inline(always)]
    fn set_u16(&mut self, r: Range<usize>, v: u16) {
        self.buffer.as_mut()[r].copy_from_slice(&v.to_be_bytes());
    }

    #[inline(always)]
    fn set_u32(&mut self, r: Range<usize>, v: u32) {
        self.buffer.as_mut()[r].copy_from_slice(&v.to_be_bytes());
    }

    pub fn set_src_port(&mut self, v: u16) {
        self.set_u16(field::SRC_PORT, v);
    }

    pub fn set_dst_port(&mut self, v: u16) {
        self.set_u16(field::DST_PORT, v);
    }

    pub fn set_seq(&mut self, v: u32) {
        self.set_u32(field::SEQ, v);
    }

    pub fn set_ack(&mut self, v: u32) {
        self.set_u32(field::ACK, v);
    }

    /// The data offset for a header of `header_len` bytes (a multiple of 4,
    /// up to [`MAX_HEADER_LEN`]: the offset keeps 4 bits of `header_len / 4`)
    /// and the flags.
    pub fn set_header_len_and_flags(&mut self, header_len: usize, flags: TcpFlags) {
        let offset = ((header_len / 4) & 0xf) as u16;
        self.set_u16(field::OFFSET_FLAGS, offset << 12 | flags.bits());
    }

    pub fn set_window(&mut self, v: u16) {
        self.set_u16(field::WINDOW, v);
    }

    pub fn set_checksum(&mut self, v: u16) {
        self.set_u16(field::CHECKSUM, v);
    }

    pub fn set_urgent(&mut self, v: u16) {
        self.set_u16(field::URGENT, v);
    }
}

/// The first eight bytes of a TCP header, as an ICMP error quotes them
/// (RFC 792: "the first 64 bits of the original datagram's data"): ports
/// and sequence number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TcpQuote<T: AsRef<[u8]>> {
    buffer: T,
}

/// Bytes of a transport header an ICMP error is sure to quote.
pub const QUOTE_LEN: usize = 8;

impl<T: AsRef<[u8]>> TcpQuote<T> {
    pub fn new_checked(buffer: T) -> Option<Self> {
        (buffer.as_ref().len() >= QUOTE_LEN).then_some(TcpQuote { buffer })
    }

    fn u16_at(&self, r: Range<usize>) -> u16 {
        let b = &self.buffer.as_ref()[r];
        u16::from_be_bytes([b[0], b[1]])
    }

    pub fn src_port(&self) -> u16 {
        self.u16_at(field::SRC_PORT)
    }

    pub fn dst_port(&self) -> u16 {
        self.u16_at(field::DST_PORT)
    }

    pub fn seq(&self) -> u32 {
        let b = &self.buffer.as_ref()[field::SEQ];
        u32::from_be_bytes([b[0], b[1], b[2], b[3]])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_read_back_what_was_set() {
        let mut bytes = vec![0u8; 24];
        bytes.extend_from_slice(b"data");
        let mut p = TcpPacket::new_checked(&mut bytes[..]).unwrap();
        p.set_src_port(40000);
        p.set_dst_port(443);
        p.set_seq(0xdead_beef);
        p.set_ack(7);
        p.set_header_len_and_flags(24, TcpFlags::SYN | TcpFlags::ACK);
        p.set_window(64240);
        p.set_checksum(0x1234);
        p.set_urgent(9);
        p.into_inner()[20..24].copy_from_slice(&[2, 4, 5, 0xb4]);
        let p = TcpPacket::new_checked(&bytes[..]).unwrap();
        assert_eq!((p.src_port(), p.dst_port()), (40000, 443));
        assert_eq!((p.seq(), p.ack()), (0xdead_beef, 7));
        assert_eq!(p.header_len(), 24);
        assert_eq!(p.flags(), TcpFlags::SYN | TcpFlags::ACK);
        assert_eq!((p.window(), p.checksum(), p.urgent()), (64240, 0x1234, 9));
        assert_eq!(p.options(), Some(&[2u8, 4, 5, 0xb4][..]));
        assert_eq!(&p.as_bytes()[24..], b"data");
        let q = TcpQuote::new_checked(&bytes[..8]).unwrap();
        assert_eq!((q.src_port(), q.dst_port(), q.seq()), (40000, 443, 0xdead_beef));
    }

    #[test]
    fn short_buffers_are_refused_and_long_offsets_have_no_options() {
        assert!(TcpPacket::new_checked(&[0u8; 19][..]).is_none());
        assert!(TcpQuote::new_checked(&[0u8; 7][..]).is_none());
        let mut b = [0u8; 20];
        b[12] = 0xf0; // data offset 15: 60 bytes claimed, 20 held
        let p = TcpPacket::new_checked(&b[..]).unwrap();
        assert_eq!(p.header_len(), 60);
        assert_eq!(p.options(), None);
        b[12] = 0x10; // data offset 1: shorter than a header
        assert_eq!(TcpPacket::new_checked(&b[..]).unwrap().options(), None);
    }
}
