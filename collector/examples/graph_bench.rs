//! Graph query benchmark (scripts/bench-collector.sh, docs/benchmarks.md):
//! stores handshakes to HOSTS remote hosts, each with a ten-hop route, then
//! times `GET /api/v1/graph`'s query and `/api/v1/hosts`'s in process
//! (median of 5).
//!
//!   graph_bench DIR [HOSTS]

use std::time::Instant;

use net_gazer_collector::ingest::{self};
use net_gazer_collector::query::{self, Filter};
use net_gazer_collector::store::{Location, Store};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let dir = std::path::PathBuf::from(args.get(1).ok_or("usage: graph_bench DIR [HOSTS]")?);
    let hosts: u64 = args.get(2).map(|s| s.parse()).transpose()?.unwrap_or(10_000);
    let _ = std::fs::remove_file(dir.join("graph.sqlite"));
    let mut store = Store::open(&Location::Sqlite(dir.join("graph.sqlite")))?;
    let mut seq = 0u64;
    let mut events = Vec::new();
    for h in 0..hosts {
        let remote = format!("198.{}.{}.{}", 18 + (h >> 16), (h >> 8) & 255, h & 255);
        for k in 0..3u64 {
            seq += 1;
            events.push(
                serde_json::json!({"kind": "handshake", "seq": seq, "ts_us": 1_000_000 * seq as i64, "id": seq,
                "client_ip": format!("10.0.0.{}", 1 + (h + k) % 50), "client_port": 40000, "server_ip": remote,
                "server_port": 443, "direction": "outbound", "outcome": "established",
                "rtt_last_syn_us": 1000.0 + k as f64, "tags": {"geo.country": "GB", "asn": "64500"}}),
            );
        }
        seq += 1;
        let hops: Vec<_> = (1..=10u64)
            .map(|ttl| {
                let addr = if ttl == 10 { remote.clone() } else { format!("100.64.{}.{}", ttl, h % 200) };
                serde_json::json!({"ttl": ttl, "addr": addr, "sent": 3, "received": 3, "rtt_avg_us": 100.0 * ttl as f64})
            })
            .collect();
        events.push(
            serde_json::json!({"kind": "route", "seq": seq, "ts_us": 1_000_000 * seq as i64, "id": h + 1,
            "src_ip": "10.0.0.254", "dst_ip": remote, "protocol": "tcp", "reached": true, "hop_count": 10,
            "changed": false, "hops": hops}),
        );
        if events.len() >= 2000 {
            let body = serde_json::to_vec(&serde_json::json!({"sensor": "bench", "events": events}))?;
            store.insert(&ingest::parse(&body)?, 0)?;
            events.clear();
        }
    }
    if !events.is_empty() {
        let body = serde_json::to_vec(&serde_json::json!({"sensor": "bench", "events": events}))?;
        store.insert(&ingest::parse(&body)?, 0)?;
    }
    let time = |f: &dyn Fn() -> usize| {
        let mut runs: Vec<(f64, usize)> = (0..5)
            .map(|_| {
                let t = Instant::now();
                let n = f();
                (t.elapsed().as_secs_f64(), n)
            })
            .collect();
        runs.sort_by(|a, b| a.0.total_cmp(&b.0));
        runs[2]
    };
    let filter = Filter::default();
    // The query and its JSON text, as the API serves it.
    let (g, nodes) = time(&|| {
        query::graph(&store, &filter)
            .map(|g| {
                let n = g.nodes.len();
                let _text = serde_json::to_vec(&g);
                n
            })
            .unwrap_or(0)
    });
    let (h, rows) = time(&|| {
        query::hosts(&store, &filter)
            .map(|v| {
                let _text = serde_json::to_vec(&v);
                v["hosts"].as_array().map_or(0, Vec::len)
            })
            .unwrap_or(0)
    });
    println!("{hosts} remote hosts, {seq} events stored");
    println!(
        "graph query and its JSON: {:.1} ms ({nodes} nodes), median of 5",
        g * 1000.0
    );
    println!(
        "hosts query and its JSON: {:.1} ms ({rows} hosts), median of 5",
        h * 1000.0
    );
    Ok(())
}
