//! The core stays sans-IO: no clock, no sockets, no threads, no files, and
//! none of the daemon's heavy dependencies.

use std::path::{Path, PathBuf};

fn core_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn no_dependency_of_the_daemon() {
    let manifest = std::fs::read_to_string(core_dir().join("Cargo.toml")).unwrap();
    let deps = manifest
        .split("[dependencies]")
        .nth(1)
        .and_then(|rest| rest.split("\n[").next())
        .unwrap_or("");
    let names: Vec<&str> = deps
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split(['.', '=', ' ']).next())
        .collect();
    assert!(!names.is_empty(), "no [dependencies] read from core/Cargo.toml");
    for forbidden in [
        "clap",
        "tokio",
        "wasmtime",
        "wasmtime-wasi",
        "reqwest",
        "axum",
        "rusqlite",
        "libc",
        "tracing",
        "toml",
    ] {
        assert!(!names.contains(&forbidden), "net-gazer-core depends on {forbidden}");
    }
}

#[test]
fn nothing_reads_a_clock_or_does_io() {
    let mut files = Vec::new();
    sources(&core_dir().join("src"), &mut files);
    assert!(files.len() > 10, "the core's sources were not found");
    let forbidden = [
        "SystemTime::now",
        "Instant::now",
        "std::thread",
        "std::fs",
        "std::net::TcpStream",
        "std::net::UdpSocket",
        "std::sync::Mutex",
        "std::io::stdin",
        "std::env",
    ];
    let mut found = Vec::new();
    // Tests may sleep to prove time is not read; production code may not.
    for f in files.iter().filter(|f| !f.ends_with("tests.rs")) {
        let text = std::fs::read_to_string(f).unwrap();
        let production = text.split("#[cfg(test)]").next().unwrap_or("");
        for (n, line) in production.lines().enumerate() {
            if line.trim_start().starts_with("//") {
                continue;
            }
            for word in forbidden {
                if line.contains(word) {
                    found.push(format!("{}:{}: {word}", f.display(), n + 1));
                }
            }
        }
    }
    assert!(
        found.is_empty(),
        "the core must take time and bytes as inputs:\n{}",
        found.join("\n")
    );
}
