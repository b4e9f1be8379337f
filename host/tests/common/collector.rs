//! A real `net-gazer-collector` process for the tests (built by `cargo
//! build --workspace`, beside `net-gazer`).

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

/// The token of the one sensor the test collectors accept, `gw-test`.
pub const TOKEN: &str = "sensor-token-0123456789";

pub fn bin() -> PathBuf {
    let p = super::bin().with_file_name("net-gazer-collector");
    assert!(
        p.is_file(),
        "{} is missing: `cargo build --workspace` first (scripts/test.sh does)",
        p.display()
    );
    p
}

/// The collector's configuration: `listen`, a database in `dir`, sensor
/// `gw-test` with [`TOKEN`], everything kept (`retention_days = 0`: replayed
/// captures are old), and `extra` TOML appended.
pub fn write_config(dir: &Path, listen: &str, extra: &str) -> PathBuf {
    let config = dir.join("collector.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"{listen}\"\ndatabase = \"{}\"\nretention_days = 0\n{extra}\n[sensors.gw-test]\ntoken = \"{TOKEN}\"\n",
            dir.join("events.sqlite").display()
        ),
    )
    .unwrap();
    config
}

#[path = "../../../collector/tests/common/process.rs"]
mod process;
pub use process::Collector;

impl Collector {
    /// Starts one (`write_config`) and waits until it listens.
    pub fn start(dir: &Path, listen: &str, extra: &str) -> Collector {
        Collector::spawn(&bin(), &write_config(dir, listen, extra))
    }

    /// A query's JSON (`path` under `/api/v1/`).
    pub fn get(&self, path: &str) -> Value {
        let text = reqwest::blocking::get(format!("{}/api/v1/{path}", self.base))
            .unwrap()
            .text()
            .unwrap();
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}: {text}"))
    }

    /// Events stored from `gw-test`, by kind.
    pub fn stored(&self) -> Value {
        self.get("summary")["events"]["gw-test"].clone()
    }
}

/// A sensor configuration for replays delivering to `url` as `gw-test`,
/// JSON lines in `jsonl`, `extra` TOML appended.
pub fn sensor_config(dir: &Path, url: &str, jsonl: &Path, extra: &str) -> PathBuf {
    let config = dir.join("sensor.toml");
    std::fs::write(
        &config,
        format!(
            "[sensor]\nid = \"gw-test\"\n[output]\njsonl = \"{}\"\n[output.collector]\nurl = \"{url}\"\n\
             token = \"{TOKEN}\"\nbatch_size = 20\nspool_dir = \"{}\"\n[track]\nmax_connections = 100000\n{extra}",
            jsonl.display(),
            dir.join("spool").display()
        ),
    )
    .unwrap();
    config
}

/// Replays `files` with `config`; the log (stderr).
pub fn replay(config: &Path, files: &[PathBuf]) -> String {
    let out = Command::new(super::bin())
        .args(["-v", "replay", "--no-progress", "-c"])
        .arg(config)
        .args(files)
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "replay failed: {log}");
    log
}
