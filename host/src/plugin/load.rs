//! From files to plugins ready to run: discovery in the plugin directory,
//! validation (a component, of our world, of a contract version this host
//! runs, asking only for imports we give), compilation through the cache,
//! and the plugin's own description.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use sha2::{Digest, Sha256};
use wasmtime::component::{Component, Linker};
use wasmtime::{Engine, Store};

use super::cache::Cache;
use super::metrics::PluginMetrics;
use super::store::{Grants, State};
use super::wit::{self, Version};
use crate::config::{PluginSettings, PluginsSection};

/// Epoch ticks per millisecond of deadline: the ticker advances the epoch
/// every millisecond, so a 10 ms timeout interrupts after 10-11 ms.
const TICK: Duration = Duration::from_millis(1);

/// Largest plugin file read.
const MAX_FILE: u64 = 512 << 20;

/// Why a file is not loaded; always names the file.
#[derive(Debug, thiserror::Error)]
#[error("plugin {path}: {reason}")]
pub struct Refused {
    pub path: PathBuf,
    pub reason: Refusal,
}

/// Why the plugin directory could not be listed.
#[derive(Debug, thiserror::Error)]
pub enum DiscoverError {
    #[error(transparent)]
    Permissions(#[from] super::permissions::PermissionError),
    #[error("cannot read plugin directory {}: {reason}", dir.display())]
    ReadDir { dir: PathBuf, reason: String },
}

/// What is wrong with a plugin file, from its permissions to what its
/// `describe` answered.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    /// Others could have written it ([`super::permissions`]).
    #[error(transparent)]
    Permissions(#[from] super::permissions::PermissionError),
    /// Not a regular file, too large, or unreadable.
    #[error("{0}")]
    Read(String),
    #[error("not a WebAssembly file")]
    NotWasm,
    #[error(
        "a core WebAssembly module, not a component: build for wasm32-wasip2 (or wrap it with `wasm-tools component new`)"
    )]
    CoreModule,
    #[error("a WebAssembly binary of an unknown version or layer")]
    UnknownBinary,
    #[error("not a valid component: {0}")]
    Invalid(String),
    #[error(
        "a component of another world: it exports {exports}, not net-gazer:plugin/plugin (build it against wit/net-gazer-plugin.wit, world sensor-plugin)"
    )]
    OtherWorld { exports: String },
    #[error("cannot read the contract version of `{0}`")]
    UnreadableVersion(String),
    #[error("contract version {version} is not supported by this net-gazer (it runs {supported})")]
    Unsupported { version: Version, supported: String },
    #[error("needs imports net-gazer does not give (it gives WASI 0.2, wasi:http and the net-gazer:plugin interfaces of its contract version): {0}")]
    Imports(String),
    #[error("{0}")]
    Bindings(String),
    #[error("{0}")]
    Store(String),
    #[error("cannot be instantiated: {0}")]
    Instantiate(String),
    #[error("describe failed: {0}")]
    Describe(String),
    #[error("describe returned an empty or overlong name or version")]
    BadDescription,
}

pub use super::wit::Description;

/// A plugin that passed validation: instantiate it as often as needed.
#[derive(Clone)]
pub struct Prepared {
    /// The file name without `.wasm`: the key of its `[plugins.<name>]`.
    pub name: String,
    pub path: PathBuf,
    pub sha256: String,
    pub contract: Version,
    pub description: Description,
    pub pre: wit::Pre,
}

/// A plugin file found in the directory, with its settings.
#[derive(Clone, Debug)]
pub struct Found {
    pub name: String,
    pub path: PathBuf,
    pub settings: PluginSettings,
    pub enabled: bool,
}

/// The engine (one per process, so compiled code and `InstancePre`s stay
/// valid across reloads) and its epoch ticker.
fn engine() -> anyhow::Result<&'static Engine> {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    if let Some(e) = ENGINE.get() {
        return Ok(e);
    }
    let mut config = wasmtime::Config::new();
    config.epoch_interruption(true);
    if std::env::var("NG_PERF_MAP").is_ok_and(|v| v == "1") {
        // /tmp/perf-PID.map names the plugins' functions in `perf report`.
        config.profiler(wasmtime::ProfilingStrategy::PerfMap);
    }
    let engine = Engine::new(&config).map_err(|e| anyhow::anyhow!("{e:#}"))?;
    let engine = ENGINE.get_or_init(|| engine);
    let weak = engine.weak();
    std::thread::Builder::new().name("ng-epoch".into()).spawn(move || {
        while let Some(engine) = weak.upgrade() {
            engine.increment_epoch();
            drop(engine);
            std::thread::sleep(TICK);
        }
    })?;
    Ok(engine)
}

/// Deadline in epoch ticks for a call allowed `timeout`.
pub fn ticks(timeout: Duration) -> u64 {
    (timeout.as_millis() as u64).max(1) + 1
}

pub struct Loader {
    engine: &'static Engine,
    linker: Linker<State>,
    cache: Option<Cache>,
    /// Compiled components by sha256, so a reload compiles only what changed.
    compiled: HashMap<String, Component>,
    /// Refuse plugin files others could have written ([`super::permissions`]).
    pub strict_permissions: bool,
}

impl Loader {
    /// A loader caching compiled plugins in `cache_dir` when it is usable
    /// (else it logs why and compiles every time).
    pub fn new(cache_dir: Option<&Path>) -> anyhow::Result<Loader> {
        let engine = engine()?;
        let mut linker = Linker::new(engine);
        let wasm_err = |e: wasmtime::Error| anyhow::anyhow!("{e:#}");
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker).map_err(wasm_err)?;
        wasmtime_wasi_http::p2::add_only_http_to_linker_sync(&mut linker).map_err(wasm_err)?;
        wit::add_to_linker(&mut linker).map_err(wasm_err)?;
        let cache = cache_dir.and_then(|dir| match Cache::open(dir, engine) {
            Ok(c) => Some(c),
            Err(e) => {
                tracing::warn!(dir = %dir.display(), reason = %e, "plugin cache not used; plugins are compiled at every start");
                None
            }
        });
        Ok(Loader {
            engine,
            linker,
            cache,
            compiled: HashMap::new(),
            strict_permissions: true,
        })
    }

    pub fn engine(&self) -> &'static Engine {
        self.engine
    }

    /// Every `*.wasm` in the plugin directory: first those named in `order`
    /// (in that order), then the rest by file name. A missing directory is
    /// no plugins, not an error.
    pub fn discover(section: &PluginsSection) -> Result<Vec<Found>, DiscoverError> {
        let dir = &section.dir;
        if section.strict_permissions {
            super::permissions::check_dir(dir)?;
        }
        let entries = match std::fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => {
                return Err(DiscoverError::ReadDir {
                    dir: dir.clone(),
                    reason: e.to_string(),
                })
            }
        };
        let mut files: Vec<(String, PathBuf)> = entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "wasm") && p.is_file())
            .filter_map(|p| Some((p.file_stem()?.to_str()?.to_string(), p)))
            .collect();
        files.sort();
        let rank = |name: &str| section.order.iter().position(|o| o == name).unwrap_or(usize::MAX);
        files.sort_by_key(|(name, _)| rank(name));
        for name in &section.order {
            if !files.iter().any(|(n, _)| n == name) {
                tracing::warn!(plugin = %name, dir = %dir.display(), "plugins.order names a plugin that is not in the directory");
            }
        }
        Ok(files
            .into_iter()
            .map(|(name, path)| {
                let settings = section.each.get(&name).cloned().unwrap_or_default();
                let enabled = settings.enabled.unwrap_or(true);
                Found {
                    name,
                    path,
                    settings,
                    enabled,
                }
            })
            .collect())
    }

    /// Validates and compiles one file, and asks the plugin to describe
    /// itself (in a throwaway instance, under a deadline).
    pub fn prepare(&mut self, name: &str, path: &Path) -> Result<Prepared, Refused> {
        let refuse = |reason: Refusal| Refused {
            path: path.to_path_buf(),
            reason,
        };
        if self.strict_permissions {
            super::permissions::check_file(path).map_err(|e| refuse(Refusal::Permissions(e)))?;
        }
        let bytes = read_limited(path).map_err(refuse)?;
        self.prepare_bytes(name, path, &bytes)
    }

    /// [`Loader::prepare`] on the file's bytes, already read.
    pub fn prepare_bytes(&mut self, name: &str, path: &Path, bytes: &[u8]) -> Result<Prepared, Refused> {
        let refuse = |reason: Refusal| Refused {
            path: path.to_path_buf(),
            reason,
        };
        check_header(bytes).map_err(refuse)?;
        let sha256 = hex(&Sha256::digest(bytes));
        let component = self.compile(name, &sha256, bytes).map_err(refuse)?;
        let contract = contract_version(self.engine, &component).map_err(refuse)?;
        let instance_pre = self
            .linker
            .instantiate_pre(&component)
            .map_err(|e| refuse(Refusal::Imports(super::one_line(&e))))?;
        let pre = wit::Pre::new(contract, instance_pre).map_err(|e| refuse(Refusal::Bindings(format!("{e:#}"))))?;
        let description = describe(self.engine, name, &pre).map_err(refuse)?;
        Ok(Prepared {
            name: name.to_string(),
            path: path.to_path_buf(),
            sha256,
            contract,
            description,
            pre,
        })
    }

    fn compile(&mut self, name: &str, sha256: &str, bytes: &[u8]) -> Result<Component, Refusal> {
        if let Some(c) = self.compiled.get(sha256) {
            return Ok(c.clone());
        }
        let started = std::time::Instant::now();
        let cached = self.cache.as_ref().and_then(|c| c.load(self.engine, sha256));
        let component = match cached {
            Some(c) => {
                tracing::debug!(
                    plugin = name,
                    sha256 = &sha256[..12],
                    took_us = started.elapsed().as_micros() as u64,
                    "compiled plugin loaded from the cache"
                );
                c
            }
            None => {
                let c = Component::new(self.engine, bytes).map_err(|e| Refusal::Invalid(super::one_line(&e)))?;
                tracing::info!(
                    plugin = name,
                    sha256 = &sha256[..12],
                    took_ms = started.elapsed().as_millis() as u64,
                    "plugin compiled"
                );
                if let Some(cache) = &self.cache {
                    cache.store(sha256, &c);
                }
                c
            }
        };
        self.compiled.insert(sha256.to_string(), component.clone());
        Ok(component)
    }

    /// Forgets compiled components no longer in use (after a reload).
    pub fn retain(&mut self, in_use: &[&str]) {
        self.compiled.retain(|k, _| in_use.contains(&k.as_str()));
    }
}

/// The plugin file, refused when it is not a regular file (a device, a
/// FIFO) or larger than [`MAX_FILE`].
fn read_limited(path: &Path) -> Result<Vec<u8>, Refusal> {
    net_gazer_common::file::read_regular(path, MAX_FILE).map_err(|e| {
        Refusal::Read(match e.kind() {
            std::io::ErrorKind::InvalidInput | std::io::ErrorKind::InvalidData => e.to_string(),
            _ => format!("cannot read: {e}"),
        })
    })
}

/// A component starts with `\0asm`, version 0x0d and layer 1; a core module
/// has version 1 and layer 0.
fn check_header(bytes: &[u8]) -> Result<(), Refusal> {
    match bytes.get(..8) {
        Some([0, b'a', b's', b'm', 0x0d, 0, 1, 0]) => Ok(()),
        Some([0, b'a', b's', b'm', 1, 0, 0, 0]) => Err(Refusal::CoreModule),
        Some([0, b'a', b's', b'm', ..]) => Err(Refusal::UnknownBinary),
        _ => Err(Refusal::NotWasm),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The contract version of the `plugin` interface the component exports.
fn contract_version(engine: &Engine, component: &Component) -> Result<Version, Refusal> {
    let ty = component.component_type();
    let exports: Vec<String> = ty.exports(engine).map(|(name, _)| name.to_string()).collect();
    let Some(ours) = exports.iter().find(|n| n.starts_with(wit::EXPORT_PREFIX)) else {
        let list = if exports.is_empty() {
            "nothing".to_string()
        } else {
            exports.join(", ")
        };
        return Err(Refusal::OtherWorld { exports: list });
    };
    let text = &ours[wit::EXPORT_PREFIX.len()..];
    let version = Version::parse(text).ok_or_else(|| Refusal::UnreadableVersion(ours.clone()))?;
    wit::binding_for(version).ok_or_else(|| Refusal::Unsupported {
        version,
        supported: wit::supported_list(),
    })?;
    Ok(version)
}

/// Runs `describe` in a fresh instance with nothing granted.
fn describe(engine: &Engine, name: &str, pre: &wit::Pre) -> Result<Description, Refusal> {
    let grants = Grants {
        dirs: Vec::new(),
        http_allow: Vec::new(),
        memory_bytes: 64 << 20,
        http_timeout: Duration::from_secs(1),
    };
    let state = State::new(name.into(), &grants, Arc::new(PluginMetrics::default()))
        .map_err(|e| Refusal::Store(e.to_string()))?;
    let mut store = Store::new(engine, state);
    store.limiter(|s| s);
    store.set_epoch_deadline(ticks(Duration::from_secs(1)));
    let plugin = pre
        .instantiate(&mut store)
        .map_err(|e| Refusal::Instantiate(super::one_line(&e)))?;
    store.set_epoch_deadline(ticks(Duration::from_secs(1)));
    let mut description = plugin
        .describe(&mut store)
        .map_err(|e| Refusal::Describe(super::one_line(&e)))?;
    if description.name.is_empty() || description.name.len() > 64 || description.version.len() > 64 {
        return Err(Refusal::BadDescription);
    }
    description.wants.dedup();
    Ok(description)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_tell_components_from_modules_and_garbage() {
        assert!(check_header(b"\0asm\x0d\0\x01\0rest").is_ok());
        assert!(matches!(check_header(b"\0asm\x01\0\0\0"), Err(Refusal::CoreModule)));
        assert!(matches!(
            check_header(b"\0asm\x0e\0\x01\0"),
            Err(Refusal::UnknownBinary)
        ));
        assert!(matches!(check_header(b"ELF"), Err(Refusal::NotWasm)));
        assert!(matches!(check_header(b""), Err(Refusal::NotWasm)));
        assert!(Refusal::CoreModule.to_string().contains("core WebAssembly module"));
    }

    #[test]
    fn discovery_orders_by_config_then_name_and_skips_other_files() {
        let dir = tempfile::tempdir().unwrap();
        for f in ["b.wasm", "a.wasm", "c.wasm", "notes.txt", "d.wasm.bak"] {
            std::fs::write(dir.path().join(f), b"").unwrap();
        }
        std::fs::create_dir(dir.path().join("e.wasm")).unwrap();
        let mut section = PluginsSection {
            dir: dir.path().to_path_buf(),
            order: vec!["c".into(), "missing".into()],
            ..PluginsSection::default()
        };
        section.each.insert(
            "b".into(),
            PluginSettings {
                enabled: Some(false),
                ..PluginSettings::default()
            },
        );
        let found = Loader::discover(&section).unwrap();
        let names: Vec<(&str, bool)> = found.iter().map(|f| (f.name.as_str(), f.enabled)).collect();
        assert_eq!(names, vec![("c", true), ("a", true), ("b", false)]);
        section.dir = dir.path().join("absent");
        assert!(Loader::discover(&section).unwrap().is_empty());
    }
}
