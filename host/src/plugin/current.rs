//! "The current event" of contract 0.3: the events a plugin is handling in
//! one call (one, or a batch with a selected entry), lent to its Store for
//! the getters it calls back ([`super::wit::since_v0_3`]), and the tags it
//! sets, kept apart until the call returns (a call that fails adds none,
//! as in every contract version).
//!
//! The events are swapped in and out, not copied: a call costs two moves
//! of each event, whatever it holds.

use crate::event::{set_tag, Event, Stats, Tag, Tagged};

/// The events of one call into a plugin and which of them is current.
#[derive(Default)]
pub struct Current {
    /// The lent events in `slots[..len]`; placeholders elsewhere (kept, so
    /// lending allocates nothing after the largest batch).
    slots: Vec<Tagged>,
    len: usize,
    index: usize,
    /// Tags set during the call: (entry, tag), the latest value of a key
    /// last.
    added: Vec<(usize, Tag)>,
}

/// Why a tag was not set.
#[derive(Debug, PartialEq, Eq)]
pub enum TagRefused {
    NoEvent,
    TooMany,
}

impl Current {
    /// Lends `items` for a call; the first is current.
    pub fn enter(&mut self, items: &mut [&mut Tagged]) {
        while self.slots.len() < items.len() {
            self.slots.push(Tagged::new(Event::Stats(Stats::default())));
        }
        for (slot, item) in self.slots.iter_mut().zip(items.iter_mut()) {
            std::mem::swap(slot, *item);
        }
        self.len = items.len();
        self.index = 0;
        self.added.clear();
    }

    /// Gives `items` back after the call (the same slice as `enter`).
    pub fn leave(&mut self, items: &mut [&mut Tagged]) {
        for (slot, item) in self.slots.iter_mut().zip(items.iter_mut()).take(self.len) {
            std::mem::swap(slot, *item);
        }
        self.len = 0;
        self.index = 0;
    }

    /// The tags set on entry `index` during the last call, in the order
    /// first set, each key once with its last value.
    pub fn added(&self, index: usize) -> Vec<Tag> {
        let mut out = Vec::new();
        for (_, tag) in self.added.iter().filter(|(i, _)| *i == index) {
            set_tag(&mut out, tag.clone());
        }
        out
    }

    /// Makes entry `index` current; false (and nothing changes) past the end.
    pub fn select(&mut self, index: usize) -> bool {
        let ok = index < self.len;
        if ok {
            self.index = index;
        }
        ok
    }

    fn tagged(&self) -> Option<&Tagged> {
        self.slots[..self.len].get(self.index)
    }

    pub fn event(&self) -> Option<&Event> {
        self.tagged().map(|t| &t.event)
    }

    /// The value of tag `key` on the current event, set during this call
    /// or before it.
    pub fn tag(&self, key: &str) -> Option<&str> {
        let added = self
            .added
            .iter()
            .rev()
            .find(|(i, t)| *i == self.index && t.key == key)
            .map(|(_, t)| t.value.as_str());
        added.or_else(|| self.tagged()?.tag(key))
    }

    /// Every tag of the current event with what this call set.
    pub fn tags(&self) -> Vec<Tag> {
        let mut tags = self.tagged().map(|t| t.tags.clone()).unwrap_or_default();
        for tag in self.added(self.index) {
            set_tag(&mut tags, tag);
        }
        tags
    }

    /// Sets a tag on the current event, at most `max` tags per event.
    pub fn set_tag(&mut self, tag: Tag, max: usize) -> Result<(), TagRefused> {
        let Some(item) = self.tagged() else {
            return Err(TagRefused::NoEvent);
        };
        if self.tag(&tag.key).is_none() {
            let new = self
                .added(self.index)
                .iter()
                .filter(|t| item.tag(&t.key).is_none())
                .count();
            if item.tags.len() + new >= max {
                return Err(TagRefused::TooMany);
            }
        }
        self.added.push((self.index, tag));
        Ok(())
    }
}
