//! The GeoIP test databases' source data (testdata/mmdb/source-data):
//! what a lookup must answer, derived from the JSON the databases were
//! built from.

use std::net::IpAddr;
use std::path::Path;

use ipnet::IpNet;
use serde_json::Value;

/// The records of a source-data file: (network, record). Networks written
/// as IPv4-in-IPv6 (`::a.b.c.d/n`, n ≥ 96) are also the IPv4 network.
pub fn records(mmdb: &Path, name: &str) -> Vec<(IpNet, Value)> {
    let text = std::fs::read_to_string(mmdb.join(format!("source-data/{name}.json"))).expect("source data");
    let list: Vec<serde_json::Map<String, Value>> = serde_json::from_str(&text).expect("a JSON list");
    let mut out = Vec::new();
    for entry in list {
        for (net, record) in entry {
            let Ok(net) = net.parse::<IpNet>() else { continue };
            if let IpNet::V6(v6) = net {
                let octets = v6.network().octets();
                if v6.prefix_len() >= 96 && octets[..12].iter().all(|&b| b == 0) {
                    let v4 = std::net::Ipv4Addr::new(octets[12], octets[13], octets[14], octets[15]);
                    if let Ok(n) = ipnet::Ipv4Net::new(v4, v6.prefix_len() - 96) {
                        out.push((IpNet::V4(n), record.clone()));
                    }
                    continue;
                }
            }
            out.push((net, record));
        }
    }
    out
}

/// The record of the longest network holding `ip`.
pub fn longest(records: &[(IpNet, Value)], ip: IpAddr) -> Option<&Value> {
    records
        .iter()
        .filter(|(n, _)| n.contains(&ip))
        .max_by_key(|(n, _)| n.prefix_len())
        .map(|(_, r)| r)
}
