//! `net-gazer-collector migrate --from FILE`: the events of a SQLite
//! database into the configured store (docs/fleet.md, "Moving to
//! PostgreSQL"). Each sensor's events are read in sequence order and stored
//! as batches, as if the sensor sent them again: what the destination
//! already holds is skipped, so the command can run twice, or while the
//! sensors already send to the new store.

use std::path::Path;

use anyhow::Context;

use crate::ingest;
use crate::store::{Location, Store};

/// Events per batch.
const BATCH: usize = 5_000;

/// What a migration did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Copied {
    pub stored: u64,
    /// Already in the destination.
    pub present: u64,
}

/// Copies `from` into the store at `to` and says what it did.
pub fn run(from: &Path, to: &Location) -> anyhow::Result<()> {
    if !from.exists() {
        anyhow::bail!("{}: no such file", from.display());
    }
    let source = rusqlite::Connection::open_with_flags(from, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .with_context(|| format!("opening {}", from.display()))?;
    let mut dest = Store::open_ingest(to).with_context(|| format!("opening the store {to}"))?;
    let c = copy(&source, &mut dest).with_context(|| format!("copying {} into {to}", from.display()))?;
    eprintln!(
        "net-gazer-collector: migrate: {} events stored, {} already there",
        c.stored, c.present
    );
    Ok(())
}

/// Copies every event of `source` (a collector's SQLite database) into
/// `dest`.
pub fn copy(source: &rusqlite::Connection, dest: &mut Store) -> anyhow::Result<Copied> {
    let sensors: Vec<(String, i64)> = source
        .prepare("SELECT id, last_seen_us FROM sensors ORDER BY id")?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?;
    let mut total = Copied::default();
    let mut q = source.prepare("SELECT seq, json FROM events WHERE sensor = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3")?;
    for (sensor, last_seen_us) in sensors {
        let mut after = -1i64;
        loop {
            let rows: Vec<(i64, String)> = q
                .query_map(rusqlite::params![sensor, after, BATCH as i64], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })?
                .collect::<Result<_, _>>()?;
            let Some(&(last, _)) = rows.last() else {
                break;
            };
            after = last;
            // The stored text of each event is the JSON the sensor sent.
            let mut body = serde_json::to_string(&serde_json::json!({ "sensor": sensor }))?;
            body.truncate(body.len() - 1);
            body.push_str(",\"events\":[");
            for (i, (_, json)) in rows.iter().enumerate() {
                if i > 0 {
                    body.push(',');
                }
                body.push_str(json);
            }
            body.push_str("]}");
            let batch = ingest::parse(body.as_bytes())
                .map_err(|e| anyhow::anyhow!("sensor {sensor}, events after {after}: {e}"))?;
            if let Some(r) = batch.refused.first() {
                anyhow::bail!("sensor {sensor}: a stored event is not valid now: {}", r.error);
            }
            let s = dest.insert(&batch, last_seen_us)?;
            total.stored += s.stored;
            total.present += s.duplicates;
        }
    }
    Ok(total)
}
