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
use std::path::Path;

/// Why `path` (described by `meta`) could have been written by someone
/// other than root or this process's user; `None` when it could not.
fn problem(path: &Path, meta: &std::fs::Metadata) -> Option<String> {
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    let uid = meta.uid();
    if uid != 0 && uid != euid {
        return Some(format!(
            "{} belongs to uid {uid}, neither root nor the sensor's user (uid {euid}): that account could load code into the sensor",
            path.display()
        ));
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
    Some(format!(
        "{} is writable by {who} (mode {:04o}): they could load code into the sensor; `chmod go-w {}`, or set [plugins] strict_permissions = false",
        path.display(),
        mode & 0o7777,
        path.display()
    ))
}

/// The plugin directory and every directory above it. A directory that
/// does not exist is no plugins, and fine.
pub fn check_dir(dir: &Path) -> Result<(), String> {
    let Ok(real) = std::fs::canonicalize(dir) else {
        return Ok(());
    };
    for d in real.ancestors() {
        let meta = std::fs::metadata(d).map_err(|e| format!("{}: {e}", d.display()))?;
        if let Some(p) = problem(d, &meta) {
            return Err(format!("plugin directory refused: {p}"));
        }
    }
    Ok(())
}

/// One plugin file (after its directory passed [`check_dir`]).
pub fn check_file(path: &Path) -> Result<(), String> {
    let meta = std::fs::metadata(path).map_err(|e| format!("cannot read: {e}"))?;
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
        let e = check_dir(&plugins).unwrap_err();
        assert!(e.contains("writable by its group and others (mode 0777)"), "{e}");
        chmod(&plugins, 0o1777);
        assert_eq!(check_dir(&plugins), Ok(()), "sticky: others cannot replace our files");
        chmod(&plugins, 0o775);
        assert!(check_dir(&plugins).unwrap_err().contains("writable by its group "));
        chmod(&plugins, 0o755);
        // A directory above it.
        chmod(dir.path(), 0o757);
        assert!(check_dir(&plugins).unwrap_err().contains("writable by others"));
        chmod(dir.path(), 0o700);

        chmod(&file, 0o666);
        let e = check_file(&file).unwrap_err();
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
        assert!(e.contains("belongs to uid 65534"), "{e}");
    }
}
