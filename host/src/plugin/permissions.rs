//! Who could have put code into the sensor: the checks of sshd's
//! `StrictModes`, for the plugin directory and every plugin file.
//!
//! A plugin runs inside the sensor with whatever the operator granted it,
//! so whoever can write the plugin directory (or a directory above it, or
//! a plugin file) can load code into the sensor. Each of them must belong
//! to root or to the user the sensor runs as, and be writable by nobody
//! else — except a directory with the sticky bit (such as /tmp), where
//! others cannot rename or delete what is not theirs. `[plugins]
//! strict_permissions = false` turns the checks off, for those who insist.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// Who else could have written a plugin file or directory.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PermissionError {
    #[error(
        "{} belongs to uid {uid}, neither root nor the sensor's user (uid {euid}): that account could load code into the sensor",
        path.display()
    )]
    Owner { path: PathBuf, uid: u32, euid: u32 },
    #[error(
        "{} is writable by {who} (mode {mode:04o}): they could load code into the sensor; `chmod go-w {}`, or set [plugins] strict_permissions = false",
        path.display(),
        path.display()
    )]
    Writable {
        path: PathBuf,
        who: &'static str,
        mode: u32,
    },
    /// The plugin directory, or one above it, is one of the above.
    #[error("plugin directory refused: {0}")]
    Directory(Box<PermissionError>),
    #[error("{}: {reason}", path.display())]
    Unreadable { path: PathBuf, reason: String },
}

/// Why `path` (described by `meta`) could have been written by someone
/// other than root or this process's user; `None` when it could not.
fn problem(path: &Path, meta: &std::fs::Metadata) -> Option<PermissionError> {
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    let uid = meta.uid();
    if uid != 0 && uid != euid {
        return Some(PermissionError::Owner {
            path: path.to_path_buf(),
            uid,
            euid,
        });
    }
    let mode = meta.mode();
    let sticky_dir = meta.is_dir() && mode & 0o1000 != 0;
    let who = match (mode & 0o020 != 0, mode & 0o002 != 0) {
        _ if sticky_dir => return None,
        (true, true) => "its group and others",
        (true, false) => "its group",
        (false, true) => "others",
        (false, false) => return None,
    };
    Some(PermissionError::Writable {
        path: path.to_path_buf(),
        who,
        mode: mode & 0o7777,
    })
}

/// The plugin directory and every directory above it. A directory that
/// does not exist is no plugins, and fine.
pub fn check_dir(dir: &Path) -> Result<(), PermissionError> {
    let Ok(real) = std::fs::canonicalize(dir) else {
        return Ok(());
    };
    for d in real.ancestors() {
        let meta = std::fs::metadata(d).map_err(|e| PermissionError::Unreadable {
            path: d.to_path_buf(),
            reason: e.to_string(),
        })?;
        if let Some(p) = problem(d, &meta) {
            return Err(PermissionError::Directory(Box::new(p)));
        }
    }
    Ok(())
}

/// One plugin file (after its directory passed [`check_dir`]).
pub fn check_file(path: &Path) -> Result<(), PermissionError> {
    let meta = std::fs::metadata(path).map_err(|e| PermissionError::Unreadable {
        path: path.to_path_buf(),
        reason: format!("cannot read: {e}"),
    })?;
    problem(path, &meta).map_or(Ok(()), Err)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn chmod(p: &Path, mode: u32) {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    #[test]
    fn writable_by_group_or_others_is_refused_unless_sticky() {
        let dir = tempfile::tempdir().unwrap();
        let plugins = dir.path().join("plugins");
        std::fs::create_dir(&plugins).unwrap();
        chmod(&plugins, 0o755);
        let file = plugins.join("a.wasm");
        std::fs::write(&file, b"").unwrap();
        chmod(&file, 0o644);
        assert_eq!(check_dir(&plugins), Ok(()), "/tmp above is sticky, the rest ours");
        assert_eq!(check_file(&file), Ok(()));

        chmod(&plugins, 0o777);
        let e = check_dir(&plugins).unwrap_err().to_string();
        assert!(e.contains("writable by its group and others (mode 0777)"), "{e}");
        chmod(&plugins, 0o1777);
        assert_eq!(check_dir(&plugins), Ok(()), "sticky: others cannot replace our files");
        chmod(&plugins, 0o775);
        assert!(check_dir(&plugins)
            .unwrap_err()
            .to_string()
            .contains("writable by its group "));
        chmod(&plugins, 0o755);
        // A directory above it.
        chmod(dir.path(), 0o757);
        assert!(matches!(
            check_dir(&plugins),
            Err(PermissionError::Directory(e)) if matches!(*e, PermissionError::Writable { who: "others", .. })
        ));
        chmod(dir.path(), 0o700);

        chmod(&file, 0o666);
        let e = check_file(&file).unwrap_err().to_string();
        assert!(e.contains("a.wasm is writable by its group and others"), "{e}");
        assert_eq!(check_dir(&plugins.join("absent")), Ok(()), "no directory, no plugins");
    }

    /// As root: a plugin file of another user is refused.
    #[test]
    fn a_file_of_another_user_is_refused() {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("SKIPPED: chown needs root (CI runs as root)");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("b.wasm");
        std::fs::write(&file, b"").unwrap();
        std::os::unix::fs::chown(&file, Some(65534), None).unwrap();
        let e = check_file(&file).unwrap_err();
        assert!(matches!(e, PermissionError::Owner { uid: 65534, .. }), "{e}");
    }
}
