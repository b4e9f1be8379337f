//! The real host running the real plugins (built by scripts/build-plugins.sh)
//! over captures the tests craft: chain order and tags, the filter and the
//! Python plugin, hostile plugins contained, grants enforced, `plugins
//! check` and `plugins list`.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{built_file, built_plugins};
use net_gazer::craft::{frame, PcapWriter, TcpSpec, TsResolution};
use net_gazer::decode::{LinkType, TcpFlags, VlanStack};
use net_gazer::time::Timestamp;
use serde_json::Value;

/// One connection of the crafted capture.
#[derive(Clone, Debug)]
struct Conn {
    client: IpAddr,
    client_port: u16,
    server: IpAddr,
    server_port: u16,
    rtt_us: i64,
    refused: bool,
}

/// 48 connections from 10.0.0.0/24 to 192.0.2.0/24 on ports 22, 80 and
/// 443, with RTTs from 1 to 48 ms; every seventh refused.
fn connections() -> Vec<Conn> {
    (0..48u16)
        .map(|i| Conn {
            client: IpAddr::from([10, 0, 0, 1 + (i % 5) as u8]),
            client_port: 40_000 + i,
            server: IpAddr::from([192, 0, 2, (i * 5 % 256) as u8]),
            server_port: [22, 80, 443][usize::from(i % 3)],
            rtt_us: 1_000 * (i64::from(i) + 1),
            refused: i % 7 == 6,
        })
        .collect()
}

fn write_capture(path: &Path, conns: &[Conn]) {
    let mut w = PcapWriter::new(Vec::new(), 1, TsResolution::Micro, false, 65535).unwrap();
    let base = 1_700_000_000_000_000i64;
    let mut put = |us: i64, spec: TcpSpec| {
        let f = frame(LinkType::Ethernet, VlanStack::NONE, &spec.ip_bytes());
        w.write(Timestamp::from_nanos((base + us) * 1_000), &f, f.len() as u32)
            .unwrap();
    };
    for (i, c) in conns.iter().enumerate() {
        let t0 = i as i64 * 100_000;
        let (syn, ack) = (TcpFlags::SYN, TcpFlags::ACK);
        put(
            t0,
            TcpSpec::new(c.client, c.client_port, c.server, c.server_port, syn)
                .seq(1000)
                .syn_options(5),
        );
        if c.refused {
            put(
                t0 + c.rtt_us,
                TcpSpec::new(c.server, c.server_port, c.client, c.client_port, TcpFlags::RST | ack).ack(1001),
            );
        } else {
            put(
                t0 + c.rtt_us,
                TcpSpec::new(c.server, c.server_port, c.client, c.client_port, syn | ack)
                    .seq(9000)
                    .ack(1001)
                    .ttl(52)
                    .syn_options(6),
            );
            put(
                t0 + c.rtt_us + 50,
                TcpSpec::new(c.client, c.client_port, c.server, c.server_port, ack)
                    .seq(1001)
                    .ack(9001),
            );
        }
    }
    std::fs::write(path, w.into_inner()).unwrap();
}

/// A plugin directory, a configuration and a capture in a temporary
/// directory.
struct Setup {
    dir: tempfile::TempDir,
}

impl Setup {
    /// `plugins`: (name in the directory, built plugin it is a copy of).
    fn new(plugins: &[(&str, &str)], config: &str) -> Option<Setup> {
        let built = built_plugins(&[
            "demo",
            "filter",
            "testkit",
            "slow-rtt",
            "webhook",
            "lazy",
            "lazy-py",
            "tls-tag",
            "tls-tag-py",
        ])?;
        let dir = tempfile::tempdir().unwrap();
        let pdir = dir.path().join("plugins");
        std::fs::create_dir(&pdir).unwrap();
        for (name, source) in plugins {
            std::fs::copy(built_file(&built, source), pdir.join(format!("{name}.wasm"))).unwrap();
        }
        let cache = dir.path().join("cache");
        let text = format!(
            "[plugins]\ndir = \"{}\"\ncache_dir = \"{}\"\n{config}",
            pdir.display(),
            cache.display()
        );
        std::fs::write(dir.path().join("net-gazer.toml"), text).unwrap();
        write_capture(&dir.path().join("c.pcap"), &connections());
        Some(Setup { dir })
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn replay(&self) -> common::Replay {
        self.replay_from(&self.path("c.pcap"))
    }

    /// A replay of `capture` (a file or a FIFO).
    fn replay_from(&self, capture: &Path) -> common::Replay {
        let out = self.path("events.jsonl");
        let _ = std::fs::remove_file(&out);
        let output = Command::new(common::bin())
            .args(["replay", "--summary-json", "-v", "-c"])
            .arg(self.path("net-gazer.toml"))
            .arg("-o")
            .arg(&out)
            .arg(capture)
            .output()
            .expect("run net-gazer");
        let stderr = String::from_utf8_lossy(&output.stderr).to_string();
        assert!(output.status.success(), "replay failed: {stderr}");
        let events = std::fs::read_to_string(&out)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).expect("JSON line"))
            .collect();
        let summary = stderr
            .lines()
            .rev()
            .find(|l| l.starts_with('{'))
            .map(|l| serde_json::from_str(l).expect("summary"))
            .expect("summary line");
        common::Replay {
            events,
            summary,
            stderr,
        }
    }
}

fn handshakes(r: &common::Replay) -> Vec<&Value> {
    r.of_kind("handshake")
}

fn client_ports(events: &[&Value]) -> BTreeSet<u64> {
    events.iter().map(|e| e["client_port"].as_u64().unwrap()).collect()
}

fn metric(r: &common::Replay, plugin: &str, key: &str) -> u64 {
    r.summary["plugins"][plugin][key].as_u64().unwrap_or(0)
}

#[test]
fn chain_runs_in_order_and_later_plugins_see_earlier_tags() {
    let Some(s) = Setup::new(
        &[("a", "testkit"), ("b", "testkit"), ("demo", "demo")],
        "order = [\"b\", \"demo\"]\n[plugins.a]\nkey = \"a\"\n[plugins.b]\nkey = \"b\"\n",
    ) else {
        return;
    };
    let r = s.replay();
    let hs = handshakes(&r);
    assert_eq!(hs.len(), connections().len(), "{}", r.stderr);
    for h in &hs {
        // b runs first (order), a last: a saw b's tag, b saw none.
        assert_eq!(h["tags"]["b"], "", "{h}");
        assert_eq!(h["tags"]["a"], "b", "{h}");
    }
    for p in ["a", "b", "demo"] {
        assert_eq!(metric(&r, p, "events"), hs.len() as u64, "{p}: {}", r.summary);
    }
    assert_eq!(
        r.summary["plugins"]["demo"]["custom"]["handshake"].as_f64(),
        Some(hs.len() as f64)
    );
    // Stats events are not plugin events and still arrive.
    assert_eq!(r.of_kind("stats").len(), 1);
}

/// Contracts 0.2 and 0.3 in one chain: every plugin sees the tags of the
/// plugins before it, whatever their versions (a 0.2 plugin after 0.3
/// ones gets its record re-tagged; 0.3 plugins, in Rust and in Python,
/// read the tags of 0.2 ones through getters), per event and in batches.
#[test]
fn plugins_of_contracts_0_2_and_0_3_run_in_one_chain() {
    for batch in [false, true] {
        let config = format!(
            "order = [\"first\", \"lazy\", \"py\", \"mid\", \"last\"]\n\
             [plugins.first]\nkey = \"first\"\nbatch = {batch}\n\
             [plugins.lazy]\nkey = \"lazy\"\nbatch = {batch}\n\
             [plugins.py]\nkey = \"py\"\nbatch = {batch}\n\
             [plugins.mid]\nkey = \"mid\"\nbatch = {batch}\n\
             [plugins.last]\nkey = \"last\"\nbatch = {batch}\n"
        );
        let Some(s) = Setup::new(
            &[
                ("first", "testkit"),
                ("lazy", "lazy"),
                ("py", "lazy-py"),
                ("mid", "testkit"),
                ("last", "lazy"),
            ],
            &config,
        ) else {
            return;
        };
        let r = s.replay();
        assert!(
            r.stderr.contains("contract=0.2.0") && r.stderr.contains("contract=0.3.0"),
            "{}",
            r.stderr
        );
        let hs = handshakes(&r);
        assert_eq!(hs.len(), connections().len(), "{}", r.stderr);
        for h in &hs {
            assert_eq!(h["tags"]["first"], "", "batch {batch}: {h}");
            assert_eq!(h["tags"]["lazy"], "first", "0.3 after 0.2, batch {batch}: {h}");
            assert_eq!(h["tags"]["py"], "first,lazy", "Python, batch {batch}: {h}");
            assert_eq!(h["tags"]["mid"], "first,lazy,py", "0.2 after 0.3, batch {batch}: {h}");
            assert_eq!(h["tags"]["last"], "first,lazy,py,mid", "batch {batch}: {h}");
        }
        for p in ["first", "lazy", "py", "mid", "last"] {
            assert_eq!(metric(&r, p, "events"), hs.len() as u64, "{p}: {}", r.summary);
        }
        for p in ["lazy", "py"] {
            assert_eq!(metric(&r, p, "tagged"), hs.len() as u64, "{p}: {}", r.summary);
        }
    }
}

/// A 0.3 plugin reading three fields decides on them: it keeps the
/// handshakes to its port, tagged with what it read, and drops the rest;
/// one that reads a field of another kind fails on that event only.
#[test]
fn a_contract_0_3_plugin_reads_the_fields_it_needs() {
    for batch in [false, true] {
        let config = format!(
            "order = [\"port\", \"wrong\"]\n\
             [plugins.port]\nmode = \"port\"\nport = 80\nkey = \"seen\"\nbatch = {batch}\n\
             [plugins.wrong]\nmode = \"wrong-kind\"\nbatch = {batch}\n"
        );
        let Some(s) = Setup::new(&[("port", "lazy"), ("wrong", "lazy")], &config) else {
            return;
        };
        let r = s.replay();
        let conns = connections();
        let to_80: Vec<&Conn> = conns.iter().filter(|c| c.server_port == 80).collect();
        let hs = handshakes(&r);
        assert_eq!(
            client_ports(&hs),
            to_80.iter().map(|c| u64::from(c.client_port)).collect(),
            "batch {batch}: {}",
            r.stderr
        );
        for h in &hs {
            let c = to_80
                .iter()
                .find(|c| Some(u64::from(c.client_port)) == h["client_port"].as_u64());
            let rtt = h["rtt_last_syn_us"]
                .as_f64()
                .map_or("None".to_string(), |r| format!("Some({r:?})"));
            let want = format!("{}:80 {rtt}", c.unwrap().server);
            assert_eq!(h["tags"]["seen"], want.as_str(), "batch {batch}: {h}");
        }
        assert_eq!(
            metric(&r, "port", "dropped"),
            (connections().len() - to_80.len()) as u64,
            "{}",
            r.summary
        );
        assert!(metric(&r, "wrong", "traps") >= 1, "{}", r.summary);
        assert!(
            r.stderr.contains("`flow.bytes_c2s` called on a handshake event"),
            "the trap says which getter on which kind: {}",
            r.stderr
        );
    }
}

/// A 0.3 plugin that declares an interest in port 443 (from its
/// configuration) is called for those handshakes only; the others pass
/// untouched.
#[test]
fn a_contract_0_3_plugin_is_called_only_for_the_events_it_declares() {
    for batch in [false, true] {
        let config = format!("[plugins.only443]\nkey = \"seen\"\nports = [443]\nbatch = {batch}\n");
        let Some(s) = Setup::new(&[("only443", "lazy")], &config) else {
            return;
        };
        let r = s.replay();
        let hs = handshakes(&r);
        assert_eq!(hs.len(), connections().len(), "nothing dropped: {}", r.stderr);
        let to_443 = connections().iter().filter(|c| c.server_port == 443).count();
        assert!(to_443 > 0 && to_443 < hs.len());
        for h in &hs {
            let tagged = h["tags"].get("seen").is_some();
            assert_eq!(tagged, h["server_port"] == 443, "batch {batch}: {h}");
        }
        assert_eq!(metric(&r, "only443", "events"), to_443 as u64, "{}", r.summary);
    }
}

/// A declared interest in remote networks: the plugin is called only for
/// the handshakes whose remote end (the server, for these outbound ones)
/// is in them; a network with a prefix longer than its address refuses
/// the plugin.
#[test]
fn a_contract_0_3_plugin_is_called_only_for_the_remote_networks_it_declares() {
    let config = "[plugins.near]\nkey = \"near\"\nremote = [\"192.0.2.0/27\", \"192.0.2.200/29\"]\n";
    let Some(s) = Setup::new(&[("near", "lazy")], config) else {
        return;
    };
    let r = s.replay();
    let hs = handshakes(&r);
    assert_eq!(hs.len(), connections().len(), "nothing dropped: {}", r.stderr);
    let inside = |h: &Value| {
        let last: u8 = h["server_ip"]
            .as_str()
            .unwrap()
            .rsplit('.')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        last < 32 || (200..208).contains(&last)
    };
    let wanted = hs.iter().filter(|h| inside(h)).count();
    assert!(wanted > 0 && wanted < hs.len());
    for h in &hs {
        assert_eq!(h["tags"].get("near").is_some(), inside(h), "{h}");
    }
    assert_eq!(metric(&r, "near", "events"), wanted as u64, "{}", r.summary);
    let bad = Setup::new(&[("near", "lazy")], "[plugins.near]\nremote = [\"192.0.2.0/33\"]\n").unwrap();
    let r = bad.replay();
    assert!(
        r.stderr
            .contains("the declared interest has the network 192.0.2.0/33: a prefix longer than the address"),
        "{}",
        r.stderr
    );
    assert!(handshakes(&r).iter().all(|h| h["tags"].get("near").is_none()));
}

/// An exporter gets the events that passed the filters, after them
/// whatever its place in `order`, and its verdicts and tags do not reach
/// the outputs.
#[test]
fn an_exporter_gets_what_passed_the_chain_and_changes_nothing() {
    let Some(s) = Setup::new(
        &[("exp", "testkit"), ("port", "lazy")],
        "order = [\"exp\", \"port\"]\n\
         [plugins.exp]\nrole = \"exporter\"\nkey = \"exp\"\n\
         [plugins.port]\nmode = \"port\"\nport = 80\nkey = \"seen\"\n",
    ) else {
        return;
    };
    let r = s.replay();
    let hs = handshakes(&r);
    let to_80 = connections().iter().filter(|c| c.server_port == 80).count();
    assert_eq!(hs.len(), to_80, "{}", r.stderr);
    for h in &hs {
        assert!(h["tags"].get("exp").is_none(), "an exporter's tags stay out: {h}");
        assert!(h["tags"].get("seen").is_some(), "{h}");
    }
    assert!(r.stderr.contains("role=exporter"), "{}", r.stderr);
    assert_eq!(metric(&r, "exp", "events"), to_80 as u64, "{}", r.summary);
    assert_eq!(metric(&r, "exp", "export_dropped"), 0, "{}", r.summary);
}

/// An exporter whose endpoint never answers delays nothing: every event
/// reaches the output, and what the exporter did not finish by the stop is
/// counted, exactly.
#[test]
fn a_hung_exporter_delays_nothing_and_what_it_lost_is_counted() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    // Accepts and never answers (the connections stay open).
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for c in listener.incoming().flatten() {
            held.push(c);
        }
    });
    let config = format!(
        "[plugins.exp]\nrole = \"exporter\"\nmode = \"http\"\nurl = \"http://{addr}/\"\nhttp_allow = [\"{addr}\"]\n"
    );
    let Some(s) = Setup::new(&[("exp", "testkit")], &config) else {
        return;
    };
    let r = s.replay();
    let hs = handshakes(&r);
    assert_eq!(
        hs.len(),
        connections().len(),
        "every event reaches the output: {}",
        r.stderr
    );
    assert!(hs.iter().all(|h| h["tags"].get("http").is_none()));
    let (done, dropped) = (metric(&r, "exp", "events"), metric(&r, "exp", "export_dropped"));
    assert_eq!(done + dropped, hs.len() as u64, "{}", r.summary);
    assert!(dropped > 0, "{}", r.summary);
    assert!(r.stderr.contains("exporter did not finish"), "{}", r.stderr);
}

/// The text summary of a replay shows each plugin's own counters.
#[test]
fn the_text_summary_shows_a_plugins_own_counters() {
    let Some(s) = Setup::new(&[("demo", "demo")], "") else {
        return;
    };
    let output = Command::new(common::bin())
        .args(["replay", "-c"])
        .arg(s.path("net-gazer.toml"))
        .arg("-o")
        .arg(s.path("events.jsonl"))
        .arg(s.path("c.pcap"))
        .output()
        .expect("run net-gazer");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let n = connections().len();
    let want = format!("custom: handshake={n} seen={n}");
    assert!(stderr.lines().any(|l| l.trim() == want), "{want} in:\n{stderr}");
}

/// `plugins check` compiles a plugin once into the user's own cache: a
/// second check takes it from there.
#[test]
fn plugins_check_keeps_what_it_compiled_in_the_users_cache() {
    let Some(built) = common::built_plugins(&["slow-rtt"]) else {
        return;
    };
    let file = common::built_file(&built, "slow-rtt");
    let home = tempfile::tempdir().unwrap();
    let check = || {
        let out = Command::new(common::bin())
            .args(["plugins", "check"])
            .arg(&file)
            .env("XDG_CACHE_HOME", home.path())
            .output()
            .expect("run net-gazer");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    let first = check();
    let cache = home.path().join("net-gazer/plugins");
    let files = |d: &Path| std::fs::read_dir(d).map(|r| r.count()).unwrap_or(0);
    assert_eq!(files(&cache), 1, "one compiled plugin in {}", cache.display());
    let meta = std::fs::metadata(&cache).unwrap();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o777,
        0o700
    );
    assert_eq!(check(), first, "the same answer from the cache");
    assert_eq!(files(&cache), 1);
}

/// `plugins check --init` warns when the plugin's own name is not its
/// file's, and when the configuration has no table for it.
#[test]
fn plugins_check_warns_of_a_name_mismatch_and_a_missing_table() {
    let Some(s) = Setup::new(&[("other", "testkit")], "") else {
        return;
    };
    let out = Command::new(common::bin())
        .args(["plugins", "check", "--init", "-c"])
        .arg(s.path("net-gazer.toml"))
        .arg(s.path("plugins/other.wasm"))
        .output()
        .expect("run net-gazer");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        text.contains("warning:  the plugin calls itself `testkit`, its file `other.wasm`"),
        "{text}"
    );
    assert!(text.contains("warning:  no [plugins.other] table"), "{text}");
    assert!(text.contains("init:     accepted"), "{text}");
}

/// plugins/sample.pcap, the capture docs/plugins.md gives authors to try
/// a plugin on, has what its description says (`gen_capture sample`).
#[test]
fn the_sample_capture_for_plugin_authors_has_every_case() {
    let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugins/sample.pcap");
    let output = Command::new(common::bin())
        .args(["replay", "-o", "-"])
        .arg(&sample)
        .output()
        .expect("run net-gazer");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let mut seen: BTreeMap<(u64, String, String), usize> = BTreeMap::new();
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        let e: Value = serde_json::from_str(line).unwrap();
        if e["kind"] == "handshake" {
            let key = (
                e["server_port"].as_u64().unwrap(),
                e["direction"].as_str().unwrap().to_string(),
                e["outcome"].as_str().unwrap().to_string(),
            );
            *seen.entry(key).or_default() += 1;
        }
    }
    let want: BTreeMap<(u64, String, String), usize> = [
        ((443, "outbound", "established"), 5),
        ((80, "outbound", "established"), 3),
        ((22, "outbound", "refused"), 1),
        ((8080, "outbound", "refused"), 1),
        ((443, "outbound", "unanswered"), 1),
        ((22, "inbound", "established"), 1),
    ]
    .into_iter()
    .map(|((p, d, o), n)| ((p, d.to_string(), o.to_string()), n))
    .collect();
    assert_eq!(seen, want);
}

#[test]
fn filter_plugin_drops_by_port_and_outcome() {
    let Some(s) = Setup::new(
        &[("filter", "filter")],
        "[plugins.filter]\n[[plugins.filter.drop]]\nports = [22]\n[[plugins.filter.drop]]\noutcomes = [\"refused\"]\nserver = [\"192.0.2.0/25\"]\n",
    ) else {
        return;
    };
    let r = s.replay();
    let expected: BTreeSet<u64> = connections()
        .iter()
        .filter(|c| c.server_port != 22)
        .filter(|c| !(c.refused && c.server < "192.0.2.128".parse::<IpAddr>().unwrap()))
        .map(|c| u64::from(c.client_port))
        .collect();
    assert!(expected.len() < connections().len() && !expected.is_empty());
    assert_eq!(client_ports(&handshakes(&r)), expected, "{}", r.stderr);
    assert_eq!(
        metric(&r, "filter", "dropped"),
        (connections().len() - expected.len()) as u64
    );
}

#[test]
fn filter_plugin_refuses_a_bad_rule_and_the_daemon_runs_without_it() {
    let Some(s) = Setup::new(
        &[("filter", "filter"), ("z", "testkit")],
        "[plugins.filter]\n[[plugins.filter.drop]]\ndirections = [\"sideways\"]\n[plugins.z]\nkey = \"z\"\n",
    ) else {
        return;
    };
    let r = s.replay();
    assert!(
        r.stderr.contains("refused its configuration") && r.stderr.contains("sideways"),
        "{}",
        r.stderr
    );
    let hs = handshakes(&r);
    assert_eq!(hs.len(), connections().len());
    assert!(hs.iter().all(|h| h["tags"]["z"] == ""));
}

/// The SDK's configuration helper names the key path of what did not fit,
/// and refuses a misspelt key instead of ignoring it (the filter plugin
/// asks serde to deny unknown keys; the daemon's grants are let through).
#[test]
fn sdk_config_errors_name_the_key_path() {
    let Some(built) = built_plugins(&["filter"]) else {
        return;
    };
    let cases = [
        (
            "[[plugins.filter.drop]]\nports = [\"x\"]\n",
            "key `drop[0].ports[0]`: invalid type: string \"x\", expected u16",
        ),
        (
            "[[plugins.filter.drop]]\nport = [22]\n",
            "key `drop[0].port`: unknown field `port`",
        ),
        ("dorp = []\n", "key `dorp`: unknown field `dorp`"),
    ];
    // `plugins check --init` with the filter's table: (accepted, stderr).
    let check_init = |table: &str| {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("ng.toml");
        std::fs::write(&config, format!("[plugins.filter]\n{table}")).unwrap();
        let out = Command::new(common::bin())
            .args(["plugins", "check", "--init", "-c"])
            .arg(&config)
            .arg(built_file(&built, "filter"))
            .output()
            .unwrap();
        (out.status.success(), String::from_utf8_lossy(&out.stderr).to_string())
    };
    for (table, expected) in cases {
        let (accepted, text) = check_init(table);
        assert!(!accepted, "{table}: refused");
        assert!(text.contains(expected), "{table}: expected {expected:?} in {text}");
    }
    // The grants (`dirs`, `http_allow`) are not unknown keys.
    let (accepted, text) = check_init("http_allow = [\"127.0.0.1:1\"]\n");
    assert!(accepted, "{text}");
}

#[test]
fn python_plugin_tags_slow_handshakes_per_network() {
    let Some(s) = Setup::new(
        &[("slow-rtt", "slow-rtt")],
        "[plugins.slow-rtt]\ndefault_ms = 20\n[plugins.slow-rtt.networks]\n\"192.0.2.128/25\" = 40\n",
    ) else {
        return;
    };
    let r = s.replay();
    let hs = handshakes(&r);
    assert_eq!(hs.len(), connections().len(), "{}", r.stderr);
    let far: IpAddr = "192.0.2.128".parse().unwrap();
    let expected: BTreeSet<u64> = connections()
        .iter()
        .filter(|c| !c.refused)
        .filter(|c| c.rtt_us > if c.server >= far { 40_000 } else { 20_000 })
        .map(|c| u64::from(c.client_port))
        .collect();
    assert!(!expected.is_empty());
    let slow: Vec<&Value> = hs.iter().copied().filter(|h| h["tags"]["slow"] == "true").collect();
    assert_eq!(client_ports(&slow), expected, "{}", r.stderr);
    for h in &slow {
        let far_one = h["server_ip"].as_str().unwrap().parse::<IpAddr>().unwrap() >= far;
        assert_eq!(h["tags"]["slow.threshold_ms"], if far_one { "40" } else { "20" });
    }
}

/// After hostile plugins, the well-behaved `z` (testkit, key `z`) saw every
/// handshake, and no tag with an empty key reached the output.
fn z_saw_every_event_and_no_refused_tag(r: &common::Replay) {
    let hs = handshakes(r);
    assert_eq!(hs.len(), connections().len(), "{}", r.stderr);
    for h in &hs {
        assert_eq!(h["tags"]["z"], "", "z runs on every event: {h}");
        assert!(h["tags"].get("").is_none(), "{h}");
    }
    assert_eq!(metric(r, "z", "events"), hs.len() as u64);
}

#[test]
fn hostile_plugins_are_contained_and_the_others_see_every_event() {
    let Some(s) = Setup::new(
        &[
            ("loop", "testkit"),
            ("grow", "testkit"),
            ("trap", "testkit"),
            ("garbage", "testkit"),
            ("garbage-batch", "testkit"),
            ("init-fail", "testkit"),
            ("http-loop", "testkit"),
            ("z", "testkit"),
        ],
        "order = [\"loop\", \"grow\", \"trap\", \"garbage\", \"garbage-batch\", \"init-fail\", \"http-loop\", \"z\"]\n\
         [plugins.loop]\nmode = \"loop\"\n\
         [plugins.grow]\nmode = \"grow\"\nmemory_mb = 8\n\
         [plugins.trap]\nmode = \"trap\"\n\
         [plugins.garbage]\nmode = \"garbage\"\n\
         [plugins.garbage-batch]\nmode = \"garbage\"\nbatch = true\n\
         [plugins.init-fail]\nmode = \"init-fail\"\n\
         [plugins.http-loop]\nmode = \"http-loop\"\nurl = \"http://127.0.0.1:9/\"\nhttp_allow = [\"127.0.0.1:9\"]\n\
         [plugins.z]\nkey = \"z\"\n",
    ) else {
        return;
    };
    let r = s.replay();
    z_saw_every_event_and_no_refused_tag(&r);
    for h in &handshakes(&r) {
        assert!(h["tags"].get("big").is_none(), "{h}");
    }
    assert!(metric(&r, "loop", "timeouts") >= 1, "{}", r.summary);
    assert!(metric(&r, "http-loop", "timeouts") >= 1, "{}", r.summary);
    assert!(metric(&r, "grow", "out_of_memory") >= 1, "{}", r.summary);
    assert!(metric(&r, "trap", "traps") >= 5, "{}", r.summary);
    assert!(metric(&r, "trap", "disabled") >= 1, "{}", r.summary);
    assert_eq!(metric(&r, "trap", "dropped_on_error"), 0, "fail open by default");
    assert!(metric(&r, "garbage", "bad_results") >= 1, "{}", r.summary);
    assert!(metric(&r, "garbage-batch", "bad_results") >= 1, "{}", r.summary);
    assert!(r.stderr.contains("plugin disabled"), "{}", r.stderr);
    assert!(r.stderr.contains("init-fail mode refuses"), "{}", r.stderr);
    // The panic's message reaches the log, with the plugin's name.
    let panic = r.stderr.lines().find(|l| l.contains("testkit: trap mode"));
    assert!(
        panic.is_some_and(|l| l.contains("plugin=\"trap\"") && l.contains("stderr")),
        "{}",
        r.stderr
    );
}

/// A Python plugin's exception reaches the log with the plugin's name
/// (its standard error), and the events go on.
#[test]
fn a_python_exception_is_logged_with_its_message() {
    let Some(s) = Setup::new(&[("py", "lazy-py")], "[plugins.py]\nmode = \"raise\"\n") else {
        return;
    };
    let r = s.replay();
    assert_eq!(handshakes(&r).len(), connections().len(), "{}", r.stderr);
    assert!(metric(&r, "py", "traps") >= 1, "{}", r.summary);
    let line = r.stderr.lines().find(|l| l.contains("lazy-py: raise mode"));
    assert!(line.is_some_and(|l| l.contains("plugin=\"py\"")), "{}", r.stderr);
}

/// Hostile plugins of contract 0.3 are contained as those of 0.2 are:
/// a loop is interrupted, memory growth stopped at the limit, a refused
/// tag counted; the plugin after them sees every event.
#[test]
fn hostile_contract_0_3_plugins_are_contained() {
    let Some(s) = Setup::new(
        &[
            ("loop", "lazy"),
            ("grow", "lazy"),
            ("garbage", "lazy"),
            ("z", "testkit"),
        ],
        "order = [\"loop\", \"grow\", \"garbage\", \"z\"]\n\
         [plugins.loop]\nmode = \"loop\"\n\
         [plugins.grow]\nmode = \"grow\"\nmemory_mb = 8\n\
         [plugins.garbage]\nmode = \"garbage\"\n\
         [plugins.z]\nkey = \"z\"\n",
    ) else {
        return;
    };
    let r = s.replay();
    z_saw_every_event_and_no_refused_tag(&r);
    assert!(metric(&r, "loop", "timeouts") >= 1, "{}", r.summary);
    assert!(metric(&r, "grow", "out_of_memory") >= 1, "{}", r.summary);
    assert!(
        metric(&r, "garbage", "traps") >= 1,
        "a refused tag traps in 0.3: {}",
        r.summary
    );
    assert!(r.stderr.contains("tag refused: keys are 1..=64 bytes"), "{}", r.stderr);
}

#[test]
fn a_failing_plugin_with_on_error_drop_fails_closed() {
    let Some(s) = Setup::new(
        &[("guard", "testkit")],
        "[plugins.guard]\nmode = \"trap\"\non_error = \"drop\"\n",
    ) else {
        return;
    };
    let r = s.replay();
    assert!(handshakes(&r).is_empty(), "nothing passes a failing fail-closed plugin");
    assert_eq!(r.of_kind("stats").len(), 1, "stats are not plugin events");
    assert_eq!(
        metric(&r, "guard", "dropped_on_error"),
        connections().len() as u64,
        "{}",
        r.summary
    );
    assert!(metric(&r, "guard", "disabled") >= 1, "{}", r.summary);
}

#[test]
fn file_grants_are_read_only_directories_nothing_else() {
    let cases = ["inside", "outside", "symlink", "dotdot"];
    let plugins: Vec<(&str, &str)> = cases.iter().map(|c| (*c, "testkit")).collect();
    let Some(s) = Setup::new(&plugins, "") else { return };
    let granted = s.path("geo");
    std::fs::create_dir(&granted).unwrap();
    std::fs::write(granted.join("db.txt"), "inside\n").unwrap();
    std::fs::write(s.path("secret.txt"), "outside\n").unwrap();
    std::os::unix::fs::symlink(s.path("secret.txt"), granted.join("link.txt")).unwrap();
    let paths = [
        granted.join("db.txt"),
        s.path("secret.txt"),
        granted.join("link.txt"),
        granted.join("../secret.txt"),
    ];
    let mut config = std::fs::read_to_string(s.path("net-gazer.toml")).unwrap();
    for (name, path) in cases.iter().zip(&paths) {
        config.push_str(&format!(
            "[plugins.{name}]\nmode = \"read\"\nkey = \"{name}\"\npath = \"{}\"\ndirs = [\"{}\"]\n",
            path.display(),
            granted.display()
        ));
    }
    std::fs::write(s.path("net-gazer.toml"), config).unwrap();
    let r = s.replay();
    let hs = handshakes(&r);
    assert_eq!(hs.len(), connections().len(), "{}", r.stderr);
    for h in hs {
        assert_eq!(h["tags"]["inside"], "inside", "{h}");
        for denied in ["outside", "symlink", "dotdot"] {
            let v = h["tags"][denied].as_str().unwrap_or_default();
            assert!(v.starts_with("error"), "{denied} must be denied, got {v:?}");
        }
    }
}

/// Through `http-send` and through the standard `wasi:http`, the same
/// rules: only the hosts of `http_allow`, and time waiting on the server
/// does not count against the plugin's deadline.
#[test]
fn http_goes_only_to_allowed_hosts() {
    for mode in ["http", "wasi-http"] {
        http_only_to_allowed_hosts(mode);
    }
}

fn http_only_to_allowed_hosts(mode: &str) {
    let Some(s) = Setup::new(&[("allowed", "testkit"), ("denied", "testkit")], "") else {
        return;
    };
    // An HTTP server on loopback answering 204 to every request, 30 ms late.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        use std::io::{Read, Write};
        for mut stream in listener.incoming().flatten() {
            let mut buf = [0u8; 4096];
            let _ = stream.read(&mut buf);
            // Slower than the plugin's 10 ms deadline: time in the host's
            // HTTP call must not count against the plugin.
            std::thread::sleep(std::time::Duration::from_millis(30));
            let _ = stream.write_all(b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
        }
    });
    let config = std::fs::read_to_string(s.path("net-gazer.toml")).unwrap()
        + &format!(
            "[plugins.allowed]\nmode = \"{mode}\"\nkey = \"allowed\"\nurl = \"http://127.0.0.1:{port}/x\"\nhttp_allow = [\"127.0.0.1:{port}\"]\n\
             [plugins.denied]\nmode = \"{mode}\"\nkey = \"denied\"\nurl = \"http://127.0.0.1:{port}/x\"\nhttp_allow = [\"127.0.0.1:1\"]\n"
        );
    std::fs::write(s.path("net-gazer.toml"), config).unwrap();
    let r = s.replay();
    let hs = handshakes(&r);
    assert_eq!(hs.len(), connections().len(), "{mode}: {}", r.stderr);
    for h in hs {
        assert_eq!(h["tags"]["allowed"], "204", "{mode}: {h}");
        let v = h["tags"]["denied"].as_str().unwrap_or_default();
        let why = if mode == "http" {
            "http_allow"
        } else {
            "HttpRequestDenied"
        };
        assert!(v.starts_with("error") && v.contains(why), "{mode}: {v}");
    }
    assert_eq!(metric(&r, "allowed", "timeouts"), 0, "{mode}: {}", r.summary);
    if mode == "wasi-http" {
        let refused = r
            .stderr
            .lines()
            .filter(|l| l.contains("wasi:http request refused"))
            .count();
        assert!(refused >= 1, "logged: {}", r.stderr);
        assert!(r.stderr.contains("http_allow"), "the log says why: {}", r.stderr);
    }
}

fn check(file: &Path) -> (bool, String) {
    let out = Command::new(common::bin())
        .args(["plugins", "check"])
        .arg(file)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

#[test]
fn plugins_check_accepts_a_plugin_and_refuses_the_rest_clearly() {
    let Some(built) = built_plugins(&["demo", "filter", "testkit", "slow-rtt"]) else {
        return;
    };
    let (ok, text) = check(&built.join("demo.wasm"));
    assert!(ok, "{text}");
    assert!(
        text.contains("name:     demo") && text.contains("contract: 0.3.0"),
        "{text}"
    );
    assert!(text.contains("wants:    handshake, flow, scan, route"), "{text}");
    assert!(text.contains("role:     filter"), "{text}");
    assert!(text.contains("interest: any event of the wanted kinds"), "{text}");
    let (ok, text) = check(&built.join("slow-rtt.wasm"));
    assert!(ok && text.contains("interest: outcomes established"), "{text}");

    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, bytes: &[u8]| {
        let p = dir.path().join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    };
    let cases: Vec<(PathBuf, &str)> = vec![
        (write("text.wasm", b"hello, world"), "not a WebAssembly file"),
        (
            write("core.wasm", b"\0asm\x01\0\0\0"),
            "core WebAssembly module, not a component",
        ),
        (
            write("empty.wasm", b"\0asm\x0d\0\x01\0"),
            "a component of another world",
        ),
        (
            write("future.wasm", &retarget(&built.join("demo.wasm"), "0.3.0", "0.9.0")),
            "contract version 0.9.0 is not supported",
        ),
    ];
    for (file, message) in cases {
        let (ok, text) = check(&file);
        assert!(!ok, "{} must be refused: {text}", file.display());
        assert!(
            text.contains(message),
            "{}: expected {message:?} in {text}",
            file.display()
        );
        assert!(
            text.contains(&file.display().to_string()),
            "the message names the file: {text}"
        );
    }
}

/// `NG_PERF_MAP=1`: the engine writes `/tmp/perf-PID.map` with the plugin's
/// functions, named when the .wasm keeps its names (slow-rtt does; the
/// Rust plugins are stripped), for `perf report`; nothing without it.
#[test]
fn ng_perf_map_names_the_plugins_functions_for_perf() {
    let Some(built) = built_plugins(&["demo", "slow-rtt"]) else {
        return;
    };
    let run = |plugin: &str, perf_map: &str| {
        let child = Command::new(common::bin())
            .args(["plugins", "check"])
            .arg(built.join(plugin))
            .env("NG_PERF_MAP", perf_map)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let map = PathBuf::from(format!("/tmp/perf-{}.map", child.id()));
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let text = std::fs::read_to_string(&map).ok();
        let _ = std::fs::remove_file(&map);
        text
    };
    let text = run("slow-rtt.wasm", "1").expect("NG_PERF_MAP=1 writes /tmp/perf-PID.map");
    for export in ["describe", "on-event", "on-batch"] {
        let name = format!("::net-gazer:plugin/plugin@0.3.0#{export}");
        assert!(text.lines().any(|l| l.ends_with(&name)), "{name} not in the map");
    }
    let stripped = run("demo.wasm", "1").expect("a map for a stripped plugin too");
    assert!(
        stripped.lines().filter(|l| l.contains(" wasm[0]::function[")).count() > 10,
        "{stripped}"
    );
    assert_eq!(run("demo.wasm", "0"), None, "no map unless NG_PERF_MAP=1");
}

/// The demo plugin claiming another contract version: its exported
/// interface name rewritten (same length, so the binary stays valid).
fn retarget(file: &Path, from: &str, to: &str) -> Vec<u8> {
    let mut bytes = std::fs::read(file).unwrap();
    let old = format!("net-gazer:plugin/plugin@{from}").into_bytes();
    let new = format!("net-gazer:plugin/plugin@{to}").into_bytes();
    assert_eq!(old.len(), new.len());
    let mut n = 0;
    let mut i = 0;
    while i + old.len() <= bytes.len() {
        if bytes[i..i + old.len()] == old[..] {
            bytes[i..i + old.len()].copy_from_slice(&new);
            n += 1;
        }
        i += 1;
    }
    assert!(n > 0, "export name not found");
    bytes
}

#[test]
fn plugins_list_shows_the_chain_with_grants_and_refusals() {
    let Some(s) = Setup::new(
        &[
            ("demo", "demo"),
            ("filter", "filter"),
            ("off", "testkit"),
            ("slow", "slow-rtt"),
            ("old", "testkit"),
        ],
        "order = [\"filter\"]\n[plugins.demo]\ndirs = [\"/tmp\"]\ntimeout_ms = 7\n[plugins.off]\nenabled = false\n\
         [plugins.old]\nrole = \"exporter\"\n",
    ) else {
        return;
    };
    std::fs::write(s.path("plugins/broken.wasm"), b"not wasm").unwrap();
    let out = Command::new(common::bin())
        .args(["plugins", "list", "-c"])
        .arg(s.path("net-gazer.toml"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(!out.status.success(), "a refused plugin makes list fail: {text}");
    let lines: Vec<&str> = text.lines().filter(|l| l.contains(". ")).collect();
    assert!(lines[0].contains("filter"), "{text}");
    assert!(
        lines.iter().any(|l| l.contains("broken") && l.contains("REFUSED")),
        "{text}"
    );
    assert!(
        lines.iter().any(|l| l.contains("off") && l.contains("disabled")),
        "{text}"
    );
    assert!(text.contains("dirs [/tmp]") && text.contains("timeout 7 ms"), "{text}");
    // The contract, the role (the plugin's, or the table's) and a declared
    // interest.
    let line = |name: &str| *lines.iter().find(|l| l.contains(&format!(" {name} "))).unwrap();
    assert!(
        line("filter").contains("(contract 0.3.0, filter), wants handshake, flow, scan, route"),
        "{text}"
    );
    assert!(
        line("slow").contains("wants handshake (outcomes established)"),
        "{text}"
    );
    assert!(line("old").contains("(contract 0.2.0, exporter)"), "{text}");
}

#[test]
fn compiled_plugins_are_cached_and_a_damaged_cache_entry_is_recompiled() {
    let Some(s) = Setup::new(&[("demo", "demo")], "") else {
        return;
    };
    let r = s.replay();
    assert_eq!(metric(&r, "demo", "events"), connections().len() as u64);
    let cached: Vec<PathBuf> = std::fs::read_dir(s.path("cache"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "cwasm"))
        .collect();
    assert_eq!(cached.len(), 1, "one compiled plugin cached");
    std::fs::write(&cached[0], b"garbage").unwrap();
    let r = s.replay();
    assert!(r.stderr.contains("cached plugin unusable"), "{}", r.stderr);
    assert_eq!(metric(&r, "demo", "events"), connections().len() as u64);
}

/// An HTTP endpoint for the webhook exporter: it answers the first two
/// POSTs 503, reads the third and closes without answering (plays dead),
/// then takes every POST; it keeps the events of the POSTs it took (a
/// gzip-compressed JSON array each) and every request's content-encoding.
struct Webhook {
    port: u16,
    taken: std::sync::Arc<std::sync::Mutex<Vec<Value>>>,
    encodings: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Webhook {
    fn start() -> Webhook {
        use std::io::{BufRead, BufReader, Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let taken = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let encodings = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (t, e) = (taken.clone(), encodings.clone());
        std::thread::spawn(move || {
            for (n, stream) in listener.incoming().enumerate() {
                let Ok(mut stream) = stream else { continue };
                let _ = stream.set_read_timeout(Some(std::time::Duration::from_secs(10)));
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let (mut length, mut encoding) = (0usize, String::new());
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    let lower = line.to_ascii_lowercase();
                    if let Some(v) = lower.strip_prefix("content-length:") {
                        length = v.trim().parse().unwrap_or(0);
                    }
                    if let Some(v) = lower.strip_prefix("content-encoding:") {
                        encoding = v.trim().to_string();
                    }
                }
                let mut body = vec![0u8; length];
                if reader.read_exact(&mut body).is_err() {
                    continue;
                }
                e.lock().unwrap().push(encoding.clone());
                match n {
                    0 | 1 => {
                        let _ = stream.write_all(
                            b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                        );
                    }
                    2 => {} // dead: closed without an answer
                    _ => {
                        let json = if encoding == "gzip" {
                            let mut text = Vec::new();
                            flate2::read::GzDecoder::new(&body[..]).read_to_end(&mut text).unwrap();
                            text
                        } else {
                            body
                        };
                        let events: Vec<Value> = serde_json::from_slice(&json).expect("a JSON array");
                        t.lock().unwrap().extend(events);
                        let _ = stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
                    }
                }
            }
        });
        Webhook { port, taken, encodings }
    }
}

/// The webhook exporter (Python, contract 0.3, `wasi:http`) against an
/// endpoint that refuses, then plays dead, then answers: it retries with
/// backoff and every handshake the sensor wrote arrives exactly once, with
/// its fields and tags, gzip-compressed. The capture comes through a FIFO
/// with a pause, so the retries happen while the sensor runs.
#[test]
fn webhook_exporter_retries_and_delivers_every_event_exactly_once() {
    let hook = Webhook::start();
    let config = format!(
        "[plugins.tagger]\nkey = \"t\"\n\
         [plugins.webhook]\nurl = \"http://127.0.0.1:{p}/events\"\nhttp_allow = [\"127.0.0.1:{p}\"]\n\
         kinds = [\"handshake\"]\nbatch_size = 100\ntimeout_ms = 5000\n",
        p = hook.port
    );
    let Some(s) = Setup::new(&[("tagger", "testkit"), ("webhook", "webhook")], &config) else {
        return;
    };
    // 2000 connections: the sensor hands events on in batches of 256, so
    // the first half reaches the exporter before the pause.
    let conns: Vec<Conn> = (0..2000u32)
        .map(|i| Conn {
            client: IpAddr::from([10, 0, (i / 250) as u8, 1 + (i % 250) as u8]),
            client_port: 20_000 + (i % 40_000) as u16,
            server: IpAddr::from([192, 0, 2, (i % 200) as u8 + 1]),
            server_port: 443,
            rtt_us: 1_000 + i64::from(i),
            refused: false,
        })
        .collect();
    write_capture(&s.path("big.pcap"), &conns);
    let bytes = std::fs::read(s.path("big.pcap")).unwrap();
    let fifo = s.path("capture.fifo");
    let c = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let writer = {
        let fifo = fifo.clone();
        std::thread::spawn(move || {
            use std::io::Write;
            let mut f = std::fs::OpenOptions::new().write(true).open(&fifo).unwrap();
            f.write_all(&bytes[..bytes.len() / 2]).unwrap();
            f.flush().unwrap();
            // Tries at about 0, 1, 3 and 7 s (backoff 1, 2, 4 s): the
            // fourth is taken before the rest of the capture comes.
            std::thread::sleep(std::time::Duration::from_secs(10));
            f.write_all(&bytes[bytes.len() / 2..]).unwrap();
        })
    };
    let r = s.replay_from(&fifo);
    writer.join().unwrap();
    let hs = handshakes(&r);
    assert_eq!(hs.len(), conns.len(), "{}", r.stderr);
    let taken = hook.taken.lock().unwrap().clone();
    let mut ids: Vec<u64> = taken.iter().map(|e| e["id"].as_u64().unwrap()).collect();
    ids.sort_unstable();
    let written: Vec<u64> = {
        let mut v: Vec<u64> = hs.iter().map(|h| h["id"].as_u64().unwrap()).collect();
        v.sort_unstable();
        v
    };
    assert_eq!(
        ids,
        written,
        "every handshake exactly once ({} taken)\n{}",
        taken.len(),
        r.stderr
    );
    // The same fields as the JSON lines, and the tags of the chain.
    let by_id: BTreeMap<u64, &Value> = hs.iter().map(|h| (h["id"].as_u64().unwrap(), *h)).collect();
    for e in &taken {
        let h = by_id[&e["id"].as_u64().unwrap()];
        assert_eq!(e["kind"], "handshake");
        for key in [
            "ts",
            "ts_us",
            "client_ip",
            "client_port",
            "server_ip",
            "server_port",
            "direction",
            "outcome",
            "rtt_last_syn_us",
            "syn_count",
            "client_mss",
        ] {
            assert_eq!(e[key], h[key], "{key}: {e} against {h}");
        }
        assert_eq!(e["tags"], h["tags"], "{e}");
        assert_eq!(e["tags"]["t"], "", "the tagger's tag: {e}");
    }
    let encodings = hook.encodings.lock().unwrap().clone();
    assert!(encodings.len() >= 3 + conns.len() / 100, "{encodings:?}");
    assert!(encodings.iter().all(|e| e == "gzip"), "{encodings:?}");
    let custom = &r.summary["plugins"]["webhook"]["custom"];
    assert_eq!(custom["failed_posts"].as_f64(), Some(3.0), "{}", r.summary);
    assert_eq!(custom["sent"].as_f64(), Some(conns.len() as f64), "{}", r.summary);
    assert_eq!(custom["dropped"].as_f64().unwrap_or(0.0), 0.0, "{}", r.summary);
    assert_eq!(metric(&r, "webhook", "export_dropped"), 0, "{}", r.summary);
    assert!(r.stderr.contains("webhook: POST to http://127.0.0.1:"), "{}", r.stderr);
    assert!(r.stderr.contains("answers again after 3 failed tries"), "{}", r.stderr);
}

/// The Rust example of docs/plugins.md is templates/rust (its code blocks
/// are the template's source), built as an author would, and it does over
/// plugins/sample.pcap what the guide shows: called for the five
/// established port-443 handshakes only, each tagged with its RTT.
#[test]
fn the_guides_rust_example_is_the_template_and_does_what_the_guide_says() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let guide = std::fs::read_to_string(root.join("docs/plugins.md")).unwrap();
    let lib = std::fs::read_to_string(root.join("templates/rust/src/lib.rs")).unwrap();
    let rust = guide.split("## Writing a plugin in Rust").nth(1).unwrap();
    let rust = rust.split("## Writing a plugin in Python").next().unwrap();
    let blocks: Vec<&str> = rust
        .split("```rust\n")
        .skip(1)
        .map(|b| b.split("```").next().unwrap())
        .collect();
    assert_eq!(blocks.len(), 2, "the plugin and its test");
    for b in blocks {
        assert!(
            lib.contains(b),
            "docs/plugins.md and templates/rust/src/lib.rs differ:\n{b}"
        );
    }
    // The Rust template, and the Python one (templates/python), alike.
    for built in ["tls-tag", "tls-tag-py"] {
        let Some(s) = Setup::new(&[("tls-tag", built)], "[plugins.tls-tag]\nports = [443, 8443]\n") else {
            return;
        };
        let r = s.replay_from(&root.join("plugins/sample.pcap"));
        let tagged: Vec<(u64, String)> = handshakes(&r)
            .iter()
            .filter(|h| h["tags"]["tls"] == "true")
            .map(|h| {
                (
                    h["server_port"].as_u64().unwrap(),
                    h["tags"]["tls.rtt_ms"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        let rtts: Vec<&str> = tagged.iter().map(|(_, ms)| ms.as_str()).collect();
        assert_eq!(rtts, ["2.0", "25.0", "80.0", "160.0", "30.0"], "{built}: {}", r.stderr);
        assert!(tagged.iter().all(|(port, _)| *port == 443));
        assert_eq!(
            metric(&r, "tls-tag", "events"),
            5,
            "{built}: its interest kept it from the others"
        );
        assert_eq!(r.events.len(), 13);
    }
}

/// `plugins test FILE CAPTURE`: one plugin, started with its table, over
/// a capture's events, each with its verdict and the tags it added.
#[test]
fn plugins_test_shows_each_events_verdict() {
    let Some(built) = built_plugins(&["filter", "tls-tag"]) else {
        return;
    };
    let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugins/sample.pcap");
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("ng.toml");
    std::fs::write(
        &config,
        "[plugins.tls-tag]\nports = [443]\n[plugins.filter]\n[[plugins.filter.drop]]\nports = [80]\n",
    )
    .unwrap();
    let run = |plugin: &str| {
        let out = Command::new(common::bin())
            .args(["plugins", "test", "-c"])
            .arg(&config)
            .arg(built_file(&built, plugin))
            .arg(&sample)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
        text
    };
    let text = run("tls-tag");
    assert!(
        text.contains("interest: server ports 443; outcomes established"),
        "{text}"
    );
    assert!(
        text.contains("handshake 10.0.0.5:40001 -> 192.0.2.10:443 established: keep, tags tls.rtt_ms=2.0 tls=true"),
        "{text}"
    );
    assert_eq!(text.matches("not called (kind or interest)").count(), 7, "{text}");
    assert!(
        text.contains("12 events: 5 for the plugin, 0 dropped, 5 tagged; 0 errors"),
        "{text}"
    );
    assert!(text.contains("custom tls = 5"), "{text}");
    let text = run("filter");
    assert_eq!(text.matches(":80 established: drop").count(), 3, "{text}");
    // Not a regular file (a FIFO would be read without a bound): refused.
    let out = Command::new(common::bin())
        .args(["plugins", "test", "-c"])
        .arg(&config)
        .arg(built_file(&built, "filter"))
        .arg("/dev/null")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("/dev/null: not a regular file"),
        "{err}"
    );
    assert!(
        text.contains("12 events: 12 for the plugin, 3 dropped, 0 tagged"),
        "{text}"
    );
}

/// The webhook exporter refuses what it cannot send to, naming the key:
/// an endpoint outside `http_allow`, a header that would split the
/// request, a number out of range.
#[test]
fn webhook_exporter_refuses_a_bad_configuration_by_key() {
    let Some(built) = built_plugins(&["webhook"]) else {
        return;
    };
    let cases = [
        (
            "url = \"http://127.0.0.1:9/x\"\n",
            "webhook: key `url`: 127.0.0.1:9 is not in http_allow",
        ),
        (
            "url = \"http://127.0.0.1:9/x\"\nhttp_allow = [\"127.0.0.1:9\"]\n[plugins.webhook.headers]\nx-a = \"1\\r\\nx-b: 2\"\n",
            "webhook: key `headers`",
        ),
        (
            "url = \"http://127.0.0.1:9/x\"\nhttp_allow = [\"127.0.0.1:9\"]\nbatch_size = 0\n",
            "webhook: key `batch_size`: a whole number from 1 to 10000",
        ),
        ("urll = \"x\"\n", "webhook: unknown key `urll`"),
    ];
    for (table, expected) in cases {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("ng.toml");
        std::fs::write(&config, format!("[plugins.webhook]\n{table}")).unwrap();
        let out = Command::new(common::bin())
            .args(["plugins", "check", "--init", "-c"])
            .arg(&config)
            .arg(built_file(&built, "webhook"))
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{table}: refused");
        assert!(text.contains(expected), "{table}: expected {expected:?} in {text}");
    }
}
