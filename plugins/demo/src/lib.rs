//! The smallest useful plugin: counts events by kind (published as
//! counters once a second), logs each one at debug level, and keeps them
//! all.

use net_gazer_sdk::{
    export_plugin, log, metrics, Config, EventKind, Flow, Handshake, Info, Level, Plugin, Route, Scan, Verdict,
};

/// Events by kind since the last tick: handshake, flow, scan, route.
struct Demo {
    counts: [u64; 4],
    seen: u64,
}

impl Plugin for Demo {
    fn info() -> Info {
        Info::new("demo", env!("CARGO_PKG_VERSION")).wants(&EventKind::ALL)
    }

    fn init(_config: Config) -> Result<Self, String> {
        log!(Level::Info, "demo plugin ready");
        Ok(Demo {
            counts: [0; 4],
            seen: 0,
        })
    }

    fn handshake(&mut self, e: &Handshake) -> Verdict {
        self.count(0);
        log!(
            Level::Debug,
            "handshake {}:{} -> {}:{} {:?} rtt {:?} us",
            e.client_ip,
            e.client_port,
            e.server_ip,
            e.server_port,
            e.outcome,
            e.rtt_last_syn_us
        );
        Verdict::Keep
    }

    fn flow(&mut self, e: &Flow) -> Verdict {
        self.count(1);
        log!(
            Level::Debug,
            "flow {} -> {} retrans {}/{}",
            e.client_ip,
            e.server_ip,
            e.retrans_c2s,
            e.retrans_s2c
        );
        Verdict::Keep
    }

    fn scan(&mut self, e: &Scan) -> Verdict {
        self.count(2);
        log!(Level::Debug, "scan from {}: {} distinct", e.src_ip, e.distinct);
        Verdict::Keep
    }

    /// Host calls cost a few hundred nanoseconds: publish once a second,
    /// not per event.
    fn on_tick(&mut self, _now_us: i64) {
        for (name, n) in ["handshake", "flow", "scan", "route"].iter().zip(&mut self.counts) {
            if *n > 0 {
                metrics::counter_add(name, std::mem::take(n));
            }
        }
        metrics::gauge_set("seen", self.seen as f64);
    }

    fn route(&mut self, e: &Route) -> Verdict {
        self.count(3);
        log!(Level::Debug, "route to {}: {} hops", e.dst_ip, e.hops.len());
        Verdict::Keep
    }
}

impl Demo {
    fn count(&mut self, kind: usize) {
        self.counts[kind] += 1;
        self.seen += 1;
    }
}

export_plugin!(Demo);
