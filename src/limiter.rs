//! Per-client limits of the SMTP server (docs/behaviour.md §3): the failed-unsubscribe limiter, which
//! stops a client from brute-forcing unsubscription codes, and the connection limiter,
//! which caps concurrent connections globally and per client address.
//!
//! Also the per-subscription-id count of wrong codes, the per-network connection limit and
//! stress mode, and the global budget of in-flight message bytes ([`ByteBudget`]);
//! `docs/reliability.md` (section 7) says why and with which defaults.
//!
//! Both key a client by [`client_key`]: an IPv4 address as is, an IPv6 address by its /64
//! prefix. One IPv6 subscriber line is usually given a whole /64, so limiting single IPv6
//! addresses would let one client walk around any limit by changing its interface id.
//!
//! Time is read from [`tokio::time::Instant`] so tests can pause and advance the clock.

use std::collections::HashMap;
use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::net::{IpAddr, Ipv6Addr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

/// Number of independently locked shards; a power of two keeps the shard pick cheap.
const SHARDS: usize = 16;

/// The address a limit is counted against: IPv4 addresses as they are (IPv4-mapped IPv6
/// addresses included), IPv6 addresses reduced to their /64 network.
pub fn client_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

fn shard_of<K: Hash>(key: &K) -> usize {
    let mut h = DefaultHasher::new();
    key.hash(&mut h);
    (h.finish() as usize) & (SHARDS - 1)
}

/// A poisoned lock only means another thread panicked while holding it; the maps stay
/// consistent after every single statement, so keep serving rather than propagating.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Failures of one key (a client or a subscription id).
#[derive(Debug, Clone, Copy)]
struct FailureRecord {
    /// When the current counting window opened (the first failure after the last one
    /// expired).
    window_start: Instant,
    /// Failures since `window_start`.
    count: usize,
    /// Set when `count` reached the threshold: the key is refused until then.
    blocked_until: Option<Instant>,
}

impl FailureRecord {
    fn is_blocked(&self, now: Instant) -> bool {
        self.blocked_until.is_some_and(|t| now < t)
    }

    /// Nothing left to remember: the window is over and no block is running.
    fn is_expired(&self, now: Instant, window: Duration) -> bool {
        now >= self.window_start + window && !self.is_blocked(now)
    }
}

#[derive(Debug)]
struct FailureShard<K> {
    records: HashMap<K, FailureRecord>,
    next_prune: Instant,
}

/// Failures counted per key in a window, with a block once a key reaches the threshold.
///
/// Memory is bounded: at most `max_tracked` keys are remembered. Expired records are
/// pruned as time goes on; when the table is full of live records, the record with the
/// least evidence (not blocked, fewest failures, oldest) gives way, so spraying keys can
/// neither exhaust memory nor push out the keys already blocked.
#[derive(Debug)]
struct FailureCounter<K> {
    threshold: usize,
    window: Duration,
    per_shard_cap: usize,
    shards: Vec<Mutex<FailureShard<K>>>,
}

impl<K: Hash + Eq + Clone> FailureCounter<K> {
    fn new(threshold: usize, window: Duration, max_tracked: usize) -> Self {
        let window = window.min(FailedUnsubscribeLimiter::MAX_WINDOW);
        let now = Instant::now();
        FailureCounter {
            threshold,
            window,
            per_shard_cap: max_tracked.div_ceil(SHARDS).max(1),
            shards: (0..SHARDS)
                .map(|_| {
                    Mutex::new(FailureShard {
                        records: HashMap::new(),
                        next_prune: now + window,
                    })
                })
                .collect(),
        }
    }

    fn enabled(&self) -> bool {
        self.threshold > 0 && !self.window.is_zero()
    }

    fn record_failure(&self, key: K) -> bool {
        if !self.enabled() {
            return false;
        }
        let now = Instant::now();
        let mut shard = lock(&self.shards[shard_of(&key)]);
        self.prune_if_due(&mut shard, now);
        if !shard.records.contains_key(&key) && shard.records.len() >= self.per_shard_cap {
            self.make_room(&mut shard, now);
        }
        let record = shard.records.entry(key).or_insert(FailureRecord {
            window_start: now,
            count: 0,
            blocked_until: None,
        });
        if record.is_expired(now, self.window) {
            *record = FailureRecord {
                window_start: now,
                count: 0,
                blocked_until: None,
            };
        }
        record.count = record.count.saturating_add(1);
        if record.count >= self.threshold && !record.is_blocked(now) {
            record.blocked_until = Some(now + self.window);
            return true;
        }
        false
    }

    fn blocked_for(&self, key: &K) -> Option<Duration> {
        if !self.enabled() {
            return None;
        }
        let now = Instant::now();
        let shard = lock(&self.shards[shard_of(key)]);
        let until = shard.records.get(key)?.blocked_until?;
        (now < until).then(|| until - now)
    }

    fn tracked(&self) -> usize {
        self.shards.iter().map(|s| lock(s).records.len()).sum()
    }

    fn prune_if_due(&self, shard: &mut FailureShard<K>, now: Instant) {
        if now >= shard.next_prune {
            shard.records.retain(|_, r| !r.is_expired(now, self.window));
            shard.next_prune = now + self.window;
        }
    }

    fn make_room(&self, shard: &mut FailureShard<K>, now: Instant) {
        let window = self.window;
        shard.records.retain(|_, r| !r.is_expired(now, window));
        if shard.records.len() < self.per_shard_cap {
            return;
        }
        let victim = shard
            .records
            .iter()
            .min_by_key(|(_, r)| (r.is_blocked(now), r.blocked_until, r.count, r.window_start))
            .map(|(k, _)| k.clone());
        if let Some(k) = victim {
            shard.records.remove(&k);
        }
    }
}

/// Counts wrong unsubscription codes (the subscription id exists and the code differs),
/// through `un` and `bn` alike, and blocks further attempts (see `docs/reliability.md`).
///
/// Two counts, each with its own threshold and window:
/// - per client (IPv4 address or IPv6 /64), against one client guessing many ids or codes;
///   the threshold is high enough that a big provider's shared outbound addresses, which
///   carry many people's unsubscribes and late bounces, are not blocked by ordinary
///   traffic (a wrong code is rare in honest mail: a mangled address);
/// - per subscription id, against guessing one id's code from many addresses.
///
/// Rule for each: failures are counted in a window that opens at the first failure. When
/// the count reaches the threshold within that window, the key is blocked for the window
/// from that failure; the server then answers further `un`/`bn` recipients from that
/// client, or for that id, with `450 4.7.1` without calling the API, so a blocked key
/// cannot add failures. Once the block has run out, counting starts again from zero.
///
/// A threshold of 0 turns that count off. At most [`Self::DEFAULT_MAX_TRACKED`] keys of
/// each kind are remembered (about 64 bytes each, plus the id's length).
#[derive(Debug)]
pub struct FailedUnsubscribeLimiter {
    clients: FailureCounter<IpAddr>,
    ids: FailureCounter<String>,
}

/// What one wrong code started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NewBlocks {
    /// This failure blocked the client.
    pub client: bool,
    /// This failure blocked the subscription id.
    pub id: bool,
}

impl FailedUnsubscribeLimiter {
    /// Keys remembered at most, unless [`Self::with_max_tracked`] says otherwise.
    pub const DEFAULT_MAX_TRACKED: usize = 65_536;

    /// A limiter blocking a client after `threshold` failures within `window`; the count
    /// per subscription id is off.
    pub fn new(threshold: usize, window: Duration) -> Self {
        Self::with_max_tracked(threshold, window, Self::DEFAULT_MAX_TRACKED)
    }

    /// Longest window taken; longer ones are cut to it so that `now + window` cannot
    /// overflow whatever the configuration says.
    pub const MAX_WINDOW: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

    /// Like [`Self::new`], remembering at most `max_tracked` client keys (rounded up to a
    /// multiple of the shard count).
    pub fn with_max_tracked(threshold: usize, window: Duration, max_tracked: usize) -> Self {
        FailedUnsubscribeLimiter {
            clients: FailureCounter::new(threshold, window, max_tracked),
            ids: FailureCounter::new(0, window, max_tracked),
        }
    }

    /// Adds the count per subscription id: `threshold` wrong codes for one id within
    /// `window` block that id for `window`.
    pub fn with_per_id(mut self, threshold: usize, window: Duration) -> Self {
        self.ids = FailureCounter::new(threshold, window, Self::DEFAULT_MAX_TRACKED);
        self
    }

    /// From `inbound_smtp_server.limits.failed_unsubscribe_*` (per client) and
    /// `failed_code_per_id_*` (per subscription id).
    pub fn from_limits(limits: &crate::config::SmtpLimits) -> Self {
        Self::new(
            limits.failed_unsubscribe_threshold,
            limits.failed_unsubscribe_window,
        )
        .with_per_id(
            limits.failed_code_per_id_threshold,
            limits.failed_code_per_id_window,
        )
    }

    /// Records one failed attempt from `ip` counted against the client only. Returns
    /// `true` when this failure blocked the client (worth one log line; later calls while
    /// blocked return `false`).
    pub fn record_failure(&self, ip: IpAddr) -> bool {
        self.clients.record_failure(client_key(ip))
    }

    /// Records one wrong code from `ip` for subscription `id`, against both counts.
    pub fn record_wrong_code(&self, ip: IpAddr, id: &str) -> NewBlocks {
        NewBlocks {
            client: self.clients.record_failure(client_key(ip)),
            id: self.ids.record_failure(id.to_string()),
        }
    }

    /// Whether `un`/`bn` recipients from `ip` are to be refused now.
    pub fn is_blocked(&self, ip: IpAddr) -> bool {
        self.blocked_for(ip).is_some()
    }

    /// How much longer `ip` stays blocked, if it is (for a reply text or a log line).
    pub fn blocked_for(&self, ip: IpAddr) -> Option<Duration> {
        self.clients.blocked_for(&client_key(ip))
    }

    /// How much longer subscription `id` stays blocked, if it is.
    pub fn id_blocked_for(&self, id: &str) -> Option<Duration> {
        if !self.ids.enabled() {
            return None;
        }
        self.ids.blocked_for(&id.to_string())
    }

    /// Number of client keys currently remembered (expired ones may still count until the
    /// next prune).
    pub fn tracked(&self) -> usize {
        self.clients.tracked()
    }
}

/// Which connection limit a client ran into.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LimitExceeded {
    /// `inbound_smtp_server.limits.max_connections` connections are open.
    #[error("too many connections to this server, try again later")]
    Global,
    /// `inbound_smtp_server.limits.max_connections_per_ip` connections from this client
    /// (its IPv4 address or IPv6 /64) are open.
    #[error("too many connections from your address, try again later")]
    PerIp,
    /// `inbound_smtp_server.limits.max_connections_per_network` connections from this
    /// client's network (IPv4 /24, IPv6 /64) are open.
    #[error("too many connections from your network, try again later")]
    PerNetwork,
}

/// The network a per-network limit is counted against: IPv4 /24 (IPv4-mapped IPv6
/// included), IPv6 /64.
pub fn network_key(ip: IpAddr) -> IpAddr {
    match client_key(ip) {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            IpAddr::V4(std::net::Ipv4Addr::new(o[0], o[1], o[2], 0))
        }
        v6 => v6,
    }
}

#[derive(Debug)]
struct ConnectionInner {
    max_total: usize,
    max_per_ip: usize,
    max_per_network: usize,
    /// Open connections from which on the server is under stress (see [`ConnectionLimiter::stressed`]).
    stress_at: usize,
    total: AtomicUsize,
    /// Open connections per client key; a key is removed when its count drops to zero, so
    /// the maps never hold more entries than there are open connections.
    per_ip: Vec<Mutex<HashMap<IpAddr, usize>>>,
    /// The same per network key.
    per_net: Vec<Mutex<HashMap<IpAddr, usize>>>,
    /// Woken when a connection takes the server into stress.
    stress: Notify,
}

/// Caps concurrent connections globally, per client and per network. Cheap to clone;
/// clones share the counts.
///
/// The global count is a lock-free atomic; the per-client and per-network counts sit in
/// sharded maps behind short critical sections.
#[derive(Debug, Clone)]
pub struct ConnectionLimiter {
    inner: Arc<ConnectionInner>,
}

/// Takes one from `maps`' count for `key` unless it is at `max`.
fn take(maps: &[Mutex<HashMap<IpAddr, usize>>], key: IpAddr, max: usize) -> bool {
    let mut map = lock(&maps[shard_of(&key)]);
    let count = map.entry(key).or_insert(0);
    if *count >= max {
        if *count == 0 {
            map.remove(&key);
        }
        return false;
    }
    *count += 1;
    true
}

fn give_back(maps: &[Mutex<HashMap<IpAddr, usize>>], key: IpAddr) {
    let mut map = lock(&maps[shard_of(&key)]);
    if let Some(count) = map.get_mut(&key) {
        *count = count.saturating_sub(1);
        if *count == 0 {
            map.remove(&key);
        }
    }
}

fn count_of(maps: &[Mutex<HashMap<IpAddr, usize>>], key: IpAddr) -> usize {
    lock(&maps[shard_of(&key)]).get(&key).copied().unwrap_or(0)
}

impl ConnectionLimiter {
    /// At most `max_total` connections in all, and at most `max_per_ip` from one client
    /// key; no limit per network and no stress mode.
    pub fn new(max_total: usize, max_per_ip: usize) -> Self {
        Self::with_network(max_total, max_per_ip, usize::MAX, usize::MAX)
    }

    /// Like [`Self::new`], with at most `max_per_network` connections from one network and
    /// the server under stress from `stress_at` open connections on.
    pub fn with_network(
        max_total: usize,
        max_per_ip: usize,
        max_per_network: usize,
        stress_at: usize,
    ) -> Self {
        ConnectionLimiter {
            inner: Arc::new(ConnectionInner {
                max_total,
                max_per_ip,
                max_per_network,
                stress_at,
                total: AtomicUsize::new(0),
                per_ip: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
                per_net: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
                stress: Notify::new(),
            }),
        }
    }

    /// From `inbound_smtp_server.limits.{max_connections, max_connections_per_ip,
    /// max_connections_per_network, stress_threshold_percent}` (0 turns the last two off).
    pub fn from_limits(limits: &crate::config::SmtpLimits) -> Self {
        let per_network = match limits.max_connections_per_network {
            0 => usize::MAX,
            n => n,
        };
        let stress_at = match limits.stress_threshold_percent {
            0 => usize::MAX,
            p => (limits.max_connections.saturating_mul(p.min(100)))
                .div_ceil(100)
                .max(1),
        };
        Self::with_network(
            limits.max_connections,
            limits.max_connections_per_ip,
            per_network,
            stress_at,
        )
    }

    /// Takes one connection slot for a client at `ip` (the real client address, after the
    /// PROXY header or XCLIENT). The slot is held until the returned permit is dropped.
    pub fn try_acquire(&self, ip: IpAddr) -> Result<ConnectionPermit, LimitExceeded> {
        let inner = &self.inner;
        let total = inner
            .total
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < inner.max_total).then_some(n + 1)
            })
            .map_err(|_| LimitExceeded::Global)?;
        let key = client_key(ip);
        let net = network_key(ip);
        if !take(&inner.per_ip, key, inner.max_per_ip) {
            inner.total.fetch_sub(1, Ordering::AcqRel);
            return Err(LimitExceeded::PerIp);
        }
        if !take(&inner.per_net, net, inner.max_per_network) {
            give_back(&inner.per_ip, key);
            inner.total.fetch_sub(1, Ordering::AcqRel);
            return Err(LimitExceeded::PerNetwork);
        }
        if total + 1 == inner.stress_at {
            inner.stress.notify_waiters();
        }
        Ok(ConnectionPermit {
            inner: Arc::clone(&self.inner),
            key,
            net,
        })
    }

    /// Connections open in all.
    pub fn open(&self) -> usize {
        self.inner.total.load(Ordering::Acquire)
    }

    /// Connections open from the client key of `ip`.
    pub fn open_from(&self, ip: IpAddr) -> usize {
        count_of(&self.inner.per_ip, client_key(ip))
    }

    /// Connections open from the network of `ip`.
    pub fn open_from_network(&self, ip: IpAddr) -> usize {
        count_of(&self.inner.per_net, network_key(ip))
    }

    /// Whether the server is near `max_connections` (Postfix's stress mode): sessions then
    /// get shorter timeouts and no credit for commands that do no work.
    pub fn stressed(&self) -> bool {
        self.open() >= self.inner.stress_at
    }

    /// Resolves when a new connection takes the server into stress. Create it before
    /// checking [`Self::stressed`] so the onset cannot be missed.
    pub fn stress_onset(&self) -> tokio::sync::futures::Notified<'_> {
        self.inner.stress.notified()
    }
}

/// One connection slot; dropping it gives the slot back.
#[derive(Debug)]
pub struct ConnectionPermit {
    inner: Arc<ConnectionInner>,
    key: IpAddr,
    net: IpAddr,
}

impl ConnectionPermit {
    /// Moves the slot to another client address: a connection is first counted against the
    /// proxy's address and, once the PROXY header or XCLIENT has named the real client,
    /// against that client. On failure the permit keeps its old address and the caller
    /// drops it (closing the connection) or keeps going as it sees fit.
    pub fn reassign(&mut self, ip: IpAddr) -> Result<(), LimitExceeded> {
        let inner = &self.inner;
        let (new_key, new_net) = (client_key(ip), network_key(ip));
        if new_key != self.key && !take(&inner.per_ip, new_key, inner.max_per_ip) {
            return Err(LimitExceeded::PerIp);
        }
        if new_net != self.net && !take(&inner.per_net, new_net, inner.max_per_network) {
            if new_key != self.key {
                give_back(&inner.per_ip, new_key);
            }
            return Err(LimitExceeded::PerNetwork);
        }
        if new_key != self.key {
            give_back(&inner.per_ip, self.key);
            self.key = new_key;
        }
        if new_net != self.net {
            give_back(&inner.per_net, self.net);
            self.net = new_net;
        }
        Ok(())
    }

    /// The client key this slot is counted against.
    pub fn key(&self) -> IpAddr {
        self.key
    }
}

impl Drop for ConnectionPermit {
    fn drop(&mut self) {
        give_back(&self.inner.per_ip, self.key);
        give_back(&self.inner.per_net, self.net);
        self.inner.total.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A global budget of message bytes held in memory by all sessions together
/// (`inbound_smtp_server.limits.max_inflight_bytes`), so that many clients holding large
/// unfinished messages cannot take the process past its memory limit.
#[derive(Debug)]
pub struct ByteBudget {
    max: usize,
    used: AtomicUsize,
}

impl ByteBudget {
    pub fn new(max: usize) -> Arc<ByteBudget> {
        Arc::new(ByteBudget {
            max,
            used: AtomicUsize::new(0),
        })
    }

    /// Bytes charged now.
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Acquire)
    }

    /// Bytes that can still be charged.
    pub fn available(&self) -> usize {
        self.max.saturating_sub(self.used())
    }

    /// An empty charge against this budget, to grow as a message comes in.
    pub fn charge(self: &Arc<Self>) -> Charge {
        Charge {
            budget: Arc::clone(self),
            bytes: 0,
        }
    }
}

/// Bytes one message holds against a [`ByteBudget`]; dropping it gives them back.
#[derive(Debug)]
pub struct Charge {
    budget: Arc<ByteBudget>,
    bytes: usize,
}

impl Charge {
    /// Makes the charge `bytes`. Growing fails, changing nothing, when the budget would be
    /// exceeded; shrinking always succeeds.
    pub fn resize(&mut self, bytes: usize) -> bool {
        if bytes <= self.bytes {
            self.budget
                .used
                .fetch_sub(self.bytes - bytes, Ordering::AcqRel);
            self.bytes = bytes;
            return true;
        }
        let more = bytes - self.bytes;
        let max = self.budget.max;
        let grown = self
            .budget
            .used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(more).filter(|&n| n <= max)
            })
            .is_ok();
        if grown {
            self.bytes = bytes;
        }
        grown
    }

    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

impl Drop for Charge {
    fn drop(&mut self) {
        self.budget.used.fetch_sub(self.bytes, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests;
