//! The plugin chain: every event goes through the plugins in order, each
//! sees the tags of those before it, and a drop ends the event's way.
//!
//! Each plugin runs on the output thread under [`super::supervise`]
//! (deadlines, memory cap, restarts, backoff). Here: which events a plugin
//! gets (its `wants`, one call each or one batch), its verdicts and tags
//! applied, and the event a plugin failed on going on (`on_error =
//! "pass"`, the default) or dropped (`"drop"`); the daemon itself never
//! stops because of a plugin.

use std::time::{Duration, Instant};

use super::export::Lane;
use super::metrics::CallStats;
use super::supervise::{Failure, Running};
use super::wit::{self, Contract, Instance, Records, Verdict};
use crate::config::OnError;
use crate::event::{EventKind, Tagged};
use crate::time::Timestamp;

/// Tags a plugin may add to one event, and their sizes.
pub(super) const MAX_TAGS: usize = 32;
pub(super) const MAX_KEY: usize = 64;
pub(super) const MAX_VALUE: usize = 1024;

impl Running {
    /// Runs the plugin over `items` (an exporter: its verdicts do not
    /// matter).
    pub(super) fn run_all(&mut self, items: &mut Vec<Tagged>) {
        self.run(&mut Work::new(items));
    }

    /// Runs the plugin over the events of `work` it wants.
    fn run(&mut self, work: &mut Work) {
        struct Run<'p, 'w, 'i> {
            plugin: &'p mut Running,
            work: &'w mut Work<'i>,
        }
        impl wit::VersionVisitor for Run<'_, '_, '_> {
            type Output = ();
            fn visit<C: Contract>(self) {
                self.plugin.run_with::<C>(self.work);
            }
        }
        let binding = self.prepared.pre.binding();
        binding.visit(Run { plugin: self, work });
    }

    /// [`run`](Self::run) with the plugin's contract version `C`. The
    /// time of each call is counted from the end of the one before (one
    /// clock read per call), so it includes making the event's record.
    fn run_with<C: Contract>(&mut self, work: &mut Work) {
        let wanted: Vec<usize> = (0..work.items.len())
            .filter(|&i| {
                !work.dropped[i] && work.kind(i).is_some_and(|k| self.wants(k)) && self.interested(&work.items[i].event)
            })
            .collect();
        if wanted.is_empty() {
            return;
        }
        let start = Instant::now();
        if !self.available(start) {
            self.metrics
                .skipped
                .fetch_add(wanted.len() as u64, std::sync::atomic::Ordering::Relaxed);
            for &i in &wanted {
                self.on_failure(work, i);
            }
            return;
        }
        let mut stats = CallStats::default();
        if self.batch {
            self.run_batch::<C>(work, &wanted, &mut stats, start);
        } else {
            let mut last = start;
            for &i in &wanted {
                // The clock only once a failure in this batch disabled it.
                let disabled = self.disabled_until.is_some() && !self.available(Instant::now());
                let restart = self.instance.is_none();
                if disabled || !self.ready() {
                    self.metrics.skipped.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    self.on_failure(work, i);
                    last = Instant::now();
                    continue;
                }
                if restart {
                    // Instantiating and `init` are not the call's time.
                    last = Instant::now();
                }
                let Some((item, record)) = work.item_and_record::<C>(i) else {
                    continue;
                };
                let verdict = self.call(|p, s| C::on_event(instance_of::<C>(p)?, s, item, record));
                let now = Instant::now();
                stats.call(1, now.saturating_duration_since(last));
                last = now;
                match verdict {
                    Some(v) => self.apply(work, i, v, &mut stats),
                    None => self.on_failure(work, i),
                }
            }
        }
        self.metrics.add(&stats);
    }

    fn run_batch<C: Contract>(&mut self, work: &mut Work, wanted: &[usize], stats: &mut CallStats, start: Instant) {
        let restart = self.instance.is_none();
        if !self.ready() {
            self.metrics
                .skipped
                .fetch_add(wanted.len() as u64, std::sync::atomic::Ordering::Relaxed);
            wanted.iter().for_each(|&i| self.on_failure(work, i));
            return;
        }
        // Instantiating and `init` are not the call's time.
        let start = if restart { Instant::now() } else { start };
        // Every wanted event has a record (plugins want no stats).
        let wanted: Vec<usize> = wanted
            .iter()
            .copied()
            .filter(|&i| work.record::<C>(i).is_some())
            .collect();
        let verdicts = {
            let slots = &*C::records(&mut work.records);
            let records: Vec<&C::Record> = wanted.iter().filter_map(|&i| slots[i].as_ref()).collect();
            let mut items: Vec<&mut Tagged> = work
                .items
                .iter_mut()
                .enumerate()
                .filter(|(i, _)| wanted.binary_search(i).is_ok())
                .map(|(_, t)| t)
                .collect();
            self.call(|p, s| C::on_batch(instance_of::<C>(p)?, s, &mut items, &records))
        };
        stats.call(wanted.len() as u64, start.elapsed());
        match verdicts {
            Some(v) if v.len() == wanted.len() => {
                for (&i, verdict) in wanted.iter().zip(v) {
                    self.apply(work, i, verdict, stats);
                }
            }
            Some(v) => {
                let message = format!("batch returned {} verdicts for {} events", v.len(), wanted.len());
                self.fail(Failure::BadResult, &message);
                wanted.iter().for_each(|&i| self.on_failure(work, i));
            }
            None => wanted.iter().for_each(|&i| self.on_failure(work, i)),
        }
    }

    fn on_failure(&self, work: &mut Work, i: usize) {
        if self.on_error == OnError::Drop && !work.dropped[i] {
            work.dropped[i] = true;
            self.metrics
                .dropped_on_error
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }

    fn apply(&mut self, work: &mut Work, i: usize, verdict: Verdict, stats: &mut CallStats) {
        use std::sync::atomic::Ordering::Relaxed;
        match verdict {
            Verdict::Keep => {}
            Verdict::Drop => {
                stats.dropped();
                work.dropped[i] = true;
            }
            Verdict::Tag(tags) => {
                let mut bad = tags.len().saturating_sub(MAX_TAGS);
                let mut added = false;
                for t in tags.into_iter().take(MAX_TAGS) {
                    if t.key.is_empty() || t.key.len() > MAX_KEY || t.value.len() > MAX_VALUE {
                        bad += 1;
                        continue;
                    }
                    work.items[i].set(t);
                    added = true;
                }
                if bad > 0 {
                    self.fail(
                        Failure::BadResult,
                        &format!(
                            "{bad} tag(s) refused: at most {MAX_TAGS} per event, keys 1..={MAX_KEY} bytes, values at most {MAX_VALUE}"
                        ),
                    );
                }
                if added {
                    self.metrics.tagged.fetch_add(1, Relaxed);
                    work.retag(i);
                }
            }
        }
    }
}

/// The instance of contract version `C` (the one its `Pre` made).
fn instance_of<C: Contract>(instance: &Instance) -> wasmtime::Result<&C::Instance> {
    C::instance(instance).ok_or_else(|| wasmtime::format_err!("instance of another contract version"))
}

/// One batch on its way through the chain: the items, their records as
/// plugins of each contract version see them (made on first use, kept in
/// step with the tags), and which were dropped.
struct Work<'a> {
    items: &'a mut Vec<Tagged>,
    records: Records,
    dropped: Vec<bool>,
}

impl Work<'_> {
    fn new(items: &mut Vec<Tagged>) -> Work<'_> {
        let n = items.len();
        Work {
            items,
            records: Records::default(),
            dropped: vec![false; n],
        }
    }

    /// The kind of item `i`, for the kinds plugins can want.
    fn kind(&self, i: usize) -> Option<EventKind> {
        match self.items[i].event.kind() {
            EventKind::Stats => None,
            k => Some(k),
        }
    }

    fn record<C: Contract>(&mut self, i: usize) -> Option<&C::Record> {
        let item = &self.items[i];
        let n = self.items.len();
        let records = C::records(&mut self.records);
        if records.len() < n {
            records.resize_with(n, || None);
        }
        if records[i].is_none() {
            records[i] = C::record(&item.event, &item.tags);
        }
        records[i].as_ref()
    }

    /// Item `i` and its record for contract version `C` (made on first
    /// use); `None` for events plugins do not get.
    fn item_and_record<C: Contract>(&mut self, i: usize) -> Option<(&mut Tagged, &C::Record)> {
        self.record::<C>(i)?;
        let record = C::records(&mut self.records)[i].as_ref()?;
        Some((&mut self.items[i], record))
    }

    /// Item `i`'s tags changed: its records follow.
    fn retag(&mut self, i: usize) {
        self.records.retag(i, &self.items[i].tags);
    }
}

/// The plugins in order, and the exporters that get what passed them.
#[derive(Default)]
pub struct Chain {
    plugins: Vec<Running>,
    exporters: Vec<Lane>,
}

impl Chain {
    pub fn new(plugins: Vec<Running>, exporters: Vec<Lane>) -> Chain {
        Chain { plugins, exporters }
    }

    pub fn plugins(&self) -> &[Running] {
        &self.plugins
    }

    pub fn exporters(&self) -> &[Lane] {
        &self.exporters
    }

    /// Runs the batch through every plugin and removes what they dropped;
    /// then queues what is left for each exporter.
    pub fn process(&mut self, items: &mut Vec<Tagged>) {
        self.filter(items);
        for lane in &mut self.exporters {
            lane.send(items);
        }
    }

    /// Lets the exporters take what they have queued and flush, each within
    /// `wait`, side by side on threads of their own, without waiting for
    /// them: the caller joins the threads when it must (a stop).
    pub fn stop_exporters(&mut self, wait: Duration) -> Vec<std::thread::JoinHandle<()>> {
        std::mem::take(&mut self.exporters)
            .into_iter()
            .filter_map(|lane| std::thread::Builder::new().spawn(move || lane.stop(wait)).ok())
            .collect()
    }

    fn filter(&mut self, items: &mut Vec<Tagged>) {
        if self.plugins.is_empty() || items.is_empty() {
            return;
        }
        let mut work = Work::new(items);
        for plugin in &mut self.plugins {
            plugin.run(&mut work);
        }
        let dropped = work.dropped;
        let mut i = 0;
        items.retain(|_| {
            let keep = !dropped[i];
            i += 1;
            keep
        });
    }

    pub fn tick(&mut self, now: Timestamp) {
        for plugin in &mut self.plugins {
            plugin.tick(now);
        }
        for lane in &mut self.exporters {
            lane.tick(now);
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::config::{PluginSettings, PluginsSection};
    use crate::event::{self, Event, Tag};
    use crate::plugin::{Loader, Registry};

    /// A built test plugin (scripts/build-plugins.sh), if there is one.
    pub(super) fn test_plugin(name: &str) -> Option<std::path::PathBuf> {
        let dir = std::env::var_os("NG_TEST_PLUGINS")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| {
                std::env::var_os("CARGO_TARGET_DIR")
                    .map(std::path::PathBuf::from)
                    .unwrap_or_else(|| "/var/tmp/net-gazer-target".into())
                    .join("plugins")
            });
        let file = dir.join("testing").join(format!("{name}.wasm"));
        if file.is_file() {
            return Some(file);
        }
        assert!(
            std::env::var("NG_REQUIRE_PLUGINS").as_deref() != Ok("1"),
            "{} is missing",
            file.display()
        );
        eprintln!("SKIPPED: {} not built; run scripts/build-plugins.sh", file.display());
        None
    }

    /// A running instance of a test plugin in `mode`.
    pub(super) fn running(name: &str, mode: &str) -> Option<Running> {
        let file = test_plugin(name)?;
        let mut loader = Loader::new(None).unwrap();
        let prepared = loader.prepare(name, &file).unwrap();
        let mut settings = PluginSettings::default();
        settings.options.insert("mode".into(), toml::Value::String(mode.into()));
        let section = PluginsSection::default();
        Some(Running::start(prepared, settings, &section, Registry::default().get(name)).unwrap())
    }

    /// Handshakes whose every field varies with `i`.
    pub(crate) fn handshake(i: u32) -> event::Tagged {
        fn on<T>(yes: bool, v: T) -> Option<T> {
            yes.then_some(v)
        }
        let even = i.is_multiple_of(2);
        let mut vlan = crate::decode::VlanStack::NONE;
        for id in [100, 200].iter().take(i as usize % 3) {
            vlan.push(*id);
        }
        let h = event::Handshake {
            id: 0x0102_0304_0506_0708 + u64::from(i),
            ts: crate::time::Timestamp::from_micros(-5 - i64::from(i)),
            ts_us: -5 - i64::from(i),
            client_ip: format!("10.0.{i}.1").parse().unwrap(),
            client_port: 40_000 + i as u16,
            server_ip: if i.is_multiple_of(3) {
                format!("2001:db8::{i}:1").parse().unwrap()
            } else {
                "192.0.2.1".parse().unwrap()
            },
            server_port: 443,
            ip_version: if i.is_multiple_of(3) { 6 } else { 4 },
            vlan,
            direction: [
                event::Direction::Outbound,
                event::Direction::Inbound,
                event::Direction::Internal,
                event::Direction::Transit,
            ][i as usize % 4],
            outcome: event::Outcome::VALUES[i as usize % 4],
            completed: i % 2 == 1,
            syn_count: i + 1,
            syns_before_synack: i,
            synack_count: 7 * i,
            first_syn_us: 1_700_000_000_000_000 + i64::from(i),
            first_synack_us: on(even, 1_700_000_000_000_123),
            ack_us: if i % 3 == 1 { Some(-1) } else { None },
            rtt_last_syn_us: on(even, 123.456 + f64::from(i)),
            rtt_first_syn_us: if i % 3 == 2 { Some(f64::MAX) } else { on(even, 0.5) },
            client_rtt_us: if i % 2 == 1 { Some(7.25) } else { None },
            reordered: i.is_multiple_of(3),
            synack_seq_changed: i.is_multiple_of(5),
            rst_from: [None, Some(event::Side::Client), Some(event::Side::Server)][i as usize % 3],
            client_ttl: 64 - i as u8,
            client_initial_ttl: 64,
            client_hops: i as u8,
            server_ttl: on(even, 52),
            server_initial_ttl: if i % 2 == 1 { Some(255) } else { None },
            server_hops: on(even, 12),
            client_mss: on(even, 1460),
            client_wscale: if i % 2 == 1 { Some(14) } else { None },
            client_sack_permitted: i.is_multiple_of(2),
            client_timestamps: !i.is_multiple_of(3),
            server_mss: if i % 2 == 1 { Some(65_495) } else { None },
            server_wscale: on(even, 7),
            server_sack_permitted: [None, Some(true), Some(false)][i as usize % 3],
            server_timestamps: [Some(false), None, Some(true)][i as usize % 3],
            syn_data_len: 1_000 * i,
            ecn_setup: i % 4 == 3,
        };
        let mut t = event::Tagged::new(Event::Handshake(h));
        for k in 0..i % 3 {
            t.set(Tag {
                key: format!("k{k}"),
                value: "v\"\u{e9}".repeat(k as usize + 1),
            });
        }
        t
    }

    pub(crate) fn scan() -> event::Tagged {
        event::Tagged::new(Event::Scan(event::Scan {
            ts: crate::time::Timestamp::from_micros(1),
            ts_us: 1,
            src_ip: "198.51.100.7".parse().unwrap(),
            scan_type: event::ScanType::PortScan,
            phase: event::ScanPhase::Detected,
            target_ip: Some("10.0.0.1".parse().unwrap()),
            target_port: None,
            distinct: 15,
            ports: (1..16).collect(),
            hosts: Vec::new(),
            attempts: 15,
            first_us: 0,
            last_us: 1,
        }))
    }
}

/// The cost of one call (`cargo test --release -p net-gazer --lib
/// plugin::chain::calls -- --ignored --nocapture`), apart from the chain.
#[cfg(test)]
mod calls;
