//! The smallest useful plugin: counts events by kind (published as
//! counters once a second), logs each one at debug level, and keeps them
//! all.

use net_gazer_sdk::{
    export_plugin, flow, handshake, log, metrics, route, scan, Config, Event, EventKind, Info, Level, Plugin, Verdict,
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

    // `log!` reads the fields (each a call into the host) only when the
    // daemon logs at debug level.
    fn handshake(&mut self, _e: &Event) -> Verdict {
        self.count(0);
        log!(
            Level::Debug,
            "handshake {}:{} -> {}:{} {:?} rtt {:?} us",
            handshake::client_ip(),
            handshake::client_port(),
            handshake::server_ip(),
            handshake::server_port(),
            handshake::outcome(),
            handshake::rtt_last_syn_us()
        );
        Verdict::Keep
    }

    fn flow(&mut self, _e: &Event) -> Verdict {
        self.count(1);
        log!(
            Level::Debug,
            "flow {} -> {} retrans {}/{}",
            flow::client_ip(),
            flow::server_ip(),
            flow::retrans_c2s(),
            flow::retrans_s2c()
        );
        Verdict::Keep
    }

    fn scan(&mut self, _e: &Event) -> Verdict {
        self.count(2);
        log!(
            Level::Debug,
            "scan from {}: {} distinct",
            scan::src_ip(),
            scan::distinct()
        );
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

    fn route(&mut self, _e: &Event) -> Verdict {
        self.count(3);
        log!(
            Level::Debug,
            "route to {}: {} hops",
            route::dst_ip(),
            route::hops().len()
        );
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
