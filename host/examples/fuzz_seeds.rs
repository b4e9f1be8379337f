//! Writes the seed corpora of the fuzz targets (fuzz/corpus/<target>) from
//! the project's own captures (testdata/pcaps), packets crafted here, the
//! shipped configuration files and the built plugins:
//!
//! ```sh
//! cargo run -p net-gazer --example fuzz_seeds -- fuzz/corpus [PLUGIN_DIR]
//! ```
//!
//! The seeds are committed; run this again only to renew them. Inputs a
//! fuzzer crashed on go to fuzz/regressions/<target> by hand, never here.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use net_gazer::capture::file::CaptureFile;
use net_gazer::craft::{frame, PcapNgWriter, PcapWriter, TcpSpec, TsResolution};
use net_gazer::decode::{LinkType, TcpFlags, VlanStack};
use net_gazer::time::Timestamp;

fn main() -> anyhow::Result<()> {
    let args: Vec<PathBuf> = std::env::args_os().skip(1).map(PathBuf::from).collect();
    let out = args.first().cloned().unwrap_or_else(|| "fuzz/corpus".into());
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let seeds = Seeds { out };
    let pcaps: Vec<PathBuf> = {
        let mut v: Vec<PathBuf> = std::fs::read_dir(root.join("testdata/pcaps"))?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "pcap"))
            .collect();
        v.sort();
        v
    };
    captures(&seeds, &pcaps)?;
    frames(&seeds, &pcaps)?;
    tracker(&seeds)?;
    answers(&seeds)?;
    configs(&seeds, &root)?;
    ingest(&seeds, &pcaps)?;
    seeds.put("stored_values", "zeros", &[0u8; 64])?;
    seeds.put(
        "stored_values",
        "extremes",
        &[i64::MIN.to_le_bytes(), i64::MAX.to_le_bytes()].concat().repeat(4),
    )?;
    seeds.put("stored_values", "ones", &[0xffu8; 96])?;
    if let Some(dir) = args.get(1) {
        for name in ["demo", "filter", "testkit", "lazy"] {
            let found = [
                dir.join(format!("{name}.wasm")),
                dir.join(format!("testing/{name}.wasm")),
            ];
            if let Some(p) = found.iter().find(|p| p.is_file()) {
                seeds.put("plugin_file", name, &std::fs::read(p)?)?;
            }
        }
    }
    seeds.put("plugin_file", "core-module", b"\0asm\x01\0\0\0")?;
    seeds.put("plugin_file", "component-header", b"\0asm\x0d\0\x01\0")?;
    Ok(())
}

struct Seeds {
    out: PathBuf,
}

impl Seeds {
    fn put(&self, target: &str, name: &str, data: &[u8]) -> std::io::Result<()> {
        let dir = self.out.join(target);
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join(name), data)
    }
}

fn ip(s: &str) -> IpAddr {
    s.parse().expect("an address")
}

/// A handshake and a data segment, as IP packets, for IPv4 or IPv6.
fn handshake(v6: bool) -> Vec<Vec<u8>> {
    let (c, s) = if v6 {
        (ip("fd00::1"), ip("2001:db8::7"))
    } else {
        (ip("10.0.0.1"), ip("192.0.2.7"))
    };
    vec![
        TcpSpec::new(c, 40000, s, 443, TcpFlags::SYN)
            .seq(100)
            .syn_options(7)
            .ip_bytes(),
        TcpSpec::new(s, 443, c, 40000, TcpFlags::SYN | TcpFlags::ACK)
            .seq(900)
            .ack(101)
            .syn_options(8)
            .ip_bytes(),
        TcpSpec::new(c, 40000, s, 443, TcpFlags::ACK)
            .seq(101)
            .ack(901)
            .ip_bytes(),
        TcpSpec::new(c, 40000, s, 443, TcpFlags::ACK | TcpFlags::PSH)
            .seq(101)
            .ack(901)
            .payload(b"GET / HTTP/1.1\r\n\r\n")
            .ip_bytes(),
        TcpSpec::new(s, 443, c, 40000, TcpFlags::RST).seq(901).ip_bytes(),
    ]
}

fn t(n: i64) -> Timestamp {
    Timestamp::from_nanos(1_600_000_000_000_000_000 + n * 1_000_123)
}

/// The project's captures, and crafted ones in every format and link type.
fn captures(seeds: &Seeds, pcaps: &[PathBuf]) -> anyhow::Result<()> {
    for p in pcaps {
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("capture");
        seeds.put("capture_file", name, &std::fs::read(p)?)?;
    }
    let links = [
        LinkType::Ethernet,
        LinkType::LinuxSll,
        LinkType::LinuxSll2,
        LinkType::Raw,
        LinkType::Null,
    ];
    for big_endian in [false, true] {
        for (res, tag) in [(TsResolution::Micro, "us"), (TsResolution::Nano, "ns")] {
            for link in links {
                let mut w = PcapWriter::new(Vec::new(), link.to_linktype(), res, big_endian, 65535)?;
                for (i, packet) in handshake(link == LinkType::Raw).iter().enumerate() {
                    let f = frame(link, VlanStack::NONE, packet);
                    w.write(t(i as i64), &f, f.len() as u32)?;
                }
                seeds.put(
                    "capture_file",
                    &format!("crafted-{link:?}-{tag}-{}", if big_endian { "be" } else { "le" }),
                    &w.into_inner(),
                )?;
            }
        }
        let mut w = PcapNgWriter::new(Vec::new(), big_endian)?;
        let ids = [
            w.add_interface(1, TsResolution::Micro, 65535)?,
            w.add_interface(276, TsResolution::Nano, 65535)?,
            w.add_interface(101, TsResolution::PowerOfTwo(20), 65535)?,
        ];
        for (i, packet) in handshake(false).iter().enumerate() {
            let (id, link) = [
                (ids[0], LinkType::Ethernet),
                (ids[1], LinkType::LinuxSll2),
                (ids[2], LinkType::Raw),
            ][i % 3];
            let f = frame(link, VlanStack::NONE, packet);
            w.write(id, t(i as i64), &f, f.len() as u32)?;
        }
        seeds.put(
            "capture_file",
            &format!("crafted-pcapng-3-interfaces-{}", if big_endian { "be" } else { "le" }),
            &w.into_inner(),
        )?;
    }
    Ok(())
}

/// Frames for the decoder: the first byte picks the link type (index in
/// the target's table) and the mode, the rest is the frame.
fn frames(seeds: &Seeds, pcaps: &[PathBuf]) -> anyhow::Result<()> {
    const LINKS: [u32; 8] = [0, 1, 101, 113, 276, 239, 12, 108];
    let pick = |link: LinkType, mode: u8| -> u8 {
        let i = LINKS.iter().position(|&l| l == link.to_linktype()).unwrap_or(1) as u8;
        i | (mode << 3)
    };
    for p in pcaps {
        let name = p.file_stem().and_then(|n| n.to_str()).unwrap_or("capture").to_string();
        let mut file = CaptureFile::open(p)?;
        let mut records = file.records();
        let mut n = 0;
        while let Some(Ok(r)) = records.next_packet() {
            if n % 7 == 0 {
                let mut seed = vec![pick(r.link, (n / 7 % 4) as u8)];
                seed.extend_from_slice(r.data);
                seeds.put("decode", &format!("{name}-{n}"), &seed)?;
            }
            n += 1;
            if n > 70 {
                break;
            }
        }
    }
    let stack = |ids: &[u16]| {
        let mut v = VlanStack::NONE;
        for &id in ids {
            v.push(id);
        }
        v
    };
    let stacks = [stack(&[]), stack(&[42]), stack(&[100, 42])];
    for (s, vlan) in stacks.into_iter().enumerate() {
        for (i, packet) in handshake(s == 1).iter().enumerate() {
            for link in [LinkType::Ethernet, LinkType::LinuxSll2, LinkType::Raw] {
                let mut seed = vec![pick(link, (i % 4) as u8)];
                seed.extend_from_slice(&frame(link, vlan, packet));
                seeds.put("decode", &format!("crafted-{link:?}-vlan{s}-{i}"), &seed)?;
            }
        }
    }
    Ok(())
}

/// Segment operations in the tracker target's encoding (see
/// `net_gazer::fuzzing::tracker`): hosts 0-1 local, 2-3 remote, 4-5 IPv6;
/// ports 80, 443, 40000, 40001, 0, 65535.
fn tracker(seeds: &Seeds) -> anyhow::Result<()> {
    #[allow(clippy::too_many_arguments)]
    fn op(
        out: &mut Vec<u8>,
        step_ms: u16,
        from: (u8, u8),
        to: (u8, u8),
        flags: TcpFlags,
        seq: u8,
        ack: u8,
        payload: u8,
    ) {
        out.push(0x40 | 0x20 | 1); // ms steps, run timers, payload factor 1
        out.extend_from_slice(&step_ms.to_be_bytes());
        out.push(from.0 + 6 * from.1);
        out.push(to.0 + 6 * to.1);
        out.extend_from_slice(&flags.bits().to_be_bytes());
        out.push(64); // ttl
        out.extend_from_slice(&[0, 1]); // ip id
        out.push(seq);
        out.push(ack);
        out.extend_from_slice(&[0xfa, 0xf0]); // window
        out.push(payload);
        out.extend_from_slice(&1460u16.to_be_bytes());
        out.push(6); // wscale
        out.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0]); // timestamps
        out.push(0); // SACK blocks
    }
    let (c, s) = ((0u8, 2u8), (2u8, 1u8)); // 10.0.0.1:40000, 192.0.2.1:443
    let syn = TcpFlags::SYN;
    let synack = TcpFlags::SYN | TcpFlags::ACK;
    let ack = TcpFlags::ACK;
    let mut established = Vec::new();
    op(&mut established, 0, c, s, syn, 1, 0, 0);
    op(&mut established, 20, s, c, synack, 9, 2, 0);
    op(&mut established, 1, c, s, ack, 2, 10, 0);
    op(&mut established, 5, c, s, ack | TcpFlags::PSH, 2, 10, 100);
    op(&mut established, 5, c, s, ack | TcpFlags::PSH, 2, 10, 100); // retransmission
    op(&mut established, 5, s, c, ack | TcpFlags::FIN, 10, 102, 0);
    op(&mut established, 5, c, s, ack | TcpFlags::FIN, 102, 11, 0);
    seeds.put("tracker", "established", &[&[1u8][..], &established].concat())?;
    seeds.put(
        "tracker",
        "established-handshake-mode",
        &[&[0u8][..], &established].concat(),
    )?;
    let mut refused = Vec::new();
    op(&mut refused, 0, c, s, syn, 1, 0, 0);
    op(&mut refused, 1000, c, s, syn, 1, 0, 0);
    op(&mut refused, 3, s, c, TcpFlags::RST | ack, 0, 2, 0);
    seeds.put(
        "tracker",
        "refused-after-retransmission",
        &[&[0u8][..], &refused].concat(),
    )?;
    let mut reordered = Vec::new();
    op(&mut reordered, 0, s, c, synack, 9, 2, 0);
    op(&mut reordered, 0, c, s, syn, 1, 0, 0);
    op(&mut reordered, 60_000, c, s, syn, 1, 0, 0);
    seeds.put(
        "tracker",
        "reordered-and-unanswered",
        &[&[0u8][..], &reordered].concat(),
    )?;
    let mut scan = Vec::new();
    for port in 0..6 {
        op(&mut scan, 1, (3, 2), (0, port), syn, 1, 0, 0);
        op(&mut scan, 1, (0, port), (3, 2), TcpFlags::RST | ack, 0, 2, 0);
    }
    seeds.put("tracker", "inbound-scan", &[&[0u8][..], &scan].concat())?;
    let mut v6 = Vec::new();
    op(&mut v6, 0, (4, 2), (5, 1), syn, 1, 0, 0);
    op(&mut v6, 30, (5, 1), (4, 2), synack, 9, 2, 0);
    seeds.put("tracker", "ipv6", &[&[1u8][..], &v6].concat())?;
    Ok(())
}

/// Answers to traceroute probes: the first byte picks the parser (0 IPv4
/// with its header, 1 ICMPv6, 2 TCP over IPv6).
fn answers(seeds: &Seeds) -> anyhow::Result<()> {
    let probe_v4 = TcpSpec::new(ip("10.0.0.1"), 33000, ip("198.51.100.7"), 443, TcpFlags::SYN)
        .seq(0x1234_0011)
        .ttl(3)
        .ip_bytes();
    let icmp_v4 = |kind: u8, code: u8| -> Vec<u8> {
        let mut icmp = vec![kind, code, 0, 0, 0, 0, 0, 0];
        icmp.extend_from_slice(&probe_v4[..28]);
        let total = (20 + icmp.len()) as u16;
        let mut p = vec![0x45, 0, 0, 0, 0, 1, 0, 0, 250, 1, 0, 0, 192, 0, 2, 9, 10, 0, 0, 1];
        p[2..4].copy_from_slice(&total.to_be_bytes());
        p.extend_from_slice(&icmp);
        p
    };
    seeds.put(
        "trace_answer",
        "v4-time-exceeded",
        &[&[0u8][..], &icmp_v4(11, 0)].concat(),
    )?;
    seeds.put(
        "trace_answer",
        "v4-port-unreachable",
        &[&[0u8][..], &icmp_v4(3, 3)].concat(),
    )?;
    let synack = TcpSpec::new(
        ip("198.51.100.7"),
        443,
        ip("10.0.0.1"),
        33000,
        TcpFlags::SYN | TcpFlags::ACK,
    )
    .seq(7)
    .ack(0x1234_0012)
    .ip_bytes();
    seeds.put("trace_answer", "v4-synack", &[&[0u8][..], &synack].concat())?;
    let probe_v6 = TcpSpec::new(ip("fd00::1"), 33000, ip("2001:db8::7"), 443, TcpFlags::SYN)
        .seq(0x1234_0011)
        .ttl(3)
        .ip_bytes();
    let mut icmp6 = vec![3, 0, 0, 0, 0, 0, 0, 0];
    icmp6.extend_from_slice(&probe_v6[..48]);
    seeds.put("trace_answer", "v6-time-exceeded", &[&[1u8][..], &icmp6].concat())?;
    let mut unreachable6 = vec![1, 4, 0, 0, 0, 0, 0, 0];
    unreachable6.extend_from_slice(&probe_v6[..48]);
    seeds.put(
        "trace_answer",
        "v6-port-unreachable",
        &[&[1u8][..], &unreachable6].concat(),
    )?;
    let rst6 = TcpSpec::new(
        ip("2001:db8::7"),
        443,
        ip("fd00::1"),
        33000,
        TcpFlags::RST | TcpFlags::ACK,
    )
    .ack(0x1234_0012)
    .tcp_bytes();
    seeds.put("trace_answer", "v6-rst", &[&[2u8][..], &rst6].concat())?;
    Ok(())
}

/// The shipped configuration files and variants of them.
fn configs(seeds: &Seeds, root: &Path) -> anyhow::Result<()> {
    seeds.put(
        "sensor_config",
        "shipped",
        &std::fs::read(root.join("etc/net-gazer/net-gazer.toml"))?,
    )?;
    seeds.put(
        "sensor_config",
        "collector-plugins-trace",
        br#"[capture]
mode = "quality"
filter = "not port 22"
[track]
local_networks = ["10.0.0.0/8", "fd00::/8"]
max_connections = 1000
unanswered_timeout = "1m30s"
[output]
jsonl = "/tmp/events.jsonl"
queue_size = 1024
stop_timeout = "5s"
[output.collector]
url = "http://127.0.0.1:8080"
token = "0123456789abcdef"
batch_size = 500
spool_max_mb = 16
[plugins]
dir = "/etc/net-gazer/plugins"
order = ["geoip", "filter"]
[plugins.geoip]
dirs = ["/usr/share/GeoIP"]
city_db = "City.mmdb"
timeout_ms = 50
[trace]
protocol = "udp"
max_ttl = 20
rate = 100
exclude = ["192.0.2.0/24"]
"#,
    )?;
    seeds.put("sensor_config", "empty", b"")?;
    seeds.put(
        "collector_config",
        "shipped",
        &std::fs::read(root.join("etc/net-gazer/net-gazer-collector.toml"))?,
    )?;
    seeds.put(
        "collector_config",
        "sensors-falkordb-limits",
        br#"listen = "127.0.0.1:0"
database = "/tmp/x.sqlite"
body_limit_mb = 4
max_connections = 64
header_timeout = "5s"
location = [51.5, -0.12]
[sensors.gw1]
token = "0123456789abcdef"
location = [48.8, 2.3]
[falkordb]
url = "redis://127.0.0.1:6379"
batch = 10
"#,
    )?;
    Ok(())
}

/// Batch bodies as a sensor sends them: the events of the project's
/// captures (quality mode), numbered, ten to a batch; with a route and a
/// scan event of the collector's tests.
fn ingest(seeds: &Seeds, pcaps: &[PathBuf]) -> anyhow::Result<()> {
    use net_gazer::config::Config;
    use net_gazer::output::delivery as collector;
    use net_gazer::track::Mode;
    let mut seq = 0u64;
    for p in pcaps {
        let mut config = Config::default();
        config.capture.mode = Mode::Quality;
        let mut file = CaptureFile::open(p)?;
        let events = net_gazer::pipeline::events_of(config.track_config(), config.interest(), &mut file);
        let name = p.file_stem().and_then(|n| n.to_str()).unwrap_or("capture");
        let mut scratch = Vec::new();
        for (i, chunk) in events.chunks(10).enumerate().take(3) {
            let mut numbered = Vec::new();
            for item in chunk {
                seq += 1;
                let mut e = Vec::new();
                collector::append_numbered(&mut e, seq, item, &mut scratch)?;
                numbered.push(e);
            }
            let body = collector::batch_body("gw1", numbered.iter().map(Vec::as_slice))?;
            seeds.put("ingest", &format!("{name}-{i}"), &body)?;
        }
    }
    seeds.put(
        "ingest",
        "route-and-scan",
        br#"{"sensor": "gw1", "events": [
{"kind": "route", "seq": 1, "ts_us": 5000000, "id": 1, "handshake_id": 1, "src_ip": "10.0.0.254", "dst_ip": "192.0.2.7",
 "protocol": "tcp", "reached": true, "hop_count": 3, "changed": false, "hops": [
 {"ttl": 1, "addr": "10.0.0.1", "sent": 3, "received": 3, "rtt_avg_us": 100.0},
 {"ttl": 2, "addr": "198.18.0.1", "sent": 3, "received": 3, "rtt_avg_us": 900.0},
 {"ttl": 3, "addr": "192.0.2.7", "sent": 3, "received": 3, "rtt_avg_us": 1000.0}],
 "tags": {"hop.2.geo.country": "DE", "hop.2.asn": "3320"}},
{"kind": "scan", "seq": 2, "ts_us": 1700000000000009, "src_ip": "203.0.113.5", "scan_type": "port_scan",
 "phase": "detected", "target_ip": "10.0.0.1", "distinct": 15},
{"kind": "stats", "seq": 3, "ts_us": 1700000000000010, "packets": 10}]}"#,
    )?;
    Ok(())
}
