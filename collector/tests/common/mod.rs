//! The collector as a real process, for the integration tests.

#![allow(dead_code)]

use std::path::Path;

pub mod certs;
pub mod falkordb;
pub mod postgres;
mod process;
pub use process::Collector;

/// A configuration in `dir`: a free loopback port, a database in `dir`,
/// everything kept (`retention_days = 0`), and `extra` TOML (its sensors).
pub fn write_config(dir: &Path, extra: &str) -> std::path::PathBuf {
    let config = dir.join("collector.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:0\"\ndatabase = \"{}\"\nretention_days = 0\n{extra}",
            dir.join("events.sqlite").display()
        ),
    )
    .unwrap();
    config
}

/// Starts the collector with [`write_config`] and waits until it listens.
pub fn start(dir: &Path, extra: &str) -> Collector {
    Collector::spawn(
        Path::new(env!("CARGO_BIN_EXE_net-gazer-collector")),
        &write_config(dir, extra),
    )
}
