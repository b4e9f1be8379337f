//! The collector as a real process on a real socket: batches in, counts
//! out, every bad request refused with a clear 4xx and nothing of it
//! stored, retried batches stored once, data kept across a kill.

mod common;

use std::io::Write;
use std::path::Path;

use common::Collector;
use serde_json::{json, Value};

const TOKEN: &str = "gw1-secret-token-0123";
const OTHER: &str = "gw2-secret-token-4567";

/// The store a test runs on: the tests that read or write events run on
/// both (`on_both_stores!`), PostgreSQL on a server of the test's own.
enum Store {
    Sqlite,
    Postgres(common::postgres::Server),
}

impl Store {
    /// The configuration's lines that choose it.
    fn config(&self) -> String {
        match self {
            Store::Sqlite => String::new(),
            Store::Postgres(server) => server.config(),
        }
    }
}

/// Each named test function once per store: `sqlite::NAME` and
/// `postgres::NAME`.
macro_rules! on_both_stores {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[test]
            fn $name() {
                super::$name(&super::Store::Sqlite)
            })*
        }
        mod postgres {
            $(#[test]
            fn $name() {
                if let Some(server) = super::common::postgres::Server::start() {
                    super::$name(&super::Store::Postgres(server))
                }
            })*
        }
    };
}

on_both_stores!(
    batches_are_stored_once_and_bad_requests_store_nothing,
    invalid_events_are_refused_one_by_one_and_the_rest_stored,
    stored_events_survive_a_kill_and_retries_after_it_stay_single,
    hosts_graph_and_host_detail_answer_from_what_was_stored,
    inbound_internal_and_rtt_over_time,
    filters_networks_buckets_and_geo_of_untagged_events,
);

fn start(dir: &Path, store: &Store) -> Collector {
    common::start(
        dir,
        &format!(
            "body_limit_mb = 1\n[sensors.gw1]\ntoken = \"{TOKEN}\"\n[sensors.gw2]\ntoken = \"{OTHER}\"\n{}",
            store.config()
        ),
    )
}

fn handshake(seq: u64) -> Value {
    json!({"kind": "handshake", "seq": seq, "ts_us": 1_700_000_000_000_000i64 + seq as i64, "id": seq,
        "client_ip": "10.0.0.1", "client_port": 40000 + (seq % 1000), "server_ip": "192.0.2.7", "server_port": 443,
        "direction": "outbound", "outcome": "established", "rtt_last_syn_us": 1234.5})
}

fn batch(sensor: &str, seqs: std::ops::RangeInclusive<u64>) -> Value {
    json!({"sensor": sensor, "events": seqs.map(handshake).collect::<Vec<_>>()})
}

fn post(c: &Collector, token: Option<&str>, body: Vec<u8>, gzip: bool) -> (u16, Value) {
    let client = reqwest::blocking::Client::new();
    let mut req = client
        .post(format!("{}/api/v1/events", c.base))
        .header("content-type", "application/json")
        .body(body);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if gzip {
        req = req.header("content-encoding", "gzip");
    }
    let resp = req.send().expect("the request is answered");
    let status = resp.status().as_u16();
    let text = resp.text().unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn summary(c: &Collector) -> Value {
    let text = reqwest::blocking::get(format!("{}/api/v1/summary", c.base))
        .unwrap()
        .text()
        .unwrap();
    serde_json::from_str(&text).unwrap()
}

fn stored(c: &Collector, sensor: &str) -> u64 {
    summary(c)["events"][sensor]["handshake"].as_u64().unwrap_or(0)
}

fn batches_are_stored_once_and_bad_requests_store_nothing(store: &Store) {
    let dir = tempfile::tempdir().unwrap();
    let c = start(dir.path(), store);
    let health = reqwest::blocking::get(format!("{}/health", c.base))
        .unwrap()
        .text()
        .unwrap();
    assert_eq!(health, "UP");

    // A good batch, then the same batch again (a retry after a lost answer).
    let body = serde_json::to_vec(&batch("gw1", 1..=100)).unwrap();
    assert_eq!(
        post(&c, Some(TOKEN), body.clone(), false),
        (200, json!({"stored": 100, "duplicates": 0, "refused": []}))
    );
    assert_eq!(
        post(&c, Some(TOKEN), body, false),
        (200, json!({"stored": 0, "duplicates": 100, "refused": []}))
    );
    // Overlapping and gzip-compressed.
    let body = gzip(&serde_json::to_vec(&batch("gw1", 91..=150)).unwrap());
    assert_eq!(
        post(&c, Some(TOKEN), body, true),
        (200, json!({"stored": 50, "duplicates": 10, "refused": []}))
    );
    assert_eq!(stored(&c, "gw1"), 150);

    // Every request that is bad as a whole: its status, a message, and
    // nothing stored.
    let good = serde_json::to_vec(&batch("gw1", 151..=160)).unwrap();
    let truncated = {
        let g = gzip(&good);
        g[..g.len() / 2].to_vec()
    };
    let huge = serde_json::to_vec(&batch("gw1", 1000..=9000)).unwrap();
    assert!(huge.len() > 1024 * 1024);
    // (what, token, body, gzip, status, message)
    type Case<'a> = (&'a str, Option<&'a str>, Vec<u8>, bool, u16, &'a str);
    let cases: Vec<Case> = vec![
        ("no token", None, good.clone(), false, 401, "bearer token"),
        (
            "wrong token",
            Some("not-a-token-at-all!!"),
            good.clone(),
            false,
            401,
            "bearer token",
        ),
        ("another sensor's batch", Some(OTHER), good.clone(), false, 403, "gw2"),
        (
            "invalid JSON",
            Some(TOKEN),
            b"{\"sensor\": \"gw1\", \"events\": [".to_vec(),
            false,
            400,
            "not valid JSON",
        ),
        ("truncated gzip", Some(TOKEN), truncated, true, 400, "gzip"),
        ("an oversized body", Some(TOKEN), huge.clone(), false, 413, ""),
        (
            "an oversized body once decompressed",
            Some(TOKEN),
            gzip(&huge),
            true,
            413,
            "MiB",
        ),
    ];
    for (what, token, body, gz, status, message) in cases {
        let (got, answer) = post(&c, token, body, gz);
        assert_eq!(got, status, "{what}: {answer}");
        let text = answer["error"]
            .as_str()
            .map_or_else(|| answer.to_string(), String::from);
        assert!(text.contains(message), "{what}: {answer}");
        assert_eq!(stored(&c, "gw1"), 150, "{what}: nothing stored");
    }
    // The server still serves.
    assert_eq!(post(&c, Some(TOKEN), good, false).0, 200);
    assert_eq!(stored(&c, "gw1"), 160);

    let metrics = reqwest::blocking::get(format!("{}/metrics", c.base))
        .unwrap()
        .text()
        .unwrap();
    for line in [
        "netgazer_collector_events_received_total{sensor=\"gw1\",kind=\"handshake\"} 270",
        "netgazer_collector_events_stored_total{sensor=\"gw1\",kind=\"handshake\"} 160",
        "netgazer_collector_events_duplicate_total{sensor=\"gw1\",kind=\"handshake\"} 110",
        "netgazer_collector_requests_rejected_total{reason=\"token\"} 2",
        "netgazer_collector_requests_rejected_total{reason=\"invalid\"} 1",
    ] {
        assert!(metrics.contains(line), "missing `{line}` in\n{metrics}");
    }
}

/// One bad event never holds back the others: the valid events of a batch
/// are stored, each invalid one is named in the answer (its index, `seq`
/// and what is wrong), and a retry stores nothing twice.
fn invalid_events_are_refused_one_by_one_and_the_rest_stored(store: &Store) {
    let dir = tempfile::tempdir().unwrap();
    let c = start(dir.path(), store);
    let mut b = batch("gw1", 1..=10);
    b["events"][3]["server_port"] = json!("https");
    b["events"][5]["kind"] = json!("telemetry");
    b["events"][6].as_object_mut().unwrap().remove("client_ip");
    // The poison pills of before: values the store cannot hold.
    b["events"][7]["id"] = json!(u64::MAX);
    b["events"][8]["ts_us"] = json!(i64::MIN);
    b["events"][9]["seq"] = json!(1u64 << 63);
    let body = serde_json::to_vec(&b).unwrap();
    let (status, answer) = post(&c, Some(TOKEN), body.clone(), false);
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        (&answer["stored"], &answer["duplicates"]),
        (&json!(4), &json!(0)),
        "{answer}"
    );
    let refused = answer["refused"].as_array().unwrap();
    let got: Vec<(u64, Option<u64>)> = refused
        .iter()
        .map(|r| (r["index"].as_u64().unwrap(), r["seq"].as_u64()))
        .collect();
    assert_eq!(
        got,
        [
            (3, Some(4)),
            (5, Some(6)),
            (6, Some(7)),
            (7, Some(8)),
            (8, Some(9)),
            (9, None)
        ],
        "{answer}"
    );
    for (i, want) in [
        (0, "events[3] (handshake): field `server_port`"),
        (1, "unknown event kind \"telemetry\""),
        (2, "field `client_ip`: missing"),
        (3, "field `id`: must be an integer from 0 to 9223372036854775807"),
        (4, "field `ts_us`"),
        (5, "field `seq`"),
    ] {
        let e = refused[i]["error"].as_str().unwrap();
        assert!(e.contains(want), "{e} (wanted {want})");
    }
    assert_eq!(stored(&c, "gw1"), 4);
    let (_, again) = post(&c, Some(TOKEN), body, false);
    assert_eq!((&again["stored"], &again["duplicates"]), (&json!(0), &json!(4)));
    let metrics = reqwest::blocking::get(format!("{}/metrics", c.base))
        .unwrap()
        .text()
        .unwrap();
    assert!(
        metrics.contains("netgazer_collector_events_refused_total{sensor=\"gw1\"} 12"),
        "{metrics}"
    );
}

fn stored_events_survive_a_kill_and_retries_after_it_stay_single(store: &Store) {
    let dir = tempfile::tempdir().unwrap();
    let c = start(dir.path(), store);
    let body = serde_json::to_vec(&batch("gw1", 1..=500)).unwrap();
    assert_eq!(post(&c, Some(TOKEN), body.clone(), false).0, 200);
    drop(c); // SIGKILL: no clean shutdown
    let c = start(dir.path(), store);
    assert_eq!(stored(&c, "gw1"), 500);
    assert_eq!(
        post(&c, Some(TOKEN), body, false),
        (200, json!({"stored": 0, "duplicates": 500, "refused": []}))
    );
    let body = serde_json::to_vec(&batch("gw1", 400..=700)).unwrap();
    assert_eq!(
        post(&c, Some(TOKEN), body, false),
        (200, json!({"stored": 200, "duplicates": 101, "refused": []}))
    );
    assert_eq!(stored(&c, "gw1"), 700);
}

fn get(c: &Collector, path: &str) -> (u16, Value) {
    let r = reqwest::blocking::get(format!("{}{path}", c.base)).unwrap();
    let status = r.status().as_u16();
    (status, serde_json::from_str(&r.text().unwrap()).unwrap_or(Value::Null))
}

fn hosts_graph_and_host_detail_answer_from_what_was_stored(store: &Store) {
    let dir = tempfile::tempdir().unwrap();
    let c = start(dir.path(), store);
    // 10 handshakes to 192.0.2.7 (RTT 1..10 ms, the 10th refused), 3 to
    // 198.51.100.9 (port 22), one inbound from 203.0.113.5, and a route to
    // 192.0.2.7 through two hops, tagged by the GeoIP plugin.
    let mut events = Vec::new();
    let mut seq = 0;
    let mut next = || {
        seq += 1;
        seq
    };
    for i in 1..=10u64 {
        let mut h = handshake(next());
        h["ts_us"] = json!(1_000_000 * i);
        h["rtt_last_syn_us"] = json!(1000.0 * i as f64);
        h["tags"] = json!({"geo.country": "GB", "asn": "15169"});
        if i == 10 {
            h["outcome"] = json!("refused");
            h["rtt_last_syn_us"] = Value::Null;
        }
        events.push(h);
    }
    for _ in 0..3 {
        let mut h = handshake(next());
        h["server_ip"] = json!("198.51.100.9");
        h["server_port"] = json!(22);
        events.push(h);
    }
    let mut inbound = handshake(next());
    inbound["direction"] = json!("inbound");
    inbound["client_ip"] = json!("203.0.113.5");
    inbound["server_ip"] = json!("10.0.0.1");
    events.push(inbound);
    events.push(
        json!({"kind": "route", "seq": next(), "ts_us": 5_000_000, "id": 1, "handshake_id": 1,
        "src_ip": "10.0.0.254", "dst_ip": "192.0.2.7", "protocol": "tcp", "reached": true, "hop_count": 3,
        "changed": false, "hops": [
            {"ttl": 1, "addr": "10.0.0.1", "sent": 3, "received": 3, "rtt_avg_us": 100.0},
            {"ttl": 2, "addr": "198.18.0.1", "sent": 3, "received": 3, "rtt_avg_us": 900.0},
            {"ttl": 3, "addr": "192.0.2.7", "sent": 3, "received": 3, "rtt_avg_us": 1000.0}],
        "tags": {"hop.2.geo.country": "DE", "hop.2.asn": "3320"}}),
    );
    let body = serde_json::to_vec(&json!({"sensor": "gw1", "events": events})).unwrap();
    assert_eq!(post(&c, Some(TOKEN), body, false).0, 200);

    let (status, hosts) = get(&c, "/api/v1/hosts");
    assert_eq!(status, 200);
    let list = hosts["hosts"].as_array().unwrap();
    assert_eq!(list[0]["ip"], "192.0.2.7", "most attempts first: {hosts}");
    assert_eq!(list[0]["attempts"], 10);
    assert_eq!(list[0]["refused"], 1);
    assert_eq!(list[0]["rtt_p50_us"], 5000.0, "nearest rank over 1..9 ms");
    assert_eq!(list[0]["rtt_p95_us"], 9000.0);
    assert_eq!(list[0]["geo"]["country"], "GB");
    assert_eq!(list[0]["geo"]["asn"], 15169);
    assert!(
        list.iter().any(|h| h["ip"] == "203.0.113.5"),
        "the inbound client is a remote host"
    );
    // Filters: port 22 only; a window that holds the first 3 handshakes.
    let (_, p22) = get(&c, "/api/v1/hosts?port=22");
    assert_eq!(p22["hosts"].as_array().unwrap().len(), 1);
    assert_eq!(p22["hosts"][0]["ip"], "198.51.100.9");
    let (_, early) = get(&c, "/api/v1/hosts?since_us=1000000&until_us=3000000");
    assert_eq!(early["hosts"][0]["attempts"], 3);

    let (_, g) = get(&c, "/api/v1/graph?direction=outbound");
    let links = g["links"].as_array().unwrap();
    let path: Vec<(&str, &str)> = links
        .iter()
        .filter(|l| l["kind"] == "path")
        .map(|l| (l["source"].as_str().unwrap(), l["target"].as_str().unwrap()))
        .collect();
    assert_eq!(
        path,
        [
            ("10.0.0.254", "10.0.0.1"),
            ("10.0.0.1", "198.18.0.1"),
            ("198.18.0.1", "192.0.2.7")
        ]
    );
    let hop = g["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["id"] == "198.18.0.1")
        .unwrap();
    assert_eq!(
        (&hop["kind"], &hop["country"], &hop["asn"]),
        (&json!("hop"), &json!("DE"), &json!(3320))
    );
    let conn = links
        .iter()
        .find(|l| l["kind"] == "connection" && l["target"] == "192.0.2.7")
        .unwrap();
    assert_eq!((&conn["count"], &conn["failures"]), (&json!(10), &json!(1)));
    assert!(
        !g["nodes"].as_array().unwrap().iter().any(|n| n["id"] == "203.0.113.5"),
        "the direction filter leaves the inbound client out"
    );

    let (_, detail) = get(&c, "/api/v1/hosts/192.0.2.7");
    assert_eq!(detail["rtt"].as_array().unwrap().len(), 10);
    assert_eq!(detail["routes"][0]["hops"].as_array().unwrap().len(), 3);
    assert_eq!(detail["ports"], json!([443]));
    assert_eq!(get(&c, "/api/v1/hosts/not-an-ip").0, 400);
}

fn inbound_internal_and_rtt_over_time(store: &Store) {
    let dir = tempfile::tempdir().unwrap();
    let c = start(dir.path(), store);
    let mut events = Vec::new();
    // 203.0.113.5 knocks on 3 ports of 10.0.0.1 (2 refused, 1 unanswered)
    // and is reported as a port scan; one inbound connection succeeds from
    // elsewhere; two local hosts talk to each other.
    for (i, (port, outcome)) in [(22, "refused"), (23, "refused"), (3389, "unanswered")]
        .iter()
        .enumerate()
    {
        let mut h = handshake(i as u64 + 1);
        h["direction"] = json!("inbound");
        h["client_ip"] = json!("203.0.113.5");
        h["server_ip"] = json!("10.0.0.1");
        h["server_port"] = json!(port);
        h["outcome"] = json!(outcome);
        events.push(h);
    }
    let mut ok = handshake(4);
    ok["direction"] = json!("inbound");
    ok["client_ip"] = json!("198.51.100.77");
    ok["server_ip"] = json!("10.0.0.1");
    events.push(ok);
    events.push(
        json!({"kind": "scan", "seq": 5, "ts_us": 1_700_000_000_000_009i64, "src_ip": "203.0.113.5",
        "scan_type": "port_scan", "phase": "detected", "target_ip": "10.0.0.1", "distinct": 15}),
    );
    for seq in 6..=8 {
        let mut h = handshake(seq);
        h["direction"] = json!("internal");
        h["client_ip"] = json!("10.0.0.2");
        h["server_ip"] = json!("10.0.0.3");
        h["server_port"] = json!(445);
        h["ts_us"] = json!(seq as i64 * 60_000_000);
        h["rtt_last_syn_us"] = json!(100.0 * seq as f64);
        events.push(h);
    }
    let body = serde_json::to_vec(&json!({"sensor": "gw1", "events": events})).unwrap();
    assert_eq!(post(&c, Some(TOKEN), body, false).0, 200);

    let (_, inbound) = get(&c, "/api/v1/inbound");
    let sources = inbound["sources"].as_array().unwrap();
    assert_eq!(sources.len(), 1, "only failed attempts and scans: {inbound}");
    let s = &sources[0];
    assert_eq!(
        (&s["ip"], &s["attempts"], &s["refused"], &s["unanswered"]),
        (&json!("203.0.113.5"), &json!(3), &json!(2), &json!(1))
    );
    assert_eq!(s["targets"].as_array().unwrap().len(), 3);
    assert_eq!(s["scans"][0]["distinct"], 15);

    let (_, internal) = get(&c, "/api/v1/internal");
    assert_eq!(internal["links"].as_array().unwrap().len(), 1);
    assert_eq!(
        (&internal["links"][0]["count"], &internal["links"][0]["port"]),
        (&json!(3), &json!(445))
    );

    let (status, series) = get(&c, "/api/v1/rtt?direction=internal&bucket_us=120000000");
    assert_eq!(status, 200, "{series}");
    let points = series["points"].as_array().unwrap();
    // Handshakes at 6, 7 and 8 minutes: buckets [6, 8) and [8, 10) min.
    assert_eq!(points.len(), 2, "{series}");
    assert_eq!(
        (&points[0]["attempts"], &points[0]["rtt_p50_us"]),
        (&json!(2), &json!(600.0))
    );
    assert_eq!(
        (&points[1]["attempts"], &points[1]["rtt_p95_us"]),
        (&json!(1), &json!(800.0))
    );
    let (_, by_host) = get(&c, "/api/v1/rtt?host=203.0.113.5");
    assert_eq!(by_host["points"][0]["failures"], 3);
}

fn filters_networks_buckets_and_geo_of_untagged_events(store: &Store) {
    let dir = tempfile::tempdir().unwrap();
    let c = start(dir.path(), store);
    let mut events = Vec::new();
    // 192.0.2.7: tagged, then a later handshake that passed untagged.
    let mut tagged = handshake(1);
    tagged["tags"] = json!({"geo.country": "GB", "asn": "64500", "geo.lat": "51.5", "geo.lon": "-0.1"});
    events.push(tagged);
    let mut later = handshake(2);
    later["ts_us"] = json!(1_700_000_000_000_100i64);
    events.push(later);
    // 198.51.100.9 refused, in another network.
    let mut refused = handshake(3);
    refused["server_ip"] = json!("198.51.100.9");
    refused["outcome"] = json!("refused");
    refused["rtt_last_syn_us"] = Value::Null;
    events.push(refused);
    // Two routes through the same two routers: one link per address pair.
    for (seq, dst) in [(4u64, "192.0.2.7"), (5, "198.51.100.9")] {
        events.push(
            json!({"kind": "route", "seq": seq, "ts_us": 1_700_000_000_000_200i64 + seq as i64,
            "id": seq, "src_ip": "10.0.0.1", "dst_ip": dst, "protocol": "tcp", "reached": true,
            "hop_count": 3, "changed": false, "hops": [
                {"ttl": 1, "addr": "10.0.0.254", "sent": 3, "received": 3, "rtt_avg_us": 500.0},
                {"ttl": 2, "addr": "100.64.0.1", "sent": 3, "received": 3, "rtt_avg_us": 9500.0},
                {"ttl": 3, "addr": dst, "sent": 3, "received": 3, "rtt_avg_us": 10000.0}]}),
        );
    }
    let body = serde_json::to_vec(&json!({"sensor": "gw1", "events": events})).unwrap();
    assert_eq!(post(&c, Some(TOKEN), body, false).0, 200);

    let (_, hosts) = get(&c, "/api/v1/hosts");
    let h = hosts["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["ip"] == "192.0.2.7")
        .unwrap()
        .clone();
    assert_eq!(
        h["geo"]["country"], "GB",
        "the untagged later handshake keeps the data: {h}"
    );
    assert_eq!(h["geo"]["lat"], 51.5);

    let (_, only_refused) = get(&c, "/api/v1/hosts?outcome=refused");
    let ips: Vec<&Value> = only_refused["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| &h["ip"])
        .collect();
    assert_eq!(ips, [&json!("198.51.100.9")]);

    let (_, net) = get(&c, "/api/v1/rtt?network=192.0.2.0/24&bucket_us=3600000000");
    assert_eq!(net["points"][0]["attempts"], 2, "{net}");
    let (status, bad) = get(&c, "/api/v1/rtt?network=192.0.2.0");
    assert_eq!(status, 400, "{bad}");
    assert!(bad["error"].as_str().unwrap().contains("CIDR"), "{bad}");
    let (_, auto) = get(&c, "/api/v1/rtt?buckets=10");
    assert_eq!(
        auto["bucket_us"], 1_000_000,
        "the smallest bucket for a span of 100 µs: {auto}"
    );

    let (_, graph) = get(&c, "/api/v1/graph");
    let paths: Vec<&Value> = graph["links"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l["kind"] == "path")
        .collect();
    let shared: Vec<&&Value> = paths.iter().filter(|l| l["target"] == "100.64.0.1").collect();
    assert_eq!(shared.len(), 1, "one link per address pair: {paths:?}");
    assert_eq!(shared[0]["count"], 2);
    assert_eq!(shared[0]["rtt_delta_us"], 9000.0);
    assert_eq!(shared[0]["slowest"], true, "the largest step of both paths");
    let (_, sensors) = get(&c, "/api/v1/sensors");
    assert_eq!(sensors["sensors"][0]["id"], "gw1", "{sensors}");
}

/// Under systemd (Type=notify): READY=1 once listening, then WATCHDOG=1
/// pings at half `WATCHDOG_USEC` while it answers its own /health.
#[test]
fn systemd_hears_ready_and_watchdog_pings() {
    use std::os::unix::net::UnixDatagram;
    let dir = tempfile::tempdir().unwrap();
    let socket_path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    socket
        .set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    let config = common::write_config(dir.path(), "");
    // WATCHDOG_PID must be the collector's own pid: sh execs it.
    let mut cmd = std::process::Command::new("sh");
    cmd.args(["-c", "WATCHDOG_PID=$$ exec \"$0\" -c \"$1\""])
        .arg(env!("CARGO_BIN_EXE_net-gazer-collector"))
        .arg(&config)
        .env("NOTIFY_SOCKET", &socket_path)
        .env("WATCHDOG_USEC", "400000");
    let _c = Collector::spawn_command(cmd);
    let mut got = Vec::new();
    let mut buf = [0u8; 512];
    while !(got.iter().any(|m: &String| m.contains("READY=1"))
        && got.iter().filter(|m| m.contains("WATCHDOG=1")).count() >= 2)
    {
        let n = socket
            .recv(&mut buf)
            .unwrap_or_else(|e| panic!("no more notifications after {got:?}: {e}"));
        got.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    }
    assert!(got[0].contains("READY=1"), "ready first: {got:?}");
}

/// Standard error connected to the journal (JOURNAL_STREAM set, as systemd
/// does): log lines without timestamps or colours, the journal adds its own.
#[test]
fn journal_lines_carry_their_priority_and_no_timestamp() {
    use std::io::{BufRead, BufReader};
    let dir = tempfile::tempdir().unwrap();
    let config = common::write_config(dir.path(), "");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_net-gazer-collector"))
        .args(["-v", "-c"])
        .arg(&config)
        .env("JOURNAL_STREAM", "8:12345")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let lines: Vec<String> = BufReader::new(child.stderr.take().unwrap())
        .lines()
        .map_while(Result::ok)
        .take_while(|l| !l.starts_with("net-gazer-collector: listening on"))
        .collect();
    let _ = child.kill();
    let _ = child.wait();
    let logged: Vec<&String> = lines.iter().filter(|l| l.contains("listening")).collect();
    assert!(!logged.is_empty(), "an info line about listening: {lines:?}");
    for l in logged {
        assert!(
            l.starts_with("<6>") && l[3..].trim_start().starts_with("INFO"),
            "the priority, then no timestamp: {l:?}"
        );
        assert!(!l.contains('\u{1b}'), "no colour codes: {l:?}");
    }
    // The warning of a configuration without sensors: priority 4, which
    // `journalctl -p warning` shows.
    let warned: Vec<&String> = lines.iter().filter(|l| l.contains("WARN")).collect();
    assert!(
        warned
            .iter()
            .any(|l| l.starts_with("<4>") && l.contains("no [sensors.<id>] table")),
        "{lines:?}"
    );
}

/// For service managers: a configuration error exits 78, a command-line
/// mistake 64, each with a message naming what is wrong.
#[test]
fn configuration_and_usage_errors_have_their_exit_statuses() {
    let bin = env!("CARGO_BIN_EXE_net-gazer-collector");
    let dir = tempfile::tempdir().unwrap();
    for (text, want) in [
        (
            "body_limit_mb = 17592186044416\n",
            "key `body_limit_mb`: must be from 1 to 1024",
        ),
        ("bogus = 1\n", "bogus"),
        ("[sensors.gw1]\ntoken = \"short\"\n", "sensors.gw1.token"),
    ] {
        let config = dir.path().join("c.toml");
        std::fs::write(&config, text).unwrap();
        let o = std::process::Command::new(bin).arg("-c").arg(&config).output().unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(78), "{text}: {err}");
        assert!(err.contains(want), "{text}: {err}");
        assert!(!err.contains("listening"), "refused before listening: {err}");
    }
    let o = std::process::Command::new(bin).arg("--no-such-flag").output().unwrap();
    assert_eq!(o.status.code(), Some(64));
}

/// SIGHUP (systemd's `reload`) reads the file again: a sensor added to it
/// is let in, a removed one refused, the data and the process stay; a file
/// with an error changes nothing and the collector goes on.
#[test]
fn sighup_reloads_the_sensors_and_survives_a_bad_file() {
    let dir = tempfile::tempdir().unwrap();
    let sensor = |id: &str, token: &str| format!("[sensors.{id}]\ntoken = \"{token}\"\n");
    let config = common::write_config(dir.path(), &sensor("gw1", TOKEN));
    let c = Collector::spawn(Path::new(env!("CARGO_BIN_EXE_net-gazer-collector")), &config);
    let body = |s: &str, seqs| serde_json::to_vec(&batch(s, seqs)).unwrap();
    assert_eq!(post(&c, Some(TOKEN), body("gw1", 1..=10), false).0, 200);
    assert_eq!(post(&c, Some(OTHER), body("gw2", 1..=10), false).0, 401);

    let hangup = || {
        let ok = std::process::Command::new("kill")
            .args(["-HUP", &c.pid().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -HUP");
    };
    // gw2 added, gw1 removed.
    common::write_config(dir.path(), &sensor("gw2", OTHER));
    hangup();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while post(&c, Some(OTHER), body("gw2", 1..=10), false).0 != 200 {
        assert!(std::time::Instant::now() < deadline, "gw2 never let in after SIGHUP");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(post(&c, Some(TOKEN), body("gw1", 11..=20), false).0, 401, "gw1 removed");
    assert_eq!(stored(&c, "gw1"), 10, "what gw1 sent before stays");

    // A file with an error: nothing changes, the collector goes on.
    std::fs::write(&config, "listen = [").unwrap();
    hangup();
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert_eq!(post(&c, Some(OTHER), body("gw2", 11..=20), false).0, 200);
    assert_eq!(stored(&c, "gw2"), 20);
}

/// `/metrics` as Prometheus reads it: every family with its `# HELP` and
/// `# TYPE`, and label values escaped (a sensor id may hold `"` or `\`).
#[test]
fn metrics_have_help_and_escaped_labels() {
    let dir = tempfile::tempdir().unwrap();
    let c = common::start(dir.path(), &format!("[sensors.'odd\"id\\']\ntoken = \"{TOKEN}\"\n"));
    let body = serde_json::to_vec(&batch("odd\"id\\", 1..=3)).unwrap();
    assert_eq!(post(&c, Some(TOKEN), body, false).0, 200);
    let text = reqwest::blocking::get(format!("{}/metrics", c.base))
        .unwrap()
        .text()
        .unwrap();
    assert!(
        text.contains(r#"netgazer_collector_events_stored_total{sensor="odd\"id\\",kind="handshake"} 3"#),
        "{text}"
    );
    let lines: Vec<&str> = text.lines().collect();
    for (i, l) in lines.iter().enumerate() {
        if let Some(family) = l.strip_prefix("# TYPE ") {
            let name = family.split(' ').next().unwrap();
            let help = i.checked_sub(1).map(|h| lines[h]).unwrap_or("");
            assert!(
                help.starts_with(&format!("# HELP {name} ")) && help.len() > name.len() + 8,
                "{name} has no help: {help:?}"
            );
        }
    }
}
