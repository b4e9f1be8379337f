//! Delivery to a real `net-gazer-collector` process over real HTTP: every
//! event of a replay arrives and is stored once; with the collector down,
//! the events wait in the spool across the sensor's exit and arrive,
//! exactly once, when a later run finds the collector up.

#[path = "../../host/tests/common/mod.rs"]
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
    let data = common::testdata();
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
        net_gazer_core::craft::PcapWriter::new(Vec::new(), 1, net_gazer_core::craft::TsResolution::Micro, false, 65535)
            .unwrap();
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

#[test]
fn a_collector_killed_and_restarted_during_a_replay_stores_every_event_once() {
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("many.pcap");
    common::many_handshakes(&pcap, 20_000);
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
    let data = common::testdata();
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

/// A pcap-ng capture of `n` established handshakes on each of two
/// interfaces; the second one's `if_tsoffset` puts its packets in 1906, so
/// their events carry a negative `ts_us`, which the collector refuses.
fn capture_with_events_before_1970(path: &Path, n: u32) {
    use net_gazer_core::craft::{frame, PcapNgWriter, TcpSpec, TsResolution};
    use net_gazer_core::decode::{LinkType, TcpFlags, VlanStack};
    use net_gazer_core::time::Timestamp;
    let mut w = PcapNgWriter::new(Vec::new(), false).unwrap();
    let ifaces = [
        w.add_interface(1, TsResolution::Micro, 65535).unwrap(),
        w.add_interface_offset(1, TsResolution::Micro, 65535, -2_000_000_000)
            .unwrap(),
    ];
    for (k, iface) in ifaces.into_iter().enumerate() {
        for i in 0..n {
            let client = std::net::IpAddr::from([10, 0, k as u8, i as u8]);
            let server = std::net::IpAddr::from([192, 0, 2, 1]);
            let t = 1_700_000_000_000_000i64 + i64::from(i) * 1000;
            for (dt, spec) in [
                (0, TcpSpec::new(client, 40000, server, 443, TcpFlags::SYN).seq(i)),
                (
                    40,
                    TcpSpec::new(server, 443, client, 40000, TcpFlags::SYN | TcpFlags::ACK)
                        .seq(7)
                        .ack(i + 1),
                ),
            ] {
                let f = frame(LinkType::Ethernet, VlanStack::NONE, &spec.ip_bytes());
                w.write(iface, Timestamp::from_micros(t + dt), &f, f.len() as u32)
                    .unwrap();
            }
        }
    }
    std::fs::write(path, w.into_inner()).unwrap();
}

/// The poison pill of the hardening issue, end to end: events the
/// collector cannot store are refused one by one, kept in the sensor's
/// dead-letter file with the reason, counted, and everything else is
/// delivered; nothing waits in the spool.
#[test]
fn events_the_collector_refuses_go_to_the_dead_letter_file_and_the_rest_arrive() {
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("mixed.pcapng");
    capture_with_events_before_1970(&pcap, 30);
    let c = start_collector(dir.path(), "127.0.0.1:0");
    let jsonl = dir.path().join("events.jsonl");
    let log = replay(dir.path(), &c.base, &[pcap], &jsonl);
    let written: Vec<Value> = std::fs::read_to_string(&jsonl)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let negative = written
        .iter()
        .filter(|e| e["ts_us"].as_i64().is_some_and(|t| t < 0))
        .count();
    assert_eq!(negative, 30, "the second interface's handshakes are before 1970");
    let handshakes = written.iter().filter(|e| e["kind"] == "handshake").count() as u64;
    assert_eq!(stored(&c)["handshake"].as_u64(), Some(handshakes - 30), "{log}");
    assert_eq!(spooled(dir.path()), 0, "nothing stalls in the spool: {log}");
    let dead = std::fs::read_to_string(dir.path().join("spool/dead-letter.jsonl")).unwrap();
    let dead: Vec<Value> = dead.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(dead.len(), 30);
    for d in &dead {
        assert!(d["event"]["ts_us"].as_i64().unwrap() < 0, "{d}");
        assert!(d["reason"].as_str().unwrap().contains("field `ts_us`"), "{d}");
    }
    assert!(log.contains("collector refused events of a batch"), "{log}");
    let stats = written.last().unwrap();
    assert_eq!(stats["kind"], "stats");
}

/// Batches larger than the collector's `body_limit_mb` are split until
/// they fit; every event arrives.
#[test]
fn batches_too_large_for_the_collector_are_split_until_they_fit() {
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("many.pcap");
    common::many_handshakes(&pcap, 12_000);
    let c = Collector::start(dir.path(), "127.0.0.1:0", "body_limit_mb = 1");
    let jsonl = dir.path().join("events.jsonl");
    let config = collector::sensor_config(dir.path(), &c.base, &jsonl, "");
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("batch_size = 20", "batch_size = 6000");
    std::fs::write(&config, text).unwrap();
    let log = collector::replay(&config, &[pcap]);
    assert!(log.contains("batch split"), "{log}");
    assert_eq!(stored(&c)["handshake"].as_u64(), Some(12_000), "{log}");
    assert_eq!(spooled(dir.path()), 0);
    assert!(!dir.path().join("spool/dead-letter.jsonl").exists(), "nothing refused");
}

/// A token the collector does not know: the batches stay in the spool (an
/// error each time, retried slowly, never dropped nor dead-lettered), and
/// arrive once the token is right.
#[test]
fn a_refused_token_keeps_the_batches_until_it_is_fixed() {
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("few.pcap");
    common::many_handshakes(&pcap, 50);
    let c = start_collector(dir.path(), "127.0.0.1:0");
    let jsonl = dir.path().join("events.jsonl");
    let config = collector::sensor_config(dir.path(), &c.base, &jsonl, "");
    let good = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, good.replace(collector::TOKEN, "not-the-token-at-all")).unwrap();
    let started = std::time::Instant::now();
    let log = collector::replay(&config, &[pcap]);
    assert!(
        started.elapsed() < std::time::Duration::from_secs(60),
        "no endless loop"
    );
    assert!(log.contains("collector refused the sensor"), "{log}");
    assert!(spooled(dir.path()) > 0, "kept: {log}");
    assert!(!dir.path().join("spool/dead-letter.jsonl").exists());
    assert_eq!(stored(&c)["handshake"].as_u64(), None);
    std::fs::write(&config, good).unwrap();
    let empty = dir.path().join("empty.pcap");
    let w =
        net_gazer_core::craft::PcapWriter::new(Vec::new(), 1, net_gazer_core::craft::TsResolution::Micro, false, 65535)
            .unwrap();
    std::fs::write(&empty, w.into_inner()).unwrap();
    collector::replay(&config, &[empty]);
    assert_eq!(stored(&c)["handshake"].as_u64(), Some(50));
    assert_eq!(spooled(dir.path()), 0);
}
