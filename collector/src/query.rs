//! The read side: remote hosts with their RTT and failures, the graph of
//! local hosts → hops → remote hosts, and one host's detail. Every filter
//! is a bound parameter.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::store::{Dialect, Param, Result, Store};

/// A parameter the filters bind.
type Sql = Param<'static>;

fn text(v: &str) -> Sql {
    Param::Text(v.to_owned().into())
}

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
    /// `established`, `refused`, `unanswered`, `incomplete`.
    pub outcome: Option<String>,
}

impl Filter {
    /// ` AND …` conditions on the handshakes table and their values.
    fn clause(&self) -> (String, Vec<Sql>) {
        self.conditions(true)
    }

    /// The same on the flows table, which has no outcome.
    fn flow_clause(&self) -> (String, Vec<Sql>) {
        self.conditions(false)
    }

    fn conditions(&self, with_outcome: bool) -> (String, Vec<Sql>) {
        let mut sql = String::new();
        let mut values = Vec::new();
        let mut add = |cond: &str, v: Sql| {
            sql.push_str(" AND ");
            sql.push_str(cond);
            values.push(v);
        };
        if let Some(v) = self.since_us {
            add("ts_us >= ?", Sql::Int(v));
        }
        if let Some(v) = self.until_us {
            add("ts_us <= ?", Sql::Int(v));
        }
        if let Some(v) = &self.sensor {
            add("sensor = ?", text(v));
        }
        if let Some(v) = &self.direction {
            add("direction = ?", text(v));
        }
        if let Some(v) = self.port {
            add("server_port = ?", Sql::Int(v.into()));
        }
        if let Some(v) = self.outcome.as_ref().filter(|_| with_outcome) {
            add("outcome = ?", text(v));
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
    geo_us: i64,
    geo_tagged: bool,
}

/// One row per remote host of the handshakes in the filter, most attempts
/// first.
pub fn hosts(store: &Store, f: &Filter) -> Result<Value> {
    let (clause, values) = f.clause();
    let sql = format!(
        "SELECT remote_ip, outcome, rtt_us, server_port, ts_us, country, city, lat, lon, asn, org
         FROM all_handshakes WHERE 1 = 1{clause}"
    );
    let mut hosts: BTreeMap<String, Host> = BTreeMap::new();
    store.each(&sql, &values, |r| {
        let h = hosts.entry(r.get::<String>(0)?).or_default();
        *h.outcomes.entry(r.get::<String>(1)?).or_default() += 1;
        if let Some(rtt) = r.get::<Option<f64>>(2)? {
            h.rtts.push(rtt);
        }
        h.ports.insert(r.get(3)?);
        let ts: i64 = r.get(4)?;
        h.last_us = h.last_us.max(ts);
        // The latest handshake that was tagged (one that passed the chain
        // untagged, e.g. after a plugin timeout, does not erase the data).
        let (country, asn): (Option<String>, Option<i64>) = (r.get(5)?, r.get(9)?);
        let tagged = country.is_some() || asn.is_some();
        let newer = ts >= h.geo_us;
        if h.geo.is_null() || (tagged && (!h.geo_tagged || newer)) || (!h.geo_tagged && newer) {
            h.geo_us = ts;
            h.geo_tagged = tagged;
            h.geo = json!({"country": country, "city": r.get::<Option<String>>(6)?,
                "lat": r.get::<Option<f64>>(7)?, "lon": r.get::<Option<f64>>(8)?,
                "asn": asn, "org": r.get::<Option<String>>(10)?});
        }
        Ok(())
    })?;
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

#[derive(Serialize)]
pub struct Node {
    id: String,
    kind: &'static str,
    /// Handshakes this host took part in (local and remote hosts).
    #[serde(skip_serializing_if = "Option::is_none")]
    count: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    country: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    asn: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    org: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    lat: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    lon: Option<f64>,
}

/// GeoIP columns of a node, as the typed tables hold them.
#[derive(Default)]
struct Geo {
    country: Option<String>,
    asn: Option<i64>,
    org: Option<String>,
    lat: Option<f64>,
    lon: Option<f64>,
}

impl Node {
    fn new(id: &str, kind: &'static str, geo: Geo) -> Node {
        Node {
            id: id.to_string(),
            kind,
            count: None,
            country: geo.country,
            asn: geo.asn,
            org: geo.org,
            lat: geo.lat,
            lon: geo.lon,
        }
    }
}

#[derive(Serialize)]
pub struct Link {
    source: String,
    target: String,
    kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    count: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    failures: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    rtt_min_us: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ttl: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    rtt_avg_us: Option<f64>,
    /// What this hop adds to the previous answering hop's RTT: the slowest
    /// link of a path has the largest.
    #[serde(skip_serializing_if = "Option::is_none")]
    rtt_delta_us: Option<f64>,
    /// The link with the largest `rtt_delta_us` of its path.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    slowest: bool,
}

/// Marks the slowest link of one path (the largest RTT delta).
fn mark_slowest(path: &mut [Link]) {
    let slowest = path
        .iter_mut()
        .filter(|l| l.rtt_delta_us.is_some_and(|d| d > 0.0))
        .max_by(|a, b| a.rtt_delta_us.unwrap_or(0.0).total_cmp(&b.rtt_delta_us.unwrap_or(0.0)));
    if let Some(l) = slowest {
        l.slowest = true;
    }
}

/// What `GET /api/v1/graph` serves (typed, not a JSON tree: a graph of
/// 10,000 hosts has over 100,000 links).
#[derive(Serialize)]
pub struct Graph {
    pub nodes: Vec<Node>,
    pub links: Vec<Link>,
}

/// The graph: local hosts, remote hosts and the hops between, with the
/// connections (local → remote) and the latest path to each remote host
/// (sensor → hop → … → remote).
pub fn graph(store: &Store, f: &Filter) -> Result<Graph> {
    let (clause, values) = f.clause();
    let sql = format!(
        "SELECT CASE WHEN direction = 'inbound' THEN server_ip ELSE client_ip END, remote_ip, count(*),
                count(CASE WHEN outcome != 'established' THEN 1 END), min(rtt_us), max(country), max(asn),
                max(org), max(lat), max(lon), count(CASE WHEN direction = 'internal' THEN 1 END)
         FROM all_handshakes WHERE 1 = 1{clause} GROUP BY 1, 2 ORDER BY 1, 2"
    );
    // Looked up once per handshake pair and hop row; sorted at the end.
    let mut nodes: HashMap<String, Node> = HashMap::new();
    let mut links = Vec::new();
    store.each(&sql, &values, |r| {
        let (local, remote, count): (String, String, i64) = (r.get(0)?, r.get(1)?, r.get(2)?);
        let geo = Geo {
            country: r.get(5)?,
            asn: r.get(6)?,
            org: r.get(7)?,
            lat: r.get(8)?,
            lon: r.get(9)?,
        };
        // The server of an internal connection is a local host too.
        let remote_kind = if r.get::<i64>(10)? > 0 { "local" } else { "remote" };
        for (id, kind, geo) in [(&local, "local", Geo::default()), (&remote, remote_kind, geo)] {
            let n = nodes.entry(id.clone()).or_insert_with(|| Node::new(id, kind, geo));
            let c = n.count.get_or_insert(0);
            *c = c.saturating_add(count);
        }
        links.push(Link {
            source: local,
            target: remote,
            kind: "connection",
            count: Some(count),
            failures: Some(r.get(3)?),
            rtt_min_us: r.get(4)?,
            ttl: None,
            rtt_avg_us: None,
            rtt_delta_us: None,
            slowest: false,
        });
        Ok(())
    })?;
    // The hops of the latest route to each destination, in one pass.
    let latest = match store.dialect() {
        // SQLite takes the other columns of a max() aggregate from its row.
        Dialect::Sqlite => "SELECT dst_ip, src_ip, sensor, seq, max(ts_us) FROM routes GROUP BY dst_ip",
        Dialect::Postgres => {
            "SELECT DISTINCT ON (dst_ip) dst_ip, src_ip, sensor, seq FROM routes ORDER BY dst_ip, ts_us DESC"
        }
    };
    let sql = format!(
        "WITH latest AS ({latest})
         SELECT l.dst_ip, l.src_ip, h.ttl, h.addr, h.rtt_avg_us, h.country, h.asn, h.lat, h.lon
         FROM latest l JOIN hops h ON h.sensor = l.sensor AND h.route_seq = l.seq
         ORDER BY l.dst_ip, h.ttl"
    );
    // The destination whose hops the rows are on, and whether it is a
    // remote host of the graph (its hops are skipped otherwise).
    let mut current = String::new();
    let mut wanted = false;
    let mut prev = String::new();
    let mut prev_rtt: Option<f64> = None;
    let mut path_start = links.len();
    store.each(&sql, &[], |r| {
        let dst: String = r.get(0)?;
        if dst != current {
            current = dst;
            wanted = matches!(nodes.get(&current), Some(n) if n.kind == "remote");
            if wanted {
                let src: String = r.get(1)?;
                if !nodes.contains_key(&src) {
                    nodes.insert(src.clone(), Node::new(&src, "sensor", Geo::default()));
                }
                prev = src;
                prev_rtt = None;
                mark_slowest(&mut links[path_start..]);
                path_start = links.len();
            }
        }
        if !wanted {
            return Ok(());
        }
        let Some(addr) = r.get::<Option<String>>(3)? else {
            return Ok(());
        };
        if addr != current && !nodes.contains_key(&addr) {
            let geo = Geo {
                country: r.get(5)?,
                asn: r.get(6)?,
                org: None,
                lat: r.get(7)?,
                lon: r.get(8)?,
            };
            nodes.insert(addr.clone(), Node::new(&addr, "hop", geo));
        }
        let rtt: Option<f64> = r.get(4)?;
        links.push(Link {
            source: std::mem::replace(&mut prev, addr.clone()),
            target: addr,
            kind: "path",
            count: None,
            failures: None,
            rtt_min_us: None,
            ttl: Some(r.get(2)?),
            rtt_avg_us: rtt,
            rtt_delta_us: rtt.map(|now| (now - prev_rtt.unwrap_or(0.0)).max(0.0)),
            slowest: false,
        });
        prev_rtt = rtt.or(prev_rtt);
        Ok(())
    })?;
    mark_slowest(&mut links[path_start..]);
    let mut nodes: Vec<Node> = nodes.into_values().collect();
    nodes.sort_unstable_by(|a, b| a.id.cmp(&b.id));
    Ok(Graph {
        nodes,
        links: merge_paths(links),
    })
}

/// One path link per pair of addresses, however many routes pass there:
/// `count` is how many do; the RTT delta is the largest seen, `slowest`
/// whether it was the slowest link of any of them. (Routes to hosts
/// behind the same routers share most links: a graph of 5,000 nodes has
/// a third of the links it would have otherwise.)
fn merge_paths(links: Vec<Link>) -> Vec<Link> {
    use std::hash::{Hash, Hasher};
    let mut out: Vec<Link> = Vec::with_capacity(links.len());
    // Hash of (source, target) → index in `out`; a hit is checked against
    // the strings (two pairs with one hash stay two links: no wrong merge).
    let mut seen: HashMap<u64, usize> = HashMap::new();
    for mut l in links {
        if l.kind != "path" {
            out.push(l);
            continue;
        }
        let mut h = std::collections::hash_map::DefaultHasher::new();
        (&l.source, &l.target).hash(&mut h);
        let key = h.finish();
        let same = seen
            .get(&key)
            .copied()
            .filter(|&i| out[i].source == l.source && out[i].target == l.target);
        match same {
            Some(i) => {
                let m = &mut out[i];
                m.count = Some(m.count.unwrap_or(1) + 1);
                m.slowest |= l.slowest;
                if l.rtt_delta_us > m.rtt_delta_us {
                    m.rtt_delta_us = l.rtt_delta_us;
                }
            }
            None => {
                seen.entry(key).or_insert(out.len());
                l.count = Some(1);
                out.push(l);
            }
        }
    }
    out
}

/// One remote host: its RTTs over time, ports, and its routes (latest
/// first, with hops).
pub fn host(store: &Store, ip: &str, f: &Filter) -> Result<Value> {
    let (clause, mut values) = f.clause();
    values.insert(0, text(ip));
    let sql = format!(
        "SELECT ts_us, rtt_us, outcome, server_port, sensor FROM all_handshakes WHERE remote_ip = ?{clause}
         ORDER BY ts_us, sensor, seq"
    );
    let mut series: Vec<Value> = Vec::new();
    store.each(&sql, &values, |r| {
        series.push(json!({"ts_us": r.get::<i64>(0)?, "rtt_us": r.get::<Option<f64>>(1)?,
            "outcome": r.get::<String>(2)?, "port": r.get::<i64>(3)?, "sensor": r.get::<String>(4)?}));
        Ok(())
    })?;
    let mut heads: Vec<(String, i64, Value)> = Vec::new();
    store.each(
        "SELECT sensor, seq, ts_us, protocol, reached, hop_count, changed FROM routes WHERE dst_ip = ?
         ORDER BY ts_us DESC, sensor DESC, seq DESC LIMIT 20",
        &[text(ip)],
        |r| {
            heads.push((
                r.get(0)?,
                r.get(1)?,
                json!({"ts_us": r.get::<i64>(2)?, "protocol": r.get::<Option<String>>(3)?,
                    "reached": r.get::<bool>(4)?, "hop_count": r.get::<Option<i64>>(5)?, "changed": r.get::<bool>(6)?}),
            ));
            Ok(())
        },
    )?;
    let mut routes = Vec::new();
    for (sensor, seq, mut route) in heads {
        let mut hops: Vec<Value> = Vec::new();
        store.each(
            "SELECT ttl, addr, rtt_avg_us, sent, received FROM hops WHERE sensor = ? AND route_seq = ? ORDER BY ttl",
            &[Param::Text(sensor.into()), Param::Int(seq)],
            |h| {
                hops.push(json!({"ttl": h.get::<i64>(0)?, "addr": h.get::<Option<String>>(1)?,
                    "rtt_avg_us": h.get::<Option<f64>>(2)?, "sent": h.get::<Option<i64>>(3)?,
                    "received": h.get::<Option<i64>>(4)?}));
                Ok(())
            },
        )?;
        route["hops"] = Value::Array(hops);
        routes.push(route);
    }
    let ports: BTreeSet<i64> = series.iter().filter_map(|s| s["port"].as_i64()).collect();
    let flows = flow_quality(store, ip, f)?;
    Ok(json!({"ip": ip, "rtt": series, "ports": ports, "routes": routes, "flows": flows}))
}

/// The flow counters (capture mode `quality`) summed over the flows with
/// remote host `ip` in the filter, and how they ended.
fn flow_quality(store: &Store, ip: &str, f: &Filter) -> Result<Value> {
    let (clause, mut values) = f.flow_clause();
    values.insert(0, text(ip));
    // Summed as floating point, exact below 2^53, and the result
    // saturates: SQLite's integer sum() fails on overflow (two flows of
    // 2^62 packets would make the query fail for good), total() does not;
    // PostgreSQL's sum() of bigint is numeric, of double precision as here.
    let sums: Vec<String> = crate::store::FLOW_COUNTERS
        .iter()
        .map(|c| match store.dialect() {
            Dialect::Sqlite => format!("total({c})"),
            Dialect::Postgres => format!("coalesce(sum({c}::double precision), 0)"),
        })
        .collect();
    let sql = format!(
        "SELECT count(*), {} FROM flows WHERE remote_ip = ?{clause}",
        sums.join(", ")
    );
    let mut out = serde_json::Map::new();
    store.each(&sql, &values, |r| {
        out.insert("count".into(), r.get::<i64>(0)?.into());
        for (i, name) in crate::store::FLOW_COUNTERS.iter().enumerate() {
            // `as` saturates (and a NaN, impossible from a sum, is 0).
            out.insert((*name).into(), (r.get::<f64>(i + 1)? as u64).into());
        }
        Ok(())
    })?;
    let sql = format!("SELECT end_reason, count(*) FROM flows WHERE remote_ip = ?{clause} GROUP BY 1 ORDER BY 1");
    let mut ends = serde_json::Map::new();
    store.each(&sql, &values, |r| {
        ends.insert(
            r.get::<Option<String>>(0)?.unwrap_or_default(),
            Value::from(r.get::<i64>(1)?),
        );
        Ok(())
    })?;
    out.insert("end_reasons".into(), Value::Object(ends));
    Ok(Value::Object(out))
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

    #[test]
    fn networks_contain_their_hosts_only() {
        let n: Network = "192.0.2.0/24".parse().unwrap();
        assert!(n.contains("192.0.2.255".parse().unwrap()));
        assert!(!n.contains("192.0.3.0".parse().unwrap()));
        assert!(!n.contains("::ffff:192.0.2.1".parse().unwrap()), "families do not mix");
        let n: Network = "2001:db8::/32".parse().unwrap();
        assert!(n.contains("2001:db8:ffff::1".parse().unwrap()));
        assert!(!n.contains("2001:db9::1".parse().unwrap()));
        let all: Network = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains("203.0.113.9".parse().unwrap()));
        for bad in ["192.0.2.0", "192.0.2.0/33", "x/8", "::/129"] {
            assert!(bad.parse::<Network>().is_err(), "{bad}");
        }
    }
}

/// Who knocks: sources of inbound attempts that were refused or went
/// unanswered, and of scans, with what they tried.
pub fn inbound(store: &Store, f: &Filter) -> Result<Value> {
    let mut f = f.clone();
    f.direction = Some("inbound".into());
    let (clause, values) = f.clause();
    let sql = format!(
        "SELECT client_ip, server_ip, server_port, outcome, count(*), min(ts_us), max(ts_us), max(country), max(asn)
         FROM all_handshakes WHERE outcome != 'established'{clause} GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4"
    );
    #[derive(Default)]
    struct Source {
        refused: u64,
        unanswered: u64,
        other: u64,
        targets: Vec<Value>,
        first_us: i64,
        last_us: i64,
        country: Option<String>,
        asn: Option<i64>,
        scans: Vec<Value>,
    }
    let mut sources: BTreeMap<String, Source> = BTreeMap::new();
    store.each(&sql, &values, |r| {
        let s = sources.entry(r.get(0)?).or_insert_with(|| Source {
            first_us: i64::MAX,
            ..Source::default()
        });
        let n: i64 = r.get(4)?;
        match r.get::<String>(3)?.as_str() {
            "refused" => s.refused = s.refused.saturating_add(n.unsigned_abs()),
            "unanswered" => s.unanswered = s.unanswered.saturating_add(n.unsigned_abs()),
            _ => s.other = s.other.saturating_add(n.unsigned_abs()),
        }
        s.targets
            .push(json!({"ip": r.get::<String>(1)?, "port": r.get::<i64>(2)?,
            "outcome": r.get::<String>(3)?, "count": n}));
        s.first_us = s.first_us.min(r.get(5)?);
        s.last_us = s.last_us.max(r.get(6)?);
        s.country = s.country.take().or(r.get(7)?);
        s.asn = s.asn.or(r.get(8)?);
        Ok(())
    })?;
    // Scans in the window (the scan table has no direction or port).
    let mut scan_sql = String::from(
        "SELECT src_ip, scan_type, phase, target_ip, target_port, distinct_count, ts_us, country, asn FROM scans WHERE 1 = 1",
    );
    let mut scan_values = Vec::new();
    if let Some(v) = f.since_us {
        scan_sql.push_str(" AND ts_us >= ?");
        scan_values.push(Sql::Int(v));
    }
    if let Some(v) = f.until_us {
        scan_sql.push_str(" AND ts_us <= ?");
        scan_values.push(Sql::Int(v));
    }
    if let Some(v) = &f.sensor {
        scan_sql.push_str(" AND sensor = ?");
        scan_values.push(text(v));
    }
    scan_sql.push_str(" ORDER BY ts_us, sensor, seq");
    store.each(&scan_sql, &scan_values, |r| {
        let s = sources.entry(r.get(0)?).or_insert_with(|| Source {
            first_us: i64::MAX,
            ..Source::default()
        });
        let ts: i64 = r.get(6)?;
        s.first_us = s.first_us.min(ts);
        s.last_us = s.last_us.max(ts);
        s.country = s.country.take().or(r.get(7)?);
        s.asn = s.asn.or(r.get(8)?);
        s.scans
            .push(json!({"scan_type": r.get::<String>(1)?, "phase": r.get::<String>(2)?,
            "target_ip": r.get::<Option<String>>(3)?, "target_port": r.get::<Option<i64>>(4)?,
            "distinct": r.get::<Option<i64>>(5)?, "ts_us": ts}));
        Ok(())
    })?;
    let mut out: Vec<Value> = sources
        .into_iter()
        .map(|(ip, s)| {
            json!({"ip": ip, "attempts": s.refused + s.unanswered + s.other, "refused": s.refused,
                "unanswered": s.unanswered, "targets": s.targets, "scans": s.scans,
                "first_us": s.first_us, "last_us": s.last_us, "country": s.country, "asn": s.asn})
        })
        .collect();
    out.sort_by_key(|s| std::cmp::Reverse(s["attempts"].as_u64().unwrap_or(0)));
    Ok(json!({ "sources": out }))
}

/// Local hosts talking to each other (internal connections), one link per
/// client, server and port.
pub fn internal(store: &Store, f: &Filter) -> Result<Value> {
    let mut f = f.clone();
    f.direction = Some("internal".into());
    let (clause, values) = f.clause();
    let sql = format!(
        "SELECT client_ip, server_ip, server_port, count(*), count(CASE WHEN outcome != 'established' THEN 1 END),
                min(rtt_us), max(ts_us)
         FROM all_handshakes WHERE 1 = 1{clause} GROUP BY 1, 2, 3 ORDER BY 4 DESC, 1, 2, 3"
    );
    let mut links: Vec<Value> = Vec::new();
    store.each(&sql, &values, |r| {
        links.push(json!({"client": r.get::<String>(0)?, "server": r.get::<String>(1)?,
            "port": r.get::<i64>(2)?, "count": r.get::<i64>(3)?, "failures": r.get::<i64>(4)?,
            "rtt_min_us": r.get::<Option<f64>>(5)?, "last_us": r.get::<i64>(6)?}));
        Ok(())
    })?;
    Ok(json!({ "links": links }))
}

/// RTT over time: per `bucket_us` (default 60 s), the attempts, failures
/// and RTT percentiles of the handshakes in the filter, for one remote
/// host, ASN or country when asked. The server reads the filter and these
/// from the same query string as two extractors (serde's `flatten` would
/// turn the query string's numbers into strings).
#[derive(Clone, Debug, Default, Deserialize)]
pub struct Series {
    pub bucket_us: Option<i64>,
    /// Without `bucket_us`: about this many buckets over the time the
    /// matching handshakes span.
    pub buckets: Option<u32>,
    pub host: Option<String>,
    pub asn: Option<i64>,
    pub country: Option<String>,
    /// A network in CIDR notation (`192.0.2.0/24`, `2001:db8::/32`): the
    /// remote hosts in it.
    pub network: Option<String>,
}

/// A network in CIDR notation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Network {
    addr: IpAddr,
    prefix: u8,
}

/// A text that is not a network in CIDR notation.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a network in CIDR notation (192.0.2.0/24, 2001:db8::/32)")]
pub struct NotANetwork(pub String);

impl std::str::FromStr for Network {
    type Err = NotANetwork;

    fn from_str(s: &str) -> std::result::Result<Network, NotANetwork> {
        let bad = || NotANetwork(s.to_owned());
        let (addr, prefix) = s.split_once('/').ok_or_else(bad)?;
        let addr: IpAddr = addr.parse().map_err(|_| bad())?;
        let prefix: u8 = prefix.parse().map_err(|_| bad())?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        if prefix > max {
            return Err(bad());
        }
        Ok(Network { addr, prefix })
    }
}

impl Network {
    pub fn contains(&self, ip: IpAddr) -> bool {
        // Addresses as 128 bits from the top, IPv4 in the top 32.
        let bits = |a: IpAddr| match a {
            IpAddr::V4(v) => (u128::from(u32::from(v)) << 96, true),
            IpAddr::V6(v) => (u128::from(v), false),
        };
        let ((net, v4), (host, host_v4)) = (bits(self.addr), bits(ip));
        let mask = u128::MAX.checked_shl(128 - u32::from(self.prefix)).unwrap_or(0);
        v4 == host_v4 && (net & mask) == (host & mask)
    }
}

pub fn rtt_series(store: &Store, filter: &Filter, s: &Series) -> Result<Value> {
    // Checked by the server before it calls (a 400 there).
    let network: Option<Network> = s.network.as_deref().and_then(|n| n.parse().ok());
    let (mut clause, mut values) = filter.clause();
    if let Some(h) = &s.host {
        clause.push_str(" AND remote_ip = ?");
        values.push(text(h));
    }
    if let Some(a) = s.asn {
        clause.push_str(" AND asn = ?");
        values.push(Sql::Int(a));
    }
    if let Some(c) = &s.country {
        clause.push_str(" AND country = ?");
        values.push(text(c));
    }
    let sql = format!("SELECT ts_us, rtt_us, outcome, remote_ip FROM all_handshakes WHERE 1 = 1{clause}");
    // (time, RTT, failed)
    let mut matching: Vec<(i64, Option<f64>, bool)> = Vec::new();
    store.each(&sql, &values, |r| {
        if let Some(net) = &network {
            let remote: String = r.get(3)?;
            if !remote.parse().is_ok_and(|ip| net.contains(ip)) {
                return Ok(());
            }
        }
        matching.push((r.get(0)?, r.get(1)?, r.get::<String>(2)? != "established"));
        Ok(())
    })?;
    // Stored times are checked at ingest, but a database written by an
    // older collector may hold any i64: the arithmetic saturates.
    let bucket = match (s.bucket_us.filter(|b| *b > 0), s.buckets.filter(|n| *n > 0)) {
        (Some(b), _) => b,
        (None, Some(n)) => {
            let first = matching.iter().map(|m| m.0).min().unwrap_or(0);
            let last = matching.iter().map(|m| m.0).max().unwrap_or(0);
            (last.saturating_sub(first) / i64::from(n)).max(1_000_000)
        }
        (None, None) => 60_000_000,
    };
    let mut buckets: BTreeMap<i64, (u64, u64, Vec<f64>)> = BTreeMap::new();
    for (ts, rtt, failed) in matching {
        let b = buckets.entry(ts.div_euclid(bucket).saturating_mul(bucket)).or_default();
        b.0 += 1;
        b.1 += u64::from(failed);
        if let Some(rtt) = rtt {
            b.2.push(rtt);
        }
    }
    let points: Vec<Value> = buckets
        .into_iter()
        .map(|(start, (n, failures, mut rtts))| {
            rtts.sort_by(f64::total_cmp);
            json!({"start_us": start, "attempts": n, "failures": failures,
                "rtt_p50_us": percentile(&rtts, 50.0), "rtt_p95_us": percentile(&rtts, 95.0)})
        })
        .collect();
    Ok(json!({"bucket_us": bucket, "points": points}))
}
