//! Stopping the live sensor loses nothing, and a drop is never silent.
//!
//! Real packets into a real interface: a capture of many connections is
//! sent at a steady rate into one end of a veth pair in a network
//! namespace of the test's own, and `net-gazer run -m quality` captures on
//! the other end. Needs root (skipped with a message otherwise).
//!
//! - 100,000 connections left open, the sensor stopped as soon as it has
//!   read the last packet: it writes as many flow events (`end_reason`
//!   `shutdown`) as a replay of the same capture, and `queue_drops` is 0.
//! - An output slower than capture (a FIFO read slowly, a small queue):
//!   the drops are logged (a warning) and in the metrics, and the stop is
//!   bounded by `stop_timeout` with a warning naming what was not written.

mod common;

use std::io::{BufRead, BufReader};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use net_gazer::craft::{frame, PcapWriter, TcpSpec, TsResolution};
use net_gazer::decode::{LinkType, TcpFlags, VlanStack};
use net_gazer::time::Timestamp;
use serde_json::Value;

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// `flows` connections (SYN, SYN-ACK, ACK) from 10.x to 192.0.2.x:443,
/// none closed, 10 µs apart: the frames, and the same as a pcap file.
fn connections(flows: u32, pcap: &Path) -> Vec<Vec<u8>> {
    let mut w = PcapWriter::new(Vec::new(), 1, TsResolution::Micro, false, 65535).unwrap();
    let mut frames = Vec::with_capacity(flows as usize * 3);
    for i in 0..flows {
        let client = IpAddr::from([10, (i >> 16) as u8, (i >> 8) as u8, i as u8]);
        let server = IpAddr::from([192, 0, 2, (i % 200) as u8 + 1]);
        let port = 20_000 + (i % 40_000) as u16;
        let t = 1_700_000_000_000_000i64 + i64::from(i) * 10;
        for (dt, spec) in [
            (0, TcpSpec::new(client, port, server, 443, TcpFlags::SYN).seq(i)),
            (
                2,
                TcpSpec::new(server, 443, client, port, TcpFlags::SYN | TcpFlags::ACK)
                    .seq(7)
                    .ack(i.wrapping_add(1)),
            ),
            (
                4,
                TcpSpec::new(client, port, server, 443, TcpFlags::ACK)
                    .seq(i.wrapping_add(1))
                    .ack(8),
            ),
        ] {
            let f = frame(LinkType::Ethernet, VlanStack::NONE, &spec.ip_bytes());
            w.write(Timestamp::from_micros(t + dt), &f, f.len() as u32).unwrap();
            frames.push(f);
        }
    }
    std::fs::write(pcap, w.into_inner()).unwrap();
    frames
}

/// A network namespace with a veth pair `<name>a` (the test sends there)
/// and `<name>b` (the sensor captures there); removed on drop.
struct Lab {
    ns: String,
    dir: tempfile::TempDir,
    sensor: Option<Child>,
    log: Arc<Mutex<String>>,
}

impl Lab {
    fn new(tag: &str) -> Lab {
        let ns = format!("ngs{}{tag}", std::process::id());
        let _ = Command::new("ip").args(["netns", "del", &ns]).status();
        let ip = |args: &[&str]| {
            let o = Command::new("ip").args(args).output().unwrap();
            assert!(
                o.status.success(),
                "ip {args:?}: {}",
                String::from_utf8_lossy(&o.stderr)
            );
        };
        ip(&["netns", "add", &ns]);
        let lab = Lab {
            ns: ns.clone(),
            dir: tempfile::tempdir().unwrap(),
            sensor: None,
            log: Arc::default(),
        };
        let (a, b) = (format!("{ns}a"), format!("{ns}b"));
        ip(&["-n", &ns, "link", "add", &a, "type", "veth", "peer", "name", &b]);
        ip(&["-n", &ns, "link", "set", &a, "up"]);
        ip(&["-n", &ns, "link", "set", &b, "up"]);
        ip(&["-n", &ns, "link", "set", "lo", "up"]);
        lab
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn start_sensor(&mut self, config: &str, output: &Path) {
        let cfg = self.path("net-gazer.toml");
        std::fs::write(&cfg, config).unwrap();
        let mut child = Command::new("ip")
            .args(["netns", "exec", &self.ns])
            .arg(common::bin())
            .args(["run", "-v", "-m", "quality", "-i", &format!("{}b", self.ns), "-c"])
            .arg(&cfg)
            .arg("-o")
            .arg(output)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let err = child.stderr.take().unwrap();
        let log = Arc::clone(&self.log);
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                let mut l = log.lock().unwrap_or_else(|e| e.into_inner());
                l.push_str(&line);
                l.push('\n');
            }
        });
        self.sensor = Some(child);
        self.wait_log("capturing", Duration::from_secs(30));
    }

    fn log(&self) -> String {
        self.log.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn wait_log(&self, needle: &str, within: Duration) {
        let until = Instant::now() + within;
        while !self.log().contains(needle) {
            assert!(
                Instant::now() < until,
                "no `{needle}` within {within:?}:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends `frames` into `<name>a` at about `pps` packets per second,
    /// from a thread that joined the namespace.
    fn send(&self, frames: Vec<Vec<u8>>, pps: u64) {
        let ns_file = std::fs::File::open(format!("/var/run/netns/{}", self.ns)).unwrap();
        let iface = std::ffi::CString::new(format!("{}a", self.ns)).unwrap();
        std::thread::spawn(move || {
            use std::os::fd::AsRawFd;
            // SAFETY: setns on a namespace file we hold open; it changes
            // only this thread's network namespace.
            assert_eq!(unsafe { libc::setns(ns_file.as_raw_fd(), libc::CLONE_NEWNET) }, 0);
            // SAFETY: plain socket calls with valid arguments; the socket
            // is closed below.
            unsafe {
                let fd = libc::socket(libc::AF_PACKET, libc::SOCK_RAW, 0);
                assert!(fd >= 0, "AF_PACKET socket: {}", std::io::Error::last_os_error());
                let index = libc::if_nametoindex(iface.as_ptr());
                let mut addr: libc::sockaddr_ll = std::mem::zeroed();
                addr.sll_family = libc::AF_PACKET as u16;
                addr.sll_ifindex = index as i32;
                addr.sll_halen = 6;
                let started = Instant::now();
                for (n, f) in frames.iter().enumerate() {
                    loop {
                        let sent = libc::sendto(
                            fd,
                            f.as_ptr().cast(),
                            f.len(),
                            0,
                            (&addr as *const libc::sockaddr_ll).cast(),
                            std::mem::size_of::<libc::sockaddr_ll>() as u32,
                        );
                        if sent >= 0 {
                            break;
                        }
                        // The device queue is full: let it drain.
                        std::thread::sleep(Duration::from_micros(100));
                    }
                    let due = Duration::from_micros(n as u64 * 1_000_000 / pps);
                    if let Some(ahead) = due.checked_sub(started.elapsed()) {
                        std::thread::sleep(ahead);
                    }
                }
                libc::close(fd);
            }
        })
        .join()
        .expect("the sender");
    }

    /// SIGINT, and the exit status within `within`.
    fn stop(&mut self, within: Duration) -> std::process::ExitStatus {
        let child = self.sensor.as_mut().expect("started");
        // SAFETY: kill on our child's pid, not yet reaped.
        unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
        let until = Instant::now() + within;
        loop {
            if let Some(s) = child.try_wait().unwrap() {
                std::thread::sleep(Duration::from_millis(100));
                return s;
            }
            assert!(
                Instant::now() < until,
                "the sensor did not stop within {within:?}:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if let Some(c) = self.sensor.as_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
        if std::thread::panicking() {
            eprintln!("==== sensor log ====\n{}", self.log());
        }
        let _ = Command::new("ip").args(["netns", "del", &self.ns]).status();
    }
}

/// The metrics endpoint's value of `name` (inside the namespace).
fn metric(ns: &str, port: u16, name: &str) -> Option<f64> {
    let o = Command::new("ip")
        .args(["netns", "exec", ns, "python3", "-c"])
        .arg(format!(
            "import urllib.request; print(urllib.request.urlopen('http://127.0.0.1:{port}/metrics', timeout=5).read().decode())"
        ))
        .output()
        .ok()?;
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")).and_then(|v| v.trim().parse().ok()))
}

fn events(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

const FLOWS: u32 = 100_000;

#[test]
fn a_stop_with_100000_flows_open_writes_every_one() {
    if !is_root() {
        eprintln!("==================================================================");
        eprintln!("SKIPPED: the lossless-stop test needs root (a network namespace and capture)");
        eprintln!("==================================================================");
        return;
    }
    let mut lab = Lab::new("s");
    let pcap = lab.path("open.pcap");
    let frames = connections(FLOWS, &pcap);
    let config = "[capture]\nbuffer_mb = 256\n[track]\nlocal_networks = [\"10.0.0.0/8\"]\n\
                  [trace]\nenabled = false\n[metrics]\nlisten = \"127.0.0.1:19301\"\n";
    // What a replay of the same capture writes (it flushes what is open at
    // its end the same way).
    std::fs::write(lab.path("replay.toml"), config).unwrap();
    let replayed = lab.path("replayed.jsonl");
    let o = Command::new(common::bin())
        .args(["replay", "--no-progress", "-m", "quality", "-c"])
        .arg(lab.path("replay.toml"))
        .arg("-o")
        .arg(&replayed)
        .arg(&pcap)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let expected = events(&replayed).iter().filter(|e| e["kind"] == "flow").count();
    assert_eq!(expected, FLOWS as usize, "the replay reports every connection's flow");

    let live = lab.path("live.jsonl");
    lab.start_sensor(config, &live);
    lab.send(frames, 100_000);
    // Stop as soon as the sensor has read the last packet.
    let sent = f64::from(FLOWS * 3);
    let until = Instant::now() + Duration::from_secs(60);
    while metric(&lab.ns, 19301, "netgazer_packets_total").unwrap_or(0.0) < sent {
        assert!(
            Instant::now() < until,
            "the sensor did not read every packet:\n{}",
            lab.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let status = lab.stop(Duration::from_secs(60));
    assert!(status.success(), "{status}:\n{}", lab.log());
    let written = events(&live);
    let stats = written
        .iter()
        .rev()
        .find(|e| e["kind"] == "stats")
        .expect("the final stats event");
    assert_eq!(stats["kernel_drops"], 0, "the capture side lost nothing: {stats}");
    assert_eq!(stats["queue_drops"], 0, "the output queue lost nothing: {stats}");
    let flows: Vec<&Value> = written.iter().filter(|e| e["kind"] == "flow").collect();
    assert_eq!(flows.len(), expected, "flows written at the stop = the replay's");
    assert!(
        flows.iter().all(|f| f["end_reason"] == "shutdown"),
        "open flows end with end_reason shutdown"
    );
    let log = lab.log();
    assert!(!log.contains("WARN"), "a clean stop warns of nothing:\n{log}");
}

/// Reads a FIFO slowly, as an output that cannot keep up.
const SLOW_READER: &str = r#"
import sys, time
with open(sys.argv[1], "rb") as f:
    while f.read(4096):
        time.sleep(0.05)
"#;

#[test]
fn an_output_slower_than_capture_shows_its_drops_and_the_stop_stays_bounded() {
    if !is_root() {
        eprintln!("SKIPPED: the slow-output test needs root (a network namespace and capture)");
        return;
    }
    let mut lab = Lab::new("d");
    let frames = connections(20_000, &lab.path("some.pcap"));
    let fifo = lab.path("events.fifo");
    let c = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let mut reader = Command::new("python3")
        .arg("-c")
        .arg(SLOW_READER)
        .arg(&fifo)
        .spawn()
        .unwrap();
    let config = "[capture]\nbuffer_mb = 64\n[output]\nqueue_size = 256\ndrop_log_interval = \"1s\"\n\
                  stop_timeout = \"2s\"\n[trace]\nenabled = false\n[metrics]\nlisten = \"127.0.0.1:19302\"\n";
    lab.start_sensor(config, &fifo);
    lab.send(frames, 50_000);
    lab.wait_log("events dropped: the output queue was full", Duration::from_secs(30));
    let until = Instant::now() + Duration::from_secs(30);
    loop {
        let drops = metric(&lab.ns, 19302, "netgazer_queue_drops_total").unwrap_or(0.0);
        if drops > 0.0 {
            break;
        }
        assert!(Instant::now() < until, "the metric shows no drop:\n{}", lab.log());
        std::thread::sleep(Duration::from_millis(200));
    }
    let started = Instant::now();
    let status = lab.stop(Duration::from_secs(30));
    let log = lab.log();
    assert!(status.success(), "{status}:\n{log}");
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "bounded by stop_timeout: {:?}",
        started.elapsed()
    );
    assert!(log.contains("stop_timeout reached"), "{log}");
    let warnings = log
        .lines()
        .filter(|l| l.contains("events dropped: the output queue was full"))
        .count();
    assert!(warnings >= 1, "{log}");
    let _ = reader.kill();
    let _ = reader.wait();
}
