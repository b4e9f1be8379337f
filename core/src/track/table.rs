//! The connection table: entries in a slab, a hash index from key to slot.
//!
//! A hash table of whole entries must keep ~40 % of its buckets empty, and
//! rehashes (holding old and new table at once) as evictions leave
//! tombstones. Hashing only `key → u32` keeps that slack and that transient
//! small; the entries themselves sit densely in the slab, whose freed slots
//! are reused, so resident memory follows the number of entries.

use std::collections::hash_map::Entry;

use rustc_hash::FxHashMap;
use slab::Slab;

use super::conn::{Conn, Key};

pub(crate) struct ConnTable {
    index: FxHashMap<Key, u32>,
    entries: Slab<Conn>,
}

impl ConnTable {
    /// Reserves for `capacity` entries up front: address space, not memory,
    /// until used.
    pub fn with_capacity(capacity: usize) -> Self {
        ConnTable {
            index: FxHashMap::with_capacity_and_hasher(capacity, Default::default()),
            entries: Slab::with_capacity(capacity),
        }
    }

    pub fn len(&self) -> usize {
        self.index.len()
    }

    pub fn get(&self, key: &Key) -> Option<&Conn> {
        self.index.get(key).and_then(|&i| self.entries.get(i as usize))
    }

    pub fn get_mut(&mut self, key: &Key) -> Option<&mut Conn> {
        let i = *self.index.get(key)?;
        self.entries.get_mut(i as usize)
    }

    /// Inserts or replaces the entry of `key`.
    pub fn insert(&mut self, key: Key, conn: Conn) {
        match self.index.entry(key) {
            Entry::Occupied(e) => {
                if let Some(slot) = self.entries.get_mut(*e.get() as usize) {
                    *slot = conn;
                }
            }
            Entry::Vacant(e) => {
                e.insert(self.entries.insert(conn) as u32);
            }
        }
    }

    pub fn remove(&mut self, key: &Key) -> Option<Conn> {
        let i = self.index.remove(key)?;
        self.entries.try_remove(i as usize)
    }

    /// Every key with its entry's id (for an ordered flush).
    pub fn ids(&self) -> impl Iterator<Item = (u64, Key)> + '_ {
        self.index
            .iter()
            .filter_map(|(k, &i)| self.entries.get(i as usize).map(|c| (c.id, *k)))
    }

    /// Drops everything and gives the memory back.
    pub fn reset(&mut self) {
        self.index = FxHashMap::default();
        self.entries = Slab::new();
    }
}
