//! The columns the queries need, taken from a stored event: one row per
//! handshake, flow, route (and its hops) and scan, with the GeoIP tags the
//! sensor's plugin added. Only new events get here (the stored ranges
//! decided), so these tables need no key of their own. Both stores write
//! these values in this order (SQLite with prepared statements, PostgreSQL
//! with COPY).

use serde_json::Value;

use super::{Param, Result};
use crate::ingest::{Fields, Handshake, Row};

fn tag<'a>(e: &'a Value, key: &str) -> Option<&'a str> {
    e.get("tags").and_then(|t| t.get(key)).and_then(Value::as_str)
}

fn tag_parsed<T: std::str::FromStr>(e: &Value, key: &str) -> Option<T> {
    tag(e, key).and_then(|v| v.parse().ok())
}

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

/// A column's kind, which each store maps to its own type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Col {
    Text,
    Int,
    Real,
    Flag,
}

/// A typed table: its columns in the order [`of`] gives their values.
pub struct Table {
    pub name: &'static str,
    pub columns: &'static [(&'static str, Col)],
}

impl Table {
    /// `a, b, c`.
    pub fn column_list(&self) -> String {
        let names: Vec<&str> = self.columns.iter().map(|(n, _)| *n).collect();
        names.join(", ")
    }
}

use Col::{Flag, Int, Real, Text};

pub const HANDSHAKES: Table = Table {
    name: "handshakes",
    columns: &[
        ("sensor", Text),
        ("seq", Int),
        ("id", Int),
        ("ts_us", Int),
        ("client_ip", Text),
        ("client_port", Int),
        ("server_ip", Text),
        ("server_port", Int),
        ("direction", Text),
        ("outcome", Text),
        ("rtt_us", Real),
        ("syn_count", Int),
        ("remote_ip", Text),
        ("country", Text),
        ("city", Text),
        ("lat", Real),
        ("lon", Real),
        ("asn", Int),
        ("org", Text),
    ],
};
pub const FLOWS: Table = Table {
    name: "flows",
    columns: &[
        ("sensor", Text),
        ("seq", Int),
        ("id", Int),
        ("ts_us", Int),
        ("end_us", Int),
        ("client_ip", Text),
        ("client_port", Int),
        ("server_ip", Text),
        ("server_port", Int),
        ("direction", Text),
        ("remote_ip", Text),
        ("handshake_seen", Flag),
        ("end_reason", Text),
        ("rst_from", Text),
        ("duration_us", Real),
        // FLOW_COUNTERS, in order (a test holds them equal).
        ("packets_c2s", Int),
        ("packets_s2c", Int),
        ("bytes_c2s", Int),
        ("bytes_s2c", Int),
        ("retrans_c2s", Int),
        ("retrans_s2c", Int),
        ("sack_blocks_c2s", Int),
        ("sack_blocks_s2c", Int),
        ("dup_acks_c2s", Int),
        ("dup_acks_s2c", Int),
        ("zero_window_c2s", Int),
        ("zero_window_s2c", Int),
    ],
};
pub const ROUTES: Table = Table {
    name: "routes",
    columns: &[
        ("sensor", Text),
        ("seq", Int),
        ("id", Int),
        ("ts_us", Int),
        ("handshake_id", Int),
        ("src_ip", Text),
        ("dst_ip", Text),
        ("protocol", Text),
        ("reached", Flag),
        ("hop_count", Int),
        ("changed", Flag),
    ],
};
pub const HOPS: Table = Table {
    name: "hops",
    columns: &[
        ("sensor", Text),
        ("route_seq", Int),
        ("ttl", Int),
        ("addr", Text),
        ("sent", Int),
        ("received", Int),
        ("rtt_avg_us", Real),
        ("country", Text),
        ("asn", Int),
        ("lat", Real),
        ("lon", Real),
    ],
};
pub const SCANS: Table = Table {
    name: "scans",
    columns: &[
        ("sensor", Text),
        ("seq", Int),
        ("ts_us", Int),
        ("src_ip", Text),
        ("scan_type", Text),
        ("phase", Text),
        ("target_ip", Text),
        ("target_port", Int),
        ("distinct_count", Int),
        ("country", Text),
        ("asn", Int),
    ],
};

/// The typed rows of one event.
pub enum Typed<'a> {
    Handshake([Param<'a>; 19]),
    Flow([Param<'a>; 27]),
    Route([Param<'a>; 11], Vec<[Param<'a>; 11]>),
    Scan([Param<'a>; 11]),
    /// Stored as an event only (stats).
    None,
}

fn text(v: Option<&str>) -> Param<'_> {
    v.map_or(Param::Null, |s| Param::Text(s.into()))
}

fn int(v: Option<i64>) -> Param<'static> {
    v.map_or(Param::Null, Param::Int)
}

fn real(v: Option<f64>) -> Param<'static> {
    v.map_or(Param::Null, Param::Real)
}

fn flag(v: Option<bool>) -> Param<'static> {
    v.map_or(Param::Null, Param::Bool)
}

/// The typed rows of `row`, sent by `sensor`.
pub fn of<'a>(sensor: &'a str, row: &'a Row) -> Result<Typed<'a>> {
    let e = match &row.fields {
        Fields::Handshake(h) => return handshake(sensor, row, h),
        Fields::Other(e) => e,
    };
    let seq = Param::Int(super::seq(row.seq)?);
    let s = |k: &str| e.get(k).and_then(Value::as_str);
    let i = |k: &str| e.get(k).and_then(Value::as_i64);
    Ok(match row.kind {
        "flow" => {
            let remote = if s("direction") == Some("inbound") {
                s("client_ip")
            } else {
                s("server_ip")
            };
            let fixed = [
                Param::Text(sensor.into()),
                seq,
                int(i("id")),
                Param::Int(row.ts_us),
                int(i("end_us")),
                text(s("client_ip")),
                int(i("client_port")),
                text(s("server_ip")),
                int(i("server_port")),
                text(s("direction")),
                text(remote),
                flag(e.get("handshake_seen").and_then(Value::as_bool)),
                text(s("end_reason")),
                text(s("rst_from")),
                real(e.get("duration_us").and_then(Value::as_f64)),
            ];
            let mut all = fixed.into_iter().chain(FLOW_COUNTERS.iter().map(|k| int(i(k))));
            Typed::Flow(std::array::from_fn(|_| all.next().unwrap_or(Param::Null)))
        }
        "route" => {
            let hops = e
                .get("hops")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .map(|h| {
                    let ttl = h.get("ttl").and_then(Value::as_i64).unwrap_or(0);
                    [
                        Param::Text(sensor.into()),
                        seq.clone(),
                        Param::Int(ttl),
                        text(h.get("addr").and_then(Value::as_str)),
                        int(h.get("sent").and_then(Value::as_i64)),
                        int(h.get("received").and_then(Value::as_i64)),
                        real(h.get("rtt_avg_us").and_then(Value::as_f64)),
                        text(tag(e, &format!("hop.{ttl}.geo.country"))),
                        int(tag_parsed(e, &format!("hop.{ttl}.asn"))),
                        real(tag_parsed(e, &format!("hop.{ttl}.geo.lat"))),
                        real(tag_parsed(e, &format!("hop.{ttl}.geo.lon"))),
                    ]
                })
                .collect();
            let route = [
                Param::Text(sensor.into()),
                seq,
                int(i("id")),
                Param::Int(row.ts_us),
                int(i("handshake_id")),
                text(s("src_ip")),
                text(s("dst_ip")),
                text(s("protocol")),
                Param::Bool(e.get("reached").and_then(Value::as_bool).unwrap_or(false)),
                int(i("hop_count")),
                Param::Bool(e.get("changed").and_then(Value::as_bool).unwrap_or(false)),
            ];
            Typed::Route(route, hops)
        }
        "scan" => Typed::Scan([
            Param::Text(sensor.into()),
            seq,
            Param::Int(row.ts_us),
            text(s("src_ip")),
            text(s("scan_type")),
            text(s("phase")),
            text(s("target_ip")),
            int(i("target_port")),
            int(i("distinct")),
            text(tag(e, "geo.country")),
            int(tag_parsed(e, "asn")),
        ]),
        _ => Typed::None,
    })
}

fn handshake<'a>(sensor: &'a str, row: &'a Row, h: &'a Handshake) -> Result<Typed<'a>> {
    let remote = if h.direction.as_str() == Some("inbound") {
        &h.client_ip
    } else {
        &h.server_ip
    };
    let tag = |key: &str| h.tags.get(key);
    let tag_parsed = |key: &str| h.tags.get(key).and_then(|v| v.parse::<f64>().ok());
    Ok(Typed::Handshake([
        Param::Text(sensor.into()),
        Param::Int(super::seq(row.seq)?),
        int(h.id.as_i64()),
        Param::Int(row.ts_us),
        text(h.client_ip.as_str()),
        int(h.client_port.as_i64()),
        text(h.server_ip.as_str()),
        int(h.server_port.as_i64()),
        text(h.direction.as_str()),
        text(h.outcome.as_str()),
        real(h.rtt_last_syn_us.as_f64()),
        int(h.syn_count.as_i64()),
        text(remote.as_str()),
        text(tag("geo.country")),
        text(tag("geo.city")),
        real(tag_parsed("geo.lat")),
        real(tag_parsed("geo.lon")),
        int(h.tags.get("asn").and_then(|v| v.parse::<i64>().ok())),
        text(tag("asn.org")),
    ]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_flow_table_ends_with_the_counters() {
        let names: Vec<&str> = FLOWS.columns.iter().map(|(n, _)| *n).collect();
        assert_eq!(names[names.len() - FLOW_COUNTERS.len()..], FLOW_COUNTERS);
    }
}
