//! JSON lines: one event per line, to standard output or a file.

use std::fs::OpenOptions;
use std::io::{self, BufWriter, Write};
use std::path::Path;

use super::Output;
use crate::event::Tagged;

pub struct JsonLines {
    name: String,
    out: BufWriter<Box<dyn Write + Send>>,
    line: Vec<u8>,
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
            out: BufWriter::with_capacity(64 * 1024, out),
            line: Vec::with_capacity(2048),
        }
    }
}

impl Output for JsonLines {
    fn name(&self) -> &str {
        &self.name
    }

    fn write(&mut self, item: &Tagged) -> io::Result<()> {
        self.line.clear();
        super::json::append_tagged(&mut self.line, item).map_err(io::Error::other)?;
        self.line.push(b'\n');
        self.out.write_all(&self.line)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}
