//! A plugin's standard output and error, into the daemon's log: one log
//! line per line written, with the plugin's name (`stream = "stderr"` at
//! WARN, `"stdout"` at INFO). This is how a Rust plugin's panic message or
//! a Python exception reaches the operator instead of a bare
//! `wasm unreachable instruction executed`.
//!
//! Bounded: a line is cut at [`MAX_LINE`] bytes, and at most
//! [`LINES_PER_SECOND`] lines a second are logged per stream; the rest are
//! counted and said in one line when the next second starts.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

/// Longest line logged (longer ones are cut, with `…`).
const MAX_LINE: usize = 4096;
/// Lines logged per second and stream; more are counted.
const LINES_PER_SECOND: u32 = 100;

/// Which stream of the plugin.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    fn name(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

/// What WASI is given as a plugin's stdout or stderr.
pub struct PluginOutput {
    name: Arc<str>,
    stream: Stream,
}

impl PluginOutput {
    pub fn new(name: Arc<str>, stream: Stream) -> PluginOutput {
        PluginOutput { name, stream }
    }
}

impl IsTerminal for PluginOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for PluginOutput {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(Lines::new(Arc::clone(&self.name), self.stream))
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(Lines::new(Arc::clone(&self.name), self.stream))
    }
}

/// Bytes written, cut into lines and logged.
pub struct Lines {
    name: Arc<str>,
    stream: Stream,
    pending: Vec<u8>,
    /// Whether the pending line was cut already (the rest is dropped).
    cut: bool,
    second: Option<Instant>,
    logged: u32,
    suppressed: u64,
}

impl Lines {
    pub fn new(name: Arc<str>, stream: Stream) -> Lines {
        Lines {
            name,
            stream,
            pending: Vec::new(),
            cut: false,
            second: None,
            logged: 0,
            suppressed: 0,
        }
    }

    pub fn push(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            let (part, rest, end) = match bytes.iter().position(|&b| b == b'\n') {
                Some(i) => (&bytes[..i], &bytes[i + 1..], true),
                None => (bytes, &[][..], false),
            };
            let room = MAX_LINE.saturating_sub(self.pending.len());
            if part.len() > room {
                self.pending.extend_from_slice(&part[..room]);
                self.cut = true;
            } else if !self.cut {
                self.pending.extend_from_slice(part);
            }
            if end {
                self.end_line();
            }
            bytes = rest;
        }
    }

    fn end_line(&mut self) {
        let mut line = String::from_utf8_lossy(&self.pending).into_owned();
        if self.cut {
            line.push('…');
        }
        self.pending.clear();
        self.cut = false;
        let now = Instant::now();
        if self
            .second
            .is_none_or(|s| now.duration_since(s) >= Duration::from_secs(1))
        {
            if self.suppressed > 0 {
                let plugin = &*self.name;
                tracing::warn!(target: "plugin", plugin, stream = self.stream.name(), suppressed = self.suppressed,
                    "more than {LINES_PER_SECOND} lines a second: lines not logged");
            }
            self.second = Some(now);
            self.logged = 0;
            self.suppressed = 0;
        }
        if self.logged >= LINES_PER_SECOND {
            self.suppressed += 1;
            return;
        }
        self.logged += 1;
        let plugin = &*self.name;
        match self.stream {
            Stream::Stderr => tracing::warn!(target: "plugin", plugin, stream = "stderr", "{line}"),
            Stream::Stdout => tracing::info!(target: "plugin", plugin, stream = "stdout", "{line}"),
        }
    }
}

impl Drop for Lines {
    /// A last line without its newline (a panic message is followed by one,
    /// but a plugin may stop mid-line).
    fn drop(&mut self) {
        if !self.pending.is_empty() {
            self.end_line();
        }
    }
}

#[wasmtime_wasi::async_trait]
impl OutputStream for Lines {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.push(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(64 * 1024)
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for Lines {
    async fn ready(&mut self) {}
}

impl tokio::io::AsyncWrite for Lines {
    fn poll_write(self: Pin<&mut Self>, _cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        self.get_mut().push(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The lines `push` would log, without the log: cut and counted as
    /// `end_line` does.
    fn lines_of(chunks: &[&[u8]]) -> (Vec<u8>, bool) {
        let mut l = Lines::new("t".into(), Stream::Stderr);
        for c in chunks {
            l.push(c);
        }
        let state = (l.pending.clone(), l.cut);
        l.pending.clear();
        state
    }

    #[test]
    fn lines_are_joined_across_writes_and_cut_when_long() {
        let (pending, cut) = lines_of(&[b"pan", b"icked at src/lib.rs:1\nsecond", b" half"]);
        assert_eq!(pending, b"second half");
        assert!(!cut);
        let long = vec![b'x'; MAX_LINE + 10];
        let (pending, cut) = lines_of(&[&long, b"yyy"]);
        assert_eq!(pending.len(), MAX_LINE);
        assert!(cut, "the rest of a long line is dropped");
        let (pending, cut) = lines_of(&[&long, b"\nnext"]);
        assert_eq!((pending.as_slice(), cut), (&b"next"[..], false));
    }
}
