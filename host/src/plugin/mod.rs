//! The plugin host: WebAssembly components (contract in `wit/`, one
//! binding module per version in [`wit`]) that every event passes through
//! before the outputs, in order, each able to keep, drop or tag it.
//!
//! - [`load`] finds, validates and compiles plugin files ([`cache`] keeps
//!   compiled code across restarts);
//! - [`supervise`] runs one plugin in its own sandboxed Store, with a
//!   deadline before every call and a memory cap, restarting or disabling
//!   it when it fails; [`chain`] routes every event through the plugins in
//!   order;
//! - [`store`] is what one plugin's Store holds (WASI context, limits),
//!   [`host_api`] the `host` functions it may call, and [`http`] its
//!   allow-listed HTTP client;
//! - [`Plugins`] (re)loads the whole chain; [`ChainStage`] runs it on the
//!   output thread and swaps in a reloaded chain between two batches, so no
//!   event is lost or seen twice by a reload.

pub mod cache;
pub mod chain;
mod current;
pub mod export;
mod host_api;
pub mod http;
pub mod load;
pub mod metrics;
mod output;
pub mod permissions;
mod store;
pub mod supervise;
mod wasi_http;
pub mod wit;

use std::collections::BTreeMap;
use std::sync::mpsc::{self, Receiver, Sender};

pub use chain::Chain;
pub use load::{Description, Found, Loader, Prepared, Refused};
pub use metrics::Registry;

use crate::config::{Config, PluginSettings, PluginsSection};
use crate::event::Tagged;
use crate::output::Stage;
use crate::time::Timestamp;

/// Loads plugins into chains, remembering the last good version of each.
pub struct Plugins {
    /// Made when there is a first plugin to load: no engine (nor its epoch
    /// ticker) without plugins.
    loader: Option<Loader>,
    registry: Registry,
    /// What the current chain runs, by plugin name.
    current: BTreeMap<String, (Prepared, PluginSettings)>,
}

impl Plugins {
    pub fn new(registry: Registry) -> Plugins {
        Plugins {
            loader: None,
            registry,
            current: BTreeMap::new(),
        }
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// A chain of every enabled plugin in `section.dir`. A plugin that is
    /// refused is logged and left out; if an earlier version of it was
    /// running, that version stays. Everything that changed is logged.
    pub fn load(&mut self, section: &PluginsSection) -> Chain {
        let found = match Loader::discover(section) {
            Ok(f) => f,
            Err(e) => {
                tracing::error!("{e}; keeping the plugins already loaded");
                return self.restart_current(section);
            }
        };
        if found.iter().any(|f| f.enabled) && self.loader.is_none() {
            match Loader::new(Some(&section.cache_dir)) {
                Ok(l) => self.loader = Some(l),
                Err(e) => {
                    tracing::error!("cannot start the WebAssembly engine: {e:#}; running without plugins");
                    return Chain::default();
                }
            }
        }
        if let Some(l) = self.loader.as_mut() {
            l.strict_permissions = section.strict_permissions;
        }
        let mut running = Vec::new();
        let mut next = BTreeMap::new();
        for f in found {
            if !f.enabled {
                tracing::info!(plugin = %f.name, "plugin disabled in the configuration");
                continue;
            }
            let previous = self.current.get(&f.name);
            let metrics = self.registry.get(&f.name);
            let Some(loader) = self.loader.as_mut() else { break };
            let attempt = loader
                .prepare(&f.name, &f.path)
                .map_err(|e| e.to_string())
                .and_then(|p| {
                    supervise::Running::start(p, f.settings.clone(), section, metrics.clone())
                        .map_err(|e| format!("plugin {}: {e}", f.path.display()))
                });
            match attempt {
                Ok(r) => {
                    let p = r.prepared();
                    let change = match previous {
                        None => "loaded",
                        Some((old, _)) if old.sha256 != p.sha256 => "updated",
                        Some((_, old)) if *old != f.settings => "reconfigured",
                        Some(_) => "unchanged",
                    };
                    tracing::info!(
                        plugin = %f.name,
                        name = %p.description.name,
                        version = %p.description.version,
                        contract = %p.contract,
                        sha256 = %&p.sha256[..12],
                        wants = %p.description.wants_list(),
                        batch = r.batch(),
                        role = %r.role(),
                        "plugin {change}"
                    );
                    next.insert(f.name.clone(), (p.clone(), f.settings.clone()));
                    running.push(r);
                }
                Err(e) => match previous {
                    Some((old, settings)) => {
                        match supervise::Running::start(old.clone(), settings.clone(), section, metrics) {
                            Ok(r) => {
                                tracing::error!("{e}; keeping the previous version");
                                next.insert(f.name.clone(), (old.clone(), settings.clone()));
                                running.push(r);
                            }
                            Err(e2) => tracing::error!("{e}; the previous version failed too: {e2}"),
                        }
                    }
                    None => {
                        tracing::error!("{e}; not loaded");
                        if !self.current.contains_key(&f.name) {
                            self.registry.forget(&f.name);
                        }
                    }
                },
            }
        }
        for name in self.current.keys().filter(|n| !next.contains_key(*n)) {
            tracing::info!(plugin = %name, "plugin unloaded");
        }
        self.current = next;
        let in_use: Vec<&str> = self.current.values().map(|(p, _)| p.sha256.as_str()).collect();
        if let Some(loader) = self.loader.as_mut() {
            loader.retain(&in_use);
        }
        if !running.is_empty() || !self.current.is_empty() {
            let names: Vec<&str> = running.iter().map(|r| r.name()).collect();
            tracing::info!(plugins = %names.join(" → "), "plugin chain ready");
        }
        chain_of(running)
    }

    /// The current plugins again, in fresh instances.
    fn restart_current(&mut self, section: &PluginsSection) -> Chain {
        let mut running = Vec::new();
        for (name, (p, settings)) in &self.current {
            match supervise::Running::start(p.clone(), settings.clone(), section, self.registry.get(name)) {
                Ok(r) => running.push(r),
                Err(e) => tracing::error!(plugin = %name, "{e}"),
            }
        }
        chain_of(running)
    }
}

/// The filters in order; the exporters, each on a thread of its own.
fn chain_of(running: Vec<supervise::Running>) -> Chain {
    let mut filters = Vec::new();
    let mut lanes = Vec::new();
    for r in running {
        if r.role() == crate::config::Role::Exporter {
            let name = r.name().to_string();
            match export::Lane::spawn(r) {
                Ok(lane) => lanes.push(lane),
                Err(e) => tracing::error!(plugin = %name, "cannot start the exporter's thread: {e}; not loaded"),
            }
        } else {
            filters.push(r);
        }
    }
    Chain::new(filters, lanes)
}

/// The chain on the output thread; a reload hands it a new chain, taken
/// between two batches.
pub struct ChainStage {
    chain: Chain,
    swap: Receiver<Chain>,
    /// Exporters of replaced chains finishing on their own threads (each
    /// within `export::STOP_WAIT`); joined at the stop, so their counts
    /// are final when the daemon reports them.
    stopping: Vec<std::thread::JoinHandle<()>>,
}

impl ChainStage {
    pub fn new(chain: Chain) -> (ChainStage, Sender<Chain>) {
        let (tx, rx) = mpsc::channel();
        (
            ChainStage {
                chain,
                swap: rx,
                stopping: Vec::new(),
            },
            tx,
        )
    }

    fn take_swap(&mut self) {
        // Only the newest matters if reloads came quickly.
        let mut newest = None;
        while let Ok(c) = self.swap.try_recv() {
            newest = Some(c);
        }
        if let Some(chain) = newest {
            let names: Vec<&str> = chain.plugins().iter().map(|r| r.name()).collect();
            tracing::info!(plugins = %names.join(" → "), "reloaded plugin chain active");
            // A last tick lets the old plugins flush what they buffered;
            // the old exporters take what they have queued and flush on
            // their own threads.
            let mut old = std::mem::replace(&mut self.chain, chain);
            old.tick(crate::clock::now());
            self.stopping.retain(|h| !h.is_finished());
            self.stopping.extend(old.stop_exporters(export::STOP_WAIT));
        }
    }
}

impl Stage for ChainStage {
    fn process(&mut self, batch: &mut Vec<Tagged>) {
        self.take_swap();
        self.chain.process(batch);
    }

    fn tick(&mut self, now: Timestamp) {
        self.take_swap();
        self.chain.tick(now);
    }

    fn wake(&mut self) {
        self.take_swap();
    }

    fn finish(&mut self) {
        // The last tick: plugins flush what they buffered; exporters take
        // what they have queued and flush (at most export::STOP_WAIT).
        self.chain.tick(crate::clock::now());
        let current = self.chain.stop_exporters(export::STOP_WAIT);
        for h in std::mem::take(&mut self.stopping).into_iter().chain(current) {
            let _ = h.join();
        }
    }
}

/// Reloads on request, off the capture and output threads: reads the
/// configuration again with `reconfigure`, builds the new chain (compiling
/// what changed), then hands it to the output thread.
pub fn spawn_reloader(
    mut plugins: Plugins,
    reconfigure: Box<dyn Fn() -> anyhow::Result<Config> + Send>,
    swap: Sender<Chain>,
    waker: crate::output::Waker,
) -> std::io::Result<Sender<()>> {
    let (tx, rx) = mpsc::channel::<()>();
    std::thread::Builder::new().name("ng-reload".into()).spawn(move || {
        while rx.recv().is_ok() {
            let started = std::time::Instant::now();
            match reconfigure() {
                Ok(config) => {
                    let chain = plugins.load(&config.plugins);
                    tracing::info!(took_us = started.elapsed().as_micros() as u64, "plugins reloaded");
                    if swap.send(chain).is_err() {
                        break;
                    }
                    waker.wake();
                }
                Err(e) => tracing::error!("reload: {e:#}; plugins unchanged"),
            }
        }
    })?;
    Ok(tx)
}

/// An error on one line: the causes without wasmtime's backtrace.
pub fn one_line(e: &wasmtime::Error) -> String {
    let parts: Vec<String> = e
        .chain()
        .map(|c| c.to_string())
        .filter(|m| !m.starts_with("error while executing at wasm backtrace"))
        .map(|m| m.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect();
    if parts.is_empty() {
        e.to_string().split_whitespace().collect::<Vec<_>>().join(" ")
    } else {
        parts.join(": ")
    }
}
