//! JSON lines: one event per line, to standard output or a file.

use std::fs::OpenOptions;
use std::io::{self, Write};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use super::Output;
use crate::event::Tagged;

/// Bytes of lines gathered before one write.
const BUFFER: usize = 64 * 1024;

/// Set once standard output was closed by its reader (`net-gazer replay
/// big.pcap | head`): a replay then stops, quietly, as Unix tools do.
static STDOUT_CLOSED: AtomicBool = AtomicBool::new(false);

/// Whether standard output's reader went away.
pub fn stdout_closed() -> bool {
    STDOUT_CLOSED.load(Ordering::Relaxed)
}

/// Whether `e`, met writing to the output `name`, means standard output's
/// reader went away (and records it): not a failure of the run.
pub fn reader_gone(name: &str, e: &io::Error) -> bool {
    let gone = name == "stdout" && e.kind() == io::ErrorKind::BrokenPipe;
    if gone {
        STDOUT_CLOSED.store(true, Ordering::Relaxed);
    }
    gone
}

/// Events are serialised straight into one buffer of lines, written out
/// when it fills and on flush (no per-line copy into a `BufWriter`).
pub struct JsonLines {
    name: String,
    out: Box<dyn Write + Send>,
    buf: Vec<u8>,
}

impl JsonLines {
    /// `-` for standard output, else a file opened for appending (created
    /// if missing).
    pub fn open(target: &str) -> io::Result<Self> {
        let out: Box<dyn Write + Send> = if target == "-" {
            Box::new(io::stdout())
        } else {
            let file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(Path::new(target))
                .map_err(|e| io::Error::new(e.kind(), format!("cannot open {target}: {e}")))?;
            Box::new(file)
        };
        Ok(Self::new(
            if target == "-" {
                "stdout".into()
            } else {
                target.to_string()
            },
            out,
        ))
    }

    pub fn new(name: String, out: Box<dyn Write + Send>) -> Self {
        JsonLines {
            name,
            out,
            buf: Vec::with_capacity(BUFFER + 4096),
        }
    }

    /// Hands the gathered lines to the target; they are gone either way
    /// (a failed output is not retried).
    fn write_buffer(&mut self) -> io::Result<()> {
        let written = self.out.write_all(&self.buf);
        self.buf.clear();
        written
    }
}

impl Drop for JsonLines {
    fn drop(&mut self) {
        if !self.buf.is_empty() {
            let _ = self.write_buffer();
            let _ = self.out.flush();
        }
    }
}

impl Output for JsonLines {
    fn name(&self) -> &str {
        &self.name
    }

    fn write(&mut self, item: &Tagged) -> io::Result<()> {
        let start = self.buf.len();
        if let Err(e) = super::json::append_tagged(&mut self.buf, item) {
            self.buf.truncate(start);
            return Err(io::Error::other(e));
        }
        self.buf.push(b'\n');
        if self.buf.len() >= BUFFER {
            self.write_buffer()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.write_buffer()?;
        self.out.flush()
    }
}
