//! The InfluxDB exporter (plugins/influx) against a real InfluxDB 1.x
//! (Debian's `influxdb`, started here on loopback in a temporary
//! directory): a replay of plugins/sample.pcap through the sensor with the
//! exporter, then the points read back with InfluxQL must be the sensor's
//! handshakes and flows, value for value.

mod common;

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{built_file, built_plugins, replay_with_config};
use serde_json::Value;

struct Influxd(Child);

impl Drop for Influxd {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// influxd on loopback, data in `dir`; `None` (loudly) when not installed.
fn start(dir: &Path) -> Option<(Influxd, u16)> {
    let found = Command::new("influxd")
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        assert!(
            std::env::var("NG_REQUIRE_INFLUXDB").as_deref() != Ok("1"),
            "influxd is missing (Debian package influxdb; scripts/setup.sh installs it)"
        );
        eprintln!("==================================================================");
        eprintln!("SKIPPED: influxd not installed (apt-get install influxdb)");
        eprintln!("==================================================================");
        return None;
    }
    let (rpc, http) = (free_port(), free_port());
    let config = format!(
        "reporting-disabled = true\nbind-address = \"127.0.0.1:{rpc}\"\n\
         [meta]\ndir = \"{d}/meta\"\n\
         [data]\ndir = \"{d}/data\"\nwal-dir = \"{d}/wal\"\nquery-log-enabled = false\n\
         [monitor]\nstore-enabled = false\n\
         [http]\nbind-address = \"127.0.0.1:{http}\"\nlog-enabled = false\n",
        d = dir.display()
    );
    std::fs::write(dir.join("influxdb.conf"), config).unwrap();
    let log = std::fs::File::create(dir.join("influxd.log")).unwrap();
    let child = Command::new("influxd")
        .arg("-config")
        .arg(dir.join("influxdb.conf"))
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let server = Influxd(child);
    let client = reqwest::blocking::Client::new();
    let started = Instant::now();
    while client
        .get(format!("http://127.0.0.1:{http}/ping"))
        .send()
        .map_or(true, |r| r.status().as_u16() != 204)
    {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "influxd did not start: {}",
            std::fs::read_to_string(dir.join("influxd.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    Some((server, http))
}

fn query(http: u16, q: &str) -> Value {
    let r = reqwest::blocking::Client::new()
        .post(format!("http://127.0.0.1:{http}/query"))
        .query(&[("q", q), ("db", "net_gazer"), ("epoch", "u")])
        .send()
        .unwrap();
    let status = r.status();
    let body: Value = serde_json::from_str(&r.text().unwrap()).unwrap();
    assert!(status.is_success(), "{q}: {status} {body}");
    body
}

/// The rows of the first series of a query's answer, as column → value.
fn rows(answer: &Value) -> Vec<serde_json::Map<String, Value>> {
    let series = &answer["results"][0]["series"][0];
    let columns: Vec<String> = series["columns"]
        .as_array()
        .map(|c| c.iter().filter_map(|v| v.as_str().map(String::from)).collect())
        .unwrap_or_default();
    series["values"]
        .as_array()
        .map(|vs| {
            vs.iter()
                .map(|v| {
                    columns
                        .iter()
                        .cloned()
                        .zip(v.as_array().cloned().unwrap_or_default())
                        .collect()
                })
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn handshakes_and_flows_reach_influxdb_value_for_value() {
    let Some(built) = built_plugins(&["influx"]) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let Some((_server, http)) = start(dir.path()) else {
        return;
    };
    query(http, "CREATE DATABASE net_gazer");
    let plugins = dir.path().join("plugins");
    std::fs::create_dir(&plugins).unwrap();
    std::fs::copy(built_file(&built, "influx"), plugins.join("influx.wasm")).unwrap();
    let config = dir.path().join("net-gazer.toml");
    std::fs::write(
        &config,
        format!(
            "[plugins]\ndir = \"{}\"\ncache_dir = \"{}\"\n\
             [plugins.influx]\nurl = \"http://127.0.0.1:{http}\"\ndb = \"net_gazer\"\npoints_per_write = 5\n\
             http_allow = [\"127.0.0.1:{http}\"]\n",
            plugins.display(),
            dir.path().join("cache").display()
        ),
    )
    .unwrap();
    let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugins/sample.pcap");
    let r = replay_with_config(&[&sample], &config, &["-m", "quality"]);
    let custom = &r.summary["plugins"]["influx"]["custom"];
    let handshakes = r.of_kind("handshake");
    let flows = r.of_kind("flow");
    assert!(handshakes.len() >= 10 && !flows.is_empty(), "{}", r.stderr);
    assert_eq!(
        custom["written"].as_f64(),
        Some((handshakes.len() + flows.len()) as f64),
        "{}",
        r.summary
    );
    assert_eq!(r.summary["plugins"]["influx"]["export_dropped"], 0);

    let points = rows(&query(http, "SELECT * FROM netgazer_handshake"));
    assert_eq!(points.len(), handshakes.len(), "{points:?}");
    for h in &handshakes {
        let p = points
            .iter()
            .find(|p| p["time"].as_i64() == h["ts_us"].as_i64())
            .unwrap_or_else(|| panic!("no point at {}: {h}", h["ts_us"]));
        assert_eq!(
            p["server_port"].as_str(),
            Some(h["server_port"].to_string().as_str()),
            "{h}"
        );
        for k in ["direction", "outcome", "client_ip", "server_ip"] {
            assert_eq!(p[k], h[k], "{k}: {h}");
        }
        for k in ["client_port", "syn_count", "synack_count"] {
            assert_eq!(p[k].as_u64(), h[k].as_u64(), "{k}: {h}");
        }
        for k in ["rtt_last_syn_us", "rtt_first_syn_us", "client_rtt_us"] {
            assert_eq!(p[k].as_f64(), h[k].as_f64(), "{k}: {h}");
        }
    }
    let points = rows(&query(http, "SELECT * FROM netgazer_flow"));
    assert_eq!(points.len(), flows.len(), "{points:?}");
    for f in &flows {
        let p = points
            .iter()
            .find(|p| p["time"].as_i64() == f["ts_us"].as_i64() && p["client_ip"] == f["client_ip"])
            .unwrap_or_else(|| panic!("no point for {f}"));
        for k in [
            "packets_c2s",
            "packets_s2c",
            "bytes_c2s",
            "bytes_s2c",
            "retrans_c2s",
            "retrans_s2c",
        ] {
            assert_eq!(p[k].as_u64(), f[k].as_u64(), "{k}: {f}");
        }
        assert_eq!(p["end_reason"], f["end_reason"], "{f}");
        assert_eq!(p["duration_us"].as_f64(), f["duration_us"].as_f64(), "{f}");
    }
}
