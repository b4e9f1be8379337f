//! Helpers shared by the integration tests: run the real binary, read its
//! JSON lines.

#![allow(dead_code)]

pub mod browser;
pub mod collector;
#[path = "../../../collector/tests/common/falkordb.rs"]
pub mod falkordb;
pub mod geo;

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

/// The `net-gazer` binary: cargo's for the host's own tests; for a test
/// crate of another package (e2e/), the one the workspace build put in
/// the target directory, beside the test's `deps/`.
pub fn bin() -> PathBuf {
    if let Some(p) = option_env!("CARGO_BIN_EXE_net-gazer") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("the test executable's path");
    let p = exe
        .parent()
        .and_then(Path::parent)
        .map(|dir| dir.join("net-gazer"))
        .expect("the target directory");
    assert!(
        p.is_file(),
        "{} is missing: build the workspace first (cargo build --workspace; scripts/test.sh does)",
        p.display()
    );
    p
}

/// The repository's `testdata/`: real captures with tshark's tables, and
/// the GeoIP test databases (testdata/README.md says where each is from).
pub fn testdata() -> PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata");
    assert!(p.is_dir(), "{} is missing: it is part of the repository", p.display());
    p
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
    let config = dir.path().join("empty.toml");
    std::fs::write(&config, "").expect("write config");
    replay_with_config(files, &config, args)
}

/// Runs `net-gazer replay -c CONFIG` with `args` and the files.
pub fn replay_with_config(files: &[&Path], config: &Path, args: &[&str]) -> Replay {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("events.jsonl");
    let output = Command::new(bin())
        .arg("replay")
        .arg("-c")
        .arg(config)
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

/// A built plugin: first-party ones at the top of the plugin build
/// directory, the test plugin in `testing/`.
pub fn built_file(dir: &Path, name: &str) -> PathBuf {
    if ["testkit", "lazy", "lazy-py", "tls-tag", "tls-tag-py"].contains(&name) {
        dir.join(format!("testing/{name}.wasm"))
    } else {
        dir.join(format!("{name}.wasm"))
    }
}

/// The directory of the built plugins (scripts/build-plugins.sh), or `None`
/// with a loud message when `needed` are not all there; with
/// NG_REQUIRE_PLUGINS=1 (scripts/test.sh) their absence fails the test.
pub fn built_plugins(needed: &[&str]) -> Option<PathBuf> {
    let dir = std::env::var_os("NG_TEST_PLUGINS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            std::env::var_os("CARGO_TARGET_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from("/var/tmp/net-gazer-target"))
                .join("plugins")
        });
    if needed.iter().all(|p| built_file(&dir, p).is_file()) {
        return Some(dir);
    }
    if std::env::var("NG_REQUIRE_PLUGINS").as_deref() == Ok("1") {
        panic!("plugins not built in {}: run scripts/build-plugins.sh", dir.display());
    }
    eprintln!("==================================================================");
    eprintln!(
        "SKIPPED: plugins not built in {}; run scripts/build-plugins.sh",
        dir.display()
    );
    eprintln!("==================================================================");
    None
}

/// A capture of `n` established handshakes from 10.0.x.y to 192.0.2.z
/// (the delivery and fleet tests).
pub fn many_handshakes(path: &Path, n: u32) {
    use net_gazer_core::craft::{frame, PcapWriter, TcpSpec, TsResolution};
    use net_gazer_core::decode::{LinkType, TcpFlags, VlanStack};
    use net_gazer_core::time::Timestamp;
    let mut w = PcapWriter::new(Vec::new(), 1, TsResolution::Micro, false, 65535).unwrap();
    for i in 0..n {
        let client = std::net::IpAddr::from([10, 0, (i >> 8) as u8, i as u8]);
        let server = std::net::IpAddr::from([192, 0, 2, (i % 250) as u8]);
        let port = 1024 + (i % 60_000) as u16;
        let t = 1_700_000_000_000_000i64 + i as i64 * 100;
        for (dt, spec) in [
            (0, TcpSpec::new(client, port, server, 443, TcpFlags::SYN).seq(i)),
            (
                40,
                TcpSpec::new(server, 443, client, port, TcpFlags::SYN | TcpFlags::ACK)
                    .seq(7)
                    .ack(i + 1),
            ),
        ] {
            let f = frame(LinkType::Ethernet, VlanStack::NONE, &spec.ip_bytes());
            w.write(Timestamp::from_micros(t + dt), &f, f.len() as u32).unwrap();
        }
    }
    std::fs::write(path, w.into_inner()).unwrap();
}
