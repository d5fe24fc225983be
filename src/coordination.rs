//! The cross-replica lock that serialises the read-modify-write of one address's bounce
//! record when `[coordination] redis_url` is set (README, "Several replicas";
//! docs/replicas.md has the reasoning).
//!
//! A lock is one Redis key, `{key_prefix}{sha256(address) in hex}`, set with
//! `SET key token NX PX expiry` to a token unique to one holding, and deleted only by a
//! script that compares the token first. The expiry bounds how long a crashed replica can
//! block an address; the configuration refuses an expiry shorter than the work done under
//! the lock can take. Every Redis call has a deadline, and a lock not had in time is an
//! error the caller answers with 451: a bounce is never counted without the lock.

use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Client, Script};
use sha2::{Digest, Sha256};
use tokio::time::Instant;

use crate::config::{ConfigError, Settings};
use crate::metrics::{LockRelease, LockResult, Metrics, RedisOp};

/// Takes the lock, or finds it already ours: an earlier attempt of the same holding whose
/// answer was lost may have set it, and must not block its own holder until it expires.
const ACQUIRE: &str = r"
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return 1
end
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
";

/// Deletes the lock only while it still holds our token: after an expiry it may be
/// another holder's.
const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
";

/// The least time left before the deadline for a retry to be worth sending.
const ATTEMPT_ROOM: Duration = Duration::from_millis(20);

/// Why an address's lock could not be had.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error(
        "another message for this address is being processed (here or on another replica); \
         waited {waited_ms} ms (coordination.lock_acquire_timeout_ms)"
    )]
    Busy { waited_ms: u64 },
    #[error(
        "Redis did not grant the lock within {waited_ms} ms: {reason} (coordination.redis_url)"
    )]
    Unavailable { waited_ms: u64, reason: String },
}

/// The Redis side of the per-address locks. Connects on first use and again after any
/// failed command, so an outage costs 451s while it lasts and nothing after.
pub struct RedisLocks {
    client: Client,
    config: AsyncConnectionConfig,
    /// The shared connection and its generation, so a failure seen on an old connection
    /// does not throw away a newer one.
    connection: tokio::sync::Mutex<(u64, Option<MultiplexedConnection>)>,
    key_prefix: String,
    expiry: Duration,
    acquire_timeout: Duration,
    command_timeout: Duration,
    acquire: Script,
    release: Script,
    /// Seeded from the operating system's randomness once per process: tokens from two
    /// replicas never meet.
    seed: RandomState,
    tokens: AtomicU64,
    metrics: OnceLock<Arc<Metrics>>,
    /// The URL without its password, for log lines.
    shown_url: String,
}

impl std::fmt::Debug for RedisLocks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisLocks")
            .field("redis_url", &self.shown_url)
            .field("key_prefix", &self.key_prefix)
            .field("expiry", &self.expiry)
            .field("acquire_timeout", &self.acquire_timeout)
            .finish_non_exhaustive()
    }
}

/// One holding of one address's lock; give it back with [`RedisLocks::release`].
#[derive(Debug)]
pub struct Lease {
    key: String,
    token: String,
    /// When the successful attempt was sent: the expiry runs from no earlier than this.
    since: Instant,
}

impl RedisLocks {
    /// The locks configured by `[coordination]`, or `None` when `redis_url` is empty.
    pub fn from_settings(settings: &Settings) -> Result<Option<RedisLocks>, ConfigError> {
        let c = &settings.coordination;
        let Some(info) = &c.redis else {
            return Ok(None);
        };
        let shown_url = c.shown_url.clone();
        let client = Client::open(info.clone()).map_err(|e| {
            ConfigError::invalid(
                "coordination.redis_url",
                &shown_url,
                format!("a redis:// or rediss:// URL ({e})"),
            )
        })?;
        let command_timeout = c.redis_timeout;
        tracing::info!(
            redis_url = shown_url.as_str(),
            lock_expiry_ms = c.lock_expiry.as_millis() as u64,
            lock_acquire_timeout_ms = c.lock_acquire_timeout.as_millis() as u64,
            "coordination: bounce updates are serialised across replicas through Redis"
        );
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(command_timeout))
            .set_response_timeout(Some(command_timeout));
        Ok(Some(RedisLocks {
            client,
            config,
            connection: tokio::sync::Mutex::new((0, None)),
            key_prefix: c.key_prefix.clone(),
            expiry: c.lock_expiry,
            acquire_timeout: c.lock_acquire_timeout,
            command_timeout,
            acquire: Script::new(ACQUIRE),
            release: Script::new(RELEASE),
            seed: RandomState::new(),
            tokens: AtomicU64::new(0),
            metrics: OnceLock::new(),
            shown_url,
        }))
    }

    /// Counts acquisitions, releases and Redis errors in `metrics` from now on.
    pub fn set_metrics(&self, metrics: Arc<Metrics>) {
        let _ = self.metrics.set(metrics);
    }

    pub fn acquire_timeout(&self) -> Duration {
        self.acquire_timeout
    }

    pub fn expiry(&self) -> Duration {
        self.expiry
    }

    /// The Redis key of an address's lock. The address is hashed so that Redis, which may
    /// be shared with other applications, never holds subscribers' addresses.
    pub fn key(&self, address: &str) -> String {
        let digest = Sha256::digest(address.as_bytes());
        let mut key = String::with_capacity(self.key_prefix.len() + 64);
        key.push_str(&self.key_prefix);
        for b in digest {
            key.push_str(&format!("{b:02x}"));
        }
        key
    }

    fn token(&self) -> String {
        let n = self.tokens.fetch_add(1, Ordering::Relaxed);
        format!(
            "{:016x}{:016x}",
            self.seed.hash_one((n, 0u8)),
            self.seed.hash_one((n, 1u8))
        )
    }

    pub(crate) fn count(&self, f: impl FnOnce(&Metrics)) {
        if let Some(m) = self.metrics.get() {
            f(m);
        }
    }

    async fn connection(&self) -> Result<(u64, MultiplexedConnection), String> {
        let mut slot = self.connection.lock().await;
        if let (generation, Some(c)) = &*slot {
            return Ok((*generation, c.clone()));
        }
        let c = self
            .client
            .get_multiplexed_async_connection_with_config(&self.config)
            .await
            .map_err(|e| format!("cannot connect to {}: {e}", self.shown_url))?;
        slot.0 += 1;
        slot.1 = Some(c.clone());
        Ok((slot.0, c))
    }

    /// Drops the connection after a failure on it, so the next call connects afresh.
    async fn forget(&self, generation: u64) {
        let mut slot = self.connection.lock().await;
        if slot.0 == generation {
            slot.1 = None;
        }
    }

    /// Runs one script, giving up at `deadline` at the latest: `Ok(reply)`, or why not.
    async fn run(
        &self,
        script: &Script,
        key: &str,
        arg: &str,
        ms: u64,
        deadline: Option<Instant>,
    ) -> Result<i64, String> {
        // The generation of the connection in use, 0 while there is none yet.
        let used = AtomicU64::new(0);
        let call = async {
            let (generation, mut c) = self.connection().await?;
            used.store(generation, Ordering::Relaxed);
            let mut invocation = script.key(key);
            invocation.arg(arg).arg(ms);
            invocation
                .invoke_async::<i64>(&mut c)
                .await
                .map_err(|e| e.to_string())
        };
        // The connection's own timeouts bound each step; this bounds the whole, waiting
        // for the shared connection included.
        let start = Instant::now();
        let own = start + self.command_timeout * 2;
        let limit = deadline.map_or(own, |d| d.min(own));
        let result = match tokio::time::timeout_at(limit, call).await {
            Ok(result) => result,
            Err(_) => Err(format!(
                "no answer within {} ms (coordination.redis_timeout_ms, \
                 coordination.lock_acquire_timeout_ms)",
                start.elapsed().as_millis()
            )),
        };
        // A connection that failed or hung is not trusted again (it may be half-open, or
        // to a primary demoted by a failover): the next call connects afresh.
        let generation = used.load(Ordering::Relaxed);
        if result.is_err() && generation != 0 {
            self.forget(generation).await;
        }
        result
    }

    /// Takes the lock of `address`, trying until `deadline`.
    pub async fn acquire(
        self: &Arc<Self>,
        address: &str,
        deadline: Instant,
    ) -> Result<Lease, LockError> {
        let key = self.key(address);
        let token = self.token();
        let started = Instant::now();
        let expiry_ms = u64::try_from(self.expiry.as_millis()).unwrap_or(u64::MAX);
        let mut pause = Duration::from_millis(5);
        // When the first attempt that may have set the key without our hearing of it was
        // sent.
        let mut unconfirmed: Option<Instant> = None;
        let mut last_error: Option<String>;
        loop {
            let sent = Instant::now();
            match self
                .run(&self.acquire, &key, &token, expiry_ms, Some(deadline))
                .await
            {
                Ok(1) => {
                    self.count(|m| m.lock_acquisition(LockResult::Acquired));
                    return Ok(Lease {
                        key,
                        token,
                        since: sent,
                    });
                }
                Ok(_) => last_error = None,
                Err(e) => {
                    self.count(|m| m.redis_error(RedisOp::Acquire));
                    unconfirmed.get_or_insert(sent);
                    last_error = Some(e);
                }
            }
            let now = Instant::now();
            // Spread the retries of waiting holders so they do not try in step.
            let jitter = self
                .seed
                .hash_one((self.tokens.load(Ordering::Relaxed), now))
                % 5;
            let next = now + pause + Duration::from_millis(jitter);
            // The next attempt needs time for its answer before the deadline, else a slow
            // answer would pass for Redis failing.
            if next + ATTEMPT_ROOM >= deadline {
                break;
            }
            tokio::time::sleep_until(next).await;
            pause = (pause * 2).min(Duration::from_millis(100));
        }
        let waited_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        if let Some(since) = unconfirmed {
            // Our token may be on the key (an attempt's answer was lost, or Redis will
            // still run an attempt it has queued): give it back rather than block the
            // address until the expiry.
            let this = self.clone();
            tokio::spawn(async move {
                this.give_back(Lease { key, token, since }, true).await;
            });
        }
        match last_error {
            Some(reason) => {
                self.count(|m| m.lock_acquisition(LockResult::RedisError));
                Err(LockError::Unavailable { waited_ms, reason })
            }
            None => {
                self.count(|m| m.lock_acquisition(LockResult::Busy));
                Err(LockError::Busy { waited_ms })
            }
        }
    }

    /// Gives the lock back. While Redis does not answer, tries again until the lock would
    /// have lapsed anyway, so a short outage does not keep the address locked for the whole
    /// expiry. A lock found no longer ours is reported loudly: the holder's work may have
    /// overlapped another replica's for the same address.
    pub async fn release(&self, lease: Lease) {
        self.give_back(lease, false).await;
    }

    /// [`RedisLocks::release`]; `abandoned` for the token of a wait that gave up, which
    /// is most likely not on the key at all: nothing to report then.
    async fn give_back(&self, lease: Lease, abandoned: bool) {
        let lapses = lease.since + self.expiry;
        let mut pause = Duration::from_millis(100);
        let error = loop {
            // The first attempt is made even past the expiry: it tells whether the lock
            // was still ours.
            let deadline = (Instant::now() < lapses).then_some(lapses);
            match self
                .run(&self.release, &lease.key, &lease.token, 0, deadline)
                .await
            {
                Ok(_) if abandoned => return,
                Ok(1) => {
                    self.count(|m| m.lock_release(LockRelease::Released));
                    return;
                }
                Ok(_) => {
                    self.count(|m| m.lock_release(LockRelease::Expired));
                    tracing::error!(
                        key = lease.key.as_str(),
                        held_ms = lease.since.elapsed().as_millis() as u64,
                        expiry_ms = self.expiry.as_millis() as u64,
                        "the coordination lock was no longer held when its holder released it \
                         (it expired, or Redis lost it in a restart): another replica may have \
                         updated this address's bounce record at the same time; check its \
                         hardBounceCount (docs/replicas.md)"
                    );
                    return;
                }
                Err(e) => {
                    self.count(|m| m.redis_error(RedisOp::Release));
                    if Instant::now() + pause >= lapses {
                        break e;
                    }
                }
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_secs(2));
        };
        if abandoned {
            return;
        }
        self.count(|m| m.lock_release(LockRelease::RedisError));
        tracing::warn!(
            key = lease.key.as_str(),
            error = error.as_str(),
            expiry_ms = self.expiry.as_millis() as u64,
            "could not release the coordination lock; it lapses at its expiry"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn locks(extra: &str) -> RedisLocks {
        let s = Settings::from_toml_str(&format!("[coordination]\n{extra}")).unwrap();
        RedisLocks::from_settings(&s).unwrap().unwrap()
    }

    #[test]
    fn off_without_a_url() {
        let s = Settings::defaults().unwrap();
        assert!(RedisLocks::from_settings(&s).unwrap().is_none());
    }

    #[test]
    fn keys_hash_the_address_under_the_prefix() {
        let l = locks("redis_url = 'redis://127.0.0.1:6379/0'\n");
        // As `printf %s a@b.example | sha256sum` prints it.
        assert_eq!(
            l.key("a@b.example"),
            "notify-inbound:lock:ebb18a030bf15174f5714e24d63af1a81355c951ea7389bd2a9bd18e3d0c2477"
        );
        assert_ne!(l.key("a@b.example"), l.key("A@b.example"));
        assert!(!l.key("a@b.example").contains('@'));
    }

    #[test]
    fn tokens_differ() {
        let l = locks("redis_url = 'redis://127.0.0.1:6379/0'\n");
        let (a, b) = (l.token(), l.token());
        assert_ne!(a, b);
        assert_eq!(a.len(), 32);
    }

    #[test]
    fn the_expiry_is_derived_from_the_api_timeout() {
        let l = locks("redis_url = 'redis://127.0.0.1:6379/0'\n");
        assert_eq!(l.expiry(), Duration::from_millis(8 * 10_000 + 5_000));
        let s = Settings::from_toml_str(
            "[api]\ntimeout_ms = 1000\n[coordination]\nredis_url = 'redis://h/0'\n",
        )
        .unwrap();
        let l = RedisLocks::from_settings(&s).unwrap().unwrap();
        assert_eq!(l.expiry(), Duration::from_millis(13_000));
    }
}
