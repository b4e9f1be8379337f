//! End-to-end test of the live sensor (`net-gazer run`) in network
//! namespaces, with real kernels on both ends of every connection:
//!
//! ```text
//!   lan                     gw (sensor on gl)                    wan
//!   10.77.2.2  ── l ═══ gl ─ 10.77.2.1 | 10.77.1.1 ─ gw ═══ w ──  10.77.1.2
//!   fd77:2::2                fd77:2::1 | fd77:1::1                fd77:1::2
//! ```
//!
//! `lan` is the local host, `gw` forwards and runs the sensor on its
//! lan-side veth with the default local networks (the interface's, so lan
//! to wan is outbound), `wan` is the remote server and scanner. SYN-ACKs of
//! one server port are held 30 ms in gw by `netsim delay` (NFQUEUE: the
//! kernel may have no netem) to check the measured RTT against a known
//! delay (with nft's `queue`, or iptables' NFQUEUE where the kernel lacks
//! nft_queue). Needs root, `ip`, `nft` and python3 (the TCP peers); without
//! them it is skipped with a message. Needs `netsim` built beside the
//! sensor: `cargo build -p netsim` first (scripts/test.sh builds the
//! workspace). Everything it creates is named `ngt<pid>…` and removed at
//! the end, even on failure; a killed run's leftovers go at the next run.

use std::net::IpAddr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

const LAN_IP: &str = "10.77.2.2";
const WAN_IP: &str = "10.77.1.2";
const LAN_IP6: &str = "fd77:2::2";
const WAN_IP6: &str = "fd77:1::2";

/// The delay netsim adds to the SYN-ACKs of `DELAYED_PORT`, and how far the
/// measured RTT may be from it.
const DELAY_MS: u64 = 30;
const DELAY_TOLERANCE_US: f64 = 1_000.0;

const OPEN_PORT: u16 = 8080;
const DELAYED_PORT: u16 = 8081;
const CLOSED_PORT: u16 = 9;
/// The sensor's metrics endpoint, on gw's loopback.
const METRICS_PORT: u16 = 19100;
const DROPPED_PORT: u16 = 9999;
/// Closed ports of lan that wan scans.
const SCANNED_PORTS: std::ops::RangeInclusive<u16> = 20001..=20020;

/// Client ports chosen by the test, so each attempt's event can be found.
const PORT_ESTABLISHED: u16 = 41001;
/// Three connections see the delay: one descheduling hiccup of a shared
/// machine can stretch one of them (measured once: +1.1 ms after netsim's
/// hold, on the wire, which the sensor rightly reported).
const PORTS_DELAYED: [u16; 3] = [41002, 41007, 41008];
const PORT_CONTROL: u16 = 41003;
const PORT_REFUSED: u16 = 41004;
const PORT_UNANSWERED: u16 = 41005;
const PORT_V6: u16 = 41006;

/// `connect_ex` from a fixed source port; prints the errno (0: connected).
const PY_CONNECT: &str = r#"
import socket, sys
src_port, host, port, timeout = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
family = socket.AF_INET6 if ":" in host else socket.AF_INET
s = socket.socket(family, socket.SOCK_STREAM)
s.bind(("::" if family == socket.AF_INET6 else "0.0.0.0", src_port))
s.settimeout(timeout)
print(s.connect_ex((host, port)), flush=True)
s.close()
"#;

/// Listens on every `address:port` given, accepting and closing.
const PY_LISTEN: &str = r#"
import selectors, socket, sys
sel = selectors.DefaultSelector()
for spec in sys.argv[1:]:
    host, port = spec.rsplit(":", 1)
    s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((host, int(port)))
    s.listen(64)
    sel.register(s, selectors.EVENT_READ)
print("listening", flush=True)
while True:
    for key, _ in sel.select():
        conn, _ = key.fileobj.accept()
        conn.close()
"#;

/// Tries ports `first..=last` of `host` one after the other; prints the errnos.
const PY_SCAN: &str = r#"
import socket, sys
host, first, last = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
results = []
for port in range(first, last + 1):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(1.0)
    results.append(s.connect_ex((host, port)))
    s.close()
print(" ".join(map(str, results)), flush=True)
"#;

#[test]
fn live_sensor_in_network_namespaces() {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let tools = ["ip", "nft", "python3"].map(|t| (t, find_tool(t)));
    let missing: Vec<&str> = tools.iter().filter(|(_, p)| p.is_none()).map(|(t, _)| *t).collect();
    if !root || !missing.is_empty() {
        eprintln!("SKIPPED: live namespace test needs root, ip and nft");
        eprintln!("  (and python3) root: {root}, missing tools: {missing:?}");
        return;
    }
    let [ip, nft, python] = tools.map(|(_, p)| p.unwrap_or_default());
    let sensor_bin = PathBuf::from(env!("CARGO_BIN_EXE_net-gazer"));
    let netsim_bin = sensor_bin.with_file_name("netsim");
    assert!(
        netsim_bin.is_file(),
        "{} is missing: run `cargo build -p netsim` (same profile and target directory) before this test",
        netsim_bin.display()
    );
    let started = Instant::now();

    let mut lab = Lab::new(ip, nft, python);
    lab.build_topology();
    let (lan, gw, wan) = (lab.ns("lan"), lab.ns("gw"), lab.ns("wan"));

    // wan drops what comes to DROPPED_PORT (unanswered attempts); gw delays
    // the SYN-ACKs of DELAYED_PORT through NFQUEUE 0, where netsim waits.
    lab.nft(
        &wan,
        &format!(
            "add table inet ngt\n\
         add chain inet ngt input {{ type filter hook input priority 0; policy accept; }}\n\
         add rule inet ngt input tcp dport {DROPPED_PORT} drop\n"
        ),
    );
    lab.queue_synacks(&gw, DELAYED_PORT);
    let netsim = lab.spawn(
        &gw,
        "netsim",
        &netsim_bin,
        &["delay", "--queue", "0", "--ms", &DELAY_MS.to_string(), "--verbose"],
    );
    lab.wait_for_output(netsim, "delaying", Duration::from_secs(5));
    let listen_specs = [
        format!("{WAN_IP}:{OPEN_PORT}"),
        format!("{WAN_IP}:{DELAYED_PORT}"),
        format!("{WAN_IP6}:{OPEN_PORT}"),
    ];
    let mut listen_args = vec!["-c", PY_LISTEN];
    listen_args.extend(listen_specs.iter().map(String::as_str));
    let python = lab.python.clone();
    let listener = lab.spawn(&wan, "listener", &python, &listen_args);
    lab.wait_for_output(listener, "listening", Duration::from_secs(5));

    lab.start_sensor(&sensor_bin, &gw);
    eprintln!("live: sensor capturing after {:.1} s", started.elapsed().as_secs_f64());

    // The unanswered attempt takes 4 s: run it alongside the others.
    let unanswered = lab.spawn(
        &lan,
        "unanswered client",
        &python,
        &connect_args(PORT_UNANSWERED, WAN_IP, DROPPED_PORT, 4.0),
    );
    connect(
        &lab,
        &lan,
        "outbound established",
        PORT_ESTABLISHED,
        WAN_IP,
        OPEN_PORT,
        0,
    );
    for port in PORTS_DELAYED {
        connect(&lab, &lan, "delayed SYN-ACK", port, WAN_IP, DELAYED_PORT, 0);
    }
    connect(&lab, &lan, "control", PORT_CONTROL, WAN_IP, OPEN_PORT, 0);
    connect(
        &lab,
        &lan,
        "refused",
        PORT_REFUSED,
        WAN_IP,
        CLOSED_PORT,
        libc::ECONNREFUSED,
    );
    connect(&lab, &lan, "IPv6 established", PORT_V6, WAN_IP6, OPEN_PORT, 0);
    let scan = lab.run(
        &wan,
        &python,
        &[
            "-c",
            PY_SCAN,
            LAN_IP,
            &SCANNED_PORTS.start().to_string(),
            &SCANNED_PORTS.end().to_string(),
        ],
    );
    let refused = libc::ECONNREFUSED.to_string();
    assert!(
        scan.split_whitespace().all(|r| r == refused),
        "scan: every port should refuse, got errnos {scan}"
    );
    let status = lab.wait_exit(unanswered, Duration::from_secs(10));
    assert!(status.success(), "unanswered client failed: {status}");
    let got = lab.output_of(unanswered);
    assert_eq!(
        got.trim(),
        libc::EAGAIN.to_string(),
        "unanswered client: expected a connect timeout (EAGAIN)"
    );

    // The metrics endpoint, scraped once every attempt is decided (the
    // counters are refreshed every second).
    std::thread::sleep(Duration::from_millis(2500));
    let py = format!(
        "import urllib.request; print(urllib.request.urlopen('http://127.0.0.1:{METRICS_PORT}/metrics').read().decode())"
    );
    let scraped = parse_metrics(&lab.run(&gw, &python, &["-c", &py]));

    let status = lab.stop_sensor(Duration::from_secs(10));
    assert!(status.success(), "the sensor should exit 0 on SIGTERM, got {status}");
    let events = lab.events();
    for outcome in ["established", "refused", "unanswered"] {
        let n = events
            .iter()
            .filter(|e| e["kind"] == "handshake" && e["outcome"] == outcome)
            .count();
        let got = scraped.get(&format!("netgazer_attempts_total{{outcome=\"{outcome}\"}}"));
        assert_eq!(got, Some(&(n as f64)), "metrics vs events, {outcome}: {scraped:?}");
    }
    let last = events
        .iter()
        .rev()
        .find(|e| e["kind"] == "stats")
        .expect("a final stats event");
    let packets = scraped.get("netgazer_packets_total").copied().unwrap_or(0.0);
    assert!(
        packets > 0.0 && packets <= last["packets"].as_f64().unwrap_or(0.0),
        "packets: scraped {packets}, final {}",
        last["packets"]
    );
    assert!(scraped.contains_key("netgazer_kernel_drops_total"), "{scraped:?}");
    assert_eq!(
        scraped.get("netgazer_output_queue_events"),
        Some(&0.0),
        "nothing waits for the outputs once traffic stopped: {scraped:?}"
    );
    eprintln!(
        "live: {} events after {:.1} s",
        events.len(),
        started.elapsed().as_secs_f64()
    );
    // The delay each SYN-ACK really got: netsim's hold, which a busy
    // machine can stretch past DELAY_MS; the sensor must measure that to
    // ±1 ms (in order: the connections are made one after another).
    let held_us: Vec<f64> = lab
        .output_of(netsim)
        .lines()
        .filter_map(|l| l.split(" held ").nth(1)?.split(' ').next()?.parse::<f64>().ok())
        .collect();
    let failures = check_events(&events, &held_us);
    assert!(
        failures.is_empty(),
        "{} check(s) failed:\n  - {}",
        failures.len(),
        failures.join("\n  - ")
    );
    for line in lab.output_of(netsim).lines().filter(|l| l.contains("held")) {
        eprintln!("live: {line}");
    }
    eprintln!("live: all checks passed in {:.1} s", started.elapsed().as_secs_f64());
}

/// Prometheus text → sample (name with labels) → value; every sample line
/// must parse.
fn parse_metrics(text: &str) -> std::collections::BTreeMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let (name, value) = l.rsplit_once(' ').unwrap_or_else(|| panic!("not a sample: {l}"));
            let v: f64 = value.parse().unwrap_or_else(|e| panic!("{l}: {e}"));
            (name.to_string(), v)
        })
        .collect()
}

/// Everything expected of the events; returns what is wrong.
fn check_events(events: &[Value], held_us: &[f64]) -> Vec<String> {
    let mut c = Checks::default();
    let lan: IpAddr = LAN_IP.parse().unwrap();
    let wan: IpAddr = WAN_IP.parse().unwrap();
    let lan6: IpAddr = LAN_IP6.parse().unwrap();

    let handshakes: Vec<&Value> = events.iter().filter(|e| e["kind"] == "handshake").collect();
    let find = |client: IpAddr, port: u16| -> Vec<&Value> {
        handshakes
            .iter()
            .copied()
            .filter(|h| ip_of(&h["client_ip"]) == Some(client) && h["client_port"] == port)
            .collect()
    };
    let mut one = |what: &str, client: IpAddr, port: u16| -> Option<&Value> {
        let found = find(client, port);
        c.check(found.len() == 1, || {
            format!(
                "{what}: {} handshake events from {client}:{port}, expected 1",
                found.len()
            )
        });
        found.first().copied()
    };
    let established = one("outbound established", lan, PORT_ESTABLISHED);
    let delayed: Vec<Option<&Value>> = PORTS_DELAYED
        .iter()
        .map(|&port| one("delayed SYN-ACK", lan, port))
        .collect();
    let control = one("control", lan, PORT_CONTROL);
    let refused = one("refused", lan, PORT_REFUSED);
    let unanswered = one("unanswered", lan, PORT_UNANSWERED);
    let v6 = one("IPv6 established", lan6, PORT_V6);

    if let Some(h) = established {
        c.fields(
            "outbound established",
            h,
            &[
                ("outcome", "established".into()),
                ("completed", true.into()),
                ("direction", "outbound".into()),
                ("syn_count", 1.into()),
                ("server_port", OPEN_PORT.into()),
                ("ip_version", 4.into()),
            ],
        );
        c.check(ip_of(&h["server_ip"]) == Some(wan), || {
            format!("outbound established: server_ip {}", h["server_ip"])
        });
    }
    let nominal = (DELAY_MS * 1000) as f64;
    let mut accurate = 0;
    for (i, h) in delayed.iter().enumerate() {
        let Some(h) = h else { continue };
        c.fields(
            "delayed SYN-ACK",
            h,
            &[
                ("outcome", "established".into()),
                ("completed", true.into()),
                ("direction", "outbound".into()),
                ("syn_count", 1.into()),
                ("server_port", DELAYED_PORT.into()),
            ],
        );
        let held = held_us.get(i).copied().unwrap_or(nominal);
        let rtt = h["rtt_last_syn_us"].as_f64();
        eprintln!("live: delayed SYN-ACK rtt_last_syn_us = {rtt:?} (netsim held it {held} µs, nominal {nominal} µs)");
        c.check(held >= nominal, || format!("netsim held a SYN-ACK only {held} µs"));
        accurate += usize::from(rtt.is_some_and(|r| (r - held).abs() <= DELAY_TOLERANCE_US));
    }
    c.check(accurate >= 2, || {
        format!(
            "delayed SYN-ACKs: {accurate} of {} measured within ±{DELAY_TOLERANCE_US} µs of netsim's hold {held_us:?}",
            PORTS_DELAYED.len()
        )
    });
    if let Some(h) = control {
        c.fields(
            "control",
            h,
            &[("outcome", "established".into()), ("direction", "outbound".into())],
        );
        let rtt = h["rtt_last_syn_us"].as_f64();
        eprintln!("live: control rtt_last_syn_us = {rtt:?}");
        c.check(rtt.is_some_and(|r| (0.0..5_000.0).contains(&r)), || {
            format!("control: rtt_last_syn_us {rtt:?}, expected under 5000 µs")
        });
    }
    if let Some(h) = refused {
        c.fields(
            "refused",
            h,
            &[
                ("outcome", "refused".into()),
                ("rst_from", "server".into()),
                ("direction", "outbound".into()),
                ("completed", false.into()),
                ("server_port", CLOSED_PORT.into()),
            ],
        );
    }
    if let Some(h) = unanswered {
        c.fields(
            "unanswered",
            h,
            &[
                ("outcome", "unanswered".into()),
                ("direction", "outbound".into()),
                ("server_port", DROPPED_PORT.into()),
            ],
        );
        let syns = h["syn_count"].as_u64();
        c.check(syns.is_some_and(|n| n >= 2), || {
            format!("unanswered: syn_count {syns:?}, expected >= 2")
        });
    }
    if let Some(h) = v6 {
        c.fields(
            "IPv6 established",
            h,
            &[
                ("outcome", "established".into()),
                ("completed", true.into()),
                ("direction", "outbound".into()),
                ("syn_count", 1.into()),
                ("ip_version", 6.into()),
                ("server_ip", WAN_IP6.into()),
            ],
        );
    }

    // The scan: wan port-scans lan. `detected` when the threshold (15) is
    // crossed; `ended`, with the whole window's totals, at shutdown.
    let scans: Vec<&Value> = events.iter().filter(|e| e["kind"] == "scan").collect();
    let scan_event = |phase: &str| -> Vec<&Value> {
        scans
            .iter()
            .copied()
            .filter(|s| s["phase"] == phase && s["scan_type"] == "port_scan")
            .filter(|s| ip_of(&s["src_ip"]) == Some(wan) && ip_of(&s["target_ip"]) == Some(lan))
            .collect()
    };
    let (detected, ended) = (scan_event("detected"), scan_event("ended"));
    c.check(detected.len() == 1 && ended.len() == 1 && scans.len() == 2, || {
        format!(
            "scan events: {} `detected` and {} `ended` port scans of {LAN_IP} by {WAN_IP} ({} in all), expected 1, 1 (2)",
            detected.len(),
            ended.len(),
            scans.len()
        )
    });
    if let Some(s) = detected.first() {
        let distinct = s["distinct"].as_u64();
        eprintln!("live: scan detected with distinct {distinct:?}");
        c.check(distinct.is_some_and(|d| d >= 15), || {
            format!("scan detected: distinct {distinct:?}, expected >= 15")
        });
    }
    if let Some(s) = ended.first() {
        let all: Vec<u16> = SCANNED_PORTS.collect();
        let n = all.len();
        c.fields(
            "scan ended",
            s,
            &[("distinct", n.into()), ("attempts", n.into()), ("ports", all.into())],
        );
    }
    for port in SCANNED_PORTS {
        let found: Vec<&Value> = handshakes
            .iter()
            .copied()
            .filter(|h| ip_of(&h["client_ip"]) == Some(wan) && ip_of(&h["server_ip"]) == Some(lan))
            .filter(|h| h["server_port"] == port)
            .collect();
        match found.as_slice() {
            [h] => c.fields(
                &format!("scan probe to port {port}"),
                h,
                &[
                    ("direction", "inbound".into()),
                    ("outcome", "refused".into()),
                    ("rst_from", "server".into()),
                ],
            ),
            _ => c.fail(format!(
                "scan probe to port {port}: {} handshake events, expected 1",
                found.len()
            )),
        }
    }

    // Nothing else happened on the wire: no attempt is left incomplete.
    let incomplete = handshakes.iter().filter(|h| h["outcome"] == "incomplete").count();
    c.check(incomplete == 0, || {
        format!("{incomplete} handshake events are `incomplete`")
    });
    let last = events.last();
    c.check(last.is_some_and(|e| e["kind"] == "stats"), || {
        "the last event is not the final stats event".into()
    });
    if let Some(stats) = last.filter(|e| e["kind"] == "stats") {
        // 6 established (outbound, 3 delayed, control, IPv6), 1 + 20
        // refused (outbound and the scan's probes), 1 unanswered: nothing
        // else.
        let attempts = serde_json::json!({"established": 6, "refused": 21, "unanswered": 1, "incomplete": 0});
        c.fields(
            "final stats",
            stats,
            &[("attempts", attempts), ("scans", 1.into()), ("kernel_drops", 0.into())],
        );
    }
    c.failures
}

fn ip_of(v: &Value) -> Option<IpAddr> {
    v.as_str()?.parse().ok()
}

#[derive(Default)]
struct Checks {
    failures: Vec<String>,
}

impl Checks {
    fn check(&mut self, ok: bool, message: impl FnOnce() -> String) {
        if !ok {
            self.failures.push(message());
        }
    }

    fn fail(&mut self, message: String) {
        self.failures.push(message);
    }

    /// Each named field of `event` equals the value given.
    fn fields(&mut self, what: &str, event: &Value, expected: &[(&str, Value)]) {
        for (key, want) in expected {
            let got = &event[*key];
            self.check(got == want, || {
                format!("{what}: {key} is {got}, expected {want} (id {})", event["id"])
            });
        }
    }
}

fn connect_args(src_port: u16, host: &str, port: u16, timeout_s: f64) -> Vec<String> {
    ["-c", PY_CONNECT]
        .into_iter()
        .map(String::from)
        .chain([
            src_port.to_string(),
            host.to_string(),
            port.to_string(),
            timeout_s.to_string(),
        ])
        .collect()
}

/// Connects from `ns`, from `src_port`, and checks the errno (0: connected).
fn connect(lab: &Lab, ns: &str, what: &str, src_port: u16, host: &str, port: u16, want: i32) {
    let args = connect_args(src_port, host, port, 3.0);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = lab.run(ns, &lab.python, &args);
    let got: i32 = out
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("{what}: unexpected output {out:?}"));
    assert_eq!(
        got, want,
        "{what}: connect to {host} port {port} gave errno {got}, expected {want}"
    );
}

/// `name` in PATH or the usual system directories.
fn find_tool(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/local/sbin", "/usr/sbin", "/sbin", "/usr/bin", "/bin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// A background process and what it printed (stdout and stderr).
struct Proc {
    name: String,
    child: Child,
    output: Arc<Mutex<String>>,
    /// Held open: netsim exits when it closes.
    _stdin: Option<ChildStdin>,
}

fn collect(stream: impl std::io::Read + Send + 'static, into: Arc<Mutex<String>>) {
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stream).lines() {
            let Ok(line) = line else { break };
            let mut out = into.lock().unwrap_or_else(|e| e.into_inner());
            out.push_str(&line);
            out.push('\n');
        }
    });
}

/// The namespaces, the processes in them and the temporary files; all
/// removed on drop. On a panic, drop first prints the events and the
/// processes' output.
struct Lab {
    prefix: String,
    ip: PathBuf,
    nft: PathBuf,
    python: PathBuf,
    dir: tempfile::TempDir,
    namespaces: Vec<String>,
    procs: Vec<Proc>,
    /// Index of the sensor in `procs`.
    sensor: Option<usize>,
}

impl Lab {
    fn new(ip: PathBuf, nft: PathBuf, python: PathBuf) -> Lab {
        Lab {
            prefix: format!("ngt{}", std::process::id()),
            ip,
            nft,
            python,
            dir: tempfile::tempdir().expect("temporary directory"),
            namespaces: Vec::new(),
            procs: Vec::new(),
            sensor: None,
        }
    }

    fn ns(&self, role: &str) -> String {
        format!("{}-{role}", self.prefix)
    }

    /// Interface names: at most 15 bytes, so the prefix and two letters.
    fn link(&self, short: &str) -> String {
        format!("{}{short}", self.prefix)
    }

    fn build_topology(&mut self) {
        self.remove_stale_namespaces();
        for role in ["lan", "gw", "wan"] {
            let ns = self.ns(role);
            self.ip(&["netns", "add", &ns]);
            self.namespaces.push(ns.clone());
            // No duplicate address detection: IPv6 addresses usable at once.
            self.run(
                &ns,
                Path::new("sh"),
                &[
                    "-c",
                    "echo 0 > /proc/sys/net/ipv6/conf/default/accept_dad && \
                 echo 0 > /proc/sys/net/ipv6/conf/all/accept_dad",
                ],
            );
        }
        let (lan, gw, wan) = (self.ns("lan"), self.ns("gw"), self.ns("wan"));
        let (l, gl, gwl, w) = (self.link("l"), self.link("gl"), self.link("gw"), self.link("w"));
        self.ip(&[
            "-n", &gw, "link", "add", &gl, "type", "veth", "peer", "name", &l, "netns", &lan,
        ]);
        self.ip(&[
            "-n", &gw, "link", "add", &gwl, "type", "veth", "peer", "name", &w, "netns", &wan,
        ]);
        for (ns, dev, v4, v6) in [
            (&lan, &l, "10.77.2.2/24", "fd77:2::2/64"),
            (&gw, &gl, "10.77.2.1/24", "fd77:2::1/64"),
            (&gw, &gwl, "10.77.1.1/24", "fd77:1::1/64"),
            (&wan, &w, "10.77.1.2/24", "fd77:1::2/64"),
        ] {
            self.ip(&["-n", ns, "addr", "add", v4, "dev", dev]);
            self.ip(&["-n", ns, "addr", "add", v6, "dev", dev, "nodad"]);
            self.ip(&["-n", ns, "link", "set", dev, "up"]);
        }
        for ns in [&lan, &gw, &wan] {
            self.ip(&["-n", ns, "link", "set", "lo", "up"]);
        }
        self.ip(&["-n", &lan, "route", "add", "10.77.1.0/24", "via", "10.77.2.1"]);
        self.ip(&["-n", &lan, "-6", "route", "add", "fd77:1::/64", "via", "fd77:2::1"]);
        self.ip(&["-n", &wan, "route", "add", "10.77.2.0/24", "via", "10.77.1.1"]);
        self.ip(&["-n", &wan, "-6", "route", "add", "fd77:2::/64", "via", "fd77:1::1"]);
        self.run(
            &gw,
            Path::new("sh"),
            &[
                "-c",
                "echo 1 > /proc/sys/net/ipv4/ip_forward && echo 1 > /proc/sys/net/ipv6/conf/all/forwarding",
            ],
        );
    }

    /// Deletes the namespaces of runs that were killed before they could
    /// clean up (`ngt<pid>-…` whose process is gone, or has our pid).
    fn remove_stale_namespaces(&self) {
        let Ok(list) = Command::new(&self.ip).args(["netns", "list"]).output() else {
            return;
        };
        for name in String::from_utf8_lossy(&list.stdout)
            .lines()
            .filter_map(|l| l.split_whitespace().next())
        {
            let Some((pid, role)) = name.strip_prefix("ngt").and_then(|rest| rest.split_once('-')) else {
                continue;
            };
            let Ok(pid) = pid.parse::<u32>() else { continue };
            let gone = pid == std::process::id() || !Path::new(&format!("/proc/{pid}")).exists();
            if gone && ["lan", "gw", "wan"].contains(&role) {
                eprintln!("live: removing network namespace {name}, left over by a killed run");
                let _ = Command::new(&self.ip).args(["netns", "del", name]).status();
            }
        }
    }

    fn ip(&self, args: &[&str]) {
        let out = Command::new(&self.ip).args(args).output().expect("running ip");
        assert!(
            out.status.success(),
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Loads an nft script in `ns`.
    fn nft(&self, ns: &str, script: &str) {
        let file = self.dir.path().join(format!("{ns}.nft"));
        std::fs::write(&file, script).expect("writing the nft script");
        let nft = self.nft.clone();
        let file = file.to_string_lossy().into_owned();
        self.run(ns, &nft, &["-f", &file]);
    }

    /// Sends the SYN-ACKs from wan's `port` that `ns` forwards to NFQUEUE 0:
    /// with nft's `queue` when the kernel has it, else with iptables'
    /// NFQUEUE target (through nft_compat or legacy xtables).
    fn queue_synacks(&self, ns: &str, port: u16) {
        let script = format!(
            "add table inet ngt\n\
             add chain inet ngt forward {{ type filter hook forward priority 0; policy accept; }}\n\
             add rule inet ngt forward ip saddr {WAN_IP} tcp sport {port} tcp flags & (syn | ack) == syn | ack queue num 0\n"
        );
        let file = self.dir.path().join("queue.nft");
        std::fs::write(&file, script).expect("writing the nft script");
        let nft = self
            .command(ns, &self.nft, &["-f", &file.to_string_lossy()])
            .output()
            .expect("running nft");
        if nft.status.success() {
            return;
        }
        let nft_error = String::from_utf8_lossy(&nft.stderr).into_owned();
        let port = port.to_string();
        let rule = [
            "-A",
            "FORWARD",
            "-p",
            "tcp",
            "-s",
            WAN_IP,
            "--sport",
            &port,
            "--tcp-flags",
            "SYN,ACK",
            "SYN,ACK",
            "-j",
            "NFQUEUE",
            "--queue-num",
            "0",
        ];
        let ipt = find_tool("iptables").map(|ipt| self.command(ns, &ipt, &rule).output());
        match ipt {
            Some(Ok(out)) if out.status.success() => {
                eprintln!("live: nft `queue` unsupported here; SYN-ACKs queued with iptables NFQUEUE");
            }
            Some(Ok(out)) => panic!(
                "cannot queue packets to netsim: nft: {nft_error}; iptables: {}",
                String::from_utf8_lossy(&out.stderr)
            ),
            Some(Err(e)) => panic!("cannot queue packets to netsim: nft: {nft_error}; iptables: {e}"),
            None => panic!("cannot queue packets to netsim: nft: {nft_error}; no iptables to fall back on"),
        }
    }

    fn command(&self, ns: &str, program: &Path, args: &[&str]) -> Command {
        let mut cmd = Command::new(&self.ip);
        cmd.args(["netns", "exec", ns]).arg(program).args(args);
        cmd
    }

    /// Runs `program` in `ns` to completion; returns its standard output.
    fn run(&self, ns: &str, program: &Path, args: &[&str]) -> String {
        let out: Output = self
            .command(ns, program, args)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("running {} in {ns}: {e}", program.display()));
        assert!(
            out.status.success(),
            "{} {} in {ns}: {}\n{}",
            program.display(),
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Starts `program` in `ns` in the background (`ip netns exec` execs
    /// it: the child is the program itself); returns its index.
    fn spawn<S: AsRef<str>>(&mut self, ns: &str, name: &str, program: &Path, args: &[S]) -> usize {
        let args: Vec<&str> = args.iter().map(AsRef::as_ref).collect();
        let mut cmd = self.command(ns, program, &args);
        cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("NG_") {
                cmd.env_remove(key);
            }
        }
        cmd.env_remove("RUST_LOG").env("NO_COLOR", "1");
        // If the test process is killed (no unwinding, no Drop), its
        // children die with it instead of running on in the namespaces.
        // SAFETY: prctl is async-signal-safe and touches no memory of ours.
        unsafe {
            cmd.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("starting {name}: {e}"));
        let output = Arc::new(Mutex::new(String::new()));
        if let Some(out) = child.stdout.take() {
            collect(out, Arc::clone(&output));
        }
        if let Some(err) = child.stderr.take() {
            collect(err, Arc::clone(&output));
        }
        let stdin = child.stdin.take();
        self.procs.push(Proc {
            name: name.into(),
            child,
            output,
            _stdin: stdin,
        });
        self.procs.len() - 1
    }

    fn output_of(&self, proc: usize) -> String {
        self.procs[proc]
            .output
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Waits until the process printed `needle`; panics if it exits first
    /// or `timeout` passes.
    fn wait_for_output(&mut self, proc: usize, needle: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            if self.output_of(proc).contains(needle) {
                return;
            }
            let p = &mut self.procs[proc];
            if let Ok(Some(status)) = p.child.try_wait() {
                std::thread::sleep(Duration::from_millis(50)); // let the readers finish
                let output = p.output.lock().unwrap_or_else(|e| e.into_inner());
                panic!("{} exited ({status}) before printing {needle:?}:\n{output}", p.name);
            }
            assert!(
                Instant::now() < deadline,
                "{} did not print {needle:?} within {timeout:?}",
                p.name
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn wait_exit(&mut self, proc: usize, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        let p = &mut self.procs[proc];
        loop {
            if let Some(status) = p.child.try_wait().expect("waiting for a child") {
                // Let the output readers catch up with the last lines.
                std::thread::sleep(Duration::from_millis(50));
                return status;
            }
            assert!(Instant::now() < deadline, "{} did not exit within {timeout:?}", p.name);
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn events_path(&self) -> PathBuf {
        self.dir.path().join("events.jsonl")
    }

    /// Starts `net-gazer run` on gw's lan-side veth and waits until it captures.
    fn start_sensor(&mut self, bin: &Path, ns: &str) {
        let config = self.dir.path().join("net-gazer.toml");
        std::fs::write(
            &config,
            format!("[track]\nunanswered_timeout = \"2500ms\"\n[metrics]\nlisten = \"127.0.0.1:{METRICS_PORT}\"\n"),
        )
        .expect("writing the config");
        let (iface, config, events) = (
            self.link("gl"),
            config.to_string_lossy().into_owned(),
            self.events_path().to_string_lossy().into_owned(),
        );
        let sensor = self.spawn(
            ns,
            "net-gazer",
            bin,
            &["run", "-i", &iface, "-c", &config, "-o", &events, "-v"],
        );
        self.sensor = Some(sensor);
        self.wait_for_output(sensor, "capturing", Duration::from_secs(10));
        let pid = self.procs[sensor].child.id();
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        assert_eq!(
            comm.trim(),
            "net-gazer",
            "the sensor child should be net-gazer itself (ip netns exec execs it)"
        );
    }

    /// SIGTERM, then waits for the sensor to exit.
    fn stop_sensor(&mut self, timeout: Duration) -> ExitStatus {
        let sensor = self.sensor.expect("the sensor was started");
        let pid = self.procs[sensor].child.id() as libc::pid_t;
        // SAFETY: kill has no memory-safety preconditions; `pid` is our
        // child, not yet reaped, so it cannot name another process.
        let rc = unsafe { libc::kill(pid, libc::SIGTERM) };
        assert_eq!(rc, 0, "kill -TERM {pid}: {}", std::io::Error::last_os_error());
        self.wait_exit(sensor, timeout)
    }

    fn events(&self) -> Vec<Value> {
        let text = std::fs::read_to_string(self.events_path()).expect("reading the events file");
        text.lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("event line is not JSON ({e}): {l}")))
            .collect()
    }

    fn dump(&self) {
        eprintln!("==== live test failed: events ({}) ====", self.events_path().display());
        match std::fs::read_to_string(self.events_path()) {
            Ok(text) => eprintln!("{text}"),
            Err(e) => eprintln!("(cannot read: {e})"),
        }
        for p in &self.procs {
            eprintln!("==== output of {} ====", p.name);
            eprintln!("{}", p.output.lock().unwrap_or_else(|e| e.into_inner()));
        }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.dump();
        }
        for p in &mut self.procs {
            if let Ok(None) = p.child.try_wait() {
                let _ = p.child.kill();
                let _ = p.child.wait();
            }
        }
        for ns in self.namespaces.iter().rev() {
            let status = Command::new(&self.ip).args(["netns", "del", ns]).status();
            if !status.is_ok_and(|s| s.success()) {
                eprintln!("live: could not delete network namespace {ns}");
            }
        }
    }
}
