//! Helpers shared by the integration tests: run the real binary, read its
//! JSON lines.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_net-gazer")
}

/// `../shared/data` beside the project, if present.
pub fn shared_data() -> Option<PathBuf> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data");
    p.is_dir().then_some(p)
}

pub struct Replay {
    pub events: Vec<Value>,
    pub summary: Value,
    pub stderr: String,
}

impl Replay {
    pub fn of_kind(&self, kind: &str) -> Vec<&Value> {
        self.events.iter().filter(|e| e["kind"] == kind).collect()
    }
}

/// Runs `net-gazer replay` with `args` and the files, with an empty config.
pub fn replay(files: &[&Path], args: &[&str]) -> Replay {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("events.jsonl");
    let config = dir.path().join("empty.toml");
    std::fs::write(&config, "").expect("write config");
    let output = Command::new(bin())
        .arg("replay")
        .arg("-c")
        .arg(&config)
        .arg("-o")
        .arg(&out)
        .arg("--summary-json")
        .args(args)
        .args(files)
        .output()
        .expect("run net-gazer");
    let stderr = String::from_utf8_lossy(&output.stderr).to_string();
    assert!(output.status.success(), "net-gazer replay failed: {stderr}");
    let text = std::fs::read_to_string(&out).unwrap_or_default();
    let events = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is JSON"))
        .collect();
    let summary_line = stderr
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .expect("summary JSON on stderr");
    Replay {
        events,
        summary: serde_json::from_str(summary_line).expect("summary parses"),
        stderr,
    }
}
