//! net-gazer-collector: receives the events of one or many sensors over
//! HTTP or from NATS JetStream, stores each exactly once in SQLite or PostgreSQL, and
//! serves them.
//!
//! - [`cli`]: the command line;
//! - [`config`]: the TOML file (`net-gazer-collector.toml`), with the
//!   sensors and their tokens;
//! - [`ingest`]: a batch's body → validated rows, or a message saying what
//!   is wrong (no I/O);
//! - [`store`]: SQLite (bundled, WAL; the default) or PostgreSQL
//!   (`[postgres]`, shared by collectors): schema, batches in one
//!   transaction, duplicates by (sensor, sequence number) ignored;
//! - [`migrate`]: `migrate --from FILE`, a SQLite database's events into
//!   the configured store;
//! - [`query`]: what the API serves (hosts, graph, one host's detail),
//!   read from the typed tables;
//! - [`server`]: the HTTP API (axum): `POST /api/v1/events`, `GET /health`,
//!   `GET /metrics`, `GET /api/v1/summary`, `/api/v1/hosts`,
//!   `/api/v1/hosts/{ip}`, `/api/v1/graph`, …;
//! - [`source`]: batches from NATS JetStream (`[source.nats]`), through
//!   the same intake as `POST /api/v1/events`;
//! - [`graphdb`]: the optional FalkorDB graph of the traced paths, filled
//!   from SQLite by a thread of its own;
//! - [`ui`]: the web UI's files, compiled into the binary (no internet
//!   needed to use it);
//! - [`fuzzing`]: the bodies of the fuzz targets (`fuzz/`), which the tests
//!   replay on their corpora.

pub mod cli;
pub mod config;
pub mod fuzzing;
pub mod graphdb;
pub mod ingest;
pub mod migrate;
pub mod query;
pub mod server;
pub mod source;
pub mod store;
pub mod ui;
