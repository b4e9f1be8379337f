//! The bodies of the fuzz targets (`fuzz/fuzz_targets/`), kept here so that
//! `cargo test` replays every target's corpus and every input a fuzzer
//! ever crashed on, on the stable toolchain (`host/tests/fuzz_corpus.rs`;
//! docs/reliability.md). Each takes any bytes and must never panic, hang
//! or allocate without bound; where the code has two readings of the same
//! input (the decode fast path and the full decode), they must agree.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;

use crate::capture::file::CaptureFile;
use crate::decode::{self, Interest, LinkType, Segment, TcpFlags, TcpOptions, VlanStack};
use crate::time::Timestamp;
use crate::track::{LocalNetworks, Mode, Tracker};

/// A pcap or pcap-ng file through what a replay does with it: every
/// record read, decoded, and tracked (quality mode) at its own time, the
/// events serialised; then the final flush.
pub fn capture_file(data: &[u8]) {
    let Ok(mut file) = CaptureFile::from_vec(Path::new("fuzz.pcap"), data.to_vec()) else {
        return;
    };
    let mut cfg = crate::config::Config::default().track_config();
    cfg.mode = Mode::Quality;
    cfg.max_connections = 256;
    let mut tracker = Tracker::new(cfg, LocalNetworks::private_ranges());
    let mut last = Timestamp::ZERO;
    let mut records = file.records();
    let mut n = 0usize;
    while let Some(r) = records.next_packet() {
        n += 1;
        assert!(n <= data.len(), "more records than bytes: the reader does not advance");
        let Ok(p) = r else { continue };
        last = last.max(p.ts);
        if let Ok(seg) = decode::decode(p.link, p.data, Interest::ALL, |_| ()) {
            tracker.handle_timeout(p.ts);
            tracker.handle_segment(p.ts, &seg);
            while let Some(e) = tracker.poll_event() {
                check(&e);
            }
        }
    }
    tracker.flush(last);
    while let Some(e) = tracker.poll_event() {
        check(&e);
    }
}

/// One frame: the first byte picks the link type and the mode; the fast
/// path must skip only what the full decode would skip as outside the mode.
pub fn decode(data: &[u8]) {
    let Some((&pick, frame)) = data.split_first() else {
        return;
    };
    const LINKS: [u32; 8] = [0, 1, 101, 113, 276, 239, 12, 108];
    let link = LinkType::from_linktype(LINKS[usize::from(pick & 7)]);
    let interest = Interest {
        all_tcp: pick & 0x08 != 0,
        pure_acks: pick & 0x10 != 0,
    };
    let full = decode::decode_all(link, frame, interest, |_| ());
    if decode::skipped_fast(link, frame, interest) {
        assert_eq!(
            full,
            Err(decode::Skip::Ignored(decode::Ignored::OutsideMode)),
            "the fast path skipped a frame the full decode does not"
        );
    }
}

/// Reads bytes in order, zero once they run out.
struct Bytes<'a>(&'a [u8]);

impl Bytes<'_> {
    fn u8(&mut self) -> u8 {
        match self.0.split_first() {
            Some((&b, rest)) => {
                self.0 = rest;
                b
            }
            None => 0,
        }
    }

    fn u16(&mut self) -> u16 {
        u16::from_be_bytes([self.u8(), self.u8()])
    }

    fn u32(&mut self) -> u32 {
        u32::from_be_bytes([self.u8(), self.u8(), self.u8(), self.u8()])
    }

    fn done(&self) -> bool {
        self.0.is_empty()
    }
}

/// The tracker fed an arbitrary sequence of segments among a few hosts and
/// ports (so that they meet), with time moving in arbitrary steps (back
/// too, as reordered captures do), timeouts and a final flush; its table
/// must stay within its bound and every event must be well-formed.
pub fn tracker(data: &[u8]) {
    let mut b = Bytes(data);
    let mode = if b.u8() & 1 == 0 {
        Mode::Handshake
    } else {
        Mode::Quality
    };
    let mut cfg = crate::config::Config::default().track_config();
    cfg.mode = mode;
    cfg.max_connections = 64;
    cfg.max_orphans = 16;
    cfg.scan.max_sources = 16;
    cfg.scan.max_tracked = 32;
    cfg.scan.port_threshold = 3;
    cfg.scan.host_threshold = 3;
    let local = LocalNetworks::new(vec![
        "10.0.0.0/8".parse().expect("a network"),
        "fd00::/8".parse().expect("a network"),
    ]);
    let mut tracker = Tracker::new(cfg, local);
    let hosts: [IpAddr; 6] = [
        Ipv4Addr::new(10, 0, 0, 1).into(),
        Ipv4Addr::new(10, 0, 0, 2).into(),
        Ipv4Addr::new(192, 0, 2, 1).into(),
        Ipv4Addr::new(198, 51, 100, 7).into(),
        Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 1).into(),
        Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1).into(),
    ];
    let ports = [80u16, 443, 40000, 40001, 0, 65535];
    let mut now = Timestamp::from_nanos(1_600_000_000_000_000_000);
    while !b.done() {
        let op = b.u8();
        // Time: mostly small steps forward, sometimes back, sometimes far.
        let step = i64::from(b.u16());
        let delta = match op >> 6 {
            0 => step * 1_000,
            1 => step * 1_000_000,
            2 => -(step * 1_000),
            _ => step * 1_000_000_000,
        };
        now = Timestamp::from_nanos(now.as_nanos().saturating_add(delta));
        if op & 0x20 != 0 {
            tracker.handle_timeout(now);
        }
        let (a, z) = (b.u8(), b.u8());
        let (src, dst) = (hosts[usize::from(a % 6)], hosts[usize::from(z % 6)]);
        if src.is_ipv4() != dst.is_ipv4() {
            continue;
        }
        let flags = TcpFlags::from_bits(b.u16());
        let seg = Segment {
            src,
            dst,
            src_port: ports[usize::from(a / 6 % 6)],
            dst_port: ports[usize::from(z / 6 % 6)],
            vlan: VlanStack::NONE,
            ttl: b.u8(),
            ip_id: b.u16(),
            seq: u32::from(b.u8()),
            ack: u32::from(b.u8()),
            flags,
            window: b.u16(),
            checksum: 0,
            payload_len: u32::from(b.u8()) * u32::from(op & 0x1f),
            options: TcpOptions {
                mss: Some(b.u16()).filter(|m| m % 2 == 0),
                wscale: Some(b.u8()).filter(|w| w & 1 == 0),
                sack_permitted: op & 1 == 0,
                timestamps: Some((b.u32(), b.u32())).filter(|_| op & 2 == 0),
                sack_blocks: b.u8() % 5,
            },
        };
        tracker.handle_segment(now, &seg);
        assert!(tracker.table_size() <= 64, "the table outgrew max_connections");
        while let Some(e) = tracker.poll_event() {
            check(&e);
        }
    }
    tracker.flush(now);
    while let Some(e) = tracker.poll_event() {
        check(&e);
    }
}

/// What every event must be, whatever the input.
fn check(e: &crate::event::Event) {
    use crate::event::Event;
    if let Event::Handshake(h) = e {
        for rtt in [h.rtt_last_syn_us, h.rtt_first_syn_us, h.client_rtt_us]
            .into_iter()
            .flatten()
        {
            assert!(rtt.is_finite(), "a non-finite RTT: {h:?}");
        }
        assert!(h.syn_count >= 1, "a handshake without a SYN: {h:?}");
    }
    let mut line = Vec::new();
    crate::output::json::append_tagged(&mut line, &crate::event::Tagged::new(e.clone())).expect("serialises");
    assert!(
        serde_json::from_slice::<serde_json::Value>(&line).is_ok(),
        "the JSON line does not parse"
    );
}

/// An answer to a traceroute probe, as the raw sockets hand it over: the
/// first byte picks the parser.
pub fn trace_answer(data: &[u8]) {
    use crate::trace::wire;
    let Some((&pick, packet)) = data.split_first() else {
        return;
    };
    let from = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, u16::from(pick));
    let answer = match pick % 3 {
        0 => wire::parse_ipv4(packet),
        1 => wire::parse_icmpv6(from, packet),
        _ => wire::parse_tcpv6(from, packet),
    };
    if let Some(a) = answer {
        let _ = (a.from_destination(), a.ends_path(), format!("{a:?}"));
    }
}

/// The sensor's configuration file: whatever `check-config` accepts must
/// be usable at run time (every deadline computable, every table within
/// its range) and print back as the same settings.
pub fn sensor_config(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let Ok(config) = crate::config::Config::parse(&text) else {
        return;
    };
    net_gazer_common::range::assert_usable(&config.bounds());
    let again = crate::config::Config::parse(&config.to_toml()).expect("the printed configuration parses");
    assert_eq!(again, config, "the printed configuration is the same");
    // The per-stage settings are derived without overflow.
    let _ = (config.track_config(), config.trace.engine(), config.trace.trigger());
}

/// A plugin file, as `plugins check` reads it: refused with a reason, or
/// described, never a crash.
pub fn plugin_file(data: &[u8]) {
    static LOADER: std::sync::OnceLock<net_gazer_common::sync::Lock<crate::plugin::Loader>> =
        std::sync::OnceLock::new();
    let loader = LOADER.get_or_init(|| {
        let mut l = crate::plugin::Loader::new(None).expect("the engine starts");
        l.strict_permissions = false;
        net_gazer_common::sync::Lock::new(l)
    });
    let mut loader = loader.lock();
    let _ = loader.prepare_bytes("fuzz", Path::new("fuzz.wasm"), data);
}
