//! The wall clock, read by the drivers only: the core's state machines take
//! time as an input.

use crate::time::Timestamp;

/// The current wall-clock time.
pub fn now() -> Timestamp {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    Timestamp::from_nanos(i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}
