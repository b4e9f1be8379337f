//! The web UI in headless Chromium, against a real collector filled by the
//! real sensor replaying a capture through the GeoIP plugin: every view
//! shows the nodes, points and rows the capture implies (derived from what
//! the capture holds and the GeoIP test databases' source data), a click
//! on a node opens its panel, filters change the result, no JavaScript
//! error reaches the console, and the page fits a phone's width.
//! Screenshots go to `$CARGO_TARGET_DIR/ui-artifacts/` (and to `docs/ui/`
//! with `NG_UPDATE_SCREENSHOTS=1`).

#[path = "../../host/tests/common/mod.rs"]
mod common;

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use common::browser::Browser;
use common::collector::{self, Collector};
use common::geo::records;
use common::{built_file, built_plugins, testdata};
use ipnet::IpNet;
use net_gazer_core::craft::{frame, PcapWriter, TcpSpec, TsResolution};
use net_gazer_core::decode::{LinkType, TcpFlags, VlanStack};
use net_gazer_core::time::Timestamp;
use serde_json::Value;

const CITY: &str = "GeoIP2-City-Test";
const ASN: &str = "GeoLite2-ASN-Test";
/// µs; 2026-11-23, a fixed time (the UI is asked for `window=all`).
const BASE_US: i64 = 1_795_900_000_000_000;
const MINUTE_US: i64 = 60_000_000;

/// Packets of the capture, written in time order at the end.
#[derive(Default)]
struct Capture {
    packets: Vec<(i64, TcpSpec)>,
}

impl Capture {
    fn established(&mut self, client: IpAddr, cport: u16, server: IpAddr, sport: u16, t: i64, rtt_us: i64) {
        let (syn, ack) = (TcpFlags::SYN, TcpFlags::ACK);
        self.packets.push((
            t,
            TcpSpec::new(client, cport, server, sport, syn).seq(1000).syn_options(1),
        ));
        self.packets.push((
            t + rtt_us,
            TcpSpec::new(server, sport, client, cport, syn | ack)
                .seq(9000)
                .ack(1001)
                .syn_options(2),
        ));
        self.packets.push((
            t + rtt_us + 100,
            TcpSpec::new(client, cport, server, sport, ack).seq(1001).ack(9001),
        ));
    }

    fn refused(&mut self, client: IpAddr, cport: u16, server: IpAddr, sport: u16, t: i64) {
        self.packets.push((
            t,
            TcpSpec::new(client, cport, server, sport, TcpFlags::SYN)
                .seq(5000)
                .syn_options(1),
        ));
        self.packets.push((
            t + 300,
            TcpSpec::new(server, sport, client, cport, TcpFlags::RST | TcpFlags::ACK).ack(5001),
        ));
    }

    fn unanswered(&mut self, client: IpAddr, cport: u16, server: IpAddr, sport: u16, t: i64) {
        for retry in [0, 1_000_000, 3_000_000] {
            self.packets.push((
                t + retry,
                TcpSpec::new(client, cport, server, sport, TcpFlags::SYN)
                    .seq(7000)
                    .syn_options(1),
            ));
        }
    }

    fn write(mut self, path: &Path) {
        self.packets.sort_by_key(|(t, _)| *t);
        let mut w = PcapWriter::new(Vec::new(), 1, TsResolution::Micro, false, 65535).unwrap();
        for (t, spec) in &self.packets {
            let f = frame(LinkType::Ethernet, VlanStack::NONE, &spec.ip_bytes());
            w.write(Timestamp::from_nanos(*t * 1_000), &f, f.len() as u32).unwrap();
        }
        std::fs::write(path, w.into_inner()).unwrap();
    }
}

/// What the capture holds, for the assertions.
struct Scene {
    /// Outbound servers (with a location in the City database).
    servers: Vec<IpAddr>,
    /// An inbound source refused and unanswered (with a location).
    knocker: IpAddr,
    /// A port scanner (documentation address: no location).
    scanner: IpAddr,
    /// Internal (client, server) pairs on port 445.
    internal: BTreeSet<(IpAddr, IpAddr)>,
}

/// Global IPv4 addresses of City records that have a location.
fn located(city: &[(IpNet, Value)]) -> Vec<(IpAddr, Value)> {
    let mut v: Vec<(IpAddr, Value)> = city
        .iter()
        .filter(|(n, r)| n.addr().is_ipv4() && r["location"]["latitude"].is_number())
        .map(|(n, r)| (n.network(), r.clone()))
        .filter(|(a, _)| match a {
            IpAddr::V4(v4) => !v4.is_private() && !v4.is_loopback() && v4.octets()[0] != 0,
            IpAddr::V6(_) => false,
        })
        .collect();
    v.sort_by_key(|(a, _)| *a);
    v.dedup_by_key(|(a, _)| *a);
    v
}

fn scene(city: &[(IpNet, Value)], pcap: &Path) -> (Scene, Vec<(IpAddr, Value)>) {
    let places = located(city);
    assert!(places.len() >= 7, "the City test database has located networks");
    let servers: Vec<IpAddr> = places.iter().take(6).map(|(a, _)| *a).collect();
    let knocker = places[6].0;
    let scanner: IpAddr = "198.51.100.9".parse().unwrap();
    let local = |n: u8| -> IpAddr { IpAddr::from([10, 0, 0, n]) };
    let mut c = Capture::default();
    let mut port = 40_000u16;
    let mut next_port = || {
        port += 1;
        port
    };
    for (i, &server) in servers.iter().enumerate() {
        for k in 0..10i64 {
            let rtt = (i as i64 + 1) * 8_000 + k * 500;
            c.established(
                local(1),
                next_port(),
                server,
                443,
                BASE_US + k * MINUTE_US + i as i64 * 1000,
                rtt,
            );
        }
    }
    // Failures to the first server, on the same time axis.
    c.refused(
        local(1),
        next_port(),
        servers[0],
        443,
        BASE_US + 3 * MINUTE_US + 500_000,
    );
    c.refused(
        local(1),
        next_port(),
        servers[0],
        443,
        BASE_US + 5 * MINUTE_US + 500_000,
    );
    c.unanswered(
        local(1),
        next_port(),
        servers[0],
        443,
        BASE_US + 7 * MINUTE_US + 500_000,
    );
    // Inbound: a knocker refused on ssh, unanswered on rdp; a port scan.
    for k in 0..3 {
        c.refused(knocker, next_port(), local(1), 22, BASE_US + k * MINUTE_US + 20_000_000);
    }
    for k in 0..2 {
        c.unanswered(
            knocker,
            next_port(),
            local(1),
            3389,
            BASE_US + k * MINUTE_US + 30_000_000,
        );
    }
    for p in 1..=20u16 {
        c.refused(
            scanner,
            50_000,
            local(5),
            p,
            BASE_US + 8 * MINUTE_US + i64::from(p) * 10_000,
        );
    }
    // Internal: two clients of one file server.
    let mut internal = BTreeSet::new();
    for (client, n) in [(local(1), 3), (local(3), 2)] {
        for k in 0..n {
            c.established(
                client,
                next_port(),
                local(2),
                445,
                BASE_US + k * MINUTE_US + 40_000_000,
                300,
            );
        }
        internal.insert((client, local(2)));
    }
    // Time passes, so every attempt is decided before the end.
    c.established(local(1), next_port(), servers[1], 443, BASE_US + 20 * MINUTE_US, 9_000);
    c.write(pcap);
    (
        Scene {
            servers,
            knocker,
            scanner,
            internal,
        },
        places,
    )
}

fn artifacts() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"));
    target.join("ui-artifacts")
}

/// Saves a screenshot as a test artifact (and in docs/ui/ when asked).
fn shoot(b: &Browser, name: &str) {
    b.screenshot(&artifacts().join(format!("{name}.png")));
    if std::env::var_os("NG_UPDATE_SCREENSHOTS").is_some() {
        b.screenshot(&PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("../docs/ui/{name}.png")));
    }
}

/// No error in the browser's console or caught by the page.
fn assert_no_errors(b: &Browser, view: &str) {
    let severe: Vec<_> = b.console().into_iter().filter(|(level, _)| level == "SEVERE").collect();
    assert!(severe.is_empty(), "{view}: console errors: {severe:?}");
    let caught = b.eval("return window.netGazer.errors;");
    assert_eq!(caught, serde_json::json!([]), "{view}: errors in the page");
}

/// Loads `hash` and waits until the view has rendered.
fn open(b: &Browser, base: &str, hash: &str) {
    b.goto(&format!("{base}/#{hash}"));
    let view = hash.split('?').next().unwrap_or(hash);
    b.wait_for(
        &format!("window.netGazer && window.netGazer.view === '{view}'"),
        30,
        view,
    );
}

fn ips(v: &Value) -> BTreeSet<String> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s.as_str().map(String::from))
        .collect()
}

fn texts(set: &BTreeSet<IpAddr>) -> BTreeSet<String> {
    set.iter().map(IpAddr::to_string).collect()
}

#[test]
fn every_view_shows_what_the_capture_holds() {
    let (Some(built), data) = (built_plugins(&["geoip"]), testdata()) else {
        return;
    };
    let Some(mut b) = Browser::start(1280, 800) else {
        return;
    };
    let mmdb = data.join("mmdb");
    let city = records(&mmdb, CITY);
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("ui.pcap");
    let (s, places) = scene(&city, &pcap);

    // Sensor (replay + GeoIP plugin) → collector over HTTP.
    let c = Collector::start(dir.path(), "127.0.0.1:0", "location = [51.5, -0.12]");
    let plugins = dir.path().join("plugins");
    std::fs::create_dir(&plugins).unwrap();
    std::fs::copy(built_file(&built, "geoip"), plugins.join("geoip.wasm")).unwrap();
    // timeout_ms: a debug build on a loaded machine; no call may time out
    // here (the GeoIP tags are what the views show).
    // Capture mode `quality`: flow events too, for the panel's flow table.
    let extra = format!(
        "local_networks = [\"10.0.0.0/8\"]\n[plugins]\ndir = \"{}\"\n\
         timeout_ms = 2000\n[plugins.geoip]\ndirs = [\"{}\"]\n\
         city_db = \"{CITY}.mmdb\"\nasn_db = \"{ASN}.mmdb\"\n[capture]\nmode = \"quality\"\n",
        plugins.display(),
        mmdb.display()
    );
    // `local_networks` belongs to [track], which the sensor config opened.
    let config = collector::sensor_config(dir.path(), &c.base, &dir.path().join("events.jsonl"), &extra);
    let log = collector::replay(&config, std::slice::from_ref(&pcap));
    // Every handshake to a server was tagged (else the UI cannot show it).
    let jsonl = std::fs::read_to_string(dir.path().join("events.jsonl")).unwrap();
    let untagged: Vec<&str> = jsonl
        .lines()
        .filter(|l| l.contains("\"kind\":\"handshake\"") && l.contains("\"server_port\":443"))
        .filter(|l| !l.contains("geo.country"))
        .collect();
    assert!(untagged.is_empty(), "untagged handshakes: {untagged:?}\n{log}");
    let graph = c.get("graph");
    let remotes: BTreeSet<String> = graph["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["kind"] == "remote")
        .map(|n| n["id"].as_str().unwrap().to_string())
        .collect();
    for server in &s.servers {
        assert!(remotes.contains(&server.to_string()), "{server} in {remotes:?}\n{log}");
    }

    // Paths graph: every node of the API is in the page's graph.
    open(&b, &c.base, "graph?window=all");
    b.wait_for("window.netGazer.rendered", 30, "the first frame of the graph");
    let shown = b.eval("return window.netGazer.graph.data.nodes.map(n => n.id);");
    let api_nodes: BTreeSet<String> = graph["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ips(&shown), api_nodes);
    assert_eq!(
        b.eval("return document.querySelector('[data-nodes]').dataset.nodes;"),
        Value::String(api_nodes.len().to_string())
    );
    // The colour key counts every remote host and hop (fewer than ten
    // ASNs here, so all are listed).
    let keyed = b.eval(
        "return [...document.querySelectorAll('[data-legend=asn] > span')]
            .map(e => Number(/\\((\\d+)\\)$/.exec(e.textContent)[1])).reduce((a, n) => a + n, 0);",
    );
    let remote_and_hops = graph["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["kind"] == "remote" || n["kind"] == "hop")
        .count();
    assert_eq!(keyed, remote_and_hops, "the ASN key");
    assert_no_errors(&b, "graph");

    // A click on a server's node opens its panel with its GeoIP data.
    let server = s.servers[2];
    let want_country = places.iter().find(|(a, _)| *a == server).unwrap().1["country"]["iso_code"]
        .as_str()
        .unwrap()
        .to_string();
    std::thread::sleep(std::time::Duration::from_secs(3));
    b.eval("window.netGazer.graph.freeze(); return null;");
    std::thread::sleep(std::time::Duration::from_millis(500));
    let at = b.eval(&format!("return window.netGazer.graph.screenPosition('{server}');"));
    b.click_at(at["x"].as_f64().unwrap(), at["y"].as_f64().unwrap());
    b.wait_for(
        &format!("document.querySelector('#panel:not([hidden])[data-ip=\"{server}\"] [data-field=ports]')"),
        15,
        "the clicked node's panel",
    );
    b.wait_for(
        "document.querySelector('#panel svg.chart circle')",
        15,
        "the RTT chart in the panel",
    );
    let country = b.eval("return document.querySelector('#panel [data-field=country]').textContent;");
    assert_eq!(country, Value::String(want_country));
    let ports = b.eval("return document.querySelector('#panel [data-field=ports]').textContent;");
    assert_eq!(ports, "443");
    let points = b.eval("return document.querySelectorAll('#panel svg.chart circle').length;");
    assert_eq!(points, 10, "ten handshakes to {server}");
    // Its flows, as many as the sensor wrote, with their packets each way.
    let flows: Vec<Value> = jsonl
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|e| e["kind"] == "flow" && e["server_ip"] == server.to_string())
        .collect();
    assert!(!flows.is_empty(), "quality mode wrote no flow to {server}");
    let table = b.eval("return document.querySelector('#panel [data-field=flows]').textContent;");
    let table = table.as_str().unwrap();
    assert!(table.contains(&format!("({} flows)", flows.len())), "{table}");
    let packets_c2s: u64 = flows.iter().map(|f| f["packets_c2s"].as_u64().unwrap()).sum();
    let shown = b.eval("return document.querySelector('#panel [data-field=flows] tbody td').textContent;");
    assert_eq!(
        shown,
        Value::String(packets_c2s.to_string()),
        "packets client → server: {table}"
    );
    assert!(
        b.eval("return location.hash;")
            .as_str()
            .unwrap()
            .contains(&format!("node={server}")),
        "the URL names the selected node"
    );
    shoot(&b, "graph");
    assert_no_errors(&b, "graph panel");

    // A filter changes the result: inbound only.
    b.eval(
        "const s = document.querySelector('#filters select[name=direction]'); s.value = 'inbound';
         s.dispatchEvent(new Event('change', {bubbles: true})); return null;",
    );
    let inbound_graph = c.get("graph?direction=inbound");
    let want = inbound_graph["nodes"].as_array().unwrap().len();
    b.wait_for(
        &format!("window.netGazer.view === 'graph' && document.querySelector('[data-nodes]') && document.querySelector('[data-nodes]').dataset.nodes === '{want}'"),
        30,
        "the graph of inbound handshakes",
    );
    assert!(b
        .eval("return location.hash;")
        .as_str()
        .unwrap()
        .contains("direction=inbound"));
    assert_ne!(want, api_nodes.len(), "the filter changes the graph");

    // Map: every located remote host is a point, with an arc from the sensor.
    open(&b, &c.base, "map?window=all");
    let mut placed: BTreeSet<IpAddr> = s.servers.iter().copied().collect();
    placed.insert(s.knocker);
    let points =
        b.eval("return [...document.querySelectorAll('svg.map circle[data-kind=remote]')].map(e => e.dataset.ip);");
    assert_eq!(ips(&points), texts(&placed));
    let arcs = b.eval("return [...document.querySelectorAll('svg.map path.arc')].map(e => e.dataset.ip);");
    assert_eq!(ips(&arcs), texts(&placed));
    assert_eq!(
        b.eval("return document.querySelectorAll('svg.map [data-kind=sensor]').length;"),
        1
    );
    shoot(&b, "map");
    assert_no_errors(&b, "map");

    // Inbound attempts: the knocker and the scanner, with the scan.
    open(&b, &c.base, "inbound?window=all");
    let rows = b.eval("return [...document.querySelectorAll('#inbound-table tbody tr')].map(e => e.dataset.ip);");
    assert_eq!(ips(&rows), texts(&[s.knocker, s.scanner].into()));
    let scanner_row = b.eval(&format!(
        "return document.querySelector('#inbound-table tr[data-ip=\"{}\"]').textContent;",
        s.scanner
    ));
    assert!(scanner_row.as_str().unwrap().contains("port scan"), "{scanner_row}");
    let knocker_row = b.eval(&format!(
        "return [...document.querySelectorAll('#inbound-table tr[data-ip=\"{}\"] td')].map(td => td.textContent);",
        s.knocker
    ));
    assert_eq!(knocker_row[2], "5", "attempts: {knocker_row}");
    assert_eq!(knocker_row[3], "3", "refused: {knocker_row}");
    assert_eq!(knocker_row[4], "2", "unanswered: {knocker_row}");
    shoot(&b, "inbound");
    assert_no_errors(&b, "inbound");

    // Internal communication.
    open(&b, &c.base, "internal?window=all");
    let pairs = b.eval(
        "return [...document.querySelectorAll('#internal-table tbody tr')].map(e => e.dataset.client + '>' + e.dataset.server);",
    );
    let want: BTreeSet<String> = s.internal.iter().map(|(a, b)| format!("{a}>{b}")).collect();
    assert_eq!(ips(&pairs), want);
    shoot(&b, "internal");
    assert_no_errors(&b, "internal");

    // RTT over time for the first server: the API's buckets, as points,
    // with the failures on the same axis.
    let first = s.servers[0];
    open(&b, &c.base, &format!("rtt?window=all&by=host&key={first}"));
    let series = c.get(&format!("rtt?host={first}&buckets=60"));
    let want_p50 = series["points"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["rtt_p50_us"].is_number())
        .count();
    assert!(want_p50 >= 10, "a point per minute with handshakes: {series}");
    let p50 = b.eval("return document.querySelectorAll('svg.chart circle[data-series=p50]').length;");
    assert_eq!(p50, want_p50);
    let failures = b.eval("return [...document.querySelectorAll('svg.chart rect[data-failures]')].reduce((a, e) => a + Number(e.dataset.failures), 0);");
    assert_eq!(failures, 3, "two refused and one unanswered attempt to {first}");
    shoot(&b, "rtt");
    assert_no_errors(&b, "rtt");

    // A live window refreshes every 15 s and keeps the graph on screen
    // (its layout, zoom and panel) while the data is the same.
    open(&b, &c.base, "graph?window=30d");
    b.wait_for("window.netGazer.rendered", 30, "the live graph");
    b.eval("window.netGazer.graph.kept = true; return null;");
    let before = b.eval("return document.querySelector('#live').textContent;");
    assert!(before.as_str().unwrap().starts_with("live"), "{before}");
    b.wait_for(
        &format!("document.querySelector('#live').textContent !== {before}"),
        40,
        "a live refresh",
    );
    assert_eq!(
        b.eval("return window.netGazer.graph.kept === true;"),
        true,
        "the refresh kept the graph"
    );
    assert_no_errors(&b, "live refresh");

    // A phone's width: nothing wider than the screen.
    b.resize(390, 844);
    open(&b, &c.base, "graph?window=all");
    let overflow = b.eval("return document.documentElement.scrollWidth - window.innerWidth;");
    assert!(overflow.as_i64().unwrap() <= 0, "wider than the phone by {overflow} px");
    shoot(&b, "graph-phone");
    assert_no_errors(&b, "phone");
}

/// Benchmark (scripts/bench-ui.sh, docs/benchmarks.md), not a test: time
/// from opening the paths graph to its first drawn frame, for each
/// database in `NG_BENCH_UI` (comma-separated; made by the collector's
/// graph_bench example), median of 5 loads.
/// A graph above the big-graph threshold (1,500 nodes) goes its own way
/// in the page: nodes painted by colour, the pointer picks the nearest
/// node, zooming shows the still frame's bitmap and then draws again.
#[test]
fn a_big_graph_draws_zooms_and_opens_a_panel() {
    let Some(b) = Browser::start(1280, 800) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let c = Collector::start(dir.path(), "127.0.0.1:0", "");
    // 600 remote hosts, 3 handshakes each from 50 local hosts, and a
    // ten-hop route each whose hops are shared by every 200th host:
    // 600 + 1,800 + 50 + the sensor = 2,451 nodes.
    let http = reqwest::blocking::Client::new();
    let mut seq = 0u64;
    for chunk in (0..600u64).collect::<Vec<_>>().chunks(100) {
        let mut events = Vec::new();
        for &h in chunk {
            let remote = format!("198.18.{}.{}", h >> 8, h & 255);
            for k in 0..3u64 {
                seq += 1;
                events.push(
                    serde_json::json!({"kind": "handshake", "seq": seq, "ts_us": 1_000_000 * seq as i64,
                    "id": seq, "client_ip": format!("10.0.0.{}", 1 + (h + k) % 50), "client_port": 40000,
                    "server_ip": remote, "server_port": 443, "direction": "outbound", "outcome": "established",
                    "rtt_last_syn_us": 1000.0 + k as f64}),
                );
            }
            seq += 1;
            let hops: Vec<Value> = (1..=10u64)
                .map(|ttl| {
                    let addr = if ttl == 10 { remote.clone() } else { format!("100.64.{ttl}.{}", h % 200) };
                    serde_json::json!({"ttl": ttl, "addr": addr, "sent": 3, "received": 3, "rtt_avg_us": 100.0 * ttl as f64})
                })
                .collect();
            events.push(
                serde_json::json!({"kind": "route", "seq": seq, "ts_us": 1_000_000 * seq as i64,
                "id": h + 1, "src_ip": "10.0.0.254", "dst_ip": remote, "protocol": "tcp", "reached": true,
                "hop_count": 10, "changed": false, "hops": hops}),
            );
        }
        let r = http
            .post(format!("{}/api/v1/events", c.base))
            .bearer_auth(collector::TOKEN)
            .header("content-type", "application/json")
            .body(serde_json::json!({"sensor": "gw-test", "events": events}).to_string())
            .send()
            .unwrap();
        assert!(r.status().is_success(), "{}", r.text().unwrap_or_default());
    }
    let nodes = c.get("graph?window=all")["nodes"].as_array().unwrap().len();
    assert!(nodes > 1500, "{nodes} nodes: not a big graph");

    open(&b, &c.base, "graph?window=all&live=0");
    let rendered = b.wait_for("window.netGazer.rendered", 60, "the first frame");
    assert_eq!(rendered["nodes"], nodes);
    b.wait_for("window.netGazer.graph.settled()", 60, "the layout to stop");
    // Zoom: frames keep coming (the bitmap), then the graph is drawn again.
    let before = b.eval("window.netGazer.graph.zoomBy(1.5, 400); return window.netGazer.frames;");
    std::thread::sleep(std::time::Duration::from_millis(1000));
    let after = b.eval("return window.netGazer.frames;");
    assert!(
        after.as_f64().unwrap() > before.as_f64().unwrap() + 2.0,
        "frames while zooming: {before} → {after}"
    );
    // A remote host's node, found by the page's own picking.
    let target = "198.18.1.44";
    b.eval("window.netGazer.graph.zoomToFit(); return null;");
    std::thread::sleep(std::time::Duration::from_millis(500));
    let at = b.eval(&format!("return window.netGazer.graph.screenPosition('{target}');"));
    b.click_at(at["x"].as_f64().unwrap(), at["y"].as_f64().unwrap());
    let opened = b.wait_for(
        "document.querySelector('#panel:not([hidden])')?.dataset.ip",
        15,
        "a panel opened by a click on the big graph",
    );
    // The nearest node to the click; nodes may overlap when zoomed out.
    let ip: std::net::IpAddr = opened.as_str().unwrap().parse().unwrap();
    assert!(!ip.is_unspecified(), "{opened}");
    shoot(&b, "graph-big");
    assert_no_errors(&b, "big graph");
}

#[test]
#[ignore = "a benchmark: scripts/bench-ui.sh"]
fn bench_graph_first_render() {
    let Ok(list) = std::env::var("NG_BENCH_UI") else {
        eprintln!("NG_BENCH_UI is not set: run scripts/bench-ui.sh");
        return;
    };
    let Some(b) = Browser::start(1280, 800) else {
        return;
    };
    for db in list.split(',') {
        let dir = tempfile::tempdir().unwrap();
        std::fs::copy(db, dir.path().join("events.sqlite")).unwrap();
        let c = Collector::start(dir.path(), "127.0.0.1:0", "");
        let mut runs = Vec::new();
        let mut fps = Vec::new();
        let mut zoom_fps = Vec::new();
        let mut size = Value::Null;
        for _ in 0..5 {
            b.goto("about:blank");
            open(&b, &c.base, "graph?window=all&live=0");
            size = b.wait_for("window.netGazer.rendered", 120, "the first frame");
            runs.push(size["ms"].as_f64().unwrap());
            // Frames drawn in the next 3 s, while the layout still moves.
            let before = b.eval("return window.netGazer.frames;").as_f64().unwrap_or(0.0);
            std::thread::sleep(std::time::Duration::from_secs(3));
            let after = b.eval("return window.netGazer.frames;").as_f64().unwrap_or(0.0);
            fps.push((after - before) / 3.0);
            // Then, the layout stopped, frames while the view zooms for 1 s.
            b.wait_for("window.netGazer.graph.settled()", 30, "the layout to stop");
            std::thread::sleep(std::time::Duration::from_millis(500));
            let before = b.eval("window.netGazer.graph.zoomBy(2, 1000); return window.netGazer.frames;");
            std::thread::sleep(std::time::Duration::from_millis(500));
            b.screenshot(&artifacts().join("bench-zooming.png"));
            std::thread::sleep(std::time::Duration::from_millis(500));
            let after = b.eval("return window.netGazer.frames;").as_f64().unwrap_or(0.0);
            zoom_fps.push(after - before.as_f64().unwrap_or(0.0));
            std::thread::sleep(std::time::Duration::from_millis(1000));
            b.screenshot(&artifacts().join("bench-still.png"));
        }
        runs.sort_by(f64::total_cmp);
        fps.sort_by(f64::total_cmp);
        zoom_fps.sort_by(f64::total_cmp);
        println!(
            "graph first render: {} nodes, {} links: median {:.0} ms (runs {:?}); {:.0} frames/s while the layout settles; {:.0} frames/s while zooming",
            size["nodes"],
            size["links"],
            runs[runs.len() / 2],
            runs.iter().map(|r| r.round()).collect::<Vec<_>>(),
            fps[fps.len() / 2],
            zoom_fps[zoom_fps.len() / 2]
        );
        assert_no_errors(&b, "bench");
    }
}
