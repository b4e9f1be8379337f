//! Compiled plugins on disk, keyed by the `.wasm`'s sha256 and the engine's
//! compatibility hash, so a restart or reload does not compile again.
//!
//! Loading compiled code is trusting it with the whole process, so only a
//! directory that nobody but the daemon's user can write is used, and only
//! files the daemon wrote there. Precompiled files are never taken from the
//! plugin directory.

use std::hash::{Hash, Hasher};
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use wasmtime::component::Component;
use wasmtime::Engine;

pub struct Cache {
    dir: PathBuf,
    engine_key: String,
}

/// Why the cache directory is not used (plugins are then compiled at every
/// start).
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("cannot create {}: {reason}", dir.display())]
    Create { dir: PathBuf, reason: String },
    #[error("{}: {reason}", dir.display())]
    Unreadable { dir: PathBuf, reason: String },
    #[error("{} is not a directory", dir.display())]
    NotADirectory { dir: PathBuf },
    #[error("{} belongs to uid {uid}, not to this process (uid {euid})", dir.display())]
    Owner { dir: PathBuf, uid: u32, euid: u32 },
    #[error("{} is writable by others (mode {mode:o})", dir.display())]
    Writable { dir: PathBuf, mode: u32 },
    #[error("cannot write in {}: {reason}", dir.display())]
    NotWritable { dir: PathBuf, reason: String },
}

impl Cache {
    /// The cache in `dir` (created if missing), or why it cannot be used.
    pub fn open(dir: &Path, engine: &Engine) -> Result<Cache, CacheError> {
        let at = || dir.to_path_buf();
        if !dir.exists() {
            std::fs::create_dir_all(dir).map_err(|e| CacheError::Create {
                dir: at(),
                reason: e.to_string(),
            })?;
            let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700));
        }
        let meta = std::fs::metadata(dir).map_err(|e| CacheError::Unreadable {
            dir: at(),
            reason: e.to_string(),
        })?;
        // SAFETY: geteuid has no preconditions.
        let euid = unsafe { libc::geteuid() };
        if !meta.is_dir() {
            return Err(CacheError::NotADirectory { dir: at() });
        }
        if meta.uid() != euid {
            return Err(CacheError::Owner {
                dir: at(),
                uid: meta.uid(),
                euid,
            });
        }
        if meta.mode() & 0o022 != 0 {
            return Err(CacheError::Writable {
                dir: at(),
                mode: meta.mode() & 0o777,
            });
        }
        let probe = dir.join(".write-test");
        std::fs::write(&probe, b"").map_err(|e| CacheError::NotWritable {
            dir: at(),
            reason: e.to_string(),
        })?;
        let _ = std::fs::remove_file(probe);
        let mut h = std::collections::hash_map::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut h);
        Ok(Cache {
            dir: dir.to_path_buf(),
            engine_key: format!("{:016x}", h.finish()),
        })
    }

    fn path(&self, sha256: &str) -> PathBuf {
        self.dir.join(format!("{sha256}-{}.cwasm", self.engine_key))
    }

    /// The compiled component, if this cache has it.
    pub fn load(&self, engine: &Engine, sha256: &str) -> Option<Component> {
        let path = self.path(sha256);
        if !path.is_file() {
            return None;
        }
        // SAFETY: the file is in a directory only this user can write, named
        // after the source's hash and this engine's compatibility hash, and
        // written by `store` below; wasmtime still checks its header.
        match unsafe { Component::deserialize_file(engine, &path) } {
            Ok(c) => Some(c),
            Err(e) => {
                tracing::warn!(file = %path.display(), error = %e, "cached plugin unusable; compiling again");
                let _ = std::fs::remove_file(&path);
                None
            }
        }
    }

    pub fn store(&self, sha256: &str, component: &Component) {
        let result = component.serialize().map_err(|e| e.to_string()).and_then(|bytes| {
            let mut tmp = tempfile::NamedTempFile::new_in(&self.dir).map_err(|e| e.to_string())?;
            tmp.write_all(&bytes).map_err(|e| e.to_string())?;
            tmp.persist(self.path(sha256)).map_err(|e| e.to_string())?;
            Ok(())
        });
        if let Err(e) = result {
            tracing::warn!(dir = %self.dir.display(), error = %e, "cannot cache a compiled plugin");
        }
    }
}
