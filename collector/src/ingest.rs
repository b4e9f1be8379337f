//! A batch from a sensor, checked event by event: the valid events become
//! rows, each invalid one is refused with the reason, and one bad event
//! never holds back the rest. No I/O.
//!
//! The body is one JSON object: `{"sensor": "<id>", "events": [...]}`, each
//! event the object the sensor writes as a JSON line (`docs/events.md`)
//! plus `seq`, the sensor's sequence number of that event (from 1, never
//! reused), by which retried batches are recognised. Every number that
//! reaches a column of the store is range-checked here against what the
//! store holds (SQLite integers are signed 64-bit) and what the queries
//! compute with (times up to the year 9999).

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

/// An event of the batch that is not stored, and why.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Refused {
    /// Its place in the batch's `events`, from 0.
    pub index: usize,
    /// Its `seq`, when that much could be read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
    /// What is wrong: `events[3] (handshake): field `id`: …`.
    pub error: String,
}

/// A batch: the events to store, and those refused.
#[derive(Clone, Debug, PartialEq)]
pub struct Batch {
    pub sensor: String,
    pub rows: Vec<Row>,
    pub refused: Vec<Refused>,
}

/// The event kinds the collector stores.
pub const KINDS: [&str; 5] = ["handshake", "flow", "scan", "route", "stats"];

/// The largest integer a store column holds.
pub const MAX_INTEGER: u64 = i64::MAX as u64;
/// The latest time accepted, µs since the epoch: 9999-12-31T23:59:59.999999Z
/// (the queries add and multiply times; these never overflow).
pub const MAX_TIME_US: i64 = 253_402_300_799_999_999;

#[derive(Clone, Copy)]
enum Type {
    /// An integer from the first to the second.
    Unsigned(u64, u64),
    /// µs since the epoch, 0 to [`MAX_TIME_US`].
    Time,
    /// Any number.
    Number,
    Ip,
    Text(&'static [&'static str]),
    List,
}

const DIRECTIONS: &[&str] = &["outbound", "inbound", "internal", "transit"];
const OUTCOMES: &[&str] = &["established", "refused", "unanswered", "incomplete"];
const ID: Type = Type::Unsigned(0, MAX_INTEGER);
const COUNT: Type = Type::Unsigned(0, MAX_INTEGER);
const PORT: Type = Type::Unsigned(0, 65_535);
const TTL: Type = Type::Unsigned(0, 255);

/// The fields of every connection event (handshake, flow).
const CONNECTION: &[(&str, Type)] = &[
    ("id", ID),
    ("client_ip", Type::Ip),
    ("client_port", PORT),
    ("server_ip", Type::Ip),
    ("server_port", PORT),
    ("direction", Type::Text(DIRECTIONS)),
];

/// The fields each kind must have, with their types, in groups.
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
        "route" => &[&[("id", ID), ("src_ip", Ip), ("dst_ip", Ip), ("hops", List)]],
        _ => &[],
    }
}

/// The fields of each kind that go to a column of the store when present
/// (absent or null: the column is empty), with their types.
fn optional(kind: &str) -> &'static [(&'static str, Type)] {
    use Type::*;
    match kind {
        "handshake" => &[("rtt_last_syn_us", Number), ("syn_count", COUNT)],
        "flow" => &[
            ("end_us", Time),
            ("duration_us", Number),
            ("packets_c2s", COUNT),
            ("packets_s2c", COUNT),
            ("bytes_c2s", COUNT),
            ("bytes_s2c", COUNT),
            ("retrans_c2s", COUNT),
            ("retrans_s2c", COUNT),
            ("sack_blocks_c2s", COUNT),
            ("sack_blocks_s2c", COUNT),
            ("dup_acks_c2s", COUNT),
            ("dup_acks_s2c", COUNT),
            ("zero_window_c2s", COUNT),
            ("zero_window_s2c", COUNT),
        ],
        "route" => &[("handshake_id", ID), ("hop_count", TTL)],
        "scan" => &[("target_ip", Ip), ("target_port", PORT), ("distinct", COUNT)],
        _ => &[],
    }
}

/// The fields of each hop of a route that go to a column when present.
const HOP: &[(&str, Type)] = &[
    ("ttl", TTL),
    ("addr", Type::Ip),
    ("sent", COUNT),
    ("received", COUNT),
    ("rtt_avg_us", Type::Number),
];

/// Whether `v` is of type `t` (a tree's values are read as [`Loose`] ones:
/// one set of checks for both readings).
fn passes(v: &Loose, t: Type) -> bool {
    match t {
        Type::Unsigned(min, max) => v.as_u64().is_some_and(|n| (min..=max).contains(&n)),
        Type::Time => v.as_i64().is_some_and(|n| (0..=MAX_TIME_US).contains(&n)),
        Type::Number => v.as_f64().is_some_and(f64::is_finite),
        Type::Ip => v.as_str().is_some_and(|s| s.parse::<IpAddr>().is_ok()),
        Type::Text(allowed) => v.as_str().is_some_and(|s| allowed.contains(&s)),
        Type::List => v.is_list(),
    }
}

/// The fields every event must have, then those of its kind.
fn checks(kind: &str) -> impl Iterator<Item = &(&'static str, Type)> {
    const COMMON: &[(&str, Type)] = &[("seq", Type::Unsigned(1, MAX_INTEGER)), ("ts_us", Type::Time)];
    COMMON.iter().chain(required(kind).iter().copied().flatten())
}

fn problem(v: &Value, t: Type) -> String {
    match t {
        Type::Unsigned(min, max) => format!("must be an integer from {min} to {max}, not {v}"),
        Type::Time => format!("must be µs since the epoch, an integer from 0 to {MAX_TIME_US}, not {v}"),
        Type::Number => format!("must be a number, not {v}"),
        Type::Ip => format!("must be an IP address as a string, not {v}"),
        Type::Text(allowed) => format!("must be one of {}, not {v}", allowed.join(", ")),
        Type::List => format!("must be a list, not {v}"),
    }
}

fn check(event: &Map<String, Value>, field: &str, t: Type) -> Result<(), String> {
    let v = event.get(field).ok_or("missing")?;
    if passes(&Loose::of(v), t) {
        return Ok(());
    }
    Err(problem(v, t))
}

/// Checks `field` when it is there and not null.
fn check_optional(event: &Map<String, Value>, field: &str, t: Type) -> Result<(), String> {
    match event.get(field) {
        None | Some(Value::Null) => Ok(()),
        Some(v) if passes(&Loose::of(v), t) => Ok(()),
        Some(v) => Err(problem(v, t)),
    }
}

/// Parses a batch body (already decompressed). `Err` only when the body as
/// a whole is unusable (not JSON, no `sensor`, no `events` list); each event
/// that does not check is refused on its own. Each event is kept as the text
/// it arrived as (not serialised again) beside its parsed value.
pub fn parse(body: &[u8]) -> Result<Batch, BadBatch> {
    let top: BTreeMap<String, &RawValue> = match serde_json::from_slice(body) {
        Ok(top) => top,
        // Which of the two it is, read again only when it is wrong.
        Err(e) => {
            return Err(match serde_json::from_slice::<IgnoredAny>(body) {
                Ok(_) => BadBatch::NotAnObject,
                Err(_) => BadBatch::NotJson(e.to_string()),
            })
        }
    };
    let sensor = top
        .get("sensor")
        .and_then(|v| serde_json::from_str::<String>(v.get()).ok())
        .ok_or(BadBatch::Sensor)?;
    let events: Vec<&RawValue> = top
        .get("events")
        .and_then(|v| serde_json::from_str(v.get()).ok())
        .ok_or(BadBatch::Events)?;
    let mut batch = Batch {
        sensor,
        rows: Vec::with_capacity(events.len()),
        refused: Vec::new(),
    };
    for (index, raw) in events.into_iter().enumerate() {
        if let Some(row) = handshake(raw) {
            batch.rows.push(row);
            continue;
        }
        match event(index, raw) {
            Ok(row) => batch.rows.push(row),
            Err((seq, error)) => batch.refused.push(Refused { index, seq, error }),
        }
    }
    Ok(batch)
}

/// Why a whole batch is unusable (each event's own problems are
/// [`Refused`] entries of a batch instead).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BadBatch {
    #[error("the body is not valid JSON: {0}")]
    NotJson(String),
    #[error("the body must be a JSON object {{\"sensor\": …, \"events\": […]}}")]
    NotAnObject,
    #[error("field `sensor`: missing or not a string")]
    Sensor,
    #[error("field `events`: missing or not a list")]
    Events,
}

/// One event read as a JSON tree, which names what is wrong with it: the
/// row, or its `seq` (if readable) and the reason.
fn event(i: usize, raw: &RawValue) -> Result<Row, (Option<u64>, String)> {
    let e: Value = serde_json::from_str(raw.get()).map_err(|err| (None, format!("events[{i}]: {err}")))?;
    let Value::Object(event) = &e else {
        return Err((None, format!("events[{i}]: not a JSON object")));
    };
    let seq = event
        .get("seq")
        .and_then(Value::as_u64)
        .filter(|&s| (1..=MAX_INTEGER).contains(&s));
    let kind_text = event.get("kind").and_then(Value::as_str).unwrap_or("");
    let Some(&kind) = KINDS.iter().find(|k| **k == kind_text) else {
        return Err((
            seq,
            format!(
                "events[{i}]: field `kind`: unknown event kind {} (one of: {})",
                event.get("kind").map_or("(missing)".to_string(), Value::to_string),
                KINDS.join(", ")
            ),
        ));
    };
    let named = |field: &str, m: String| (seq, format!("events[{i}] ({kind}): field `{field}`: {m}"));
    for (field, t) in checks(kind) {
        check(event, field, *t).map_err(|m| named(field, m))?;
    }
    for (field, t) in optional(kind) {
        check_optional(event, field, *t).map_err(|m| named(field, m))?;
    }
    if kind == "route" {
        for (h, hop) in event
            .get("hops")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            let Value::Object(hop) = hop else {
                return Err(named(&format!("hops[{h}]"), format!("must be an object, not {hop}")));
            };
            for (field, t) in HOP {
                check_optional(hop, field, *t).map_err(|m| named(&format!("hops[{h}].{field}"), m))?;
            }
        }
    }
    let seq = seq.unwrap_or(0);
    let ts_us = event.get("ts_us").and_then(Value::as_i64).unwrap_or(0);
    let fields = if kind == "handshake" {
        // Valid after all (a key given twice, say): the same fields.
        let h = serde_json::from_value(e).map_err(|err| (Some(seq), format!("events[{i}] ({kind}): {err}")))?;
        Fields::Handshake(Box::new(h))
    } else {
        Fields::Other(e)
    };
    Ok(Row {
        seq,
        kind,
        ts_us,
        json: raw.get().to_string(),
        fields,
    })
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
    let present_and_bad = |v: &Loose, t| !matches!(v, Loose::Null) && !passes(v, t);
    if optional("handshake")
        .iter()
        .any(|(field, t)| h.field(field).is_some_and(|v| present_and_bad(v, *t)))
    {
        return None;
    }
    let seq = h.seq.as_u64()?;
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

    /// The names the sensor writes for `values` (serde's).
    fn names<T: serde::Serialize>(values: &[T]) -> Vec<String> {
        values
            .iter()
            .map(|v| serde_json::to_value(v).unwrap().as_str().unwrap().to_owned())
            .collect()
    }

    #[test]
    fn every_field_read_is_in_the_event_schema_with_its_values() {
        use net_gazer_core::event::{self, schema};
        let mut problems = Vec::new();
        let mut check = |record: &str, field: &str, t: Type| {
            // `seq` is the delivery's sequence number, not an event field.
            if field == "seq" {
                return;
            }
            let Some(f) = schema::record(record).and_then(|r| r.fields.iter().find(|f| f.name == field)) else {
                problems.push(format!("{record}.{field} is not in the event schema"));
                return;
            };
            let Type::Text(allowed) = t else {
                return;
            };
            let want = match f.rust_type().as_str() {
                "Direction" => names(event::Direction::VALUES),
                "Outcome" => names(event::Outcome::VALUES),
                "ScanType" => names(event::ScanType::VALUES),
                "ScanPhase" => names(event::ScanPhase::VALUES),
                other => vec![format!("no values known for {other}")],
            };
            if allowed != want {
                problems.push(format!(
                    "{record}.{field}: the collector takes {allowed:?}, the sensor writes {want:?}"
                ));
            }
        };
        for kind in KINDS {
            for &(field, t) in checks(kind).chain(optional(kind)) {
                check(kind, field, t);
            }
        }
        for &(field, t) in HOP {
            check("hop", field, t);
        }
        for field in crate::store::typed::FLOW_COUNTERS {
            check("flow", field, Type::List);
        }
        assert!(
            problems.is_empty(),
            "the collector drifted from the event schema:\n{}",
            problems.join("\n")
        );
    }

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
                let b = parse(&body(vec![e])).unwrap();
                assert!(b.rows.is_empty() && b.refused.len() == 1, "{field} = {bad} accepted");
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
                "field `seq`: must be an integer from 1 to",
            ),
        ];
        for (event, want) in cases {
            let b = parse(&body(vec![handshake(1), event, handshake(3)])).unwrap();
            assert_eq!(
                b.rows.iter().map(|r| r.seq).collect::<Vec<_>>(),
                [1, 3],
                "the others are kept"
            );
            let [refused] = &b.refused[..] else {
                panic!("one refused: {:?}", b.refused)
            };
            assert_eq!(refused.index, 1);
            let e = &refused.error;
            assert!(e.starts_with("events[1]"), "{e}");
            assert!(e.contains(want), "{e} (wanted {want})");
        }
        assert!(matches!(
            parse(b"{\"sensor\": \"gw1\", \"events\": ["),
            Err(BadBatch::NotJson(_))
        ));
        assert_eq!(parse(b"[]").unwrap_err(), BadBatch::NotAnObject);
        assert!(BadBatch::NotAnObject
            .to_string()
            .contains("must be a JSON object {\"sensor\""));
        assert_eq!(parse(b"{\"events\": []}").unwrap_err(), BadBatch::Sensor);
    }

    /// Numbers the store cannot hold, or the queries could not compute
    /// with, are refused at the door, each with the event and the field.
    #[test]
    fn numbers_beyond_what_the_store_holds_are_refused() {
        let flow = serde_json::json!({"kind": "flow", "seq": 1, "ts_us": 1, "id": 4, "client_ip": "192.0.2.9",
            "client_port": 50000, "server_ip": "10.0.0.5", "server_port": 22, "direction": "inbound"});
        let route = serde_json::json!({"kind": "route", "seq": 1, "ts_us": 1, "id": 4, "src_ip": "10.0.0.1",
            "dst_ip": "192.0.2.1", "hops": [{"ttl": 1, "addr": "10.0.0.254", "sent": 3}]});
        let cases: Vec<(Value, &str, Value, &str)> = vec![
            (
                handshake(1),
                "id",
                (1u64 << 63).into(),
                "field `id`: must be an integer from 0 to 9223372036854775807",
            ),
            (handshake(1), "id", u64::MAX.into(), "field `id`"),
            (handshake(1), "seq", (1u64 << 63).into(), "field `seq`"),
            (
                handshake(1),
                "ts_us",
                i64::MIN.into(),
                "field `ts_us`: must be µs since the epoch",
            ),
            (handshake(1), "ts_us", (MAX_TIME_US + 1).into(), "field `ts_us`"),
            (handshake(1), "syn_count", u64::MAX.into(), "field `syn_count`"),
            (
                handshake(1),
                "rtt_last_syn_us",
                "fast".into(),
                "field `rtt_last_syn_us`: must be a number",
            ),
            (
                flow.clone(),
                "packets_c2s",
                (1u64 << 63).into(),
                "(flow): field `packets_c2s`",
            ),
            (flow.clone(), "end_us", (-1).into(), "field `end_us`"),
            (flow, "id", (1u64 << 63).into(), "(flow): field `id`"),
            (route.clone(), "id", u64::MAX.into(), "(route): field `id`"),
            (route.clone(), "hop_count", 256.into(), "field `hop_count`"),
            (
                route.clone(),
                "handshake_id",
                (1u64 << 63).into(),
                "field `handshake_id`",
            ),
            (route, "hops", serde_json::json!([{"ttl": 300}]), "field `hops[0].ttl`"),
        ];
        for (mut event, field, bad, want) in cases {
            event[field] = bad;
            let b = parse(&body(vec![handshake(7), event])).unwrap();
            assert_eq!(b.rows.len(), 1, "{want}: the good event stays");
            let e = &b.refused[0].error;
            assert!(e.starts_with("events[1]") && e.contains(want), "{e} (wanted {want})");
        }
        // The largest values that fit are stored.
        let mut h = handshake(i64::MAX as u64);
        h["id"] = i64::MAX.into();
        h["ts_us"] = MAX_TIME_US.into();
        h["syn_count"] = Value::Null;
        let b = parse(&body(vec![h])).unwrap();
        assert!(b.refused.is_empty(), "{:?}", b.refused);
        assert_eq!(b.rows[0].seq, i64::MAX as u64);
    }
}
