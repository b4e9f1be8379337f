//! The spool: batches waiting for the collector, one gzip file each,
//! named `<first seq, 20 digits>-<events>.json.gz` so that names sort in
//! sequence order and say how many events they hold. Files are written
//! whole under a temporary name and renamed, so a crash leaves either the
//! old state or the new one.

use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use serde_json::value::RawValue;

/// A batch's body read back, decompressed, at most this large: the
/// sensor's own batches are far smaller; a corrupt file is not read on
/// without end.
const MAX_BODY: u64 = 1 << 30;

pub(super) fn batch_name(first: u64, count: usize) -> String {
    format!("{first:020}-{count}.json.gz")
}

/// The events a batch's name says it holds.
pub(super) fn events_in(name: &str) -> u64 {
    name.strip_suffix(".json.gz")
        .and_then(|n| n.split_once('-'))
        .and_then(|(_, c)| c.parse().ok())
        .unwrap_or(0)
}

/// The file name of `path`, as text.
pub(super) fn name_of(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// The spooled batches, oldest first, with their sizes.
pub(super) fn spooled(dir: &Path) -> Vec<(PathBuf, u64)> {
    let mut files: Vec<(PathBuf, u64)> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .filter(|e| e.file_name().to_string_lossy().ends_with(".json.gz"))
                .map(|e| (e.path(), e.metadata().map_or(0, |m| m.len())))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

/// What waits in the spool: batches, events, bytes (the metrics endpoint).
pub fn spool_usage(dir: &Path) -> (u64, u64, u64) {
    let files = spooled(dir);
    let events = files.iter().map(|(p, _)| events_in(&name_of(p))).sum();
    (files.len() as u64, events, files.iter().map(|f| f.1).sum())
}

pub(super) fn write_atomically(path: &Path, data: &[u8]) -> io::Result<()> {
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(data)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

/// The request body of a batch: `{"sensor": …, "events": [e1,e2,…]}`
/// around events already serialised (each `{"seq":N,…}`).
pub fn body<'a>(sensor: &str, events: impl IntoIterator<Item = &'a [u8]>) -> io::Result<Vec<u8>> {
    let mut body = Vec::with_capacity(1 << 16);
    body.extend_from_slice(b"{\"sensor\":");
    serde_json::to_writer(&mut body, sensor).map_err(io::Error::other)?;
    body.extend_from_slice(b",\"events\":[");
    for (i, e) in events.into_iter().enumerate() {
        if i > 0 {
            body.push(b',');
        }
        body.extend_from_slice(e);
    }
    body.extend_from_slice(b"]}");
    Ok(body)
}

pub(super) fn gzip(body: &[u8]) -> io::Result<Vec<u8>> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(body)?;
    gz.finish()
}

/// Writes `gz` (a compressed body) into the spool as the batch of `count`
/// events from `first`; returns its path.
pub(super) fn store(dir: &Path, first: u64, count: usize, gz: &[u8]) -> io::Result<PathBuf> {
    let path = dir.join(batch_name(first, count));
    write_atomically(&path, gz)?;
    Ok(path)
}

/// A spooled batch read back.
pub(super) struct Contents {
    pub sensor: String,
    /// Each event's JSON text, as sent.
    pub events: Vec<String>,
}

/// Reads a spooled batch back (to split it, or to keep its refused events).
pub(super) fn read(path: &Path) -> io::Result<Contents> {
    let mut text = Vec::new();
    flate2::read::GzDecoder::new(std::fs::File::open(path)?)
        .take(MAX_BODY + 1)
        .read_to_end(&mut text)?;
    if text.len() as u64 > MAX_BODY {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "larger than 1 GiB decompressed",
        ));
    }
    #[derive(serde::Deserialize)]
    struct Body<'a> {
        sensor: String,
        #[serde(borrow)]
        events: Vec<&'a RawValue>,
    }
    let b: Body = serde_json::from_slice(&text).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
    Ok(Contents {
        sensor: b.sensor,
        events: b.events.iter().map(|e| e.get().to_string()).collect(),
    })
}

/// The `seq` of an event's JSON text.
fn seq_of(event: &str) -> Option<u64> {
    #[derive(serde::Deserialize)]
    struct Seq {
        seq: u64,
    }
    serde_json::from_str::<Seq>(event).ok().map(|s| s.seq)
}

/// Splits the batch at `path` in two halves, written before the whole is
/// removed (a crash in between sends some events twice, which the
/// collector stores once). `None` for a batch of one event.
pub(super) fn split(path: &Path) -> io::Result<Option<[PathBuf; 2]>> {
    let c = read(path)?;
    if c.events.len() < 2 {
        return Ok(None);
    }
    let dir = path.parent().unwrap_or(Path::new("."));
    let (a, b) = c.events.split_at(c.events.len() / 2);
    let mut halves = Vec::with_capacity(2);
    for half in [a, b] {
        let first = half.first().and_then(|e| seq_of(e)).unwrap_or(0);
        let gz = gzip(&body(&c.sensor, half.iter().map(|e| e.as_bytes()))?)?;
        halves.push(store(dir, first, half.len(), &gz)?);
    }
    std::fs::remove_file(path)?;
    Ok(halves.try_into().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_names_sort_in_sequence_order_and_carry_their_count() {
        let a = batch_name(9, 3);
        let b = batch_name(10, 1000);
        assert!(a < b);
        assert_eq!((events_in(&a), events_in(&b)), (3, 1000));
    }

    #[test]
    fn a_batch_splits_into_halves_that_keep_every_event_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let events: Vec<String> = (7..12).map(|s| format!("{{\"seq\":{s},\"kind\":\"stats\"}}")).collect();
        let gz = gzip(&body("gw1", events.iter().map(|e| e.as_bytes())).unwrap()).unwrap();
        let whole = store(dir.path(), 7, 5, &gz).unwrap();
        let [a, b] = split(&whole).unwrap().expect("two halves");
        assert!(!whole.exists());
        assert_eq!((name_of(&a), name_of(&b)), (batch_name(7, 2), batch_name(9, 3)));
        let (ra, rb) = (read(&a).unwrap(), read(&b).unwrap());
        assert_eq!(ra.sensor, "gw1");
        assert_eq!([ra.events, rb.events].concat(), events);
        let gz = gzip(&body("gw1", [events[0].as_bytes()]).unwrap()).unwrap();
        let single = store(dir.path(), 1, 1, &gz).unwrap();
        assert!(split(&single).unwrap().is_none());
    }
}
