//! The fleet path with real parts: sensors (`net-gazer replay`) publish to
//! a real 3-node NATS JetStream cluster on loopback (a stream replicated 3
//! times), two real collectors share one durable consumer and one store.
//! Faults are injected the hard way (SIGKILL of a NATS node or of a
//! collector, NATS down for a minute, poison messages); every test ends by
//! checking that each sensor's events are stored exactly once: per sensor,
//! the stored count equals the events written and the highest stored
//! sequence number equals it too, so (the store being unique on (sensor,
//! seq)) the stored numbers are exactly 1..N.

#[path = "../../host/tests/common/mod.rs"]
mod common;
mod fleet {
    #[path = "../../../collector/tests/common/certs.rs"]
    pub mod certs;
    pub mod nats;
    #[path = "../../../collector/tests/common/postgres.rs"]
    pub mod postgres;
}

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value;

use common::collector::Collector;
use fleet::nats::Cluster;

/// A collector of the fleet: `[source.nats]` on `cluster`, the store
/// `store` (the lines that name it) shared with the others,
/// acknowledgements awaited 2 s, two messages asked for at a time (so that
/// the collectors share even a short run).
fn start_collector(dir: &Path, name: &str, store: &str, cluster: &Cluster) -> Collector {
    let config = dir.join(format!("{name}.toml"));
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:0\"\nretention_days = 0\n{store}\n\
             [source.nats]\n{}\nreplicas = {}\nack_wait = \"2s\"\nmax_deliver = 3\nfetch = 2\n",
            cluster.servers_toml(),
            cluster.nodes.len(),
        ),
    )
    .unwrap();
    Collector::spawn(&common::collector::bin(), &config)
}

/// A sensor `id` publishing to `cluster` in batches of 20: its
/// configuration file; its JSON lines go to `<id>.jsonl`, its spool is
/// `<id>-spool`.
fn sensor(dir: &Path, id: &str, cluster: &Cluster, extra: &str) -> PathBuf {
    let config = dir.join(format!("{id}.sensor.toml"));
    std::fs::write(
        &config,
        format!(
            "[sensor]\nid = \"{id}\"\n[output]\njsonl = \"{}\"\n[output.nats]\n{}\nspool_dir = \"{}\"\n\
             batch_size = 20\ntimeout = \"2s\"\n{extra}\n[track]\nmax_connections = 100000\n",
            dir.join(format!("{id}.jsonl")).display(),
            cluster.servers_toml(),
            spool_of(dir, id).display()
        ),
    )
    .unwrap();
    config
}

fn spool_of(dir: &Path, id: &str) -> PathBuf {
    dir.join(format!("{id}-spool"))
}

/// Batches and bytes in a spool.
fn spooled(dir: &Path, id: &str) -> (usize, u64) {
    std::fs::read_dir(spool_of(dir, id))
        .map(|rd| {
            rd.filter_map(Result::ok)
                .filter(|e| e.file_name().to_string_lossy().ends_with(".json.gz"))
                .fold((0, 0), |(n, b), e| (n + 1, b + e.metadata().map_or(0, |m| m.len())))
        })
        .unwrap_or((0, 0))
}

/// Replays `files` as the sensor of `config`; its log.
fn replay(config: &Path, files: &[PathBuf]) -> String {
    common::collector::replay(config, files)
}

/// An empty capture: a replay of it only sends what waits in the spool
/// (and its own final stats event).
fn empty_capture(dir: &Path) -> PathBuf {
    let path = dir.join("empty.pcap");
    let w =
        net_gazer_core::craft::PcapWriter::new(Vec::new(), 1, net_gazer_core::craft::TsResolution::Micro, false, 65535)
            .unwrap();
    std::fs::write(&path, w.into_inner()).unwrap();
    path
}

/// Runs empty replays as sensor `id` until its spool is empty (each run
/// keeps sending for a few seconds after its capture ends); their logs.
fn drain(dir: &Path, id: &str, config: &Path) -> String {
    let empty = empty_capture(dir);
    let mut logs = String::new();
    for _ in 0..20 {
        if spooled(dir, id).0 == 0 {
            return logs;
        }
        logs.push_str(&replay(config, std::slice::from_ref(&empty)));
    }
    panic!("{id}'s spool did not drain: {:?}", spooled(dir, id));
}

/// Events written by sensor `id` (its JSON lines, every run's).
fn written(dir: &Path, id: &str) -> u64 {
    let text = std::fs::read_to_string(dir.join(format!("{id}.jsonl"))).unwrap_or_default();
    text.lines().count() as u64
}

/// Events a run dropped from its full spool, as its last log line about
/// delivery says (`delivery stopped … dropped=N`; its final stats event
/// was written before the last batches were spooled).
fn dropped_in(log: &str) -> u64 {
    log.lines()
        .filter(|l| l.contains("delivery stopped"))
        .filter_map(|l| l.split(" dropped=").nth(1))
        .filter_map(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

/// Per sensor: events stored and the highest sequence number stored.
fn stored(c: &Collector) -> BTreeMap<String, (u64, u64)> {
    let summary = c.get("summary");
    let sensors = c.get("sensors");
    let mut out = BTreeMap::new();
    if let Some(m) = summary["events"].as_object() {
        for (id, kinds) in m {
            let n = kinds
                .as_object()
                .map_or(0, |k| k.values().filter_map(Value::as_u64).sum());
            out.insert(id.clone(), (n, 0));
        }
    }
    for s in sensors["sensors"].as_array().into_iter().flatten() {
        if let (Some(id), Some(last)) = (s["id"].as_str(), s["last_seq"].as_u64()) {
            out.entry(id.to_string()).or_insert((0, 0)).1 = last;
        }
    }
    out
}

/// Waits (at most `limit`) until every sensor of `want` has its count
/// stored, then checks exactly once: the count and the last sequence
/// number are what the sensor wrote, and nothing more arrives.
fn assert_stored_once(c: &Collector, want: &BTreeMap<String, (u64, Option<u64>)>, limit: Duration, context: &str) {
    let started = Instant::now();
    loop {
        let got = stored(c);
        let done = want.iter().all(|(id, (n, _))| got.get(id).is_some_and(|g| g.0 >= *n));
        if done {
            break;
        }
        assert!(
            started.elapsed() < limit,
            "not everything stored within {limit:?}: stored {got:?}, written {want:?}\n{context}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // Redeliveries still in flight would show as duplicates ignored, never
    // as more rows; wait a moment to see that nothing else arrives.
    std::thread::sleep(Duration::from_secs(1));
    let got = stored(c);
    for (id, (n, last)) in want {
        let (stored, stored_last) = got.get(id).copied().unwrap_or_default();
        assert_eq!(stored, *n, "{id}: events stored vs written\n{context}");
        if let Some(last) = last {
            assert_eq!(stored_last, *last, "{id}: the last sequence number stored\n{context}");
        }
    }
}

/// What the sensors wrote: (events, last seq) each. The last sequence
/// number is the count when the sensor ran once (a restart skips to the
/// next block of numbers it reserved: then it is not checked).
fn written_all(dir: &Path, ids: &[&str]) -> BTreeMap<String, (u64, Option<u64>)> {
    ids.iter()
        .map(|id| {
            let n = written(dir, id);
            let reserved = std::fs::read_to_string(spool_of(dir, id).join("next-seq")).unwrap_or_default();
            let once = reserved.trim() == "100000";
            (id.to_string(), (n, once.then_some(n)))
        })
        .collect()
}

/// A metric's value in `/metrics` (the first sample whose line starts so).
fn metric(c: &Collector, sample: &str) -> Option<f64> {
    let text = reqwest::blocking::get(format!("{}/metrics", c.base))
        .ok()?
        .text()
        .ok()?;
    text.lines()
        .find(|l| l.starts_with(sample))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// Waits until the collector consumes (its stream and consumer exist).
fn wait_consuming(c: &Collector) {
    let started = Instant::now();
    while metric(c, "netgazer_collector_nats_connected ") != Some(1.0) {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the collector never consumed from NATS"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

struct Fleet {
    dir: tempfile::TempDir,
    cluster: Cluster,
    collectors: Vec<Collector>,
    /// The shared store's server (none: one SQLite file, `events.sqlite`).
    postgres: Option<fleet::postgres::Server>,
}

/// A 3-node cluster and two collectors on one PostgreSQL database,
/// consuming.
fn fleet() -> Option<Fleet> {
    let server = fleet::postgres::Server::start()?;
    fleet_on(Some(server))
}

/// The same on one SQLite file (`events.sqlite`).
fn fleet_on_sqlite() -> Option<Fleet> {
    fleet_on(None)
}

fn fleet_on(postgres: Option<fleet::postgres::Server>) -> Option<Fleet> {
    let bin = fleet::nats::server_bin()?;
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::start(&bin, dir.path(), 3);
    let store = match &postgres {
        Some(server) => server.config(),
        None => format!("database = \"{}\"", dir.path().join("events.sqlite").display()),
    };
    let collectors: Vec<Collector> = ["c1", "c2"]
        .iter()
        .map(|n| start_collector(dir.path(), n, &store, &cluster))
        .collect();
    for c in &collectors {
        wait_consuming(c);
    }
    Some(Fleet {
        dir,
        cluster,
        collectors,
        postgres,
    })
}

/// Sensors `ids` replaying a capture of `n` handshakes each, at once, in
/// the background.
fn replay_all(f: &Fleet, ids: &[&str], n: u32) -> Vec<(String, PathBuf, std::thread::JoinHandle<String>)> {
    let pcap = f.dir.path().join(format!("many-{n}.pcap"));
    if !pcap.exists() {
        common::many_handshakes(&pcap, n);
    }
    ids.iter()
        .map(|id| {
            let config = sensor(f.dir.path(), id, &f.cluster, "");
            let (c, p) = (config.clone(), pcap.clone());
            (id.to_string(), config, std::thread::spawn(move || replay(&c, &[p])))
        })
        .collect()
}

/// Waits for the replays, drains what they left in their spools; their logs.
fn finish(f: &Fleet, runs: Vec<(String, PathBuf, std::thread::JoinHandle<String>)>) -> String {
    let mut logs = String::new();
    for (id, config, run) in runs {
        logs.push_str(&run.join().expect("the replay thread"));
        logs.push_str(&drain(f.dir.path(), &id, &config));
    }
    assert_eq!(dropped_in(&logs), 0, "events dropped from a spool: {logs}");
    logs
}

/// Waits until the collectors stored `n` events in all.
fn wait_for_some(c: &Collector, n: u64) {
    let started = Instant::now();
    while stored(c).values().map(|v| v.0).sum::<u64>() < n {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "fewer than {n} stored in 60 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

const SENSORS: [&str; 3] = ["gw1", "gw2", "gw3"];

fn servers(urls: &[String]) -> Vec<async_nats::ServerAddr> {
    urls.iter().map(|u| u.parse().unwrap()).collect()
}

#[test]
fn three_sensors_through_a_nats_cluster_to_two_collectors_store_every_event_once() {
    let Some(f) = fleet() else { return };
    let runs = replay_all(&f, &SENSORS, 5_000);
    let logs = finish(&f, runs);
    let want = written_all(f.dir.path(), &SENSORS);
    assert!(want.values().all(|w| w.0 > 5_000), "{want:?}");
    assert_stored_once(&f.collectors[0], &want, Duration::from_secs(120), &logs);
    // Both collectors took part (one durable consumer, shared).
    let handled: Vec<f64> = f
        .collectors
        .iter()
        .map(|c| metric(c, "netgazer_collector_nats_messages_total{result=\"stored\"}").unwrap_or(0.0))
        .collect();
    let metrics: Vec<String> = f
        .collectors
        .iter()
        .map(|c| {
            reqwest::blocking::get(format!("{}/metrics", c.base))
                .unwrap()
                .text()
                .unwrap()
        })
        .map(|t| t.lines().filter(|l| l.contains("nats")).collect::<Vec<_>>().join("\n"))
        .collect();
    assert!(
        handled.iter().all(|&n| n > 0.0),
        "messages stored by each collector: {handled:?}\n{metrics:#?}"
    );
}

/// The three sensors replay 20,000 handshakes each; once 2,000 are stored,
/// `fault` strikes; then every event is stored exactly once, as collector
/// `survivor` sees it. What `fault` returned, for checks of its own.
fn through_a_fault<R>(f: &mut Fleet, survivor: usize, fault: impl FnOnce(&mut Fleet) -> R) -> R {
    let runs = replay_all(f, &SENSORS, 20_000);
    wait_for_some(&f.collectors[0], 2_000);
    let r = fault(f);
    let logs = finish(f, runs);
    let want = written_all(f.dir.path(), &SENSORS);
    assert_stored_once(&f.collectors[survivor], &want, Duration::from_secs(180), &logs);
    r
}

#[test]
fn a_nats_node_killed_mid_stream_loses_and_doubles_nothing() {
    let Some(mut f) = fleet() else { return };
    through_a_fault(&mut f, 1, |f| f.cluster.kill(0));
}

#[test]
fn a_collector_killed_mid_stream_leaves_its_messages_to_the_other() {
    let Some(mut f) = fleet() else { return };
    through_a_fault(&mut f, 1, |f| f.collectors[0].kill());
}

/// A batch of one valid event and one that is not (its `ts_us` is text),
/// one naming another sensor than its subject, and one that is not JSON:
/// the valid event is stored, the rest land in the dead-letter stream with
/// their reasons, and a sensor's events flow on meanwhile.
#[test]
fn poison_messages_land_in_the_dead_letter_stream_while_the_rest_flows() {
    let Some(f) = fleet() else { return };
    let urls = f.cluster.urls();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let valid = r#"{"seq":1,"kind":"stats","ts_us":1700000000000000,"packets":1}"#;
    let poison = r#"{"seq":2,"kind":"stats","ts_us":"yesterday"}"#;
    let messages = [
        (
            "net-gazer.events.gw9",
            format!(r#"{{"sensor":"gw9","events":[{valid},{poison}]}}"#),
        ),
        (
            "net-gazer.events.gw9",
            format!(r#"{{"sensor":"gw-other","events":[{valid}]}}"#),
        ),
        ("net-gazer.events.gw9", "this is not JSON".to_string()),
    ];
    runtime.block_on(async {
        let client = async_nats::connect(servers(&urls)).await.unwrap();
        let js = async_nats::jetstream::new(client);
        for (subject, body) in &messages {
            js.publish(subject.to_string(), body.clone().into())
                .await
                .unwrap()
                .await
                .unwrap();
        }
    });
    // The rest flows.
    let runs = replay_all(&f, &["gw1"], 2_000);
    let logs = finish(&f, runs);
    let mut want = written_all(f.dir.path(), &["gw1"]);
    want.insert("gw9".into(), (1, Some(1)));
    assert_stored_once(&f.collectors[0], &want, Duration::from_secs(120), &logs);

    // Three dead letters: the refused event, the two whole messages.
    let letters = runtime.block_on(async {
        let client = async_nats::connect(servers(&urls)).await.unwrap();
        let js = async_nats::jetstream::new(client);
        let stream = js.get_stream("NET_GAZER_DEAD").await.unwrap();
        let mut out = Vec::new();
        for seq in 1..=3 {
            let m = stream.get_raw_message(seq).await.unwrap();
            let error = m
                .headers
                .get("Net-Gazer-Error")
                .map(|v| v.as_str().to_string())
                .unwrap_or_default();
            out.push((
                m.subject.to_string(),
                error,
                String::from_utf8_lossy(&m.payload).into_owned(),
            ));
        }
        assert!(stream.get_raw_message(4).await.is_err(), "only three dead letters");
        out
    });
    let mut letters = letters;
    letters.sort();
    let all = format!("{letters:#?}");
    assert!(letters.iter().all(|l| l.0 == "net-gazer.dead.gw9"), "{all}");
    let refused = letters.iter().find(|l| l.2.contains("\"refused\"")).expect(&all);
    assert!(refused.1.contains("1 events refused"), "{all}");
    assert!(refused.2.contains("yesterday"), "the event itself is kept: {all}");
    assert!(letters.iter().any(|l| l.1.contains("gw-other")), "{all}");
    assert!(
        letters.iter().any(|l| l.2 == "this is not JSON" && !l.1.is_empty()),
        "{all}"
    );
    let dead: f64 = f
        .collectors
        .iter()
        .filter_map(|c| metric(c, "netgazer_collector_nats_messages_total{result=\"dead_letter\"}"))
        .sum();
    assert_eq!(dead, 2.0, "two whole messages dead-lettered, counted");
}

/// NATS down for a minute: the sensor keeps its batches in a spool capped
/// at 1 MiB (the oldest dropped and counted beyond it), and once NATS is
/// back everything kept is stored once.
#[test]
fn nats_down_for_a_minute_the_sensor_spools_within_its_cap_then_drains() {
    let Some(bin) = fleet::nats::server_bin() else { return };
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = Cluster::start(&bin, dir.path(), 1);
    let db = dir.path().join("events.sqlite");
    let c = start_collector(dir.path(), "c1", &format!("database = \"{}\"", db.display()), &cluster);
    wait_consuming(&c);
    cluster.kill(0);
    let down = Instant::now();

    let config = sensor(dir.path(), "gw1", &cluster, "spool_max_mb = 1");
    let pcap = dir.path().join("many.pcap");
    common::many_handshakes(&pcap, 40_000);
    // The spool's size, watched while the sensor runs.
    let watching = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let watcher = {
        let (dir, watching) = (dir.path().to_path_buf(), std::sync::Arc::clone(&watching));
        std::thread::spawn(move || {
            let mut max = 0;
            while watching.load(std::sync::atomic::Ordering::Relaxed) {
                max = max.max(spooled(&dir, "gw1").1);
                std::thread::sleep(Duration::from_millis(5));
            }
            max
        })
    };
    let log = replay(&config, &[pcap]);
    watching.store(false, std::sync::atomic::Ordering::Relaxed);
    let max = watcher.join().unwrap();
    assert!(log.contains("NATS unavailable"), "{log}");
    assert!(log.contains("spool full: oldest batch dropped"), "{log}");
    assert!(max <= 1024 * 1024, "the spool grew to {max} bytes, over its 1 MiB");
    let first = written(dir.path(), "gw1");
    let dropped = dropped_in(&log);
    assert!(dropped > 0 && dropped < first, "dropped {dropped} of {first}: {log}");
    let (batches, _) = spooled(dir.path(), "gw1");
    assert!(batches > 0);

    std::thread::sleep(Duration::from_secs(60).saturating_sub(down.elapsed()));
    cluster.restart(0);
    cluster.wait_ready(0);
    let log = log + &drain(dir.path(), "gw1", &config);
    let (written, dropped) = (written(dir.path(), "gw1"), dropped_in(&log));
    let want = BTreeMap::from([("gw1".to_string(), (written - dropped, None))]);
    assert_stored_once(&c, &want, Duration::from_secs(120), &log);
}

/// NATS as an operator runs it: TLS only, a user per sensor that may
/// publish to its own subject only, a user for the collectors. A sensor
/// with its own user delivers; one that names another sensor's subject is
/// refused by the server (its batches stay in its spool, nothing of it is
/// stored); one that does not trust the servers' CA does not connect.
#[test]
fn sensors_publish_over_tls_to_their_own_subject_only() {
    let Some(bin) = fleet::nats::server_bin() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = fleet::certs::certificates(dir.path());
    let sensor_user = |u: &str| {
        format!(
            "{{user: {u}, password: {u}-secret, permissions: {{publish: [\"net-gazer.events.{u}\"], subscribe: [\"_INBOX.>\"]}}}}"
        )
    };
    let extra = format!(
        "tls {{\n  cert_file: \"{}\"\n  key_file: \"{}\"\n}}\nauthorization {{\n  users: [\n    {}\n    {}\n    \
         {{user: collector, password: collector-secret}}\n  ]\n}}\n",
        cert.display(),
        key.display(),
        sensor_user("gw1"),
        sensor_user("gw2"),
    );
    let cluster = Cluster::start_with(&bin, dir.path(), 1, &extra);
    let servers = format!("servers = [\"tls://127.0.0.1:{}\"]", cluster.nodes[0].port);
    let tls = format!("tls_required = true\ntls_ca_file = \"{}\"", ca.display());
    let config = dir.path().join("c1.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:0\"\ndatabase = \"{}\"\nretention_days = 0\n[source.nats]\n{servers}\n{tls}\n\
             user = \"collector\"\npassword = \"collector-secret\"\n",
            dir.path().join("events.sqlite").display()
        ),
    )
    .unwrap();
    let c = Collector::spawn(&common::collector::bin(), &config);
    wait_consuming(&c);

    let capture = common::testdata().join("pcaps");
    let files: Vec<PathBuf> = std::fs::read_dir(&capture)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "pcap"))
        .collect();
    let sensor_with = |id: &str, user: &str, tls: &str| {
        let config = dir.path().join(format!("{id}.sensor.toml"));
        std::fs::write(
            &config,
            format!(
                "[sensor]\nid = \"{id}\"\n[output]\njsonl = \"{}\"\n[output.nats]\n{servers}\n{tls}\nuser = \"{user}\"\n\
                 password = \"{user}-secret\"\nspool_dir = \"{}\"\ntimeout = \"1s\"\n",
                dir.path().join(format!("{id}.jsonl")).display(),
                spool_of(dir.path(), id).display()
            ),
        )
        .unwrap();
        replay(&config, &files)
    };
    let log1 = sensor_with("gw1", "gw1", &tls);
    // gw2's password, gw3's subject: the server refuses the publication.
    let log3 = sensor_with("gw3", "gw2", &tls);
    // gw2 itself, without the CA: no TLS connection.
    let log2 = sensor_with("gw2", "gw2", "tls_required = true");

    let want = BTreeMap::from([("gw1".to_string(), (written(dir.path(), "gw1"), None))]);
    assert_stored_once(&c, &want, Duration::from_secs(60), &log1);
    let got = stored(&c);
    assert!(
        !got.contains_key("gw2") && !got.contains_key("gw3"),
        "only gw1 stored: {got:?}"
    );
    assert!(log3.contains("Permissions Violation"), "{log3}");
    assert!(
        spooled(dir.path(), "gw3").0 > 0,
        "gw3's batches wait in its spool: {log3}"
    );
    assert!(log2.contains("NATS unavailable"), "{log2}");
    assert!(
        spooled(dir.path(), "gw2").0 > 0,
        "gw2's batches wait in its spool: {log2}"
    );
}

/// The store stops taking writes for a while mid-stream (another process
/// holds SQLite's write lock for 15 s): the collectors back off and resume,
/// JetStream keeps what the sensors publish meanwhile, nothing goes to the
/// dead-letter stream and nothing is lost.
#[test]
fn a_store_that_stops_taking_writes_pauses_the_collectors_and_loses_nothing() {
    let Some(mut f) = fleet_on_sqlite() else { return };
    let lock = through_a_fault(&mut f, 0, |f| {
        std::process::Command::new("python3")
            .args([
                "-c",
                "import sqlite3, sys, time\n\
                 c = sqlite3.connect(sys.argv[1], timeout=60, isolation_level=None)\n\
                 c.execute('BEGIN EXCLUSIVE')\n\
                 print('locked', flush=True)\n\
                 time.sleep(15)\n\
                 c.execute('COMMIT')\n",
            ])
            .arg(f.dir.path().join("events.sqlite"))
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("python3 runs")
    });
    let out = lock.wait_with_output().unwrap();
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("locked"),
        "the lock was taken"
    );
    assert_retried_not_dead_lettered(&f);
}

/// The collectors met a store that took no writes and retried, and sent
/// nothing to the dead-letter stream for it.
fn assert_retried_not_dead_lettered(f: &Fleet) {
    let sum = |sample: &str| -> f64 { f.collectors.iter().filter_map(|c| metric(c, sample)).sum() };
    assert!(
        sum("netgazer_collector_nats_messages_total{result=\"retried\"}") > 0.0,
        "the collectors met the store taking no writes and retried"
    );
    assert_eq!(
        sum("netgazer_collector_nats_messages_total{result=\"dead_letter\"}"),
        0.0,
        "a store outage sends nothing to the dead-letter stream"
    );
}

/// PostgreSQL restarted mid-stream (a fast shutdown cuts every
/// connection; the server is back 5 s later): the collectors back off and
/// reconnect, nothing goes to the dead-letter stream, nothing is lost.
#[test]
fn postgresql_restarted_mid_stream_the_collectors_back_off_and_resume() {
    let Some(mut f) = fleet() else { return };
    through_a_fault(&mut f, 1, |f| {
        let server = f.postgres.as_mut().expect("the fleet's PostgreSQL");
        server.stop();
        std::thread::sleep(Duration::from_secs(5));
        server.restart();
    });
    assert_retried_not_dead_lettered(&f);
}
