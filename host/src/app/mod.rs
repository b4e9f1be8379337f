//! The commands: `run` (live), `replay` (files) and `check-config`. Thin
//! drivers around [`crate::pipeline::Pipeline`]: they own the clock, the
//! signals and the terminal.

mod live;
mod plugins;
mod replay;
mod trace;

use anyhow::Context;

use crate::cli::{Cli, Command, PipelineArgs};
use crate::config::Config;
use crate::output::delivery::DeliveryOutput;
use crate::output::{Backpressure, EventQueue, JsonLines, Output, OutputThread, Stage};
use crate::pipeline::{Pipeline, ReplayFilter};
use crate::plugin::{ChainStage, Plugins, Registry};
use crate::track::{LocalNetworks, Tracker};

/// Installs the log subscriber: warnings by default, -v info, -vv debug,
/// -vvv trace; `RUST_LOG` wins when set. Logs go to standard error so
/// standard output carries only events.
pub fn init_logging(verbose: u8) {
    net_gazer_common::logging::init(verbose);
}

pub fn main(cli: Cli) -> anyhow::Result<()> {
    let (mut config, path) = Config::load(cli.config.as_deref())?;
    match &path {
        Some(p) => tracing::info!(file = %p.display(), "configuration loaded"),
        None => tracing::info!("no configuration file found; using defaults"),
    }
    let iface = cli.iface.clone();
    if let Some(iface) = &iface {
        config.capture.interface = Some(iface.clone());
    }
    // What SIGHUP re-reads: the same file with the same overrides.
    let reconfigure = |args: PipelineArgs, no_promisc: bool| -> Reconfigure {
        let path = path.clone();
        let iface = iface.clone();
        Box::new(move || {
            let (mut config, _) = Config::load(path.as_deref())?;
            config.capture.interface = iface.clone();
            apply(&mut config, &args, no_promisc)?;
            Ok(config)
        })
    };
    match cli.command {
        None => {
            apply(&mut config, &cli.run.pipeline, cli.run.no_promisc)?;
            let again = reconfigure(cli.run.pipeline.clone(), cli.run.no_promisc);
            live::run(config, again)
        }
        Some(Command::Run(args)) => {
            let pipeline = args.pipeline.or(&cli.run.pipeline);
            let no_promisc = args.no_promisc || cli.run.no_promisc;
            apply(&mut config, &pipeline, no_promisc)?;
            let again = reconfigure(pipeline, no_promisc);
            live::run(config, again)
        }
        Some(Command::Replay(args)) => {
            apply(&mut config, &args.pipeline.clone().or(&cli.run.pipeline), false)?;
            replay::run(config, &args)
        }
        Some(Command::CheckConfig(args)) => {
            let pipeline = args.run.pipeline.or(&cli.run.pipeline);
            apply(&mut config, &pipeline, args.run.no_promisc || cli.run.no_promisc)?;
            check_plugin_dir(&config)?;
            match &path {
                Some(p) => println!("# configuration file: {}", p.display()),
                None => println!("# no configuration file found: built-in defaults"),
            }
            let kernel = crate::capture::filter::expression(
                config.capture.mode,
                config.capture.client_rtt,
                config.capture.filter.as_deref(),
            );
            println!("# kernel capture filter: {kernel}");
            print!("{}", config.to_toml());
            Ok(())
        }
        Some(Command::Trace(args)) => trace::run(&config, &args),
        Some(Command::Plugins(command)) => {
            apply(&mut config, &cli.run.pipeline, cli.run.no_promisc)?;
            plugins::main(config, command)
        }
    }
}

/// Reads the configuration again (for a reload).
pub type Reconfigure = Box<dyn Fn() -> anyhow::Result<Config> + Send>;

/// The plugin chain for the output thread, and what a reload needs.
struct PluginStart {
    stage: Box<dyn Stage>,
    plugins: Plugins,
    swap: std::sync::mpsc::Sender<crate::plugin::Chain>,
    metrics: Registry,
}

/// A plugin directory others could write is a configuration error (exit
/// 78), unless `plugins.strict_permissions = false`.
fn check_plugin_dir(config: &Config) -> anyhow::Result<()> {
    if config.plugins.strict_permissions {
        crate::plugin::permissions::check_dir(&config.plugins.dir)
            .map_err(|e| anyhow::Error::new(net_gazer_common::exit::ConfigProblem(e.to_string())))?;
    }
    Ok(())
}

/// Loads the plugins now; a plugin directory others could write stops the
/// start (a configuration error: exit 78), unless
/// `plugins.strict_permissions = false`.
fn start_plugins(config: &Config) -> anyhow::Result<PluginStart> {
    check_plugin_dir(config)?;
    let registry = Registry::default();
    let mut plugins = Plugins::new(registry.clone());
    let chain = plugins.load(&config.plugins);
    let (stage, swap) = ChainStage::new(chain);
    Ok(PluginStart {
        stage: Box::new(stage),
        plugins,
        swap,
        metrics: registry,
    })
}

/// The outputs on their thread and the pipeline feeding them, as both
/// drivers use them.
fn start_pipeline(
    config: &Config,
    local: LocalNetworks,
    filter: Option<ReplayFilter>,
    policy: Backpressure,
    stage: Box<dyn Stage>,
) -> anyhow::Result<(Pipeline, OutputThread)> {
    let mut outputs = vec![Box::new(JsonLines::open(&config.output.jsonl)?) as Box<dyn Output>];
    let mut delivery = Vec::new();
    if let Some(c) = &config.output.collector {
        tracing::info!(url = %c.url, spool = %c.spool_dir.display(), "delivering to a collector");
    }
    if let Some(n) = &config.output.nats {
        tracing::info!(servers = ?n.connection.servers, subject = %n.subject(&config.sensor.id()), spool = %n.spool_dir.display(), "delivering to NATS");
    }
    let deliveries = DeliveryOutput::open(
        config.output.collector.as_ref(),
        config.output.nats.as_ref(),
        config.sensor.id(),
    )
    .context("starting delivery")?;
    if let Some(out) = deliveries {
        delivery = out.stats();
        outputs.push(Box::new(out));
    }
    let (queue, thread) = EventQueue::spawn(outputs, stage, config.output.queue_size, policy);
    let tracker = Tracker::new(config.track_config(), local);
    let mut pipeline = Pipeline::new(tracker, queue, filter, config.interest());
    pipeline.set_delivery_stats(delivery);
    Ok((pipeline, thread))
}

/// The connection table is reserved whole at start: a `max_connections`
/// within its range can still ask for more than a small gateway has, and an
/// allocation that fails aborts. Refused here instead, as a configuration
/// error naming the numbers, when it would take over half the memory.
fn check_memory(config: &Config) -> anyhow::Result<()> {
    let Some(total) = memory_total() else { return Ok(()) };
    match table_too_large(config.track.max_connections, total) {
        None => Ok(()),
        Some(message) => Err(anyhow::Error::new(net_gazer_common::config_file::Invalid {
            key: Some("track.max_connections".into()),
            line: None,
            message,
        })),
    }
}

/// Why a table of `max_connections` entries does not fit in `total`
/// bytes of memory with room to spare.
fn table_too_large(max_connections: usize, total: u64) -> Option<String> {
    let table = Tracker::table_bytes(max_connections);
    (table > total / 2).then(|| {
        format!(
            "{max_connections} entries reserve {} MiB for the connection table, more than half of this machine's {} MiB",
            table >> 20,
            total >> 20
        )
    })
}

/// `MemTotal` of /proc/meminfo, in bytes.
fn memory_total() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let kb: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kb.saturating_mul(1024))
}

/// After a stop: what did not reach the outputs within `stop_timeout`,
/// loudly (a warning with the numbers; the collector output left its
/// batches in the spool for the next start).
fn report_stop(stats: &crate::event::Stats, report: &crate::output::OutputReport, stop_timeout: std::time::Duration) {
    if report.abandoned > 0 || report.stuck {
        tracing::warn!(
            not_written = report.abandoned,
            stuck = report.stuck,
            stop_timeout = %net_gazer_common::duration::format_duration(stop_timeout),
            "stop_timeout reached: events pending for the plugins and outputs were not written"
        );
    }
    if stats.queue_drops > 0 {
        tracing::warn!(
            queue_drops = stats.queue_drops,
            "events were dropped during the run: the output queue was full (docs/operations.md, \"Dropped events\")"
        );
    }
}

/// Command-line and environment settings override the file's.
fn apply(config: &mut Config, args: &PipelineArgs, no_promisc: bool) -> anyhow::Result<()> {
    if let Some(mode) = args.mode {
        config.capture.mode = mode.into();
    }
    if let Some(filter) = &args.filter {
        config.capture.filter = Some(filter.clone());
    }
    if !args.local_networks.is_empty() {
        config.track.local_networks = args.local_networks.clone();
    }
    if let Some(output) = &args.output {
        config.output.jsonl = output.clone();
    }
    if args.vlan_in_key {
        config.track.vlan_in_key = true;
    }
    if no_promisc {
        config.capture.promiscuous = false;
    }
    if let Some(dir) = &args.plugin_dir {
        config.plugins.dir = dir.clone();
    }
    config
        .validate()
        .map_err(anyhow::Error::new)
        .context("invalid settings from the command line or environment")?;
    check_memory(config)?;
    if let Some(op) = config.capture.filter.as_deref().filter(|f| !f.trim().is_empty()) {
        crate::capture::filter::check(config.capture.mode, config.capture.client_rtt, op).map_err(|e| {
            anyhow::Error::new(net_gazer_common::config_file::Invalid {
                key: Some("capture.filter".into()),
                line: None,
                message: e.to_string(),
            })
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_table_larger_than_half_the_memory_is_refused_with_the_numbers() {
        let gib = 1u64 << 30;
        assert_eq!(
            table_too_large(200_000, 2 * gib),
            None,
            "the default fits a small gateway"
        );
        let e = table_too_large(10_000_000, 2 * gib).expect("10 M entries do not fit in 2 GiB");
        assert!(
            e.starts_with("10000000 entries reserve ") && e.ends_with("half of this machine's 2048 MiB"),
            "{e}"
        );
        assert!(memory_total().is_some_and(|t| t > 0), "/proc/meminfo read");
    }
}
