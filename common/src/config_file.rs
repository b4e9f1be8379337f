//! Configuration files: found in a search path, read, and their problems
//! reported with the file, the dotted key and the line.

use std::path::{Path, PathBuf};

/// A configuration problem, before it is tied to a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    /// Dotted key, e.g. `capture.mode`.
    pub key: Option<String>,
    pub line: Option<usize>,
    pub message: String,
}

impl Invalid {
    pub fn in_file(self, path: &Path) -> ConfigError {
        ConfigError::Invalid {
            path: path.to_path_buf(),
            problem: self,
        }
    }
}

impl std::fmt::Display for Invalid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(line) = self.line {
            write!(f, "line {line}: ")?;
        }
        if let Some(key) = &self.key {
            write!(f, "key `{key}`: ")?;
        }
        f.write_str(&self.message)
    }
}

impl std::error::Error for Invalid {}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read configuration file {path}: {error}")]
    Read { path: PathBuf, error: std::io::Error },
    #[error("configuration file {path}: {problem}")]
    Invalid { path: PathBuf, problem: Invalid },
}

/// A configuration file is read up to this size (the shipped ones are a
/// few kilobytes).
pub const MAX_FILE: u64 = 1 << 20;

/// `path` if given, else the first file of `search` that exists; `None`
/// means none does (the defaults apply).
pub fn locate(path: Option<&Path>, search: &[&str]) -> Option<PathBuf> {
    match path {
        Some(p) => Some(p.to_path_buf()),
        None => search.iter().map(PathBuf::from).find(|p| p.is_file()),
    }
}

/// Loads the file [`locate`] finds with `parse`, or `T::default()` when
/// there is none. Returns the file used.
pub fn load<T: Default>(
    path: Option<&Path>,
    search: &[&str],
    parse: impl FnOnce(&str) -> Result<T, Invalid>,
) -> Result<(T, Option<PathBuf>), ConfigError> {
    let Some(path) = locate(path, search) else {
        return Ok((T::default(), None));
    };
    let read = |error| ConfigError::Read {
        path: path.clone(),
        error,
    };
    let bytes = crate::file::read_bounded(&path, MAX_FILE).map_err(read)?;
    let text = String::from_utf8(bytes).map_err(|e| {
        read(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("not UTF-8 text: {e}"),
        ))
    })?;
    let config = parse(&text).map_err(|e| e.in_file(&path))?;
    Ok((config, Some(path)))
}

/// A TOML error as a problem: its line, and the key there.
pub fn toml_problem(text: &str, e: &toml::de::Error) -> Invalid {
    Invalid {
        key: e.span().and_then(|s| key_at(text, s.start)),
        line: e.span().map(|s| line_of(text, s.start)),
        message: e.message().to_string(),
    }
}

/// A problem with `key`, on the line where `text` sets it (if it does).
pub fn key_problem(text: &str, key: &str, message: impl Into<String>) -> Invalid {
    Invalid {
        key: Some(key.to_string()),
        line: find_key(text, key),
        message: message.into(),
    }
}

pub fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].bytes().filter(|&b| b == b'\n').count() + 1
}

/// The dotted key at `offset`: the table header above it plus the key name
/// on its line.
pub fn key_at(text: &str, offset: usize) -> Option<String> {
    let before = &text[..offset.min(text.len())];
    let table = before
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| l.starts_with('[') && l.ends_with(']'))
        .map(|l| l.trim_matches(|c| c == '[' || c == ']').trim().to_string());
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let line = text[line_start..].lines().next().unwrap_or("").trim();
    if line.starts_with('[') {
        return Some(line.trim_matches(|c| c == '[' || c == ']').trim().to_string());
    }
    let name = line
        .split('=')
        .next()
        .map(str::trim)
        .filter(|n| !n.is_empty() && !n.starts_with('#'))?;
    Some(match table {
        Some(t) => format!("{t}.{name}"),
        None => name.to_string(),
    })
}

/// The line of the table header `[table]` in `text`.
pub fn find_table(text: &str, table: &str) -> Option<usize> {
    text.lines()
        .position(|l| {
            let l = l.trim();
            l.starts_with('[') && l.trim_matches(|c| c == '[' || c == ']').trim() == table
        })
        .map(|i| i + 1)
}

/// The line of `table.key` (or of a top-level `key`) in `text`, if it is
/// written there.
pub fn find_key(text: &str, dotted: &str) -> Option<usize> {
    let (table, key) = dotted.rsplit_once('.').unwrap_or(("", dotted));
    let mut current = String::new();
    for (i, raw) in text.lines().enumerate() {
        let l = raw.trim();
        if l.starts_with('[') && l.ends_with(']') {
            current = l.trim_matches(|c| c == '[' || c == ']').trim().to_string();
        } else if current == table && l.split('=').next().map(str::trim) == Some(key) {
            return Some(i + 1);
        }
    }
    None
}
