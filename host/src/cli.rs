//! Command-line interface (clap). Kept in the library so man pages and
//! shell completions can be generated from the same definitions.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use ipnet::IpNet;

use crate::track::Mode;

/// The exit statuses, in `--help` and the man pages (docs/operations.md).
pub const EXIT_STATUS: &str = "Exit status: 0 on success (a stop by SIGTERM or Ctrl-C included); \
    1 on a failure (an interface that is gone, an output that failed); 64 (EX_USAGE) when the command line \
    is wrong; 78 (EX_CONFIG) when the configuration is wrong (a key, a value out of range, a capture filter \
    that does not compile, a plugin directory others can write) - the systemd unit does not restart on 78.";

#[derive(Debug, Parser)]
#[command(
    name = "net-gazer",
    version,
    about = "network connection capture and analysis daemon",
    long_about = "network connection capture and analysis daemon\n\n\
        Watches TCP handshakes on an interface (or in capture files) and reports each connection \
        attempt with its RTTs, SYN retransmissions and outcome, per-flow quality, and inbound scans, \
        as JSON lines. Every event first passes through the WebAssembly plugins of the plugin \
        directory (/etc/net-gazer/plugins), which may drop or tag it; SIGHUP reloads them. \
        Without a subcommand it runs the live sensor (`net-gazer run`).",
    after_long_help = EXIT_STATUS
)]
pub struct Cli {
    /// Interface to capture on [default: the first that is up, not loopback, with an address]
    #[arg(short, long, env = "NG_IFACE", global = true)]
    pub iface: Option<String>,

    /// Configuration file [default: ./etc/net-gazer/net-gazer.toml, then /usr/local/etc/…, then /etc/…]
    #[arg(short, long, env = "NG_CONFIG", global = true)]
    pub config: Option<PathBuf>,

    /// More log output: -v info, -vv debug, -vvv trace (default: warnings; RUST_LOG overrides)
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,

    #[command(subcommand)]
    pub command: Option<Command>,

    #[command(flatten)]
    pub run: RunArgs,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Capture on an interface and report events (the default)
    Run(RunArgs),
    /// Run the same pipeline over pcap or pcap-ng files
    Replay(ReplayArgs),
    /// Validate the configuration and print the effective settings
    CheckConfig(CheckArgs),
    /// Inspect plugins: what would load, or whether a file is a valid plugin
    #[command(subcommand)]
    Plugins(PluginsCommand),
    /// Trace the route to a host now and print a report (or JSON), with the
    /// daemon's engine: every TTL probed at once, Paris-style by default
    Trace(TraceArgs),
}

/// `--protocol`'s values with their help (the core's enum knows no clap).
fn protocol_parser() -> impl clap::builder::TypedValueParser<Value = crate::trace::Protocol> {
    use clap::builder::{PossibleValue, PossibleValuesParser, TypedValueParser};
    PossibleValuesParser::new([
        PossibleValue::new("icmp").help("ICMP echo requests (ICMPv6 for IPv6)"),
        PossibleValue::new("udp").help("UDP to a closed port (33434 by default): answered by \"port unreachable\""),
        PossibleValue::new("tcp").help(
            "TCP SYN to a port (the service's): answered by SYN-ACK or RST; gets through firewalls that let the service in",
        ),
    ])
    .try_map(|s| s.parse::<crate::trace::Protocol>())
}

#[derive(Debug, Args, Clone)]
pub struct TraceArgs {
    /// Host name or address to trace
    #[arg(value_name = "HOST")]
    pub host: String,
    /// Probe protocol
    #[arg(short, long, default_value = "tcp", value_parser = protocol_parser())]
    pub protocol: crate::trace::Protocol,
    /// Destination port (TCP default 80, UDP default 33434)
    #[arg(long)]
    pub port: Option<u16>,
    /// Use IPv6 (resolve HOST to an IPv6 address)
    #[arg(short = '6', long = "ipv6")]
    pub ipv6: bool,
    /// Use IPv4 (resolve HOST to an IPv4 address)
    #[arg(short = '4', long = "ipv4", conflicts_with = "ipv6")]
    pub ipv4: bool,
    /// Vary ports per probe as classic traceroute does, instead of Paris-style
    #[arg(long)]
    pub classic: bool,
    /// Probes per hop [default: trace.probes]
    #[arg(short = 'q', long)]
    pub probes: Option<u8>,
    /// Largest TTL [default: trace.max_ttl]
    #[arg(short = 'm', long)]
    pub max_ttl: Option<u8>,
    /// First TTL [default: trace.first_ttl]
    #[arg(short = 'f', long)]
    pub first_ttl: Option<u8>,
    /// Per-probe timeout, e.g. 500ms or 2s [default: trace.timeout]
    #[arg(short = 'w', long, value_parser = net_gazer_common::duration::parse_duration)]
    pub timeout: Option<std::time::Duration>,
    /// Probes per second [default: trace.rate]
    #[arg(long)]
    pub rate: Option<u32>,
    /// Trace this many times in a row (one report each)
    #[arg(long, default_value_t = 1)]
    pub count: u32,
    /// Print the route event as JSON (one line per trace) instead of a report
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum PluginsCommand {
    /// Every plugin of the plugin directory, in chain order, with versions
    /// and grants, and why any would be refused
    List(PluginsListArgs),
    /// Validate one file: print its name, version, contract version and the
    /// events it wants; exit non-zero if it would be refused
    Check(PluginsCheckArgs),
    /// Run the events of a small capture through one plugin, started with
    /// its [plugins.<name>] table, and print each event's verdict and the
    /// tags it added
    Test(PluginsTestArgs),
}

#[derive(Debug, Args, Clone)]
pub struct PluginsTestArgs {
    /// The .wasm file
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// A capture (pcap or pcapng, at most 64 MiB), e.g. plugins/sample.pcap
    /// of the repository
    #[arg(value_name = "CAPTURE")]
    pub capture: PathBuf,
}

#[derive(Debug, Args, Clone, Default)]
pub struct PluginsListArgs {
    /// Plugin directory instead of the configured one
    #[arg(long, env = "NG_PLUGIN_DIR")]
    pub plugin_dir: Option<PathBuf>,
}

#[derive(Debug, Args, Clone)]
pub struct PluginsCheckArgs {
    /// The .wasm file
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// Also start it with its `[plugins.<name>]` table (name: file name
    /// without .wasm) and report whether init accepts it
    #[arg(long)]
    pub init: bool,
}

/// Settings shared by `run` and `replay`; each overrides the file.
#[derive(Debug, Args, Default, Clone)]
pub struct PipelineArgs {
    /// What to track: handshakes only, or per-flow quality too (all TCP)
    #[arg(short, long, env = "NG_MODE", value_enum)]
    pub mode: Option<ModeArg>,

    /// Extra capture filter in tcpdump syntax, e.g. "not port 22"
    #[arg(short, long, env = "NG_FILTER")]
    pub filter: Option<String>,

    /// Local network (repeatable or comma-separated); decides direction and scans
    #[arg(short = 'l', long = "local-net", env = "NG_LOCAL_NETS", value_delimiter = ',')]
    pub local_networks: Vec<IpNet>,

    /// Where to write JSON lines: "-" for standard output, or a file
    #[arg(short, long, env = "NG_OUTPUT")]
    pub output: Option<String>,

    /// Tell connections apart by VLAN too
    #[arg(long, env = "NG_VLAN_IN_KEY", value_parser = clap::builder::BoolishValueParser::new())]
    pub vlan_in_key: bool,

    /// Plugin directory (every *.wasm in it is loaded, SIGHUP reloads)
    #[arg(long, env = "NG_PLUGIN_DIR")]
    pub plugin_dir: Option<PathBuf>,
}

impl PipelineArgs {
    /// These settings, completed by `outer` (given before the subcommand:
    /// `net-gazer -m quality replay f.pcap` means what `replay -m quality`
    /// does); the subcommand's own flags win.
    pub fn or(mut self, outer: &PipelineArgs) -> PipelineArgs {
        self.mode = self.mode.or(outer.mode);
        self.filter = self.filter.or_else(|| outer.filter.clone());
        if self.local_networks.is_empty() {
            self.local_networks = outer.local_networks.clone();
        }
        self.output = self.output.or_else(|| outer.output.clone());
        self.vlan_in_key |= outer.vlan_in_key;
        self.plugin_dir = self.plugin_dir.or_else(|| outer.plugin_dir.clone());
        self
    }
}

#[derive(Debug, Args, Default, Clone)]
pub struct RunArgs {
    #[command(flatten)]
    pub pipeline: PipelineArgs,

    /// Do not put the interface in promiscuous mode
    #[arg(long, env = "NG_NO_PROMISC", value_parser = clap::builder::BoolishValueParser::new())]
    pub no_promisc: bool,
}

#[derive(Debug, Args, Clone)]
pub struct ReplayArgs {
    /// Capture files (pcap or pcap-ng, recognised by content), read in order
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,

    #[command(flatten)]
    pub pipeline: PipelineArgs,

    /// No progress bar even on a terminal
    #[arg(long)]
    pub no_progress: bool,

    /// Print the end-of-run summary as JSON on standard error
    #[arg(long)]
    pub summary_json: bool,
}

/// `check-config` takes the same overrides as `run`, so it prints what
/// `run` would use.
#[derive(Debug, Args, Clone, Default)]
pub struct CheckArgs {
    #[command(flatten)]
    pub run: RunArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ModeArg {
    Handshake,
    Quality,
}

impl From<ModeArg> for Mode {
    fn from(m: ModeArg) -> Mode {
        match m {
            ModeArg::Handshake => Mode::Handshake,
            ModeArg::Quality => Mode::Quality,
        }
    }
}
