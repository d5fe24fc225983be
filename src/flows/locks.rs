//! Per-key async mutual exclusion for the read-modify-write of a bounce record (SPEC §4:
//! bounces for one address arriving together must not lose increments).
//!
//! An entry lives only while someone holds or waits for its lock, so the map is bounded by
//! the number of messages in flight, never by the number of addresses ever seen. This
//! serialises within one process; replicas share only the API, which offers no
//! compare-and-set, so two replicas can still race on one address.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

type Slot = Arc<tokio::sync::Mutex<()>>;

#[derive(Debug, Default)]
pub struct KeyedLocks {
    slots: Mutex<HashMap<String, Slot>>,
}

/// Holds the lock of one key; dropping it releases the lock and, when nobody else holds or
/// waits for the key, removes its entry.
pub struct KeyGuard<'a> {
    locks: &'a KeyedLocks,
    key: String,
    slot: Slot,
    guard: Option<tokio::sync::OwnedMutexGuard<()>>,
}

impl KeyedLocks {
    pub fn new() -> KeyedLocks {
        KeyedLocks::default()
    }

    fn slots(&self) -> MutexGuard<'_, HashMap<String, Slot>> {
        // A panic while the map was held cannot leave it inconsistent (every operation on it
        // is a single insert, lookup or remove), so a poisoned map is still usable.
        self.slots.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub async fn lock(&self, key: &str) -> KeyGuard<'_> {
        let slot = self.slots().entry(key.to_string()).or_default().clone();
        let guard = slot.clone().lock_owned().await;
        KeyGuard {
            locks: self,
            key: key.to_string(),
            slot,
            guard: Some(guard),
        }
    }

    /// How many keys currently have an entry.
    pub fn len(&self) -> usize {
        self.slots().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Drop for KeyGuard<'_> {
    fn drop(&mut self) {
        drop(self.guard.take());
        let mut slots = self.locks.slots();
        // Clones are only made under the map lock, so with the map locked the count is
        // exact: the map's own reference plus ours means nobody else is waiting.
        if Arc::strong_count(&self.slot) == 2 {
            slots.remove(&self.key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn serialises_one_key_and_forgets_it() {
        let locks = Arc::new(KeyedLocks::new());
        let inside = Arc::new(AtomicUsize::new(0));
        let max_inside = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..32 {
            let (locks, inside, max_inside) = (locks.clone(), inside.clone(), max_inside.clone());
            tasks.push(tokio::spawn(async move {
                let _g = locks.lock("a@example.com").await;
                let now = inside.fetch_add(1, Ordering::SeqCst) + 1;
                max_inside.fetch_max(now, Ordering::SeqCst);
                tokio::task::yield_now().await;
                inside.fetch_sub(1, Ordering::SeqCst);
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(max_inside.load(Ordering::SeqCst), 1);
        assert!(locks.is_empty());
    }

    #[tokio::test]
    async fn different_keys_do_not_block_each_other() {
        let locks = KeyedLocks::new();
        let a = locks.lock("a").await;
        let b = locks.lock("b").await;
        assert_eq!(locks.len(), 2);
        drop(a);
        drop(b);
        assert!(locks.is_empty());
    }
}
