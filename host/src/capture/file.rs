//! Offline capture files: classic pcap (µs or ns, either byte order) and
//! pcap-ng (any number of sections and interfaces, each interface with its
//! own link type, `if_tsresol` and `if_tsoffset`).
//!
//! The format is chosen by the magic bytes, never by the file name. Records
//! are zero-copy slices of the memory-mapped file. A damaged record ends the
//! file with a [`FileError`] (a pcap stream cannot be resynchronised); what
//! was read before it stands.
//!
//! A pure-Rust reader rather than libpcap: libpcap refuses pcap-ng files whose
//! interfaces differ in link type, and reading the mapped file directly is
//! what lets replay outrun `tcpdump -r` (docs/benchmarks.md).

use std::fs::File;
use std::path::{Path, PathBuf};

use memmap2::Mmap;

use super::RawPacket;
use crate::decode::LinkType;
use crate::time::Timestamp;

/// Why a capture file could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("cannot read {path}: {error}")]
    Io { path: PathBuf, error: std::io::Error },
    #[error("{path}: not a pcap or pcap-ng file (starts with {magic})")]
    UnknownFormat { path: PathBuf, magic: String },
    #[error("{path}: pcap header cut short ({len} bytes)")]
    TruncatedHeader { path: PathBuf, len: usize },
}

/// Why reading stopped before the end of a file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FileError {
    #[error("record at byte {offset} is cut short (file truncated?)")]
    TruncatedRecord { offset: usize },
    #[error("record at byte {offset} claims {len} bytes, more than any packet")]
    BadRecordLength { offset: usize, len: u32 },
    #[error("pcap-ng block at byte {offset} has a bad length {len}")]
    BadBlockLength { offset: usize, len: u32 },
    #[error("pcap-ng section at byte {offset} has an unknown byte-order magic")]
    BadSectionHeader { offset: usize },
    #[error("pcap-ng packet at byte {offset} names interface {interface}, which was never described")]
    UnknownInterface { offset: usize, interface: u32 },
}

impl FileError {
    /// The counter name this error is reported under.
    pub fn kind(&self) -> &'static str {
        match self {
            FileError::TruncatedRecord { .. } => "file_truncated_record",
            FileError::BadRecordLength { .. } => "file_bad_record_length",
            FileError::BadBlockLength { .. } => "file_bad_block_length",
            FileError::BadSectionHeader { .. } => "file_bad_section_header",
            FileError::UnknownInterface { .. } => "file_unknown_interface",
        }
    }
}

/// Largest record accepted; libpcap uses 256 KiB for most link types, and
/// anything larger is a corrupt length field.
const MAX_RECORD: u32 = 256 * 1024;

enum Bytes {
    Mapped(Mmap),
    Owned(Vec<u8>),
}

/// A capture file opened for reading.
pub struct CaptureFile {
    path: PathBuf,
    bytes: Bytes,
    format: Format,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Pcap { big_endian: bool, nanos: bool, link: u32 },
    PcapNg,
}

impl CaptureFile {
    pub fn open(path: &Path) -> Result<Self, OpenError> {
        let io = |error| OpenError::Io {
            path: path.to_owned(),
            error,
        };
        let file = File::open(path).map_err(io)?;
        // SAFETY: the map is read-only and private to this process; a file
        // truncated underneath us by another process is the documented risk
        // of every mmap reader, the same as tcpdump's.
        let bytes = match unsafe { Mmap::map(&file) } {
            Ok(m) => {
                // Read front to back once: let the kernel read ahead in big
                // steps (fewer page faults). Only a hint; failure is harmless.
                let _ = m.advise(memmap2::Advice::Sequential);
                Bytes::Mapped(m)
            }
            // Pipes and special files cannot be mapped: read them instead.
            Err(_) => Bytes::Owned(std::fs::read(path).map_err(io)?),
        };
        Self::from_bytes(path, bytes)
    }

    /// Reads a capture held in memory (tests, stdin).
    pub fn from_vec(path: &Path, data: Vec<u8>) -> Result<Self, OpenError> {
        Self::from_bytes(path, Bytes::Owned(data))
    }

    fn from_bytes(path: &Path, bytes: Bytes) -> Result<Self, OpenError> {
        let data: &[u8] = match &bytes {
            Bytes::Mapped(m) => m,
            Bytes::Owned(v) => v,
        };
        let magic = data.get(..4).map(|m| [m[0], m[1], m[2], m[3]]);
        let format = match magic {
            Some([0xd4, 0xc3, 0xb2, 0xa1]) => pcap_format(path, data, false, false)?,
            Some([0xa1, 0xb2, 0xc3, 0xd4]) => pcap_format(path, data, true, false)?,
            Some([0x4d, 0x3c, 0xb2, 0xa1]) => pcap_format(path, data, false, true)?,
            Some([0xa1, 0xb2, 0x3c, 0x4d]) => pcap_format(path, data, true, true)?,
            Some([0x0a, 0x0d, 0x0d, 0x0a]) => Format::PcapNg,
            _ => {
                let magic = data
                    .iter()
                    .take(4)
                    .map(|b| format!("{b:02x}"))
                    .collect::<Vec<_>>()
                    .join(" ");
                return Err(OpenError::UnknownFormat {
                    path: path.to_owned(),
                    magic: if magic.is_empty() {
                        "nothing: the file is empty".into()
                    } else {
                        magic
                    },
                });
            }
        };
        Ok(CaptureFile {
            path: path.to_owned(),
            bytes,
            format,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn format(&self) -> Format {
        self.format
    }

    pub fn len(&self) -> usize {
        self.data().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn data(&self) -> &[u8] {
        match &self.bytes {
            Bytes::Mapped(m) => m,
            Bytes::Owned(v) => v,
        }
    }

    pub fn records(&self) -> Records<'_> {
        let data = self.data();
        let map = match &self.bytes {
            Bytes::Mapped(m) => Some(m),
            Bytes::Owned(_) => None,
        };
        let window = Window { map, next: 0 };
        match self.format {
            Format::Pcap {
                big_endian,
                nanos,
                link,
            } => Records {
                data,
                at: 24,
                big_endian,
                kind: Kind::Pcap {
                    units: if nanos { 1_000_000_000 } else { 1_000_000 },
                    link: LinkType::from_linktype(link),
                },
                done: false,
                window,
            },
            Format::PcapNg => Records {
                data,
                at: 0,
                big_endian: false,
                kind: Kind::PcapNg { interfaces: Vec::new() },
                done: false,
                window,
            },
        }
    }
}

fn pcap_format(path: &Path, data: &[u8], big_endian: bool, nanos: bool) -> Result<Format, OpenError> {
    if data.len() < 24 {
        return Err(OpenError::TruncatedHeader {
            path: path.to_owned(),
            len: data.len(),
        });
    }
    let link = read32(data, 20, big_endian) & 0x0fff_ffff; // upper bits: FCS info
    Ok(Format::Pcap {
        big_endian,
        nanos,
        link,
    })
}

fn read32(b: &[u8], at: usize, big_endian: bool) -> u32 {
    let s = [b[at], b[at + 1], b[at + 2], b[at + 3]];
    if big_endian {
        u32::from_be_bytes(s)
    } else {
        u32::from_le_bytes(s)
    }
}

fn read16(b: &[u8], at: usize, big_endian: bool) -> u16 {
    let s = [b[at], b[at + 1]];
    if big_endian {
        u16::from_be_bytes(s)
    } else {
        u16::from_le_bytes(s)
    }
}

#[derive(Clone, Copy, Debug)]
struct Interface {
    link: LinkType,
    /// Timestamp units per second (`if_tsresol`).
    units: u64,
    /// Seconds added to every timestamp (`if_tsoffset`).
    offset: i64,
}

enum Kind {
    Pcap { units: u64, link: LinkType },
    PcapNg { interfaces: Vec<Interface> },
}

/// Iterator over the packets of a [`CaptureFile`].
pub struct Records<'a> {
    data: &'a [u8],
    at: usize,
    big_endian: bool,
    kind: Kind,
    done: bool,
    window: Window<'a>,
}

/// Maps the file in ahead of the reader a window at a time and lets go of
/// what it has read: one system call per window instead of a page fault per
/// page, and resident memory that stays small however large the file.
struct Window<'a> {
    map: Option<&'a Mmap>,
    /// Where the next window starts.
    next: usize,
}

impl Window<'_> {
    const SIZE: usize = 8 << 20;

    fn advance(&mut self, at: usize) {
        let Some(map) = self.map else { return };
        if at < self.next {
            return;
        }
        let len = Self::SIZE.min(map.len().saturating_sub(self.next));
        // Hints only: an older kernel without MADV_POPULATE_READ just
        // faults pages in as before.
        let _ = map.advise_range(memmap2::Advice::PopulateRead, self.next, len);
        if let Some(behind) = self.next.checked_sub(2 * Self::SIZE) {
            // SAFETY: DONTNEED on a read-only file mapping only drops our
            // page-table entries; the bytes are read again from the page
            // cache if touched, and nothing behind the reader is touched.
            let _ = unsafe { map.unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, behind, Self::SIZE) };
        }
        self.next += Self::SIZE;
    }
}

impl<'a> Records<'a> {
    /// Bytes of the file consumed so far (for progress).
    pub fn position(&self) -> usize {
        self.at
    }

    fn pcap_next(&mut self, units: u64, link: LinkType) -> Option<Result<RawPacket<'a>, FileError>> {
        let at = self.at;
        if at == self.data.len() {
            return None;
        }
        let Some(header) = self.data.get(at..at + 16) else {
            return Some(Err(FileError::TruncatedRecord { offset: at }));
        };
        let secs = read32(header, 0, self.big_endian);
        let frac = read32(header, 4, self.big_endian);
        let caplen = read32(header, 8, self.big_endian);
        let orig_len = read32(header, 12, self.big_endian);
        if caplen > MAX_RECORD {
            return Some(Err(FileError::BadRecordLength {
                offset: at,
                len: caplen,
            }));
        }
        let start = at + 16;
        let Some(data) = self.data.get(start..start + caplen as usize) else {
            return Some(Err(FileError::TruncatedRecord { offset: at }));
        };
        self.at = start + caplen as usize;
        Some(Ok(RawPacket {
            ts: Timestamp::from_parts(secs as i64, frac as u64, units),
            link,
            data,
            orig_len,
        }))
    }

    fn pcapng_next(&mut self) -> Option<Result<RawPacket<'a>, FileError>> {
        loop {
            let at = self.at;
            if at == self.data.len() {
                return None;
            }
            let Some(head) = self.data.get(at..at + 8) else {
                return Some(Err(FileError::TruncatedRecord { offset: at }));
            };
            let raw_type = [head[0], head[1], head[2], head[3]];
            if raw_type == [0x0a, 0x0d, 0x0d, 0x0a] {
                // Section header: its byte-order magic decides this section's order.
                let Some(bom) = self.data.get(at + 8..at + 12) else {
                    return Some(Err(FileError::TruncatedRecord { offset: at }));
                };
                self.big_endian = match bom {
                    [0x1a, 0x2b, 0x3c, 0x4d] => true,
                    [0x4d, 0x3c, 0x2b, 0x1a] => false,
                    _ => return Some(Err(FileError::BadSectionHeader { offset: at })),
                };
                if let Kind::PcapNg { interfaces } = &mut self.kind {
                    interfaces.clear();
                }
            }
            let block_type = read32(head, 0, self.big_endian);
            let len = read32(head, 4, self.big_endian);
            if len < 12 || len % 4 != 0 {
                return Some(Err(FileError::BadBlockLength { offset: at, len }));
            }
            let Some(block) = self.data.get(at..at + len as usize) else {
                return Some(Err(FileError::TruncatedRecord { offset: at }));
            };
            self.at = at + len as usize;
            let body = &block[8..block.len() - 4];
            match block_type {
                // Interface Description Block.
                1 => {
                    if body.len() < 8 {
                        return Some(Err(FileError::BadBlockLength { offset: at, len }));
                    }
                    let iface = self.interface(body);
                    if let Kind::PcapNg { interfaces } = &mut self.kind {
                        interfaces.push(iface);
                    }
                }
                // Enhanced Packet Block, and the obsolete Packet Block.
                6 | 2 => return Some(self.packet(block_type, body, at, len)),
                // Simple Packet Block: no timestamp, interface 0.
                3 => {
                    if body.len() < 4 {
                        return Some(Err(FileError::BadBlockLength { offset: at, len }));
                    }
                    let orig_len = read32(body, 0, self.big_endian);
                    let iface = match self.iface(0, at) {
                        Ok(i) => i,
                        Err(e) => return Some(Err(e)),
                    };
                    let data = &body[4..body.len().min(4 + orig_len as usize)];
                    return Some(Ok(RawPacket {
                        ts: Timestamp::ZERO,
                        link: iface.link,
                        data,
                        orig_len,
                    }));
                }
                // Section header handled above; name resolution, statistics,
                // custom and unknown blocks are skipped.
                _ => {}
            }
        }
    }

    fn iface(&self, id: u32, offset: usize) -> Result<Interface, FileError> {
        match &self.kind {
            Kind::PcapNg { interfaces } => interfaces
                .get(id as usize)
                .copied()
                .ok_or(FileError::UnknownInterface { offset, interface: id }),
            Kind::Pcap { .. } => Err(FileError::UnknownInterface { offset, interface: id }),
        }
    }

    fn packet(&self, block_type: u32, body: &'a [u8], at: usize, len: u32) -> Result<RawPacket<'a>, FileError> {
        if body.len() < 20 {
            return Err(FileError::BadBlockLength { offset: at, len });
        }
        let be = self.big_endian;
        let interface = if block_type == 6 {
            read32(body, 0, be)
        } else {
            read16(body, 0, be) as u32
        };
        let iface = self.iface(interface, at)?;
        let units = ((read32(body, 4, be) as u64) << 32) | read32(body, 8, be) as u64;
        let caplen = read32(body, 12, be);
        let orig_len = read32(body, 16, be);
        let data = body.get(20..20 + caplen as usize).ok_or(FileError::BadRecordLength {
            offset: at,
            len: caplen,
        })?;
        let ts = Timestamp::from_parts(
            (units / iface.units) as i64 + iface.offset,
            units % iface.units,
            iface.units,
        );
        Ok(RawPacket {
            ts,
            link: iface.link,
            data,
            orig_len,
        })
    }

    fn interface(&self, body: &[u8]) -> Interface {
        let be = self.big_endian;
        let mut iface = Interface {
            link: LinkType::from_linktype(read16(body, 0, be) as u32),
            units: 1_000_000,
            offset: 0,
        };
        let mut at = 8;
        while at + 4 <= body.len() {
            let code = read16(body, at, be);
            let olen = read16(body, at + 2, be) as usize;
            let Some(value) = body.get(at + 4..at + 4 + olen) else {
                break;
            };
            match (code, olen) {
                (0, _) => break,
                (9, 1) => {
                    let r = value[0];
                    let units = if r & 0x80 != 0 {
                        1u64.checked_shl((r & 0x7f) as u32)
                    } else {
                        10u64.checked_pow(r as u32)
                    };
                    // Resolutions finer than 1 ns or absurd values: keep µs.
                    if let Some(u) = units.filter(|u| (1..=1_000_000_000_000_000_000).contains(u)) {
                        iface.units = u;
                    }
                }
                (14, 8) => {
                    iface.offset = if be {
                        i64::from_be_bytes(value.try_into().unwrap_or_default())
                    } else {
                        i64::from_le_bytes(value.try_into().unwrap_or_default())
                    }
                }
                _ => {}
            }
            at += 4 + ((olen + 3) & !3);
        }
        iface
    }
}

impl<'a> Iterator for Records<'a> {
    type Item = Result<RawPacket<'a>, FileError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        self.window.advance(self.at);
        let item = match self.kind {
            Kind::Pcap { units, link } => self.pcap_next(units, link),
            Kind::PcapNg { .. } => self.pcapng_next(),
        };
        if !matches!(item, Some(Ok(_))) {
            self.done = true;
        }
        item
    }
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;

    use super::*;
    use crate::craft::{frame, PcapNgWriter, PcapWriter, TcpSpec, TsResolution};
    use crate::decode::{TcpFlags, VlanStack};

    fn packet(link: LinkType) -> Vec<u8> {
        let src: IpAddr = "192.0.2.1".parse().unwrap();
        let dst: IpAddr = "198.51.100.2".parse().unwrap();
        frame(
            link,
            VlanStack::NONE,
            &TcpSpec::new(src, 1, dst, 2, TcpFlags::SYN).ip_bytes(),
        )
    }

    fn t(ns: i64) -> Timestamp {
        Timestamp::from_nanos(1_600_000_000_000_000_000 + ns)
    }

    fn read(bytes: Vec<u8>) -> Vec<Result<(Timestamp, LinkType, usize, u32), FileError>> {
        let f = CaptureFile::from_vec(Path::new("test.pcap"), bytes).expect("opens");
        f.records()
            .map(|r| r.map(|p| (p.ts, p.link, p.data.len(), p.orig_len)))
            .collect()
    }

    #[test]
    fn pcap_in_both_byte_orders_and_resolutions() {
        for big_endian in [false, true] {
            for (res, precision) in [(TsResolution::Micro, 1_000), (TsResolution::Nano, 1)] {
                let p = packet(LinkType::Ethernet);
                let mut w = PcapWriter::new(Vec::new(), 1, res, big_endian, 65535).unwrap();
                w.write(t(123_456_789), &p, p.len() as u32).unwrap();
                w.write(t(2_000_000_001), &p[..30], p.len() as u32).unwrap();
                let recs = read(w.into_inner());
                let expect_ts = |ns: i64| t(ns / precision * precision);
                assert_eq!(
                    recs,
                    vec![
                        Ok((expect_ts(123_456_789), LinkType::Ethernet, p.len(), p.len() as u32)),
                        Ok((expect_ts(2_000_000_001), LinkType::Ethernet, 30, p.len() as u32)),
                    ],
                    "big_endian {big_endian} {res:?}"
                );
            }
        }
    }

    #[test]
    fn pcapng_interfaces_keep_their_own_link_type_and_resolution() {
        for big_endian in [false, true] {
            let mut w = PcapNgWriter::new(Vec::new(), big_endian).unwrap();
            let eth = w.add_interface(1, TsResolution::Micro, 65535).unwrap();
            let sll2 = w.add_interface(276, TsResolution::Nano, 65535).unwrap();
            let raw = w.add_interface(101, TsResolution::PowerOfTwo(20), 65535).unwrap();
            let (pe, ps, pr) = (
                packet(LinkType::Ethernet),
                packet(LinkType::LinuxSll2),
                packet(LinkType::Raw),
            );
            w.write(eth, t(1_500), &pe, pe.len() as u32).unwrap();
            w.write(sll2, t(1_501), &ps, ps.len() as u32).unwrap();
            w.write(raw, t(1_000_000), &pr, pr.len() as u32).unwrap();
            let recs: Vec<_> = read(w.into_inner()).into_iter().map(|r| r.unwrap()).collect();
            assert_eq!(recs[0].0, t(1_000), "µs interface rounds down");
            assert_eq!(recs[0].1, LinkType::Ethernet);
            assert_eq!((recs[1].0, recs[1].1), (t(1_501), LinkType::LinuxSll2));
            assert_eq!(recs[2].1, LinkType::Raw);
            let err = (recs[2].0.as_nanos() - t(1_000_000).as_nanos()).abs();
            assert!(err < 1_000, "2^-20 s resolution is within a microsecond: {err} ns");
        }
    }

    #[test]
    fn format_is_recognised_by_content_not_name() {
        let p = packet(LinkType::Ethernet);
        let mut w = PcapNgWriter::new(Vec::new(), false).unwrap();
        let i = w.add_interface(1, TsResolution::Micro, 65535).unwrap();
        w.write(i, t(0), &p, p.len() as u32).unwrap();
        let f = CaptureFile::from_vec(Path::new("looks-like.pcap"), w.into_inner()).unwrap();
        assert_eq!(f.format(), Format::PcapNg);
        let e = CaptureFile::from_vec(Path::new("x.pcapng"), b"hello world".to_vec())
            .err()
            .unwrap();
        assert!(e.to_string().contains("not a pcap or pcap-ng file"), "{e}");
        let e = CaptureFile::from_vec(Path::new("empty.pcap"), Vec::new())
            .err()
            .unwrap();
        assert!(e.to_string().contains("empty"), "{e}");
    }

    #[test]
    fn a_truncated_file_ends_with_an_error_after_the_good_records() {
        let p = packet(LinkType::Ethernet);
        let mut w = PcapWriter::new(Vec::new(), 1, TsResolution::Micro, false, 65535).unwrap();
        w.write(t(0), &p, p.len() as u32).unwrap();
        w.write(t(1), &p, p.len() as u32).unwrap();
        let mut bytes = w.into_inner();
        bytes.truncate(bytes.len() - 5);
        let recs = read(bytes);
        assert_eq!(recs.len(), 2);
        assert!(recs[0].is_ok());
        assert!(matches!(recs[1], Err(FileError::TruncatedRecord { .. })));
    }

    #[test]
    fn corrupt_lengths_never_panic() {
        let p = packet(LinkType::Ethernet);
        let mut w = PcapNgWriter::new(Vec::new(), false).unwrap();
        let i = w.add_interface(1, TsResolution::Micro, 65535).unwrap();
        for n in 0..3 {
            w.write(i, t(n), &p, p.len() as u32).unwrap();
        }
        let good = w.into_inner();
        for at in 0..good.len() {
            for v in [0u8, 0xff, 0x0d] {
                let mut b = good.clone();
                b[at] = v;
                if let Ok(f) = CaptureFile::from_vec(Path::new("x"), b) {
                    let _ = f.records().count();
                }
            }
        }
    }
}
