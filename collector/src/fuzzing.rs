//! The bodies of the collector's fuzz targets (`fuzz/fuzz_targets/`), kept
//! here so that `cargo test` replays their corpora on the stable toolchain
//! (`collector/tests/fuzz_corpus.rs`; docs/reliability.md). Each takes any
//! bytes and must never panic, hang or allocate without bound.

use std::cell::RefCell;

use rusqlite::params;

use crate::ingest;
use crate::query::{self, Filter, Series};
use crate::store::Store;

thread_local! {
    /// One in-memory database per thread, emptied now and then: the
    /// "temporary database" of the ingest target.
    static STORE: RefCell<Option<(Store, u32)>> = const { RefCell::new(None) };
}

fn with_store(f: impl FnOnce(&mut Store)) {
    STORE.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.as_ref().is_none_or(|(_, uses)| *uses >= 500) {
            *slot = Some((Store::in_memory().expect("an in-memory database"), 0));
        }
        if let Some((store, uses)) = slot.as_mut() {
            *uses += 1;
            f(store);
        }
    });
}

/// A batch body, as `POST /api/v1/events` reads it: parsed and checked,
/// its valid events stored, then every query run over what is stored.
/// Nothing that passed the checks may fail to store, and no query may fail
/// on what was stored.
pub fn ingest(data: &[u8]) {
    let Ok(batch) = ingest::parse(data) else { return };
    for r in &batch.refused {
        assert!(r.index < batch.rows.len() + batch.refused.len());
    }
    with_store(|store| {
        store.insert(&batch, 1).expect("checked events are stored");
        run_queries(store, batch.rows.first().map(remote_of).as_deref());
    });
}

/// The remote host of a stored row, for the one-host query.
fn remote_of(row: &ingest::Row) -> String {
    let text = |v: Option<&serde_json::Value>| v.and_then(|v| v.as_str()).unwrap_or("192.0.2.1").to_string();
    match &row.fields {
        ingest::Fields::Handshake(h) => {
            let side = if h.direction.as_str() == Some("inbound") {
                &h.client_ip
            } else {
                &h.server_ip
            };
            side.as_str().unwrap_or("192.0.2.1").to_string()
        }
        ingest::Fields::Other(e) => text(e.get("server_ip").or_else(|| e.get("dst_ip"))),
    }
}

/// Every query of the API, with filters from the data; each must answer.
fn run_queries(store: &Store, host: Option<&str>) {
    let filters = [
        Filter::default(),
        Filter {
            since_us: Some(i64::MIN),
            until_us: Some(i64::MAX),
            ..Filter::default()
        },
    ];
    for f in &filters {
        query::hosts(store, f).expect("hosts");
        query::graph(store, f).expect("graph");
        query::inbound(store, f).expect("inbound");
        query::internal(store, f).expect("internal");
        query::host(store, host.unwrap_or("192.0.2.1"), f).expect("host");
        for s in [
            Series::default(),
            Series {
                buckets: Some(1),
                ..Series::default()
            },
            Series {
                bucket_us: Some(i64::MAX),
                ..Series::default()
            },
            Series {
                buckets: Some(u32::MAX),
                ..Series::default()
            },
        ] {
            query::rtt_series(store, f, &s).expect("rtt");
        }
    }
    store.counts().expect("counts");
}

/// Reads bytes in order, zero once they run out.
struct Bytes<'a>(&'a [u8]);

impl Bytes<'_> {
    fn i64(&mut self) -> i64 {
        let mut b = [0u8; 8];
        for x in &mut b {
            if let Some((&first, rest)) = self.0.split_first() {
                *x = first;
                self.0 = rest;
            }
        }
        i64::from_le_bytes(b)
    }
}

/// Rows with any values at all (what an older collector, or a hand-edited
/// database, may hold) under every query: each must still answer.
pub fn stored_values(data: &[u8]) {
    let mut b = Bytes(data);
    let store = Store::in_memory().expect("an in-memory database");
    let conn = store.sqlite().expect("an in-memory SQLite database").conn_for_tests();
    let mut n = 0;
    while !b.0.is_empty() && n < 64 {
        n += 1;
        let (ts, rtt, port, pick) = (b.i64(), b.i64(), b.i64(), b.i64());
        let remote = ["192.0.2.1", "198.51.100.7", "not an address", ""][(pick & 3) as usize];
        let outcome = ["established", "refused", "unanswered", "odd"][((pick >> 2) & 3) as usize];
        let direction = ["outbound", "inbound", "internal", "transit"][((pick >> 4) & 3) as usize];
        conn.execute(
            "INSERT INTO handshakes_new (sensor, seq, id, ts_us, client_ip, client_port, server_ip, server_port,
                direction, outcome, rtt_us, syn_count, remote_ip, asn, lat, lon)
             VALUES ('gw1', ?1, ?2, ?3, '10.0.0.1', ?4, ?5, ?4, ?6, ?7, ?8, ?2, ?5, ?2, ?8, ?8)",
            params![
                n,
                pick,
                ts,
                port,
                remote,
                direction,
                outcome,
                f64::from_bits(rtt as u64)
            ],
        )
        .expect("a handshake row");
        conn.execute(
            "INSERT INTO flows (sensor, seq, id, ts_us, end_us, client_ip, client_port, server_ip, server_port,
                direction, remote_ip, duration_us, packets_c2s, bytes_s2c, retrans_s2c)
             VALUES ('gw1', ?1, ?2, ?3, ?2, '10.0.0.1', ?4, ?5, ?4, ?6, ?5, ?7, ?2, ?3, ?4)",
            params![n, pick, ts, port, remote, direction, f64::from_bits(rtt as u64)],
        )
        .expect("a flow row");
        conn.execute(
            "INSERT INTO routes (sensor, seq, id, ts_us, src_ip, dst_ip, reached, hop_count, changed)
             VALUES ('gw1', ?1, ?2, ?3, '10.0.0.254', ?4, 1, ?2, 0)",
            params![n, pick, ts, remote],
        )
        .expect("a route row");
        conn.execute(
            "INSERT INTO hops (sensor, route_seq, ttl, addr, sent, received, rtt_avg_us)
             VALUES ('gw1', ?1, ?2, ?3, ?2, ?4, ?5)",
            params![n, pick, remote, port, f64::from_bits(ts as u64)],
        )
        .expect("a hop row");
        conn.execute(
            "INSERT INTO scans (sensor, seq, ts_us, src_ip, scan_type, phase, target_port, distinct_count)
             VALUES ('gw1', ?1, ?2, ?3, 'port_scan', 'detected', ?4, ?4)",
            params![n, ts, remote, port],
        )
        .expect("a scan row");
    }
    run_queries(&store, Some("192.0.2.1"));
}

/// The collector's configuration file: whatever it accepts is usable.
pub fn collector_config(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let Ok(config) = crate::config::Config::parse(&text) else {
        return;
    };
    net_gazer_common::range::assert_usable(&config.bounds());
    let printed = toml::to_string(&config).expect("prints");
    assert_eq!(
        crate::config::Config::parse(&printed).ok(),
        Some(config),
        "prints back as the same settings"
    );
}
