//! Which payload-free ACKs can matter in handshake mode.
//!
//! The kernel filter passes every payload-free ACK so that the client's ACK
//! of the SYN-ACK is seen, and each used to look its connection up in a
//! table of everything seen within the linger time — a third of all
//! packets on a typical link, for nothing once the handshake is done. An
//! attempt waits for that ACK from its SYN-ACK until `ack_timeout` (then its
//! timer reports it), so each bucket of keys remembers the latest such
//! deadline; an ACK whose bucket's deadline has passed cannot complete
//! anything and skips the look-up. Several attempts share a bucket only to
//! cost a look-up more, never to lose an ACK.

use std::hash::{BuildHasher, BuildHasherDefault};

use rustc_hash::FxHasher;

use super::conn::Key;
use crate::time::Timestamp;

/// 16,384 deadlines: 128 KiB, in the L2 cache.
const BUCKETS: usize = 1 << 14;

pub(crate) struct AwaitingAck {
    until: Box<[Timestamp]>,
    /// Tests: every ACK may matter (the behaviour without the filter).
    #[cfg(test)]
    pub off: bool,
}

impl AwaitingAck {
    pub fn new() -> Self {
        AwaitingAck {
            until: vec![Timestamp::ZERO; BUCKETS].into_boxed_slice(),
            #[cfg(test)]
            off: false,
        }
    }

    fn bucket(key: &Key) -> usize {
        BuildHasherDefault::<FxHasher>::default().hash_one(key) as usize & (BUCKETS - 1)
    }

    /// The attempt `key` waits for the client's ACK until `deadline`.
    pub fn expect(&mut self, key: &Key, deadline: Timestamp) {
        let slot = &mut self.until[Self::bucket(key)];
        *slot = (*slot).max(deadline);
    }

    /// Whether an ACK of `key` captured at `now` may complete an attempt.
    pub fn may_matter(&self, key: &Key, now: Timestamp) -> bool {
        #[cfg(test)]
        if self.off {
            return true;
        }
        now <= self.until[Self::bucket(key)]
    }
}
