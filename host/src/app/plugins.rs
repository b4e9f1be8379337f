//! `net-gazer plugins list`, `plugins check FILE` and `plugins test FILE
//! CAPTURE`: what would load, and why not, and what a plugin does with a
//! capture's events, without starting capture.

use crate::cli::PluginsCommand;
use crate::config::Config;
use crate::plugin::{supervise::Running, wit, Loader, Registry};

pub fn main(mut config: Config, command: PluginsCommand) -> anyhow::Result<()> {
    match command {
        PluginsCommand::List(args) => {
            if let Some(dir) = args.plugin_dir {
                config.plugins.dir = dir;
            }
            list(&config)
        }
        PluginsCommand::Check(args) => check(&config, &args.file, args.init),
        PluginsCommand::Test(args) => test(&config, &args.file, &args.capture),
    }
}

fn list(config: &Config) -> anyhow::Result<()> {
    let section = &config.plugins;
    let found = Loader::discover(section)?;
    println!("plugin directory: {} ({} files)", section.dir.display(), found.len());
    println!("contract versions this net-gazer runs: {}", wit::supported_list());
    if found.is_empty() {
        return Ok(());
    }
    // No cache: listing must not write anything.
    let mut loader = Loader::new(None)?;
    loader.strict_permissions = section.strict_permissions;
    let mut refused = 0;
    for (i, f) in found.iter().enumerate() {
        let s = &f.settings;
        let grants = format!(
            "dirs [{}], http_allow [{}], timeout {} ms, memory {} MiB, on_error {}",
            s.dirs
                .iter()
                .map(|d| d.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
            s.http_allow.join(", "),
            s.timeout_ms.unwrap_or(section.timeout_ms),
            s.memory_mb.unwrap_or(section.memory_mb),
            s.on_error.unwrap_or_default(),
        );
        if !f.enabled {
            println!("{:>2}. {:<16} disabled in the configuration", i + 1, f.name);
            continue;
        }
        match loader.prepare(&f.name, &f.path) {
            Ok(p) => {
                let d = &p.description;
                let role = s.role.unwrap_or(d.role);
                println!(
                    "{:>2}. {:<16} {} {} (contract {}, {role}), wants {}{}{}\n    {grants}",
                    i + 1,
                    f.name,
                    d.name,
                    d.version,
                    p.contract,
                    d.wants_list(),
                    if d.interest.is_any() {
                        String::new()
                    } else {
                        format!(" ({})", d.interest.describe())
                    },
                    if s.batch.unwrap_or(d.batch) { ", batches" } else { "" },
                );
            }
            Err(e) => {
                refused += 1;
                println!("{:>2}. {:<16} REFUSED: {}", i + 1, f.name, e.reason);
            }
        }
    }
    if refused > 0 {
        anyhow::bail!("{refused} plugin(s) would be refused");
    }
    Ok(())
}

/// `$XDG_CACHE_HOME/net-gazer/plugins`, or `~/.cache/net-gazer/plugins`.
fn user_cache_dir() -> Option<std::path::PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|d| !d.is_empty())
        .map(std::path::PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .filter(|h| !h.is_empty())
                .map(|h| std::path::PathBuf::from(h).join(".cache"))
        })?;
    Some(base.join("net-gazer").join("plugins"))
}

fn check(config: &Config, file: &std::path::Path, init: bool) -> anyhow::Result<()> {
    let name = file
        .file_stem()
        .and_then(|s| s.to_str())
        .ok_or_else(|| anyhow::anyhow!("{}: not a file name", file.display()))?
        .to_string();
    // The user's own cache, never the daemon's: checking a plugin again
    // (a Python one takes seconds to compile) is then quick.
    let mut loader = Loader::new(user_cache_dir().as_deref())?;
    // A file checked anywhere (a build directory, say): its permissions
    // are reported, not held against it.
    loader.strict_permissions = false;
    let p = loader.prepare(&name, file)?;
    let d = &p.description;
    println!("file:     {}", file.display());
    println!("sha256:   {}", p.sha256);
    println!("name:     {}", d.name);
    println!("version:  {}", d.version);
    println!(
        "contract: {} (this net-gazer runs {})",
        p.contract,
        wit::supported_list()
    );
    println!("role:     {}", d.role);
    println!("wants:    {}", d.wants_list());
    println!("interest: {}", d.interest.describe());
    println!("batch:    {}", d.batch);
    match crate::plugin::permissions::check_file(file) {
        Ok(()) => println!("perms:    would be accepted in the plugin directory"),
        Err(e) => println!("perms:    WOULD BE REFUSED in the plugin directory: {e}"),
    }
    if d.name != name {
        println!(
            "warning:  the plugin calls itself `{}`, its file `{name}.wasm`: the daemon knows it as `{name}` (its table is [plugins.{name}], its logs and metrics say plugin=\"{name}\")",
            d.name
        );
    }
    if init {
        if !config.plugins.each.contains_key(&name) {
            println!("warning:  no [plugins.{name}] table in the configuration: init gets an empty one");
        }
        let settings = config.plugins.each.get(&name).cloned().unwrap_or_default();
        let metrics = Registry::default().get(&name);
        let running =
            Running::start(p, settings, &config.plugins, metrics).map_err(|e| anyhow::anyhow!("init: {e}"))?;
        println!("init:     accepted its [plugins.{name}] configuration");
        println!("interest: {} (after init)", running.interest.describe());
    }
    Ok(())
}

/// The largest capture `plugins test` reads (its events are kept in
/// memory): a tool for a plugin's author, not for traffic.
const MAX_TEST_CAPTURE: u64 = 64 << 20;

fn test(config: &Config, file: &std::path::Path, capture: &std::path::Path) -> anyhow::Result<()> {
    use crate::event::Event;
    let name = file
        .file_stem()
        .and_then(|s| s.to_str())
        .ok_or_else(|| anyhow::anyhow!("{}: not a file name", file.display()))?
        .to_string();
    let meta = std::fs::metadata(capture).map_err(|e| anyhow::anyhow!("{}: {e}", capture.display()))?;
    // A FIFO or a device has no size to check: its events would be kept
    // without a bound.
    if !meta.is_file() {
        anyhow::bail!(
            "{}: not a regular file (plugins test reads a capture file; use net-gazer replay)",
            capture.display()
        );
    }
    let size = meta.len();
    if size > MAX_TEST_CAPTURE {
        anyhow::bail!(
            "{}: {size} bytes is more than plugins test reads ({MAX_TEST_CAPTURE}); use net-gazer replay",
            capture.display()
        );
    }
    let mut capture_file =
        crate::capture::file::CaptureFile::open(capture).map_err(|e| anyhow::anyhow!("{}: {e}", capture.display()))?;
    let mut events = crate::pipeline::events_of(config.track_config(), config.interest(), &mut capture_file);
    // Stats events never go to plugins.
    events.retain(|t| !matches!(t.event, Event::Stats(_)));
    let mut loader = Loader::new(user_cache_dir().as_deref())?;
    loader.strict_permissions = false;
    let p = loader.prepare(&name, file)?;
    let d = p.description.clone();
    let contract = p.contract;
    let mut settings = config.plugins.each.get(&name).cloned().unwrap_or_default();
    // Its verdicts are what this shows, whatever its role.
    settings.role = Some(crate::config::Role::Filter);
    let metrics = Registry::default().get(&name);
    let running =
        Running::start(p, settings, &config.plugins, metrics.clone()).map_err(|e| anyhow::anyhow!("init: {e}"))?;
    let interest = running.interest.clone();
    println!(
        "{name}: {} {} (contract {}), wants {}; interest: {}",
        d.name,
        d.version,
        contract,
        d.wants_list(),
        interest.describe()
    );
    let mut chain = crate::plugin::chain::Chain::new(vec![running], Vec::new());
    let (mut called, mut dropped, mut tagged) = (0u64, 0u64, 0u64);
    let shown = events.len();
    for item in events {
        let kind = item.event.kind();
        let wanted = d.wants.contains(&kind) && interest.matches(&item.event);
        let before = item.tags.len();
        let line = summary_of(&item.event);
        let mut one = vec![item];
        chain.process(&mut one);
        let verdict = match one.first() {
            _ if !wanted => "not called (kind or interest)".to_string(),
            None => {
                dropped += 1;
                "drop".to_string()
            }
            Some(t) if t.tags.len() > before => {
                tagged += 1;
                let added: Vec<String> = t.tags[before..]
                    .iter()
                    .map(|t| format!("{}={}", t.key, t.value))
                    .collect();
                format!("keep, tags {}", added.join(" "))
            }
            Some(_) => "keep".to_string(),
        };
        if wanted {
            called += 1;
        }
        println!("  {line}: {verdict}");
    }
    let m = metrics.snapshot();
    println!(
        "{shown} events: {called} for the plugin, {dropped} dropped, {tagged} tagged; \
         {} errors ({} traps, {} timeouts, {} out of memory, {} bad results)",
        m.errors, m.traps, m.timeouts, m.out_of_memory, m.bad_results
    );
    for (k, v) in &m.custom {
        println!("  custom {k} = {v}");
    }
    Ok(())
}

/// One line about an event: its kind and ends ("handshake 10.0.0.5:40001
/// -> 192.0.2.10:443 established").
fn summary_of(event: &crate::event::Event) -> String {
    use crate::event::Event;
    match event {
        Event::Handshake(h) => format!(
            "handshake {}:{} -> {}:{} {}",
            h.client_ip,
            h.client_port,
            h.server_ip,
            h.server_port,
            h.outcome.name()
        ),
        Event::Flow(f) => format!(
            "flow {}:{} -> {}:{}",
            f.client_ip, f.client_port, f.server_ip, f.server_port
        ),
        Event::Scan(s) => format!("scan from {}", s.src_ip),
        Event::Route(r) => format!("route to {}", r.dst_ip),
        Event::Stats(_) => "stats".to_string(),
    }
}
