//! Generates the benchmark captures (docs/benchmarks.md).
//!
//! ```text
//! gen_capture mix OUT.pcap [PACKETS]   # handshakes among bulk data, IPv4 + IPv6
//! gen_capture flood OUT.pcap [SOURCES] # a spoofed SYN flood, one SYN per source
//! gen_capture filter                   # the handshake-mode kernel filter
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
        let v6 = conn % 4 == 0;
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
        if conn % 50 == 0 {
            continue;
        }
        if conn % 25 == 0 {
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
    let usage = "usage: gen_capture mix|flood OUT.pcap [COUNT] | gen_capture filter";
    match args.get(1).map(String::as_str) {
        Some("filter") => {
            println!("{}", filter::expression(Mode::Handshake, true, None));
            Ok(())
        }
        Some(kind @ ("mix" | "flood")) => {
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
            if kind == "mix" {
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
