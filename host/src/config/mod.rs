//! Configuration: the TOML file, merged with command-line and environment
//! overrides, validated into one [`Config`] that is split into per-stage
//! settings.
//!
//! Every default lives in [`defaults`]. Unknown keys and bad values are
//! errors that name the file, the key and the line.

pub mod defaults;

use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnet::IpNet;
use net_gazer_common::config_file::{self, find_key, find_table};
pub use net_gazer_common::config_file::{ConfigError, Invalid};
/// Durations as `"30s"`, `"250ms"`, `"5m"`.
use net_gazer_common::duration::serde as duration;
use net_gazer_common::range::{self, Bounded};
use serde::{Deserialize, Serialize};

use crate::track::{LocalNetworks, Mode, ScanConfig, TrackConfig};

/// Where the configuration file is looked for when `-c` is not given.
pub const SEARCH_PATH: [&str; 3] = [
    "./etc/net-gazer/net-gazer.toml",
    "/usr/local/etc/net-gazer/net-gazer.toml",
    "/etc/net-gazer/net-gazer.toml",
];

#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub capture: CaptureSection,
    pub track: TrackSection,
    pub scan: ScanSection,
    pub output: OutputSection,
    pub plugins: PluginsSection,
    pub trace: TraceSection,
    pub sensor: SensorSection,
    pub metrics: MetricsSection,
}

/// `[metrics]`: the Prometheus endpoint of `net-gazer run`.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsSection {
    /// Address and port of `GET /metrics`; unset: no endpoint. Keep it on
    /// loopback (or a management network): it has no authentication.
    pub listen: Option<std::net::SocketAddr>,
}

/// `[sensor]`: who this sensor is to a collector.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct SensorSection {
    /// The sensor's id; empty: the host name.
    pub id: Option<String>,
}

impl SensorSection {
    /// The configured id, else the host name, else `sensor`.
    pub fn id(&self) -> String {
        self.id.clone().filter(|s| !s.is_empty()).unwrap_or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .map(|h| h.trim().to_string())
                .ok()
                .filter(|h| !h.is_empty())
                .unwrap_or_else(|| "sensor".into())
        })
    }
}

/// `[output.collector]`: delivery to a net-gazer-collector.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CollectorSection {
    /// The collector's base URL, e.g. `http://collector.example:8080`.
    pub url: String,
    /// This sensor's bearer token (the collector's `[sensors.<id>] token`).
    pub token: String,
    /// Events per batch at most.
    #[serde(default = "defaults::collector_batch_size")]
    pub batch_size: usize,
    /// A batch is closed after this long even when not full.
    #[serde(default = "defaults::collector_batch_interval", with = "duration")]
    pub batch_interval: Duration,
    /// Batches wait here until the collector stored them.
    #[serde(default = "defaults::collector_spool_dir")]
    pub spool_dir: PathBuf,
    /// Beyond this, the oldest batches are dropped (and counted).
    #[serde(default = "defaults::collector_spool_max_mb")]
    pub spool_max_mb: u64,
    /// Events the collector refused for good are kept in
    /// `spool_dir/dead-letter.jsonl`, up to this size (then rotated once).
    #[serde(default = "defaults::collector_dead_letter_max_mb")]
    pub dead_letter_max_mb: u64,
    /// Per request.
    #[serde(default = "defaults::collector_timeout", with = "duration")]
    pub timeout: Duration,
}

/// `[output.nats]`: delivery to a NATS JetStream stream (docs/fleet.md),
/// the connection keys of [`net_gazer_common::nats::Connection`] besides
/// these.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
pub struct NatsSection {
    #[serde(flatten)]
    pub connection: net_gazer_common::nats::Connection,
    /// Batches are published to `<subject_prefix>.<sensor id>`.
    #[serde(default = "defaults::nats_subject_prefix")]
    pub subject_prefix: String,
    /// Events per batch (one message) at most.
    #[serde(default = "defaults::collector_batch_size")]
    pub batch_size: usize,
    #[serde(default = "defaults::collector_batch_interval", with = "duration")]
    pub batch_interval: Duration,
    /// Batches wait here until JetStream acknowledged them.
    #[serde(default = "defaults::nats_spool_dir")]
    pub spool_dir: PathBuf,
    #[serde(default = "defaults::collector_spool_max_mb")]
    pub spool_max_mb: u64,
    /// An event that can never be published (alone larger than the
    /// servers' `max_payload`) is kept in `spool_dir/dead-letter.jsonl`.
    #[serde(default = "defaults::collector_dead_letter_max_mb")]
    pub dead_letter_max_mb: u64,
    /// How long a publication may wait for JetStream's acknowledgement.
    #[serde(default = "defaults::collector_timeout", with = "duration")]
    pub timeout: Duration,
    /// Keys no field took (the connection is flattened, so serde cannot
    /// refuse them itself): refused by [`Config::validate`].
    #[serde(flatten, skip_serializing)]
    pub unknown: std::collections::BTreeMap<String, toml::Value>,
}

impl NatsSection {
    /// The subject this sensor publishes to.
    pub fn subject(&self, sensor: &str) -> String {
        format!("{}.{sensor}", self.subject_prefix)
    }
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct CaptureSection {
    /// Interface to capture on; empty: the first one that is up, not
    /// loopback, and has an address.
    pub interface: Option<String>,
    pub mode: Mode,
    /// Operator filter in tcpdump syntax, combined with the mode's filter.
    pub filter: Option<String>,
    pub promiscuous: bool,
    pub snaplen: u32,
    pub buffer_mb: u32,
    /// Handshake mode: also pass payload-free ACKs to measure SYN-ACK→ACK.
    pub client_rtt: bool,
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct TrackSection {
    /// Local networks; empty: the capture interface's (replay: private ranges).
    pub local_networks: Vec<IpNet>,
    pub vlan_in_key: bool,
    #[serde(with = "duration")]
    pub unanswered_timeout: Duration,
    #[serde(with = "duration")]
    pub ack_timeout: Duration,
    #[serde(with = "duration")]
    pub reorder_window: Duration,
    #[serde(with = "duration")]
    pub duplicate_window: Duration,
    #[serde(with = "duration")]
    pub linger: Duration,
    #[serde(with = "duration")]
    pub flow_idle_timeout: Duration,
    pub max_connections: usize,
    pub max_orphans: usize,
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ScanSection {
    pub enabled: bool,
    #[serde(with = "duration")]
    pub window: Duration,
    pub port_threshold: u32,
    pub host_threshold: u32,
    pub max_sources: usize,
    pub max_listed: usize,
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct OutputSection {
    /// JSON lines: `-` for standard output, else a file appended to.
    pub jsonl: String,
    #[serde(with = "duration")]
    pub stats_interval: Duration,
    /// Events waiting for the output thread; beyond it they are dropped
    /// and counted (live capture never waits for an output).
    pub queue_size: usize,
    /// At a stop, how long the events still pending may take to pass the
    /// plugins and reach the outputs; what is left then is counted and
    /// logged.
    #[serde(with = "duration")]
    pub stop_timeout: Duration,
    /// Events dropped from a full queue are logged (WARN) at most once per
    /// this interval, with the count since the last line.
    #[serde(with = "duration")]
    pub drop_log_interval: Duration,
    /// Delivery to a collector, when set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub collector: Option<CollectorSection>,
    /// Delivery to NATS JetStream, when set (beside or instead of the
    /// collector).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nats: Option<NatsSection>,
}

/// `[trace]`: traceroutes of the remote ends of handshakes (live only).
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct TraceSection {
    pub enabled: bool,
    /// `auto`: TCP SYN to the connection's service port (ICMP towards the
    /// remote client of an inbound connection); or `icmp`, `udp`, `tcp`.
    pub protocol: TraceProtocol,
    /// `paris` (one path per trace through load balancers) or `classic`.
    pub style: net_gazer_core::trace::Style,
    pub first_ttl: u8,
    pub max_ttl: u8,
    /// Probes per TTL (1 to 15).
    pub probes: u8,
    /// Paths are assumed this long when nothing better is known: the
    /// retries of these TTLs leave with the first attempts (a handshake's
    /// hop-count guess, plus one, takes its place).
    pub assume_hops: u8,
    /// How long each probe's answer is waited for.
    #[serde(with = "duration")]
    pub timeout: Duration,
    /// Probes per second, all traces together.
    pub rate: u32,
    /// Probes that may leave at once.
    pub burst: u32,
    /// Traces running at once; more wait.
    pub max_concurrent: usize,
    /// A destination is traced again after this long (and a different path
    /// is reported as changed).
    #[serde(with = "duration")]
    pub cache_for: Duration,
    /// Destinations remembered at most.
    pub max_cached: usize,
    /// Destinations never traced.
    pub exclude: Vec<IpNet>,
    /// Trace the servers of internal connections too.
    pub internal: bool,
}

#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum TraceProtocol {
    #[default]
    Auto,
    Icmp,
    Udp,
    Tcp,
}

impl TraceSection {
    pub fn engine(&self) -> net_gazer_core::trace::engine::Settings {
        net_gazer_core::trace::engine::Settings {
            first_ttl: self.first_ttl,
            max_ttl: self.max_ttl,
            probes_per_hop: self.probes,
            timeout: self.timeout,
            rate: self.rate,
            burst: self.burst,
            max_concurrent: self.max_concurrent,
            style: self.style,
            assume_hops: self.assume_hops,
            // Not configurable: the engine's own default.
            ..net_gazer_core::trace::engine::Settings::default()
        }
    }

    pub fn trigger(&self) -> net_gazer_core::trace::trigger::TriggerSettings {
        use net_gazer_core::trace::Protocol;
        net_gazer_core::trace::trigger::TriggerSettings {
            cache_for: self.cache_for,
            max_cached: self.max_cached,
            exclude: self.exclude.clone(),
            internal: self.internal,
            protocol: match self.protocol {
                TraceProtocol::Auto => None,
                TraceProtocol::Icmp => Some(Protocol::Icmp),
                TraceProtocol::Udp => Some(Protocol::Udp),
                TraceProtocol::Tcp => Some(Protocol::Tcp),
            },
        }
    }
}

/// `[plugins]`: where plugins come from and the limits every plugin gets;
/// `[plugins.<name>]` tables (name = the file name without `.wasm`) hold one
/// plugin's grants, limits and its own settings.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(default)]
pub struct PluginsSection {
    /// Every `*.wasm` here is a plugin.
    pub dir: PathBuf,
    /// Plugins in this order first (by name), the rest by file name.
    pub order: Vec<String>,
    /// Compiled plugins, keyed by content and engine; only the daemon may
    /// write here.
    pub cache_dir: PathBuf,
    /// Per call into a plugin, unless its table says otherwise.
    pub timeout_ms: u64,
    /// Per linear memory of a plugin, unless its table says otherwise.
    pub memory_mb: u64,
    /// This many failures (trap, timeout, memory, a refused result, `init`
    /// refusing at a restart) within `failure_window` disable a plugin, for
    /// 10 s, doubling up to 10 min each time again.
    pub max_failures: u32,
    #[serde(with = "duration")]
    pub failure_window: Duration,
    /// Refuse a plugin directory (or a directory above it, or a plugin
    /// file) that someone other than root or the sensor's user could write.
    pub strict_permissions: bool,
    /// `[plugins.<name>]` tables.
    #[serde(flatten, deserialize_with = "plugin_tables")]
    pub each: std::collections::BTreeMap<String, PluginSettings>,
}

/// Every other key under `[plugins]` must be a plugin's table; a scalar is
/// most likely a misspelt setting, and the error says so.
fn plugin_tables<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<std::collections::BTreeMap<String, PluginSettings>, D::Error> {
    use serde::de::Error;
    let raw = std::collections::BTreeMap::<String, toml::Value>::deserialize(d)?;
    raw.into_iter()
        .map(|(name, value)| {
            if !value.is_table() {
                return Err(D::Error::custom(format!(
                    "unknown key `plugins.{name}` (the settings of [plugins] are dir, order, cache_dir, timeout_ms, memory_mb, max_failures, failure_window, strict_permissions; a plugin's own go in a [plugins.{name}] table)"
                )));
            }
            let settings = PluginSettings::deserialize(value).map_err(|e| D::Error::custom(format!("[plugins.{name}]: {e}")))?;
            Ok((name, settings))
        })
        .collect()
}

/// One plugin's table. Keys other than these are the plugin's own settings,
/// handed to its `init` as JSON (with `dirs` and `http_allow`).
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(default)]
pub struct PluginSettings {
    pub enabled: Option<bool>,
    /// Directories the plugin may read (read-only, at the same path).
    pub dirs: Vec<PathBuf>,
    /// `host:port` (or `host`, any port) the plugin may send HTTP requests to.
    pub http_allow: Vec<String>,
    pub timeout_ms: Option<u64>,
    pub memory_mb: Option<u64>,
    /// When the plugin fails on an event or is disabled: `pass` the event on
    /// (default) or `drop` it.
    pub on_error: Option<OnError>,
    pub max_failures: Option<u32>,
    /// Call the plugin's `batch` (true) or its per-event functions (false);
    /// unset: what the plugin asks for.
    pub batch: Option<bool>,
    /// `filter` (in the chain, its verdicts count) or `exporter` (the
    /// events that passed the chain, on a thread of its own with a bounded
    /// queue, verdicts ignored); unset: what the plugin says (contract 0.3)
    /// or `filter`.
    pub role: Option<Role>,
    #[serde(flatten)]
    pub options: toml::Table,
}

impl std::fmt::Display for OnError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            OnError::Pass => "pass",
            OnError::Drop => "drop",
        })
    }
}

/// What a plugin is for.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    #[default]
    Filter,
    Exporter,
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Role::Filter => "filter",
            Role::Exporter => "exporter",
        })
    }
}

#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum OnError {
    /// Fail open: the event goes on as if the plugin had kept it.
    #[default]
    Pass,
    /// Fail closed: the event is dropped.
    Drop,
}

impl PluginSettings {
    /// The table `init` receives: the plugin's own keys and its grants,
    /// with `dirs` as granted (canonical paths).
    pub fn plugin_json(&self, granted_dirs: &[PathBuf]) -> String {
        let mut table = self.options.clone();
        let strings = |v: &[String]| toml::Value::Array(v.iter().cloned().map(toml::Value::String).collect());
        let dirs: Vec<String> = granted_dirs.iter().map(|d| d.display().to_string()).collect();
        table.insert("dirs".into(), strings(&dirs));
        table.insert("http_allow".into(), strings(&self.http_allow));
        serde_json::to_string(&table).unwrap_or_else(|_| "{}".into())
    }
}

/// The upper bounds of the plugin settings, the same for `[plugins]` and
/// each plugin's own table.
const PLUGIN_TIMEOUT_MS: u128 = 60_000;
const PLUGIN_MEMORY_MB: u128 = 4096;
const PLUGIN_FAILURES: u128 = 1000;

impl Config {
    /// Loads `path`, or the first file of [`SEARCH_PATH`] that exists, or
    /// the defaults when none does. Returns the file used.
    pub fn load(path: Option<&Path>) -> Result<(Config, Option<PathBuf>), ConfigError> {
        config_file::load(path, &SEARCH_PATH, Config::parse)
    }

    /// Parses and validates TOML text.
    pub fn parse(text: &str) -> Result<Config, Invalid> {
        let config: Config = toml::from_str(text).map_err(|e| {
            let message = e.message().to_string();
            // Plugin tables are read through a map, which loses the span:
            // the message names the key, find it in the text.
            if let Some(key) = plugin_key_in(&message) {
                let line = find_key(text, &key).or_else(|| find_table(text, &key));
                return Invalid {
                    key: Some(key),
                    line,
                    message,
                };
            }
            config_file::toml_problem(text, &e)
        })?;
        config.validate().map_err(|mut e| {
            e.line = e
                .key
                .as_deref()
                .and_then(|k| find_key(text, k).or_else(|| find_table(text, k)));
            e
        })?;
        Ok(config)
    }

    /// Every numeric key with its accepted range: `check-config` and the
    /// start refuse a value outside it (docs/configuration.md lists the
    /// same; a test holds them equal). The ranges keep every value clear
    /// of overflow (a deadline computed from a duration) and of
    /// allocations the machine cannot make (tables sized from a count).
    pub fn bounds(&self) -> Vec<Bounded> {
        use range::{count, time};
        let ms = Duration::from_millis;
        let s = Duration::from_secs;
        const DAY: u64 = 86_400;
        let (c, t, sc, o, p, tr) = (
            &self.capture,
            &self.track,
            &self.scan,
            &self.output,
            &self.plugins,
            &self.trace,
        );
        let mut list = vec![
            count("capture.snaplen", c.snaplen, 128, 262_144),
            count("capture.buffer_mb", c.buffer_mb, 1, 4096),
            time("track.unanswered_timeout", t.unanswered_timeout, ms(100), s(3600)),
            time("track.ack_timeout", t.ack_timeout, ms(0), s(3600)),
            time("track.reorder_window", t.reorder_window, ms(0), s(60)),
            time("track.duplicate_window", t.duplicate_window, ms(0), s(10)),
            time("track.linger", t.linger, ms(0), s(DAY)),
            time("track.flow_idle_timeout", t.flow_idle_timeout, s(1), s(7 * DAY)),
            count("track.max_connections", t.max_connections as u64, 1, 10_000_000),
            count("track.max_orphans", t.max_orphans as u64, 0, 1_000_000),
            time("scan.window", sc.window, s(1), s(DAY)),
            count("scan.port_threshold", sc.port_threshold, 1, 65_535),
            count("scan.host_threshold", sc.host_threshold, 1, 16_777_216),
            count("scan.max_sources", sc.max_sources as u64, 1, 10_000_000),
            count("scan.max_listed", sc.max_listed as u64, 1, 1_000_000),
            time("output.stats_interval", o.stats_interval, s(1), s(DAY)),
            count("output.queue_size", o.queue_size as u64, 1, 10_000_000),
            time("output.stop_timeout", o.stop_timeout, ms(0), s(600)),
            time("output.drop_log_interval", o.drop_log_interval, s(1), s(DAY)),
            count("plugins.timeout_ms", p.timeout_ms, 1, PLUGIN_TIMEOUT_MS),
            count("plugins.memory_mb", p.memory_mb, 1, PLUGIN_MEMORY_MB),
            count("plugins.max_failures", p.max_failures, 1, PLUGIN_FAILURES),
            time("plugins.failure_window", p.failure_window, s(1), s(DAY)),
            count("trace.first_ttl", tr.first_ttl, 1, 255),
            count("trace.max_ttl", tr.max_ttl, 1, 255),
            count(
                "trace.probes",
                tr.probes,
                1,
                u128::from(net_gazer_core::trace::engine::MAX_PROBES_PER_HOP),
            ),
            count("trace.assume_hops", tr.assume_hops, 1, 255),
            time("trace.timeout", tr.timeout, ms(10), s(60)),
            count("trace.rate", tr.rate, 1, 1_000_000),
            count("trace.burst", tr.burst, 1, 100_000),
            count("trace.max_concurrent", tr.max_concurrent as u64, 1, 10_000),
            time("trace.cache_for", tr.cache_for, s(1), s(30 * DAY)),
            count("trace.max_cached", tr.max_cached as u64, 1, 10_000_000),
        ];
        if let Some(col) = &o.collector {
            list.extend([
                count("output.collector.batch_size", col.batch_size as u64, 1, 100_000),
                time("output.collector.batch_interval", col.batch_interval, ms(10), s(3600)),
                count("output.collector.spool_max_mb", col.spool_max_mb, 1, 1 << 20),
                count(
                    "output.collector.dead_letter_max_mb",
                    col.dead_letter_max_mb,
                    1,
                    1 << 20,
                ),
                time("output.collector.timeout", col.timeout, ms(100), s(600)),
            ]);
        }
        if let Some(n) = &o.nats {
            list.extend([
                count("output.nats.batch_size", n.batch_size as u64, 1, 100_000),
                time("output.nats.batch_interval", n.batch_interval, ms(10), s(3600)),
                count("output.nats.spool_max_mb", n.spool_max_mb, 1, 1 << 20),
                count("output.nats.dead_letter_max_mb", n.dead_letter_max_mb, 1, 1 << 20),
                time("output.nats.timeout", n.timeout, ms(100), s(600)),
            ]);
        }
        for (name, each) in &p.each {
            let key = |k: &str| format!("plugins.{name}.{k}");
            if let Some(v) = each.timeout_ms {
                list.push(count(key("timeout_ms"), v, 1, PLUGIN_TIMEOUT_MS));
            }
            if let Some(v) = each.memory_mb {
                list.push(count(key("memory_mb"), v, 1, PLUGIN_MEMORY_MB));
            }
            if let Some(v) = each.max_failures {
                list.push(count(key("max_failures"), v, 1, PLUGIN_FAILURES));
            }
        }
        list
    }

    /// Checks values that parse but make no sense.
    pub fn validate(&self) -> Result<(), Invalid> {
        let bad = |key: &str, message: &str| {
            Err(Invalid {
                key: Some(key.into()),
                line: None,
                message: message.into(),
            })
        };
        range::check_all(&self.bounds()).map_err(|(key, message)| Invalid {
            key: Some(key),
            line: None,
            message,
        })?;
        if self.scan.max_listed < self.scan.port_threshold.max(self.scan.host_threshold) as usize {
            return bad(
                "scan.max_listed",
                "must be at least the larger threshold, or no scan could be detected",
            );
        }
        if self.output.jsonl.trim().is_empty() {
            return bad(
                "output.jsonl",
                "must be `-` (standard output) or a file name, not empty",
            );
        }
        if let Some(c) = &self.output.collector {
            if !(c.url.starts_with("http://") || c.url.starts_with("https://")) {
                return bad("output.collector.url", "must start with http:// or https://");
            }
            if c.token.is_empty() {
                return bad("output.collector.token", "must not be empty");
            }
        }
        if let Some(n) = &self.output.nats {
            if let Some(key) = n.unknown.keys().next() {
                return bad(&format!("output.nats.{key}"), "unknown key");
            }
            if let Err((key, message)) = n.connection.check("output.nats") {
                return bad(&key, &message);
            }
            if !net_gazer_common::nats::is_subject(&n.subject_prefix) {
                return bad(
                    "output.nats.subject_prefix",
                    "must be a NATS subject: tokens joined by `.`, no wildcard or space",
                );
            }
            if !net_gazer_common::nats::is_subject_token(&self.sensor.id()) {
                return bad(
                    "sensor.id",
                    "with [output.nats], the sensor id is a token of the subject: set one without `.`, `*`, `>` or spaces (the host name is the default)",
                );
            }
            if self
                .output
                .collector
                .as_ref()
                .is_some_and(|c| c.spool_dir == n.spool_dir)
            {
                return bad(
                    "output.nats.spool_dir",
                    "must differ from output.collector.spool_dir (each delivery has its own spool)",
                );
            }
        }
        if self.trace.max_ttl < self.trace.first_ttl {
            return bad("trace.max_ttl", "must be at least trace.first_ttl");
        }
        for (name, each) in &self.plugins.each {
            let key = |k: &str| format!("plugins.{name}.{k}");
            // A plugin's own settings reach it as JSON; `check-config`
            // prints them back as TOML, which its reader would refuse
            // beyond a few dozen levels (found by fuzzing).
            if depth(&toml::Value::Table(each.options.clone())) > MAX_OPTION_DEPTH {
                return bad(
                    &format!("plugins.{name}"),
                    &format!("the plugin's settings nest deeper than {MAX_OPTION_DEPTH} tables or arrays"),
                );
            }
            for d in &each.dirs {
                if !d.is_absolute() {
                    return bad(&key("dirs"), &format!("`{}` must be an absolute path", d.display()));
                }
            }
            for h in &each.http_allow {
                if h.is_empty() || h.contains('/') || h.contains('@') {
                    return bad(&key("http_allow"), &format!("`{h}` must be `host:port` or `host`"));
                }
            }
        }
        Ok(())
    }

    /// The tracker's settings; `local` decided by the caller (interface
    /// networks, private ranges, or the configured list).
    pub fn track_config(&self) -> TrackConfig {
        let t = &self.track;
        TrackConfig {
            mode: self.capture.mode,
            vlan_in_key: t.vlan_in_key,
            unanswered_timeout: t.unanswered_timeout,
            ack_timeout: t.ack_timeout,
            reorder_window: t.reorder_window,
            duplicate_window: t.duplicate_window,
            linger: t.linger,
            flow_idle_timeout: t.flow_idle_timeout,
            max_connections: t.max_connections,
            max_orphans: t.max_orphans,
            scan: ScanConfig {
                enabled: self.scan.enabled,
                window: self.scan.window,
                port_threshold: self.scan.port_threshold,
                host_threshold: self.scan.host_threshold,
                max_sources: self.scan.max_sources,
                max_tracked: self.scan.max_listed,
            },
        }
    }

    /// The segments the tracker needs in this mode (the kernel filter's
    /// user-space twin, applied to replays too).
    pub fn interest(&self) -> crate::decode::Interest {
        crate::decode::Interest {
            all_tcp: self.capture.mode == Mode::Quality,
            pure_acks: self.capture.client_rtt,
        }
    }

    /// The configured local networks, if any.
    pub fn local_networks(&self) -> Option<LocalNetworks> {
        (!self.track.local_networks.is_empty()).then(|| LocalNetworks::new(self.track.local_networks.clone()))
    }

    /// The effective configuration as TOML (for `check-config`).
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_else(|e| format!("# cannot print the configuration: {e}\n"))
    }
}

/// How deep a plugin's own settings may nest tables and arrays.
const MAX_OPTION_DEPTH: usize = 16;

/// Tables and arrays nested in `v` (a scalar: 0).
fn depth(v: &toml::Value) -> usize {
    match v {
        toml::Value::Table(t) => 1 + t.values().map(depth).max().unwrap_or(0),
        toml::Value::Array(a) => 1 + a.iter().map(depth).max().unwrap_or(0),
        _ => 0,
    }
}

/// `plugins.x` from "unknown key `plugins.x` ..." or "[plugins.x]: ...".
fn plugin_key_in(message: &str) -> Option<String> {
    if let Some(rest) = message.split("`plugins.").nth(1) {
        return rest.split('`').next().map(|k| format!("plugins.{k}"));
    }
    let rest = message.strip_prefix("[plugins.")?;
    rest.split(']').next().map(|k| format!("plugins.{k}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_gives_defaults() {
        assert_eq!(Config::parse("").unwrap(), Config::default());
    }

    #[test]
    fn shipped_example_parses_and_equals_the_defaults() {
        let text = include_str!("../../../etc/net-gazer/net-gazer.toml");
        assert_eq!(Config::parse(text).unwrap(), Config::default());
    }

    #[test]
    fn unknown_key_names_key_and_line() {
        let e = Config::parse("[capture]\nmode = \"quality\"\npromisc = true\n").unwrap_err();
        assert_eq!(e.key.as_deref(), Some("capture.promisc"));
        assert_eq!(e.line, Some(3));
        assert!(e.message.contains("unknown field `promisc`"), "{}", e.message);
    }

    #[test]
    fn plugin_tables_are_checked_by_key() {
        let c = Config::parse(
            "[plugins]\ndir = \"/p\"\n[plugins.geoip]\ndirs = [\"/usr/share/GeoIP\"]\ncity_db = \"City.mmdb\"\non_error = \"drop\"\n",
        )
        .unwrap();
        let geo = &c.plugins.each["geoip"];
        assert_eq!(geo.on_error, Some(OnError::Drop));
        let json: serde_json::Value = serde_json::from_str(&geo.plugin_json(&geo.dirs)).unwrap();
        assert_eq!(json["city_db"], "City.mmdb");
        assert_eq!(json["dirs"][0], "/usr/share/GeoIP");
        assert!(json.get("on_error").is_none(), "host keys stay with the host: {json}");

        let e = Config::parse("[plugins]\ndir = \"/p\"\ntimeuot_ms = 5\n").unwrap_err();
        assert!(e.message.contains("unknown key `plugins.timeuot_ms`"), "{e}");
        assert_eq!((e.key.as_deref(), e.line), (Some("plugins.timeuot_ms"), Some(3)));
        let e = Config::parse("[capture]\n[plugins.filter]\ntimeout_ms = \"fast\"\n").unwrap_err();
        assert!(
            e.message.contains("[plugins.filter]") && e.message.contains("invalid type"),
            "{e}"
        );
        assert_eq!((e.key.as_deref(), e.line), (Some("plugins.filter"), Some(2)));
        let e = Config::parse("[plugins.filter]\ntimeout_ms = 0\n").unwrap_err();
        assert_eq!(e.key.as_deref(), Some("plugins.filter.timeout_ms"));
        assert_eq!(e.line, Some(2));
        let e = Config::parse("[plugins.geoip]\ndirs = [\"relative\"]\n").unwrap_err();
        assert!(e.message.contains("absolute"), "{e}");
    }

    #[test]
    fn bad_values_name_key_and_line() {
        let e = Config::parse("[track]\nunanswered_timeout = \"30\"\n").unwrap_err();
        assert_eq!((e.key.as_deref(), e.line), (Some("track.unanswered_timeout"), Some(2)));
        assert!(e.message.contains("missing unit"), "{}", e.message);
        let e = Config::parse("[capture]\nmode = \"fast\"\n").unwrap_err();
        assert_eq!((e.key.as_deref(), e.line), (Some("capture.mode"), Some(2)));
        let e = Config::parse("\n[scan]\nport_threshold = 0\n").unwrap_err();
        assert_eq!((e.key.as_deref(), e.line), (Some("scan.port_threshold"), Some(3)));
        let e = Config::parse("[track]\nlocal_networks = [\"10.0.0.0/33\"]\n").unwrap_err();
        assert_eq!(e.key.as_deref(), Some("track.local_networks"));
    }

    fn nats_section(text: &str) -> NatsSection {
        let c = Config::parse(text).unwrap_or_else(|e| panic!("{e}"));
        c.output.nats.expect("[output.nats]")
    }

    #[test]
    fn output_nats_names_what_is_wrong() {
        let n = nats_section("[sensor]\nid = \"gw1\"\n[output.nats]\nservers = [\"nats://a:4222\"]\n");
        assert_eq!(n.subject("gw1"), "net-gazer.events.gw1");
        assert_eq!(n.spool_dir, defaults::nats_spool_dir());
        for (text, key) in [
            (
                "[output.nats]\nservers = [\"nats://a:4222\"]\nsevrers = 1\n",
                "output.nats.sevrers",
            ),
            ("[output.nats]\nservers = []\n", "output.nats.servers"),
            ("[output.nats]\nservers = [\"http://a\"]\n", "output.nats.servers"),
            (
                "[output.nats]\nservers = [\"nats://a:1\"]\nuser = \"u\"\n",
                "output.nats.password",
            ),
            (
                "[output.nats]\nservers = [\"nats://a:1\"]\nsubject_prefix = \"a.*\"\n",
                "output.nats.subject_prefix",
            ),
            (
                "[sensor]\nid = \"gw1.example.net\"\n[output.nats]\nservers = [\"nats://a:1\"]\n",
                "sensor.id",
            ),
            (
                "[output.nats]\nservers = [\"nats://a:1\"]\nbatch_size = 0\n",
                "output.nats.batch_size",
            ),
        ] {
            let e = Config::parse(text).unwrap_err();
            assert_eq!(e.key.as_deref(), Some(key), "{text}: {e}");
        }
    }

    /// docs/configuration.md states the range of every numeric key.
    #[test]
    fn every_range_is_documented() {
        let mut c = Config::default();
        c.output.collector = Some(CollectorSection {
            url: "http://x".into(),
            token: "t".into(),
            batch_size: defaults::collector_batch_size(),
            batch_interval: defaults::collector_batch_interval(),
            spool_dir: defaults::collector_spool_dir(),
            spool_max_mb: defaults::collector_spool_max_mb(),
            dead_letter_max_mb: defaults::collector_dead_letter_max_mb(),
            timeout: defaults::collector_timeout(),
        });
        c.output.nats = Some(nats_section("[output.nats]\nservers = [\"nats://127.0.0.1:4222\"]\n"));
        c.plugins.each.insert(
            "p".into(),
            PluginSettings {
                timeout_ms: Some(5),
                memory_mb: Some(5),
                max_failures: Some(5),
                ..PluginSettings::default()
            },
        );
        let doc = include_str!("../../../docs/configuration.md");
        let missing = range::undocumented(&c.bounds(), doc);
        assert!(
            missing.is_empty(),
            "docs/configuration.md lacks the ranges of {missing:?}"
        );
    }

    /// The values the hardening issue found aborting at run time are
    /// refused by `check-config`, naming the key and the range.
    #[test]
    fn values_that_would_abort_at_run_time_are_refused() {
        for (text, key) in [
            ("[track]\nmax_connections = 4294967296\n", "track.max_connections"),
            ("[output]\nqueue_size = 9223372036854775807\n", "output.queue_size"),
            (
                "[output.collector]\nurl = \"http://x\"\ntoken = \"t\"\nspool_max_mb = 17592186044416\n",
                "output.collector.spool_max_mb",
            ),
            (
                "[output]\nstats_interval = \"9999999999999h\"\n",
                "output.stats_interval",
            ),
            ("[trace]\ncache_for = \"99999999999d\"\n", "trace.cache_for"),
            (
                "[plugins.x]\ntimeout_ms = 9223372036854775807\n",
                "plugins.x.timeout_ms",
            ),
            ("[output]\njsonl = \"\"\n", "output.jsonl"),
            ("[plugins.f]\nx = [[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]\n", "plugins.f"),
        ] {
            let e = Config::parse(text).unwrap_err();
            assert_eq!(e.key.as_deref(), Some(key), "{text}: {e}");
            assert!(e.line.is_some(), "{text}: the line is named: {e}");
        }
        let e = Config::parse("[track]\nmax_connections = 4294967296\n").unwrap_err();
        assert_eq!(e.message, "must be from 1 to 10000000, not 4294967296");
    }

    #[test]
    fn effective_config_round_trips() {
        let mut c = Config::default();
        c.capture.filter = Some("not port 22".into());
        c.track.local_networks = vec!["10.0.0.0/8".parse().unwrap()];
        assert_eq!(Config::parse(&c.to_toml()).unwrap(), c);
    }
}
