//! Offline capture files: classic pcap (µs or ns, either byte order) and
//! pcap-ng (any number of sections and interfaces, each interface with its
//! own link type, `if_tsresol` and `if_tsoffset`).
//!
//! The format is chosen by the magic bytes, never by the file name. The
//! file is read front to back through a 1 MiB buffer ([`Records`] hands out each
//! packet as a slice of it): memory stays bounded (the buffer, at most one
//! block of [`MAX_BLOCK`]) however large the file, a FIFO or standard
//! input streams like a file, and a file that another process truncates
//! while it is read ends the replay with [`FileError::Shrank`] rather than
//! the `SIGBUS` a memory map would die of. Measured against the memory
//! map this replaced: no slower (docs/benchmarks.md).
//!
//! Every number read from the file is checked before it sizes a read or
//! becomes a time: a damaged framing field ends the file with a
//! [`FileError`] (a pcap stream cannot be resynchronised; what was read
//! before stands); a packet whose time cannot be represented is skipped
//! and counted ([`FileError::is_fatal`] is false for it).
//!
//! A pure-Rust reader rather than libpcap: libpcap refuses pcap-ng files
//! whose interfaces differ in link type.

use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::RawPacket;
use crate::decode::LinkType;
use crate::time::Timestamp;

/// Why a capture file could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("cannot read {path}: {error}")]
    Io { path: PathBuf, error: io::Error },
    #[error("{path} is {kind}, not a capture file")]
    NotAFile { path: PathBuf, kind: &'static str },
    #[error("{path}: a FIFO that no process opened for writing within {} s", .waited.as_secs())]
    NoWriter { path: PathBuf, waited: Duration },
    #[error("{path}: not a pcap or pcap-ng file (starts with {magic})")]
    UnknownFormat { path: PathBuf, magic: String },
    #[error("{path}: pcap header cut short ({len} bytes)")]
    TruncatedHeader { path: PathBuf, len: usize },
}

/// Why a packet, or the rest of a file, was not read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FileError {
    #[error("record at byte {offset} is cut short (file truncated?)")]
    TruncatedRecord { offset: u64 },
    #[error("record at byte {offset} claims {len} bytes, more than any packet")]
    BadRecordLength { offset: u64, len: u32 },
    #[error("pcap-ng block at byte {offset} has a bad length {len}")]
    BadBlockLength { offset: u64, len: u32 },
    #[error("pcap-ng section at byte {offset} has an unknown byte-order magic")]
    BadSectionHeader { offset: u64 },
    #[error("pcap-ng packet at byte {offset} names interface {interface}, which was never described")]
    UnknownInterface { offset: u64, interface: u32 },
    #[error("packet at byte {offset} has a time outside 1677-2262 (skipped)")]
    BadTimestamp { offset: u64 },
    #[error("the file shrank while it was read: {size} bytes when opened, it ended at byte {offset}")]
    Shrank { offset: u64, size: u64 },
    #[error("reading at byte {offset} failed: {kind}")]
    ReadFailed { offset: u64, kind: io::ErrorKind },
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
            FileError::BadTimestamp { .. } => "file_bad_timestamp",
            FileError::Shrank { .. } => "file_shrank",
            FileError::ReadFailed { .. } => "file_read_failed",
        }
    }

    /// Whether the rest of the file is lost (else only this packet).
    pub fn is_fatal(&self) -> bool {
        !matches!(self, FileError::BadTimestamp { .. })
    }
}

/// Largest pcap record accepted; libpcap uses 256 KiB for most link types,
/// and anything larger is a corrupt length field.
const MAX_RECORD: u32 = 256 * 1024;
/// Largest pcap-ng block accepted (Wireshark's bound too): a corrupt
/// length must not make the reader buffer gigabytes.
pub const MAX_BLOCK: u32 = 16 << 20;
/// What the reader asks the file for at a time.
const READ_SIZE: usize = 1 << 20;
/// How long a FIFO may take to get a writer.
const FIFO_WAIT: Duration = Duration::from_secs(60);

/// Where the bytes come from.
enum Input {
    File(File),
    Memory(io::Cursor<Vec<u8>>),
}

impl Read for Input {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Input::File(f) => f.read(buf),
            Input::Memory(m) => m.read(buf),
        }
    }
}

/// The file's bytes, read ahead into a buffer: `data[start..end]` is what
/// has been read and not yet consumed, `offset` the file position of
/// `data[start]`.
struct Buffer {
    input: Input,
    data: Vec<u8>,
    start: usize,
    end: usize,
    offset: u64,
    eof: bool,
    /// The first error reading gave (reading stops there).
    failed: Option<io::ErrorKind>,
}

impl Buffer {
    fn new(input: Input) -> Buffer {
        Buffer {
            input,
            data: Vec::new(),
            start: 0,
            end: 0,
            offset: 0,
            eof: false,
            failed: None,
        }
    }

    fn available(&self) -> &[u8] {
        &self.data[self.start..self.end]
    }

    /// Makes at least `n` bytes available (fewer only at the end of the
    /// input or after a read error); returns how many are. `n` is bounded
    /// by the callers ([`MAX_BLOCK`] at most). Runs for every record: the
    /// common case (already buffered) inlined, the read out of line.
    #[inline]
    fn fill(&mut self, n: usize) -> usize {
        let have = self.end - self.start;
        if have >= n {
            return have;
        }
        self.refill(n)
    }

    #[cold]
    #[inline(never)]
    fn refill(&mut self, n: usize) -> usize {
        while self.end - self.start < n && !self.eof && self.failed.is_none() {
            if self.data.len() - self.start < n.max(READ_SIZE) {
                // Move what is left to the front, and make room.
                self.data.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
                let want = n.max(READ_SIZE).next_power_of_two();
                if self.data.len() < want {
                    self.data.resize(want, 0);
                }
            }
            let end = self.end;
            match self.input.read(&mut self.data[end..]) {
                Ok(0) => self.eof = true,
                Ok(k) => self.end += k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => self.failed = Some(e.kind()),
            }
        }
        self.end - self.start
    }

    /// Consumes `n` available bytes.
    #[inline]
    fn consume(&mut self, n: usize) {
        self.start += n;
        self.offset += n as u64;
    }
}

/// A capture file opened for reading.
pub struct CaptureFile {
    path: PathBuf,
    format: Format,
    /// The size when opened (a regular file), for progress and to tell a
    /// file that shrank from one that was short to begin with.
    size: Option<u64>,
    buffer: Buffer,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Pcap { big_endian: bool, nanos: bool, link: u32 },
    PcapNg,
}

impl CaptureFile {
    /// Opens a regular file, or a FIFO (standard input when it is a pipe),
    /// which is waited on for a writer at most [`FIFO_WAIT`]. Devices,
    /// directories and sockets are refused, with what they are.
    pub fn open(path: &Path) -> Result<Self, OpenError> {
        Self::open_waiting(path, FIFO_WAIT)
    }

    /// [`CaptureFile::open`], waiting `wait` for a FIFO's writer.
    pub fn open_waiting(path: &Path, wait: Duration) -> Result<Self, OpenError> {
        let io = |error| OpenError::Io {
            path: path.to_owned(),
            error,
        };
        let (file, meta) = net_gazer_common::file::open(path).map_err(io)?;
        let ft = meta.file_type();
        let size = if ft.is_file() {
            Some(meta.len())
        } else if std::os::unix::fs::FileTypeExt::is_fifo(&ft) {
            wait_for_writer(path, &file, wait)?;
            None
        } else {
            return Err(OpenError::NotAFile {
                path: path.to_owned(),
                kind: net_gazer_common::file::kind_of(ft),
            });
        };
        net_gazer_common::file::set_blocking(&file).map_err(io)?;
        Self::from_input(path, Input::File(file), size)
    }

    /// Reads a capture held in memory (tests, fuzzing).
    pub fn from_vec(path: &Path, data: Vec<u8>) -> Result<Self, OpenError> {
        let size = data.len() as u64;
        Self::from_input(path, Input::Memory(io::Cursor::new(data)), Some(size))
    }

    fn from_input(path: &Path, input: Input, size: Option<u64>) -> Result<Self, OpenError> {
        let mut buffer = Buffer::new(input);
        let got = buffer.fill(24);
        if let Some(kind) = buffer.failed.filter(|_| got < 24) {
            return Err(OpenError::Io {
                path: path.to_owned(),
                error: kind.into(),
            });
        }
        let data = buffer.available();
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
        if matches!(format, Format::Pcap { .. }) {
            buffer.consume(24);
        }
        Ok(CaptureFile {
            path: path.to_owned(),
            format,
            size,
            buffer,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn format(&self) -> Format {
        self.format
    }

    /// The size of a regular file when it was opened (`None` for a FIFO).
    pub fn size(&self) -> Option<u64> {
        self.size
    }

    /// The packets, front to back (once: the file is read as it goes).
    pub fn records(&mut self) -> Records<'_> {
        let (kind, big_endian) = match self.format {
            Format::Pcap {
                big_endian,
                nanos,
                link,
            } => (
                Kind::Pcap {
                    units: if nanos { 1_000_000_000 } else { 1_000_000 },
                    link: LinkType::from_linktype(link),
                },
                big_endian,
            ),
            Format::PcapNg => (Kind::PcapNg { interfaces: Vec::new() }, false),
        };
        Records {
            buf: &mut self.buffer,
            size: self.size,
            big_endian,
            kind,
            done: false,
        }
    }
}

/// Waits for a writer on a FIFO: data, or a writer that came and went,
/// within `wait`, with a warning while it waits.
fn wait_for_writer(path: &Path, file: &File, wait: Duration) -> Result<(), OpenError> {
    use net_gazer_common::file::wait_for_writer as ready_within;
    let io = |error| OpenError::Io {
        path: path.to_owned(),
        error,
    };
    if ready_within(file, Duration::ZERO).map_err(io)? {
        return Ok(());
    }
    tracing::warn!(file = %path.display(), "a FIFO with nothing to read yet: waiting up to {} s for a writer", wait.as_secs());
    if ready_within(file, wait).map_err(io)? {
        return Ok(());
    }
    Err(OpenError::NoWriter {
        path: path.to_owned(),
        waited: wait,
    })
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

/// Callers check `at + 4 <= b.len()` first.
fn read32(b: &[u8], at: usize, big_endian: bool) -> u32 {
    let s = [b[at], b[at + 1], b[at + 2], b[at + 3]];
    if big_endian {
        u32::from_be_bytes(s)
    } else {
        u32::from_le_bytes(s)
    }
}

/// Callers check `at + 2 <= b.len()` first.
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

/// The packets of a [`CaptureFile`], one at a time: each borrows the
/// reader's buffer until the next call (a lending iterator: `while let
/// Some(r) = records.next_packet()`).
pub struct Records<'a> {
    buf: &'a mut Buffer,
    size: Option<u64>,
    big_endian: bool,
    kind: Kind,
    done: bool,
}

/// Where the next packet lies in the buffer, once its framing checked.
struct Found {
    ts: Option<Timestamp>,
    link: LinkType,
    /// Range of the packet's bytes within `available()`.
    data: (usize, usize),
    orig_len: u32,
    /// Bytes the whole record takes.
    len: usize,
}

impl Records<'_> {
    /// Bytes of the file consumed so far (for progress).
    pub fn position(&self) -> u64 {
        self.buf.offset
    }

    #[inline]
    pub fn next_packet(&mut self) -> Option<Result<RawPacket<'_>, FileError>> {
        if self.done {
            return None;
        }
        let found = match self.kind {
            Kind::Pcap { units, link } => self.pcap_next(units, link),
            Kind::PcapNg { .. } => self.pcapng_next(),
        };
        let found = match found {
            Ok(Some(f)) => f,
            Ok(None) => {
                self.done = true;
                return None;
            }
            Err(e) => {
                self.done = e.is_fatal();
                return Some(Err(e));
            }
        };
        let at = self.buf.offset;
        let start = self.buf.start;
        self.buf.consume(found.len);
        let Some(ts) = found.ts else {
            return Some(Err(FileError::BadTimestamp { offset: at }));
        };
        let data = &self.buf.data[start + found.data.0..start + found.data.1];
        Some(Ok(RawPacket {
            ts,
            link: found.link,
            data,
            orig_len: found.orig_len,
        }))
    }

    /// The error for input that ended before `need` bytes at the current
    /// position: a read error, a file that shrank, or a truncated record.
    fn short(&self) -> FileError {
        let offset = self.buf.offset;
        let end = offset + (self.buf.end - self.buf.start) as u64;
        if let Some(kind) = self.buf.failed {
            return FileError::ReadFailed { offset: end, kind };
        }
        match self.size {
            Some(size) if end < size => FileError::Shrank { offset: end, size },
            _ => FileError::TruncatedRecord { offset },
        }
    }

    /// The input ended here (nothing buffered): the end of the file, or
    /// the error that stopped reading.
    fn ended(&self) -> Result<Option<Found>, FileError> {
        match self.buf.failed {
            Some(_) => Err(self.short()),
            None => self.check_size().map(|()| None),
        }
    }

    #[inline]
    fn pcap_next(&mut self, units: u64, link: LinkType) -> Result<Option<Found>, FileError> {
        match self.buf.fill(16) {
            0 => return self.ended(),
            1..16 => return Err(self.short()),
            _ => {}
        }
        let be = self.big_endian;
        let header = self.buf.available();
        let secs = read32(header, 0, be);
        let frac = read32(header, 4, be);
        let caplen = read32(header, 8, be);
        let orig_len = read32(header, 12, be);
        if caplen > MAX_RECORD {
            return Err(FileError::BadRecordLength {
                offset: self.buf.offset,
                len: caplen,
            });
        }
        let len = 16 + caplen as usize;
        if self.buf.fill(len) < len {
            return Err(self.short());
        }
        Ok(Some(Found {
            ts: Some(Timestamp::from_parts(i64::from(secs), u64::from(frac), units)),
            link,
            data: (16, len),
            orig_len,
            len,
        }))
    }

    /// A regular file read to its end: fine if it is as long as it was
    /// when opened.
    fn check_size(&self) -> Result<(), FileError> {
        match self.size {
            Some(size) if self.buf.offset < size => Err(FileError::Shrank {
                offset: self.buf.offset,
                size,
            }),
            _ => Ok(()),
        }
    }

    fn pcapng_next(&mut self) -> Result<Option<Found>, FileError> {
        loop {
            let at = self.buf.offset;
            match self.buf.fill(12) {
                0 => return self.ended(),
                1..12 => return Err(self.short()),
                _ => {}
            }
            let head = self.buf.available();
            if head[..4] == [0x0a, 0x0d, 0x0d, 0x0a] {
                // Section header: its byte-order magic decides this section's order.
                self.big_endian = match head[8..12] {
                    [0x1a, 0x2b, 0x3c, 0x4d] => true,
                    [0x4d, 0x3c, 0x2b, 0x1a] => false,
                    _ => return Err(FileError::BadSectionHeader { offset: at }),
                };
                if let Kind::PcapNg { interfaces } = &mut self.kind {
                    interfaces.clear();
                }
            }
            let be = self.big_endian;
            let block_type = read32(head, 0, be);
            let len = read32(head, 4, be);
            if len < 12 || !len.is_multiple_of(4) || len > MAX_BLOCK {
                return Err(FileError::BadBlockLength { offset: at, len });
            }
            let len = len as usize;
            if self.buf.fill(len) < len {
                return Err(self.short());
            }
            let body = &self.buf.available()[8..len - 4];
            match block_type {
                // Interface Description Block.
                1 => {
                    if body.len() < 8 {
                        return Err(FileError::BadBlockLength {
                            offset: at,
                            len: len as u32,
                        });
                    }
                    let iface = interface(body, be);
                    if let Kind::PcapNg { interfaces } = &mut self.kind {
                        interfaces.push(iface);
                    }
                }
                // Enhanced Packet Block, and the obsolete Packet Block.
                6 | 2 => return self.packet(block_type, at, len).map(Some),
                // Simple Packet Block: no timestamp, interface 0.
                3 => {
                    if body.len() < 4 {
                        return Err(FileError::BadBlockLength {
                            offset: at,
                            len: len as u32,
                        });
                    }
                    let orig_len = read32(body, 0, be);
                    let iface = self.iface(0, at)?;
                    let caplen = (body.len() - 4).min(orig_len as usize);
                    return Ok(Some(Found {
                        ts: Some(Timestamp::ZERO),
                        link: iface.link,
                        data: (12, 12 + caplen),
                        orig_len,
                        len,
                    }));
                }
                // Section header handled above; name resolution, statistics,
                // custom and unknown blocks are skipped.
                _ => {}
            }
            self.buf.consume(len);
        }
    }

    fn iface(&self, id: u32, offset: u64) -> Result<Interface, FileError> {
        match &self.kind {
            Kind::PcapNg { interfaces } => interfaces
                .get(id as usize)
                .copied()
                .ok_or(FileError::UnknownInterface { offset, interface: id }),
            Kind::Pcap { .. } => Err(FileError::UnknownInterface { offset, interface: id }),
        }
    }

    /// An (Enhanced) Packet Block of `len` bytes, available in the buffer.
    fn packet(&self, block_type: u32, at: u64, len: usize) -> Result<Found, FileError> {
        let body = &self.buf.available()[8..len - 4];
        if body.len() < 20 {
            return Err(FileError::BadBlockLength {
                offset: at,
                len: len as u32,
            });
        }
        let be = self.big_endian;
        let interface = if block_type == 6 {
            read32(body, 0, be)
        } else {
            u32::from(read16(body, 0, be))
        };
        let iface = self.iface(interface, at)?;
        let units = (u64::from(read32(body, 4, be)) << 32) | u64::from(read32(body, 8, be));
        let caplen = read32(body, 12, be);
        let orig_len = read32(body, 16, be);
        if caplen as usize > body.len() - 20 {
            return Err(FileError::BadRecordLength {
                offset: at,
                len: caplen,
            });
        }
        Ok(Found {
            ts: timestamp(units, iface),
            link: iface.link,
            data: (28, 28 + caplen as usize),
            orig_len,
            len,
        })
    }
}

/// A pcap-ng timestamp (`ticks` of the interface's resolution since its
/// offset), or `None` when the instant is beyond what a [`Timestamp`]
/// holds (1677-2262): i128 arithmetic, no wrap, no overflow.
fn timestamp(ticks: u64, iface: Interface) -> Option<Timestamp> {
    let units = i128::from(iface.units.max(1));
    let ticks = i128::from(ticks);
    let ns = (ticks / units + i128::from(iface.offset)) * 1_000_000_000 + (ticks % units) * 1_000_000_000 / units;
    i64::try_from(ns).ok().map(Timestamp::from_nanos)
}

/// An Interface Description Block's body (at least 8 bytes).
fn interface(body: &[u8], be: bool) -> Interface {
    let mut iface = Interface {
        link: LinkType::from_linktype(u32::from(read16(body, 0, be))),
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
        match (code, value) {
            (0, _) => break,
            (9, &[r]) => {
                let units = if r & 0x80 != 0 {
                    1u64.checked_shl(u32::from(r & 0x7f))
                } else {
                    10u64.checked_pow(u32::from(r))
                };
                // Resolutions finer than 1 ns or absurd values: keep µs.
                if let Some(u) = units.filter(|u| (1..=1_000_000_000_000_000_000).contains(u)) {
                    iface.units = u;
                }
            }
            (14, &[a, b, c, d, e, f, g, h]) => {
                let bytes = [a, b, c, d, e, f, g, h];
                iface.offset = if be {
                    i64::from_be_bytes(bytes)
                } else {
                    i64::from_le_bytes(bytes)
                }
            }
            _ => {}
        }
        at += 4 + ((olen + 3) & !3);
    }
    iface
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
        let mut f = CaptureFile::from_vec(Path::new("test.pcap"), bytes).expect("opens");
        let mut records = f.records();
        let mut out = Vec::new();
        while let Some(r) = records.next_packet() {
            out.push(r.map(|p| (p.ts, p.link, p.data.len(), p.orig_len)));
        }
        out
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
                if let Ok(mut f) = CaptureFile::from_vec(Path::new("x"), b) {
                    let mut records = f.records();
                    while records.next_packet().is_some() {}
                }
            }
        }
    }

    /// A pcap-ng file: one Ethernet interface of `resolution` from
    /// `tsoffset`, one packet per raw timestamp.
    fn pcapng(resolution: TsResolution, tsoffset: i64, stamps: &[u64]) -> Vec<u8> {
        let mut w = PcapNgWriter::new(Vec::new(), false).unwrap();
        let i = w.add_interface_offset(1, resolution, 65535, tsoffset).unwrap();
        let p = packet(LinkType::Ethernet);
        for &ts in stamps {
            w.write_ticks(i, ts, &p, p.len() as u32).unwrap();
        }
        w.into_inner()
    }

    /// Times no `Timestamp` can hold are skipped and counted, never wrapped
    /// or overflowed; the packets around them are read.
    #[test]
    fn timestamps_beyond_range_skip_their_packet_only() {
        let good = 1_600_000_000u64;
        use TsResolution::*;
        for (what, resolution, offset, stamps, bad) in [
            ("tsoffset near i64::MAX", Micro, i64::MAX - 5, vec![1], 1),
            ("tsoffset i64::MIN", Micro, i64::MIN, vec![u64::MAX], 1),
            (
                "tsresol 0 (seconds), 2^63 s",
                PowerOfTen(0),
                0,
                vec![good, 1 << 63, good],
                1,
            ),
            (
                "µs, 2^64 - 1",
                Micro,
                0,
                vec![good * 1_000_000, u64::MAX, good * 1_000_000],
                1,
            ),
            ("2^-30 s resolution", PowerOfTwo(30), 0, vec![good << 30], 0),
        ] {
            let recs = read(pcapng(resolution, offset, &stamps));
            assert_eq!(recs.len(), stamps.len(), "{what}: every packet accounted for: {recs:?}");
            let skipped = recs
                .iter()
                .filter(|r| matches!(r, Err(FileError::BadTimestamp { .. })))
                .count();
            assert_eq!(skipped, bad, "{what}: {recs:?}");
            for r in recs.iter().flatten() {
                assert!(
                    r.0.as_nanos() >= 0 || what.contains("MIN"),
                    "{what}: no wrap to before 1970: {r:?}"
                );
            }
        }
        let recs = read(pcapng(TsResolution::PowerOfTen(0), 0, &[good]));
        assert_eq!(
            recs[0].as_ref().unwrap().0,
            Timestamp::from_nanos(good as i64 * 1_000_000_000)
        );
    }

    #[test]
    fn a_huge_block_length_is_refused_without_reading_it() {
        let mut bytes = pcapng(TsResolution::Micro, 0, &[1]);
        let epb = bytes.len() - 4 - 16 - packet(LinkType::Ethernet).len().next_multiple_of(4) - 12;
        bytes[epb + 4..epb + 8].copy_from_slice(&0xffff_fff0u32.to_le_bytes());
        let recs = read(bytes);
        assert!(
            matches!(recs[..], [Err(FileError::BadBlockLength { len: 0xffff_fff0, .. })]),
            "{recs:?}"
        );
    }

    /// Another process truncating the file while it is read: a clear error,
    /// not SIGBUS.
    #[test]
    fn a_file_that_shrinks_while_read_ends_with_an_error() {
        let p = packet(LinkType::Ethernet);
        let mut w = PcapWriter::new(Vec::new(), 1, TsResolution::Micro, false, 65535).unwrap();
        // Larger than the reader's buffer, so most of it is read later.
        for n in 0..20_000 {
            w.write(t(n), &p, p.len() as u32).unwrap();
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("shrinking.pcap");
        std::fs::write(&path, w.into_inner()).unwrap();
        let mut f = CaptureFile::open(&path).unwrap();
        let mut records = f.records();
        assert!(matches!(records.next_packet(), Some(Ok(_))));
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(100_000)
            .unwrap();
        let mut last = None;
        while let Some(r) = records.next_packet() {
            last = Some(r.map(|_| ()));
        }
        let Some(Err(FileError::Shrank { size, .. })) = last else {
            panic!("ended with {last:?}")
        };
        assert!(size > 100_000);
    }

    #[test]
    fn devices_and_directories_are_refused_and_fifos_stream() {
        let e = CaptureFile::open(Path::new("/dev/zero")).err().unwrap();
        assert_eq!(e.to_string(), "/dev/zero is a character device, not a capture file");
        let e = CaptureFile::open(Path::new("/dev/urandom")).err().unwrap();
        assert!(e.to_string().contains("character device"), "{e}");
        let dir = tempfile::tempdir().unwrap();
        let e = CaptureFile::open(dir.path()).err().unwrap();
        assert!(e.to_string().contains("is a directory, not a capture file"), "{e}");

        let fifo = dir.path().join("fifo");
        let c = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let e = CaptureFile::open_waiting(&fifo, Duration::from_secs(1)).err().unwrap();
        assert!(
            e.to_string().contains("no process opened for writing within 1 s"),
            "{e}"
        );

        let p = packet(LinkType::Ethernet);
        let mut w = PcapWriter::new(Vec::new(), 1, TsResolution::Micro, false, 65535).unwrap();
        for n in 0..5_000 {
            w.write(t(n), &p, p.len() as u32).unwrap();
        }
        let bytes = w.into_inner();
        let writer = {
            let fifo = fifo.clone();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(200));
                std::io::Write::write_all(&mut std::fs::File::create(&fifo).unwrap(), &bytes).unwrap();
            })
        };
        let mut f = CaptureFile::open_waiting(&fifo, Duration::from_secs(30)).unwrap();
        assert_eq!(f.size(), None);
        let mut records = f.records();
        let mut n = 0;
        while let Some(r) = records.next_packet() {
            r.unwrap();
            n += 1;
        }
        assert_eq!(n, 5_000);
        writer.join().unwrap();
    }
}
