//! Generates the benchmark captures (docs/benchmarks.md).
//!
//! ```text
//! gen_capture mix OUT.pcap [PACKETS]   # handshakes among bulk data, IPv4 + IPv6
//! gen_capture flood OUT.pcap [SOURCES] # a spoofed SYN flood, one SYN per source
//! gen_capture filter                   # the handshake-mode kernel filter
//! gen_capture sample OUT.pcap          # plugins/sample.pcap, for plugin authors
//! ```
//! Packets are cut at a 96-byte snap length, as a header-only capture would
//! be; their IP lengths keep the full size.

use std::io::BufWriter;
use std::net::IpAddr;

use net_gazer::capture::filter;
use net_gazer::craft::{frame, PcapWriter, TcpSpec, TsResolution};
use net_gazer::decode::{LinkType, TcpFlags, VlanStack};
use net_gazer::time::Timestamp;
use net_gazer::track::Mode;

const SNAPLEN: usize = 96;
const SYN: TcpFlags = TcpFlags::SYN;
const ACK: TcpFlags = TcpFlags::ACK;

struct Out {
    w: PcapWriter<BufWriter<std::fs::File>>,
    packets: u64,
}

impl Out {
    fn put(&mut self, ts: Timestamp, spec: &TcpSpec) -> std::io::Result<()> {
        let f = frame(LinkType::Ethernet, VlanStack::NONE, &spec.ip_bytes());
        let cut = f.len().min(SNAPLEN);
        self.packets += 1;
        self.w.write(ts, &f[..cut], f.len() as u32)
    }
}

fn addr(v6: bool, net: u8, host: u32) -> IpAddr {
    if v6 {
        let mut o = [0u8; 16];
        o[0] = 0xfd;
        o[1] = net;
        o[12..].copy_from_slice(&host.to_be_bytes());
        IpAddr::from(o)
    } else {
        let h = host.to_be_bytes();
        IpAddr::from([
            if net == 0 { 10 } else { 198 },
            if net == 0 { h[1] } else { 51 },
            h[2],
            h[3],
        ])
    }
}

/// Connections of ~66 packets: handshake, 40 data segments down with 20
/// ACKs up, FIN exchange; every 25th refused, every 50th unanswered.
fn mix(out: &mut Out, target: u64) -> std::io::Result<()> {
    let mut t_us: i64 = 1_700_000_000_000_000;
    let mut conn: u32 = 0;
    while out.packets < target {
        conn += 1;
        let v6 = conn.is_multiple_of(4);
        let client = addr(v6, 0, conn % 60_000 + 1);
        let server = addr(v6, 1, conn % 997 + 1);
        let cport = 10_000 + (conn % 50_000) as u16;
        let sport = [443u16, 80, 22, 8080][conn as usize % 4];
        let isn = conn.wrapping_mul(2_654_435_761);
        let sisn = isn.rotate_left(13);
        let ts = |t: &mut i64, step: i64| {
            *t += step;
            Timestamp::from_micros(*t)
        };
        out.put(
            ts(&mut t_us, 3),
            &TcpSpec::new(client, cport, server, sport, SYN)
                .seq(isn)
                .syn_options(conn),
        )?;
        if conn.is_multiple_of(50) {
            continue;
        }
        if conn.is_multiple_of(25) {
            let rst = TcpSpec::new(server, sport, client, cport, TcpFlags::RST | ACK).ack(isn.wrapping_add(1));
            out.put(ts(&mut t_us, 40), &rst)?;
            continue;
        }
        let synack = TcpSpec::new(server, sport, client, cport, SYN | ACK)
            .seq(sisn)
            .ack(isn.wrapping_add(1))
            .syn_options(7);
        out.put(ts(&mut t_us, 40), &synack)?;
        out.put(
            ts(&mut t_us, 2),
            &TcpSpec::new(client, cport, server, sport, ACK)
                .seq(isn.wrapping_add(1))
                .ack(sisn.wrapping_add(1)),
        )?;
        let mut down = sisn.wrapping_add(1);
        for i in 0..40u32 {
            let mut d = TcpSpec::new(server, sport, client, cport, ACK)
                .seq(down)
                .ack(isn.wrapping_add(1))
                .payload(&[0u8; 8]);
            d.missing_payload = 1440;
            out.put(ts(&mut t_us, 1), &d)?;
            down = down.wrapping_add(1448);
            if i % 2 == 1 {
                out.put(
                    ts(&mut t_us, 1),
                    &TcpSpec::new(client, cport, server, sport, ACK)
                        .seq(isn.wrapping_add(1))
                        .ack(down),
                )?;
            }
        }
        let fin = TcpFlags::FIN | ACK;
        out.put(
            ts(&mut t_us, 1),
            &TcpSpec::new(server, sport, client, cport, fin)
                .seq(down)
                .ack(isn.wrapping_add(1)),
        )?;
        out.put(
            ts(&mut t_us, 1),
            &TcpSpec::new(client, cport, server, sport, fin)
                .seq(isn.wrapping_add(1))
                .ack(down.wrapping_add(1)),
        )?;
        out.put(
            ts(&mut t_us, 1),
            &TcpSpec::new(server, sport, client, cport, ACK)
                .seq(down.wrapping_add(1))
                .ack(isn.wrapping_add(2)),
        )?;
    }
    Ok(())
}

/// A dozen handshakes for plugin authors to replay (plugins/sample.pcap,
/// docs/plugins.md): from 10.0.0.0/24 to 192.0.2.0/24 and 198.51.100.0/24,
/// to ports 443 (RTTs of 2, 25, 80 and 160 ms) and 80 (3), refused (22 and
/// 8080), unanswered (443, the SYN sent three times), one inbound to 22,
/// and one IPv6 to 443 (40 s after the rest, so the unanswered one times
/// out within the capture); every answered connection closed with FINs.
fn sample(out: &mut Out) -> std::io::Result<()> {
    // (client, server, port, RTT ms: 0 refused, -1 unanswered)
    let plan: [(&str, &str, u16, i64); 12] = [
        ("10.0.0.7", "198.51.100.50", 443, -1),
        ("10.0.0.5", "192.0.2.10", 443, 2),
        ("10.0.0.5", "192.0.2.11", 443, 25),
        ("10.0.0.6", "198.51.100.20", 443, 80),
        ("10.0.0.7", "198.51.100.21", 443, 160),
        ("10.0.0.5", "192.0.2.30", 80, 12),
        ("10.0.0.6", "192.0.2.31", 80, 40),
        ("10.0.0.8", "198.51.100.32", 80, 95),
        ("10.0.0.5", "192.0.2.40", 22, 0),
        ("10.0.0.6", "198.51.100.41", 8080, 0),
        ("203.0.113.9", "10.0.0.5", 22, 3),
        ("fd00:1::5", "2001:db8:2::10", 443, 30),
    ];
    let base: i64 = 1_764_900_000_000_000;
    for (i, &(client, server, port, rtt_ms)) in plan.iter().enumerate() {
        let (client, server): (IpAddr, IpAddr) = (client.parse().unwrap(), server.parse().unwrap());
        let cport = 40_000 + i as u16;
        let isn = 1_000_000 * (i as u32 + 1);
        let sisn = isn.rotate_left(7);
        // The last one 40 s later: the unanswered SYN's timeout (30 s by
        // default) passes within the capture.
        let t0 = base
            + if i + 1 == plan.len() {
                40_000_000
            } else {
                i as i64 * 500_000
            };
        let at = |us: i64| Timestamp::from_micros(t0 + us);
        let syn = TcpSpec::new(client, cport, server, port, SYN)
            .seq(isn)
            .syn_options(i as u32);
        out.put(at(0), &syn)?;
        match rtt_ms {
            -1 => {
                // Retransmitted after 1 and 3 s; never answered.
                out.put(at(1_000_000), &syn)?;
                out.put(at(3_000_000), &syn)?;
                continue;
            }
            0 => {
                let rst = TcpSpec::new(server, port, client, cport, TcpFlags::RST | ACK).ack(isn.wrapping_add(1));
                out.put(at(300), &rst)?;
                continue;
            }
            _ => {}
        }
        let rtt = rtt_ms * 1_000;
        let synack = TcpSpec::new(server, port, client, cport, SYN | ACK)
            .seq(sisn)
            .ack(isn.wrapping_add(1))
            .syn_options(7);
        out.put(at(rtt), &synack)?;
        let (c, s) = (isn.wrapping_add(1), sisn.wrapping_add(1));
        out.put(
            at(rtt + 150),
            &TcpSpec::new(client, cport, server, port, ACK).seq(c).ack(s),
        )?;
        let fin = TcpFlags::FIN | ACK;
        out.put(
            at(rtt + 5_000),
            &TcpSpec::new(client, cport, server, port, fin).seq(c).ack(s),
        )?;
        out.put(
            at(2 * rtt + 5_000),
            &TcpSpec::new(server, port, client, cport, fin)
                .seq(s)
                .ack(c.wrapping_add(1)),
        )?;
        out.put(
            at(2 * rtt + 5_150),
            &TcpSpec::new(client, cport, server, port, ACK)
                .seq(c.wrapping_add(1))
                .ack(s.wrapping_add(1)),
        )?;
    }
    Ok(())
}

/// One SYN from each of `sources` spoofed addresses to one local server.
fn flood(out: &mut Out, sources: u32) -> std::io::Result<()> {
    let server: IpAddr = "10.0.0.80".parse().expect("literal");
    for i in 0..sources {
        let src = IpAddr::from((0x2000_0000u32 + i).to_be_bytes());
        let syn = TcpSpec::new(src, 1024 + (i % 60_000) as u16, server, 80, SYN).seq(i);
        out.put(Timestamp::from_micros(1_700_000_000_000_000 + i as i64), &syn)?;
    }
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: gen_capture mix|flood OUT.pcap [COUNT] | gen_capture sample OUT.pcap | gen_capture filter";
    match args.get(1).map(String::as_str) {
        Some("filter") => {
            println!("{}", filter::expression(Mode::Handshake, true, None));
            Ok(())
        }
        Some(kind @ ("mix" | "flood" | "sample")) => {
            let path = args.get(2).ok_or(usage)?;
            let file = std::fs::File::create(path)?;
            let w = PcapWriter::new(
                BufWriter::with_capacity(1 << 20, file),
                1,
                TsResolution::Micro,
                false,
                SNAPLEN as u32,
            )?;
            let mut out = Out { w, packets: 0 };
            if kind == "sample" {
                sample(&mut out)?;
            } else if kind == "mix" {
                let n = args.get(3).map(|s| s.parse()).transpose()?.unwrap_or(5_000_000);
                mix(&mut out, n)?;
            } else {
                let n = args.get(3).map(|s| s.parse()).transpose()?.unwrap_or(1_000_000);
                flood(&mut out, n)?;
            }
            eprintln!("{path}: {} packets", out.packets);
            Ok(())
        }
        _ => Err(usage.into()),
    }
}
