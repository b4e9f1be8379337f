//! The defaults of the configuration (trippy's `mod defaults`). The stages
//! of the core own theirs (`TrackConfig`, `ScanConfig`, the trace engine's
//! `Settings` and `TriggerSettings`: each its `Default`), and the sections
//! here read them; what only the daemon has (capture, output, plugins) is
//! written here. The shipped `etc/net-gazer/net-gazer.toml` repeats them; a
//! test keeps the two equal.

use std::time::Duration;

use super::{CaptureSection, OutputSection, PluginsSection, ScanSection, TraceProtocol, TraceSection, TrackSection};
use crate::track::{ScanConfig, TrackConfig};
use net_gazer_core::trace::engine::Settings as EngineSettings;
use net_gazer_core::trace::trigger::TriggerSettings;

/// Headers only: 14 Ethernet + 8 for two VLAN tags + 40 IPv6 + extension
/// headers + 60 TCP fits with room to spare; payload lengths come from the
/// IP header.
pub const SNAPLEN: u32 = 256;
pub const BUFFER_MB: u32 = 32;
pub const STATS_INTERVAL: Duration = Duration::from_secs(60);
pub const QUEUE_SIZE: usize = 65_536;
/// Well inside systemd's default TimeoutStopSec (90 s): the events still
/// pending at a stop get this long to pass the plugins and reach the outputs.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(20);
pub const DROP_LOG_INTERVAL: Duration = Duration::from_secs(10);
pub const PLUGIN_DIR: &str = "/etc/net-gazer/plugins";
pub const PLUGIN_CACHE_DIR: &str = "/var/cache/net-gazer";
/// Per call: a Rust plugin takes well under a microsecond per event, Python
/// a few; 10 ms is a hung plugin, not a slow one.
pub const PLUGIN_TIMEOUT_MS: u64 = 10;
pub const PLUGIN_MEMORY_MB: u64 = 64;
pub const PLUGIN_MAX_FAILURES: u32 = 5;
pub const PLUGIN_FAILURE_WINDOW: Duration = Duration::from_secs(60);
impl Default for TraceSection {
    fn default() -> Self {
        let engine = EngineSettings::default();
        let trigger = TriggerSettings::default();
        TraceSection {
            enabled: true,
            protocol: TraceProtocol::Auto,
            style: engine.style,
            first_ttl: engine.first_ttl,
            max_ttl: engine.max_ttl,
            probes: engine.probes_per_hop,
            assume_hops: engine.assume_hops,
            timeout: engine.timeout,
            rate: engine.rate,
            burst: engine.burst,
            max_concurrent: engine.max_concurrent,
            cache_for: trigger.cache_for,
            max_cached: trigger.max_cached,
            exclude: trigger.exclude,
            internal: trigger.internal,
        }
    }
}

impl Default for CaptureSection {
    fn default() -> Self {
        CaptureSection {
            interface: None,
            mode: TrackConfig::default().mode,
            filter: None,
            promiscuous: true,
            snaplen: SNAPLEN,
            buffer_mb: BUFFER_MB,
            client_rtt: true,
        }
    }
}

impl Default for TrackSection {
    fn default() -> Self {
        let t = TrackConfig::default();
        TrackSection {
            local_networks: Vec::new(),
            vlan_in_key: t.vlan_in_key,
            unanswered_timeout: t.unanswered_timeout,
            ack_timeout: t.ack_timeout,
            reorder_window: t.reorder_window,
            duplicate_window: t.duplicate_window,
            linger: t.linger,
            flow_idle_timeout: t.flow_idle_timeout,
            max_connections: t.max_connections,
            max_orphans: t.max_orphans,
        }
    }
}

impl Default for ScanSection {
    fn default() -> Self {
        let s = ScanConfig::default();
        ScanSection {
            enabled: s.enabled,
            window: s.window,
            port_threshold: s.port_threshold,
            host_threshold: s.host_threshold,
            max_sources: s.max_sources,
            max_listed: s.max_tracked,
        }
    }
}

impl Default for OutputSection {
    fn default() -> Self {
        OutputSection {
            jsonl: "-".into(),
            stats_interval: STATS_INTERVAL,
            queue_size: QUEUE_SIZE,
            stop_timeout: STOP_TIMEOUT,
            drop_log_interval: DROP_LOG_INTERVAL,
            collector: None,
            nats: None,
        }
    }
}

impl Default for PluginsSection {
    fn default() -> Self {
        PluginsSection {
            dir: PLUGIN_DIR.into(),
            order: Vec::new(),
            cache_dir: PLUGIN_CACHE_DIR.into(),
            timeout_ms: PLUGIN_TIMEOUT_MS,
            memory_mb: PLUGIN_MEMORY_MB,
            max_failures: PLUGIN_MAX_FAILURES,
            failure_window: PLUGIN_FAILURE_WINDOW,
            strict_permissions: true,
            each: Default::default(),
        }
    }
}

pub fn collector_batch_size() -> usize {
    1000
}
pub fn collector_batch_interval() -> Duration {
    Duration::from_secs(1)
}
pub fn collector_spool_dir() -> std::path::PathBuf {
    "/var/lib/net-gazer/spool".into()
}
pub fn nats_spool_dir() -> std::path::PathBuf {
    "/var/lib/net-gazer/spool-nats".into()
}
pub fn nats_subject_prefix() -> String {
    "net-gazer.events".into()
}
pub fn collector_spool_max_mb() -> u64 {
    256
}
pub fn collector_dead_letter_max_mb() -> u64 {
    64
}
pub fn collector_timeout() -> Duration {
    Duration::from_secs(10)
}
