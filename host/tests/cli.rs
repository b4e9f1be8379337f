//! The command line as a user meets it: help, version, configuration
//! errors, bad files and interfaces.

mod common;

use std::process::{Command, Output};

fn run(args: &[&str]) -> Output {
    Command::new(common::bin())
        .args(args)
        .env_remove("NG_IFACE")
        .env_remove("NG_CONFIG")
        .output()
        .expect("run net-gazer")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

#[test]
fn help_and_version() {
    let o = run(&["--help"]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("network connection capture and analysis daemon"));
    for word in [
        "run",
        "replay",
        "check-config",
        "--iface",
        "--config",
        "NG_IFACE",
        "NG_CONFIG",
        "--verbose",
    ] {
        assert!(text.contains(word), "help mentions {word}");
    }
    let o = run(&["-V"]);
    assert!(String::from_utf8_lossy(&o.stdout).starts_with("net-gazer "));
}

#[test]
fn check_config_prints_the_effective_settings_with_overrides() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("ng.toml");
    std::fs::write(
        &cfg,
        "[capture]\nmode = \"quality\"\n[track]\nunanswered_timeout = \"10s\"\n\
         [plugins.filter]\non_error = \"drop\"\n[[plugins.filter.drop]]\nports = [22]\n",
    )
    .unwrap();
    let o = Command::new(common::bin())
        .args(["check-config", "-c"])
        .arg(&cfg)
        .env("NG_IFACE", "eth7")
        .env("NG_FILTER", "not port 22")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("mode = \"quality\""), "{text}");
    assert!(text.contains("unanswered_timeout = \"10s\""), "{text}");
    assert!(
        text.contains("[plugins.filter]")
            && text.contains("on_error = \"drop\"")
            && text.contains("[[plugins.filter.drop]]"),
        "plugin tables are printed: {text}"
    );
    assert!(
        text.contains("interface = \"eth7\""),
        "environment overrides the file: {text}"
    );
    assert!(
        text.contains("filter = \"not port 22\""),
        "every NG_* override shows: {text}"
    );
    // Flags before the subcommand count too; the subcommand's own win.
    let o = Command::new(common::bin())
        .args([
            "-m",
            "handshake",
            "--plugin-dir",
            "/srv/ng-plugins",
            "-o",
            "outer.jsonl",
            "check-config",
        ])
        .args(["-o", "inner.jsonl", "-c"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let outer = String::from_utf8_lossy(&o.stdout);
    assert!(outer.contains("mode = \"handshake\""), "{outer}");
    assert!(outer.contains("dir = \"/srv/ng-plugins\""), "{outer}");
    assert!(outer.contains("jsonl = \"inner.jsonl\""), "{outer}");
    // The printed configuration is itself a valid configuration.
    let again = dir.path().join("again.toml");
    std::fs::write(&again, text.as_bytes()).unwrap();
    assert!(run(&["check-config", "-c", again.to_str().unwrap()]).status.success());
}

#[test]
fn a_bad_configuration_names_file_key_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("bad.toml");
    std::fs::write(&cfg, "[capture]\nmode = \"handshake\"\n\n[scan]\nport_treshold = 10\n").unwrap();
    let o = run(&["check-config", "-c", cfg.to_str().unwrap()]);
    assert!(!o.status.success());
    let e = stderr(&o);
    assert!(
        e.contains("bad.toml") && e.contains("line 5") && e.contains("scan.port_treshold"),
        "{e}"
    );
}

#[test]
fn a_missing_configuration_file_is_an_error() {
    let o = run(&["check-config", "-c", "/nonexistent/ng.toml"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("/nonexistent/ng.toml"));
}

#[test]
fn replay_refuses_files_that_are_not_captures_before_reading_any() {
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("notes.pcap");
    std::fs::write(&junk, "not a capture").unwrap();
    let o = run(&["replay", "-c", "/dev/null", junk.to_str().unwrap()]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("not a pcap or pcap-ng file"), "{}", stderr(&o));
    let o = run(&["replay", "-c", "/dev/null", "/nonexistent.pcap"]);
    assert!(stderr(&o).contains("/nonexistent.pcap"));
}

#[test]
fn a_missing_interface_is_a_clear_error() {
    let o = run(&["run", "-c", "/dev/null", "-i", "ng-no-such-if0"]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("no interface named `ng-no-such-if0`"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn a_bad_filter_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("x.pcap");
    let w =
        net_gazer::craft::PcapWriter::new(Vec::new(), 1, net_gazer::craft::TsResolution::Micro, false, 65535).unwrap();
    std::fs::write(&f, w.into_inner()).unwrap();
    let o = run(&[
        "replay",
        "-c",
        "/dev/null",
        "--filter",
        "port banana",
        f.to_str().unwrap(),
    ]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("port banana"), "{}", stderr(&o));
}

#[test]
fn boolean_environment_variables_take_the_usual_spellings() {
    for (value, expected) in [
        ("1", "true"),
        ("yes", "true"),
        ("on", "true"),
        ("0", "false"),
        ("false", "false"),
    ] {
        let o = Command::new(common::bin())
            .args(["check-config", "-c", "/dev/null"])
            .env("NG_VLAN_IN_KEY", value)
            .output()
            .unwrap();
        assert!(o.status.success(), "NG_VLAN_IN_KEY={value}: {}", stderr(&o));
        let text = String::from_utf8_lossy(&o.stdout);
        assert!(
            text.contains(&format!("vlan_in_key = {expected}")),
            "NG_VLAN_IN_KEY={value}: {text}"
        );
    }
}

/// Without CAP_NET_RAW, `trace` says which capability it needs (run as
/// root with the capability dropped by setpriv; skipped otherwise).
#[test]
fn trace_without_raw_sockets_names_the_capability() {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let setpriv = Command::new("setpriv").arg("--version").output().is_ok();
    if !root || !setpriv {
        eprintln!("SKIPPED: needs root and setpriv (root: {root}, setpriv: {setpriv})");
        return;
    }
    let o = Command::new("setpriv")
        .args(["--bounding-set", "-net_raw", "--inh-caps", "-net_raw", "--"])
        .arg(env!("CARGO_BIN_EXE_net-gazer"))
        .args(["-c", "/dev/null", "trace", "127.0.0.1"])
        .output()
        .expect("setpriv runs");
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(err.contains("CAP_NET_RAW"), "{err}");
}

/// -6 with an IPv4 address is an error that says so (nothing is sent).
#[test]
fn trace_refuses_a_family_mismatch() {
    let o = run(&["-c", "/dev/null", "trace", "-6", "192.0.2.1"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("IPv4 address but -6"), "{}", stderr(&o));
}

/// For service managers: 64 for a command-line mistake, 78 for a
/// configuration error (systemd's RestartPreventExitStatus=78 then stops
/// retrying), 1 for anything else, 0 for help.
#[test]
fn exit_statuses_tell_usage_configuration_and_other_errors_apart() {
    assert_eq!(run(&["--help"]).status.code(), Some(0));
    let o = run(&["replay", "--no-such-flag", "x.pcap"]);
    assert_eq!(o.status.code(), Some(64), "{}", stderr(&o));
    assert_eq!(run(&["no-such-command"]).status.code(), Some(64));

    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p.to_string_lossy().into_owned()
    };
    let unknown = write("unknown.toml", "[scan]\nport_treshold = 10\n");
    let range = write("range.toml", "[track]\nmax_connections = 4294967296\n");
    let overflow = write("overflow.toml", "[output]\nqueue_size = 9223372036854775807\n");
    for (args, want) in [
        (vec!["check-config", "-c", &unknown], "scan.port_treshold"),
        (
            vec!["check-config", "-c", &range],
            "must be from 1 to 10000000, not 4294967296",
        ),
        (vec!["replay", "-c", &overflow, "x.pcap"], "output.queue_size"),
        (
            vec!["check-config", "-c", "/nonexistent/ng.toml"],
            "/nonexistent/ng.toml",
        ),
        (
            vec!["check-config", "-c", "/dev/null", "--filter", "port banana"],
            "capture.filter",
        ),
        (vec!["check-config", "-c", "/dev/null", "-o", ""], "output.jsonl"),
    ] {
        let o = run(&args);
        assert_eq!(o.status.code(), Some(78), "{args:?}: {}", stderr(&o));
        assert!(stderr(&o).contains(want), "{args:?}: {}", stderr(&o));
    }
    let o = run(&["run", "-c", "/dev/null", "-i", "ng-no-such-if0"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
}

/// A plugin directory that others could write is refused (as sshd's
/// StrictModes does), unless `strict_permissions = false`.
#[test]
fn a_plugin_directory_others_can_write_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let plugins = dir.path().join("plugins");
    std::fs::create_dir(&plugins).unwrap();
    std::fs::set_permissions(&plugins, std::fs::Permissions::from_mode(0o777)).unwrap();
    let empty = dir.path().join("empty.pcap");
    let w =
        net_gazer::craft::PcapWriter::new(Vec::new(), 1, net_gazer::craft::TsResolution::Micro, false, 65535).unwrap();
    std::fs::write(&empty, w.into_inner()).unwrap();
    let plugin_dir = plugins.to_string_lossy().into_owned();
    let file = empty.to_string_lossy().into_owned();
    for args in [
        vec!["check-config", "-c", "/dev/null", "--plugin-dir", &plugin_dir],
        vec!["replay", "-c", "/dev/null", "--plugin-dir", &plugin_dir, &file],
    ] {
        let o = run(&args);
        assert_eq!(o.status.code(), Some(78), "{args:?}: {}", stderr(&o));
        assert!(
            stderr(&o).contains("writable by its group and others (mode 0777)"),
            "{}",
            stderr(&o)
        );
    }
    let lax = dir.path().join("lax.toml");
    std::fs::write(&lax, "[plugins]\nstrict_permissions = false\n").unwrap();
    let o = run(&[
        "replay",
        "-c",
        lax.to_str().unwrap(),
        "--plugin-dir",
        &plugin_dir,
        &file,
    ]);
    assert!(o.status.success(), "the override lets it run: {}", stderr(&o));
}

/// Devices, directories and endless inputs are refused at once with what
/// they are; nothing is read without a bound.
#[test]
fn devices_and_endless_inputs_are_refused_with_what_they_are() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_string_lossy().into_owned();
    for (args, want) in [
        (
            vec!["replay", "-c", "/dev/null", "/dev/urandom"],
            "/dev/urandom is a character device, not a capture file",
        ),
        (
            vec!["replay", "-c", "/dev/null", "/dev/zero"],
            "/dev/zero is a character device",
        ),
        (
            vec!["replay", "-c", "/dev/null", &d],
            "is a directory, not a capture file",
        ),
        (
            vec!["plugins", "check", "/dev/zero"],
            "/dev/zero is a character device, not a regular file",
        ),
        (
            vec!["check-config", "-c", "/dev/zero"],
            "more than the 1048576 bytes allowed",
        ),
    ] {
        let started = std::time::Instant::now();
        let o = run(&args);
        assert!(!o.status.success(), "{args:?}");
        assert!(stderr(&o).contains(want), "{args:?}: {}", stderr(&o));
        assert!(
            started.elapsed() < std::time::Duration::from_secs(30),
            "{args:?}: answered at once"
        );
    }
}

/// `net-gazer replay big.pcap | head`: once the reader closes standard
/// output, the replay stops reading (it does not go through the whole
/// file) and ends quietly with status 0, as `cat big | head` does.
#[test]
fn a_closed_standard_output_ends_a_replay_quietly() {
    use std::io::{BufRead, BufReader};
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("many.pcap");
    let n = 200_000;
    common::many_handshakes(&pcap, n);
    let mut child = Command::new(common::bin())
        .args(["replay", "-v", "--no-progress", "-c", "/dev/null"])
        .arg(&pcap)
        .env_remove("NG_CONFIG")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run net-gazer");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first: Vec<String> = lines.by_ref().take(10).map(Result::unwrap).collect();
    assert_eq!(first.len(), 10);
    drop(lines); // as head does
    let o = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{:?}: {err}", o.status);
    assert!(!err.contains("ERROR") && !err.contains("output failed"), "{err}");
    let stopped = err
        .lines()
        .find(|l| l.contains("standard output closed: the replay stops"))
        .unwrap_or_else(|| panic!("the replay stopped early: {err}"));
    let read: u64 = stopped
        .split("packets=")
        .nth(1)
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{stopped}"));
    assert!(read < u64::from(n) * 3, "read {read} of {} packets", n * 3);
}
