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
    /// Per request.
    #[serde(default = "defaults::collector_timeout", with = "duration")]
    pub timeout: Duration,
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
    /// Delivery to a collector, when set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub collector: Option<CollectorSection>,
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
    pub style: crate::trace::Style,
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
    pub fn engine(&self) -> crate::trace::engine::Settings {
        crate::trace::engine::Settings {
            first_ttl: self.first_ttl,
            max_ttl: self.max_ttl,
            probes_per_hop: self.probes,
            timeout: self.timeout,
            rate: self.rate,
            burst: self.burst,
            max_concurrent: self.max_concurrent,
            max_waiting: defaults::TRACE_MAX_WAITING,
            style: self.style,
            assume_hops: self.assume_hops,
        }
    }

    pub fn trigger(&self) -> crate::trace::trigger::TriggerSettings {
        use crate::trace::Protocol;
        crate::trace::trigger::TriggerSettings {
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
                    "unknown key `plugins.{name}` (the settings of [plugins] are dir, order, cache_dir, timeout_ms, memory_mb, max_failures, failure_window; a plugin's own go in a [plugins.{name}] table)"
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
            e.line = e.key.as_deref().and_then(|k| find_key(text, k));
            e
        })?;
        Ok(config)
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
        if self.capture.snaplen < 128 {
            return bad(
                "capture.snaplen",
                "must be at least 128 bytes to hold Ethernet, IP and TCP headers",
            );
        }
        if self.capture.buffer_mb == 0 {
            return bad("capture.buffer_mb", "must be at least 1");
        }
        if self.track.unanswered_timeout.is_zero() {
            return bad("track.unanswered_timeout", "must be longer than zero");
        }
        if self.track.max_connections == 0 {
            return bad("track.max_connections", "must be at least 1");
        }
        if self.scan.port_threshold == 0 || self.scan.host_threshold == 0 {
            let key = if self.scan.port_threshold == 0 {
                "scan.port_threshold"
            } else {
                "scan.host_threshold"
            };
            return bad(key, "must be at least 1");
        }
        if self.scan.window.is_zero() {
            return bad("scan.window", "must be longer than zero");
        }
        if self.scan.max_listed < self.scan.port_threshold.max(self.scan.host_threshold) as usize {
            return bad(
                "scan.max_listed",
                "must be at least the larger threshold, or no scan could be detected",
            );
        }
        if self.output.queue_size == 0 {
            return bad("output.queue_size", "must be at least 1");
        }
        if self.output.stats_interval.is_zero() {
            return bad("output.stats_interval", "must be longer than zero");
        }
        if let Some(c) = &self.output.collector {
            if !(c.url.starts_with("http://") || c.url.starts_with("https://")) {
                return bad("output.collector.url", "must start with http:// or https://");
            }
            if c.token.is_empty() {
                return bad("output.collector.token", "must not be empty");
            }
            if c.batch_size == 0 {
                return bad("output.collector.batch_size", "must be at least 1");
            }
            if c.spool_max_mb == 0 {
                return bad("output.collector.spool_max_mb", "must be at least 1");
            }
        }
        let t = &self.trace;
        if t.first_ttl == 0 {
            return bad("trace.first_ttl", "must be at least 1");
        }
        if t.max_ttl < t.first_ttl {
            return bad("trace.max_ttl", "must be at least trace.first_ttl");
        }
        if !(1..=crate::trace::engine::MAX_PROBES_PER_HOP).contains(&t.probes) {
            return bad("trace.probes", "must be between 1 and 15");
        }
        if t.timeout.is_zero() {
            return bad("trace.timeout", "must be longer than zero");
        }
        if t.rate == 0 || t.burst == 0 {
            let key = if t.rate == 0 { "trace.rate" } else { "trace.burst" };
            return bad(key, "must be at least 1");
        }
        if t.max_concurrent == 0 {
            return bad("trace.max_concurrent", "must be at least 1");
        }
        if t.max_cached == 0 {
            return bad("trace.max_cached", "must be at least 1");
        }
        let p = &self.plugins;
        if p.timeout_ms == 0 {
            return bad("plugins.timeout_ms", "must be at least 1");
        }
        if p.memory_mb == 0 {
            return bad("plugins.memory_mb", "must be at least 1");
        }
        if p.max_failures == 0 {
            return bad("plugins.max_failures", "must be at least 1");
        }
        if p.failure_window.is_zero() {
            return bad("plugins.failure_window", "must be longer than zero");
        }
        for (name, each) in &p.each {
            let key = |k: &str| format!("plugins.{name}.{k}");
            if each.timeout_ms == Some(0) {
                return bad(&key("timeout_ms"), "must be at least 1");
            }
            if each.memory_mb == Some(0) {
                return bad(&key("memory_mb"), "must be at least 1");
            }
            if each.max_failures == Some(0) {
                return bad(&key("max_failures"), "must be at least 1");
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

/// `plugins.x` from "unknown key `plugins.x` ..." or "[plugins.x]: ...".
fn plugin_key_in(message: &str) -> Option<String> {
    if let Some(rest) = message.split("`plugins.").nth(1) {
        return rest.split('`').next().map(|k| format!("plugins.{k}"));
    }
    let rest = message.strip_prefix("[plugins.")?;
    rest.split(']').next().map(|k| format!("plugins.{k}"))
}

/// Durations as `"30s"`, `"250ms"`, `"5m"`.
mod duration {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&crate::time::format_duration(*d))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(d)?;
        crate::time::parse_duration(&text).map_err(serde::de::Error::custom)
    }
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

    #[test]
    fn effective_config_round_trips() {
        let mut c = Config::default();
        c.capture.filter = Some("not port 22".into());
        c.track.local_networks = vec!["10.0.0.0/8".parse().unwrap()];
        assert_eq!(Config::parse(&c.to_toml()).unwrap(), c);
    }
}
