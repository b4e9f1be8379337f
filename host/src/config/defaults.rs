//! Every default in one place (trippy's `mod defaults`). The shipped
//! `etc/net-gazer/net-gazer.toml` repeats them; a test keeps the two equal.

use std::time::Duration;

use super::{CaptureSection, OutputSection, PluginsSection, ScanSection, TraceProtocol, TraceSection, TrackSection};
use crate::track::{Mode, TrackConfig};

/// Headers only: 14 Ethernet + 8 for two VLAN tags + 40 IPv6 + extension
/// headers + 60 TCP fits with room to spare; payload lengths come from the
/// IP header.
pub const SNAPLEN: u32 = 256;
pub const BUFFER_MB: u32 = 32;
pub const UNANSWERED_TIMEOUT: Duration = Duration::from_secs(30);
pub const ACK_TIMEOUT: Duration = Duration::from_secs(5);
pub const REORDER_WINDOW: Duration = Duration::from_secs(1);
pub const DUPLICATE_WINDOW: Duration = Duration::from_millis(1);
/// Covers Linux's SYN retransmissions at 31 s and 63 s after an attempt
/// reported unanswered at 30 s, so they are not taken for new attempts.
pub const LINGER: Duration = Duration::from_secs(60);
pub const FLOW_IDLE_TIMEOUT: Duration = Duration::from_secs(300);
/// A full table of this many entries takes about 150 MB under a
/// million-source SYN flood (docs/benchmarks.md).
pub const MAX_CONNECTIONS: usize = 200_000;
pub const MAX_ORPHANS: usize = 65_536;
/// Zeek's scan policy: 15 ports on one host or 25 hosts on one port in 5 min.
pub const SCAN_WINDOW: Duration = Duration::from_secs(300);
pub const SCAN_PORT_THRESHOLD: u32 = 15;
pub const SCAN_HOST_THRESHOLD: u32 = 25;
pub const SCAN_MAX_SOURCES: usize = 65_536;
pub const SCAN_MAX_LISTED: usize = 1_024;
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
/// Traceroute: 30 hops as traceroute(8), three probes per hop as mtr's
/// report; a second per probe is what most Internet paths need.
pub const TRACE_MAX_TTL: u8 = 30;
pub const TRACE_PROBES: u8 = 3;
/// Most Internet paths are shorter (median ~15 hops).
pub const TRACE_ASSUME_HOPS: u8 = 16;
pub const TRACE_TIMEOUT: Duration = Duration::from_secs(1);
/// 1000 probes/s: a 15-hop path (45 probes) leaves in under 50 ms, and
/// the sensor never sends more than ~60 kB/s of probes.
pub const TRACE_RATE: u32 = 1000;
pub const TRACE_BURST: u32 = 100;
pub const TRACE_MAX_CONCURRENT: usize = 16;
pub const TRACE_MAX_WAITING: usize = 1024;
pub const TRACE_CACHE_FOR: Duration = Duration::from_secs(3600);
pub const TRACE_MAX_CACHED: usize = 100_000;

impl Default for TraceSection {
    fn default() -> Self {
        TraceSection {
            enabled: true,
            protocol: TraceProtocol::Auto,
            style: crate::trace::Style::Paris,
            first_ttl: 1,
            max_ttl: TRACE_MAX_TTL,
            probes: TRACE_PROBES,
            assume_hops: TRACE_ASSUME_HOPS,
            timeout: TRACE_TIMEOUT,
            rate: TRACE_RATE,
            burst: TRACE_BURST,
            max_concurrent: TRACE_MAX_CONCURRENT,
            cache_for: TRACE_CACHE_FOR,
            max_cached: TRACE_MAX_CACHED,
            exclude: Vec::new(),
            internal: false,
        }
    }
}

impl Default for CaptureSection {
    fn default() -> Self {
        CaptureSection {
            interface: None,
            mode: Mode::Handshake,
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
        TrackSection {
            local_networks: Vec::new(),
            vlan_in_key: false,
            unanswered_timeout: UNANSWERED_TIMEOUT,
            ack_timeout: ACK_TIMEOUT,
            reorder_window: REORDER_WINDOW,
            duplicate_window: DUPLICATE_WINDOW,
            linger: LINGER,
            flow_idle_timeout: FLOW_IDLE_TIMEOUT,
            max_connections: MAX_CONNECTIONS,
            max_orphans: MAX_ORPHANS,
        }
    }
}

impl Default for ScanSection {
    fn default() -> Self {
        ScanSection {
            enabled: true,
            window: SCAN_WINDOW,
            port_threshold: SCAN_PORT_THRESHOLD,
            host_threshold: SCAN_HOST_THRESHOLD,
            max_sources: SCAN_MAX_SOURCES,
            max_listed: SCAN_MAX_LISTED,
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

/// The tracker's defaults.
pub fn track() -> TrackConfig {
    super::Config::default().track_config()
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
pub fn collector_spool_max_mb() -> u64 {
    256
}
pub fn collector_dead_letter_max_mb() -> u64 {
    64
}
pub fn collector_timeout() -> Duration {
    Duration::from_secs(10)
}
