//! A `net-gazer-collector` process on a real socket. Shared by the
//! collector's tests and the sensor's (host/tests/common/collector.rs
//! includes this file).

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

pub struct Collector {
    child: Child,
    /// `http://ADDRESS:PORT`, where it listens.
    pub base: String,
}

impl Drop for Collector {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Collector {
    /// Runs `bin -c config` and waits until it says where it listens.
    pub fn spawn(bin: &Path, config: &Path) -> Collector {
        let mut cmd = Command::new(bin);
        cmd.arg("-c").arg(config);
        Collector::spawn_command(cmd)
    }

    /// Runs `cmd` (the collector, perhaps through a wrapper) and waits
    /// until it says where it listens.
    pub fn spawn_command(mut cmd: Command) -> Collector {
        let mut child = cmd.stderr(Stdio::piped()).spawn().expect("the collector starts");
        let stderr = child.stderr.take().expect("its standard error");
        let mut lines = BufReader::new(stderr).lines();
        let addr = loop {
            let line = lines
                .next()
                .expect("the collector says where it listens")
                .expect("its log is text");
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

    /// Its process id (signals).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Kills it (SIGKILL) and waits.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
