//! Ingest benchmark (scripts/bench-collector.sh, docs/benchmarks.md):
//! events per second into SQLite through the collector's own path (check
//! each batch, then store it in one transaction with duplicate detection),
//! against a plain bulk insert of the same rows (one prepared INSERT in one
//! transaction, nothing checked) in the same run, on one thread; then the
//! same batches over HTTP to a running collector when a URL is given.
//!
//!   ingest_bench DIR [EVENTS] [BATCH] [URL TOKEN]
//!
//! With `NG_BENCH_POSTGRES` (a connection string), the same into
//! PostgreSQL first: the collector's path (`COPY` into the partitioned
//! tables, with the stored ranges) against a plain `COPY` of the same rows
//! into one table, and against multi-row `INSERT`s of them.

use std::time::Instant;

use net_gazer_collector::ingest;
use net_gazer_collector::store::{Location, Store};

fn event(seq: u64) -> serde_json::Value {
    serde_json::json!({"kind": "handshake", "seq": seq, "ts": "2026-11-26T10:00:00.000000Z",
        "ts_us": 1_795_600_000_000_000i64 + seq as i64, "id": seq,
        "client_ip": format!("10.0.{}.{}", (seq >> 8) & 255, seq & 255), "client_port": 40000 + seq % 20000,
        "server_ip": format!("192.0.2.{}", seq % 250), "server_port": 443, "ip_version": 4,
        "direction": "outbound", "outcome": "established", "completed": true, "syn_count": 1,
        "rtt_last_syn_us": 1234.567, "rtt_first_syn_us": 1234.567, "client_ttl": 64, "server_ttl": 52,
        "tags": {"geo.country": "GB", "asn": "15169"}})
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let dir = std::path::PathBuf::from(
        args.get(1)
            .ok_or("usage: ingest_bench DIR [EVENTS] [BATCH] [URL TOKEN]")?,
    );
    let n: u64 = args.get(2).map(|s| s.parse()).transpose()?.unwrap_or(200_000);
    let batch: u64 = args.get(3).map(|s| s.parse()).transpose()?.unwrap_or(1000);
    let bodies: Vec<Vec<u8>> = (0..n.div_ceil(batch))
        .map(|b| {
            let events: Vec<_> = (b * batch + 1..=((b + 1) * batch).min(n)).map(event).collect();
            serde_json::to_vec(&serde_json::json!({"sensor": "bench", "events": events})).unwrap_or_default()
        })
        .collect();

    if let Ok(url) = std::env::var("NG_BENCH_POSTGRES") {
        postgres_bench(&url, &bodies, n)?;
    }

    // The collector's path.
    let _ = std::fs::remove_file(dir.join("collector.sqlite"));
    // As the collector opens it: ingest on one connection, checkpoints on
    // another, every 250 ms (on the same pinned core: taskset pins the
    // whole process).
    let mut store = Store::open_ingest(&Location::Sqlite(dir.join("collector.sqlite")))?;
    net_gazer_collector::store::spawn_checkpointer(
        &dir.join("collector.sqlite"),
        std::time::Duration::from_millis(250),
    )?;
    let started = Instant::now();
    let mut parsing = 0.0;
    for body in &bodies {
        let t = Instant::now();
        let b = ingest::parse(body)?;
        parsing += t.elapsed().as_secs_f64();
        store.insert(&b, 0)?;
    }
    let ours = started.elapsed().as_secs_f64();
    if std::env::var_os("INGEST_BENCH_PROFILE").is_some() {
        // Only the collector's path, for `perf record`.
        println!("collector path: {ours:.3} s, of which parsing {parsing:.3} s");
        return Ok(());
    }

    // The reference: the same rows, one prepared INSERT, one transaction per
    // batch, nothing parsed or checked.
    let rows: Vec<Vec<(u64, i64, String)>> = bodies
        .iter()
        .map(|b| {
            ingest::parse(b)
                .map(|p| p.rows.into_iter().map(|r| (r.seq, r.ts_us, r.json)).collect())
                .unwrap_or_default()
        })
        .collect();
    let _ = std::fs::remove_file(dir.join("plain.sqlite"));
    let mut conn = rusqlite::Connection::open(dir.join("plain.sqlite"))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.execute_batch("CREATE TABLE events (sensor TEXT, seq INTEGER, kind TEXT, ts_us INTEGER, json TEXT)")?;
    let started = Instant::now();
    for batch_rows in &rows {
        let tx = conn.transaction()?;
        {
            let mut ins = tx.prepare_cached("INSERT INTO events VALUES ('bench', ?1, 'handshake', ?2, ?3)")?;
            for (seq, ts, json) in batch_rows {
                ins.execute(rusqlite::params![*seq as i64, ts, json])?;
            }
        }
        tx.commit()?;
    }
    let plain = started.elapsed().as_secs_f64();
    println!("events: {n}, batches of {batch}");
    println!(
        "collector path (parse, check, insert with dedup): {ours:.3} s, {:.0} events/s",
        n as f64 / ours
    );
    println!(
        "plain bulk insert of the same rows:               {plain:.3} s, {:.0} events/s",
        n as f64 / plain
    );
    println!("  of which parsing and checking the batches: {parsing:.3} s");
    println!("ratio (collector / plain): {:.2}", ours / plain);

    if let (Some(url), Some(token)) = (args.get(4), args.get(5)) {
        let client = reqwest::blocking::Client::new();
        let started = Instant::now();
        for body in &bodies {
            let r = client
                .post(format!("{url}/api/v1/events"))
                .bearer_auth(token)
                .header("content-type", "application/json")
                .body(body.clone())
                .send()?;
            if !r.status().is_success() {
                return Err(format!("HTTP {}", r.status()).into());
            }
        }
        let http = started.elapsed().as_secs_f64();
        println!(
            "over HTTP to the running collector:               {http:.3} s, {:.0} events/s",
            n as f64 / http
        );
    }
    Ok(())
}

/// The PostgreSQL comparison (see the top of this file).
fn postgres_bench(url: &str, bodies: &[Vec<u8>], n: u64) -> Result<(), Box<dyn std::error::Error>> {
    use postgres::types::Type;
    let mut client = postgres::Client::connect(url, postgres::NoTls)?;
    client.batch_execute(
        "DROP TABLE IF EXISTS plain_copy, plain_insert;
         CREATE TABLE plain_copy (sensor TEXT, seq BIGINT, kind TEXT, ts_us BIGINT, json TEXT);
         CREATE TABLE plain_insert (sensor TEXT, seq BIGINT, kind TEXT, ts_us BIGINT, json TEXT);",
    )?;
    let settings = net_gazer_collector::store::postgres::Settings {
        url: url.to_string(),
        connect_timeout: std::time::Duration::from_secs(5),
        graph_queue: false,
        tls_ca_file: None,
    };
    let mut store = Store::open_ingest(&Location::Postgres(settings))?;
    let started = Instant::now();
    for body in bodies {
        store.insert(&ingest::parse(body)?, 0)?;
    }
    let ours = started.elapsed().as_secs_f64();
    let batches: Vec<Vec<(i64, i64, String)>> = bodies
        .iter()
        .map(|b| {
            ingest::parse(b)
                .map(|p| p.rows.into_iter().map(|r| (r.seq as i64, r.ts_us, r.json)).collect())
                .unwrap_or_default()
        })
        .collect();
    let started = Instant::now();
    for rows in &batches {
        let mut tx = client.transaction()?;
        let types = [Type::TEXT, Type::INT8, Type::TEXT, Type::INT8, Type::TEXT];
        let mut data = net_gazer_collector::store::postgres::CopyData::new(&types);
        for (seq, ts, json) in rows {
            data.row(&[&"bench", seq, &"handshake", ts, json])?;
        }
        data.send(&mut tx, "plain_copy", "sensor, seq, kind, ts_us, json")?;
        tx.commit()?;
    }
    let copy = started.elapsed().as_secs_f64();
    let started = Instant::now();
    for rows in &batches {
        let mut tx = client.transaction()?;
        // At most 13,000 rows of 5 values in one statement (65,535 parameters).
        for chunk in rows.chunks(13_000) {
            let values: Vec<String> = (0..chunk.len())
                .map(|i| format!("('bench', ${}, 'handshake', ${}, ${})", 3 * i + 1, 3 * i + 2, 3 * i + 3))
                .collect();
            let sql = format!("INSERT INTO plain_insert VALUES {}", values.join(", "));
            let params: Vec<&(dyn postgres::types::ToSql + Sync)> = chunk
                .iter()
                .flat_map(|(seq, ts, json)| [seq as &(dyn postgres::types::ToSql + Sync), ts, json])
                .collect();
            tx.execute(sql.as_str(), &params)?;
        }
        tx.commit()?;
    }
    let insert = started.elapsed().as_secs_f64();
    let rate = |s: f64| n as f64 / s;
    println!("PostgreSQL, events: {n}");
    println!(
        "collector path (parse, check, COPY with dedup): {ours:.3} s, {:.0} events/s",
        rate(ours)
    );
    println!(
        "plain COPY of the same rows:                    {copy:.3} s, {:.0} events/s",
        rate(copy)
    );
    println!(
        "plain multi-row INSERT of the same rows:        {insert:.3} s, {:.0} events/s",
        rate(insert)
    );
    println!("ratio (collector / plain COPY): {:.2}", copy / ours);
    println!("ratio (multi-row INSERT / COPY): {:.2}", copy / insert);
    Ok(())
}
