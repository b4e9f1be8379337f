//! The optional graph store: FalkorDB (the maintained successor of the
//! RedisGraph the original collector wrote to), filled from the routes in
//! SQLite by a thread of its own, so that ingest never waits for it.
//!
//! Model (graph `traceroute` by default, as in the original): every
//! address on a traced path is a `:hop {ip}` node, consecutive answering
//! addresses are linked by `[:next]`, so the original's queries —
//! `MATCH (n:hop) RETURN n`, `MATCH (a:hop {ip:'…'})-[:next*1..5]->(b)
//! RETURN a, b` — keep working. Richer: hops carry `ttl`, `rtt` (µs),
//! `asn`, `country`, `last_seen` (µs); `[:next]` carries `rtt` (what the
//! link adds, µs) and `last_seen`; a destination that answered also has
//! the label `:host`; `(:sensor {id})-[:at]->(:hop)` is where the sensor
//! traces from and `(:sensor)-[:traced]->(:host)` what it traced.
//!
//! Only parameterised Cypher: the query texts are constants and values
//! travel in FalkorDB's `CYPHER name=value …` parameter header, rendered
//! by [`Param`] (strings quoted and escaped, never spliced into a query).
//!
//! On SQLite, progress is kept in the graph itself (`(:sync {name:
//! 'routes'})` with the last SQLite route rowid written), so a graph that
//! was emptied or replaced is filled again from SQLite, and a FalkorDB that
//! was down catches up when it returns. On PostgreSQL, shared by many
//! collectors, each new route is queued in the database (`graph_queue`) in
//! the transaction that stores it, and the graph thread of any collector
//! with `[falkordb]` takes routes from the queue (a route held by one is
//! skipped by the others) and forgets them once written; a graph without
//! its `:sync` node gets every stored route queued again. The queries
//! `MERGE`, so a route written twice (a collector that died after writing
//! and before forgetting) changes nothing.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::store::postgres::Postgres;
use crate::store::sqlite::Sqlite;

/// `[falkordb]` in the collector's configuration.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct FalkorConfig {
    /// `redis://host:port` (or `redis://:password@host:port/`).
    pub url: String,
    /// The graph's name.
    pub graph: String,
    /// Routes written per round.
    pub batch: u32,
}

impl Default for FalkorConfig {
    fn default() -> Self {
        FalkorConfig {
            url: "redis://127.0.0.1:6379".into(),
            graph: "traceroute".into(),
            batch: 200,
        }
    }
}

/// A Cypher parameter value.
#[derive(Clone, Debug, PartialEq)]
pub enum Param {
    Null,
    Int(i64),
    Float(f64),
    Str(String),
    List(Vec<Param>),
    /// Keys are identifiers chosen by this module, never data.
    Map(Vec<(&'static str, Param)>),
}

impl Param {
    fn render(&self, out: &mut String) {
        match self {
            Param::Null => out.push_str("null"),
            Param::Int(n) => out.push_str(&n.to_string()),
            Param::Float(f) if f.is_finite() => out.push_str(&format!("{f:?}")),
            Param::Float(_) => out.push_str("null"),
            Param::Str(s) => {
                out.push('\'');
                for c in s.chars() {
                    match c {
                        '\\' => out.push_str("\\\\"),
                        '\'' => out.push_str("\\'"),
                        '\n' => out.push_str("\\n"),
                        '\r' => out.push_str("\\r"),
                        c => out.push(c),
                    }
                }
                out.push('\'');
            }
            Param::List(items) => {
                out.push('[');
                for (i, p) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    p.render(out);
                }
                out.push(']');
            }
            Param::Map(entries) => {
                out.push('{');
                for (i, (k, p)) in entries.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(k);
                    out.push(':');
                    p.render(out);
                }
                out.push('}');
            }
        }
    }
}

impl From<Option<f64>> for Param {
    fn from(v: Option<f64>) -> Param {
        v.map_or(Param::Null, Param::Float)
    }
}

impl From<Option<i64>> for Param {
    fn from(v: Option<i64>) -> Param {
        v.map_or(Param::Null, Param::Int)
    }
}

impl From<Option<String>> for Param {
    fn from(v: Option<String>) -> Param {
        v.map_or(Param::Null, Param::Str)
    }
}

/// The text sent to `GRAPH.QUERY`: the parameter header, then the
/// constant query.
pub fn with_params(params: &[(&'static str, Param)], query: &'static str) -> String {
    let mut out = String::from("CYPHER ");
    for (name, p) in params {
        out.push_str(name);
        out.push('=');
        p.render(&mut out);
        out.push(' ');
    }
    out.push_str(query);
    out
}

const PATH: &str = "MERGE (s:sensor {id: $sensor}) SET s.last_seen = $ts
MERGE (o:hop {ip: $src}) SET o.last_seen = $ts
MERGE (s)-[a:at]->(o) SET a.last_seen = $ts
WITH s
UNWIND range(0, size($path) - 2) AS i
WITH $path[i] AS x, $path[i + 1] AS y
MERGE (a:hop {ip: x.ip})
MERGE (b:hop {ip: y.ip})
SET b.ttl = y.ttl, b.rtt = y.rtt, b.asn = y.asn, b.country = y.country, b.last_seen = $ts
MERGE (a)-[r:next]->(b)
SET r.rtt = y.delta, r.last_seen = $ts";

const HOST: &str = "MATCH (d:hop {ip: $dst}) SET d:host
WITH d MATCH (s:sensor {id: $sensor})
MERGE (s)-[t:traced]->(d) SET t.last_seen = $ts";

const CURSOR_GET: &str = "MATCH (c:sync {name: 'routes'}) RETURN c.last";
const CURSOR_SET: &str = "MERGE (c:sync {name: 'routes'}) SET c.last = $last";

pub use crate::store::{HopRow, RouteRow};

impl RouteRow {
    /// The queries that write this route.
    pub fn queries(&self) -> [String; 2] {
        let mut path = vec![Param::Map(vec![
            ("ip", Param::Str(self.src.clone())),
            ("ttl", Param::Int(0)),
            ("rtt", Param::Null),
            ("delta", Param::Null),
            ("asn", Param::Null),
            ("country", Param::Null),
        ])];
        let mut prev_rtt = 0.0;
        for (ttl, addr, rtt, asn, country) in &self.hops {
            let delta = rtt.map(|r| (r - prev_rtt).max(0.0));
            if let Some(r) = rtt {
                prev_rtt = *r;
            }
            path.push(Param::Map(vec![
                ("ip", Param::Str(addr.clone())),
                ("ttl", Param::Int(*ttl)),
                ("rtt", (*rtt).into()),
                ("delta", delta.into()),
                ("asn", (*asn).into()),
                ("country", country.clone().into()),
            ]));
        }
        let common = |extra: (&'static str, Param)| {
            vec![
                ("sensor", Param::Str(self.sensor.clone())),
                ("ts", Param::Int(self.ts_us)),
                extra,
            ]
        };
        let mut path_params = common(("src", Param::Str(self.src.clone())));
        path_params.push(("path", Param::List(path)));
        [
            with_params(&path_params, PATH),
            with_params(&common(("dst", Param::Str(self.dst.clone()))), HOST),
        ]
    }
}

/// Where the graph's routes come from.
pub enum Source {
    Sqlite(Sqlite),
    Postgres(Box<Postgres>),
}

/// Routes stored after `rowid` (at most `limit`), with their hops.
pub fn routes_after(store: &Sqlite, rowid: i64, limit: u32) -> rusqlite::Result<Vec<RouteRow>> {
    let conn = store.conn();
    let mut q = conn.prepare_cached(
        "SELECT rowid, sensor, seq, ts_us, src_ip, dst_ip FROM routes WHERE rowid > ?1 ORDER BY rowid LIMIT ?2",
    )?;
    let heads: Vec<(i64, String, i64, i64, String, String)> = q
        .query_map(rusqlite::params![rowid, limit], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?))
        })?
        .collect::<Result<_, _>>()?;
    let mut hops_q = conn.prepare_cached(
        "SELECT ttl, addr, rtt_avg_us, asn, country FROM hops
         WHERE sensor = ?1 AND route_seq = ?2 AND addr IS NOT NULL ORDER BY ttl",
    )?;
    let mut out = Vec::with_capacity(heads.len());
    for (rowid, sensor, seq, ts_us, src, dst) in heads {
        let hops = hops_q
            .query_map(rusqlite::params![sensor, seq], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
            })?
            .collect::<Result<_, _>>()?;
        out.push(RouteRow {
            rowid,
            sensor,
            ts_us,
            src,
            dst,
            hops,
        });
    }
    Ok(out)
}

/// What `/metrics` shows of the graph store.
#[derive(Default)]
pub struct GraphStats {
    pub routes_written: AtomicU64,
    pub errors: AtomicU64,
}

/// Starts the thread that keeps the graph filled from `source` (a
/// connection of its own).
pub fn spawn(config: FalkorConfig, mut source: Source, stats: Arc<GraphStats>) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("falkordb".into())
        .spawn(move || run(&config, &mut source, &stats))
        .map(|_| ())
}

fn run(config: &FalkorConfig, source: &mut Source, stats: &GraphStats) {
    let mut backoff = Duration::from_millis(500);
    let mut reported = false;
    // Kept across rounds; dropped on any error and made again.
    let mut con: Option<redis::Connection> = None;
    loop {
        match sync(config, source, stats, &mut con) {
            Ok(()) => {
                if reported {
                    tracing::info!(url = %config.url, "FalkorDB reachable again; the graph caught up");
                    reported = false;
                }
                backoff = Duration::from_millis(500);
                std::thread::sleep(Duration::from_secs(1));
            }
            Err(e) => {
                con = None;
                stats.errors.fetch_add(1, Ordering::Relaxed);
                if !reported {
                    tracing::warn!(url = %config.url, error = %e, "FalkorDB: cannot write the graph; retrying (ingest continues)");
                    reported = true;
                }
                std::thread::sleep(backoff);
                backoff = (backoff * 2).min(Duration::from_secs(30));
            }
        }
    }
}

#[derive(Debug, thiserror::Error)]
enum SyncError {
    #[error("{0}")]
    Redis(#[from] redis::RedisError),
    #[error("reading SQLite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("reading the store: {0}")]
    Store(#[from] crate::store::Error),
}

/// Writes every route not yet in the graph (connecting first if `con` is
/// empty).
fn sync(
    config: &FalkorConfig,
    source: &mut Source,
    stats: &GraphStats,
    con: &mut Option<redis::Connection>,
) -> Result<(), SyncError> {
    let con = match con {
        Some(c) => c,
        None => {
            let client = redis::Client::open(config.url.as_str())?;
            let c = client.get_connection_with_timeout(Duration::from_secs(5))?;
            c.set_read_timeout(Some(Duration::from_secs(30)))?;
            con.insert(c)
        }
    };
    match source {
        Source::Sqlite(store) => sync_sqlite(config, store, stats, con),
        Source::Postgres(store) => sync_postgres(config, store, stats, con),
    }
}

/// The routes queued in PostgreSQL, a batch at a time, until none is left.
fn sync_postgres(
    config: &FalkorConfig,
    store: &mut Postgres,
    stats: &GraphStats,
    con: &mut redis::Connection,
) -> Result<(), SyncError> {
    let synced = match query(con, &config.graph, CURSOR_GET.to_string())? {
        redis::Value::Array(parts) => first_int(&parts).is_some(),
        _ => false,
    };
    if !synced {
        let n = store.graph_refill()?;
        tracing::info!(
            routes = n,
            "FalkorDB: a new or emptied graph; every stored route queued for it"
        );
        query(con, &config.graph, with_params(&[("last", Param::Int(0))], CURSOR_SET))?;
    }
    loop {
        let written = store.graph_round(config.batch, |routes| -> Result<(), SyncError> {
            for r in routes {
                for q in r.queries() {
                    query(con, &config.graph, q)?;
                }
            }
            Ok(())
        })?;
        stats.routes_written.fetch_add(written as u64, Ordering::Relaxed);
        if written == 0 {
            return Ok(());
        }
    }
}

/// The routes after the graph's cursor in SQLite.
fn sync_sqlite(
    config: &FalkorConfig,
    store: &Sqlite,
    stats: &GraphStats,
    con: &mut redis::Connection,
) -> Result<(), SyncError> {
    let mut cursor = match query(con, &config.graph, CURSOR_GET.to_string())? {
        redis::Value::Array(parts) => first_int(&parts).unwrap_or(0),
        _ => 0,
    };
    // Routes deleted by retention down to an empty table start rowids
    // again from 1: start over.
    let max: i64 = store
        .conn()
        .query_row("SELECT coalesce(max(rowid), 0) FROM routes", [], |r| r.get(0))?;
    if max < cursor {
        cursor = 0;
    }
    loop {
        let routes = routes_after(store, cursor, config.batch)?;
        let Some(last) = routes.last().map(|r| r.rowid) else {
            return Ok(());
        };
        for r in &routes {
            for q in r.queries() {
                query(con, &config.graph, q)?;
            }
        }
        query(
            con,
            &config.graph,
            with_params(&[("last", Param::Int(last))], CURSOR_SET),
        )?;
        stats.routes_written.fetch_add(routes.len() as u64, Ordering::Relaxed);
        cursor = last;
    }
}

fn query(con: &mut redis::Connection, graph: &str, text: String) -> redis::RedisResult<redis::Value> {
    redis::cmd("GRAPH.QUERY").arg(graph).arg(text).query(con)
}

/// The first integer in a `GRAPH.QUERY` reply's rows.
fn first_int(reply: &[redis::Value]) -> Option<i64> {
    let redis::Value::Array(rows) = reply.get(1)? else {
        return None;
    };
    let redis::Value::Array(row) = rows.first()? else {
        return None;
    };
    match row.first()? {
        redis::Value::Int(n) => Some(*n),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_quoted_never_spliced() {
        let q = with_params(
            &[
                ("ip", Param::Str("1.2.3.4' }) DETACH DELETE n //\\".into())),
                ("n", Param::Int(-3)),
                ("f", Param::Float(f64::NAN)),
                (
                    "l",
                    Param::List(vec![Param::Map(vec![("a", Param::Float(1.5))]), Param::Null]),
                ),
            ],
            "RETURN $ip",
        );
        assert_eq!(
            q,
            "CYPHER ip='1.2.3.4\\' }) DETACH DELETE n //\\\\' n=-3 f=null l=[{a:1.5},null] RETURN $ip"
        );
    }

    #[test]
    fn a_route_is_a_chain_from_the_sensor_address() {
        let r = RouteRow {
            rowid: 7,
            sensor: "gw1".into(),
            ts_us: 10,
            src: "10.0.0.1".into(),
            dst: "192.0.2.9".into(),
            hops: vec![
                (1, "10.0.0.254".into(), Some(1000.0), None, None),
                (3, "192.0.2.9".into(), Some(5000.0), Some(64500), Some("GB".into())),
            ],
        };
        let [path, host] = r.queries();
        assert!(path.starts_with("CYPHER sensor='gw1' ts=10 src='10.0.0.1' path=[{ip:'10.0.0.1',ttl:0,"));
        assert!(path.contains("{ip:'192.0.2.9',ttl:3,rtt:5000.0,delta:4000.0,asn:64500,country:'GB'}"));
        assert!(host.starts_with("CYPHER sensor='gw1' ts=10 dst='192.0.2.9' MATCH"));
    }
}
