//! Reading files named by an operator or a configuration: never a device,
//! never without a bound, never blocking on a FIFO that has no writer.

use std::fs::{File, FileType, Metadata};
use std::io::{self, Read};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

/// What a file is, for messages: "a character device".
pub fn kind_of(t: FileType) -> &'static str {
    if t.is_file() {
        "a regular file"
    } else if t.is_dir() {
        "a directory"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else if t.is_fifo() {
        "a FIFO (named pipe)"
    } else if t.is_socket() {
        "a socket"
    } else {
        "not a regular file"
    }
}

/// Opens `path` for reading without blocking (a FIFO with no writer would
/// block `open` for good), with what it is.
pub fn open(path: &Path) -> io::Result<(File, Metadata)> {
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)?;
    let meta = f.metadata()?;
    Ok((f, meta))
}

/// Turns the non-blocking descriptor of [`open`] back into a blocking one.
pub fn set_blocking(f: &File) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let fd = f.as_raw_fd();
    // SAFETY: fcntl on a descriptor this File owns, with plain flags.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    if flags < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: as above.
    if unsafe { libc::fcntl(fd, libc::F_SETFL, flags & !libc::O_NONBLOCK) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Waits until a FIFO opened by [`open`] has data or has had a writer, at
/// most `wait`: false when no writer came.
pub fn wait_for_writer(file: &File, wait: std::time::Duration) -> io::Result<bool> {
    use std::os::fd::AsRawFd;
    let deadline = std::time::Instant::now() + wait;
    let mut pfd = libc::pollfd {
        fd: file.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let ms = i32::try_from(left.as_millis().min(1000)).unwrap_or(1000);
        // SAFETY: one valid pollfd, owned by this frame.
        match unsafe { libc::poll(&mut pfd, 1, ms) } {
            n if n > 0 => return Ok(true),
            n if n < 0 && io::Error::last_os_error().kind() != io::ErrorKind::Interrupted => {
                return Err(io::Error::last_os_error())
            }
            _ if left.is_zero() => return Ok(false),
            _ => {}
        }
    }
}

/// How long a configuration file that is a FIFO may take to get a writer.
const FIFO_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// At most `max` bytes of `path`: a regular file, a character device
/// (`/dev/null`) or a pipe (`<(…)`, waited on for a writer at most
/// 10 s); a directory, or more than `max` bytes, is refused with what it is.
pub fn read_bounded(path: &Path, max: u64) -> io::Result<Vec<u8>> {
    let (f, meta) = open(path)?;
    let ft = meta.file_type();
    if ft.is_dir() || ft.is_socket() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} is {}, not a file to read", path.display(), kind_of(ft)),
        ));
    }
    if ft.is_fifo() && !wait_for_writer(&f, FIFO_WAIT)? {
        return Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!(
                "{} is a FIFO that nothing wrote to within {} s",
                path.display(),
                FIFO_WAIT.as_secs()
            ),
        ));
    }
    read_at_most(f, max, 0, |_| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{} holds more than the {max} bytes allowed", path.display()),
        )
    })
}

/// Reads `f` (in blocking mode) up to `max` bytes; more is `too_large` of
/// the length read.
fn read_at_most(f: File, max: u64, capacity: usize, too_large: impl FnOnce(u64) -> io::Error) -> io::Result<Vec<u8>> {
    set_blocking(&f)?;
    let mut out = Vec::with_capacity(capacity);
    f.take(max.saturating_add(1)).read_to_end(&mut out)?;
    if out.len() as u64 > max {
        return Err(too_large(out.len() as u64));
    }
    Ok(out)
}

/// The whole of the regular file `path`, at most `max` bytes; anything else
/// (a device, a FIFO, a directory, a larger file) is refused with an error
/// that says what it is.
pub fn read_regular(path: &Path, max: u64) -> io::Result<Vec<u8>> {
    let (f, meta) = open(path)?;
    if !meta.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "{} is {}, not a regular file",
                path.display(),
                kind_of(meta.file_type())
            ),
        ));
    }
    let too_large = |n: u64| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{} is {n} bytes, more than the {max} allowed", path.display()),
        )
    };
    if meta.len() > max {
        return Err(too_large(meta.len()));
    }
    read_at_most(f, max, meta.len() as usize, too_large)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_fifos_and_large_files_are_refused_with_what_they_are() {
        let e = read_regular(Path::new("/dev/zero"), 1 << 20).unwrap_err();
        assert!(e.to_string().contains("/dev/zero is a character device"), "{e}");
        let dir = tempfile::tempdir().unwrap();
        let e = read_regular(dir.path(), 1 << 20).unwrap_err();
        assert!(e.to_string().contains("is a directory"), "{e}");
        let fifo = dir.path().join("fifo");
        let c = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let e = read_regular(&fifo, 1 << 20).unwrap_err();
        assert!(e.to_string().contains("is a FIFO"), "no writer, and no wait: {e}");
        let big = dir.path().join("big");
        std::fs::write(&big, vec![1u8; 2000]).unwrap();
        let e = read_regular(&big, 1000).unwrap_err();
        assert!(e.to_string().contains("2000 bytes, more than the 1000 allowed"), "{e}");
        assert_eq!(read_regular(&big, 2000).unwrap().len(), 2000);
    }

    #[test]
    fn bounded_reads_take_null_and_pipes_but_not_endless_devices() {
        assert_eq!(read_bounded(Path::new("/dev/null"), 100).unwrap(), b"");
        let e = read_bounded(Path::new("/dev/zero"), 1 << 20).unwrap_err();
        assert!(e.to_string().contains("more than the 1048576 bytes allowed"), "{e}");
        let dir = tempfile::tempdir().unwrap();
        assert!(read_bounded(dir.path(), 100)
            .unwrap_err()
            .to_string()
            .contains("is a directory"));
    }
}
