//! A batch from a sensor, checked: everything in it is valid or nothing is
//! stored. No I/O.
//!
//! The body is one JSON object: `{"sensor": "<id>", "events": [...]}`, each
//! event the object the sensor writes as a JSON line (`docs/events.md`)
//! plus `seq`, the sensor's sequence number of that event (from 1, never
//! reused), by which retried batches are recognised.

use std::net::IpAddr;

use serde_json::{Map, Value};

/// One event, ready to store.
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    pub seq: u64,
    pub kind: &'static str,
    pub ts_us: i64,
    /// The event as received (`seq` included).
    pub json: String,
    /// The same, parsed (the typed tables read their columns from it).
    pub value: Value,
}

/// A valid batch.
#[derive(Clone, Debug, PartialEq)]
pub struct Batch {
    pub sensor: String,
    pub rows: Vec<Row>,
}

/// The event kinds the collector stores.
pub const KINDS: [&str; 5] = ["handshake", "flow", "scan", "route", "stats"];

#[derive(Clone, Copy)]
enum Type {
    Unsigned(u64),
    Signed,
    Ip,
    Text(&'static [&'static str]),
    List,
}

const DIRECTIONS: &[&str] = &["outbound", "inbound", "internal", "transit"];
const OUTCOMES: &[&str] = &["established", "refused", "unanswered", "incomplete"];

/// The fields of every connection event (handshake, flow).
const CONNECTION: &[(&str, Type)] = &[
    ("id", Type::Unsigned(u64::MAX)),
    ("client_ip", Type::Ip),
    ("client_port", Type::Unsigned(65535)),
    ("server_ip", Type::Ip),
    ("server_port", Type::Unsigned(65535)),
    ("direction", Type::Text(DIRECTIONS)),
];

/// The fields each kind must have, with their types (others pass as they
/// are), in groups.
fn required(kind: &str) -> &'static [&'static [(&'static str, Type)]] {
    use Type::*;
    match kind {
        "handshake" => &[CONNECTION, &[("outcome", Text(OUTCOMES))]],
        "flow" => &[CONNECTION],
        "scan" => &[&[
            ("src_ip", Ip),
            ("scan_type", Text(&["port_scan", "address_scan"])),
            ("phase", Text(&["detected", "ended"])),
        ]],
        "route" => &[&[
            ("id", Unsigned(u64::MAX)),
            ("src_ip", Ip),
            ("dst_ip", Ip),
            ("hops", List),
        ]],
        _ => &[],
    }
}

fn check(event: &Map<String, Value>, field: &str, t: Type) -> Result<(), String> {
    let v = event.get(field).ok_or("missing")?;
    let ok = match t {
        Type::Unsigned(max) => v.as_u64().is_some_and(|n| n <= max),
        Type::Signed => v.as_i64().is_some(),
        Type::Ip => v.as_str().is_some_and(|s| s.parse::<IpAddr>().is_ok()),
        Type::Text(allowed) => v.as_str().is_some_and(|s| allowed.contains(&s)),
        Type::List => v.is_array(),
    };
    if ok {
        return Ok(());
    }
    Err(match t {
        Type::Unsigned(max) => format!("must be an integer from 0 to {max}, not {v}"),
        Type::Signed => format!("must be an integer, not {v}"),
        Type::Ip => format!("must be an IP address as a string, not {v}"),
        Type::Text(allowed) => format!("must be one of {}, not {v}", allowed.join(", ")),
        Type::List => format!("must be a list, not {v}"),
    })
}

/// Parses and checks a batch body (already decompressed).
pub fn parse(body: &[u8]) -> Result<Batch, String> {
    let v: Value = serde_json::from_slice(body).map_err(|e| format!("the body is not valid JSON: {e}"))?;
    let Value::Object(mut top) = v else {
        return Err("the body must be a JSON object {\"sensor\": …, \"events\": […]}".into());
    };
    let sensor = top
        .get("sensor")
        .and_then(Value::as_str)
        .ok_or("field `sensor`: missing or not a string")?
        .to_string();
    let Some(Value::Array(events)) = top.remove("events") else {
        return Err("field `events`: missing or not a list".into());
    };
    let mut rows = Vec::with_capacity(events.len());
    for (i, e) in events.into_iter().enumerate() {
        let Value::Object(event) = &e else {
            return Err(format!("events[{i}]: not a JSON object"));
        };
        let kind_text = event.get("kind").and_then(Value::as_str).unwrap_or("");
        let Some(&kind) = KINDS.iter().find(|k| **k == kind_text) else {
            return Err(format!(
                "events[{i}]: field `kind`: unknown event kind {} (one of: {})",
                event.get("kind").map_or("(missing)".to_string(), Value::to_string),
                KINDS.join(", ")
            ));
        };
        let common = [("seq", Type::Unsigned(u64::MAX)), ("ts_us", Type::Signed)];
        for (field, t) in common.iter().chain(required(kind).iter().copied().flatten()) {
            check(event, field, *t).map_err(|m| format!("events[{i}] ({kind}): field `{field}`: {m}"))?;
        }
        let seq = event.get("seq").and_then(Value::as_u64).unwrap_or(0);
        if seq == 0 {
            return Err(format!("events[{i}] ({kind}): field `seq`: must start at 1"));
        }
        let ts_us = event.get("ts_us").and_then(Value::as_i64).unwrap_or(0);
        rows.push(Row {
            seq,
            kind,
            ts_us,
            json: e.to_string(),
            value: e,
        });
    }
    Ok(Batch { sensor, rows })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn handshake(seq: u64) -> Value {
        serde_json::json!({"kind": "handshake", "seq": seq, "ts_us": 1, "id": 7, "client_ip": "10.0.0.1",
            "client_port": 40000, "server_ip": "192.0.2.1", "server_port": 443,
            "direction": "outbound", "outcome": "established"})
    }

    fn body(events: Vec<Value>) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({"sensor": "gw1", "events": events})).unwrap()
    }

    #[test]
    fn a_good_batch_becomes_rows() {
        let b = parse(&body(vec![handshake(1), handshake(2)])).unwrap();
        assert_eq!(b.sensor, "gw1");
        assert_eq!(b.rows.iter().map(|r| r.seq).collect::<Vec<_>>(), [1, 2]);
        assert_eq!(b.rows[0].kind, "handshake");
    }

    #[test]
    fn each_defect_is_named() {
        let cases: Vec<(Value, &str)> = vec![
            (
                serde_json::json!({"kind": "nonsense", "seq": 1, "ts_us": 1}),
                "unknown event kind \"nonsense\"",
            ),
            (
                {
                    let mut h = handshake(1);
                    h.as_object_mut().unwrap().remove("server_ip");
                    h
                },
                "field `server_ip`: missing",
            ),
            (
                {
                    let mut h = handshake(1);
                    h["client_port"] = 70000.into();
                    h
                },
                "field `client_port`: must be an integer from 0 to 65535",
            ),
            (
                {
                    let mut h = handshake(1);
                    h["client_ip"] = "10.0.0".into();
                    h
                },
                "field `client_ip`: must be an IP address",
            ),
            (
                {
                    let mut h = handshake(1);
                    h["outcome"] = "won".into();
                    h
                },
                "field `outcome`: must be one of",
            ),
            (
                {
                    let mut h = handshake(1);
                    h["seq"] = (-3).into();
                    h
                },
                "field `seq`",
            ),
            (
                {
                    let mut h = handshake(1);
                    h["seq"] = 0.into();
                    h
                },
                "must start at 1",
            ),
        ];
        for (event, want) in cases {
            let e = parse(&body(vec![handshake(1), event])).unwrap_err();
            assert!(e.starts_with("events[1]"), "{e}");
            assert!(e.contains(want), "{e} (wanted {want})");
        }
        assert!(parse(b"{\"sensor\": \"gw1\", \"events\": [")
            .unwrap_err()
            .contains("not valid JSON"));
        assert!(parse(b"[]").unwrap_err().contains("must be a JSON object"));
        assert!(parse(b"{\"events\": []}").unwrap_err().contains("`sensor`"));
    }
}
