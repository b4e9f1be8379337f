//! `net-gazer run`: live capture until SIGTERM or SIGINT.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;

use crate::capture::live::{self, LiveCapture, LiveConfig};
use crate::config::Config;
use crate::output::Backpressure;
use crate::trace::tracer::Tracer;
use crate::track::LocalNetworks;

/// How often timers run and events are handed to the outputs.
const TICK: std::time::Duration = std::time::Duration::from_millis(100);
/// How often the counters `[metrics] listen` serves are refreshed.
const PUBLISH_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

pub fn run(config: Config, reconfigure: super::Reconfigure) -> anyhow::Result<()> {
    let iface = match &config.capture.interface {
        Some(name) => live::find_interface(name)?,
        None => {
            let i = live::pick_interface()?;
            tracing::info!(interface = %i.name, "no interface configured; picked the first one up with an address");
            i
        }
    };
    let networks: Vec<String> = iface.networks.iter().map(ToString::to_string).collect();
    tracing::info!(interface = %iface.name, networks = %networks.join(", "), "capture interface");
    let local = config
        .local_networks()
        .unwrap_or_else(|| LocalNetworks::new(iface.networks.clone()));
    let local_list: Vec<String> = local.networks().iter().map(ToString::to_string).collect();
    tracing::info!(local_networks = %local_list.join(", "), "local networks");

    let mut capture = LiveCapture::open(&LiveConfig {
        interface: iface.name.clone(),
        mode: config.capture.mode,
        client_rtt: config.capture.client_rtt,
        filter: config.capture.filter.clone(),
        promiscuous: config.capture.promiscuous,
        snaplen: config.capture.snaplen,
        buffer_mb: config.capture.buffer_mb,
    })?;
    tracing::info!(mode = ?config.capture.mode, filter = %capture.filter(), "capturing");

    let stop = Arc::new(AtomicBool::new(false));
    let reload = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(sig, Arc::clone(&stop)).context("installing signal handlers")?;
    }
    signal_hook::flag::register(signal_hook::consts::SIGHUP, Arc::clone(&reload))
        .context("installing signal handlers")?;

    let plugins = super::start_plugins(&config)?;
    let plugin_metrics = plugins.metrics;
    let (mut pipeline, output_thread) = super::start_pipeline(&config, local, None, Backpressure::Drop, plugins.stage)?;
    let tracer = start_tracer(&config, &mut pipeline);
    let reloader = crate::plugin::spawn_reloader(plugins.plugins, reconfigure, plugins.swap, pipeline.waker())
        .context("starting the plugin reloader")?;

    let published = crate::metrics::Published::with_queue(pipeline.queued());
    if let Some(listen) = config.metrics.listen {
        let spool: Vec<std::path::PathBuf> = (config.output.collector.iter().map(|c| c.spool_dir.clone()))
            .chain(config.output.nats.iter().map(|n| n.spool_dir.clone()))
            .collect();
        let bound = crate::metrics::serve(listen, published.clone(), plugin_metrics.clone(), spool)
            .with_context(|| format!("metrics.listen: cannot listen on {listen}"))?;
        tracing::info!(listen = %bound, "metrics at http://{bound}/metrics");
    }
    let interval = config.output.stats_interval;
    let mut next_stats = Instant::now() + interval;
    let mut drops = DropLog::new(config.output.drop_log_interval, Instant::now());
    let mut next_publish = Instant::now();
    let mut next_tick = Instant::now();
    // systemd (Type=notify): ready once capture, plugins and outputs run;
    // the watchdog is fed by this loop, so a stuck capture loop gets the
    // service restarted. Outside systemd these do nothing.
    let mut watchdog = Watchdog::from_env();
    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Ready]);
    while !stop.load(Ordering::Relaxed) {
        if let Some(pkt) = capture.next_packet()? {
            pipeline.handle_packet(&pkt);
        }
        // Wall-clock timers and the hand-over of events to the outputs run
        // every TICK whatever the traffic: a trickle of packets must not
        // hold events back, a flood must not starve the timers.
        let now = Instant::now();
        if now >= next_tick {
            next_tick = now + TICK;
            pipeline.tick(crate::clock::now());
            watchdog.feed(now);
            if let Some(new) = drops.check(now, pipeline.queue_drops()) {
                tracing::warn!(
                    dropped = new,
                    total = pipeline.queue_drops(),
                    queue_size = config.output.queue_size,
                    "events dropped: the output queue was full (plugins or outputs slower than capture; \
                     see docs/operations.md, \"Dropped events\")"
                );
            }
            if config.metrics.listen.is_some() && now >= next_publish {
                next_publish = now + PUBLISH_EVERY;
                published.set(pipeline.stats(crate::clock::now(), Some(capture.stats())));
            }
        }
        if reload.swap(false, Ordering::Relaxed) {
            tracing::info!("SIGHUP received: reloading plugins (other settings need a restart)");
            let _ = reloader.send(());
        }
        if Instant::now() >= next_stats {
            next_stats += interval;
            let kernel = capture.stats();
            let s = pipeline.emit_stats(crate::clock::now(), Some(kernel));
            tracing::info!(
                packets = s.packets,
                kernel_drops = kernel.dropped,
                interface_drops = kernel.if_dropped,
                decode_errors = s.decode_errors.values().sum::<u64>(),
                table_size = s.table_size,
                evictions = s.evictions,
                queue_drops = s.queue_drops,
                routes = s.routes.unwrap_or(0),
                probes_sent = s.probes_sent.unwrap_or(0),
                "stats"
            );
            for (name, m) in plugin_metrics.snapshot() {
                tracing::info!(plugin = %name, "plugin stats: {}", m.summary());
            }
        }
    }
    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Stopping]);
    let deadline = Instant::now() + config.output.stop_timeout;
    tracing::info!(
        stop_timeout = %net_gazer_common::duration::format_duration(config.output.stop_timeout),
        "stopping: writing what is pending"
    );
    let kernel = capture.stats();
    // Traces running finish first: their routes come before the final
    // stats event.
    if let Some(t) = tracer {
        t.stop();
    }
    let queued = pipeline.queued();
    let (queue, stats) = pipeline.finish(crate::clock::now(), Some(kernel), deadline);
    drop(queue);
    // The reloader holds a waker of the output thread: it must go for the
    // output thread to see the end of the queue.
    drop(reloader);
    let report = output_thread.join_until(deadline, &queued);
    super::report_stop(&stats, &report, config.output.stop_timeout);
    // The plugins' counters as they ended (exporters included).
    for (name, m) in plugin_metrics.snapshot() {
        tracing::info!(plugin = %name, "plugin stats: {}", m.summary());
    }
    tracing::info!(
        packets = stats.packets,
        kernel_drops = kernel.dropped,
        events = report.written,
        queue_drops = stats.queue_drops,
        "stopped"
    );
    if let Some(e) = report.errors.first() {
        anyhow::bail!("output failed: {e}");
    }
    Ok(())
}

/// Rate-limits the warning about dropped events: at most one line per
/// `every`, with the count since the last line.
struct DropLog {
    every: std::time::Duration,
    next: Instant,
    reported: u64,
}

impl DropLog {
    fn new(every: std::time::Duration, now: Instant) -> DropLog {
        DropLog {
            every,
            next: now,
            reported: 0,
        }
    }

    /// The drops to report now, given the running total.
    fn check(&mut self, now: Instant, total: u64) -> Option<u64> {
        if total <= self.reported || now < self.next {
            return None;
        }
        let new = total - self.reported;
        self.reported = total;
        self.next = now + self.every;
        Some(new)
    }
}

/// Starts the traceroute thread when `[trace] enabled`; without raw
/// sockets the sensor runs on without it and says why.
fn start_tracer(config: &Config, pipeline: &mut crate::pipeline::Pipeline) -> Option<Tracer> {
    if !config.trace.enabled {
        tracing::info!("traceroute off (trace.enabled = false)");
        return None;
    }
    match Tracer::spawn(config.trace.engine(), config.trace.trigger(), pipeline.event_producer()) {
        Ok(t) => {
            pipeline.set_trace_hook(t.hook());
            tracing::info!(
                protocol = ?config.trace.protocol,
                style = ?config.trace.style,
                rate = config.trace.rate,
                "tracing the remote ends of handshakes"
            );
            Some(t)
        }
        Err(e) => {
            tracing::error!(error = %e, "traceroute disabled");
            None
        }
    }
}

/// systemd's watchdog: pinged at half the interval systemd asked for
/// (`WATCHDOG_USEC`, for this process), or never.
struct Watchdog {
    every: Option<std::time::Duration>,
    next: Instant,
}

impl Watchdog {
    fn from_env() -> Watchdog {
        let mut usec = 0;
        let every = sd_notify::watchdog_enabled(false, &mut usec)
            .then(|| std::time::Duration::from_micros(usec / 2))
            .filter(|d| !d.is_zero());
        Watchdog {
            every,
            next: Instant::now(),
        }
    }

    /// Pings when due; called on the loop's timer tick.
    fn feed(&mut self, now: Instant) {
        let Some(every) = self.every else { return };
        if now >= self.next {
            self.next = now + every;
            let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Watchdog]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drops_are_reported_at_most_once_per_interval_with_the_count_since() {
        let t0 = Instant::now();
        let s = std::time::Duration::from_secs;
        let mut log = DropLog::new(s(10), t0);
        assert_eq!(log.check(t0, 0), None, "nothing dropped, nothing said");
        assert_eq!(log.check(t0, 5), Some(5), "the first drops at once");
        assert_eq!(log.check(t0 + s(1), 9), None, "then quiet for the interval");
        assert_eq!(log.check(t0 + s(9), 12), None);
        assert_eq!(log.check(t0 + s(10), 12), Some(7), "the count since the last line");
        assert_eq!(log.check(t0 + s(30), 12), None, "no new drops");
        assert_eq!(log.check(t0 + s(31), 13), Some(1));
    }
}
