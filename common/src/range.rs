//! The accepted range of every numeric setting. Each configuration lists
//! its numeric keys once ([`Bounded`] values); `check-config`, the start
//! and the documentation's tables read that one list, so nothing
//! `check-config` accepts can overflow or exhaust memory at run time.

use std::fmt;
use std::time::Duration;

use crate::duration::format_duration;

/// A setting's value or bound: a count or a duration.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Value {
    Count(u128),
    Time(Duration),
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Count(n) => write!(f, "{n}"),
            Value::Time(d) => f.write_str(&format_duration(*d)),
        }
    }
}

/// One numeric key, its value and its accepted range (both ends included).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bounded {
    pub key: String,
    pub value: Value,
    pub min: Value,
    pub max: Value,
}

/// A count `key` = `value`, accepted from `min` to `max`.
pub fn count(key: impl Into<String>, value: impl Into<u128>, min: u128, max: u128) -> Bounded {
    Bounded {
        key: key.into(),
        value: Value::Count(value.into()),
        min: Value::Count(min),
        max: Value::Count(max),
    }
}

/// A duration `key` = `value`, accepted from `min` to `max`.
pub fn time(key: impl Into<String>, value: Duration, min: Duration, max: Duration) -> Bounded {
    Bounded {
        key: key.into(),
        value: Value::Time(value),
        min: Value::Time(min),
        max: Value::Time(max),
    }
}

impl Bounded {
    /// `Err((key, message))` when the value is outside its range.
    pub fn check(&self) -> Result<(), (String, String)> {
        if (self.min..=self.max).contains(&self.value) {
            return Ok(());
        }
        Err((
            self.key.clone(),
            format!("must be from {} to {}, not {}", self.min, self.max, self.value),
        ))
    }

    /// The range as the documentation writes it: `1–65535`.
    pub fn range(&self) -> String {
        format!("{}–{}", self.min, self.max)
    }
}

/// The first value of `list` outside its range.
pub fn check_all(list: &[Bounded]) -> Result<(), (String, String)> {
    list.iter().try_for_each(Bounded::check)
}

/// Checks that `doc` (a Markdown page) states the range of every key of
/// `list` on the row or line that names the key: for the tests that hold
/// the documentation to the code. Returns the keys it does not.
pub fn undocumented(list: &[Bounded], doc: &str) -> Vec<String> {
    list.iter()
        .filter(|b| {
            let name = format!("`{}`", b.key.rsplit('.').next().unwrap_or(&b.key));
            let full = format!("`{}`", b.key);
            !doc.lines()
                .any(|l| (l.contains(&name) || l.contains(&full)) && l.contains(&b.range()))
        })
        .map(|b| format!("{} ({})", b.key, b.range()))
        .collect()
}

/// For the fuzz targets of the configuration files: asserts that every
/// value a parser accepted is in its range and every duration can be
/// added to now (a deadline that cannot overflow) and is at most a year.
pub fn assert_usable(list: &[Bounded]) {
    for b in list {
        assert_eq!(b.check(), Ok(()), "accepted out of range");
        if let Value::Time(d) = b.value {
            assert!(
                std::time::Instant::now().checked_add(d).is_some(),
                "{}: {d:?} overflows a deadline",
                b.key
            );
            assert!(d <= Duration::from_secs(365 * 86_400), "{}: longer than a year", b.key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_outside_the_range_name_the_key_and_the_range() {
        assert_eq!(count("a.b", 5u32, 1, 10).check(), Ok(()));
        let (key, message) = count("track.max_connections", 4_294_967_296u64, 1, 10_000_000)
            .check()
            .unwrap_err();
        assert_eq!(key, "track.max_connections");
        assert_eq!(message, "must be from 1 to 10000000, not 4294967296");
        let (_, message) = time(
            "x.t",
            Duration::from_secs(86_400 * 400),
            Duration::from_millis(1),
            Duration::from_secs(86_400),
        )
        .check()
        .unwrap_err();
        assert_eq!(message, "must be from 1ms to 1d, not 400d");
        assert!(time("x.t", Duration::ZERO, Duration::ZERO, Duration::from_secs(1))
            .check()
            .is_ok());
    }

    #[test]
    fn documentation_rows_must_carry_the_range() {
        let list = [count("output.queue_size", 1u32, 1, 1_000_000)];
        assert!(undocumented(&list, "| `queue_size` | 65536 | 1–1000000 | events |").is_empty());
        assert_eq!(undocumented(&list, "| `queue_size` | 65536 | events |").len(), 1);
    }
}
