//! pcap and pcap-ng writers, in any byte order and resolution, so tests can
//! make every variant the readers must accept.

use std::io::{self, Write};

use crate::time::Timestamp;

/// Timestamp resolution of a capture file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TsResolution {
    Micro,
    Nano,
    /// pcap-ng `if_tsresol` with the high bit set: 2^-n seconds.
    PowerOfTwo(u8),
    /// pcap-ng `if_tsresol` without it: 10^-n seconds (0: whole seconds).
    PowerOfTen(u8),
}

impl TsResolution {
    fn units_per_sec(self) -> u128 {
        match self {
            TsResolution::Micro => 1_000_000,
            TsResolution::Nano => 1_000_000_000,
            TsResolution::PowerOfTwo(n) => 1u128 << n,
            TsResolution::PowerOfTen(n) => 10u128.pow(u32::from(n)),
        }
    }

    fn split(self, ts: Timestamp) -> (u64, u64) {
        let ns = ts.as_nanos() as i128;
        let secs = ns.div_euclid(1_000_000_000);
        let frac = ns.rem_euclid(1_000_000_000) as u128 * self.units_per_sec() / 1_000_000_000;
        (secs as u64, frac as u64)
    }
}

/// Classic pcap (one link type per file).
pub struct PcapWriter<W: Write> {
    out: W,
    big_endian: bool,
    resolution: TsResolution,
}

impl<W: Write> PcapWriter<W> {
    pub fn new(
        mut out: W,
        linktype: u32,
        resolution: TsResolution,
        big_endian: bool,
        snaplen: u32,
    ) -> io::Result<Self> {
        let magic: u32 = match resolution {
            TsResolution::Nano => 0xa1b2_3c4d,
            _ => 0xa1b2_c3d4,
        };
        let mut h = Vec::with_capacity(24);
        let put32 =
            |h: &mut Vec<u8>, v: u32| h.extend_from_slice(&if big_endian { v.to_be_bytes() } else { v.to_le_bytes() });
        put32(&mut h, magic);
        let put16 =
            |h: &mut Vec<u8>, v: u16| h.extend_from_slice(&if big_endian { v.to_be_bytes() } else { v.to_le_bytes() });
        put16(&mut h, 2);
        put16(&mut h, 4);
        put32(&mut h, 0);
        put32(&mut h, 0);
        put32(&mut h, snaplen);
        put32(&mut h, linktype);
        out.write_all(&h)?;
        Ok(PcapWriter {
            out,
            big_endian,
            resolution,
        })
    }

    /// Writes a record; `orig_len` may exceed `data.len()` (a snaplen cut).
    pub fn write(&mut self, ts: Timestamp, data: &[u8], orig_len: u32) -> io::Result<()> {
        let (secs, frac) = self.resolution.split(ts);
        for v in [secs as u32, frac as u32, data.len() as u32, orig_len] {
            let b = if self.big_endian {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            };
            self.out.write_all(&b)?;
        }
        self.out.write_all(data)
    }

    pub fn into_inner(self) -> W {
        self.out
    }
}

/// pcap-ng with any number of interfaces, each with its own link type and
/// timestamp resolution.
pub struct PcapNgWriter<W: Write> {
    out: W,
    big_endian: bool,
    interfaces: Vec<TsResolution>,
}

impl<W: Write> PcapNgWriter<W> {
    pub fn new(out: W, big_endian: bool) -> io::Result<Self> {
        let mut w = PcapNgWriter {
            out,
            big_endian,
            interfaces: Vec::new(),
        };
        let mut body = Vec::new();
        w.put32(&mut body, 0x1a2b_3c4d);
        w.put16(&mut body, 1);
        w.put16(&mut body, 0);
        body.extend_from_slice(&[0xff; 8]); // section length unknown
        w.block(0x0a0d_0d0a, &body)?;
        Ok(w)
    }

    fn put16(&self, b: &mut Vec<u8>, v: u16) {
        b.extend_from_slice(&if self.big_endian {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        });
    }
    fn put32(&self, b: &mut Vec<u8>, v: u32) {
        b.extend_from_slice(&if self.big_endian {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        });
    }

    fn block(&mut self, kind: u32, body: &[u8]) -> io::Result<()> {
        let padded = (body.len() + 3) & !3;
        let total = (12 + padded) as u32;
        let mut b = Vec::with_capacity(total as usize);
        self.put32(&mut b, kind);
        self.put32(&mut b, total);
        b.extend_from_slice(body);
        b.resize(8 + padded, 0);
        self.put32(&mut b, total);
        self.out.write_all(&b)
    }

    /// Adds an interface; returns its id.
    pub fn add_interface(&mut self, linktype: u32, resolution: TsResolution, snaplen: u32) -> io::Result<u32> {
        self.add_interface_offset(linktype, resolution, snaplen, 0)
    }

    /// Adds an interface whose timestamps count from `tsoffset` seconds
    /// (`if_tsoffset`, written when not 0); returns its id.
    pub fn add_interface_offset(
        &mut self,
        linktype: u32,
        resolution: TsResolution,
        snaplen: u32,
        tsoffset: i64,
    ) -> io::Result<u32> {
        let mut body = Vec::new();
        self.put16(&mut body, linktype as u16);
        self.put16(&mut body, 0);
        self.put32(&mut body, snaplen);
        let tsresol = match resolution {
            TsResolution::Micro => None,
            TsResolution::Nano => Some(9u8),
            TsResolution::PowerOfTwo(n) => Some(0x80 | n),
            TsResolution::PowerOfTen(n) => Some(n & 0x7f),
        };
        if let Some(r) = tsresol {
            self.put16(&mut body, 9); // if_tsresol
            self.put16(&mut body, 1);
            body.extend_from_slice(&[r, 0, 0, 0]);
        }
        if tsoffset != 0 {
            self.put16(&mut body, 14); // if_tsoffset
            self.put16(&mut body, 8);
            body.extend_from_slice(&if self.big_endian {
                tsoffset.to_be_bytes()
            } else {
                tsoffset.to_le_bytes()
            });
        }
        self.put16(&mut body, 0); // opt_endofopt
        self.put16(&mut body, 0);
        self.block(1, &body)?;
        self.interfaces.push(resolution);
        Ok(self.interfaces.len() as u32 - 1)
    }

    /// Writes an Enhanced Packet Block.
    pub fn write(&mut self, interface: u32, ts: Timestamp, data: &[u8], orig_len: u32) -> io::Result<()> {
        let resolution = self
            .interfaces
            .get(interface as usize)
            .copied()
            .unwrap_or(TsResolution::Micro);
        let (secs, frac) = resolution.split(ts);
        let units = (secs as u128 * resolution.units_per_sec() + frac as u128) as u64;
        self.write_ticks(interface, units, data, orig_len)
    }

    /// Writes an Enhanced Packet Block whose timestamp is `ticks` of the
    /// interface's resolution, whatever they mean (any 64-bit value).
    pub fn write_ticks(&mut self, interface: u32, ticks: u64, data: &[u8], orig_len: u32) -> io::Result<()> {
        let mut body = Vec::with_capacity(20 + data.len());
        self.put32(&mut body, interface);
        self.put32(&mut body, (ticks >> 32) as u32);
        self.put32(&mut body, ticks as u32);
        self.put32(&mut body, data.len() as u32);
        self.put32(&mut body, orig_len);
        body.extend_from_slice(data);
        self.block(6, &body)
    }

    pub fn into_inner(self) -> W {
        self.out
    }
}
