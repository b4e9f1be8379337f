//! `docs/events.md` against the event schema: every field of every record
//! is in its section's tables, and every field a table names exists.

use std::collections::BTreeSet;

use net_gazer_core::event::schema::{Record, RECORDS};

fn events_md() -> String {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/events.md");
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// The text of the section `## heading` up to the next `## `.
fn section<'a>(md: &'a str, heading: &str) -> &'a str {
    let start = md
        .find(&format!("\n## {heading}\n"))
        .unwrap_or_else(|| panic!("no section `## {heading}`"));
    let rest = &md[start + 1..];
    let end = rest[3..].find("\n## ").map_or(rest.len(), |e| e + 3);
    &rest[..end]
}

/// The names in backticks in the first column of the field tables (tables
/// whose header starts `| field |`).
fn documented(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut in_table = false;
    for line in text.lines() {
        if line.starts_with("| field |") {
            in_table = true;
            continue;
        }
        if !line.starts_with('|') {
            in_table = false;
            continue;
        }
        if !in_table || line.starts_with("|---") {
            continue;
        }
        let first = line.split('|').nth(1).unwrap_or("");
        names.extend(first.split('`').skip(1).step_by(2).map(str::to_owned));
    }
    names
}

fn covered(name: &str, documented: &BTreeSet<String>) -> bool {
    documented.contains(name)
        || documented
            .iter()
            .filter_map(|d| d.strip_suffix('*'))
            .any(|prefix| name.starts_with(prefix))
}

fn record(name: &str) -> &'static Record {
    RECORDS.iter().find(|r| r.name == name).unwrap()
}

/// Each record and the sections that document it (its own first).
fn sections() -> Vec<(&'static str, Vec<&'static str>)> {
    vec![
        (
            "handshake",
            vec!["`handshake`", "Fields common to `handshake` and `flow`"],
        ),
        ("flow", vec!["`flow`", "Fields common to `handshake` and `flow`"]),
        ("scan", vec!["`scan`"]),
        ("route", vec!["`route`"]),
        ("hop", vec!["`route`"]),
        ("stats", vec!["`stats`"]),
    ]
}

#[test]
fn every_schema_field_is_documented() {
    let md = events_md();
    let mut missing = Vec::new();
    for (name, headings) in sections() {
        let docs: BTreeSet<String> = headings.iter().flat_map(|h| documented(section(&md, h))).collect();
        for f in record(name).fields {
            if !covered(f.name, &docs) {
                missing.push(format!("{name}.{}", f.name));
            }
        }
    }
    assert!(missing.is_empty(), "fields missing from docs/events.md: {missing:?}");
}

#[test]
fn every_documented_field_exists() {
    let md = events_md();
    let mut unknown = Vec::new();
    for heading in ["`handshake`", "`flow`", "`scan`", "`route`", "`stats`"] {
        let records: Vec<&str> = sections()
            .into_iter()
            .filter(|(_, hs)| hs[0] == heading)
            .map(|(r, _)| r)
            .collect();
        for d in documented(section(&md, heading)) {
            let known = records.iter().any(|r| {
                let fields = record(r).fields;
                match d.strip_suffix('*') {
                    Some(prefix) => fields.iter().any(|f| f.name.starts_with(prefix)),
                    None => fields.iter().any(|f| f.name == d),
                }
            });
            if !known {
                unknown.push(format!("{heading}: `{d}`"));
            }
        }
    }
    assert!(
        unknown.is_empty(),
        "docs/events.md names fields the schema does not have: {unknown:?}"
    );
}
