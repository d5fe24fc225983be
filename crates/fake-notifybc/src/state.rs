//! The state both transports serve: the [`Store`] behind a lock, and what only a transport
//! sees (connections open, calls in flight, a delay before every answer). `GET /_stats`
//! answers the counters as JSON on either transport.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde_json::{Value, json};

use crate::rules::{Bounce, Method, Reply, Request, Store, Subscription};

/// The fake's records and counters, shared by its transport and whoever seeds and checks
/// them.
#[derive(Debug, Default)]
pub struct ApiState {
    store: Mutex<Store>,
    connections: AtomicU64,
    open: AtomicU64,
    max_open: AtomicU64,
    in_flight: AtomicU64,
    max_in_flight: AtomicU64,
    /// How long each call takes to be answered, in microseconds (0: at once).
    delay_us: AtomicU64,
}

impl ApiState {
    pub fn new(forgetful: bool) -> Arc<ApiState> {
        let state = ApiState::default();
        state.store().set_forgetful(forgetful);
        Arc::new(state)
    }

    /// The records, locked.
    pub fn store(&self) -> MutexGuard<'_, Store> {
        self.store.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds a confirmed email subscription to the service `bench` under `id`.
    pub fn add_subscription(&self, id: &str, address: &str, code: &str) {
        self.store()
            .insert_subscription(Some(id), "bench", address, code, "confirmed");
    }

    pub fn subscription(&self, id: &str) -> Option<Subscription> {
        self.store().subscription(id).cloned()
    }

    /// The bounce records of an address, in creation order.
    pub fn bounces_of(&self, address: &str) -> Vec<Bounce> {
        self.store().bounces_of(address)
    }

    pub fn counts(&self) -> CallCounts {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        CallCounts {
            connections: get(&self.connections),
            max_open: get(&self.max_open),
            max_in_flight: get(&self.max_in_flight),
            ..self.store().calls()
        }
    }

    /// Starts new high-water marks of open connections and calls in flight.
    pub fn reset_max(&self) {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        self.max_open.store(get(&self.open), Ordering::Relaxed);
        self.max_in_flight
            .store(get(&self.in_flight), Ordering::Relaxed);
    }

    /// Every call is answered only after `delay` (a slow service).
    pub fn set_delay(&self, delay: Duration) {
        let micros = u64::try_from(delay.as_micros()).unwrap_or(u64::MAX);
        self.delay_us.store(micros, Ordering::Relaxed);
    }

    /// Counts a connection as accepted and open until the guard drops.
    pub fn connection(self: &Arc<Self>) -> Connection {
        self.connections.fetch_add(1, Ordering::Relaxed);
        let open = self.open.fetch_add(1, Ordering::Relaxed) + 1;
        self.max_open.fetch_max(open, Ordering::Relaxed);
        Connection(self.clone())
    }

    /// Answers one call. Every call but `GET /_stats` is counted in flight and waits the
    /// configured delay first.
    pub async fn answer(&self, request: &Request<'_>) -> Reply {
        if request.path == "/_stats" {
            return match request.method {
                Method::Get => Reply::json(&self.counts().to_json()),
                _ => Reply::status(405),
            };
        }
        let now = self.in_flight.fetch_add(1, Ordering::Relaxed) + 1;
        self.max_in_flight.fetch_max(now, Ordering::Relaxed);
        let _in_flight = InFlight(self);
        let delay = self.delay_us.load(Ordering::Relaxed);
        if delay > 0 {
            tokio::time::sleep(Duration::from_micros(delay)).await;
        }
        self.store().answer(request)
    }
}

/// A call in flight, counted out when it is answered (or abandoned).
struct InFlight<'a>(&'a ApiState);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// An open connection, counted out of the open ones when it ends.
#[derive(Debug)]
pub struct Connection(Arc<ApiState>);

impl Drop for Connection {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Calls received by endpoint, and (filled in by the transport) HTTP connections: how many
/// were opened and the most open at once, which shows the client's keep-alive pool, and the
/// most calls in flight at once, which shows its bound on them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CallCounts {
    pub unsubscribe: u64,
    pub unsubscribe_all: u64,
    pub find_subscriptions: u64,
    pub get_subscription: u64,
    pub find_bounces: u64,
    pub get_bounce: u64,
    pub create_bounce: u64,
    pub patch_bounce: u64,
    /// Calls the fake refused (403, 404) or could not read (400).
    pub refused: u64,
    pub connections: u64,
    pub max_open: u64,
    pub max_in_flight: u64,
}

impl CallCounts {
    pub fn total(&self) -> u64 {
        self.unsubscribe
            + self.unsubscribe_all
            + self.find_subscriptions
            + self.get_subscription
            + self.find_bounces
            + self.get_bounce
            + self.create_bounce
            + self.patch_bounce
    }

    /// The calls made between `earlier` and `self`.
    pub fn since(&self, earlier: &CallCounts) -> CallCounts {
        CallCounts {
            unsubscribe: self.unsubscribe - earlier.unsubscribe,
            unsubscribe_all: self.unsubscribe_all - earlier.unsubscribe_all,
            find_subscriptions: self.find_subscriptions - earlier.find_subscriptions,
            get_subscription: self.get_subscription - earlier.get_subscription,
            find_bounces: self.find_bounces - earlier.find_bounces,
            get_bounce: self.get_bounce - earlier.get_bounce,
            create_bounce: self.create_bounce - earlier.create_bounce,
            patch_bounce: self.patch_bounce - earlier.patch_bounce,
            refused: self.refused - earlier.refused,
            connections: self.connections - earlier.connections,
            max_open: self.max_open,
            max_in_flight: self.max_in_flight,
        }
    }

    pub fn to_json(self) -> Value {
        json!({
            "unsubscribe": self.unsubscribe,
            "unsubscribe_all": self.unsubscribe_all,
            "find_subscriptions": self.find_subscriptions,
            "get_subscription": self.get_subscription,
            "find_bounces": self.find_bounces,
            "get_bounce": self.get_bounce,
            "create_bounce": self.create_bounce,
            "patch_bounce": self.patch_bounce,
            "refused": self.refused,
            "connections": self.connections,
            "max_open": self.max_open,
            "max_in_flight": self.max_in_flight,
            "total": self.total(),
        })
    }
}
