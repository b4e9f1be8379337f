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
    #[error("cannot read {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
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
        let io = |source| OpenError::Io { path: path.to_owned(), source };
        let file = File::open(path).map_err(io)?;
        // SAFETY: the map is read-only and private to this process; a file
        // truncated underneath us by another process is the documented risk
        // of every mmap reader, the same as tcpdump's.
        let bytes = match unsafe { Mmap::map(&file) } {
            Ok(m) => Bytes::Mapped(m),
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
                let magic = data.iter().take(4).map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(" ");
                return Err(OpenError::UnknownFormat {
                    path: path.to_owned(),
                    magic: if magic.is_empty() { "nothing: the file is empty".into() } else { magic },
                });
            }
        };
        Ok(CaptureFile { path: path.to_owned(), bytes, format })
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
        match self.format {
            Format::Pcap { big_endian, nanos, link } => Records {
                data,
                at: 24,
                big_endian,
                kind: Kind::Pcap { units: if nanos { 1_000_000_000 } else { 1_000_000 }, link: LinkType::from_linktype(link) },
                done: false,
            },
            Format::PcapNg => Records { data, at: 0, big_endian: false, kind: Kind::PcapNg { interfaces: Vec::new() }, done: false },
        }
    }
}

fn pcap_format(path: &Path, data: &[u8], big_endian: bool, nanos: bool) -> Result<Format, OpenError> {
    if data.len() < 24 {
        return Err(OpenError::TruncatedHeader { path: path.to_owned(), len: data.len() });
    }
    let link = read32(data, 20, big_endian) & 0x0fff_ffff; // upper bits: FCS info
    Ok(Format::Pcap { big_endian, nanos, link })
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
            return Some(Err(FileError::BadRecordLength { offset: at, len: caplen }));
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
                    return Some(Ok(RawPacket { ts: Timestamp::ZERO, link: iface.link, data, orig_len }));
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
        let interface = if block_type == 6 { read32(body, 0, be) } else { read16(body, 0, be) as u32 };
        let iface = self.iface(interface, at)?;
        let units = ((read32(body, 4, be) as u64) << 32) | read32(body, 8, be) as u64;
        let caplen = read32(body, 12, be);
        let orig_len = read32(body, 16, be);
        let data = body
            .get(20..20 + caplen as usize)
            .ok_or(FileError::BadRecordLength { offset: at, len: caplen })?;
        let ts = Timestamp::from_parts((units / iface.units) as i64 + iface.offset, units % iface.units, iface.units);
        Ok(RawPacket { ts, link: iface.link, data, orig_len })
    }

    fn interface(&self, body: &[u8]) -> Interface {
        let be = self.big_endian;
        let mut iface = Interface { link: LinkType::from_linktype(read16(body, 0, be) as u32), units: 1_000_000, offset: 0 };
        let mut at = 8;
        while at + 4 <= body.len() {
            let code = read16(body, at, be);
            let olen = read16(body, at + 2, be) as usize;
            let Some(value) = body.get(at + 4..at + 4 + olen) else { break };
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
                (14, 8) => iface.offset = if be { i64::from_be_bytes(value.try_into().unwrap_or_default()) } else { i64::from_le_bytes(value.try_into().unwrap_or_default()) },
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
