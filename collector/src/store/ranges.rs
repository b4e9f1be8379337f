//! Which sequence numbers of each sensor are stored, as ranges
//! (`stored_ranges`): the store's uniqueness on (sensor, `seq`). A
//! sensor's batches are runs of consecutive numbers, so this takes a row or
//! two per batch to look up and write, where a unique index on the events
//! took an entry per event (docs/benchmarks.md). Ranges are kept merged
//! (disjoint, not adjacent) and outlive retention: a batch re-sent after
//! its events expired is still a duplicate.
//!
//! The arithmetic on ranges is here, without I/O; each store reads and
//! writes its `stored_ranges` table with it (`near` and `record` in
//! `sqlite.rs` and `postgres.rs`).

/// A run of stored sequence numbers, both ends included.
pub type Range = (u64, u64);

/// Which of `seqs` (a batch's, in its order) are new: in none of
/// `stored` (disjoint, in order) and not earlier in the batch.
pub fn new_ones(seqs: &[u64], stored: &[Range]) -> Vec<bool> {
    let increasing = seqs.windows(2).all(|w| w[0] < w[1]);
    let mut seen = std::collections::HashSet::new();
    let covered = |s: u64| {
        // The last range starting at or before s is the only one that can
        // hold it.
        let i = stored.partition_point(|&(a, _)| a <= s);
        i > 0 && stored[i - 1].1 >= s
    };
    seqs.iter()
        .map(|&s| {
            let again = !increasing && !seen.insert(s);
            !again && !covered(s)
        })
        .collect()
}

/// The runs of consecutive numbers in `sorted` (increasing, no repeats).
pub fn runs(sorted: &[u64]) -> Vec<Range> {
    let mut out: Vec<Range> = Vec::new();
    for &s in sorted {
        match out.last_mut() {
            Some((_, b)) if b.checked_add(1) == Some(s) => *b = s,
            _ => out.push((s, s)),
        }
    }
    out
}

/// `near` and `new` as disjoint, non-adjacent ranges in order.
pub fn merge(near: &[Range], new: &[Range]) -> Vec<Range> {
    let mut all: Vec<Range> = near.iter().chain(new).copied().collect();
    all.sort_unstable();
    let mut out: Vec<Range> = Vec::new();
    for (a, b) in all {
        match out.last_mut() {
            Some((_, last)) if a <= last.saturating_add(1) => *last = (*last).max(b),
            _ => out.push((a, b)),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_ones_skip_the_stored_and_repeats_in_the_batch() {
        assert_eq!(new_ones(&[1, 2, 3], &[]), [true, true, true]);
        assert_eq!(new_ones(&[4, 5, 6, 7], &[(1, 5)]), [false, false, true, true]);
        assert_eq!(new_ones(&[9, 3, 9, 3, 4], &[(4, 4)]), [true, true, false, false, false]);
        assert_eq!(new_ones(&[u64::MAX - 1, 0], &[(0, 0)]), [true, false]);
    }

    #[test]
    fn new_ones_find_their_range_among_many() {
        let stored: Vec<Range> = (0..1000u64).map(|i| (i * 10, i * 10 + 4)).collect();
        assert_eq!(
            new_ones(&[0, 4, 5, 9, 9990, 9994, 9995, 20_000], &stored),
            [false, false, true, true, false, false, true, true]
        );
    }

    #[test]
    fn runs_and_merges() {
        assert_eq!(runs(&[1, 2, 3, 5, 7, 8]), [(1, 3), (5, 5), (7, 8)]);
        assert_eq!(runs(&[]), []);
        // Out of order arrival fills the gap: one range again.
        assert_eq!(merge(&[(1, 1000), (2001, 3000)], &[(1001, 2000)]), [(1, 3000)]);
        assert_eq!(merge(&[(10, 20)], &[(1, 5), (22, 22)]), [(1, 5), (10, 20), (22, 22)]);
        assert_eq!(merge(&[(0, u64::MAX)], &[(5, 6)]), [(0, u64::MAX)]);
    }
}
