//! Timers as FIFO queues, one per kind.
//!
//! Every timer of one kind has the same duration, and time only moves
//! forward, so deadlines enter each queue in order: pushing and popping are
//! O(1) and there is no heap. Entries are not removed when their connection
//! goes away; a popped entry whose id no longer matches is stale and skipped.

use std::collections::VecDeque;

use crate::time::Timestamp;

/// The kinds of timer the tracker keeps (quinn-proto's enum-indexed table).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Timer {
    /// No SYN-ACK or RST within `unanswered_timeout` of the first SYN. Also
    /// the creation order used for eviction.
    Unanswered,
    /// SYN-ACK seen; waiting `ack_timeout` for the client's ACK.
    Ack,
    /// Reported; kept `linger` to absorb retransmissions and duplicates.
    Linger,
    /// Quality mode: no packet for `flow_idle_timeout`.
    Idle,
    /// A SYN-ACK without SYN waits `reorder_window` for its SYN.
    Orphan,
    /// Quality mode: both FINs seen; waiting `ack_timeout` for the last ACK.
    Closing,
}

impl Timer {
    pub const ALL: [Timer; 6] = [
        Timer::Unanswered,
        Timer::Ack,
        Timer::Linger,
        Timer::Idle,
        Timer::Orphan,
        Timer::Closing,
    ];
}

#[derive(Clone, Copy, Debug)]
pub(crate) struct Entry<K> {
    pub deadline: Timestamp,
    pub key: K,
    pub id: u64,
}

pub(crate) struct TimerTable<K> {
    queues: [VecDeque<Entry<K>>; 6],
    /// The earliest front deadline, kept on push and pop: asked for after
    /// every packet.
    earliest: Option<Timestamp>,
}

impl<K: Copy> TimerTable<K> {
    pub fn new() -> Self {
        TimerTable {
            queues: Default::default(),
            earliest: None,
        }
    }

    pub fn push(&mut self, timer: Timer, deadline: Timestamp, key: K, id: u64) {
        let q = &mut self.queues[timer as usize];
        // Keep the queue ordered even when a packet's own timestamp is
        // older than the last deadline (out-of-order capture).
        let deadline = q.back().map_or(deadline, |b| deadline.max(b.deadline));
        q.push_back(Entry { deadline, key, id });
        self.earliest = Some(self.earliest.map_or(deadline, |e| e.min(deadline)));
    }

    /// The earliest deadline of any timer.
    pub fn next_deadline(&self) -> Option<Timestamp> {
        self.earliest
    }

    fn recompute(&mut self) {
        self.earliest = self.queues.iter().filter_map(|q| q.front().map(|e| e.deadline)).min();
    }

    /// Pops the front of `timer`'s queue if it is due at `now`.
    pub fn pop_due(&mut self, timer: Timer, now: Timestamp) -> Option<Entry<K>> {
        let q = &mut self.queues[timer as usize];
        if q.front().is_none_or(|e| e.deadline > now) {
            return None;
        }
        let e = q.pop_front();
        self.recompute();
        e
    }

    /// Pops the front of `timer`'s queue whatever its deadline (eviction).
    pub fn pop_front(&mut self, timer: Timer) -> Option<Entry<K>> {
        let e = self.queues[timer as usize].pop_front();
        self.recompute();
        e
    }

    pub fn shrink(&mut self) {
        for q in &mut self.queues {
            if q.capacity() > 1024 && q.len() < q.capacity() / 4 {
                q.shrink_to(q.len() * 2);
            }
        }
    }
}
