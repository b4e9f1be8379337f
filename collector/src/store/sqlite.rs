//! The SQLite store: one file, WAL, schema created or migrated at start;
//! every statement parameterised.

use std::collections::BTreeMap;
use std::path::Path;

use rusqlite::{params, Connection, Transaction};

use super::typed::{self, Typed};
use super::{ranges, seq, Stored};
use crate::ingest::Batch;

/// Schema versions, applied in order (`PRAGMA user_version` says how many
/// already were).
const MIGRATIONS: &[&str] = &[
    "CREATE TABLE sensors (
        id TEXT PRIMARY KEY,
        first_seen_us INTEGER NOT NULL,
        last_seen_us INTEGER NOT NULL,
        last_seq INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE events (
        sensor TEXT NOT NULL,
        seq INTEGER NOT NULL,
        kind TEXT NOT NULL,
        ts_us INTEGER NOT NULL,
        json TEXT NOT NULL,
        UNIQUE (sensor, seq)
    );
    CREATE INDEX events_kind_ts ON events (kind, ts_us);",
    "CREATE TABLE handshakes (
        sensor TEXT NOT NULL, seq INTEGER NOT NULL, id INTEGER NOT NULL, ts_us INTEGER NOT NULL,
        client_ip TEXT NOT NULL, client_port INTEGER NOT NULL, server_ip TEXT NOT NULL, server_port INTEGER NOT NULL,
        direction TEXT NOT NULL, outcome TEXT NOT NULL, rtt_us REAL, syn_count INTEGER,
        remote_ip TEXT NOT NULL, country TEXT, city TEXT, lat REAL, lon REAL, asn INTEGER, org TEXT
    );
    CREATE INDEX handshakes_remote ON handshakes (remote_ip, ts_us);
    CREATE INDEX handshakes_ts ON handshakes (ts_us);
    CREATE TABLE routes (
        sensor TEXT NOT NULL, seq INTEGER NOT NULL, id INTEGER NOT NULL, ts_us INTEGER NOT NULL,
        handshake_id INTEGER, src_ip TEXT NOT NULL, dst_ip TEXT NOT NULL, protocol TEXT, reached INTEGER NOT NULL,
        hop_count INTEGER, changed INTEGER NOT NULL
    );
    CREATE INDEX routes_dst ON routes (dst_ip, ts_us);
    CREATE TABLE hops (
        sensor TEXT NOT NULL, route_seq INTEGER NOT NULL, ttl INTEGER NOT NULL, addr TEXT,
        sent INTEGER, received INTEGER, rtt_avg_us REAL, country TEXT, asn INTEGER
    );
    CREATE INDEX hops_route ON hops (sensor, route_seq, ttl);
    CREATE TABLE scans (
        sensor TEXT NOT NULL, seq INTEGER NOT NULL, ts_us INTEGER NOT NULL, src_ip TEXT NOT NULL,
        scan_type TEXT NOT NULL, phase TEXT NOT NULL, target_ip TEXT, target_port INTEGER, distinct_count INTEGER,
        country TEXT, asn INTEGER,
        PRIMARY KEY (sensor, seq)
    ) WITHOUT ROWID;",
    // Hops placed on the map.
    "ALTER TABLE hops ADD COLUMN lat REAL;
    ALTER TABLE hops ADD COLUMN lon REAL;",
    // New handshakes land in a table without indexes and move into
    // `handshakes` (indexed by remote host and time) many at a time
    // ([`INDEX_EVERY`]); queries read both through the view. A column
    // added to one table must be added to the other.
    "CREATE TABLE handshakes_new (
        sensor TEXT NOT NULL, seq INTEGER NOT NULL, id INTEGER NOT NULL, ts_us INTEGER NOT NULL,
        client_ip TEXT NOT NULL, client_port INTEGER NOT NULL, server_ip TEXT NOT NULL, server_port INTEGER NOT NULL,
        direction TEXT NOT NULL, outcome TEXT NOT NULL, rtt_us REAL, syn_count INTEGER,
        remote_ip TEXT NOT NULL, country TEXT, city TEXT, lat REAL, lon REAL, asn INTEGER, org TEXT
    );
    CREATE VIEW all_handshakes AS SELECT * FROM handshakes UNION ALL SELECT * FROM handshakes_new;",
    // Flow quality (capture mode `quality`), filled from the flows already
    // stored as events too.
    "CREATE TABLE flows (
        sensor TEXT NOT NULL, seq INTEGER NOT NULL, id INTEGER, ts_us INTEGER NOT NULL, end_us INTEGER,
        client_ip TEXT NOT NULL, client_port INTEGER NOT NULL, server_ip TEXT NOT NULL, server_port INTEGER NOT NULL,
        direction TEXT NOT NULL, remote_ip TEXT NOT NULL, handshake_seen INTEGER, end_reason TEXT, rst_from TEXT,
        duration_us REAL, packets_c2s INTEGER, packets_s2c INTEGER, bytes_c2s INTEGER, bytes_s2c INTEGER,
        retrans_c2s INTEGER, retrans_s2c INTEGER, sack_blocks_c2s INTEGER, sack_blocks_s2c INTEGER,
        dup_acks_c2s INTEGER, dup_acks_s2c INTEGER, zero_window_c2s INTEGER, zero_window_s2c INTEGER,
        PRIMARY KEY (sensor, seq)
    ) WITHOUT ROWID;
    CREATE INDEX flows_remote ON flows (remote_ip, ts_us);
    CREATE INDEX flows_ts ON flows (ts_us);
    INSERT INTO flows SELECT sensor, seq, json_extract(json, '$.id'), ts_us, json_extract(json, '$.end_us'),
        json_extract(json, '$.client_ip'), json_extract(json, '$.client_port'),
        json_extract(json, '$.server_ip'), json_extract(json, '$.server_port'),
        json_extract(json, '$.direction'),
        CASE json_extract(json, '$.direction') WHEN 'inbound' THEN json_extract(json, '$.client_ip')
            ELSE json_extract(json, '$.server_ip') END,
        json_extract(json, '$.handshake_seen'), json_extract(json, '$.end_reason'), json_extract(json, '$.rst_from'),
        json_extract(json, '$.duration_us'),
        json_extract(json, '$.packets_c2s'), json_extract(json, '$.packets_s2c'),
        json_extract(json, '$.bytes_c2s'), json_extract(json, '$.bytes_s2c'),
        json_extract(json, '$.retrans_c2s'), json_extract(json, '$.retrans_s2c'),
        json_extract(json, '$.sack_blocks_c2s'), json_extract(json, '$.sack_blocks_s2c'),
        json_extract(json, '$.dup_acks_c2s'), json_extract(json, '$.dup_acks_s2c'),
        json_extract(json, '$.zero_window_c2s'), json_extract(json, '$.zero_window_s2c')
        FROM events WHERE kind = 'flow';",
    // Events stored by sensor and kind, kept with every batch and every
    // retention pass (`/api/v1/summary` no longer counts the whole table).
    "CREATE TABLE event_counts (
        sensor TEXT NOT NULL, kind TEXT NOT NULL, n INTEGER NOT NULL, PRIMARY KEY (sensor, kind)
    ) WITHOUT ROWID;
    INSERT INTO event_counts SELECT sensor, kind, count(*) FROM events GROUP BY sensor, kind;",
    // One row that `GET /health` rewrites: proof that the store takes writes.
    "CREATE TABLE IF NOT EXISTS health (id INTEGER PRIMARY KEY CHECK (id = 1), checked_us INTEGER NOT NULL);",
    // Uniqueness on (sensor, seq) by the stored ranges of each sensor
    // ([`ranges`]), not by an index entry per event; the events table
    // without that index or the one on (kind, ts_us) (docs/benchmarks.md).
    // Safe to run again (a test does).
    "CREATE TABLE IF NOT EXISTS stored_ranges (
        sensor TEXT NOT NULL, first INTEGER NOT NULL, last INTEGER NOT NULL, PRIMARY KEY (sensor, first)
    ) WITHOUT ROWID;
    DELETE FROM stored_ranges;
    INSERT INTO stored_ranges SELECT sensor, min(seq), max(seq) FROM
        (SELECT sensor, seq, seq - row_number() OVER (PARTITION BY sensor ORDER BY seq) AS island FROM events)
        GROUP BY sensor, island;
    CREATE TABLE events_plain (
        sensor TEXT NOT NULL, seq INTEGER NOT NULL, kind TEXT NOT NULL, ts_us INTEGER NOT NULL, json TEXT NOT NULL
    );
    INSERT INTO events_plain SELECT sensor, seq, kind, ts_us, json FROM events;
    DROP TABLE events;
    ALTER TABLE events_plain RENAME TO events;",
];

/// New handshakes gathered before they move into the indexed table in one
/// go. Every commit writes each page it changed to the WAL; an index on
/// (remote host, time) fed a batch at a time changes a page per remote
/// host in the batch at every commit, fed this many at a time, once per
/// move (docs/benchmarks.md: the index cost half the ingest time). Queries
/// scan at most this many unindexed rows besides the index.
pub const INDEX_EVERY: u64 = 16_384;

pub struct Sqlite {
    conn: Connection,
    /// Rows in `handshakes_new`.
    unindexed: u64,
}

impl Sqlite {
    /// Opens (creating) the database and brings its schema up to date.
    pub fn open(path: &Path) -> Result<Sqlite, rusqlite::Error> {
        let conn = Connection::open(path)?;
        Self::prepare(conn)
    }

    /// Opens the database for ingest: this connection never checkpoints
    /// the WAL itself; [`spawn_checkpointer`] does, on a connection of its
    /// own, every so often. Measured: 43k → 56–62k events/s on one core
    /// (docs/benchmarks.md), the commits no longer copying pages back.
    pub fn open_ingest(path: &Path) -> Result<Sqlite, rusqlite::Error> {
        let store = Self::open(path)?;
        store.conn.pragma_update(None, "wal_autocheckpoint", 0)?;
        Ok(store)
    }

    /// An in-memory database (tests).
    pub fn in_memory() -> Result<Sqlite, rusqlite::Error> {
        Self::prepare(Connection::open_in_memory()?)
    }

    fn prepare(conn: Connection) -> Result<Sqlite, rusqlite::Error> {
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        // 64 MiB of page cache (the default is 2 MiB): the indexes of a
        // busy day stay in memory while batches go in.
        conn.pragma_update(None, "cache_size", -65536)?;
        // One transaction holding the write lock: two collectors opening
        // one new database at once migrate it once, not twice.
        conn.execute_batch("BEGIN IMMEDIATE")?;
        let migrated = (|| -> rusqlite::Result<()> {
            let done: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
            for (i, m) in MIGRATIONS.iter().enumerate().skip(done.max(0) as usize) {
                conn.execute_batch(m)?;
                conn.pragma_update(None, "user_version", i as i64 + 1)?;
            }
            Ok(())
        })();
        conn.execute_batch(if migrated.is_ok() { "COMMIT" } else { "ROLLBACK" })?;
        migrated?;
        let unindexed: i64 = conn.query_row("SELECT count(*) FROM handshakes_new", [], |r| r.get(0))?;
        Ok(Sqlite {
            conn,
            unindexed: unindexed.max(0) as u64,
        })
    }

    /// Stores a batch in one transaction: all or nothing. Events already
    /// stored (same sensor and sequence number, [`ranges`]) are counted,
    /// not stored again. The transaction takes the write lock first, so
    /// collectors sharing the file never decide on a stale view.
    pub fn insert(&mut self, batch: &Batch, now_us: i64) -> super::Result<Stored> {
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let mut result = Stored::default();
        let mut by_kind: BTreeMap<&str, i64> = BTreeMap::new();
        let seqs: Vec<u64> = batch.rows.iter().map(|r| r.seq).collect();
        let hi = seqs.iter().copied().max().unwrap_or(0);
        {
            let near = near(&tx, &batch.sensor, &seqs)?;
            let fresh = ranges::new_ones(&seqs, &near);
            let mut stored_seqs = Vec::with_capacity(seqs.len());
            let mut insert =
                tx.prepare_cached("INSERT INTO events (sensor, seq, kind, ts_us, json) VALUES (?1, ?2, ?3, ?4, ?5)")?;
            let mut typed_rows = Statements::new(&tx)?;
            for (row, new) in batch.rows.iter().zip(fresh) {
                if !new {
                    result.duplicates += 1;
                    continue;
                }
                insert.execute(params![batch.sensor, seq(row.seq)?, row.kind, row.ts_us, row.json])?;
                result.stored += 1;
                stored_seqs.push(row.seq);
                typed_rows.insert(typed::of(&batch.sensor, row)?)?;
                *by_kind.entry(row.kind).or_default() += 1;
            }
            stored_seqs.sort_unstable();
            record(&tx, &batch.sensor, &near, &stored_seqs)?;
            let last = seq(hi)?;
            tx.execute(
                "INSERT INTO sensors (id, first_seen_us, last_seen_us, last_seq) VALUES (?1, ?2, ?2, ?3)
                 ON CONFLICT (id) DO UPDATE SET last_seen_us = ?2, last_seq = max(last_seq, ?3)",
                params![batch.sensor, now_us, last],
            )?;
            let mut count = tx.prepare_cached(
                "INSERT INTO event_counts (sensor, kind, n) VALUES (?1, ?2, ?3)
                 ON CONFLICT (sensor, kind) DO UPDATE SET n = n + ?3",
            )?;
            for (kind, n) in &by_kind {
                count.execute(params![batch.sensor, kind, n])?;
            }
        }
        let handshakes = by_kind.get("handshake").copied().unwrap_or(0) as u64;
        let unindexed = self.unindexed + handshakes;
        let move_now = unindexed >= INDEX_EVERY;
        if move_now {
            move_to_index(&tx)?;
        }
        tx.commit()?;
        self.unindexed = if move_now { 0 } else { unindexed };
        Ok(result)
    }

    /// Writes one small row in a transaction of its own: `Ok` when the
    /// store takes writes now (not full, not read-only, not locked for
    /// longer than SQLite's busy timeout).
    pub fn probe_write(&mut self, now_us: i64) -> Result<(), rusqlite::Error> {
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        tx.execute(
            "INSERT INTO health (id, checked_us) VALUES (1, ?1) ON CONFLICT (id) DO UPDATE SET checked_us = ?1",
            [now_us],
        )?;
        tx.commit()
    }

    /// A handle that stops the statement running on this connection (a
    /// query past its time).
    pub fn interrupt_handle(&self) -> rusqlite::InterruptHandle {
        self.conn.get_interrupt_handle()
    }

    /// Deletes what is older than `before_us` (retention). Returns the
    /// events deleted.
    pub fn expire(&mut self, before_us: i64) -> Result<u64, rusqlite::Error> {
        let tx = self.conn.transaction()?;
        // One pass over the events (retention scans them: no index on
        // time, which would cost every insert; docs/collector-api.md).
        let expiring: Vec<(String, String, i64)> = {
            let mut q = tx.prepare("SELECT sensor, kind, count(*) FROM events WHERE ts_us < ?1 GROUP BY 1, 2")?;
            let rows = q.query_map([before_us], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
            rows.collect::<Result<_, _>>()?
        };
        for (sensor, kind, n) in &expiring {
            tx.execute(
                "UPDATE event_counts SET n = n - ?3 WHERE sensor = ?1 AND kind = ?2",
                params![sensor, kind, n],
            )?;
        }
        let n = tx.execute("DELETE FROM events WHERE ts_us < ?1", [before_us])?;
        tx.execute("DELETE FROM handshakes WHERE ts_us < ?1", [before_us])?;
        let gone = tx.execute("DELETE FROM handshakes_new WHERE ts_us < ?1", [before_us])?;
        self.unindexed = self.unindexed.saturating_sub(gone as u64);
        tx.execute(
            "DELETE FROM hops WHERE EXISTS (SELECT 1 FROM routes r WHERE r.sensor = hops.sensor
             AND r.seq = hops.route_seq AND r.ts_us < ?1)",
            [before_us],
        )?;
        tx.execute("DELETE FROM routes WHERE ts_us < ?1", [before_us])?;
        tx.execute("DELETE FROM scans WHERE ts_us < ?1", [before_us])?;
        tx.execute("DELETE FROM flows WHERE ts_us < ?1", [before_us])?;
        tx.commit()?;
        Ok(n as u64)
    }

    /// The connection itself, for the fuzz target that stores rows no
    /// ingest would ([`crate::fuzzing::stored_values`]).
    #[doc(hidden)]
    pub fn conn_for_tests(&self) -> &Connection {
        &self.conn
    }

    /// The connection, for the read-only queries of [`crate::query`].
    pub(crate) fn conn(&self) -> &Connection {
        &self.conn
    }

    /// Size of the database in bytes.
    pub fn size_bytes(&self) -> Result<u64, rusqlite::Error> {
        let pages: i64 = self.conn.pragma_query_value(None, "page_count", |r| r.get(0))?;
        let size: i64 = self.conn.pragma_query_value(None, "page_size", |r| r.get(0))?;
        Ok((pages * size) as u64)
    }
}

/// Whether a store error is about the store's state (full, busy, read-only,
/// failing I/O): worth retrying later, unlike one about the data.
pub(super) fn transient(e: &rusqlite::Error) -> bool {
    use rusqlite::ErrorCode::*;
    matches!(
        e.sqlite_error_code(),
        Some(
            DatabaseBusy
                | DatabaseLocked
                | DiskFull
                | ReadOnly
                | SystemIoFailure
                | CannotOpen
                | OutOfMemory
                | FileLockingProtocolFailed
                | DatabaseCorrupt
                | NotADatabase
                | OperationInterrupted
        )
    )
}

/// The statements of the typed tables, prepared once per batch.
struct Statements<'tx> {
    handshake: rusqlite::CachedStatement<'tx>,
    flow: rusqlite::CachedStatement<'tx>,
    route: rusqlite::CachedStatement<'tx>,
    hop: rusqlite::CachedStatement<'tx>,
    scan: rusqlite::CachedStatement<'tx>,
}

/// `INSERT INTO name (columns) VALUES (?, ?, …)`.
fn insert_into(name: &str, table: &typed::Table) -> String {
    let marks = vec!["?"; table.columns.len()].join(", ");
    format!("INSERT INTO {name} ({}) VALUES ({marks})", table.column_list())
}

impl<'tx> Statements<'tx> {
    fn new(tx: &'tx rusqlite::Transaction<'_>) -> rusqlite::Result<Statements<'tx>> {
        Ok(Statements {
            // New handshakes go to the unindexed table first (INDEX_EVERY).
            handshake: tx.prepare_cached(&insert_into("handshakes_new", &typed::HANDSHAKES))?,
            flow: tx.prepare_cached(&insert_into(typed::FLOWS.name, &typed::FLOWS))?,
            route: tx.prepare_cached(&insert_into(typed::ROUTES.name, &typed::ROUTES))?,
            hop: tx.prepare_cached(&insert_into(typed::HOPS.name, &typed::HOPS))?,
            scan: tx.prepare_cached(&insert_into(typed::SCANS.name, &typed::SCANS))?,
        })
    }

    fn insert(&mut self, typed: Typed<'_>) -> rusqlite::Result<()> {
        let p = rusqlite::params_from_iter;
        match typed {
            Typed::Handshake(v) => self.handshake.execute(p(v.iter()))?,
            Typed::Flow(v) => self.flow.execute(p(v.iter()))?,
            Typed::Route(v, hops) => {
                for h in &hops {
                    self.hop.execute(p(h.iter()))?;
                }
                self.route.execute(p(v.iter()))?
            }
            Typed::Scan(v) => self.scan.execute(p(v.iter()))?,
            Typed::None => 0,
        };
        Ok(())
    }
}

/// The stored ranges of `sensor` that overlap or touch the numbers of a
/// batch (`seqs`, any order), in order. Looked up run by run of the
/// batch's numbers, so the work is bounded by the batch, not by the span
/// between its smallest and largest number (a sparse batch from 1 to 2^62
/// reads only the ranges next to its own numbers).
fn near(tx: &Transaction<'_>, sensor: &str, seqs: &[u64]) -> super::Result<Vec<ranges::Range>> {
    let mut sorted = seqs.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let mut out = Vec::new();
    for (lo, hi) in ranges::runs(&sorted) {
        out.extend(near_run(tx, sensor, lo, hi)?);
    }
    // A range between two runs touches both.
    out.sort_unstable();
    out.dedup();
    Ok(out)
}

/// The stored ranges of `sensor` that overlap or touch `[lo, hi]`.
fn near_run(tx: &Transaction<'_>, sensor: &str, lo: u64, hi: u64) -> super::Result<Vec<ranges::Range>> {
    // Ranges are disjoint: walking down from the last one starting at or
    // before hi + 1, they end lower and lower; stop below lo - 1.
    let mut q = tx.prepare_cached(
        "SELECT first, last FROM stored_ranges WHERE sensor = ?1 AND first <= ?2 ORDER BY first DESC",
    )?;
    let mut rows = q.query(params![sensor, seq(hi.saturating_add(1).min(i64::MAX as u64))?])?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        let (a, b): (i64, i64) = (r.get(0)?, r.get(1)?);
        let (a, b) = (a.max(0) as u64, b.max(0) as u64);
        if b.saturating_add(1) < lo {
            break;
        }
        out.push((a, b));
    }
    out.reverse();
    Ok(out)
}

/// Records `stored` (the numbers of a batch just stored, increasing) with
/// `near` (what [`near`] found for the batch), merged.
fn record(tx: &Transaction<'_>, sensor: &str, near: &[ranges::Range], stored: &[u64]) -> super::Result<()> {
    if stored.is_empty() {
        return Ok(());
    }
    let merged = ranges::merge(near, &ranges::runs(stored));
    let mut delete = tx.prepare_cached("DELETE FROM stored_ranges WHERE sensor = ?1 AND first = ?2")?;
    for &(a, _) in near {
        delete.execute(params![sensor, seq(a)?])?;
    }
    let mut insert = tx.prepare_cached("INSERT INTO stored_ranges (sensor, first, last) VALUES (?1, ?2, ?3)")?;
    for (a, b) in merged {
        insert.execute(params![sensor, seq(a)?, seq(b)?])?;
    }
    Ok(())
}

/// Moves the new handshakes into the indexed table (in arrival order: a
/// sort on the index's key made each move slower, 45 against 30 ms).
fn move_to_index(tx: &rusqlite::Transaction<'_>) -> rusqlite::Result<()> {
    tx.execute_batch(
        "INSERT INTO handshakes SELECT * FROM handshakes_new;
         DELETE FROM handshakes_new;",
    )
}

/// Moves the WAL's frames into the database without waiting for readers
/// (a passive checkpoint): (frames in the WAL, frames checkpointed).
pub fn checkpoint(conn: &Connection) -> rusqlite::Result<(i64, i64)> {
    conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| Ok((r.get(1)?, r.get(2)?)))
}

/// Checkpoints the WAL of `path` every `every`, on a thread and connection
/// of its own (the ingest connection, [`Store::open_ingest`], does not).
pub fn spawn_checkpointer(path: &Path, every: std::time::Duration) -> std::io::Result<()> {
    let conn = Connection::open(path).map_err(std::io::Error::other)?;
    std::thread::Builder::new()
        .name("checkpoint".into())
        .spawn(move || loop {
            if let Err(e) = checkpoint(&conn) {
                tracing::warn!(error = %e, "WAL checkpoint failed");
            }
            std::thread::sleep(every);
        })
        .map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::Row;
    use crate::store::Store;

    fn open(path: &Path) -> Store {
        Store::Sqlite(Sqlite::open(path).unwrap())
    }

    fn lite(s: &Store) -> &Sqlite {
        s.sqlite().unwrap()
    }

    fn batch(seqs: &[u64]) -> Batch {
        Batch {
            sensor: "gw1".into(),
            rows: seqs
                .iter()
                .map(|&seq| Row {
                    seq,
                    kind: "stats",
                    ts_us: seq as i64,
                    json: format!("{{\"kind\":\"stats\",\"seq\":{seq},\"ts_us\":{seq}}}"),
                    fields: crate::ingest::Fields::Other(serde_json::Value::Null),
                })
                .collect(),
            refused: Vec::new(),
        }
    }

    /// Found starting two collectors on one new database: the second
    /// failed with "table sensors already exists".
    #[test]
    fn collectors_opening_one_new_database_at_once_migrate_it_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.sqlite");
        let barrier = std::sync::Arc::new(std::sync::Barrier::new(4));
        let opened: Vec<_> = (0..4)
            .map(|_| {
                let (path, barrier) = (path.clone(), std::sync::Arc::clone(&barrier));
                std::thread::spawn(move || {
                    barrier.wait();
                    Sqlite::open(&path).map(|_| ()).map_err(|e| e.to_string())
                })
            })
            .collect();
        for o in opened {
            assert_eq!(o.join().unwrap(), Ok(()));
        }
        let s = open(&path);
        let version: i64 = lite(&s)
            .conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!(version, MIGRATIONS.len() as i64);
    }

    #[test]
    fn a_retried_batch_is_stored_once() {
        let mut s = Store::in_memory().unwrap();
        assert_eq!(
            s.insert(&batch(&[1, 2, 3]), 0).unwrap(),
            Stored {
                stored: 3,
                duplicates: 0
            }
        );
        assert_eq!(
            s.insert(&batch(&[2, 3, 4]), 0).unwrap(),
            Stored {
                stored: 1,
                duplicates: 2
            }
        );
        assert_eq!(s.sequence_numbers("gw1").unwrap(), [1, 2, 3, 4]);
        assert_eq!(s.counts().unwrap()["gw1"]["stats"], 4);
    }

    /// Batches arriving out of order (two collectors), overlapping, or
    /// repeating numbers: each (sensor, seq) stored once, the ranges kept
    /// merged.
    #[test]
    fn uniqueness_holds_for_any_order_and_overlap() {
        let mut s = Store::in_memory().unwrap();
        let seqs = |s: &Store| s.sequence_numbers("gw1").unwrap();
        let ranges = |s: &Store| -> Vec<(i64, i64)> {
            let mut q = lite(s)
                .conn
                .prepare("SELECT first, last FROM stored_ranges ORDER BY first")
                .unwrap();
            q.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap()
        };
        s.insert(&batch(&[21, 22, 23]), 0).unwrap();
        s.insert(&batch(&[1, 2, 3]), 0).unwrap();
        assert_eq!(ranges(&s), [(1, 3), (21, 23)]);
        let r = s.insert(&batch(&[3, 4, 5, 21]), 0).unwrap();
        assert_eq!((r.stored, r.duplicates), (2, 2));
        let r = s.insert(&batch(&[9, 7, 9, 6, 7, 8]), 0).unwrap();
        assert_eq!((r.stored, r.duplicates), (4, 2), "repeats within a batch");
        let r = s.insert(&batch(&(10..=20).collect::<Vec<_>>()), 0).unwrap();
        assert_eq!(r.stored, 11);
        assert_eq!(ranges(&s), [(1, 23)], "gaps filled: one range");
        assert_eq!(seqs(&s), (1..=23).collect::<Vec<_>>());
        assert_eq!(s.counts().unwrap()["gw1"]["stats"], 23);
        // Another sensor's numbers are its own.
        let mut other = batch(&[1, 2]);
        other.sensor = "gw2".into();
        assert_eq!(s.insert(&other, 0).unwrap().stored, 2);
        // Expired events stay recorded as stored: a late re-send is a
        // duplicate, not stored again.
        s.expire(i64::MAX).unwrap();
        assert_eq!(s.insert(&batch(&[5, 6]), 0).unwrap().duplicates, 2);
    }

    /// A sensor sending every other number, then a batch spanning them all
    /// and a sparse one reaching far: the numbers between are stored, the
    /// gaps close into one range, and the far one is found on its own.
    #[test]
    fn sparse_batches_fill_their_gaps() {
        let mut s = Store::in_memory().unwrap();
        let odd: Vec<u64> = (0..1000).map(|i| 2 * i + 1).collect();
        assert_eq!(s.insert(&batch(&odd), 0).unwrap().stored, 1000);
        let far = (i64::MAX - 1) as u64;
        let mut all: Vec<u64> = (1..=2000).collect();
        all.push(far);
        let r = s.insert(&batch(&all), 0).unwrap();
        assert_eq!((r.stored, r.duplicates), (1001, 1000));
        let n: i64 = lite(&s)
            .conn
            .query_row("SELECT count(*) FROM stored_ranges", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 2, "1..=2000 and the far one");
        assert_eq!(s.insert(&batch(&[1, far]), 0).unwrap().duplicates, 2);
    }

    /// A database whose uniqueness was an index on the events gets the
    /// ranges of what it holds, and keeps refusing what it has.
    #[test]
    fn older_databases_get_their_ranges_from_their_events() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.sqlite");
        let mut s = open(&path);
        s.insert(&batch(&[1, 2, 3, 7, 8]), 0).unwrap();
        lite(&s)
            .conn
            .execute_batch(&format!(
                "DROP TABLE stored_ranges; PRAGMA user_version = {};",
                MIGRATIONS.len() - 1
            ))
            .unwrap();
        drop(s);
        let mut s = open(&path);
        let r = s.insert(&batch(&[2, 3, 4, 7, 9]), 0).unwrap();
        assert_eq!((r.stored, r.duplicates), (2, 3));
        assert_eq!(s.sequence_numbers("gw1").unwrap(), [1, 2, 3, 4, 7, 8, 9]);
    }

    /// Two collectors on one file storing the same batches at once: each
    /// event once (the write lock is taken before the ranges are read).
    #[test]
    fn two_connections_storing_the_same_batches_store_each_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.sqlite");
        drop(open(&path));
        let writers: Vec<_> = (0..2)
            .map(|_| {
                let path = path.clone();
                std::thread::spawn(move || {
                    let mut s = open(&path);
                    for b in 0..50u64 {
                        s.insert(&batch(&(b * 10 + 1..=b * 10 + 10).collect::<Vec<_>>()), 0)
                            .unwrap();
                    }
                })
            })
            .collect();
        for w in writers {
            w.join().unwrap();
        }
        let s = open(&path);
        assert_eq!(s.sequence_numbers("gw1").unwrap(), (1..=500).collect::<Vec<_>>());
    }

    #[test]
    fn the_ingest_connection_leaves_checkpoints_to_another() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.sqlite");
        let mut s = Store::Sqlite(Sqlite::open_ingest(&path).unwrap());
        // 10 MB of events: 2,500 pages, beyond SQLite's own checkpoint at
        // 1,000 pages of WAL.
        let padding = "x".repeat(1000);
        for b in 0..20u64 {
            let mut bt = batch(&(b * 500 + 1..=b * 500 + 500).collect::<Vec<_>>());
            for r in &mut bt.rows {
                r.json = format!("{{\"kind\":\"stats\",\"pad\":\"{padding}\"}}");
            }
            s.insert(&bt, 0).unwrap();
        }
        let other = Connection::open(&path).unwrap();
        let (frames, done) = checkpoint(&other).unwrap();
        assert!(
            frames > 2000,
            "the ingest connection did not checkpoint: the WAL holds every batch ({frames} frames)"
        );
        assert_eq!(done, frames, "no reader in the way: everything moved");
    }

    fn handshakes(first: u64, n: u64) -> Batch {
        let events: Vec<_> = (first..first + n)
            .map(|seq| {
                serde_json::json!({"kind": "handshake", "seq": seq, "ts_us": seq, "id": seq,
                    "client_ip": "10.0.0.1", "client_port": 40000, "server_ip": format!("192.0.2.{}", seq % 7),
                    "server_port": 443, "direction": "outbound", "outcome": "established"})
            })
            .collect();
        crate::ingest::parse(&serde_json::to_vec(&serde_json::json!({"sensor": "gw1", "events": events})).unwrap())
            .unwrap()
    }

    fn count(s: &Store, table: &str) -> i64 {
        lite(s)
            .conn
            .query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
            .unwrap()
    }

    #[test]
    fn new_handshakes_move_into_the_index_many_at_a_time_and_queries_see_both() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.sqlite");
        let mut s = open(&path);
        s.insert(&handshakes(1, 10), 0).unwrap();
        assert_eq!((count(&s, "handshakes"), count(&s, "handshakes_new")), (0, 10));
        assert_eq!(count(&s, "all_handshakes"), 10);
        let host = |s: &Store| {
            let h = crate::query::host(s, "192.0.2.3", &crate::query::Filter::default()).unwrap();
            h["rtt"].as_array().map_or(0, Vec::len)
        };
        assert_eq!(host(&s), 2, "seq 3 and 10, found before the move");

        // Reopened, the store knows what is waiting; the move empties it.
        drop(s);
        let mut s = open(&path);
        assert_eq!(lite(&s).unindexed, 10);
        let per_batch = 1000;
        let mut next = 11;
        while next <= INDEX_EVERY {
            s.insert(&handshakes(next, per_batch), 0).unwrap();
            next += per_batch;
        }
        assert_eq!(count(&s, "handshakes_new"), 0, "moved once {INDEX_EVERY} were waiting");
        assert_eq!(count(&s, "handshakes"), (next - 1) as i64);
        assert_eq!(lite(&s).unindexed, 0);
        s.insert(&handshakes(next, 3), 0).unwrap();
        assert_eq!(
            count(&s, "all_handshakes"),
            (next + 2) as i64,
            "nothing lost or doubled"
        );

        // The per-host query uses the index, and retention reaches both.
        // seq % 7 == 3 among 1..=next + 2
        assert_eq!(
            host(&s),
            (next + 6) as usize / 7,
            "every seventh, before and after the move"
        );
        let plan: Vec<String> = lite(&s)
            .conn
            .prepare("EXPLAIN QUERY PLAN SELECT ts_us FROM all_handshakes WHERE remote_ip = '192.0.2.3'")
            .unwrap()
            .query_map([], |r| r.get(3))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert!(plan.iter().any(|p| p.contains("handshakes_remote")), "{plan:?}");
        s.expire(next as i64 + 1).unwrap();
        assert_eq!((count(&s, "handshakes"), count(&s, "handshakes_new")), (0, 2));
        assert_eq!(lite(&s).unindexed, 2);
    }

    #[test]
    fn flows_get_their_own_rows_and_older_databases_are_filled_from_their_events() {
        let flow = serde_json::json!({"kind": "flow", "seq": 1, "ts_us": 10, "id": 4, "client_ip": "192.0.2.9",
            "client_port": 50000, "server_ip": "10.0.0.5", "server_port": 22, "direction": "inbound",
            "end_reason": "rst", "end_us": 99, "duration_us": 89.0, "handshake_seen": true, "retrans_s2c": 3,
            "dup_acks_c2s": 5, "sack_blocks_c2s": 8, "bytes_s2c": 28073, "packets_c2s": 17});
        let body = serde_json::to_vec(&serde_json::json!({"sensor": "gw1", "events": [flow]})).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.sqlite");
        let row = |s: &Store| -> (String, i64, i64, i64, String) {
            lite(s)
                .conn
                .query_row(
                    "SELECT remote_ip, retrans_s2c, dup_acks_c2s, sack_blocks_c2s, end_reason FROM flows",
                    [],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
                )
                .unwrap()
        };
        let want = ("192.0.2.9".to_string(), 3, 5, 8, "rst".to_string());
        let mut s = open(&path);
        s.insert(&crate::ingest::parse(&body).unwrap(), 0).unwrap();
        assert_eq!(row(&s), want, "inbound: the remote host is the client");

        // A database from before the flows table: filled from its events.
        lite(&s)
            .conn
            .execute_batch("DROP TABLE flows; DROP TABLE event_counts; PRAGMA user_version = 4;")
            .unwrap();
        drop(s);
        let s = open(&path);
        assert_eq!(row(&s), want);
        assert_eq!(s.counts().unwrap()["gw1"]["flow"], 1, "counted from the events table");
        let detail = crate::query::host(&s, "192.0.2.9", &crate::query::Filter::default()).unwrap();
        assert_eq!(detail["flows"]["count"], 1);
        assert_eq!(detail["flows"]["retrans_s2c"], 3);
        assert_eq!(detail["flows"]["zero_window_c2s"], 0, "absent counters sum to 0");
        assert_eq!(detail["flows"]["end_reasons"]["rst"], 1);
    }

    #[test]
    fn retention_deletes_only_what_is_older() {
        let mut s = Store::in_memory().unwrap();
        s.insert(&batch(&[1, 2, 3, 4]), 0).unwrap();
        assert_eq!(s.expire(3).unwrap(), 2, "ts_us 1 and 2");
        assert_eq!(s.sequence_numbers("gw1").unwrap(), [3, 4]);
        assert_eq!(s.counts().unwrap()["gw1"]["stats"], 2, "the counts follow");
        s.insert(&batch(&[4, 5]), 0).unwrap();
        assert_eq!(s.counts().unwrap()["gw1"]["stats"], 3, "a duplicate is not counted");
    }
}
