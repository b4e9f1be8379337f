//! Events the collector refused for good, kept beside the spool in
//! `dead-letter.jsonl`: one JSON object per line with when, which batch,
//! why, and the event as it was sent, so an operator can read the reason
//! and send the events again once the cause is fixed. Bounded: a write
//! that would take the file past `max_bytes` first moves it to
//! `dead-letter.jsonl.1` (replacing an older one).

use std::io::{self, Write};
use std::path::{Path, PathBuf};

pub struct DeadLetter {
    path: PathBuf,
    max_bytes: u64,
}

impl DeadLetter {
    pub fn new(spool_dir: &Path, max_mb: u64) -> DeadLetter {
        DeadLetter {
            path: spool_dir.join("dead-letter.jsonl"),
            max_bytes: max_mb.saturating_mul(1024 * 1024),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends `(event, reason)` pairs of `batch`.
    pub fn write<'a>(&self, batch: &str, refused: impl IntoIterator<Item = (&'a str, &'a str)>) -> io::Result<()> {
        let now = crate::clock::now();
        let mut lines = Vec::new();
        for (event, reason) in refused {
            lines.extend_from_slice(b"{\"refused_at\":\"");
            write!(lines, "{}", now.rfc3339())?;
            lines.extend_from_slice(b"\",\"batch\":");
            serde_json::to_writer(&mut lines, batch).map_err(io::Error::other)?;
            lines.extend_from_slice(b",\"reason\":");
            serde_json::to_writer(&mut lines, reason).map_err(io::Error::other)?;
            lines.extend_from_slice(b",\"event\":");
            lines.extend_from_slice(event.as_bytes());
            lines.extend_from_slice(b"}\n");
        }
        let size = std::fs::metadata(&self.path).map_or(0, |m| m.len());
        if size > 0 && size.saturating_add(lines.len() as u64) > self.max_bytes {
            std::fs::rename(&self.path, self.path.with_extension("jsonl.1"))?;
        }
        let mut f = std::fs::OpenOptions::new().create(true).append(true).open(&self.path)?;
        f.write_all(&lines)?;
        f.sync_data()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_carry_the_reason_and_the_event_and_the_file_stays_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let d = DeadLetter::new(dir.path(), 1);
        let event = format!("{{\"seq\":1,\"pad\":\"{}\"}}", "x".repeat(4000));
        for _ in 0..600 {
            d.write("b1", [(event.as_str(), "field `ts_us`: must be …")]).unwrap();
        }
        let text = std::fs::read_to_string(d.path()).unwrap();
        let line: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
        assert_eq!(line["reason"], "field `ts_us`: must be …");
        assert_eq!(line["batch"], "b1");
        assert_eq!(line["event"]["seq"], 1);
        let size = |p: &Path| std::fs::metadata(p).unwrap().len();
        assert!(size(d.path()) <= 1024 * 1024);
        let old = dir.path().join("dead-letter.jsonl.1");
        assert!(
            size(&old) <= 1024 * 1024 && size(&old) > 1000 * 1024,
            "rotated once full"
        );
    }
}
