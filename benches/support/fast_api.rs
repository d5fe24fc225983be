//! A fast fake of the NotifyBC API for benchmarks and load runs: real HTTP/1.1 on
//! loopback (axum), so the API client's whole cost is counted, with NotifyBC's semantics
//! for exactly the calls the `un` and `bn` flows make, and hash-map look-ups so the fake
//! stays cheap next to the server it feeds.
//!
//! - `GET /api/subscriptions/{id}/unsubscribe?unsubscriptionCode=..&userChannelId=..`
//!   (`&additionalServices=_all`): 404 for an unknown id; 403 unless the subscription is
//!   confirmed, the code equals its code and `userChannelId` (when given) equals its
//!   address case-insensitively; else the subscription becomes `deleted` and 200.
//! - `GET /api/subscriptions?filter={"where":{..}}`: the subscriptions whose fields equal
//!   every entry of `where` (`id`, `channel`, `state`, `unsubscriptionCode`,
//!   `userChannelId`).
//! - `GET /api/bounces?filter={"where":{..}}`: the bounce records of `userChannelId` whose
//!   other fields match.
//! - `POST /api/bounces` creates a record (state `active`) and answers it with its id;
//!   `PATCH /api/bounces/{id}` sets `hardBounceCount`, `bounceMessages`, `state`; 204.
//!
//! Every call is counted by endpoint ([`Calls`]), and every HTTP connection: how many were
//! opened and the most open at once, which shows the client's keep-alive pool and its
//! bound on calls in flight. In *forgetful* mode (for a load client
//! that sends every message to one recipient) effects are counted but not kept: an
//! unsubscribe leaves the subscription confirmed and bounce records are never found, so
//! every message takes the path of a first message. `GET /_stats` answers the counters as
//! JSON.
#![allow(dead_code)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Map, Value, json};

/// A subscription as the fake keeps it.
#[derive(Debug, Clone)]
pub struct Sub {
    pub address: String,
    pub code: String,
    pub state: &'static str,
    /// How often the unsubscribe call moved it from confirmed to deleted.
    pub unsubscribed: u32,
}

/// A bounce record.
#[derive(Debug, Clone)]
pub struct BounceRecord {
    pub id: u64,
    pub address: String,
    pub state: String,
    pub hard_bounce_count: u64,
    pub messages: Vec<Value>,
}

/// Calls received, by endpoint.
#[derive(Debug, Default)]
pub struct Calls {
    pub unsubscribe: AtomicU64,
    pub unsubscribe_all: AtomicU64,
    pub find_subscriptions: AtomicU64,
    pub find_bounces: AtomicU64,
    pub create_bounce: AtomicU64,
    pub patch_bounce: AtomicU64,
    /// Calls the fake refused (403, 404) or could not read (400).
    pub refused: AtomicU64,
    /// HTTP connections accepted.
    pub connections: AtomicU64,
    /// HTTP connections open now, and the most open at once.
    pub open: AtomicU64,
    pub max_open: AtomicU64,
    /// Calls being answered now, and the most at once.
    pub in_flight: AtomicU64,
    pub max_in_flight: AtomicU64,
}

/// A snapshot of [`Calls`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CallCounts {
    pub unsubscribe: u64,
    pub unsubscribe_all: u64,
    pub find_subscriptions: u64,
    pub find_bounces: u64,
    pub create_bounce: u64,
    pub patch_bounce: u64,
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
            + self.find_bounces
            + self.create_bounce
            + self.patch_bounce
    }

    /// The calls made between `earlier` and `self`.
    pub fn since(&self, earlier: &CallCounts) -> CallCounts {
        CallCounts {
            unsubscribe: self.unsubscribe - earlier.unsubscribe,
            unsubscribe_all: self.unsubscribe_all - earlier.unsubscribe_all,
            find_subscriptions: self.find_subscriptions - earlier.find_subscriptions,
            find_bounces: self.find_bounces - earlier.find_bounces,
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
            "find_bounces": self.find_bounces,
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

#[derive(Debug, Default)]
struct Records {
    subs: HashMap<String, Sub>,
    /// Bounce records by address; ids index into `bounce_address`.
    bounces: HashMap<String, Vec<BounceRecord>>,
    bounce_address: HashMap<u64, String>,
    next_bounce: u64,
}

/// The fake's state, shared with the benchmark that seeds and checks it.
#[derive(Debug, Default)]
pub struct ApiState {
    records: Mutex<Records>,
    pub calls: Calls,
    forgetful: bool,
    /// How long each call takes to be answered, in microseconds (0: at once).
    delay_us: AtomicU64,
}

impl ApiState {
    pub fn new(forgetful: bool) -> Arc<ApiState> {
        Arc::new(ApiState {
            forgetful,
            ..ApiState::default()
        })
    }

    fn records(&self) -> MutexGuard<'_, Records> {
        self.records.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds a confirmed email subscription.
    pub fn add_subscription(&self, id: &str, address: &str, code: &str) {
        self.records().subs.insert(
            id.to_string(),
            Sub {
                address: address.to_string(),
                code: code.to_string(),
                state: "confirmed",
                unsubscribed: 0,
            },
        );
    }

    pub fn subscription(&self, id: &str) -> Option<Sub> {
        self.records().subs.get(id).cloned()
    }

    /// The bounce records of an address.
    pub fn bounces_of(&self, address: &str) -> Vec<BounceRecord> {
        self.records()
            .bounces
            .get(address)
            .cloned()
            .unwrap_or_default()
    }

    pub fn counts(&self) -> CallCounts {
        let c = &self.calls;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        CallCounts {
            unsubscribe: get(&c.unsubscribe),
            unsubscribe_all: get(&c.unsubscribe_all),
            find_subscriptions: get(&c.find_subscriptions),
            find_bounces: get(&c.find_bounces),
            create_bounce: get(&c.create_bounce),
            patch_bounce: get(&c.patch_bounce),
            refused: get(&c.refused),
            connections: get(&c.connections),
            max_open: get(&c.max_open),
            max_in_flight: get(&c.max_in_flight),
        }
    }

    /// Starts new high-water marks of open connections and calls in flight.
    pub fn reset_max(&self) {
        let c = &self.calls;
        c.max_open
            .store(c.open.load(Ordering::Relaxed), Ordering::Relaxed);
        c.max_in_flight
            .store(c.in_flight.load(Ordering::Relaxed), Ordering::Relaxed);
    }

    /// Every call is answered only after `delay` (a slow service).
    pub fn set_delay(&self, delay: std::time::Duration) {
        self.delay_us
            .store(delay.as_micros() as u64, Ordering::Relaxed);
    }

    /// Counts a call in flight until the guard drops, after the configured delay.
    async fn begin(self: &Arc<Self>) -> InFlight {
        let c = &self.calls;
        let now = c.in_flight.fetch_add(1, Ordering::Relaxed) + 1;
        c.max_in_flight.fetch_max(now, Ordering::Relaxed);
        let guard = InFlight(self.clone());
        let delay = self.delay_us.load(Ordering::Relaxed);
        if delay > 0 {
            tokio::time::sleep(std::time::Duration::from_micros(delay)).await;
        }
        guard
    }
}

struct InFlight(Arc<ApiState>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.calls.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The running fake.
pub struct FastApi {
    pub addr: SocketAddr,
    pub state: Arc<ApiState>,
    task: tokio::task::JoinHandle<()>,
}

impl FastApi {
    /// Serves on `addr` (port 0 for a free one) until dropped.
    pub async fn start(addr: SocketAddr, forgetful: bool) -> std::io::Result<FastApi> {
        let tcp = tokio::net::TcpListener::bind(addr).await?;
        let addr = tcp.local_addr()?;
        let state = ApiState::new(forgetful);
        let listener = CountingListener {
            tcp,
            state: state.clone(),
        };
        let app = router(state.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(FastApi { addr, state, task })
    }

    /// `internal_http_host` for the server under test.
    pub fn host_url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for FastApi {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Counts the connections it accepts and those open at once.
struct CountingListener {
    tcp: tokio::net::TcpListener,
    state: Arc<ApiState>,
}

impl axum::serve::Listener for CountingListener {
    type Io = CountedStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let Ok((tcp, peer)) = self.tcp.accept().await else {
                // Out of descriptors and the like: let the other side finish something.
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                continue;
            };
            let _ = tcp.set_nodelay(true);
            let c = &self.state.calls;
            count(&c.connections);
            let open = c.open.fetch_add(1, Ordering::Relaxed) + 1;
            c.max_open.fetch_max(open, Ordering::Relaxed);
            let stream = CountedStream {
                tcp,
                state: self.state.clone(),
            };
            return (stream, peer);
        }
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.tcp.local_addr()
    }
}

/// A connection that counts itself out of the open ones when dropped.
pub struct CountedStream {
    tcp: tokio::net::TcpStream,
    state: Arc<ApiState>,
}

impl Drop for CountedStream {
    fn drop(&mut self) {
        self.state.calls.open.fetch_sub(1, Ordering::Relaxed);
    }
}

impl tokio::io::AsyncRead for CountedStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.tcp).poll_read(cx, buf)
    }
}

impl tokio::io::AsyncWrite for CountedStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.tcp).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.tcp).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.tcp.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.tcp).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.tcp).poll_shutdown(cx)
    }
}

fn router(state: Arc<ApiState>) -> Router {
    Router::new()
        .route("/api/subscriptions", get(find_subscriptions))
        .route("/api/subscriptions/{id}/unsubscribe", get(unsubscribe))
        .route("/api/bounces", get(find_bounces).post(create_bounce))
        .route("/api/bounces/{id}", axum::routing::patch(patch_bounce))
        .route("/_stats", get(stats))
        .with_state(state)
}

fn count(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

fn refuse(state: &ApiState, status: StatusCode) -> Response {
    count(&state.calls.refused);
    status.into_response()
}

fn json_response(body: Vec<u8>) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// The query parameters, percent-decoded (`+` is a space, as in a form).
fn params(raw: Option<&str>) -> HashMap<String, String> {
    let mut out = HashMap::new();
    for pair in raw.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let decode = |s: &str| {
            percent_encoding::percent_decode_str(&s.replace('+', " "))
                .decode_utf8_lossy()
                .into_owned()
        };
        out.insert(decode(k), decode(v));
    }
    out
}

/// The `where` object of `?filter=` (the only parameter the find calls send; the others,
/// if any, are not decoded).
fn where_of(raw: Option<&str>) -> Option<Map<String, Value>> {
    let encoded = raw?
        .split('&')
        .find_map(|pair| pair.strip_prefix("filter="))?;
    let filter = percent_encoding::percent_decode_str(encoded)
        .decode_utf8()
        .ok()?;
    match serde_json::from_str::<Value>(&filter).ok()? {
        Value::Object(mut o) => match o.remove("where")? {
            Value::Object(w) => Some(w),
            _ => None,
        },
        _ => None,
    }
}

fn sub_json(id: &str, s: &Sub) -> Value {
    json!({
        "id": id,
        "serviceName": "bench",
        "channel": "email",
        "userChannelId": s.address,
        "state": s.state,
        "unsubscriptionCode": s.code,
    })
}

fn sub_matches(id: &str, s: &Sub, filter: &Map<String, Value>) -> bool {
    filter.iter().all(|(k, v)| {
        let have = match k.as_str() {
            "id" => id,
            "channel" => "email",
            "state" => s.state,
            "unsubscriptionCode" => s.code.as_str(),
            "userChannelId" => s.address.as_str(),
            _ => return false,
        };
        v.as_str() == Some(have)
    })
}

async fn find_subscriptions(
    State(state): State<Arc<ApiState>>,
    RawQuery(query): RawQuery,
) -> Response {
    let _call = state.begin().await;
    count(&state.calls.find_subscriptions);
    let Some(filter) = where_of(query.as_deref()) else {
        return refuse(&state, StatusCode::BAD_REQUEST);
    };
    let found: Vec<Value> = {
        let r = state.records();
        match filter.get("id").and_then(Value::as_str) {
            Some(id) => r
                .subs
                .get(id)
                .filter(|s| sub_matches(id, s, &filter))
                .map(|s| sub_json(id, s))
                .into_iter()
                .collect(),
            None => r
                .subs
                .iter()
                .filter(|(id, s)| sub_matches(id, s, &filter))
                .map(|(id, s)| sub_json(id, s))
                .collect(),
        }
    };
    json_response(serde_json::to_vec(&found).unwrap_or_default())
}

async fn unsubscribe(
    State(state): State<Arc<ApiState>>,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let _call = state.begin().await;
    let p = params(query.as_deref());
    let all = p.get("additionalServices").map(String::as_str) == Some("_all");
    count(if all {
        &state.calls.unsubscribe_all
    } else {
        &state.calls.unsubscribe
    });
    let anonymous = headers
        .get("is_anonymous")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == "true");
    let mut r = state.records();
    let Some(sub) = r.subs.get_mut(&id) else {
        drop(r);
        return refuse(&state, StatusCode::NOT_FOUND);
    };
    let code_ok = !anonymous || p.get("unsubscriptionCode") == Some(&sub.code);
    let address_ok = !anonymous
        || p.get("userChannelId")
            .is_none_or(|a| a.eq_ignore_ascii_case(&sub.address));
    if sub.state != "confirmed" || !code_ok || !address_ok {
        drop(r);
        return refuse(&state, StatusCode::FORBIDDEN);
    }
    sub.unsubscribed += 1;
    if !state.forgetful {
        sub.state = "deleted";
    }
    StatusCode::OK.into_response()
}

fn bounce_json(b: &BounceRecord) -> Value {
    json!({
        "id": b.id.to_string(),
        "channel": "email",
        "userChannelId": b.address,
        "state": b.state,
        "hardBounceCount": b.hard_bounce_count,
        "bounceMessages": b.messages,
    })
}

async fn find_bounces(State(state): State<Arc<ApiState>>, RawQuery(query): RawQuery) -> Response {
    let _call = state.begin().await;
    count(&state.calls.find_bounces);
    let Some(filter) = where_of(query.as_deref()) else {
        return refuse(&state, StatusCode::BAD_REQUEST);
    };
    let Some(address) = filter.get("userChannelId").and_then(Value::as_str) else {
        return refuse(&state, StatusCode::BAD_REQUEST);
    };
    let found: Vec<Value> = {
        let r = state.records();
        r.bounces
            .get(address)
            .map(|records| {
                records
                    .iter()
                    .filter(|b| {
                        filter.iter().all(|(k, v)| match k.as_str() {
                            "channel" => v == "email",
                            "state" => v.as_str() == Some(b.state.as_str()),
                            "userChannelId" => true,
                            _ => false,
                        })
                    })
                    .map(bounce_json)
                    .collect()
            })
            .unwrap_or_default()
    };
    json_response(serde_json::to_vec(&found).unwrap_or_default())
}

/// `bounceMessages` as NotifyBC's schema keeps them: only `date` and `message`.
fn kept_messages(v: Option<&Value>) -> Vec<Value> {
    v.and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .map(|m| json!({ "date": m.get("date"), "message": m.get("message") }))
                .collect()
        })
        .unwrap_or_default()
}

/// The body of `POST /bounces`, read without copying: `bounceMessages` is checked to be
/// JSON and turned into values only when records are kept.
#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct NewBounceBody<'a> {
    #[serde(borrow)]
    user_channel_id: std::borrow::Cow<'a, str>,
    #[serde(default)]
    hard_bounce_count: u64,
    #[serde(borrow)]
    bounce_messages: Option<&'a serde_json::value::RawValue>,
}

async fn create_bounce(State(state): State<Arc<ApiState>>, body: Bytes) -> Response {
    let _call = state.begin().await;
    count(&state.calls.create_bounce);
    let Ok(b) = serde_json::from_slice::<NewBounceBody>(&body) else {
        return refuse(&state, StatusCode::BAD_REQUEST);
    };
    let messages = if state.forgetful {
        Vec::new()
    } else {
        let items = b
            .bounce_messages
            .and_then(|raw| serde_json::from_str::<Value>(raw.get()).ok());
        kept_messages(items.as_ref())
    };
    let mut r = state.records();
    r.next_bounce += 1;
    let record = BounceRecord {
        id: r.next_bounce,
        address: b.user_channel_id.into_owned(),
        state: "active".to_string(),
        hard_bounce_count: b.hard_bounce_count,
        messages,
    };
    let answer = bounce_json(&record);
    if !state.forgetful {
        r.bounce_address.insert(record.id, record.address.clone());
        r.bounces
            .entry(record.address.clone())
            .or_default()
            .push(record);
    }
    drop(r);
    json_response(serde_json::to_vec(&answer).unwrap_or_default())
}

async fn patch_bounce(
    State(state): State<Arc<ApiState>>,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let _call = state.begin().await;
    count(&state.calls.patch_bounce);
    let Ok(Value::Object(patch)) = serde_json::from_slice::<Value>(&body) else {
        return refuse(&state, StatusCode::BAD_REQUEST);
    };
    if state.forgetful {
        return StatusCode::NO_CONTENT.into_response();
    }
    let Ok(id) = id.parse::<u64>() else {
        return refuse(&state, StatusCode::NOT_FOUND);
    };
    let mut r = state.records();
    let Some(address) = r.bounce_address.get(&id).cloned() else {
        drop(r);
        return refuse(&state, StatusCode::NOT_FOUND);
    };
    let Some(record) = r
        .bounces
        .get_mut(&address)
        .and_then(|v| v.iter_mut().find(|b| b.id == id))
    else {
        drop(r);
        return refuse(&state, StatusCode::NOT_FOUND);
    };
    if let Some(n) = patch.get("hardBounceCount").and_then(Value::as_u64) {
        record.hard_bounce_count = n;
    }
    if patch.contains_key("bounceMessages") {
        record.messages = kept_messages(patch.get("bounceMessages"));
    }
    if let Some(s) = patch.get("state").and_then(Value::as_str) {
        record.state = s.to_string();
    }
    StatusCode::NO_CONTENT.into_response()
}

async fn stats(State(state): State<Arc<ApiState>>) -> Response {
    json_response(serde_json::to_vec(&state.counts().to_json()).unwrap_or_default())
}
