//! One plugin of a chain and its supervision: a long-lived Store with a
//! deadline before every entry and a memory cap; a trap, timeout or
//! out-of-memory drops the Store and the next event instantiates the
//! plugin again (calling `init` again); too many failures in a window
//! disable it for a while, doubling each time. What the plugin is asked
//! to do with events is [`super::chain`]'s.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use wasmtime::Store;

use super::load::{ticks, Prepared};
use super::metrics::PluginMetrics;
use super::one_line;
use super::store::{Grants, State};
use super::wit::{Instance, Interest};
use crate::config::{OnError, PluginSettings, PluginsSection, Role};
use crate::event::EventKind;
use crate::time::Timestamp;

/// How long `init` may take (it may open databases).
pub const INIT_TIMEOUT: Duration = Duration::from_secs(5);
/// The first time a plugin is disabled, for this long; doubling after.
const BACKOFF_FIRST: Duration = Duration::from_secs(10);
const BACKOFF_MAX: Duration = Duration::from_secs(600);
/// HTTP requests of a plugin time out after this.
const HTTP_TIMEOUT: Duration = Duration::from_secs(5);
/// Host time (ms, epoch ticks) a call's deadline may be moved by in all:
/// one request's worth, so a call takes at most its timeout plus this.
const HOST_BUDGET_MS: u64 = 5_000;
/// Why a call into a plugin failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failure {
    Trap,
    Timeout,
    OutOfMemory,
    /// It returned something the host cannot use (wrong number of verdicts).
    BadResult,
    /// `init` refused its configuration when the plugin was restarted.
    Init,
}

/// One plugin of a chain, with its running instance.
pub struct Running {
    pub(super) prepared: Prepared,
    pub(super) config_json: String,
    pub(super) grants: Grants,
    pub(super) timeout: Duration,
    pub(super) on_error: OnError,
    pub(super) batch: bool,
    pub(super) role: Role,
    /// What the plugin said it wants after `init` (it may depend on its
    /// configuration).
    pub(crate) interest: Interest,
    pub(super) max_failures: u32,
    pub(super) failure_window: Duration,
    pub metrics: Arc<PluginMetrics>,
    pub(super) instance: Option<(Store<State>, Instance)>,
    pub(super) failures: VecDeque<Instant>,
    pub(super) disabled_until: Option<Instant>,
    pub(super) backoff: Duration,
    pub(super) last_disabled: Option<Instant>,
}

impl Running {
    /// Instantiates the plugin and gives it its configuration; an error is
    /// the plugin refusing it (or failing to start).
    pub fn start(
        prepared: Prepared,
        settings: PluginSettings,
        section: &PluginsSection,
        metrics: Arc<PluginMetrics>,
    ) -> Result<Running, String> {
        let mut dirs = Vec::new();
        for d in &settings.dirs {
            // Canonical, so the grant is the directory itself, not whatever
            // a symlink points to later; cap-std keeps `..` and symlinks
            // inside it.
            let canonical = d
                .canonicalize()
                .map_err(|e| format!("granted directory {}: {e}", d.display()))?;
            dirs.push(canonical);
        }
        let grants = Grants {
            dirs,
            http_allow: settings.http_allow.clone(),
            memory_bytes: usize::try_from(settings.memory_mb.unwrap_or(section.memory_mb).saturating_mul(1 << 20))
                .unwrap_or(usize::MAX),
            http_timeout: HTTP_TIMEOUT,
        };
        let mut running = Running {
            // The plugin sees the directories where they are granted.
            config_json: settings.plugin_json(&grants.dirs),
            timeout: Duration::from_millis(settings.timeout_ms.unwrap_or(section.timeout_ms)),
            on_error: settings.on_error.unwrap_or_default(),
            batch: settings.batch.unwrap_or(prepared.description.batch),
            interest: prepared.description.interest.clone(),
            role: settings.role.unwrap_or(prepared.description.role),
            max_failures: settings.max_failures.unwrap_or(section.max_failures),
            failure_window: section.failure_window,
            grants,
            metrics,
            instance: None,
            failures: VecDeque::new(),
            disabled_until: None,
            backoff: BACKOFF_FIRST,
            last_disabled: None,
            prepared,
        };
        running.instantiate().map_err(|(_, e)| e)?;
        Ok(running)
    }

    pub fn name(&self) -> &str {
        &self.prepared.name
    }

    pub fn prepared(&self) -> &Prepared {
        &self.prepared
    }

    pub fn batch(&self) -> bool {
        self.batch
    }

    pub fn role(&self) -> Role {
        self.role
    }

    pub(super) fn wants(&self, kind: EventKind) -> bool {
        self.prepared.description.wants.contains(&kind)
    }

    /// Whether the plugin wants this event beyond its kind.
    pub(super) fn interested(&self, event: &crate::event::Event) -> bool {
        self.interest.is_any() || self.interest.matches(event)
    }

    pub fn interest(&self) -> &Interest {
        &self.interest
    }

    /// A fresh Store and instance, `init` called.
    pub(super) fn instantiate(&mut self) -> Result<(), (Failure, String)> {
        let engine = self.prepared.pre.engine().clone();
        let state = State::new(self.prepared.name.as_str().into(), &self.grants, self.metrics.clone())
            .map_err(|e| (Failure::Init, e.to_string()))?;
        let mut store = Store::new(&engine, state);
        store.limiter(|s| s);
        store.epoch_deadline_callback(|mut cx| {
            // Time in host calls (HTTP) does not count against the plugin,
            // up to HOST_BUDGET_MS per call.
            let state = cx.data_mut();
            let waited = state.http_hooks.waited_ms.swap(0, std::sync::atomic::Ordering::Relaxed);
            let host = std::mem::take(&mut state.host_ticks).saturating_add(waited);
            let extra = host.min(state.host_budget);
            state.host_budget -= extra;
            Ok(match extra {
                0 => wasmtime::UpdateDeadline::Interrupt,
                extra => wasmtime::UpdateDeadline::Continue(extra),
            })
        });
        store.set_epoch_deadline(ticks(INIT_TIMEOUT));
        let instance = self.prepared.pre.instantiate(&mut store).map_err(|e| {
            (
                classify(&store, &e),
                format!("cannot be instantiated: {}", one_line(&e)),
            )
        })?;
        store.data_mut().host_ticks = 0;
        store.data_mut().host_budget = HOST_BUDGET_MS;
        store.set_epoch_deadline(ticks(INIT_TIMEOUT));
        match instance.init(&mut store, &self.config_json) {
            Ok(Ok(())) => {}
            Ok(Err(message)) => return Err((Failure::Init, format!("refused its configuration: {message}"))),
            Err(e) => return Err((classify(&store, &e), format!("init failed: {}", one_line(&e)))),
        }
        // Asked again once configured: the interest may follow the
        // configuration (a filter's ports).
        store.set_epoch_deadline(ticks(INIT_TIMEOUT));
        match instance.describe(&mut store) {
            Ok(d) => self.interest = d.interest,
            Err(e) => {
                return Err((
                    classify(&store, &e),
                    format!("describe failed after init: {}", one_line(&e)),
                ))
            }
        }
        self.instance = Some((store, instance));
        Ok(())
    }

    /// Whether the plugin may run now (re-enabling it when its time is up).
    pub(super) fn available(&mut self, now: Instant) -> bool {
        match self.disabled_until {
            Some(until) if now < until => false,
            Some(_) => {
                tracing::info!(plugin = %self.name(), "plugin enabled again after its backoff");
                self.disabled_until = None;
                true
            }
            None => true,
        }
    }

    /// Counts a failure; drops the instance; disables the plugin when
    /// failures pile up.
    pub(super) fn fail(&mut self, failure: Failure, message: &str) {
        use std::sync::atomic::Ordering::Relaxed;
        let m = &self.metrics;
        m.errors.fetch_add(1, Relaxed);
        match failure {
            Failure::Trap | Failure::Init => m.traps.fetch_add(1, Relaxed),
            Failure::Timeout => m.timeouts.fetch_add(1, Relaxed),
            Failure::OutOfMemory => m.out_of_memory.fetch_add(1, Relaxed),
            Failure::BadResult => m.bad_results.fetch_add(1, Relaxed),
        };
        tracing::warn!(plugin = %self.name(), failure = ?failure, "plugin failed: {message}");
        if failure != Failure::BadResult {
            // A trap poisons the Store: start over from InstancePre.
            self.instance = None;
        }
        let now = Instant::now();
        self.failures.push_back(now);
        while self
            .failures
            .front()
            .is_some_and(|t| now.duration_since(*t) > self.failure_window)
        {
            self.failures.pop_front();
        }
        if self.failures.len() >= self.max_failures as usize {
            if self
                .last_disabled
                .is_some_and(|t| now.duration_since(t) > BACKOFF_MAX + self.failure_window)
            {
                self.backoff = BACKOFF_FIRST;
            }
            tracing::error!(
                plugin = %self.name(),
                failures = self.failures.len(),
                window = %net_gazer_common::duration::format_duration(self.failure_window),
                disabled_for = %net_gazer_common::duration::format_duration(self.backoff),
                "plugin disabled: too many failures; meanwhile its events are handled as on_error = \"{}\" says",
                self.on_error
            );
            m.disabled.fetch_add(1, Relaxed);
            self.disabled_until = Some(now + self.backoff);
            self.last_disabled = Some(now);
            self.backoff = (self.backoff * 2).min(BACKOFF_MAX);
            self.failures.clear();
            self.instance = None;
        }
    }

    /// The instance, made again if a failure dropped it.
    pub(super) fn ready(&mut self) -> bool {
        if self.instance.is_some() {
            return true;
        }
        self.metrics.restarts.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        match self.instantiate() {
            Ok(()) => true,
            Err((failure, message)) => {
                self.fail(failure, &message);
                false
            }
        }
    }

    /// Calls into the plugin under its deadline; failures are handled here.
    pub(super) fn call<R>(&mut self, f: impl FnOnce(&Instance, &mut Store<State>) -> wasmtime::Result<R>) -> Option<R> {
        let (store, plugin) = self.instance.as_mut()?;
        store.data_mut().host_ticks = 0;
        store.data_mut().host_budget = HOST_BUDGET_MS;
        store.set_epoch_deadline(ticks(self.timeout));
        let result = f(plugin, store);
        match result {
            Ok(r) => Some(r),
            Err(e) => {
                let failure = classify(store, &e);
                self.fail(failure, &one_line(&e));
                None
            }
        }
    }

    pub(super) fn tick(&mut self, now: Timestamp) {
        if self.instance.is_none() || !self.available(Instant::now()) {
            return;
        }
        let now_us = now.as_micros();
        self.call(|p, s| p.tick(s, now_us));
    }
}

fn classify(store: &Store<State>, e: &wasmtime::Error) -> Failure {
    if store.data().out_of_memory {
        Failure::OutOfMemory
    } else if e.downcast_ref::<wasmtime::Trap>() == Some(&wasmtime::Trap::Interrupt) {
        Failure::Timeout
    } else {
        Failure::Trap
    }
}
