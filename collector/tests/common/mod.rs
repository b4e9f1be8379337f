//! The collector as a real process, for the integration tests.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

pub struct Collector {
    child: Child,
    pub base: String,
}

impl Drop for Collector {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Collector {
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the collector on a free loopback port with a database in `dir`,
/// everything kept (`retention_days = 0`), and `extra` TOML (its sensors).
pub fn start(dir: &Path, extra: &str) -> Collector {
    let config = dir.join("collector.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:0\"\ndatabase = \"{}\"\nretention_days = 0\n{extra}",
            dir.join("events.sqlite").display()
        ),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_net-gazer-collector"))
        .arg("-c")
        .arg(&config)
        .stderr(Stdio::piped())
        .spawn()
        .expect("the collector starts");
    let stderr = child.stderr.take().unwrap();
    let mut lines = BufReader::new(stderr).lines();
    let addr = loop {
        let line = lines.next().expect("the collector says where it listens").unwrap();
        if let Some(a) = line.strip_prefix("net-gazer-collector: listening on ") {
            break a.trim().to_string();
        }
    };
    // Keep draining its log so it never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    Collector {
        child,
        base: format!("http://{addr}"),
    }
}
