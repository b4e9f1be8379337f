//! Writes the man pages and shell completions of `net-gazer-collector`, generated
//! from its clap definitions, into DIR (scripts/build-deb.sh packs them):
//!
//!   collector-docs DIR   # DIR/man/net-gazer-collector.1; DIR/completions/…

use std::path::Path;

use clap::CommandFactory;

#[path = "../../host/examples/common/docs.rs"]
mod common;

fn main() -> std::io::Result<()> {
    let dir = std::env::args().nth(1).unwrap_or_else(|| "target/docs".into());
    common::write_all(net_gazer_collector::cli::Cli::command(), Path::new(&dir))
}
