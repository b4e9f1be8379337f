//! Writes the man pages and shell completions of `net-gazer`, generated
//! from its clap definitions, into DIR (scripts/build-deb.sh packs them):
//!
//!   sensor-docs DIR   # DIR/man/net-gazer.1, net-gazer-run.1, …; DIR/completions/…

use std::path::Path;

use clap::CommandFactory;

#[path = "common/docs.rs"]
mod common;

fn main() -> std::io::Result<()> {
    let dir = std::env::args().nth(1).unwrap_or_else(|| "target/docs".into());
    common::write_all(net_gazer::cli::Cli::command(), Path::new(&dir))
}
