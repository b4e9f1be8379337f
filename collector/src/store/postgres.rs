//! The PostgreSQL store (`[postgres]`): one database shared by any number
//! of collectors (docs/fleet.md).
//!
//! - The tables of the SQLite store under the same names and columns
//!   (integers as `bigint`, reals as `double precision`, flags as
//!   `boolean`), migrated in order under an advisory lock (`schema_version`).
//! - The tables of events are partitioned by day (UTC) of `ts_us`:
//!   `events_d<days since 1970>` and so on, made when a batch first needs
//!   them; retention drops whole days ([`Postgres::expire`]).
//! - A batch is one transaction: an advisory lock on its sensor (two
//!   collectors storing the same sensor's batches decide in turn), the
//!   stored ranges of its numbers ([`super::ranges`]), then the new rows by
//!   `COPY … (FORMAT binary)`, the merged ranges, the sensor and the counts.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use bytes::BufMut;
use postgres::types::{IsNull, ToSql, Type};
use postgres::{Client, NoTls, Transaction};
use serde::{Deserialize, Serialize};
use tokio_postgres_rustls::MakeRustlsConnect;

use super::typed::{self, Typed};
use super::{ranges, seq, Error, Param, Result, Stored};
use crate::ingest::Batch;

/// `[postgres]`: where the shared store is.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// A libpq connection string (`host=/run/postgresql dbname=netgazer
    /// user=collector`) or URL (`postgresql://collector@db1/netgazer`).
    pub url: String,
    /// Connecting must take no longer.
    #[serde(default = "default_connect_timeout", with = "net_gazer_common::duration::serde")]
    pub connect_timeout: Duration,
    /// With `sslmode=require` in the url: the CA certificates (PEM) the
    /// server's certificate must chain to (default: the system's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_ca_file: Option<std::path::PathBuf>,
    /// Queue each new route for the graph store (`graph_queue`): set when
    /// the configuration has `[falkordb]`, not a key of `[postgres]`.
    #[serde(skip)]
    pub graph_queue: bool,
}

fn default_connect_timeout() -> Duration {
    Duration::from_secs(5)
}

impl Settings {
    /// The connection settings, or what is wrong with `url`.
    pub fn config(&self) -> std::result::Result<postgres::Config, String> {
        let mut c: postgres::Config = self.url.parse().map_err(|e| format!("{e}"))?;
        c.connect_timeout(self.connect_timeout);
        c.application_name("net-gazer-collector");
        Ok(c)
    }
}

impl std::fmt::Display for Settings {
    /// The database and where it is, without the password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let Ok(c) = self.config() else {
            return f.write_str("PostgreSQL (an unreadable url)");
        };
        let hosts: Vec<String> = c
            .get_hosts()
            .iter()
            .map(|h| match h {
                postgres::config::Host::Tcp(name) => name.clone(),
                postgres::config::Host::Unix(path) => path.display().to_string(),
            })
            .collect();
        write!(
            f,
            "PostgreSQL database {} on {} as {}",
            c.get_dbname().unwrap_or("(the user's)"),
            if hosts.is_empty() {
                "localhost".into()
            } else {
                hosts.join(",")
            },
            c.get_user().unwrap_or("(the system user)")
        )
    }
}

/// One day of `ts_us`, the span of a partition.
const DAY_US: i64 = 86_400_000_000;

/// Days made per transaction: a batch that needs more (a quiet sensor's
/// spool sent after a long outage, or a sensor with a wrong clock) gets
/// them in several short transactions, so that the locks on the
/// partitioned tables are held briefly; it is logged, never refused (a
/// batch refused for good would stall its sensor's spool).
const DAYS_PER_TRANSACTION: usize = 8;

/// The tables partitioned by day.
const PARTITIONED: [&str; 6] = ["events", "handshakes", "flows", "routes", "hops", "scans"];

/// Keys of the advisory locks (any number no other program on the database
/// uses): the migrations and the partitions.
const LOCK_MIGRATE: i64 = 0x6e67_0001;
const LOCK_PARTITIONS: i64 = 0x6e67_0002;

/// Schema versions, applied in order (`schema_version` says how many
/// already were).
const MIGRATIONS: &[&str] = &[
    "
    CREATE TABLE sensors (
        id TEXT PRIMARY KEY, first_seen_us BIGINT NOT NULL, last_seen_us BIGINT NOT NULL,
        last_seq BIGINT NOT NULL DEFAULT 0
    );
    CREATE TABLE events (
        sensor TEXT NOT NULL, seq BIGINT NOT NULL, kind TEXT NOT NULL, ts_us BIGINT NOT NULL, json TEXT NOT NULL
    ) PARTITION BY RANGE (ts_us);
    CREATE TABLE handshakes (
        sensor TEXT NOT NULL, seq BIGINT NOT NULL, id BIGINT NOT NULL, ts_us BIGINT NOT NULL,
        client_ip TEXT NOT NULL, client_port BIGINT NOT NULL, server_ip TEXT NOT NULL, server_port BIGINT NOT NULL,
        direction TEXT NOT NULL, outcome TEXT NOT NULL, rtt_us DOUBLE PRECISION, syn_count BIGINT,
        remote_ip TEXT NOT NULL, country TEXT, city TEXT, lat DOUBLE PRECISION, lon DOUBLE PRECISION,
        asn BIGINT, org TEXT
    ) PARTITION BY RANGE (ts_us);
    CREATE INDEX handshakes_remote ON handshakes (remote_ip, ts_us);
    CREATE INDEX handshakes_ts ON handshakes (ts_us);
    CREATE VIEW all_handshakes AS SELECT * FROM handshakes;
    CREATE TABLE flows (
        sensor TEXT NOT NULL, seq BIGINT NOT NULL, id BIGINT, ts_us BIGINT NOT NULL, end_us BIGINT,
        client_ip TEXT NOT NULL, client_port BIGINT NOT NULL, server_ip TEXT NOT NULL, server_port BIGINT NOT NULL,
        direction TEXT NOT NULL, remote_ip TEXT NOT NULL, handshake_seen BOOLEAN, end_reason TEXT, rst_from TEXT,
        duration_us DOUBLE PRECISION, packets_c2s BIGINT, packets_s2c BIGINT, bytes_c2s BIGINT, bytes_s2c BIGINT,
        retrans_c2s BIGINT, retrans_s2c BIGINT, sack_blocks_c2s BIGINT, sack_blocks_s2c BIGINT,
        dup_acks_c2s BIGINT, dup_acks_s2c BIGINT, zero_window_c2s BIGINT, zero_window_s2c BIGINT
    ) PARTITION BY RANGE (ts_us);
    CREATE INDEX flows_remote ON flows (remote_ip, ts_us);
    CREATE TABLE routes (
        sensor TEXT NOT NULL, seq BIGINT NOT NULL, id BIGINT, ts_us BIGINT NOT NULL, handshake_id BIGINT,
        src_ip TEXT NOT NULL, dst_ip TEXT NOT NULL, protocol TEXT, reached BOOLEAN NOT NULL, hop_count BIGINT,
        changed BOOLEAN NOT NULL
    ) PARTITION BY RANGE (ts_us);
    CREATE INDEX routes_dst ON routes (dst_ip, ts_us);
    CREATE TABLE hops (
        sensor TEXT NOT NULL, route_seq BIGINT NOT NULL, ttl BIGINT NOT NULL, addr TEXT, sent BIGINT,
        received BIGINT, rtt_avg_us DOUBLE PRECISION, country TEXT, asn BIGINT, lat DOUBLE PRECISION,
        lon DOUBLE PRECISION, ts_us BIGINT NOT NULL
    ) PARTITION BY RANGE (ts_us);
    CREATE INDEX hops_route ON hops (sensor, route_seq, ttl);
    CREATE TABLE scans (
        sensor TEXT NOT NULL, seq BIGINT NOT NULL, ts_us BIGINT NOT NULL, src_ip TEXT NOT NULL,
        scan_type TEXT NOT NULL, phase TEXT NOT NULL, target_ip TEXT, target_port BIGINT, distinct_count BIGINT,
        country TEXT, asn BIGINT
    ) PARTITION BY RANGE (ts_us);
    CREATE TABLE event_counts (sensor TEXT NOT NULL, kind TEXT NOT NULL, n BIGINT NOT NULL, PRIMARY KEY (sensor, kind));
    CREATE TABLE health (id INTEGER PRIMARY KEY CHECK (id = 1), checked_us BIGINT NOT NULL);
    CREATE TABLE stored_ranges (
        sensor TEXT NOT NULL, first BIGINT NOT NULL, last BIGINT NOT NULL, PRIMARY KEY (sensor, first)
    );
    CREATE TABLE partitions (day BIGINT PRIMARY KEY);
",
    "
    -- Routes not yet written to the graph store (FalkorDB): filled with
    -- each new route by collectors that have [falkordb], emptied by their
    -- graph threads, whichever collector stored the route.
    CREATE TABLE graph_queue (
        sensor TEXT NOT NULL, route_seq BIGINT NOT NULL, ts_us BIGINT NOT NULL, PRIMARY KEY (sensor, route_seq)
    );
",
];

/// PostgreSQL's type for a column of a typed table.
fn pg_type(c: typed::Col) -> Type {
    match c {
        typed::Col::Text => Type::TEXT,
        typed::Col::Int => Type::INT8,
        typed::Col::Real => Type::FLOAT8,
        typed::Col::Flag => Type::BOOL,
    }
}

pub struct Postgres {
    target: Target,
    /// [`Settings::graph_queue`].
    graph_queue: bool,
    /// Connected when first needed and again after the connection broke
    /// (a restart of the server): `RefCell` because the queries read
    /// through `&self`.
    client: RefCell<Option<Client>>,
    /// Days whose partitions this connection knows exist.
    days: BTreeSet<i64>,
}

/// A failure as the logs and answers say it.
pub(super) fn describe(e: &postgres::Error) -> String {
    match e.as_db_error() {
        Some(d) => format!("PostgreSQL: {} (SQLSTATE {})", d.message(), d.code().code()),
        // The cause too: "error performing TLS handshake: invalid peer
        // certificate: UnknownIssuer".
        None => match std::error::Error::source(e) {
            Some(cause) if !e.to_string().contains(&cause.to_string()) => format!("PostgreSQL: {e}: {cause}"),
            _ => format!("PostgreSQL: {e}"),
        },
    }
}

/// Whether a failure is about the server's state (unreachable,
/// restarting, out of resources, a conflict between transactions) rather
/// than about the batch.
pub(super) fn transient(e: &postgres::Error) -> bool {
    if e.is_closed() {
        return true;
    }
    match e.code() {
        // Not an answer of the server: the connection, I/O, a timeout.
        None => true,
        Some(c) => {
            let c = c.code();
            ["08", "53", "57P", "58"].iter().any(|class| c.starts_with(class))
                || ["40001", "40P01", "55P03", "57014", "25006"].contains(&c)
        }
    }
}

/// The partition of `table` for `day`.
fn partition(table: &str, day: i64) -> String {
    format!("{table}_d{day}")
}

fn day_of(ts_us: i64) -> i64 {
    ts_us.div_euclid(DAY_US)
}

/// `?` parameters written as PostgreSQL's `$1`, `$2`, … in order.
fn numbered(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 16);
    let mut n = 0;
    for c in sql.chars() {
        if c == '?' {
            n += 1;
            out.push('$');
            out.push_str(&n.to_string());
        } else {
            out.push(c);
        }
    }
    out
}

/// Where to connect, and how: TLS (the server's certificate verified)
/// when the url says `sslmode=require`, plain otherwise.
#[derive(Clone)]
pub struct Target {
    config: postgres::Config,
    tls: Option<MakeRustlsConnect>,
}

impl Target {
    fn new(settings: &Settings) -> Result<Target> {
        let config = settings.config().map_err(Error::Invalid)?;
        let tls = match config.get_ssl_mode() {
            postgres::config::SslMode::Require => Some(tls(settings)?),
            _ => None,
        };
        Ok(Target { config, tls })
    }

    /// A new connection, its schema brought up to date.
    fn connect(&self) -> Result<Client> {
        let mut client = match &self.tls {
            Some(tls) => self.config.connect(tls.clone())?,
            None => self.config.connect(NoTls)?,
        };
        migrate(&mut client)?;
        Ok(client)
    }

    /// Asks the server to stop what `token`'s connection runs.
    pub fn cancel(&self, token: &postgres::CancelToken) {
        let _ = match &self.tls {
            Some(tls) => token.cancel_query(tls.clone()),
            None => token.cancel_query(NoTls),
        };
    }
}

/// The TLS client of `sslmode=require`: the certificates of `tls_ca_file`
/// or, without it, the system's, and the host name checked.
fn tls(settings: &Settings) -> Result<MakeRustlsConnect> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::CertificateDer;
    let mut roots = rustls::RootCertStore::empty();
    match &settings.tls_ca_file {
        Some(path) => {
            let bad =
                |e: &dyn std::fmt::Display| Error::Invalid(format!("postgres.tls_ca_file {}: {e}", path.display()));
            for cert in CertificateDer::pem_file_iter(path).map_err(|e| bad(&e))? {
                roots.add(cert.map_err(|e| bad(&e))?).map_err(|e| bad(&e))?;
            }
            if roots.is_empty() {
                return Err(bad(&"no certificate in it"));
            }
        }
        None => {
            for cert in rustls_native_certs::load_native_certs().certs {
                let _ = roots.add(cert);
            }
        }
    }
    let config =
        rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::Invalid(format!("TLS: {e}")))?
            .with_root_certificates(roots)
            .with_no_client_auth();
    Ok(MakeRustlsConnect::new(config))
}

/// Brings the schema up to date, once whatever the number of collectors
/// starting at once.
fn migrate(client: &mut Client) -> Result<()> {
    let mut tx = client.transaction()?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&LOCK_MIGRATE])?;
    tx.batch_execute("CREATE TABLE IF NOT EXISTS schema_version (version BIGINT NOT NULL)")?;
    let done: Option<i64> = tx
        .query_opt("SELECT version FROM schema_version", &[])?
        .map(|r| r.get(0));
    let done = done.unwrap_or(0).max(0) as usize;
    if done > MIGRATIONS.len() {
        return Err(Error::Invalid(format!(
            "the database's schema is version {done}, newer than this collector's ({}): upgrade the collector",
            MIGRATIONS.len()
        )));
    }
    for m in &MIGRATIONS[done..] {
        // Text compared byte by byte, as SQLite does (addresses sort the
        // same on both stores whatever the database's locale).
        tx.batch_execute(&m.replace(" TEXT", " TEXT COLLATE \"C\""))?;
    }
    tx.execute("DELETE FROM schema_version", &[])?;
    tx.execute("INSERT INTO schema_version VALUES ($1)", &[&(MIGRATIONS.len() as i64)])?;
    tx.commit()?;
    Ok(())
}

/// The connected client in `slot`, connecting when there is none or the
/// one there broke.
fn connected<'a>(slot: &'a mut Option<Client>, target: &Target) -> Result<&'a mut Client> {
    let client = match slot.take() {
        Some(c) if !c.is_closed() => c,
        _ => target.connect()?,
    };
    Ok(slot.insert(client))
}

impl Postgres {
    /// Connects and brings the schema up to date.
    pub fn open(settings: &Settings) -> Result<Postgres> {
        let mut store = Self::with_target(Target::new(settings)?)?;
        store.graph_queue = settings.graph_queue;
        Ok(store)
    }

    /// A connection whose statements the server stops after `timeout`.
    pub fn open_reader(settings: &Settings, timeout: Duration) -> Result<Postgres> {
        let mut target = Target::new(settings)?;
        target
            .config
            .options(&format!("-c statement_timeout={}", timeout.as_millis().max(1)));
        Self::with_target(target)
    }

    fn with_target(target: Target) -> Result<Postgres> {
        let client = target.connect()?;
        Ok(Postgres {
            target,
            graph_queue: false,
            client: RefCell::new(Some(client)),
            days: BTreeSet::new(),
        })
    }

    /// What cancels the statement running on this connection, if it is
    /// connected.
    pub fn cancel_token(&self) -> Option<(postgres::CancelToken, Target)> {
        let token = self.client.borrow().as_ref().map(Client::cancel_token)?;
        Some((token, self.target.clone()))
    }

    /// Runs `sql` (`?` parameters) and calls `f` with each row.
    pub fn each(&self, sql: &str, params: &[Param<'_>], mut f: impl FnMut(&postgres::Row) -> Result<()>) -> Result<()> {
        use postgres::fallible_iterator::FallibleIterator;
        let sql = numbered(sql);
        let mut slot = self.client.borrow_mut();
        let failed = {
            let client = connected(&mut slot, &self.target)?;
            match client.query_raw(sql.as_str(), params.iter()) {
                Ok(mut rows) => {
                    while let Some(r) = rows.next()? {
                        f(&r)?;
                    }
                    return Ok(());
                }
                Err(e) => e,
            }
        };
        // A connection kept idle that the server closed meanwhile (it
        // restarted): once more, on a new one.
        if !slot.as_ref().is_some_and(Client::is_closed) {
            return Err(failed.into());
        }
        tracing::info!(error = %describe(&failed), "PostgreSQL: connection lost; connecting again");
        let client = connected(&mut slot, &self.target)?;
        let mut rows = client.query_raw(sql.as_str(), params.iter())?;
        while let Some(r) = rows.next()? {
            f(&r)?;
        }
        Ok(())
    }

    pub fn probe_write(&mut self, now_us: i64) -> Result<()> {
        let client = connected(self.client.get_mut(), &self.target)?;
        client.execute(
            "INSERT INTO health (id, checked_us) VALUES (1, $1) ON CONFLICT (id) DO UPDATE SET checked_us = $1",
            &[&now_us],
        )?;
        Ok(())
    }

    pub fn size_bytes(&self) -> Result<u64> {
        let mut size = 0;
        self.each("SELECT pg_database_size(current_database())", &[], |r| {
            size = r.try_get::<_, i64>(0)?.max(0) as u64;
            Ok(())
        })?;
        Ok(size)
    }

    /// Stores a batch in one transaction ([module documentation](self)).
    pub fn insert(&mut self, batch: &Batch, now_us: i64) -> Result<Stored> {
        let mut result = self.try_insert(batch, now_us);
        if result.is_err() {
            // A new connection: a COPY refused at its start can leave the
            // client out of step with the server (seen: "unexpected
            // message" on the next statement).
            *self.client.get_mut() = None;
            // Retention on another collector may have dropped a day this
            // one thought was there: once more, making the days again.
            self.days.clear();
            if matches!(&result, Err(Error::Postgres(e)) if e.code() == Some(&postgres::error::SqlState::UNDEFINED_TABLE))
            {
                result = self.try_insert(batch, now_us);
            }
        }
        result
    }

    fn try_insert(&mut self, batch: &Batch, now_us: i64) -> Result<Stored> {
        let client = connected(self.client.get_mut(), &self.target)?;
        let new_days: BTreeSet<i64> = batch
            .rows
            .iter()
            .map(|r| day_of(r.ts_us))
            .filter(|d| !self.days.contains(d))
            .collect();
        if new_days.len() > DAYS_PER_TRANSACTION {
            tracing::warn!(sensor = %batch.sensor, days = new_days.len(),
                "a batch whose events fall on many days without partitions (a spool sent after a long outage, or a wrong clock); making them");
        }
        let days: Vec<i64> = new_days.into_iter().collect();
        for chunk in days.chunks(DAYS_PER_TRANSACTION) {
            make_partitions(client, chunk)?;
            self.days.extend(chunk);
        }
        let mut tx = client.transaction()?;
        tx.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
            &[&batch.sensor],
        )?;
        let seqs: Vec<u64> = batch.rows.iter().map(|r| r.seq).collect();
        let near = near(&mut tx, &batch.sensor, &seqs)?;
        let fresh = ranges::new_ones(&seqs, &near);
        let rows: Vec<&crate::ingest::Row> = batch
            .rows
            .iter()
            .zip(&fresh)
            .filter(|(_, new)| **new)
            .map(|(r, _)| r)
            .collect();
        let result = Stored {
            stored: rows.len() as u64,
            duplicates: (batch.rows.len() - rows.len()) as u64,
        };
        copy_rows(&mut tx, &batch.sensor, &rows)?;
        if self.graph_queue {
            for r in rows.iter().filter(|r| r.kind == "route") {
                tx.execute(
                    "INSERT INTO graph_queue (sensor, route_seq, ts_us) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                    &[&batch.sensor, &seq(r.seq)?, &r.ts_us],
                )?;
            }
        }
        let mut stored_seqs: Vec<u64> = rows.iter().map(|r| r.seq).collect();
        stored_seqs.sort_unstable();
        record(&mut tx, &batch.sensor, &near, &stored_seqs)?;
        let last = seq(seqs.iter().copied().max().unwrap_or(0))?;
        tx.execute(
            "INSERT INTO sensors (id, first_seen_us, last_seen_us, last_seq) VALUES ($1, $2, $2, $3)
             ON CONFLICT (id) DO UPDATE SET last_seen_us = $2, last_seq = greatest(sensors.last_seq, $3)",
            &[&batch.sensor, &now_us, &last],
        )?;
        let mut by_kind: BTreeMap<&str, i64> = BTreeMap::new();
        for r in &rows {
            *by_kind.entry(r.kind).or_default() += 1;
        }
        for (kind, n) in &by_kind {
            tx.execute(
                "INSERT INTO event_counts (sensor, kind, n) VALUES ($1, $2, $3)
                 ON CONFLICT (sensor, kind) DO UPDATE SET n = event_counts.n + $3",
                &[&batch.sensor, kind, n],
            )?;
        }
        tx.commit()?;
        Ok(result)
    }

    /// Takes up to `limit` routes queued for the graph store (routes
    /// another collector's graph thread holds are skipped), hands them to
    /// `write` and forgets them once written, in one transaction: when
    /// `write` fails they stay queued. Returns how many were written.
    pub fn graph_round<E: From<Error>>(
        &mut self,
        limit: u32,
        write: impl FnOnce(&[super::RouteRow]) -> std::result::Result<(), E>,
    ) -> std::result::Result<usize, E> {
        let client = connected(self.client.get_mut(), &self.target)?;
        let mut tx = client.transaction().map_err(Error::from)?;
        let queued = tx
            .query(
                "SELECT sensor, route_seq, ts_us FROM graph_queue ORDER BY ts_us LIMIT $1 FOR UPDATE SKIP LOCKED",
                &[&i64::from(limit)],
            )
            .map_err(Error::from)?;
        let mut routes = Vec::with_capacity(queued.len());
        for q in &queued {
            let (sensor, seq, ts_us): (String, i64, i64) = (q.get(0), q.get(1), q.get(2));
            // The route's own day (its partition) by its time.
            let head = tx
                .query_opt(
                    "SELECT src_ip, dst_ip FROM routes WHERE sensor = $1 AND seq = $2 AND ts_us = $3",
                    &[&sensor, &seq, &ts_us],
                )
                .map_err(Error::from)?;
            // Gone with retention: nothing to write.
            let Some(head) = head else { continue };
            let hops = tx
                .query(
                    "SELECT ttl, addr, rtt_avg_us, asn, country FROM hops
                     WHERE sensor = $1 AND route_seq = $2 AND ts_us = $3 AND addr IS NOT NULL ORDER BY ttl",
                    &[&sensor, &seq, &ts_us],
                )
                .map_err(Error::from)?
                .iter()
                .map(|h| (h.get(0), h.get(1), h.get(2), h.get(3), h.get(4)))
                .collect();
            routes.push(super::RouteRow {
                rowid: 0,
                sensor,
                ts_us,
                src: head.get(0),
                dst: head.get(1),
                hops,
            });
        }
        write(&routes)?;
        for q in &queued {
            let (sensor, seq): (String, i64) = (q.get(0), q.get(1));
            tx.execute(
                "DELETE FROM graph_queue WHERE sensor = $1 AND route_seq = $2",
                &[&sensor, &seq],
            )
            .map_err(Error::from)?;
        }
        tx.commit().map_err(Error::from)?;
        Ok(routes.len())
    }

    /// Queues every stored route for the graph store again (a graph that
    /// was emptied or replaced). Returns how many were queued.
    pub fn graph_refill(&mut self) -> Result<u64> {
        let client = connected(self.client.get_mut(), &self.target)?;
        Ok(client.execute(
            "INSERT INTO graph_queue (sensor, route_seq, ts_us) SELECT sensor, seq, ts_us FROM routes
             ON CONFLICT DO NOTHING",
            &[],
        )?)
    }

    /// Drops the days that end at or before `before_us`, each in a
    /// transaction of its own, with the counts of what they held. Returns
    /// the events deleted. (Retention is by whole days: an event stays up
    /// to a day longer than `retention_days`.)
    pub fn expire(&mut self, before_us: i64) -> Result<u64> {
        let client = connected(self.client.get_mut(), &self.target)?;
        let last_gone = day_of(before_us) - 1;
        let days: Vec<i64> = client
            .query("SELECT day FROM partitions WHERE day <= $1 ORDER BY day", &[&last_gone])?
            .iter()
            .map(|r| r.get(0))
            .collect();
        let mut deleted = 0u64;
        for day in days {
            let mut tx = client.transaction()?;
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&LOCK_PARTITIONS])?;
            if tx.execute("DELETE FROM partitions WHERE day = $1", &[&day])? == 0 {
                continue;
            }
            let counts = tx.query(
                &format!(
                    "SELECT sensor, kind, count(*) FROM {} GROUP BY 1, 2",
                    partition("events", day)
                ),
                &[],
            )?;
            for r in &counts {
                let (sensor, kind, n): (String, String, i64) = (r.get(0), r.get(1), r.get(2));
                tx.execute(
                    "UPDATE event_counts SET n = n - $3 WHERE sensor = $1 AND kind = $2",
                    &[&sensor, &kind, &n],
                )?;
                deleted += n.max(0) as u64;
            }
            for table in PARTITIONED {
                tx.batch_execute(&format!("DROP TABLE IF EXISTS {}", partition(table, day)))?;
            }
            tx.commit()?;
            self.days.remove(&day);
        }
        Ok(deleted)
    }
}

/// Makes the partitions of `days` that do not exist yet, in a transaction
/// of its own (creating a partition locks its table: not inside a batch).
fn make_partitions(client: &mut Client, days: &[i64]) -> Result<()> {
    let mut tx = client.transaction()?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&LOCK_PARTITIONS])?;
    for &day in days {
        if tx.execute(
            "INSERT INTO partitions (day) VALUES ($1) ON CONFLICT DO NOTHING",
            &[&day],
        )? == 0
        {
            continue;
        }
        let (from, to) = (day.saturating_mul(DAY_US), day.saturating_add(1).saturating_mul(DAY_US));
        for table in PARTITIONED {
            tx.batch_execute(&format!(
                "CREATE TABLE IF NOT EXISTS {} PARTITION OF {table} FOR VALUES FROM ({from}) TO ({to})",
                partition(table, day)
            ))?;
        }
    }
    tx.commit()?;
    Ok(())
}

/// The new rows of a batch and their typed rows, by `COPY … (FORMAT
/// binary)`: one stream per table and day that has rows, straight into
/// the day's partition (through the partitioned table, each row would be
/// routed on its own).
fn copy_rows(tx: &mut Transaction<'_>, sensor: &str, rows: &[&crate::ingest::Row]) -> Result<()> {
    let mut by_day: BTreeMap<i64, Vec<&crate::ingest::Row>> = BTreeMap::new();
    for r in rows {
        by_day.entry(day_of(r.ts_us)).or_default().push(r);
    }
    for (day, rows) in by_day {
        copy_day(tx, sensor, day, &rows)?;
    }
    Ok(())
}

/// [`copy_rows`] for the rows of one day.
fn copy_day(tx: &mut Transaction<'_>, sensor: &str, day: i64, rows: &[&crate::ingest::Row]) -> Result<()> {
    let mut events = CopyData::new(&EVENT_TYPES);
    let mut typed_rows = Vec::with_capacity(rows.len());
    for r in rows {
        let s = seq(r.seq)?;
        events.row(&[&sensor, &s, &r.kind, &r.ts_us, &r.json])?;
        typed_rows.push((r.ts_us, typed::of(sensor, r)?));
    }
    events.send(tx, &partition("events", day), "sensor, seq, kind, ts_us, json")?;
    let mut tables: [Vec<&[Param<'_>]>; 4] = Default::default();
    let mut hops: Vec<Vec<Param<'_>>> = Vec::new();
    for (ts, t) in &typed_rows {
        match t {
            Typed::Handshake(v) => tables[0].push(v),
            Typed::Flow(v) => tables[1].push(v),
            Typed::Route(v, hs) => {
                tables[2].push(v);
                // The hop's columns and its route's time.
                hops.extend(hs.iter().map(|h| h.iter().cloned().chain([Param::Int(*ts)]).collect()));
            }
            Typed::Scan(v) => tables[3].push(v),
            Typed::None => {}
        }
    }
    let [handshakes, flows, routes, scans] = tables;
    let hops: Vec<&[Param<'_>]> = hops.iter().map(Vec::as_slice).collect();
    for (table, rows) in [
        (&typed::HANDSHAKES, handshakes),
        (&typed::FLOWS, flows),
        (&typed::ROUTES, routes),
        (&typed::SCANS, scans),
    ] {
        let types: Vec<Type> = table.columns.iter().map(|(_, c)| pg_type(*c)).collect();
        send(tx, &partition(table.name, day), &table.column_list(), &types, &rows)?;
    }
    // The hops with their route's time (their partition's key).
    let mut types: Vec<Type> = typed::HOPS.columns.iter().map(|(_, c)| pg_type(*c)).collect();
    types.push(Type::INT8);
    let columns = format!("{}, ts_us", typed::HOPS.column_list());
    send(tx, &partition("hops", day), &columns, &types, &hops)
}

/// `rows` into `table` by one `COPY`, when there are any.
fn send(tx: &mut Transaction<'_>, table: &str, columns: &str, types: &[Type], rows: &[&[Param<'_>]]) -> Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let mut data = CopyData::new(types);
    for v in rows {
        let values: Vec<&(dyn ToSql + Sync)> = v.iter().map(|p| p as &(dyn ToSql + Sync)).collect();
        data.row(&values)?;
    }
    data.send(tx, table, columns)?;
    Ok(())
}

const EVENT_TYPES: [Type; 5] = [Type::TEXT, Type::INT8, Type::TEXT, Type::INT8, Type::TEXT];

/// Rows in PostgreSQL's binary `COPY` format, sent whole in one go (the
/// postgres crate's row writer waits on its runtime for every row:
/// docs/benchmarks.md).
pub struct CopyData<'t> {
    types: &'t [Type],
    buf: bytes::BytesMut,
}

impl<'t> CopyData<'t> {
    pub fn new(types: &'t [Type]) -> CopyData<'t> {
        let mut buf = bytes::BytesMut::with_capacity(64 * 1024);
        buf.put_slice(b"PGCOPY\n\xff\r\n\0");
        buf.put_i32(0); // flags
        buf.put_i32(0); // header extension
        CopyData { types, buf }
    }

    /// One row: its values in the order of the types.
    pub fn row(&mut self, values: &[&(dyn ToSql + Sync)]) -> Result<()> {
        let n = i16::try_from(values.len())
            .ok()
            .filter(|_| values.len() == self.types.len());
        let Some(n) = n else {
            return Err(Error::Invalid(format!(
                "a row of {} values for {} columns",
                values.len(),
                self.types.len()
            )));
        };
        self.buf.put_i16(n);
        for (v, ty) in values.iter().zip(self.types) {
            let at = self.buf.len();
            self.buf.put_i32(0);
            let len = match v
                .to_sql_checked(ty, &mut self.buf)
                .map_err(|e| Error::Invalid(format!("a {ty} value: {e}")))?
            {
                IsNull::Yes => -1,
                IsNull::No => i32::try_from(self.buf.len() - at - 4)
                    .map_err(|_| Error::Invalid("a value larger than 2 GiB".into()))?,
            };
            self.buf[at..at + 4].copy_from_slice(&len.to_be_bytes());
        }
        Ok(())
    }

    /// `COPY table (columns) FROM STDIN (FORMAT binary)` with the rows.
    pub fn send(mut self, tx: &mut Transaction<'_>, table: &str, columns: &str) -> Result<u64> {
        use std::io::Write;
        self.buf.put_i16(-1);
        let mut w = tx.copy_in(&format!("COPY {table} ({columns}) FROM STDIN (FORMAT binary)"))?;
        // One write: the writer holds it and sends it when finished.
        w.write_all(&self.buf)
            .map_err(|e| Error::Invalid(format!("COPY {table}: {e}")))?;
        Ok(w.finish()?)
    }
}

/// The stored ranges of `sensor` that overlap or touch the numbers of a
/// batch, in order: per run `[lo, hi]` of its numbers, the ranges starting
/// in `[lo, hi + 1]` and the last one starting before `lo` if it reaches
/// `lo - 1` (ranges are disjoint: no other can touch the run).
fn near(tx: &mut Transaction<'_>, sensor: &str, seqs: &[u64]) -> Result<Vec<ranges::Range>> {
    let mut sorted = seqs.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let mut out = Vec::new();
    let range = |r: &postgres::Row| -> (u64, u64) {
        let (a, b): (i64, i64) = (r.get(0), r.get(1));
        (a.max(0) as u64, b.max(0) as u64)
    };
    for (lo, hi) in ranges::runs(&sorted) {
        let (lo_sql, hi_next) = (seq(lo)?, seq(hi.saturating_add(1).min(i64::MAX as u64))?);
        let before = tx.query_opt(
            "SELECT first, last FROM stored_ranges WHERE sensor = $1 AND first < $2 ORDER BY first DESC LIMIT 1",
            &[&sensor, &lo_sql],
        )?;
        if let Some(r) = before.as_ref().map(range).filter(|&(_, b)| b.saturating_add(1) >= lo) {
            out.push(r);
        }
        let within = tx.query(
            "SELECT first, last FROM stored_ranges WHERE sensor = $1 AND first >= $2 AND first <= $3 ORDER BY first",
            &[&sensor, &lo_sql, &hi_next],
        )?;
        out.extend(within.iter().map(range));
    }
    out.sort_unstable();
    out.dedup();
    Ok(out)
}

/// Records `stored` (increasing) with `near`, merged.
fn record(tx: &mut Transaction<'_>, sensor: &str, near: &[ranges::Range], stored: &[u64]) -> Result<()> {
    if stored.is_empty() {
        return Ok(());
    }
    for &(a, _) in near {
        tx.execute(
            "DELETE FROM stored_ranges WHERE sensor = $1 AND first = $2",
            &[&sensor, &seq(a)?],
        )?;
    }
    for (a, b) in ranges::merge(near, &ranges::runs(stored)) {
        tx.execute(
            "INSERT INTO stored_ranges (sensor, first, last) VALUES ($1, $2, $3)",
            &[&sensor, &seq(a)?, &seq(b)?],
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_are_numbered_in_order() {
        assert_eq!(
            numbered("SELECT a FROM t WHERE x = ? AND y <= ? LIMIT ?"),
            "SELECT a FROM t WHERE x = $1 AND y <= $2 LIMIT $3"
        );
    }

    #[test]
    fn days_and_partitions() {
        assert_eq!(day_of(0), 0);
        assert_eq!(day_of(DAY_US - 1), 0);
        assert_eq!(day_of(DAY_US), 1);
        assert_eq!(day_of(-1), -1);
        assert_eq!(partition("events", 20_427), "events_d20427");
    }

    #[test]
    fn where_it_is_without_the_password() {
        let s = Settings {
            url: "postgresql://collector:secret@db1:5433/netgazer".into(),
            connect_timeout: Duration::from_secs(1),
            graph_queue: false,
            tls_ca_file: None,
        };
        let shown = s.to_string();
        assert_eq!(shown, "PostgreSQL database netgazer on db1 as collector");
        assert!(!shown.contains("secret"));
    }
}
