//! Time as the pipeline sees it: nanoseconds since the Unix epoch.
//!
//! Packet timestamps come from the capture (kernel or file), never from the
//! clock of the stage that handles them; the state machines receive `now` as
//! an argument. Nanoseconds because pcap-ng and nanosecond pcap files carry
//! them and RTTs on a LAN are a few microseconds.

use std::fmt;
use std::ops::{Add, Sub};
use std::time::Duration;

/// An instant: nanoseconds since 1970-01-01T00:00:00Z (negative before it).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(i64);

impl Timestamp {
    pub const ZERO: Timestamp = Timestamp(0);
    pub const MAX: Timestamp = Timestamp(i64::MAX);

    pub const fn from_nanos(ns: i64) -> Self {
        Timestamp(ns)
    }

    pub const fn from_micros(us: i64) -> Self {
        Timestamp(us.saturating_mul(1_000))
    }

    /// Seconds and a fraction counted in `units_per_sec` (10^6 for µs pcap,
    /// 10^9 for ns pcap, any power of 10 or 2 for pcap-ng `if_tsresol`).
    pub fn from_parts(secs: i64, frac: u64, units_per_sec: u64) -> Self {
        // The two resolutions of nearly every capture take the cheap path
        // (this runs once per packet); i128 only for the rest.
        let fast = match units_per_sec {
            1_000_000 if frac < 1_000_000 => Some(frac as i64 * 1_000),
            1_000_000_000 if frac < 1_000_000_000 => Some(frac as i64),
            _ => None,
        };
        if let Some(frac_ns) = fast {
            if let Some(ns) = secs.checked_mul(1_000_000_000).and_then(|s| s.checked_add(frac_ns)) {
                return Timestamp(ns);
            }
        }
        let frac_ns = (frac as i128 * 1_000_000_000) / units_per_sec.max(1) as i128;
        let ns = secs as i128 * 1_000_000_000 + frac_ns;
        Timestamp(ns.clamp(i64::MIN as i128, i64::MAX as i128) as i64)
    }

    pub const fn as_nanos(self) -> i64 {
        self.0
    }

    /// Integer microseconds since the epoch (floor), as events carry them.
    pub const fn as_micros(self) -> i64 {
        self.0.div_euclid(1_000)
    }

    pub fn saturating_add(self, d: Duration) -> Self {
        Timestamp(self.0.saturating_add(d.as_nanos().min(i64::MAX as u128) as i64))
    }

    /// `self - earlier` in microseconds with nanosecond precision; negative
    /// when the capture recorded them out of order.
    pub fn micros_since(self, earlier: Timestamp) -> f64 {
        (self.0 as i128 - earlier.0 as i128) as f64 / 1_000.0
    }

    /// RFC 3339 in UTC with microseconds: `2024-03-01T12:00:00.123456Z`.
    pub fn rfc3339(self) -> Rfc3339 {
        Rfc3339(self)
    }
}

impl Add<Duration> for Timestamp {
    type Output = Timestamp;
    fn add(self, d: Duration) -> Timestamp {
        self.saturating_add(d)
    }
}

impl Sub for Timestamp {
    type Output = Duration;
    /// Elapsed time, zero if `rhs` is later.
    fn sub(self, rhs: Timestamp) -> Duration {
        Duration::from_nanos(self.0.saturating_sub(rhs.0).max(0) as u64)
    }
}

/// Display adapter for [`Timestamp::rfc3339`].
pub struct Rfc3339(Timestamp);

impl Rfc3339 {
    /// (year, month, day, second of the day, microseconds)
    fn parts(&self) -> (i64, u32, u32, i64, i64) {
        let us = self.0.as_micros();
        let secs = us.div_euclid(1_000_000);
        let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
        (y, m, d, secs.rem_euclid(86_400), us.rem_euclid(1_000_000))
    }

    /// Through the formatting machinery: years outside 0..=9999, and the
    /// reference for the tests.
    fn write_slow(&self, f: &mut impl fmt::Write) -> fmt::Result {
        let (y, m, d, sod, micros) = self.parts();
        write!(
            f,
            "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{micros:06}Z",
            sod / 3600,
            (sod / 60) % 60,
            sod % 60
        )
    }
}

impl fmt::Display for Rfc3339 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (y, m, d, sod, micros) = self.parts();
        let Some(year) = u32::try_from(y).ok().filter(|y| *y <= 9999) else {
            return self.write_slow(f);
        };
        // Every event carries this: digits by hand, not through the
        // formatting machinery (measured: a tenth of the JSON output).
        let mut out = *b"0000-00-00T00:00:00.000000Z";
        digits(&mut out[0..4], year);
        digits(&mut out[5..7], m);
        digits(&mut out[8..10], d);
        digits(&mut out[11..13], (sod / 3600) as u32);
        digits(&mut out[14..16], ((sod / 60) % 60) as u32);
        digits(&mut out[17..19], (sod % 60) as u32);
        digits(&mut out[20..26], micros as u32);
        f.write_str(std::str::from_utf8(&out).map_err(|_| fmt::Error)?)
    }
}

/// `n` as zero-padded decimal filling `out` (the lowest digits if longer).
fn digits(out: &mut [u8], mut n: u32) {
    for b in out.iter_mut().rev() {
        *b = b'0' + (n % 10) as u8;
        n /= 10;
    }
}

impl serde::Serialize for Timestamp {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&self.rfc3339())
    }
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's
/// `civil_from_days`, valid for the whole i64 range we can produce).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_by_hand_equals_the_formatting_machinery() {
        // Spread over the whole range of nanosecond timestamps (1677..2262).
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..100_000 {
            x = x
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            let t = Timestamp::from_nanos(x as i64);
            let mut slow = String::new();
            t.rfc3339().write_slow(&mut slow).unwrap();
            assert_eq!(t.rfc3339().to_string(), slow, "{}", x as i64);
        }
    }

    #[test]
    fn rfc3339_formats_microseconds_in_utc() {
        let t = Timestamp::from_parts(1_418_145_369, 924_505_488, 1_000_000_000);
        assert_eq!(t.rfc3339().to_string(), "2014-12-09T17:16:09.924505Z");
        assert_eq!(t.as_micros(), 1_418_145_369_924_505);
        assert_eq!(Timestamp::ZERO.rfc3339().to_string(), "1970-01-01T00:00:00.000000Z");
        // Leap day and a negative instant.
        let leap = Timestamp::from_parts(951_782_400, 0, 1);
        assert_eq!(leap.rfc3339().to_string(), "2000-02-29T00:00:00.000000Z");
        let before = Timestamp::from_nanos(-1_000);
        assert_eq!(before.rfc3339().to_string(), "1969-12-31T23:59:59.999999Z");
    }

    #[test]
    fn out_of_range_fractions_and_seconds_do_not_overflow() {
        // A corrupt µs field above a second still converts, carried over.
        assert_eq!(Timestamp::from_parts(1, 1_500_000, 1_000_000).as_nanos(), 2_500_000_000);
        assert_eq!(Timestamp::from_parts(i64::MAX, 0, 1_000_000), Timestamp::MAX);
    }

    #[test]
    fn binary_fraction_resolutions_convert() {
        // pcap-ng if_tsresol 2^-10: 512/1024 s is half a second.
        let t = Timestamp::from_parts(10, 512, 1024);
        assert_eq!(t.as_nanos(), 10_500_000_000);
    }

    #[test]
    fn differences_keep_sign_and_nanoseconds() {
        let a = Timestamp::from_nanos(1_000_000_000);
        let b = Timestamp::from_nanos(1_127_521_774);
        assert_eq!(b.micros_since(a), 127_521.774);
        assert_eq!(a.micros_since(b), -127_521.774);
        assert_eq!(a - b, Duration::ZERO);
    }
}
