//! "The current event" of contract 0.3: the events a plugin is handling in
//! one call (one, or a batch with a selected entry), kept in its Store for
//! the getters it calls back ([`super::wit::since_v0_3`]).

use crate::event::{Event, Tag, Tagged};

/// The events of one call into a plugin and which of them is current.
#[derive(Default)]
pub struct Current {
    items: Vec<Tagged>,
    index: usize,
}

// `set` and `take` are for the chain, which calls 0.3 plugins once the
// version is in `wit::SUPPORTED` (the tests use them until then).
#[cfg_attr(not(test), allow(dead_code))]
impl Current {
    /// The events of the next call; the first is current.
    pub fn set(&mut self, items: Vec<Tagged>) {
        self.items = items;
        self.index = 0;
    }

    /// The events back after the call, with the tags the plugin set.
    pub fn take(&mut self) -> Vec<Tagged> {
        self.index = 0;
        std::mem::take(&mut self.items)
    }

    /// Makes entry `index` current; false (and nothing changes) past the end.
    pub fn select(&mut self, index: usize) -> bool {
        let ok = index < self.items.len();
        if ok {
            self.index = index;
        }
        ok
    }

    pub fn tagged(&self) -> Option<&Tagged> {
        self.items.get(self.index)
    }

    pub fn event(&self) -> Option<&Event> {
        self.tagged().map(|t| &t.event)
    }

    /// Sets a tag on the current event; false when there is none.
    pub fn set_tag(&mut self, tag: Tag) -> bool {
        match self.items.get_mut(self.index) {
            Some(t) => {
                t.set(tag);
                true
            }
            None => false,
        }
    }
}
