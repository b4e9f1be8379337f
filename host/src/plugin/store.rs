//! What one plugin's Store holds: its WASI context (nothing granted but
//! the read-only directories of its `dirs`), its memory limit, the time it
//! spent in host calls, its metrics and its HTTP client.

use std::sync::Arc;
use std::time::Duration;

use wasmtime::component::ResourceTable;
use wasmtime::ResourceLimiter;
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxView, WasiView};

use super::current::Current;
use super::http::{AllowList, Http};
use super::metrics::PluginMetrics;
use super::output::{PluginOutput, Stream};
use super::wasi_http::Hooks;
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

/// The data of one plugin's Store.
pub struct State {
    pub(super) name: Arc<str>,
    wasi: WasiCtx,
    table: ResourceTable,
    memory_limit: usize,
    /// A memory grew past the limit (the trap that follows is an
    /// out-of-memory, not a bug).
    pub out_of_memory: bool,
    /// Epoch ticks spent in host calls (HTTP) since the call's deadline was
    /// set: the deadline is for the plugin's own time, so it moves by this.
    pub host_ticks: u64,
    /// How much more host time one call may be given back (reset before
    /// each call): a plugin that only waits on the host still ends.
    pub host_budget: u64,
    pub(super) metrics: Arc<PluginMetrics>,
    pub(super) http: Http,
    /// The events of the running call (contract 0.3 reads them lazily).
    pub(super) current: Current,
    http_ctx: WasiHttpCtx,
    /// The allow-list and bounds of `wasi:http`.
    pub(super) http_hooks: Hooks,
}

/// The grants of one plugin, checked when its Store is made.
#[derive(Clone, Debug)]
pub struct Grants {
    /// Canonical directories, opened read-only at their own path.
    pub dirs: Vec<std::path::PathBuf>,
    pub http_allow: Vec<String>,
    pub memory_bytes: usize,
    pub http_timeout: Duration,
}

impl State {
    pub fn new(name: Arc<str>, grants: &Grants, metrics: Arc<PluginMetrics>) -> anyhow::Result<State> {
        let mut wasi = WasiCtx::builder();
        // Nothing by default: no environment, arguments, stdin, sockets or
        // name lookups; only the granted directories, read-only. Standard
        // output and error go to the log (a panic message, an exception).
        wasi.stdout(PluginOutput::new(name.clone(), Stream::Stdout));
        wasi.stderr(PluginOutput::new(name.clone(), Stream::Stderr));
        for dir in &grants.dirs {
            let guest = dir.to_string_lossy();
            wasi.preopened_dir(dir, guest.as_ref(), FsPerms::ReadOnly)
                .map_err(|e| anyhow::anyhow!("cannot open granted directory {}: {e}", dir.display()))?;
        }
        Ok(State {
            name: name.clone(),
            wasi: wasi.build(),
            table: ResourceTable::new(),
            memory_limit: grants.memory_bytes,
            out_of_memory: false,
            host_ticks: 0,
            host_budget: 0,
            metrics,
            http: Http::new(AllowList::new(&grants.http_allow), grants.http_timeout),
            current: Current::default(),
            http_ctx: WasiHttpCtx::new(),
            http_hooks: Hooks::new(name, AllowList::new(&grants.http_allow), grants.http_timeout),
        })
    }
}

impl WasiHttpView for State {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http_ctx,
            table: &mut self.table,
            hooks: &mut self.http_hooks,
        }
    }
}

impl WasiView for State {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// Table elements a plugin may have (function references; generous).
const MAX_TABLE_ELEMENTS: usize = 1 << 20;

impl ResourceLimiter for State {
    fn memory_growing(&mut self, _current: usize, desired: usize, maximum: Option<usize>) -> wasmtime::Result<bool> {
        if desired > self.memory_limit || maximum.is_some_and(|m| desired > m) {
            self.out_of_memory = true;
            // A trap, not a failed `memory.grow`: Rust's allocator would
            // abort anyway, and the trap says why.
            wasmtime::bail!(
                "memory limit: growing to {desired} bytes, the limit is {}",
                self.memory_limit
            );
        }
        self.metrics
            .memory_bytes
            .fetch_max(desired as u64, std::sync::atomic::Ordering::Relaxed);
        Ok(true)
    }

    fn table_growing(&mut self, _current: usize, desired: usize, maximum: Option<usize>) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS && maximum.is_none_or(|m| desired <= m))
    }
}
