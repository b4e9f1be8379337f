//! Delivery to a real `net-gazer-collector` process over real HTTP: every
//! event of a replay arrives and is stored once; with the collector down,
//! the events wait in the spool across the sensor's exit and arrive,
//! exactly once, when a later run finds the collector up.

mod common;

use std::path::{Path, PathBuf};

use serde_json::Value;

use common::collector::{self, Collector};

fn start_collector(dir: &Path, listen: &str) -> Collector {
    Collector::start(dir, listen, "")
}

fn stored(c: &Collector) -> Value {
    c.stored()
}

/// Replays `files` delivering to `url`, with the JSON lines in `jsonl`.
fn replay(dir: &Path, url: &str, files: &[PathBuf], jsonl: &Path) -> String {
    collector::replay(&collector::sensor_config(dir, url, jsonl, ""), files)
}

/// The collector holds exactly the events written, kind by kind.
fn assert_stored_as_written(c: &Collector, written: &std::collections::BTreeMap<String, u64>, context: &str) {
    let got = stored(c);
    for (kind, n) in written {
        assert_eq!(
            got[kind].as_u64(),
            Some(*n),
            "{kind}: stored {got} vs written {written:?}\n{context}"
        );
    }
}

/// Events by kind in a JSON lines file.
fn kinds(jsonl: &Path) -> std::collections::BTreeMap<String, u64> {
    let mut m = std::collections::BTreeMap::new();
    for line in std::fs::read_to_string(jsonl).unwrap().lines() {
        let v: Value = serde_json::from_str(line).unwrap();
        *m.entry(v["kind"].as_str().unwrap().to_string()).or_insert(0) += 1;
    }
    m
}

fn captures() -> Option<Vec<PathBuf>> {
    let data = common::shared_data()?;
    let mut files: Vec<PathBuf> = std::fs::read_dir(data.join("pcaps"))
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "pcap"))
        .collect();
    files.sort();
    Some(files)
}

fn spooled(dir: &Path) -> usize {
    std::fs::read_dir(dir.join("spool"))
        .map(|rd| {
            rd.filter_map(Result::ok)
                .filter(|e| e.file_name().to_string_lossy().ends_with(".json.gz"))
                .count()
        })
        .unwrap_or(0)
}

#[test]
fn every_event_of_a_replay_is_stored_once() {
    let Some(files) = captures() else { return };
    let dir = tempfile::tempdir().unwrap();
    let c = start_collector(dir.path(), "127.0.0.1:0");
    let jsonl = dir.path().join("events.jsonl");
    replay(dir.path(), &c.base, &files, &jsonl);
    let written = kinds(&jsonl);
    assert!(written.get("handshake").is_some_and(|&n| n > 10), "{written:?}");
    assert_stored_as_written(&c, &written, "");
    assert_eq!(spooled(dir.path()), 0, "the spool is empty once delivered");
}

#[test]
fn events_wait_in_the_spool_while_the_collector_is_down() {
    let Some(files) = captures() else { return };
    let dir = tempfile::tempdir().unwrap();
    // A port nobody listens on: take one, then free it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}");
    let first = dir.path().join("first.jsonl");
    let log = replay(dir.path(), &url, &files, &first);
    assert!(spooled(dir.path()) > 0, "batches wait in the spool: {log}");
    assert!(log.contains("collector unavailable"), "{log}");
    // The final stats event says so: nothing delivered, retries counted.
    let last = std::fs::read_to_string(&first).unwrap();
    let stats: Value = serde_json::from_str(last.lines().last().unwrap()).unwrap();
    assert_eq!(
        (&stats["kind"], &stats["delivered"]),
        (&"stats".into(), &0.into()),
        "{stats}"
    );
    assert!(stats["delivery_retries"].as_u64().is_some(), "{stats}");

    // The collector comes up on that port; the next run (an empty capture)
    // sends what waited, then its own final stats.
    let c = start_collector(dir.path(), &format!("127.0.0.1:{port}"));
    let empty = dir.path().join("empty.pcap");
    let w =
        net_gazer::craft::PcapWriter::new(Vec::new(), 1, net_gazer::craft::TsResolution::Micro, false, 65535).unwrap();
    std::fs::write(&empty, w.into_inner()).unwrap();
    let second = dir.path().join("second.jsonl");
    replay(dir.path(), &url, &[empty], &second);
    assert_eq!(spooled(dir.path()), 0);
    let mut written = kinds(&first);
    for (k, n) in kinds(&second) {
        *written.entry(k).or_insert(0) += n;
    }
    assert_stored_as_written(&c, &written, "");
}

/// A capture of `n` established handshakes from 10.0.x.y to 192.0.2.z.
fn many_handshakes(path: &Path, n: u32) {
    use net_gazer::craft::{frame, PcapWriter, TcpSpec, TsResolution};
    use net_gazer::decode::{LinkType, TcpFlags, VlanStack};
    use net_gazer::time::Timestamp;
    let mut w = PcapWriter::new(Vec::new(), 1, TsResolution::Micro, false, 65535).unwrap();
    for i in 0..n {
        let client = std::net::IpAddr::from([10, 0, (i >> 8) as u8, i as u8]);
        let server = std::net::IpAddr::from([192, 0, 2, (i % 250) as u8]);
        let port = 1024 + (i % 60_000) as u16;
        let t = 1_700_000_000_000_000i64 + i as i64 * 100;
        for (dt, spec) in [
            (0, TcpSpec::new(client, port, server, 443, TcpFlags::SYN).seq(i)),
            (
                40,
                TcpSpec::new(server, 443, client, port, TcpFlags::SYN | TcpFlags::ACK)
                    .seq(7)
                    .ack(i + 1),
            ),
        ] {
            let f = frame(LinkType::Ethernet, VlanStack::NONE, &spec.ip_bytes());
            w.write(Timestamp::from_micros(t + dt), &f, f.len() as u32).unwrap();
        }
    }
    std::fs::write(path, w.into_inner()).unwrap();
}

#[test]
fn a_collector_killed_and_restarted_during_a_replay_stores_every_event_once() {
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("many.pcap");
    many_handshakes(&pcap, 20_000);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let listen = format!("127.0.0.1:{port}");
    let url = format!("http://{listen}");
    let mut c = start_collector(dir.path(), &listen);

    // The replay runs in the background, delivering batches of 20.
    let jsonl = dir.path().join("events.jsonl");
    let sensor = {
        let (dir, url, pcap, jsonl) = (dir.path().to_path_buf(), url.clone(), pcap.clone(), jsonl.clone());
        std::thread::spawn(move || replay(&dir, &url, &[pcap], &jsonl))
    };
    // Kill the collector (no clean shutdown) once it stored some, bring it
    // back a second later on the same port and database.
    let started = std::time::Instant::now();
    loop {
        let n = stored(&c)["handshake"].as_u64().unwrap_or(0);
        if n >= 1000 {
            break;
        }
        assert!(started.elapsed().as_secs() < 60, "the collector stored only {n}");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    drop(c);
    std::thread::sleep(std::time::Duration::from_secs(1));
    c = start_collector(dir.path(), &listen);
    let log = sensor.join().expect("the replay thread");
    assert!(
        log.contains("collector unavailable"),
        "the kill came while batches were being sent: {log}"
    );
    let written = kinds(&jsonl);
    assert_eq!(written.get("handshake"), Some(&20_000));
    assert_stored_as_written(&c, &written, &log);
    assert_eq!(spooled(dir.path()), 0, "{log}");
}

/// A replay in capture mode `quality`: each remote host's flow counters in
/// the collector's host detail are the sums of the flow events the sensor
/// wrote for it.
#[test]
fn flow_quality_reaches_the_host_detail() {
    let Some(data) = common::shared_data() else { return };
    let file = data.join("pcaps/zeek_retransmit-fast009.pcap");
    let dir = tempfile::tempdir().unwrap();
    let c = start_collector(dir.path(), "127.0.0.1:0");
    let jsonl = dir.path().join("events.jsonl");
    let config = collector::sensor_config(dir.path(), &c.base, &jsonl, "[capture]\nmode = \"quality\"\n");
    collector::replay(&config, &[file]);
    let flows: Vec<Value> = std::fs::read_to_string(&jsonl)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|e| e["kind"] == "flow")
        .collect();
    assert!(!flows.is_empty(), "quality mode wrote no flow event");
    let remote = |f: &Value| {
        let side = if f["direction"] == "inbound" {
            "client_ip"
        } else {
            "server_ip"
        };
        f[side].as_str().unwrap().to_string()
    };
    let hosts: std::collections::BTreeSet<String> = flows.iter().map(remote).collect();
    for host in hosts {
        let mine: Vec<&Value> = flows.iter().filter(|f| remote(f) == host).collect();
        let detail = c.get(&format!("hosts/{host}"))["flows"].clone();
        assert_eq!(detail["count"].as_u64(), Some(mine.len() as u64), "{host}: {detail}");
        for counter in [
            "retrans_s2c",
            "dup_acks_c2s",
            "sack_blocks_c2s",
            "bytes_s2c",
            "packets_c2s",
        ] {
            let want: u64 = mine.iter().map(|f| f[counter].as_u64().unwrap()).sum();
            assert_eq!(detail[counter].as_u64(), Some(want), "{host} {counter}: {detail}");
        }
        for f in &mine {
            let reason = f["end_reason"].as_str().unwrap();
            assert!(
                detail["end_reasons"][reason].as_u64() >= Some(1),
                "{host} {reason}: {detail}"
            );
        }
    }
    // The capture's known losses are there (docs/events.md's example).
    assert!(
        flows.iter().any(|f| f["retrans_s2c"].as_u64() > Some(0)),
        "no retransmission in {flows:?}"
    );
}
