//! The contract's WIT records against the event schema
//! (`net_gazer_core::event::schema`): same fields, same order, and for the
//! current version the same types. A field renamed, moved or added on one
//! side only fails here, naming it.

use std::path::PathBuf;

use crate::event::schema::{Field, Record, RECORDS};

/// The record `name` of a WIT text: its fields as (name, type).
fn wit_record(wit: &str, name: &str) -> Option<Vec<(String, String)>> {
    let start = wit.find(&format!("record {name} {{"))?;
    let body = &wit[start..];
    let body = &body[body.find('{')? + 1..body.find('}')?];
    Some(
        body.lines()
            .map(|l| l.split("//").next().unwrap_or("").trim())
            .filter(|l| !l.is_empty())
            .filter_map(|l| {
                let (n, t) = l.split_once(':')?;
                Some((n.trim().to_owned(), t.trim().trim_end_matches(',').trim().to_owned()))
            })
            .collect(),
    )
}

/// The WIT type a schema type is carried as in the current contract.
fn wit_type(rust: &str) -> String {
    if let Some(inner) = rust.strip_prefix("Option<").and_then(|r| r.strip_suffix('>')) {
        return format!("option<{}>", wit_type(inner));
    }
    if let Some(inner) = rust.strip_prefix("Vec<").and_then(|r| r.strip_suffix('>')) {
        return format!("list<{}>", wit_type(inner));
    }
    match rust {
        "u8" | "u16" | "u32" | "u64" | "f64" | "bool" => rust.to_owned(),
        "i64" => "s64".to_owned(),
        "IpAddr" => "ip-address".to_owned(),
        "VlanStack" => "list<u16>".to_owned(),
        "Direction" => "direction".to_owned(),
        "Outcome" => "outcome".to_owned(),
        "Side" => "side".to_owned(),
        "FlowEnd" => "flow-end".to_owned(),
        "ScanType" => "scan-type".to_owned(),
        "ScanPhase" => "scan-phase".to_owned(),
        "Protocol" => "trace-protocol".to_owned(),
        "Style" => "trace-style".to_owned(),
        "HopResult" => "hop".to_owned(),
        other => format!("<no WIT type for the schema's {other}>"),
    }
}

/// What a plugin sees of a schema record: every field but `ts` (the same
/// instant as `ts_us`, as text), then the tags for event records.
fn expected(record: &Record) -> Vec<(String, &Field)> {
    record
        .fields
        .iter()
        .filter(|f| f.name != "ts")
        .map(|f| (f.wit_name(), f))
        .collect()
}

/// Differences between a WIT record and the schema's, as readable lines.
fn drift(wit: &str, record: &Record) -> Vec<String> {
    let Some(got) = wit_record(wit, record.name) else {
        return vec![format!("no `record {}` in the WIT", record.name)];
    };
    let mut got: Vec<(String, String)> = got;
    if record.name != "hop" {
        match got.pop() {
            Some((n, t)) if n == "tags" && t == "list<tag>" => {}
            other => {
                return vec![format!(
                    "record {}: last field {other:?}, not `tags: list<tag>`",
                    record.name
                )]
            }
        }
    }
    let want = expected(record);
    let mut problems = Vec::new();
    for i in 0..got.len().max(want.len()) {
        match (got.get(i), want.get(i)) {
            (Some((gn, gt)), Some((wn, f))) => {
                if gn != wn {
                    problems.push(format!(
                        "record {} field {i}: WIT has `{gn}`, the schema `{wn}`",
                        record.name
                    ));
                } else if *gt != wit_type(&f.rust_type()) {
                    problems.push(format!(
                        "record {} field `{gn}`: WIT type `{gt}`, the schema's `{}` is carried as `{}`",
                        record.name,
                        f.rust_type(),
                        wit_type(&f.rust_type())
                    ));
                }
            }
            (Some((gn, _)), None) => problems.push(format!("record {}: `{gn}` is in the WIT only", record.name)),
            (None, Some((wn, _))) => problems.push(format!("record {}: `{wn}` is in the schema only", record.name)),
            (None, None) => {}
        }
    }
    problems
}

fn read(path: &str) -> String {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..").join(path);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// Event records in the contract (stats never reach plugins).
fn contract_records() -> impl Iterator<Item = &'static Record> {
    RECORDS.iter().filter(|r| r.name != "stats")
}

/// The functions of `interface name { … }` in a WIT text, as (name, result
/// type).
fn wit_getters(wit: &str, name: &str) -> Option<Vec<(String, String)>> {
    let start = wit.find(&format!("interface {name} {{"))?;
    let body = &wit[start..];
    let body = &body[body.find('{')? + 1..body.find("\n}")?];
    Some(
        body.lines()
            .map(|l| l.split("//").next().unwrap_or("").trim())
            .filter_map(|l| {
                let (n, rest) = l.split_once(": func() -> ")?;
                Some((n.trim().to_owned(), rest.trim_end_matches(';').trim().to_owned()))
            })
            .collect(),
    )
}

/// Differences between contract 0.3's getters of `record` and the schema:
/// one function per field, named and ordered as the schema, returning the
/// type the field is carried as (the compiler checks the same through the
/// getters generated from the schema; this names the difference).
fn getter_drift(wit: &str, record: &Record) -> Vec<String> {
    let Some(got) = wit_getters(wit, record.name) else {
        return vec![format!("no `interface {}` in the WIT", record.name)];
    };
    // Types the interface renames on `use` (a function of the same name).
    let unalias = |t: &str| match t {
        "direction-type" => "direction".to_owned(),
        "outcome-type" => "outcome".to_owned(),
        "scan-kind" => "scan-type".to_owned(),
        other => other.to_owned(),
    };
    let want: Vec<(String, String)> = record
        .fields
        .iter()
        .map(|f| {
            let ty = if f.rust_type() == "Timestamp" {
                "string".to_owned()
            } else {
                wit_type(&f.rust_type())
            };
            (f.wit_name(), ty)
        })
        .collect();
    let got: Vec<(String, String)> = got.into_iter().map(|(n, t)| (n, unalias(&t))).collect();
    let mut problems = Vec::new();
    for i in 0..got.len().max(want.len()) {
        match (got.get(i), want.get(i)) {
            (Some(g), Some(w)) if g == w => {}
            (g, w) => problems.push(format!(
                "interface {} function {i}: WIT {g:?}, schema {w:?}",
                record.name
            )),
        }
    }
    problems
}

#[test]
fn contract_0_3_getters_follow_the_schema() {
    let wit = read("wit/v0.3/net-gazer-plugin.wit");
    let mut problems: Vec<String> = contract_records()
        .filter(|r| r.name != "hop")
        .flat_map(|r| getter_drift(&wit, r))
        .collect();
    // A route's hops are a record.
    problems.extend(drift(&wit, &crate::event::schema::record("hop").unwrap()));
    assert!(
        problems.is_empty(),
        "wit/v0.3 drifted from the event schema:\n{}",
        problems.join("\n")
    );
}

#[test]
fn a_missing_or_renamed_getter_is_caught() {
    let wit = read("wit/v0.3/net-gazer-plugin.wit");
    let handshake = crate::event::schema::record("handshake").unwrap();
    assert_eq!(getter_drift(&wit, &handshake), Vec::<String>::new());
    let renamed = wit.replacen("    syn-count: func() -> u32;", "    syns: func() -> u32;", 1);
    let problems = getter_drift(&renamed, &handshake);
    assert!(problems.iter().any(|p| p.contains("\"syns\"")), "{problems:?}");
    let missing = wit.replacen("    ecn-setup: func() -> bool;\n", "", 1);
    let problems = getter_drift(&missing, &handshake);
    assert!(
        problems.iter().any(|p| p.contains("None, schema Some((\"ecn-setup\"")),
        "{problems:?}"
    );
}

#[test]
fn contract_0_2_records_are_the_schema_in_order() {
    // 0.2 is frozen (0.3 is the contract that grows with the schema): its
    // records keep their names and order, while the schema may grow.
    let wit = read("wit/net-gazer-plugin.wit");
    let problems: Vec<String> = contract_records().flat_map(|r| frozen_drift(&wit, r)).collect();
    assert!(
        problems.is_empty(),
        "wit/net-gazer-plugin.wit drifted from the event schema:\n{}",
        problems.join("\n")
    );
}

#[test]
fn the_sdk_carries_the_contract_the_host_runs() {
    // A copy, not a link, so that the crate is whole when packaged.
    assert!(
        read("sdk/wit/net-gazer-plugin.wit") == read("wit/v0.3/net-gazer-plugin.wit"),
        "sdk/wit/net-gazer-plugin.wit differs from wit/v0.3/net-gazer-plugin.wit: copy it again"
    );
}

/// A frozen contract's record against the schema: each of its fields is a
/// schema field, in the schema's order (the schema may have grown since).
fn frozen_drift(wit: &str, record: &Record) -> Vec<String> {
    let Some(got) = wit_record(wit, record.name) else {
        return vec![format!("no `record {}` in the WIT", record.name)];
    };
    let names: Vec<String> = expected(record).into_iter().map(|(n, _)| n).collect();
    let mut at = 0;
    let mut problems = Vec::new();
    for (name, _) in got.iter().filter(|(n, _)| n != "tags") {
        match names[at..].iter().position(|n| n == name) {
            Some(i) => at += i + 1,
            None if names.contains(name) => {
                problems.push(format!("record {}: `{name}` is out of the schema's order", record.name))
            }
            None => problems.push(format!("record {}: `{name}` is not in the schema", record.name)),
        }
    }
    problems
}

#[test]
fn a_misordered_or_renamed_field_is_caught() {
    let wit = read("wit/net-gazer-plugin.wit");
    let handshake = RECORDS.iter().find(|r| r.name == "handshake").unwrap();
    // Two fields swapped.
    let swapped = wit.replacen("        client-port: u16,\n", "", 1).replacen(
        "        server-ip: ip-address,\n",
        "        server-ip: ip-address,\n        client-port: u16,\n",
        1,
    );
    let problems = drift(&swapped, handshake);
    assert!(
        problems.iter().any(|p| p.contains("field 3: WIT has `server-ip`")),
        "{problems:?}"
    );
    // One renamed.
    let renamed = wit.replacen("syn-count: u32", "syns: u32", 1);
    let problems = drift(&renamed, handshake);
    assert!(
        problems.iter().any(|p| p.contains("`syns`, the schema `syn-count`")),
        "{problems:?}"
    );
    // One with another type.
    let retyped = wit.replacen("syn-count: u32", "syn-count: u64", 1);
    let problems = drift(&retyped, handshake);
    assert!(
        problems.iter().any(|p| p.contains("field `syn-count`: WIT type `u64`")),
        "{problems:?}"
    );
}

/// The cases of `enum name { … }` in a WIT text.
fn wit_enum(wit: &str, name: &str) -> Option<Vec<String>> {
    let start = wit.find(&format!("enum {name} {{"))?;
    let body = &wit[start..];
    let body = &body[body.find('{')? + 1..body.find('}')?];
    Some(
        body.split(',')
            .map(|c| c.trim().to_owned())
            .filter(|c| !c.is_empty())
            .collect(),
    )
}

/// The sensor's names of `values` in WIT spelling.
fn names<T: serde::Serialize>(values: &[T]) -> Vec<String> {
    values
        .iter()
        .map(|v| match serde_json::to_value(v) {
            Ok(serde_json::Value::String(s)) => s.replace('_', "-"),
            other => panic!("an enum of the schema serialised as {other:?}"),
        })
        .collect()
}

#[test]
fn contract_enums_have_the_schema_values_in_order() {
    use crate::event::{Direction, FlowEnd, Outcome, Protocol, ScanPhase, ScanType, Side, Style};
    let enums = [
        ("direction", names(Direction::VALUES)),
        ("outcome", names(Outcome::VALUES)),
        ("side", names(Side::VALUES)),
        ("flow-end", names(FlowEnd::VALUES)),
        ("scan-type", names(ScanType::VALUES)),
        ("scan-phase", names(ScanPhase::VALUES)),
        ("trace-protocol", names(Protocol::VALUES)),
        ("trace-style", names(Style::VALUES)),
    ];
    for path in ["wit/net-gazer-plugin.wit", "wit/v0.3/net-gazer-plugin.wit"] {
        let wit = read(path);
        for (name, want) in &enums {
            assert_eq!(wit_enum(&wit, name).as_ref(), Some(want), "{path}: WIT enum {name}");
        }
    }
}
