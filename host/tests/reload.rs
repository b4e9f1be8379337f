//! Hot reload under load: the live sensor captures a steady stream of
//! connections on the loopback of a network namespace of its own while the
//! test swaps the plugin in the directory and its configuration and sends
//! SIGHUP again and again, once with a broken file. Every connection must be
//! reported exactly once, handled by one version or another, and the broken
//! file must leave the previous version running. Needs root (skipped with a
//! message otherwise) and the built plugins (scripts/build-plugins.sh).

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use common::{built_file, built_plugins};

const CONNECTIONS: usize = 400;
const PORT: u16 = 18_080;

/// Removes the namespace however the test ends.
struct Namespace(String);

impl Drop for Namespace {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

/// Replaces `dest` atomically (as an operator should: copy, then rename).
fn install(from: &Path, dest: &Path) {
    let tmp = dest.with_extension("tmp");
    std::fs::copy(from, &tmp).unwrap();
    std::fs::rename(&tmp, dest).unwrap();
}

fn write_config(dir: &Path, key: &str) {
    // `exp` (testkit) exports what passed `v`, across every reload.
    let text = format!(
        "[plugins]\ndir = \"{}\"\ncache_dir = \"{}\"\n[plugins.v]\nkey = \"{key}\"\n\
         [plugins.exp]\nrole = \"exporter\"\nkey = \"exp\"\n",
        dir.join("plugins").display(),
        dir.join("cache").display()
    );
    let tmp = dir.join("net-gazer.toml.tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, dir.join("net-gazer.toml")).unwrap();
}

/// Connects to the listener `CONNECTIONS` times, a few milliseconds apart,
/// keeping the latest `hold` connections open (flows open at every reload).
const TRAFFIC: &str = r#"
import collections, socket, sys, threading, time
port, n, hold = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
srv = socket.socket(); srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", port)); srv.listen(512)
def serve():
    while True:
        c, _ = srv.accept(); c.sendall(b"hello"); c.close()
threading.Thread(target=serve, daemon=True).start()
open_now = collections.deque()
for i in range(n):
    s = socket.create_connection(("127.0.0.1", port))
    print(s.getsockname()[1], flush=True)
    open_now.append(s)
    while len(open_now) > hold:
        open_now.popleft().close()
    time.sleep(0.005)
while open_now:
    open_now.popleft().close()
"#;

#[test]
fn reload_under_load_loses_and_duplicates_nothing() {
    reload_under_load("handshake", 0);
}

/// The same in capture mode `quality`, with 50 connections open at every
/// reload: every connection has its handshake and its flow event, once,
/// and the queue dropped nothing.
#[test]
fn reload_in_quality_mode_with_flows_open_loses_nothing() {
    reload_under_load("quality", 50);
}

fn reload_under_load(mode: &str, hold: usize) {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("==================================================================");
        eprintln!("SKIPPED: the hot-reload test needs root (a network namespace and capture)");
        eprintln!("==================================================================");
        return;
    }
    let Some(built) = built_plugins(&["demo", "testkit"]) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("plugins")).unwrap();
    let v = dir.path().join("plugins/v.wasm");
    let garbage = dir.path().join("garbage.bin");
    std::fs::write(&garbage, b"\0asm\x0d\0\x01\0truncated").unwrap();
    install(&built_file(&built, "testkit"), &v);
    install(&built_file(&built, "testkit"), &dir.path().join("plugins/exp.wasm"));
    write_config(dir.path(), "one");

    let ns = Namespace(format!("ngr{}{}", std::process::id(), &mode[..1]));
    assert!(Command::new("ip")
        .args(["netns", "add", &ns.0])
        .status()
        .unwrap()
        .success());
    assert!(Command::new("ip")
        .args(["netns", "exec", &ns.0, "ip", "link", "set", "lo", "up"])
        .status()
        .unwrap()
        .success());

    let events = dir.path().join("events.jsonl");
    let log = std::fs::File::create(dir.path().join("sensor.log")).unwrap();
    let mut sensor = Command::new("ip")
        .args(["netns", "exec", &ns.0])
        .arg(env!("CARGO_BIN_EXE_net-gazer"))
        .args(["run", "-v", "-i", "lo", "--local-net", "127.0.0.0/8", "-m", mode, "-c"])
        .arg(dir.path().join("net-gazer.toml"))
        .arg("-o")
        .arg(&events)
        .stderr(log)
        .spawn()
        .unwrap();
    let sensor_log = || std::fs::read_to_string(dir.path().join("sensor.log")).unwrap_or_default();
    let started = Instant::now();
    while !sensor_log().contains("capturing") {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "sensor did not start: {}",
            sensor_log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }

    let mut traffic = Command::new("ip")
        .args([
            "netns",
            "exec",
            &ns.0,
            "python3",
            "-c",
            TRAFFIC,
            &PORT.to_string(),
            &CONNECTIONS.to_string(),
            &hold.to_string(),
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    // Swap versions while the connections come: testkit tagging `one`, the
    // demo plugin (keeps everything, tags nothing), testkit tagging
    // `two`, a broken file (refused: the previous version stays), ...
    let hup = || {
        // SAFETY: kill has no memory preconditions; the pid is our child's.
        unsafe { libc::kill(sensor.id() as i32, libc::SIGHUP) };
    };
    let mut reloads = 0;
    let mut broken_sent = false;
    while traffic.try_wait().unwrap().is_none() {
        match reloads % 4 {
            0 => {
                install(&built_file(&built, "demo"), &v);
            }
            1 => {
                install(&built_file(&built, "testkit"), &v);
                write_config(dir.path(), "two");
            }
            2 => {
                install(&garbage, &v);
                broken_sent = true;
            }
            _ => {
                install(&built_file(&built, "testkit"), &v);
                write_config(dir.path(), "one");
            }
        }
        hup();
        reloads += 1;
        std::thread::sleep(Duration::from_millis(120));
    }
    let traffic = traffic.wait_with_output().unwrap();
    assert!(traffic.status.success(), "traffic generator failed");
    // The client ports, as the client saw them (the kernel may reuse one).
    let mut used: Vec<u64> = String::from_utf8_lossy(&traffic.stdout)
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect();
    used.sort_unstable();
    assert_eq!(used.len(), CONNECTIONS, "the client made every connection");
    // Let the last reload and the last events settle, then stop.
    std::thread::sleep(Duration::from_millis(500));
    // SAFETY: as above.
    unsafe { libc::kill(sensor.id() as i32, libc::SIGTERM) };
    let stopping = Instant::now();
    let status = loop {
        if let Some(status) = sensor.try_wait().unwrap() {
            break status;
        }
        if stopping.elapsed() > Duration::from_secs(20) {
            let _ = sensor.kill();
            panic!("the sensor did not exit within 20 s of SIGTERM: {}", sensor_log());
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let log = sensor_log();
    assert!(status.success(), "sensor exit {status}: {log}");
    assert!(reloads >= 8 && broken_sent, "only {reloads} reloads during the traffic");

    let text = std::fs::read_to_string(&events).unwrap();
    let handshakes: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|e| e["kind"] == "handshake" && e["server_port"] == PORT)
        .collect();
    let mut per_port: BTreeMap<u64, usize> = BTreeMap::new();
    let mut versions: BTreeMap<String, usize> = BTreeMap::new();
    for h in &handshakes {
        *per_port.entry(h["client_port"].as_u64().unwrap()).or_default() += 1;
        let tags = h.get("tags").and_then(Value::as_object);
        let version = match tags {
            None => "demo".to_string(),
            Some(t) => {
                assert_eq!(t.len(), 1, "one version handled it: {h}");
                t.keys().next().cloned().unwrap_or_default()
            }
        };
        *versions.entry(version).or_default() += 1;
    }
    eprintln!("{reloads} reloads; handshakes by version: {versions:?}");
    // Exactly once: one event per connection the client made (a port the
    // kernel reused shows as often as it was used), no attempt id twice.
    let mut reported: Vec<u64> = per_port.iter().flat_map(|(&p, &n)| std::iter::repeat_n(p, n)).collect();
    reported.sort_unstable();
    assert_eq!(
        reported, used,
        "events per client port differ from the connections made"
    );
    let mut ids: Vec<u64> = handshakes.iter().map(|h| h["id"].as_u64().unwrap()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), handshakes.len(), "an attempt reported twice");
    assert_eq!(
        handshakes.len(),
        CONNECTIONS,
        "every connection reported once; versions {versions:?}; log:\n{log}"
    );
    assert!(
        versions.keys().all(|k| ["one", "two", "demo"].contains(&k.as_str())),
        "{versions:?}"
    );
    assert!(versions.len() >= 3, "events handled by every version: {versions:?}");
    assert!(log.matches("reloaded plugin chain active").count() >= 4, "{log}");
    assert!(log.contains("keeping the previous version"), "{log}");
    let all: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .collect();
    let stats = all
        .iter()
        .rev()
        .find(|e| e["kind"] == "stats")
        .expect("a final stats event");
    assert_eq!(stats["queue_drops"], 0, "nothing dropped: {stats}");
    // The exporter, restarted at every reload, got every event that
    // reached the outputs once, or counted what it did not finish.
    let exported = all
        .iter()
        .filter(|e| e["kind"] == "handshake" || e["kind"] == "flow")
        .count() as u64;
    let last = log
        .lines()
        .rev()
        .find(|l| l.contains("plugin stats:") && l.trim_end().ends_with("plugin=exp"))
        .unwrap_or_else(|| panic!("no final plugin stats of exp: {log}"));
    let counter = |k: &str| -> u64 {
        last.split_whitespace()
            .find_map(|w| w.strip_prefix(&format!("{k}=")))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {k} in {last}"))
    };
    assert_eq!(
        counter("events") + counter("export_dropped"),
        exported,
        "the exporter's events and losses add up: {last}"
    );
    assert!(log.contains("role=exporter"), "{log}");
    if mode == "quality" {
        let mut flows: Vec<u64> = all
            .iter()
            .filter(|e| e["kind"] == "flow" && e["server_port"] == PORT)
            .map(|f| f["client_port"].as_u64().unwrap())
            .collect();
        flows.sort_unstable();
        assert_eq!(flows, used, "one flow event per connection");
    }
}
