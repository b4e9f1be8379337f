//! The GeoIP plugin (plugins/geoip) in the real host, over the MaxMind test
//! databases of testdata/mmdb: the tags on each handshake must be
//! what `source-data/*.json` beside the databases says of the remote host
//! (longest matching network), special-use addresses are tagged with their
//! scope and not looked up, and missing or corrupt files make `init` fail
//! with the file's name.

mod common;

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::geo::{longest, records};
use common::{built_file, built_plugins, testdata};
use ipnet::IpNet;
use net_gazer::craft::{frame, PcapWriter, TcpSpec, TsResolution};
use net_gazer::decode::{LinkType, TcpFlags, VlanStack};
use net_gazer::time::Timestamp;
use serde_json::Value;

const CITY: &str = "GeoIP2-City-Test";
const ASN: &str = "GeoLite2-ASN-Test";

/// Addresses to look up: the first address of every tenth network of each
/// file, global unicast only (no 6to4 or Teredo, which the databases map).
fn targets(city: &[(IpNet, Value)], asn: &[(IpNet, Value)]) -> Vec<IpAddr> {
    let mut t: Vec<IpAddr> = city
        .iter()
        .step_by(10)
        .chain(asn.iter().step_by(10))
        .map(|(n, _)| n.network())
        .filter(|a| match a {
            IpAddr::V4(v4) => !v4.is_private() && !v4.is_loopback() && v4.octets()[0] != 0,
            IpAddr::V6(v6) => {
                let s = v6.segments();
                s[0] != 0 && s[0] != 0x2002 && !(s[0] == 0x2001 && s[1] == 0)
            }
        })
        .collect();
    t.sort();
    t.dedup();
    t
}

/// One established outbound handshake per server, from 10.0.0.1 or fd00::1.
fn write_capture(path: &Path, servers: &[IpAddr]) {
    let mut w = PcapWriter::new(Vec::new(), 1, TsResolution::Micro, false, 65535).unwrap();
    let base = 1_700_000_000_000_000i64;
    for (i, &server) in servers.iter().enumerate() {
        let client: IpAddr = if server.is_ipv4() {
            "10.0.0.1".parse().unwrap()
        } else {
            "fd00::1".parse().unwrap()
        };
        let port = 40_000 + i as u16;
        let t0 = base + i as i64 * 10_000;
        let (syn, ack) = (TcpFlags::SYN, TcpFlags::ACK);
        for (t, spec) in [
            (
                t0,
                TcpSpec::new(client, port, server, 443, syn).seq(1000).syn_options(1),
            ),
            (
                t0 + 2_000,
                TcpSpec::new(server, 443, client, port, syn | ack)
                    .seq(9000)
                    .ack(1001)
                    .syn_options(2),
            ),
        ] {
            let f = frame(LinkType::Ethernet, VlanStack::NONE, &spec.ip_bytes());
            w.write(Timestamp::from_nanos(t * 1_000), &f, f.len() as u32).unwrap();
        }
    }
    std::fs::write(path, w.into_inner()).unwrap();
}

struct Setup {
    dir: tempfile::TempDir,
    config: PathBuf,
}

fn setup(built: &Path, mmdb: &Path, city_db: &str, asn_db: &str) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let plugins = dir.path().join("plugins");
    std::fs::create_dir(&plugins).unwrap();
    std::fs::copy(built_file(built, "geoip"), plugins.join("geoip.wasm")).unwrap();
    let config = dir.path().join("net-gazer.toml");
    let mut text = format!(
        "[track]\nlocal_networks = [\"10.0.0.0/8\", \"fd00::/8\"]\n[plugins]\ndir = \"{}\"\n\
         [plugins.geoip]\ndirs = [\"{}\"]\ncity_db = \"{city_db}\"\n",
        plugins.display(),
        mmdb.display()
    );
    if !asn_db.is_empty() {
        text += &format!("asn_db = \"{asn_db}\"\n");
    }
    std::fs::write(&config, text).unwrap();
    Setup { dir, config }
}

fn close(tag: Option<&str>, want: Option<f64>) -> bool {
    match (tag.and_then(|t| t.parse::<f64>().ok()), want) {
        (Some(a), Some(b)) => (a - b).abs() < 1e-9,
        (None, None) => true,
        _ => false,
    }
}

#[test]
fn handshakes_carry_what_the_databases_say_of_the_remote_host() {
    let (Some(built), data) = (built_plugins(&["geoip"]), testdata()) else {
        return;
    };
    let mmdb = data.join("mmdb");
    let (city, asn) = (records(&mmdb, CITY), records(&mmdb, ASN));
    let mut servers = targets(&city, &asn);
    let specials: [(IpAddr, &str); 3] = [
        ("169.254.7.7".parse().unwrap(), "link_local"),
        ("100.64.0.9".parse().unwrap(), "shared"),
        ("192.0.2.44".parse().unwrap(), "documentation"),
    ];
    servers.extend(specials.iter().map(|s| s.0));
    assert!(servers.len() > 60, "enough addresses: {}", servers.len());
    let s = setup(&built, &mmdb, &format!("{CITY}.mmdb"), &format!("{ASN}.mmdb"));
    let pcap = s.dir.path().join("geo.pcap");
    write_capture(&pcap, &servers);
    let r = common::replay_with_config(&[&pcap], &s.config, &[]);
    let handshakes = r.of_kind("handshake");
    assert_eq!(handshakes.len(), servers.len(), "{}", r.stderr);

    let mut looked_up = 0;
    for h in handshakes {
        let ip: IpAddr = h["server_ip"].as_str().unwrap().parse().unwrap();
        let tag = |k: &str| h["tags"][k].as_str();
        if let Some((_, scope)) = specials.iter().find(|s| s.0 == ip) {
            assert_eq!(tag("geo.scope"), Some(*scope), "{h}");
            assert!(tag("geo.country").is_none() && tag("asn").is_none(), "{h}");
            continue;
        }
        let c = longest(&city, ip);
        let a = longest(&asn, ip);
        let want = |v: Option<&Value>, path: &[&str]| -> Option<String> {
            let mut v = v?;
            for p in path {
                v = v.get(p)?;
            }
            Some(match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            })
        };
        let what = format!("{ip}: {h}");
        assert_eq!(
            tag("geo.country").map(String::from),
            want(c, &["country", "iso_code"]),
            "{what}"
        );
        assert_eq!(
            tag("geo.country_name").map(String::from),
            want(c, &["country", "names", "en"]),
            "{what}"
        );
        assert_eq!(
            tag("geo.city").map(String::from),
            want(c, &["city", "names", "en"]),
            "{what}"
        );
        let coordinate = |k: &str| c.and_then(|c| c["location"][k].as_f64());
        let has_both = coordinate("latitude").is_some() && coordinate("longitude").is_some();
        if has_both {
            assert!(close(tag("geo.lat"), coordinate("latitude")), "{what}");
            assert!(close(tag("geo.lon"), coordinate("longitude")), "{what}");
        }
        assert_eq!(
            tag("asn").map(String::from),
            want(a, &["autonomous_system_number"]),
            "{what}"
        );
        assert_eq!(
            tag("asn.org").map(String::from),
            want(a, &["autonomous_system_organization"]),
            "{what}"
        );
        looked_up += usize::from(c.is_some() || a.is_some());
    }
    assert!(looked_up > 50, "only {looked_up} addresses were in the databases");
}

#[test]
fn missing_or_corrupt_databases_fail_init_naming_the_file() {
    let (Some(built), data) = (built_plugins(&["geoip"]), testdata()) else {
        return;
    };
    let mmdb = data.join("mmdb");
    // A missing file.
    let s = setup(&built, &mmdb, "nope.mmdb", &format!("{ASN}.mmdb"));
    let check = |s: &Setup| {
        Command::new(common::bin())
            .args(["-c"])
            .arg(&s.config)
            .args(["plugins", "check", "--init"])
            .arg(s.dir.path().join("plugins/geoip.wasm"))
            .output()
            .unwrap()
    };
    let o = check(&s);
    let err = String::from_utf8_lossy(&o.stderr).to_string() + &String::from_utf8_lossy(&o.stdout);
    assert!(!o.status.success(), "{err}");
    assert!(err.contains("nope.mmdb"), "{err}");
    // A corrupt file, in a directory of its own.
    let bad = tempfile::tempdir().unwrap();
    std::fs::write(bad.path().join("City.mmdb"), b"this is not a MaxMind database").unwrap();
    let s = setup(&built, bad.path(), "City.mmdb", "");
    let o = check(&s);
    let err = String::from_utf8_lossy(&o.stderr).to_string() + &String::from_utf8_lossy(&o.stdout);
    assert!(!o.status.success(), "{err}");
    assert!(err.contains("City.mmdb"), "{err}");
    // An ASN database given as the city database: the wrong kind.
    let s = setup(&built, &mmdb, &format!("{ASN}.mmdb"), "");
    let o = check(&s);
    let err = String::from_utf8_lossy(&o.stderr).to_string() + &String::from_utf8_lossy(&o.stdout);
    assert!(!o.status.success() && err.contains("ASN"), "{err}");
}

/// The live sensor picks up a replaced database on SIGHUP: a connection to
/// 81.2.69.142 (an address of the test databases, put on the loopback of a
/// network namespace) is tagged from the City database, then, after the
/// file is replaced by a Country database and SIGHUP, without a city.
#[test]
fn sighup_picks_up_a_replaced_database() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("==================================================================");
        eprintln!("SKIPPED: the GeoIP reload test needs root (a network namespace and capture)");
        eprintln!("==================================================================");
        return;
    }
    let (Some(built), data) = (built_plugins(&["geoip"]), testdata()) else {
        return;
    };
    let mmdb = data.join("mmdb");
    let city = records(&mmdb, CITY);
    let target: IpAddr = "81.2.69.142".parse().unwrap();
    let london = longest(&city, target)
        .and_then(|r| r["city"]["names"]["en"].as_str())
        .map(String::from);
    assert!(london.is_some(), "the test database names a city for {target}");

    let files = tempfile::tempdir().unwrap();
    let db = files.path().join("city.mmdb");
    std::fs::copy(mmdb.join(format!("{CITY}.mmdb")), &db).unwrap();
    let s = setup(&built, files.path(), "city.mmdb", "");
    let ns = format!("ngg{}", std::process::id());
    let ip = |args: &[&str]| {
        let ok = Command::new("ip").args(args).status().is_ok_and(|s| s.success());
        assert!(ok, "ip {}", args.join(" "));
    };
    ip(&["netns", "add", &ns]);
    struct Gone(String);
    impl Drop for Gone {
        fn drop(&mut self) {
            let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
        }
    }
    let _gone = Gone(ns.clone());
    ip(&["-n", &ns, "link", "set", "lo", "up"]);
    ip(&["-n", &ns, "addr", "add", "81.2.69.142/32", "dev", "lo"]);

    let events = s.dir.path().join("events.jsonl");
    let log = s.dir.path().join("sensor.log");
    let mut sensor = Command::new("ip")
        .args(["netns", "exec", &ns])
        .arg(common::bin())
        .args(["run", "-v", "-i", "lo", "--local-net", "127.0.0.0/8", "-c"])
        .arg(&s.config)
        .arg("-o")
        .arg(&events)
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let sensor_log = || std::fs::read_to_string(&log).unwrap_or_default();
    let wait_for = |needle: &str, count: usize| {
        let started = std::time::Instant::now();
        while sensor_log().matches(needle).count() < count {
            assert!(
                started.elapsed().as_secs() < 20,
                "waiting for `{needle}`: {}",
                sensor_log()
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    };
    wait_for("capturing", 1);
    // A listener on 81.2.69.142, and one connection to it from 127.0.0.1.
    let py = "import socket,sys\n\
              l=socket.socket(); l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n\
              l.bind(('81.2.69.142', 8443)); l.listen(8)\n\
              c=socket.socket(); c.bind(('127.0.0.1', int(sys.argv[1]))); c.connect(('81.2.69.142', 8443))\n\
              a,_=l.accept(); a.close(); c.close(); l.close()\n";
    let connect = |port: &str| {
        let ok = Command::new("ip")
            .args(["netns", "exec", &ns, "python3", "-c", py, port])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "connection from port {port}");
    };
    connect("41001");
    // The first event is written (so tagged by the first database) before
    // the file is replaced: waiting for it, not for a guessed time.
    let written = |port: u64| {
        std::fs::read_to_string(&events).unwrap_or_default().lines().any(|l| {
            serde_json::from_str::<Value>(l).is_ok_and(|e| e["kind"] == "handshake" && e["client_port"] == port)
        })
    };
    let started = std::time::Instant::now();
    while !written(41001) {
        assert!(
            started.elapsed().as_secs() < 20,
            "the first event was not written: {}",
            sensor_log()
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    // Replace the file (atomically, as a download would) and reload.
    let tmp = files.path().join("city.mmdb.new");
    std::fs::copy(mmdb.join("GeoLite2-Country-Test.mmdb"), &tmp).unwrap();
    std::fs::rename(&tmp, &db).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    // SAFETY: kill has no memory preconditions; the pid is our child's.
    unsafe { libc::kill(sensor.id() as i32, libc::SIGHUP) };
    wait_for("plugin unchanged", 1);
    std::thread::sleep(std::time::Duration::from_millis(300));
    connect("41002");
    std::thread::sleep(std::time::Duration::from_millis(800));
    // SAFETY: as above.
    unsafe { libc::kill(sensor.id() as i32, libc::SIGTERM) };
    assert!(sensor.wait().unwrap().success(), "{}", sensor_log());

    let text = std::fs::read_to_string(&events).unwrap();
    let handshake = |port: u64| -> Value {
        text.lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap())
            .find(|e| e["kind"] == "handshake" && e["client_port"] == port)
            .unwrap_or_else(|| panic!("no handshake from port {port}: {text}"))
    };
    let (before, after) = (handshake(41001), handshake(41002));
    assert_eq!(before["tags"]["geo.city"].as_str(), london.as_deref(), "{before}");
    assert_eq!(before["tags"]["geo.country"], "GB", "{before}");
    assert!(
        after["tags"]["geo.city"].is_null(),
        "a Country database has no city: {after}"
    );
    assert_eq!(after["tags"]["geo.country"], "GB", "{after}");
}
