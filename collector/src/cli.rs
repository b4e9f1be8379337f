//! The command line of `net-gazer-collector` (also read by the man page
//! and shell completion generator, `examples/collector-docs.rs`).

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;

#[derive(Debug, Parser)]
#[command(
    name = "net-gazer-collector",
    version,
    about = "collects, stores and serves the events of net-gazer sensors",
    long_about = "collects, stores and serves the events of net-gazer sensors\n\n\
        Sensors POST batches of events to /api/v1/events with their bearer token; each event is stored \
        once in SQLite whatever the retries. GET /health answers UP, GET /metrics serves Prometheus text, \
        and / the web UI (graph of paths, map, inbound attempts, internal traffic, RTT over time).",
    after_long_help = "Exit status: 0 on success (a stop by SIGTERM or Ctrl-C included); 1 on a failure \
        (the database cannot be opened, the address cannot be bound); 64 (EX_USAGE) when the command line is wrong; \
        78 (EX_CONFIG) when the configuration is wrong (a key, a value out of range, a short token) - the systemd \
        unit does not restart on 78."
)]
pub struct Cli {
    /// Configuration file [default: ./etc/net-gazer/net-gazer-collector.toml, then /usr/local/etc/…, then /etc/…]
    #[arg(short, long, env = "NG_CONFIG")]
    pub config: Option<PathBuf>,
    /// Address and port to listen on [default: listen in the file, 127.0.0.1:8080]
    #[arg(long, env = "NG_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// SQLite database file [default: database in the file]
    #[arg(long, env = "NG_DATABASE")]
    pub database: Option<PathBuf>,
    /// More log output: -v info, -vv debug (RUST_LOG overrides)
    #[arg(short, long, action = clap::ArgAction::Count)]
    pub verbose: u8,
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// What to do instead of serving.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Copy every event of a SQLite database into the configured store ([postgres]), then exit
    ///
    /// Events already in the destination (same sensor and sequence number) are skipped, so the
    /// command can be run again after an interruption, or while sensors already send to the new
    /// store. Exit status 0 when every event was copied or found there.
    Migrate {
        /// The SQLite database of the collector being replaced
        #[arg(long, value_name = "FILE")]
        from: PathBuf,
    },
}
