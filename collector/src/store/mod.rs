//! The store: SQLite (one file, the default; [`sqlite`]) or PostgreSQL
//! (`[postgres]`, shared by any number of collectors; [`postgres`]). Both
//! hold the same tables under the same names and columns, store a batch
//! in one transaction with (sensor, seq) unique by the stored ranges
//! ([`ranges`]), and answer the queries of [`crate::query`], which are
//! written once: [`Store::each`] runs a statement with `?` parameters on
//! either and hands back rows read through [`Row::get`].

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

pub mod postgres;
pub(crate) mod ranges;
pub mod sqlite;
pub(crate) mod typed;

pub use sqlite::{checkpoint, spawn_checkpointer, INDEX_EVERY};
pub use typed::FLOW_COUNTERS;

use crate::ingest::Batch;

/// Where the events are stored.
#[derive(Clone, Debug)]
pub enum Location {
    /// A SQLite file (created when missing).
    Sqlite(PathBuf),
    /// A PostgreSQL database (`[postgres]`).
    Postgres(postgres::Settings),
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Location::Sqlite(p) => write!(f, "{}", p.display()),
            Location::Postgres(s) => write!(f, "{s}"),
        }
    }
}

/// A connection to the store.
pub enum Store {
    Sqlite(sqlite::Sqlite),
    /// Boxed: a client is large, and stores are moved between threads.
    Postgres(Box<postgres::Postgres>),
}

/// A store's failure.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("{}", postgres::describe(.0))]
    Postgres(#[from] ::postgres::Error),
    /// A value the store cannot hold, or a feature this store lacks.
    #[error("{0}")]
    Invalid(String),
}

impl Error {
    /// Whether the failure is about the store's state (full, busy,
    /// read-only, unreachable, restarting): worth retrying later, unlike
    /// one about the data.
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Sqlite(e) => sqlite::transient(e),
            Error::Postgres(e) => postgres::transient(e),
            Error::Invalid(_) => false,
        }
    }
}

pub type Result<T> = std::result::Result<T, Error>;

/// What storing a batch did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stored {
    pub stored: u64,
    /// Events stored before (a retried batch): ignored.
    pub duplicates: u64,
}

/// A value bound to a statement.
#[derive(Clone, Debug, PartialEq)]
pub enum Param<'a> {
    Null,
    Int(i64),
    Real(f64),
    Text(Cow<'a, str>),
    Bool(bool),
}

impl rusqlite::ToSql for Param<'_> {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        use rusqlite::types::{ToSqlOutput, ValueRef};
        Ok(ToSqlOutput::Borrowed(match self {
            Param::Null => ValueRef::Null,
            Param::Int(v) => ValueRef::Integer(*v),
            Param::Real(v) => ValueRef::Real(*v),
            Param::Text(s) => ValueRef::Text(s.as_bytes()),
            Param::Bool(b) => ValueRef::Integer(i64::from(*b)),
        }))
    }
}

impl ::postgres::types::ToSql for Param<'_> {
    fn to_sql(
        &self,
        ty: &::postgres::types::Type,
        out: &mut bytes::BytesMut,
    ) -> std::result::Result<::postgres::types::IsNull, Box<dyn std::error::Error + Sync + Send>> {
        match self {
            Param::Null => Ok(::postgres::types::IsNull::Yes),
            Param::Int(v) => v.to_sql(ty, out),
            Param::Real(v) => v.to_sql(ty, out),
            Param::Text(s) => s.as_ref().to_sql(ty, out),
            Param::Bool(b) => b.to_sql(ty, out),
        }
    }

    fn accepts(_: &::postgres::types::Type) -> bool {
        // Checked value by value in to_sql (an i64 where a text column is
        // expected fails there, with the type named).
        true
    }

    ::postgres::types::to_sql_checked!();
}

/// A value a query reads from a row, on either store.
pub trait Column: rusqlite::types::FromSql + for<'r> ::postgres::types::FromSql<'r> {}
impl<T: rusqlite::types::FromSql + for<'r> ::postgres::types::FromSql<'r>> Column for T {}

/// A row of a query's answer.
pub enum Row<'a, 'r> {
    Sqlite(&'a rusqlite::Row<'r>),
    Postgres(&'a ::postgres::Row),
}

impl Row<'_, '_> {
    /// Column `i` (from 0).
    pub fn get<T: Column>(&self, i: usize) -> Result<T> {
        match self {
            Row::Sqlite(r) => Ok(r.get(i)?),
            Row::Postgres(r) => Ok(r.try_get(i)?),
        }
    }
}

/// What differs in the SQL the two stores speak (the queries pick).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

/// Stops the statement running on a connection (a query past its time).
pub enum Interrupt {
    Sqlite(rusqlite::InterruptHandle),
    Postgres(Option<Box<(::postgres::CancelToken, postgres::Target)>>),
}

impl Interrupt {
    pub fn interrupt(self) {
        match self {
            Interrupt::Sqlite(h) => h.interrupt(),
            // The cancel request is a connection of its own: off the
            // caller's thread.
            Interrupt::Postgres(None) => {}
            Interrupt::Postgres(Some(cancel)) => {
                let _ = std::thread::Builder::new()
                    .name("cancel-query".into())
                    .spawn(move || cancel.1.cancel(&cancel.0));
            }
        }
    }
}

impl Store {
    /// Opens (creating) the store and brings its schema up to date.
    pub fn open(at: &Location) -> Result<Store> {
        Ok(match at {
            Location::Sqlite(p) => Store::Sqlite(sqlite::Sqlite::open(p)?),
            Location::Postgres(s) => Store::Postgres(Box::new(postgres::Postgres::open(s)?)),
        })
    }

    /// Opens the store for ingest (SQLite: without checkpoints of its own,
    /// [`spawn_checkpointer`]).
    pub fn open_ingest(at: &Location) -> Result<Store> {
        Ok(match at {
            Location::Sqlite(p) => Store::Sqlite(sqlite::Sqlite::open_ingest(p)?),
            Location::Postgres(s) => Store::Postgres(Box::new(postgres::Postgres::open(s)?)),
        })
    }

    /// Opens a connection for the queries, each stopped by the store
    /// itself after `timeout` besides [`Store::interrupt_handle`].
    pub fn open_reader(at: &Location, timeout: Duration) -> Result<Store> {
        Ok(match at {
            Location::Sqlite(p) => Store::Sqlite(sqlite::Sqlite::open(p)?),
            Location::Postgres(s) => Store::Postgres(Box::new(postgres::Postgres::open_reader(s, timeout)?)),
        })
    }

    /// An in-memory SQLite database (tests, fuzzing).
    pub fn in_memory() -> Result<Store> {
        Ok(Store::Sqlite(sqlite::Sqlite::in_memory()?))
    }

    pub fn dialect(&self) -> Dialect {
        match self {
            Store::Sqlite(_) => Dialect::Sqlite,
            Store::Postgres(_) => Dialect::Postgres,
        }
    }

    /// The SQLite store, if that is what this is.
    pub fn sqlite(&self) -> Option<&sqlite::Sqlite> {
        match self {
            Store::Sqlite(s) => Some(s),
            Store::Postgres(_) => None,
        }
    }

    /// Stores a batch in one transaction: all or nothing. Events already
    /// stored (same sensor and sequence number) are counted, not stored
    /// again.
    pub fn insert(&mut self, batch: &Batch, now_us: i64) -> Result<Stored> {
        match self {
            Store::Sqlite(s) => Ok(s.insert(batch, now_us)?),
            Store::Postgres(s) => s.insert(batch, now_us),
        }
    }

    /// Writes one small row in a transaction of its own: `Ok` when the
    /// store takes writes now.
    pub fn probe_write(&mut self, now_us: i64) -> Result<()> {
        match self {
            Store::Sqlite(s) => Ok(s.probe_write(now_us)?),
            Store::Postgres(s) => s.probe_write(now_us),
        }
    }

    pub fn interrupt_handle(&self) -> Interrupt {
        match self {
            Store::Sqlite(s) => Interrupt::Sqlite(s.interrupt_handle()),
            Store::Postgres(s) => Interrupt::Postgres(s.cancel_token().map(Box::new)),
        }
    }

    /// Events stored, by sensor and kind.
    pub fn counts(&self) -> Result<BTreeMap<String, BTreeMap<String, u64>>> {
        let mut out: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
        self.each("SELECT sensor, kind, n FROM event_counts WHERE n > 0", &[], |r| {
            let n: i64 = r.get(2)?;
            out.entry(r.get(0)?).or_default().insert(r.get(1)?, n.max(0) as u64);
            Ok(())
        })?;
        Ok(out)
    }

    /// The sequence numbers stored for `sensor`, in order (tests, audits).
    pub fn sequence_numbers(&self, sensor: &str) -> Result<Vec<u64>> {
        let mut out = Vec::new();
        let sql = "SELECT seq FROM events WHERE sensor = ? ORDER BY seq";
        self.each(sql, &[Param::Text(sensor.into())], |r| {
            out.push(r.get::<i64>(0)?.max(0) as u64);
            Ok(())
        })?;
        Ok(out)
    }

    /// The sensors that have sent: id, first and last batch (µs), last
    /// sequence number.
    pub fn sensors(&self) -> Result<Vec<(String, i64, i64, i64)>> {
        let mut out = Vec::new();
        let sql = "SELECT id, first_seen_us, last_seen_us, last_seq FROM sensors ORDER BY id";
        self.each(sql, &[], |r| {
            out.push((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?));
            Ok(())
        })?;
        Ok(out)
    }

    /// Deletes what is older than `before_us` (retention; PostgreSQL drops
    /// whole days). Returns the events deleted.
    pub fn expire(&mut self, before_us: i64) -> Result<u64> {
        match self {
            Store::Sqlite(s) => Ok(s.expire(before_us)?),
            Store::Postgres(s) => s.expire(before_us),
        }
    }

    /// Size of the store in bytes.
    pub fn size_bytes(&self) -> Result<u64> {
        match self {
            Store::Sqlite(s) => Ok(s.size_bytes()?),
            Store::Postgres(s) => s.size_bytes(),
        }
    }

    /// Runs `sql` (parameters written `?`, bound in order from `params`)
    /// and calls `f` with each row of the answer.
    pub fn each(&self, sql: &str, params: &[Param<'_>], mut f: impl FnMut(&Row) -> Result<()>) -> Result<()> {
        match self {
            Store::Sqlite(s) => {
                let mut q = s.conn().prepare_cached(sql)?;
                let mut rows = q.query(rusqlite::params_from_iter(params))?;
                while let Some(r) = rows.next()? {
                    f(&Row::Sqlite(r))?;
                }
                Ok(())
            }
            Store::Postgres(s) => s.each(sql, params, |r| f(&Row::Postgres(r))),
        }
    }
}

/// An answering hop of a route, for the graph store: (ttl, address,
/// average RTT µs, ASN, country).
pub type HopRow = (i64, String, Option<f64>, Option<i64>, Option<String>);

/// One stored route with its answering hops, in TTL order, as the graph
/// store (`crate::graphdb`) writes it.
#[derive(Clone, Debug, PartialEq)]
pub struct RouteRow {
    /// Its SQLite rowid (the graph's cursor on SQLite; 0 on PostgreSQL).
    pub rowid: i64,
    pub sensor: String,
    pub ts_us: i64,
    pub src: String,
    pub dst: String,
    pub hops: Vec<HopRow>,
}

/// A sequence number as the stores hold it (ingest refuses larger ones, so
/// this fails only for a batch not made by [`crate::ingest::parse`]).
pub(crate) fn seq(n: u64) -> Result<i64> {
    i64::try_from(n).map_err(|_| Error::Invalid(format!("sequence number {n} is larger than the store holds")))
}
