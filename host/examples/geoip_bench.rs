//! The GeoIP benchmark's native side (scripts/bench-geoip.sh): picks N
//! addresses inside the networks of a MaxMind source-data JSON file, writes
//! a capture with one outbound handshake to each (for a replay through the
//! geoip plugin), and times the same lookups natively with `maxminddb`
//! (City and ASN records decoded, as the plugin does).
//!
//!   geoip_bench CITY.mmdb ASN.mmdb SOURCE.json OUT.pcap [N]

use std::io::BufWriter;
use std::net::IpAddr;
use std::time::Instant;

use maxminddb::{geoip2, Reader};
use net_gazer::craft::{frame, PcapWriter, TcpSpec, TsResolution};
use net_gazer::decode::{LinkType, TcpFlags, VlanStack};
use net_gazer::time::Timestamp;

fn addresses(source: &str, n: usize) -> Result<Vec<IpAddr>, Box<dyn std::error::Error>> {
    let list: Vec<serde_json::Map<String, serde_json::Value>> =
        serde_json::from_str(&std::fs::read_to_string(source)?)?;
    let nets: Vec<ipnet::IpNet> = list
        .iter()
        .flat_map(|m| m.keys())
        .filter_map(|k| k.parse().ok())
        .filter(|n: &ipnet::IpNet| !matches!(n, ipnet::IpNet::V6(v6) if v6.network().segments()[0] == 0))
        .collect();
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    Ok((0..n)
        .map(|i| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let net = nets[i % nets.len()];
            match net {
                ipnet::IpNet::V4(v4) => {
                    let span = 1u64 << (32 - v4.prefix_len());
                    IpAddr::V4(std::net::Ipv4Addr::from(
                        (u32::from(v4.network()) as u64 + x % span) as u32,
                    ))
                }
                ipnet::IpNet::V6(v6) => {
                    let host_bits = 128 - v6.prefix_len() as u32;
                    let offset = if host_bits >= 64 {
                        x as u128
                    } else {
                        (x % (1u64 << host_bits)) as u128
                    };
                    IpAddr::V6(std::net::Ipv6Addr::from(u128::from(v6.network()).wrapping_add(offset)))
                }
            }
        })
        .collect())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: geoip_bench CITY.mmdb ASN.mmdb SOURCE.json OUT.pcap [N]";
    let (city, asn, source, out) = match &args[1..] {
        [c, a, s, o, ..] => (c, a, s, o),
        _ => return Err(usage.into()),
    };
    let n: usize = args.get(5).map(|s| s.parse()).transpose()?.unwrap_or(200_000);
    let ips = addresses(source, n)?;

    let file = std::fs::File::create(out)?;
    let mut w = PcapWriter::new(BufWriter::new(file), 1, TsResolution::Micro, false, 256)?;
    for (i, &server) in ips.iter().enumerate() {
        let client: IpAddr = if server.is_ipv4() {
            [10, 0, 0, 1].into()
        } else {
            "fd00::1".parse()?
        };
        let port = 1024 + (i % 60_000) as u16;
        let t = 1_700_000_000_000_000i64 + i as i64 * 100;
        for (dt, spec) in [
            (0, TcpSpec::new(client, port, server, 443, TcpFlags::SYN).seq(i as u32)),
            (
                50,
                TcpSpec::new(server, 443, client, port, TcpFlags::SYN | TcpFlags::ACK)
                    .seq(7)
                    .ack(i as u32 + 1),
            ),
        ] {
            let f = frame(LinkType::Ethernet, VlanStack::NONE, &spec.ip_bytes());
            w.write(Timestamp::from_micros(t + dt), &f, f.len() as u32)?;
        }
    }
    drop(w);

    let city = Reader::from_source(std::fs::read(city)?)?;
    let asn = Reader::from_source(std::fs::read(asn)?)?;
    let mut found = 0usize;
    let best = (0..5)
        .map(|_| {
            let started = Instant::now();
            found = 0;
            for &ip in &ips {
                if let Ok(r) = city.lookup(ip) {
                    if let Ok(Some(c)) = r.decode::<geoip2::City>() {
                        found += usize::from(c.country.iso_code.is_some());
                    }
                }
                if let Ok(r) = asn.lookup(ip) {
                    if let Ok(Some(a)) = r.decode::<geoip2::Asn>() {
                        found += usize::from(a.autonomous_system_number.is_some());
                    }
                }
            }
            started.elapsed().as_secs_f64()
        })
        .fold(f64::MAX, f64::min);
    println!(
        "native maxminddb: {} addresses (City + ASN) in {:.4} s (best of 5): {:.0} addresses/s, {:.0} ns each; {found} records found",
        ips.len(),
        best,
        ips.len() as f64 / best,
        best * 1e9 / ips.len() as f64
    );
    Ok(())
}
