//! The columns the queries need, taken from a stored event: one row per
//! handshake, route (and its hops) and scan, with the GeoIP tags the
//! sensor's plugin added. Only new events get here (the events table's
//! unique (sensor, seq) decided), so these tables need no key of their own.

use rusqlite::{params, Statement, Transaction};
use serde_json::Value;

use crate::ingest::{Fields, Handshake, Row};

fn tag<'a>(e: &'a Value, key: &str) -> Option<&'a str> {
    e.get("tags").and_then(|t| t.get(key)).and_then(Value::as_str)
}

fn tag_f64(e: &Value, key: &str) -> Option<f64> {
    tag(e, key).and_then(|v| v.parse().ok())
}

fn tag_i64(e: &Value, key: &str) -> Option<i64> {
    tag(e, key).and_then(|v| v.parse().ok())
}

/// The statements, prepared once per batch.
pub(super) struct Typed<'tx> {
    handshake: Statement<'tx>,
    flow: Statement<'tx>,
    route: Statement<'tx>,
    hop: Statement<'tx>,
    scan: Statement<'tx>,
}

impl<'tx> Typed<'tx> {
    pub(super) fn new(tx: &'tx Transaction<'_>) -> rusqlite::Result<Typed<'tx>> {
        Ok(Typed {
            handshake: tx.prepare(HANDSHAKE)?,
            flow: tx.prepare(FLOW)?,
            route: tx.prepare(ROUTE)?,
            hop: tx.prepare(HOP)?,
            scan: tx.prepare(SCAN)?,
        })
    }
}

const HANDSHAKE: &str =
    "INSERT INTO handshakes_new (sensor, seq, id, ts_us, client_ip, client_port, server_ip, server_port,
     direction, outcome, rtt_us, syn_count, remote_ip, country, city, lat, lon, asn, org)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19)";
/// The flow counters, named as in the events and as their columns.
pub const FLOW_COUNTERS: [&str; 12] = [
    "packets_c2s",
    "packets_s2c",
    "bytes_c2s",
    "bytes_s2c",
    "retrans_c2s",
    "retrans_s2c",
    "sack_blocks_c2s",
    "sack_blocks_s2c",
    "dup_acks_c2s",
    "dup_acks_s2c",
    "zero_window_c2s",
    "zero_window_s2c",
];
const FLOW: &str = "INSERT INTO flows (sensor, seq, id, ts_us, end_us, client_ip, client_port, server_ip, server_port,
     direction, remote_ip, handshake_seen, end_reason, rst_from, duration_us, packets_c2s, packets_s2c, bytes_c2s,
     bytes_s2c, retrans_c2s, retrans_s2c, sack_blocks_c2s, sack_blocks_s2c, dup_acks_c2s, dup_acks_s2c,
     zero_window_c2s, zero_window_s2c)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22,
     ?23, ?24, ?25, ?26, ?27)";
const ROUTE: &str = "INSERT INTO routes (sensor, seq, id, ts_us, handshake_id, src_ip, dst_ip, protocol, reached,
     hop_count, changed) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)";
const HOP: &str = "INSERT INTO hops (sensor, route_seq, ttl, addr, sent, received, rtt_avg_us, country, asn, lat, lon)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)";
const SCAN: &str = "INSERT INTO scans (sensor, seq, ts_us, src_ip, scan_type, phase, target_ip, target_port,
     distinct_count, country, asn) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)";

pub(super) fn insert(t: &mut Typed<'_>, sensor: &str, row: &Row) -> rusqlite::Result<()> {
    let e = match &row.fields {
        Fields::Handshake(h) => return insert_handshake(t, sensor, row, h),
        Fields::Other(e) => e,
    };
    let s = |k: &str| e.get(k).and_then(Value::as_str);
    let i = |k: &str| e.get(k).and_then(Value::as_i64);
    match row.kind {
        "flow" => {
            let remote = if s("direction") == Some("inbound") {
                s("client_ip")
            } else {
                s("server_ip")
            };
            let mut values: Vec<rusqlite::types::Value> = vec![
                sensor.to_string().into(),
                (super::seq(row.seq)?).into(),
                i("id").into(),
                row.ts_us.into(),
                i("end_us").into(),
                s("client_ip").map(str::to_string).into(),
                i("client_port").into(),
                s("server_ip").map(str::to_string).into(),
                i("server_port").into(),
                s("direction").map(str::to_string).into(),
                remote.map(str::to_string).into(),
                e.get("handshake_seen").and_then(Value::as_bool).into(),
                s("end_reason").map(str::to_string).into(),
                s("rst_from").map(str::to_string).into(),
                e.get("duration_us").and_then(Value::as_f64).into(),
            ];
            values.extend(FLOW_COUNTERS.iter().map(|k| i(k).into()));
            t.flow.execute(rusqlite::params_from_iter(values))?;
        }
        "route" => {
            t.route.execute(params![
                sensor,
                super::seq(row.seq)?,
                i("id"),
                row.ts_us,
                i("handshake_id"),
                s("src_ip"),
                s("dst_ip"),
                s("protocol"),
                e.get("reached").and_then(Value::as_bool).unwrap_or(false),
                i("hop_count"),
                e.get("changed").and_then(Value::as_bool).unwrap_or(false),
            ])?;
            for h in e.get("hops").and_then(Value::as_array).into_iter().flatten() {
                let ttl = h.get("ttl").and_then(Value::as_i64).unwrap_or(0);
                t.hop.execute(params![
                    sensor,
                    super::seq(row.seq)?,
                    ttl,
                    h.get("addr").and_then(Value::as_str),
                    h.get("sent").and_then(Value::as_i64),
                    h.get("received").and_then(Value::as_i64),
                    h.get("rtt_avg_us").and_then(Value::as_f64),
                    tag(e, &format!("hop.{ttl}.geo.country")),
                    tag_i64(e, &format!("hop.{ttl}.asn")),
                    tag_f64(e, &format!("hop.{ttl}.geo.lat")),
                    tag_f64(e, &format!("hop.{ttl}.geo.lon")),
                ])?;
            }
        }
        "scan" => {
            t.scan.execute(params![
                sensor,
                super::seq(row.seq)?,
                row.ts_us,
                s("src_ip"),
                s("scan_type"),
                s("phase"),
                s("target_ip"),
                i("target_port"),
                i("distinct"),
                tag(e, "geo.country"),
                tag_i64(e, "asn"),
            ])?;
        }
        _ => {}
    }
    Ok(())
}

fn insert_handshake(t: &mut Typed<'_>, sensor: &str, row: &Row, h: &Handshake) -> rusqlite::Result<()> {
    let remote = if h.direction.as_str() == Some("inbound") {
        &h.client_ip
    } else {
        &h.server_ip
    };
    let tag_parsed = |key: &str| h.tags.get(key).and_then(|v| v.parse::<f64>().ok());
    t.handshake.execute(params![
        sensor,
        super::seq(row.seq)?,
        h.id.as_i64(),
        row.ts_us,
        h.client_ip.as_str(),
        h.client_port.as_i64(),
        h.server_ip.as_str(),
        h.server_port.as_i64(),
        h.direction.as_str(),
        h.outcome.as_str(),
        h.rtt_last_syn_us.as_f64(),
        h.syn_count.as_i64(),
        remote.as_str(),
        h.tags.get("geo.country"),
        h.tags.get("geo.city"),
        tag_parsed("geo.lat"),
        tag_parsed("geo.lon"),
        h.tags.get("asn").and_then(|v| v.parse::<i64>().ok()),
        h.tags.get("asn.org"),
    ])?;
    Ok(())
}
