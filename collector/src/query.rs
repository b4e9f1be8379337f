//! The read side: remote hosts with their RTT and failures, the graph of
//! local hosts → hops → remote hosts, and one host's detail. Every filter
//! is a bound parameter.

use std::collections::{BTreeMap, BTreeSet};

use rusqlite::types::Value as Sql;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::store::Store;

/// Filters common to the queries (all optional).
#[derive(Clone, Debug, Default, Deserialize)]
pub struct Filter {
    /// Window, µs since the epoch (inclusive).
    pub since_us: Option<i64>,
    pub until_us: Option<i64>,
    pub sensor: Option<String>,
    /// `outbound`, `inbound`, `internal`, `transit`.
    pub direction: Option<String>,
    /// The server port.
    pub port: Option<u16>,
}

impl Filter {
    /// ` AND …` conditions on the handshakes table and their values.
    fn clause(&self) -> (String, Vec<Sql>) {
        let mut sql = String::new();
        let mut values = Vec::new();
        let mut add = |cond: &str, v: Sql| {
            sql.push_str(" AND ");
            sql.push_str(cond);
            values.push(v);
        };
        if let Some(v) = self.since_us {
            add("ts_us >= ?", Sql::Integer(v));
        }
        if let Some(v) = self.until_us {
            add("ts_us <= ?", Sql::Integer(v));
        }
        if let Some(v) = &self.sensor {
            add("sensor = ?", Sql::Text(v.clone()));
        }
        if let Some(v) = &self.direction {
            add("direction = ?", Sql::Text(v.clone()));
        }
        if let Some(v) = self.port {
            add("server_port = ?", Sql::Integer(v.into()));
        }
        (sql, values)
    }
}

/// The `p`-th percentile (0–100) of sorted values, nearest rank.
fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil().max(1.0) as usize;
    sorted.get(rank - 1).copied()
}

#[derive(Default)]
struct Host {
    outcomes: BTreeMap<String, u64>,
    rtts: Vec<f64>,
    ports: BTreeSet<i64>,
    last_us: i64,
    geo: Value,
}

/// One row per remote host of the handshakes in the filter, most attempts
/// first.
pub fn hosts(store: &Store, f: &Filter) -> rusqlite::Result<Value> {
    let (clause, values) = f.clause();
    let sql = format!(
        "SELECT remote_ip, outcome, rtt_us, server_port, ts_us, country, city, lat, lon, asn, org
         FROM handshakes WHERE 1 = 1{clause}"
    );
    let mut q = store.conn().prepare(&sql)?;
    let mut rows = q.query(rusqlite::params_from_iter(values))?;
    let mut hosts: BTreeMap<String, Host> = BTreeMap::new();
    while let Some(r) = rows.next()? {
        let h = hosts.entry(r.get::<_, String>(0)?).or_default();
        *h.outcomes.entry(r.get::<_, String>(1)?).or_default() += 1;
        if let Some(rtt) = r.get::<_, Option<f64>>(2)? {
            h.rtts.push(rtt);
        }
        h.ports.insert(r.get(3)?);
        let ts: i64 = r.get(4)?;
        if ts >= h.last_us {
            h.last_us = ts;
            h.geo = json!({"country": r.get::<_, Option<String>>(5)?, "city": r.get::<_, Option<String>>(6)?,
                "lat": r.get::<_, Option<f64>>(7)?, "lon": r.get::<_, Option<f64>>(8)?,
                "asn": r.get::<_, Option<i64>>(9)?, "org": r.get::<_, Option<String>>(10)?});
        }
    }
    let mut out: Vec<Value> = hosts
        .into_iter()
        .map(|(ip, mut h)| {
            h.rtts.sort_by(f64::total_cmp);
            let n = |k: &str| h.outcomes.get(k).copied().unwrap_or(0);
            json!({"ip": ip, "attempts": h.outcomes.values().sum::<u64>(),
                "established": n("established"), "refused": n("refused"), "unanswered": n("unanswered"),
                "rtt_min_us": h.rtts.first(), "rtt_p50_us": percentile(&h.rtts, 50.0),
                "rtt_p95_us": percentile(&h.rtts, 95.0), "ports": h.ports, "last_us": h.last_us, "geo": h.geo})
        })
        .collect();
    out.sort_by_key(|h| std::cmp::Reverse(h["attempts"].as_u64().unwrap_or(0)));
    Ok(json!({ "hosts": out }))
}

/// The graph: local hosts, remote hosts and the hops between, with the
/// connections (local → remote) and the latest path to each remote host
/// (sensor → hop → … → remote).
pub fn graph(store: &Store, f: &Filter) -> rusqlite::Result<Value> {
    let (clause, values) = f.clause();
    let sql = format!(
        "SELECT CASE WHEN direction = 'inbound' THEN server_ip ELSE client_ip END, remote_ip, count(*),
                count(CASE WHEN outcome != 'established' THEN 1 END), min(rtt_us), max(country), max(asn)
         FROM handshakes WHERE 1 = 1{clause} GROUP BY 1, 2"
    );
    let mut nodes: BTreeMap<String, Value> = BTreeMap::new();
    let mut links = Vec::new();
    let mut q = store.conn().prepare(&sql)?;
    let mut rows = q.query(rusqlite::params_from_iter(values))?;
    let mut remotes = BTreeSet::new();
    while let Some(r) = rows.next()? {
        let (local, remote): (String, String) = (r.get(0)?, r.get(1)?);
        let count: i64 = r.get(2)?;
        nodes
            .entry(local.clone())
            .or_insert_with(|| json!({"id": local, "kind": "local"}));
        nodes.insert(
            remote.clone(),
            json!({"id": remote, "kind": "remote", "country": r.get::<_, Option<String>>(5)?, "asn": r.get::<_, Option<i64>>(6)?}),
        );
        links.push(
            json!({"source": local, "target": remote, "kind": "connection", "count": count,
            "failures": r.get::<_, i64>(3)?, "rtt_min_us": r.get::<_, Option<f64>>(4)?}),
        );
        remotes.insert(remote);
    }
    // The latest route to each remote host in the graph.
    let mut latest = store
        .conn()
        .prepare_cached("SELECT sensor, seq, src_ip FROM routes WHERE dst_ip = ?1 ORDER BY ts_us DESC LIMIT 1")?;
    let mut hops_of = store.conn().prepare_cached(
        "SELECT ttl, addr, rtt_avg_us, country, asn FROM hops WHERE sensor = ?1 AND route_seq = ?2 ORDER BY ttl",
    )?;
    for remote in &remotes {
        let Some((sensor, seq, src)) = latest
            .query_row([remote], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?, r.get::<_, String>(2)?))
            })
            .ok()
        else {
            continue;
        };
        nodes
            .entry(src.clone())
            .or_insert_with(|| json!({"id": src, "kind": "sensor"}));
        let mut prev = src;
        let mut hops = hops_of.query(rusqlite::params![sensor, seq])?;
        while let Some(h) = hops.next()? {
            let Some(addr) = h.get::<_, Option<String>>(1)? else {
                continue;
            };
            if &addr != remote {
                nodes.entry(addr.clone()).or_insert_with(|| {
                    json!({"id": addr, "kind": "hop", "country": h.get::<_, Option<String>>(3).ok().flatten(),
                        "asn": h.get::<_, Option<i64>>(4).ok().flatten()})
                });
            }
            links.push(
                json!({"source": prev, "target": addr, "kind": "path", "ttl": h.get::<_, i64>(0)?,
                "rtt_avg_us": h.get::<_, Option<f64>>(2)?}),
            );
            prev = addr;
        }
    }
    Ok(json!({"nodes": nodes.into_values().collect::<Vec<_>>(), "links": links}))
}

/// One remote host: its RTTs over time, ports, and its routes (latest
/// first, with hops).
pub fn host(store: &Store, ip: &str, f: &Filter) -> rusqlite::Result<Value> {
    let (clause, mut values) = f.clause();
    values.insert(0, Sql::Text(ip.to_string()));
    let sql = format!(
        "SELECT ts_us, rtt_us, outcome, server_port, sensor FROM handshakes WHERE remote_ip = ?{clause} ORDER BY ts_us"
    );
    let mut q = store.conn().prepare(&sql)?;
    let series: Vec<Value> = q
        .query_map(rusqlite::params_from_iter(values), |r| {
            Ok(
                json!({"ts_us": r.get::<_, i64>(0)?, "rtt_us": r.get::<_, Option<f64>>(1)?,
                "outcome": r.get::<_, String>(2)?, "port": r.get::<_, i64>(3)?, "sensor": r.get::<_, String>(4)?}),
            )
        })?
        .collect::<Result<_, _>>()?;
    let mut routes_q = store.conn().prepare_cached(
        "SELECT sensor, seq, ts_us, protocol, reached, hop_count, changed FROM routes WHERE dst_ip = ?1 ORDER BY ts_us DESC LIMIT 20",
    )?;
    let mut hops_q = store.conn().prepare_cached(
        "SELECT ttl, addr, rtt_avg_us, sent, received FROM hops WHERE sensor = ?1 AND route_seq = ?2 ORDER BY ttl",
    )?;
    let heads: Vec<(String, i64, Value)> = routes_q
        .query_map([ip], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, i64>(1)?,
                json!({"ts_us": r.get::<_, i64>(2)?, "protocol": r.get::<_, Option<String>>(3)?,
                    "reached": r.get::<_, bool>(4)?, "hop_count": r.get::<_, Option<i64>>(5)?, "changed": r.get::<_, bool>(6)?}),
            ))
        })?
        .collect::<Result<_, _>>()?;
    let mut routes = Vec::new();
    for (sensor, seq, mut route) in heads {
        let hops: Vec<Value> = hops_q
            .query_map(rusqlite::params![sensor, seq], |h| {
                Ok(
                    json!({"ttl": h.get::<_, i64>(0)?, "addr": h.get::<_, Option<String>>(1)?,
                    "rtt_avg_us": h.get::<_, Option<f64>>(2)?, "sent": h.get::<_, Option<i64>>(3)?,
                    "received": h.get::<_, Option<i64>>(4)?}),
                )
            })?
            .collect::<Result<_, _>>()?;
        route["hops"] = Value::Array(hops);
        routes.push(route);
    }
    let ports: BTreeSet<i64> = series.iter().filter_map(|s| s["port"].as_i64()).collect();
    Ok(json!({"ip": ip, "rtt": series, "ports": ports, "routes": routes}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), Some(50.0));
        assert_eq!(percentile(&v, 95.0), Some(95.0));
        assert_eq!(percentile(&[7.0], 95.0), Some(7.0));
        assert_eq!(percentile(&[], 50.0), None);
    }
}
