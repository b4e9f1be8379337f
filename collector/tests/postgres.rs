//! The PostgreSQL store on a real server of the test's own: the same
//! answers as SQLite to every query for the same events, each event once
//! whatever the number of collectors writing at once, retention by whole
//! days, `migrate` from SQLite, and a server restart in the middle.

mod common;

use common::postgres::Server;
use net_gazer_collector::ingest::{self, Batch};
use net_gazer_collector::query::{self, Filter, Series};
use net_gazer_collector::store::{self, Location, Store};
use serde_json::{json, Value};

const DAY_US: i64 = 86_400_000_000;
/// 2023-11-14, a day boundary later.
const T0: i64 = 19_675 * DAY_US;

fn server() -> Option<(Server, Location)> {
    let s = Server::start()?;
    let at = Location::Postgres(store::postgres::Settings {
        url: s.url(),
        connect_timeout: std::time::Duration::from_secs(5),
        graph_queue: false,
        tls_ca_file: None,
    });
    Some((s, at))
}

/// A small xorshift: varied events, the same every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// Events of every kind over three days, from `sensor`, numbered from
/// `first`: handshakes in every direction and outcome (some tagged with
/// GeoIP), flows, routes with hops (some changed), scans, stats.
fn events(sensor_seed: u64, first: u64, n: u64) -> Vec<Value> {
    let mut r = Rng(0x9e37_79b9_7f4a_7c15 ^ sensor_seed);
    (first..first + n)
        .map(|seq| {
            let ts = T0 + (seq as i64) * 3 * DAY_US / 1000 + r.next(1000) as i64;
            let remote = format!("198.51.100.{}", r.next(12));
            let local = format!("10.0.0.{}", 1 + r.next(5));
            match r.next(10) {
                0 => {
                    let hops: Vec<Value> = (1..=1 + r.next(4))
                        .map(|ttl| {
                            let addr = if r.next(5) == 0 { Value::Null } else { json!(format!("100.64.{ttl}.{}", r.next(3))) };
                            json!({"ttl": ttl, "addr": addr, "sent": 3, "received": r.next(4), "rtt_avg_us": 100.0 * ttl as f64 + r.next(50) as f64})
                        })
                        .collect();
                    json!({"kind": "route", "seq": seq, "ts_us": ts, "id": seq, "src_ip": local, "dst_ip": remote,
                        "protocol": "icmp", "reached": r.next(2) == 0, "hop_count": hops.len(), "changed": r.next(3) == 0,
                        "hops": hops, "tags": {"hop.1.asn": "64500", "hop.1.geo.country": "NL", "hop.1.geo.lat": "52.1", "hop.1.geo.lon": "4.3"}})
                }
                1 => json!({"kind": "flow", "seq": seq, "ts_us": ts, "id": seq, "client_ip": local, "client_port": 40000 + r.next(100),
                    "server_ip": remote, "server_port": ([22, 443][r.next(2) as usize]), "direction": "outbound",
                    "end_reason": (["fin", "rst", "idle"][r.next(3) as usize]), "end_us": ts + 5, "duration_us": 5.0,
                    "handshake_seen": true, "packets_c2s": r.next(100), "bytes_s2c": r.next(1 << 20), "retrans_s2c": r.next(3)}),
                2 => json!({"kind": "scan", "seq": seq, "ts_us": ts, "src_ip": remote, "scan_type": "port_scan",
                    "phase": (["detected", "ended"][r.next(2) as usize]), "target_ip": local, "target_port": r.next(1024), "distinct": r.next(100),
                    "tags": {"geo.country": "US", "asn": "64501"}}),
                3 => json!({"kind": "stats", "seq": seq, "ts_us": ts, "packets": r.next(1000)}),
                _ => {
                    let direction = ["outbound", "outbound", "inbound", "internal"][r.next(4) as usize];
                    let (client, server) = match direction {
                        "inbound" => (remote.clone(), local.clone()),
                        "internal" => (local.clone(), format!("10.0.0.{}", 10 + r.next(3))),
                        _ => (local.clone(), remote.clone()),
                    };
                    let outcome = ["established", "established", "established", "refused", "unanswered"][r.next(5) as usize];
                    let mut h = json!({"kind": "handshake", "seq": seq, "ts_us": ts, "id": seq, "client_ip": client,
                        "client_port": 40000 + r.next(1000), "server_ip": server, "server_port": ([22, 80, 443][r.next(3) as usize]),
                        "direction": direction, "outcome": outcome, "syn_count": 1 + r.next(3)});
                    if outcome == "established" {
                        h["rtt_last_syn_us"] = json!(1000.0 + r.next(9000) as f64 + 0.5);
                    }
                    if r.next(3) > 0 {
                        h["tags"] = json!({"geo.country": (["GB", "DE"][r.next(2) as usize]), "geo.city": "X",
                            "geo.lat": "51.5", "geo.lon": "-0.1", "asn": (["15169", "64500"][r.next(2) as usize]), "asn.org": "Org"});
                    }
                    h
                }
            }
        })
        .collect()
}

fn batch(sensor: &str, events: &[Value]) -> Batch {
    let b = ingest::parse(&serde_json::to_vec(&json!({"sensor": sensor, "events": events})).unwrap()).unwrap();
    assert!(b.refused.is_empty(), "{:?}", b.refused);
    b
}

/// Every query the API serves, with and without filters, as JSON.
fn answers(s: &Store) -> Vec<(String, Value)> {
    let filters = [
        Filter::default(),
        Filter {
            since_us: Some(T0 + DAY_US),
            until_us: Some(T0 + 2 * DAY_US),
            ..Filter::default()
        },
        Filter {
            sensor: Some("gw2".into()),
            port: Some(443),
            ..Filter::default()
        },
        Filter {
            direction: Some("outbound".into()),
            outcome: Some("established".into()),
            ..Filter::default()
        },
    ];
    let mut out = Vec::new();
    for (i, f) in filters.iter().enumerate() {
        out.push((format!("hosts {i}"), query::hosts(s, f).unwrap()));
        out.push((
            format!("graph {i}"),
            serde_json::to_value(query::graph(s, f).unwrap()).unwrap(),
        ));
        out.push((format!("inbound {i}"), query::inbound(s, f).unwrap()));
        out.push((format!("internal {i}"), query::internal(s, f).unwrap()));
        for series in [
            Series::default(),
            Series {
                buckets: Some(7),
                network: Some("198.51.100.0/29".into()),
                ..Series::default()
            },
            Series {
                bucket_us: Some(DAY_US / 4),
                asn: Some(15169),
                ..Series::default()
            },
        ] {
            out.push((format!("rtt {i} {series:?}"), query::rtt_series(s, f, &series).unwrap()));
        }
        for host in ["198.51.100.3", "198.51.100.7", "10.0.0.2"] {
            out.push((format!("host {host} {i}"), query::host(s, host, f).unwrap()));
        }
    }
    out.push(("counts".into(), json!(s.counts().unwrap())));
    out
}

fn fill(s: &mut Store) {
    for (k, sensor) in ["gw1", "gw2", "gw3"].iter().enumerate() {
        let all = events(k as u64, 1, 1500);
        for chunk in all.chunks(200) {
            s.insert(&batch(sensor, chunk), 7).unwrap();
        }
    }
}

#[test]
fn postgres_answers_every_query_as_sqlite_does() {
    let Some((_server, at)) = server() else { return };
    let dir = tempfile::tempdir().unwrap();
    let mut lite = Store::open(&Location::Sqlite(dir.path().join("db.sqlite"))).unwrap();
    let mut pg = Store::open(&at).unwrap();
    fill(&mut lite);
    fill(&mut pg);
    let (a, b) = (answers(&lite), answers(&pg));
    assert_eq!(a.len(), b.len());
    let mut nonempty = 0;
    for ((name, x), (_, y)) in a.iter().zip(&b) {
        assert_eq!(x, y, "{name}: SQLite and PostgreSQL differ");
        nonempty += usize::from(x.to_string().len() > 40);
    }
    assert!(nonempty > a.len() / 2, "the fixture leaves most answers empty");
    assert_eq!(lite.sensors().unwrap().len(), 3);
    assert_eq!(lite.sensors().unwrap(), pg.sensors().unwrap());
    for sensor in ["gw1", "gw2", "gw3"] {
        assert_eq!(pg.sequence_numbers(sensor).unwrap(), (1..=1500).collect::<Vec<_>>());
    }
}

/// Three collectors storing the same batches of two sensors at once, in
/// different orders: each event once, the ranges merged.
#[test]
fn collectors_storing_the_same_batches_at_once_store_each_once() {
    let Some((server, at)) = server() else { return };
    drop(Store::open(&at).unwrap());
    let writers: Vec<_> = (0..3u64)
        .map(|w| {
            let at = at.clone();
            std::thread::spawn(move || {
                let mut s = Store::open(&at).unwrap();
                let mut stored = 0;
                for b in 0..40u64 {
                    let b = if w == 1 { 39 - b } else { b };
                    for sensor in ["gw1", "gw2"] {
                        let seqs: Vec<Value> = (b * 25 + 1..=b * 25 + 25)
                            .map(|seq| json!({"kind": "stats", "seq": seq, "ts_us": T0 + seq as i64}))
                            .collect();
                        stored += s.insert(&batch(sensor, &seqs), 0).unwrap().stored;
                    }
                }
                stored
            })
        })
        .collect();
    let stored: u64 = writers.into_iter().map(|w| w.join().unwrap()).sum();
    assert_eq!(stored, 2 * 1000, "each event stored by exactly one of them");
    let s = Store::open(&at).unwrap();
    assert_eq!(s.sequence_numbers("gw1").unwrap(), (1..=1000).collect::<Vec<_>>());
    assert_eq!(s.counts().unwrap()["gw2"]["stats"], 1000);
    let ranges: Vec<(i64, i64)> = server
        .client()
        .query("SELECT first, last FROM stored_ranges WHERE sensor = 'gw1'", &[])
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(ranges, [(1, 1000)]);
}

#[test]
fn retention_drops_whole_days_and_their_counts() {
    let Some((server, at)) = server() else { return };
    let mut s = Store::open(&at).unwrap();
    let day = |d: i64, seq: u64| json!({"kind": "stats", "seq": seq, "ts_us": T0 + d * DAY_US + 5});
    let evs: Vec<Value> = (0..4)
        .flat_map(|d| (1..=10).map(move |i| day(d, d as u64 * 10 + i)))
        .collect();
    s.insert(&batch("gw1", &evs), 0).unwrap();
    // Another collector that wrote on day 0 (and knows its partition).
    let mut other = Store::open(&at).unwrap();
    other.insert(&batch("gw2", &[day(0, 1)]), 0).unwrap();
    let partitions = |server: &Server| -> i64 {
        server
            .client()
            .query_one(
                "SELECT count(*) FROM pg_inherits WHERE inhparent = 'events'::regclass",
                &[],
            )
            .unwrap()
            .get(0)
    };
    assert_eq!(partitions(&server), 4, "one partition per day");
    // A cutoff in the middle of day 2: days 0 and 1 go whole; day 2 stays.
    assert_eq!(s.expire(T0 + 2 * DAY_US + DAY_US / 2).unwrap(), 21);
    assert_eq!(partitions(&server), 2);
    assert_eq!(s.counts().unwrap()["gw1"]["stats"], 20);
    assert!(
        !s.counts().unwrap().contains_key("gw2"),
        "its only event went with day 0"
    );
    // The other collector, which still thinks day 0 is there, stores a
    // late event of that day (the day is made again).
    assert_eq!(other.insert(&batch("gw2", &[day(0, 2)]), 0).unwrap().stored, 1);
    assert_eq!(partitions(&server), 3);
    assert_eq!(s.sequence_numbers("gw1").unwrap(), (21..=40).collect::<Vec<_>>());
    // A late re-send of a dropped day is a duplicate (the ranges stay);
    // a new event on that day makes its partition again.
    let r = s.insert(&batch("gw1", &[day(0, 1), day(0, 41)]), 0).unwrap();
    assert_eq!((r.stored, r.duplicates), (1, 1));
    // A batch spread over 20 days without partitions (a quiet sensor's
    // spool after a long outage) is stored: its days are made, 8 at a
    // time, never refused (that would stall the sensor's spool).
    let far: Vec<Value> = (0..20).map(|d| day(100 + d * 2, 100 + d as u64)).collect();
    assert_eq!(s.insert(&batch("gw1", &far), 0).unwrap().stored, 20);
    assert_eq!(s.counts().unwrap()["gw1"]["stats"], 41);
    assert_eq!(partitions(&server), 23);
}

#[test]
fn migrate_copies_a_sqlite_database_once() {
    let Some((_server, at)) = server() else { return };
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("old.sqlite");
    let mut lite = Store::open(&Location::Sqlite(file.clone())).unwrap();
    fill(&mut lite);
    drop(lite);
    let mut pg = Store::open(&at).unwrap();
    // A sensor already sending to the new store: its events there count
    // as present.
    pg.insert(&batch("gw1", &events(0, 1, 1500)[..100]), 7).unwrap();
    let source = rusqlite::Connection::open(&file).unwrap();
    let c = net_gazer_collector::migrate::copy(&source, &mut pg).unwrap();
    assert_eq!((c.stored, c.present), (4400, 100));
    let c = net_gazer_collector::migrate::copy(&source, &mut pg).unwrap();
    assert_eq!((c.stored, c.present), (0, 4500), "a second run copies nothing");
    let lite = Store::open(&Location::Sqlite(file)).unwrap();
    assert_eq!(answers(&lite), answers(&pg));
}

/// The server restarts between two batches: the first attempt after it
/// fails as "try again later" (a collector backs off), the next
/// reconnects and stores.
#[test]
fn a_restarted_server_is_reconnected() {
    let Some((mut server, at)) = server() else { return };
    let mut s = Store::open(&at).unwrap();
    let reader = Store::open_reader(&at, std::time::Duration::from_secs(5)).unwrap();
    let evs = events(1, 1, 300);
    s.insert(&batch("gw1", &evs[..100]), 0).unwrap();
    assert_eq!(reader.sequence_numbers("gw1").unwrap().len(), 100);
    server.restart();
    // A reader kept idle over the restart answers at once (it connects
    // again by itself).
    assert_eq!(reader.sequence_numbers("gw1").unwrap().len(), 100);
    let mut failures = 0;
    let stored = loop {
        match s.insert(&batch("gw1", &evs[100..]), 0) {
            Ok(r) => break r,
            Err(e) => {
                assert!(e.is_transient(), "{e}");
                failures += 1;
                assert!(failures < 5, "{e}");
            }
        }
    };
    assert_eq!(stored.stored, 200);
    assert_eq!(s.sequence_numbers("gw1").unwrap(), (1..=300).collect::<Vec<_>>());
    s.probe_write(1).unwrap();
}

/// `sslmode=require`: TLS with the server's certificate verified against
/// `tls_ca_file`; without that CA (the system's CAs) the connection is
/// refused, and a plain one is refused by a server that takes TLS only.
#[test]
fn tls_connections_verify_the_server() {
    let Some((server, ca)) = Server::start_tls() else {
        return;
    };
    let at = |url: String, tls_ca_file: Option<std::path::PathBuf>| {
        Location::Postgres(store::postgres::Settings {
            url,
            connect_timeout: std::time::Duration::from_secs(5),
            graph_queue: false,
            tls_ca_file,
        })
    };
    let tls_url = format!("{} sslmode=require", server.url());
    let mut s = Store::open(&at(tls_url.clone(), Some(ca))).unwrap();
    s.insert(&batch("gw1", &events(2, 1, 50)), 0).unwrap();
    assert_eq!(s.sequence_numbers("gw1").unwrap().len(), 50);
    let mut ssl = None;
    s.each("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()", &[], |r| {
        ssl = Some(r.get::<bool>(0)?);
        Ok(())
    })
    .unwrap();
    assert_eq!(ssl, Some(true), "the connection is encrypted");

    let e = Store::open(&at(tls_url, None)).err().expect("an unknown CA is refused");
    assert!(e.to_string().contains("certificate"), "{e}");
    let e = Store::open(&at(server.url(), None))
        .err()
        .expect("plain is refused by a TLS-only server");
    assert!(e.to_string().contains("pg_hba.conf"), "{e}");
}

/// A query past `query_timeout` is stopped by the server itself
/// (`statement_timeout` on reading connections), and one stopped by the
/// collector (its timer) through the connection's cancel request.
#[test]
fn queries_past_their_time_are_stopped() {
    let Some((_server, at)) = server() else { return };
    let sleep = "SELECT pg_sleep(30)";
    let reader = Store::open_reader(&at, std::time::Duration::from_secs(1)).unwrap();
    let e = reader.each(sleep, &[], |_| Ok(())).unwrap_err();
    assert!(e.to_string().contains("statement timeout"), "{e}");
    assert_eq!(
        reader.counts().unwrap().len(),
        0,
        "the connection serves the next query"
    );

    let reader = Store::open_reader(&at, std::time::Duration::from_secs(60)).unwrap();
    let stop = reader.interrupt_handle();
    let stopper = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(500));
        stop.interrupt();
    });
    let e = reader.each(sleep, &[], |_| Ok(())).unwrap_err();
    stopper.join().unwrap();
    assert!(e.to_string().contains("canceling statement due to user request"), "{e}");
}
