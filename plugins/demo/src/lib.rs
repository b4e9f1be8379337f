//! The smallest useful plugin: counts events by kind, logs each one at
//! debug level, and keeps them all.

use net_gazer_sdk::{
    export_plugin, log, metrics, Config, EventKind, Flow, Handshake, Info, Level, Plugin, Route, Scan, Verdict,
};

struct Demo {
    seen: u64,
}

impl Plugin for Demo {
    fn info() -> Info {
        Info::new("demo", env!("CARGO_PKG_VERSION")).wants(&[
            EventKind::Handshake,
            EventKind::Flow,
            EventKind::Scan,
            EventKind::Route,
        ])
    }

    fn init(_config: Config) -> Result<Self, String> {
        log!(Level::Info, "demo plugin ready");
        Ok(Demo { seen: 0 })
    }

    fn handshake(&mut self, e: &Handshake) -> Verdict {
        self.count("handshake");
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
        self.count("flow");
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
        self.count("scan");
        log!(Level::Debug, "scan from {}: {} distinct", e.src_ip, e.distinct);
        Verdict::Keep
    }

    fn route(&mut self, e: &Route) -> Verdict {
        self.count("route");
        log!(Level::Debug, "route to {}: {} hops", e.dst_ip, e.hops.len());
        Verdict::Keep
    }
}

impl Demo {
    fn count(&mut self, kind: &str) {
        self.seen += 1;
        metrics::counter_add(kind, 1);
        metrics::gauge_set("seen", self.seen as f64);
    }
}

export_plugin!(Demo);
