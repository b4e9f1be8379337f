//! The collector under attack, as a real process on a real socket: data an
//! older collector stored that overflows the queries, slow and lying
//! clients, more connections than allowed, a store that cannot take
//! writes. Each attack gets a clear answer or a closed connection, and the
//! service goes on for everyone else.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

use common::Collector;
use serde_json::{json, Value};

const TOKEN: &str = "gw1-secret-token-0123";

fn start(dir: &Path, extra: &str) -> Collector {
    common::start(dir, &format!("{extra}\n[sensors.gw1]\ntoken = \"{TOKEN}\"\n"))
}

fn addr(c: &Collector) -> String {
    c.base.trim_start_matches("http://").to_string()
}

fn get(c: &Collector, path: &str) -> (u16, String) {
    let r = reqwest::blocking::get(format!("{}{path}", c.base)).expect("answered");
    (r.status().as_u16(), r.text().unwrap_or_default())
}

fn post(c: &Collector, events: Vec<Value>) -> (u16, Value) {
    let body = serde_json::to_vec(&json!({"sensor": "gw1", "events": events})).unwrap();
    let r = reqwest::blocking::Client::new()
        .post(format!("{}/api/v1/events", c.base))
        .bearer_auth(TOKEN)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .expect("answered");
    let status = r.status().as_u16();
    (status, serde_json::from_str(&r.text().unwrap()).unwrap_or(Value::Null))
}

fn handshake(seq: u64) -> Value {
    json!({"kind": "handshake", "seq": seq, "ts_us": 1_700_000_000_000_000i64 + seq as i64, "id": seq,
        "client_ip": "10.0.0.1", "client_port": 40000, "server_ip": "192.0.2.7", "server_port": 443,
        "direction": "outbound", "outcome": "established", "rtt_last_syn_us": 1000.0})
}

/// What the queries read, for every query the API has.
const QUERIES: [&str; 9] = [
    "/api/v1/summary",
    "/api/v1/sensors",
    "/api/v1/hosts",
    "/api/v1/hosts/192.0.2.7",
    "/api/v1/graph",
    "/api/v1/inbound",
    "/api/v1/internal",
    "/api/v1/rtt",
    "/api/v1/rtt?buckets=7",
];

/// A database written before ingest checked ranges holds a handshake at
/// `ts_us = i64::MIN` and two flows of 2^62 packets: every query still
/// answers (the RTT buckets and the flow sums saturate), and ingest goes on.
#[test]
fn extreme_stored_values_break_no_query_and_no_later_request() {
    let dir = tempfile::tempdir().unwrap();
    let c = start(dir.path(), "");
    assert_eq!(post(&c, vec![handshake(1)]).0, 200);
    drop(c);
    let db = rusqlite::Connection::open(dir.path().join("events.sqlite")).unwrap();
    db.execute_batch(&format!(
        "INSERT INTO handshakes_new (sensor, seq, id, ts_us, client_ip, client_port, server_ip, server_port,
            direction, outcome, rtt_us, remote_ip)
         VALUES ('gw1', 2, 2, {min}, '10.0.0.1', 1, '192.0.2.7', 443, 'outbound', 'established', 5.0, '192.0.2.7'),
                ('gw1', 3, 3, {max}, '10.0.0.1', 1, '192.0.2.7', 443, 'outbound', 'refused', NULL, '192.0.2.7');
         INSERT INTO flows (sensor, seq, id, ts_us, client_ip, client_port, server_ip, server_port, direction,
            remote_ip, packets_c2s)
         VALUES ('gw1', 4, 4, 1, '10.0.0.1', 1, '192.0.2.7', 443, 'outbound', '192.0.2.7', {big}),
                ('gw1', 5, 5, 2, '10.0.0.1', 2, '192.0.2.7', 443, 'outbound', '192.0.2.7', {big});",
        min = i64::MIN,
        max = i64::MAX,
        big = 1i64 << 62
    ))
    .unwrap();
    drop(db);
    let c = start(dir.path(), "");
    for round in 0..2 {
        for q in QUERIES {
            let (status, body) = get(&c, q);
            assert_eq!(status, 200, "round {round}: {q}: {body}");
        }
        let (status, answer) = post(&c, vec![handshake(10 + round)]);
        assert_eq!(
            (status, &answer["stored"]),
            (200, &json!(1)),
            "ingest goes on: {answer}"
        );
    }
    let (_, detail) = get(&c, "/api/v1/hosts/192.0.2.7");
    let detail: Value = serde_json::from_str(&detail).unwrap();
    assert_eq!(
        detail["flows"]["packets_c2s"],
        json!(1u64 << 63),
        "summed without overflow"
    );
    assert_eq!(get(&c, "/health"), (200, "UP".to_string()));
}

/// Reads what the server sends until it closes the connection; `None`
/// when it is still open after `within`.
fn closed_within(stream: &mut TcpStream, within: Duration) -> Option<Vec<u8>> {
    let until = Instant::now() + within;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while Instant::now() < until {
        stream.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
        match stream.read(&mut buf) {
            Ok(0) => return Some(got),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
            Err(_) => return Some(got),
        }
    }
    None
}

/// 50 clients sending their request a byte at a time are cut off once
/// `header_timeout` has passed; a normal request meanwhile is served.
#[test]
fn slow_clients_are_dropped_and_others_served_meanwhile() {
    let dir = tempfile::tempdir().unwrap();
    let c = start(dir.path(), "header_timeout = \"2s\"");
    let request = b"GET /api/v1/summary HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n";
    let mut slow: Vec<TcpStream> = (0..50).map(|_| TcpStream::connect(addr(&c)).unwrap()).collect();
    let started = Instant::now();
    let mut closed = vec![false; slow.len()];
    let mut sent = 0;
    while closed.iter().any(|c| !c) && started.elapsed() < Duration::from_secs(30) {
        for (i, s) in slow.iter_mut().enumerate() {
            if !closed[i] && sent < request.len() && s.write_all(&request[sent..=sent]).is_err() {
                closed[i] = true;
            }
            s.set_nonblocking(true).unwrap();
            let mut b = [0u8; 512];
            match s.read(&mut b) {
                Ok(_) => closed[i] = true,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(_) => closed[i] = true,
            }
            s.set_nonblocking(false).unwrap();
        }
        sent += 1;
        if sent == 5 {
            assert_eq!(get(&c, "/api/v1/summary").0, 200, "served while 50 slow clients wait");
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    assert!(closed.iter().all(|c| *c), "every slow client was dropped");
    assert!(
        sent < request.len(),
        "dropped before the request was complete ({sent} bytes)"
    );
    let metrics = get(&c, "/metrics").1;
    let timed_out: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("netgazer_collector_connections_timed_out_total "))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(timed_out >= 50, "{metrics}");
}

/// A `Content-Length` beyond the limit is answered 413 at once, without
/// waiting for the body; a body that stops short is answered 408 after
/// `body_timeout`. Neither holds its connection.
#[test]
fn lying_content_lengths_are_answered_promptly() {
    let dir = tempfile::tempdir().unwrap();
    let c = start(dir.path(), "body_timeout = \"2s\"\nbody_limit_mb = 1");
    let mut s = TcpStream::connect(addr(&c)).unwrap();
    write!(
        s,
        "POST /api/v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\nContent-Length: 99999999999\r\n\r\n{{\"sensor\""
    )
    .unwrap();
    let answer = closed_within(&mut s, Duration::from_secs(10)).expect("answered and closed at once");
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 413"), "{text}");
    assert!(text.contains("larger than 1 MiB"), "{text}");

    let mut s = TcpStream::connect(addr(&c)).unwrap();
    write!(
        s,
        "POST /api/v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{\"sensor\""
    )
    .unwrap();
    let answer = closed_within(&mut s, Duration::from_secs(20)).expect("answered and closed");
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.contains("body_timeout"), "{text}");
    assert_eq!(post(&c, vec![handshake(1)]).0, 200, "the service goes on");
}

/// Beyond `max_connections`, a connection is answered 503 and closed at
/// once; when one of the others closes, the next is served again.
#[test]
fn connections_beyond_the_limit_are_refused_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let c = start(dir.path(), "max_connections = 4");
    let held: Vec<TcpStream> = (0..4).map(|_| TcpStream::connect(addr(&c)).unwrap()).collect();
    std::thread::sleep(Duration::from_millis(300));
    let mut extra = TcpStream::connect(addr(&c)).unwrap();
    let answer = closed_within(&mut extra, Duration::from_secs(10)).expect("refused at once");
    assert!(String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 503"));
    drop(held);
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        match reqwest::blocking::get(format!("{}/health", c.base)) {
            Ok(r) if r.status() == 200 => break,
            _ if Instant::now() < until => std::thread::sleep(Duration::from_millis(100)),
            other => panic!("not served again: {other:?}"),
        }
    }
    let metrics = get(&c, "/metrics").1;
    assert!(
        metrics.contains("netgazer_collector_connections_refused_total 1"),
        "{metrics}"
    );
}

/// `/health` says DOWN (503, with the reason) while another process holds
/// the database locked, so the store cannot take writes; UP again after.
#[test]
fn health_reports_a_store_that_cannot_take_writes() {
    let dir = tempfile::tempdir().unwrap();
    let c = start(dir.path(), "");
    assert_eq!(get(&c, "/health"), (200, "UP".to_string()));
    let db = rusqlite::Connection::open(dir.path().join("events.sqlite")).unwrap();
    db.execute_batch("BEGIN EXCLUSIVE").unwrap();
    std::thread::sleep(Duration::from_millis(1100)); // past the cached answer
    let (status, text) = get(&c, "/health");
    assert_eq!(status, 503, "{text}");
    assert!(text.starts_with("DOWN: "), "{text}");
    db.execute_batch("ROLLBACK").unwrap();
    let until = Instant::now() + Duration::from_secs(15);
    while get(&c, "/health").0 != 200 {
        assert!(Instant::now() < until, "UP again once the lock is gone");
        std::thread::sleep(Duration::from_millis(200));
    }
}
