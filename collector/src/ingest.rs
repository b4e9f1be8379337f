//! A batch from a sensor, checked: everything in it is valid or nothing is
//! stored. No I/O.
//!
//! The body is one JSON object: `{"sensor": "<id>", "events": [...]}`, each
//! event the object the sensor writes as a JSON line (`docs/events.md`)
//! plus `seq`, the sensor's sequence number of that event (from 1, never
//! reused), by which retried batches are recognised.

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde::de::IgnoredAny;
use serde_json::value::RawValue;
use serde_json::{Map, Value};

mod fields;

pub use fields::{Handshake, Loose};

/// One event, ready to store.
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    pub seq: u64,
    pub kind: &'static str,
    pub ts_us: i64,
    /// The event as received (`seq` included).
    pub json: String,
    /// The same, parsed (the typed tables read their columns from it).
    pub fields: Fields,
}

/// An event's parsed fields.
#[derive(Clone, Debug, PartialEq)]
pub enum Fields {
    /// What is stored of a handshake (read without a JSON tree).
    Handshake(Box<Handshake>),
    /// Any other event, as a JSON tree.
    Other(Value),
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

/// Whether `v` is of type `t` (a tree's values are read as [`Loose`] ones:
/// one set of checks for both readings).
fn passes(v: &Loose, t: Type) -> bool {
    match t {
        Type::Unsigned(max) => v.as_u64().is_some_and(|n| n <= max),
        Type::Signed => v.as_i64().is_some(),
        Type::Ip => v.as_str().is_some_and(|s| s.parse::<IpAddr>().is_ok()),
        Type::Text(allowed) => v.as_str().is_some_and(|s| allowed.contains(&s)),
        Type::List => v.is_list(),
    }
}

/// The fields every event must have, then those of its kind.
fn checks(kind: &str) -> impl Iterator<Item = &(&'static str, Type)> {
    const COMMON: &[(&str, Type)] = &[("seq", Type::Unsigned(u64::MAX)), ("ts_us", Type::Signed)];
    COMMON.iter().chain(required(kind).iter().copied().flatten())
}

fn check(event: &Map<String, Value>, field: &str, t: Type) -> Result<(), String> {
    let v = event.get(field).ok_or("missing")?;
    if passes(&Loose::of(v), t) {
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

/// Parses and checks a batch body (already decompressed). Each event is
/// kept as the text it arrived as (not serialised again) beside its parsed
/// value.
pub fn parse(body: &[u8]) -> Result<Batch, String> {
    let not_object = || "the body must be a JSON object {\"sensor\": …, \"events\": […]}".to_string();
    let top: BTreeMap<String, &RawValue> = match serde_json::from_slice(body) {
        Ok(top) => top,
        // Which of the two it is, read again only when it is wrong.
        Err(e) => {
            return Err(match serde_json::from_slice::<IgnoredAny>(body) {
                Ok(_) => not_object(),
                Err(_) => format!("the body is not valid JSON: {e}"),
            })
        }
    };
    let sensor = top
        .get("sensor")
        .and_then(|v| serde_json::from_str::<String>(v.get()).ok())
        .ok_or("field `sensor`: missing or not a string")?;
    let events: Vec<&RawValue> = top
        .get("events")
        .and_then(|v| serde_json::from_str(v.get()).ok())
        .ok_or("field `events`: missing or not a list")?;
    let mut rows = Vec::with_capacity(events.len());
    for (i, raw) in events.into_iter().enumerate() {
        if let Some(row) = handshake(raw) {
            rows.push(row);
            continue;
        }
        // Not a valid handshake: the JSON tree, which names what is wrong.
        let e: Value = serde_json::from_str(raw.get()).map_err(|err| format!("events[{i}]: {err}"))?;
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
        for (field, t) in checks(kind) {
            check(event, field, *t).map_err(|m| format!("events[{i}] ({kind}): field `{field}`: {m}"))?;
        }
        let seq = event.get("seq").and_then(Value::as_u64).unwrap_or(0);
        if seq == 0 {
            return Err(format!("events[{i}] ({kind}): field `seq`: must start at 1"));
        }
        let ts_us = event.get("ts_us").and_then(Value::as_i64).unwrap_or(0);
        let fields = if kind == "handshake" {
            // Valid after all (a key given twice, say): the same fields.
            let h = serde_json::from_value(e).map_err(|err| format!("events[{i}] ({kind}): {err}"))?;
            Fields::Handshake(Box::new(h))
        } else {
            Fields::Other(e)
        };
        rows.push(Row {
            seq,
            kind,
            ts_us,
            json: raw.get().to_string(),
            fields,
        });
    }
    Ok(Batch { sensor, rows })
}

/// A valid handshake event read without a JSON tree; `None` for anything
/// else (another kind, a defect, a key given twice), which the tree then
/// reads.
fn handshake(raw: &RawValue) -> Option<Row> {
    if !raw.get().starts_with('{') {
        return None;
    }
    let h: Handshake = serde_json::from_str(raw.get()).ok()?;
    if h.kind.as_str() != Some("handshake") {
        return None;
    }
    if !checks("handshake").all(|(field, t)| h.field(field).is_some_and(|v| passes(v, *t))) {
        return None;
    }
    let seq = h.seq.as_u64().filter(|&s| s > 0)?;
    let ts_us = h.ts_us.as_i64()?;
    Some(Row {
        seq,
        kind: "handshake",
        ts_us,
        json: raw.get().to_string(),
        fields: Fields::Handshake(Box::new(h)),
    })
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

    /// The handshake read without a tree, and the same event read as a
    /// tree, give the same row; every defect the tree names leaves the
    /// fast reading (so the tree names it).
    #[test]
    fn fast_and_tree_checks_agree() {
        let mut h = handshake(5);
        h["tags"] = serde_json::json!({"geo.country": "GB", "asn": "64500", "n": 3, "geo.lat": "51.5"});
        h["rtt_last_syn_us"] = 1234.5.into();
        h["syn_count"] = 2.into();
        let text = h.to_string();
        let raw: Box<RawValue> = serde_json::from_str(&text).unwrap();
        let fast = super::handshake(&raw).expect("a valid handshake is read fast");
        let tree: Handshake = serde_json::from_value(h.clone()).unwrap();
        assert_eq!(fast.fields, Fields::Handshake(Box::new(tree.clone())));
        assert_eq!((fast.seq, fast.ts_us, fast.json.as_str()), (5, 1, text.as_str()));
        assert_eq!(tree.tags.get("asn"), Some("64500"));
        assert_eq!(tree.tags.get("n"), None, "not a string: absent, as Value::as_str says");
        assert_eq!(tree.rtt_last_syn_us.as_f64(), Some(1234.5));
        assert_eq!(tree.client_port.as_i64(), Some(40000));

        for (field, bad) in [
            ("kind", serde_json::json!("flow")),
            ("seq", serde_json::json!(0)),
            ("seq", serde_json::json!(-1)),
            ("seq", serde_json::json!(1.5)),
            ("ts_us", serde_json::json!("1")),
            ("id", serde_json::json!(null)),
            ("client_ip", serde_json::json!("10.0.0")),
            ("client_port", serde_json::json!(65536)),
            ("server_ip", serde_json::json!(["192.0.2.1"])),
            ("server_port", serde_json::json!({"port": 443})),
            ("direction", serde_json::json!("sideways")),
            ("outcome", serde_json::json!(true)),
        ] {
            let mut e = handshake(1);
            e[field] = bad.clone();
            let raw: Box<RawValue> = serde_json::from_str(&e.to_string()).unwrap();
            assert!(super::handshake(&raw).is_none(), "{field} = {bad} read fast");
            if field != "kind" {
                assert!(parse(&body(vec![e])).is_err(), "{field} = {bad} accepted");
            }
            let mut missing = handshake(1);
            missing.as_object_mut().unwrap().remove(field);
            let raw: Box<RawValue> = serde_json::from_str(&missing.to_string()).unwrap();
            assert!(super::handshake(&raw).is_none(), "{field} missing, read fast");
        }

        // A key given twice: the tree keeps the last, and so does the row.
        let twice = r#"{"sensor": "gw1", "events": [{"kind": "handshake", "seq": 1, "ts_us": 1, "id": 7,
            "client_ip": "10.0.0.1", "client_port": 40000, "server_ip": "192.0.2.1", "server_port": 443,
            "direction": "outbound", "outcome": "refused", "outcome": "established"}]}"#;
        let b = parse(twice.as_bytes()).unwrap();
        let Fields::Handshake(h) = &b.rows[0].fields else {
            panic!("not a handshake row: {:?}", b.rows[0].fields)
        };
        assert_eq!(h.outcome.as_str(), Some("established"));
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
