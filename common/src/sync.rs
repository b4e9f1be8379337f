//! Shared state that a panic cannot poison.
//!
//! A panic in one request or one thread must not make every later user of
//! the same state fail ("the lock is poisoned"): each user of a [`Lock`]
//! leaves the data consistent at every point where it could panic (a store
//! transaction rolls back when dropped; counters are plain numbers), so the
//! lock is simply taken again after a panic.

use std::sync::{Mutex, MutexGuard, PoisonError};

/// A mutex whose guard is handed out even after a holder panicked.
#[derive(Debug, Default)]
pub struct Lock<T>(Mutex<T>);

impl<T> Lock<T> {
    pub const fn new(value: T) -> Lock<T> {
        Lock(Mutex::new(value))
    }

    pub fn lock(&self) -> MutexGuard<'_, T> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn into_inner(self) -> T {
        self.0.into_inner().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_while_holding_the_lock_does_not_poison_it() {
        let lock = std::sync::Arc::new(Lock::new(1));
        let l = std::sync::Arc::clone(&lock);
        let _ = std::thread::spawn(move || {
            let _g = l.lock();
            panic!("a bug in one request");
        })
        .join();
        *lock.lock() += 1;
        assert_eq!(*lock.lock(), 2);
    }
}
