//! Per-key async mutual exclusion for the read-modify-write of a bounce record (docs/behaviour.md §4:
//! bounces for one address arriving together must not lose increments).
//!
//! An entry lives only while someone holds or waits for its lock, so the map is bounded by
//! the number of messages in flight, never by the number of addresses ever seen. This
//! serialises within one process; replicas share only the API, which offers no
//! compare-and-set, so two replicas can race on one address unless `[coordination]` adds a
//! Redis lock behind this one ([`AddressLocks`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::coordination::{Lease, LockError, RedisLocks};
use crate::metrics::LockResult;

type Slot = Arc<tokio::sync::Mutex<()>>;
type Slots = Arc<Mutex<HashMap<String, Slot>>>;

#[derive(Debug, Default)]
pub struct KeyedLocks {
    slots: Slots,
}

/// Holds the lock of one key; dropping it releases the lock and, when nobody else holds or
/// waits for the key, removes its entry.
pub struct KeyGuard {
    slots: Slots,
    key: String,
    slot: Slot,
    guard: Option<tokio::sync::OwnedMutexGuard<()>>,
}

impl KeyedLocks {
    pub fn new() -> KeyedLocks {
        KeyedLocks::default()
    }

    fn slots(&self) -> MutexGuard<'_, HashMap<String, Slot>> {
        lock_slots(&self.slots)
    }

    pub async fn lock(&self, key: &str) -> KeyGuard {
        let slot = self.slots().entry(key.to_string()).or_default().clone();
        let guard = slot.clone().lock_owned().await;
        KeyGuard {
            slots: self.slots.clone(),
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

fn lock_slots(slots: &Slots) -> MutexGuard<'_, HashMap<String, Slot>> {
    // A panic while the map was held cannot leave it inconsistent (every operation on it
    // is a single insert, lookup or remove), so a poisoned map is still usable.
    slots.lock().unwrap_or_else(|e| e.into_inner())
}

impl Drop for KeyGuard {
    fn drop(&mut self) {
        drop(self.guard.take());
        let mut slots = lock_slots(&self.slots);
        // Clones are only made under the map lock, so with the map locked the count is
        // exact: the map's own reference plus ours means nobody else is waiting.
        if Arc::strong_count(&self.slot) == 2 {
            slots.remove(&self.key);
        }
    }
}

/// The per-address serialisation the `bn` flow uses: the in-process lock, and behind it,
/// when `[coordination]` is set, the Redis lock shared by every replica. The in-process
/// lock comes first so that one replica asks Redis for an address once at a time, not once
/// per waiting message.
#[derive(Debug, Default)]
pub struct AddressLocks {
    local: KeyedLocks,
    redis: Option<Arc<RedisLocks>>,
}

/// Holds an address's lock(s) until dropped.
pub struct AddressGuard {
    local: Option<KeyGuard>,
    lease: Option<(Arc<RedisLocks>, Lease)>,
}

impl AddressLocks {
    pub fn new(redis: Option<RedisLocks>) -> AddressLocks {
        AddressLocks {
            local: KeyedLocks::new(),
            redis: redis.map(Arc::new),
        }
    }

    pub fn redis(&self) -> Option<&RedisLocks> {
        self.redis.as_deref()
    }

    /// Waits for `address`'s lock. Without coordination this waits as long as it takes
    /// and never fails; with it, the wait (here and for Redis) is bounded by
    /// `coordination.lock_acquire_timeout_ms`, and an error means the message must not be
    /// processed now.
    pub async fn lock(&self, address: &str) -> Result<AddressGuard, LockError> {
        let Some(redis) = &self.redis else {
            return Ok(AddressGuard {
                local: Some(self.local.lock(address).await),
                lease: None,
            });
        };
        let started = tokio::time::Instant::now();
        let deadline = started + redis.acquire_timeout();
        let Ok(local) = tokio::time::timeout_at(deadline, self.local.lock(address)).await else {
            redis.count(|m| m.lock_acquisition(LockResult::Busy));
            return Err(LockError::Busy {
                waited_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
            });
        };
        let lease = redis.acquire(address, deadline).await?;
        Ok(AddressGuard {
            local: Some(local),
            lease: Some((redis.clone(), lease)),
        })
    }
}

impl Drop for AddressGuard {
    fn drop(&mut self) {
        let Some((redis, lease)) = self.lease.take() else {
            return;
        };
        let local = self.local.take();
        // The Redis lock is given back first and the in-process one after it, so the next
        // message here does not find the Redis lock still taken by its own replica.
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(async move {
                    redis.release(lease).await;
                    drop(local);
                });
            }
            // No runtime left (the process is ending): the Redis lock lapses at its expiry.
            Err(_) => drop(local),
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
