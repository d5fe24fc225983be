//! A fast fake of the NotifyBC API for benchmarks and load runs: real HTTP/1.1 on
//! loopback, so the API client's whole cost is counted, with NotifyBC's semantics for
//! exactly the calls the `un` and `bn` flows make, and hash-map look-ups so the fake stays
//! cheap next to the server it feeds (in a load run it shares the cores with it).
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
//!
//! The transport is a minimal HTTP/1.1 server of its own on tokio, with `httparse` for the
//! request heads: keep-alive connections whose requests are answered in turn, request
//! bodies by `Content-Length` only (a `Transfer-Encoding` or a malformed head is answered
//! 400 and the connection closed), answers with `Content-Length`, and the connection closed
//! after answering an HTTP/1.0 request or one with `Connection: close`.
#![allow(dead_code)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde_json::{Map, Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

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
    pub fn set_delay(&self, delay: Duration) {
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
            tokio::time::sleep(Duration::from_micros(delay)).await;
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
        let tcp = TcpListener::bind(addr).await?;
        let addr = tcp.local_addr()?;
        let state = ApiState::new(forgetful);
        let task = tokio::spawn(accept(tcp, state.clone()));
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

/// Accepts connections, counting them and those open at once, each served by a task of
/// its own.
async fn accept(listener: TcpListener, state: Arc<ApiState>) {
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            // Out of descriptors and the like: let the other side finish something.
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let c = &state.calls;
        count(&c.connections);
        let open = c.open.fetch_add(1, Ordering::Relaxed) + 1;
        c.max_open.fetch_max(open, Ordering::Relaxed);
        tokio::spawn(serve(tcp, Open(state.clone())));
    }
}

/// An open connection, counted out of the open ones when it ends.
struct Open(Arc<ApiState>);

impl Drop for Open {
    fn drop(&mut self) {
        self.0.calls.open.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Room made in the read buffer before each read.
const READ_SIZE: usize = 8 * 1024;
/// The largest request head, request body and number of header fields accepted.
const MAX_HEAD: usize = 64 * 1024;
const MAX_BODY: usize = 16 * 1024 * 1024;
const MAX_HEADERS: usize = 32;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Method {
    Get,
    Post,
    Patch,
    Other,
}

/// What a connection keeps of a request head once it is parsed (the target is copied out,
/// so that the buffer can take the body).
#[derive(Debug)]
struct Head {
    /// Bytes of the head, up to and with the empty line.
    len: usize,
    method: Method,
    content_length: usize,
    /// HTTP/1.0 or `Connection: close`: the connection is closed after the answer.
    close: bool,
    /// `is_anonymous: true` (the first such field).
    anonymous: bool,
    expect_continue: bool,
}

/// Parses the request head at the start of `buf` and copies its target into `target`:
/// `Ok(None)` while it is incomplete, `Err` for a head that is malformed, has too many
/// fields, a `Transfer-Encoding`, or a missing-digit, conflicting or too large
/// `Content-Length`.
fn parse_head(buf: &[u8], target: &mut String) -> Result<Option<Head>, ()> {
    let mut fields = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut fields);
    let len = match request.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(_) => return Err(()),
    };
    let method = match request.method {
        Some("GET") => Method::Get,
        Some("POST") => Method::Post,
        Some("PATCH") => Method::Patch,
        _ => Method::Other,
    };
    let mut head = Head {
        len,
        method,
        content_length: 0,
        close: request.version != Some(1),
        anonymous: false,
        expect_continue: false,
    };
    let mut length = None;
    let mut anonymous = None;
    for field in request.headers.iter() {
        let name = field.name;
        if name.eq_ignore_ascii_case("content-length") {
            let n = decimal(field.value).ok_or(())?;
            if length.is_some_and(|m| m != n) {
                return Err(());
            }
            length = Some(n);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            return Err(());
        } else if name.eq_ignore_ascii_case("connection") {
            head.close |= field
                .value
                .split(|&b| b == b',')
                .any(|t| t.trim_ascii().eq_ignore_ascii_case(b"close"));
        } else if name.eq_ignore_ascii_case("is_anonymous") {
            anonymous.get_or_insert(field.value == b"true");
        } else if name.eq_ignore_ascii_case("expect") {
            head.expect_continue = field.value.eq_ignore_ascii_case(b"100-continue");
        }
    }
    head.content_length = length.unwrap_or(0);
    if head.content_length > MAX_BODY {
        return Err(());
    }
    head.anonymous = anonymous.unwrap_or(false);
    target.clear();
    target.push_str(request.path.unwrap_or_default());
    Ok(Some(head))
}

/// A `Content-Length` value: decimal digits only.
fn decimal(value: &[u8]) -> Option<usize> {
    if value.is_empty() {
        return None;
    }
    value.iter().try_fold(0usize, |n, &b| {
        if b.is_ascii_digit() {
            n.checked_mul(10)?.checked_add(usize::from(b - b'0'))
        } else {
            None
        }
    })
}

/// Reads more of the connection into `buf`; false at its end or on an error.
async fn read_more(tcp: &mut TcpStream, buf: &mut Vec<u8>) -> bool {
    if buf.capacity() - buf.len() < READ_SIZE / 2 {
        buf.reserve(READ_SIZE);
    }
    matches!(tcp.read_buf(buf).await, Ok(n) if n > 0)
}

/// Serves the requests of one connection in turn until it closes, one asks for the close,
/// or one cannot be read (400, then the close).
async fn serve(mut tcp: TcpStream, open: Open) {
    let state = &open.0;
    let mut buf: Vec<u8> = Vec::with_capacity(READ_SIZE);
    let mut out: Vec<u8> = Vec::with_capacity(1024);
    let mut target = String::new();
    loop {
        let head = loop {
            if !buf.is_empty() {
                match parse_head(&buf, &mut target) {
                    Ok(Some(head)) => break head,
                    Ok(None) if buf.len() <= MAX_HEAD => {}
                    _ => return refuse_connection(tcp, state, &mut out).await,
                }
            }
            if !read_more(&mut tcp, &mut buf).await {
                return;
            }
        };
        let end = head.len + head.content_length;
        if buf.len() < end {
            if head.expect_continue && tcp.write_all(CONTINUE).await.is_err() {
                return;
            }
            buf.reserve(end - buf.len());
            while buf.len() < end {
                if !read_more(&mut tcp, &mut buf).await {
                    return;
                }
            }
        }
        let (status, body) = answer(
            state,
            head.method,
            &target,
            head.anonymous,
            &buf[head.len..end],
        )
        .await;
        respond(&mut out, status, &body, head.close);
        if tcp.write_all(&out).await.is_err() {
            return;
        }
        if head.close {
            let _ = tcp.shutdown().await;
            return;
        }
        if buf.len() == end {
            buf.clear();
        } else {
            buf.drain(..end);
        }
    }
}

const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

/// Answers a request that cannot be read with 400 and closes the connection.
async fn refuse_connection(mut tcp: TcpStream, state: &ApiState, out: &mut Vec<u8>) {
    count(&state.calls.refused);
    respond(out, Status::BadRequest, b"", true);
    if tcp.write_all(out).await.is_ok() && tcp.shutdown().await.is_ok() {
        // Take what the client still sends for a moment, so that closing with unread
        // input does not reset the connection before the client has read the answer.
        let mut sink = [0u8; 4096];
        let drain = async { while matches!(tcp.read(&mut sink).await, Ok(n) if n > 0) {} };
        let _ = tokio::time::timeout(Duration::from_secs(1), drain).await;
    }
}

/// The status of an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    Ok,
    NoContent,
    BadRequest,
    Forbidden,
    NotFound,
    MethodNotAllowed,
}

impl Status {
    /// The status line's code and reason phrase.
    fn line(self) -> &'static [u8] {
        match self {
            Status::Ok => b"200 OK",
            Status::NoContent => b"204 No Content",
            Status::BadRequest => b"400 Bad Request",
            Status::Forbidden => b"403 Forbidden",
            Status::NotFound => b"404 Not Found",
            Status::MethodNotAllowed => b"405 Method Not Allowed",
        }
    }
}

/// A status and a body: JSON, or empty.
type Answer = (Status, Vec<u8>);

/// Writes the whole answer into `out`: the head, with `Content-Type` for a body and
/// `Content-Length` (not for 204), then the body.
fn respond(out: &mut Vec<u8>, status: Status, body: &[u8], close: bool) {
    debug_assert!(status != Status::NoContent || body.is_empty());
    out.clear();
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.line());
    out.extend_from_slice(b"\r\n");
    if !body.is_empty() {
        out.extend_from_slice(b"Content-Type: application/json\r\n");
    }
    if status != Status::NoContent {
        out.extend_from_slice(b"Content-Length: ");
        push_u64(out, body.len() as u64);
        out.extend_from_slice(b"\r\n");
    }
    if close {
        out.extend_from_slice(b"Connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
}

/// The calls the fake answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route<'a> {
    FindSubscriptions,
    Unsubscribe(&'a str),
    FindBounces,
    CreateBounce,
    PatchBounce(&'a str),
    Stats,
}

/// The route of a method and path: 404 for an unknown path, 405 for a method the path
/// does not take.
fn route<'a>(method: Method, path: &'a str) -> Result<Route<'a>, Status> {
    let only = |m: Method, r: Route<'a>| {
        if method == m {
            Ok(r)
        } else {
            Err(Status::MethodNotAllowed)
        }
    };
    let segment = |s: &&str| !s.is_empty() && !s.contains('/');
    match path {
        "/api/subscriptions" => only(Method::Get, Route::FindSubscriptions),
        "/api/bounces" => match method {
            Method::Get => Ok(Route::FindBounces),
            Method::Post => Ok(Route::CreateBounce),
            _ => Err(Status::MethodNotAllowed),
        },
        "/_stats" => only(Method::Get, Route::Stats),
        _ => {
            if let Some(id) = path
                .strip_prefix("/api/subscriptions/")
                .and_then(|rest| rest.strip_suffix("/unsubscribe"))
                .filter(segment)
            {
                only(Method::Get, Route::Unsubscribe(id))
            } else if let Some(id) = path.strip_prefix("/api/bounces/").filter(segment) {
                only(Method::Patch, Route::PatchBounce(id))
            } else {
                Err(Status::NotFound)
            }
        }
    }
}

/// Answers one request. Every call but `/_stats` is counted in flight and waits the
/// configured delay first.
async fn answer(
    state: &Arc<ApiState>,
    method: Method,
    target: &str,
    anonymous: bool,
    body: &[u8],
) -> Answer {
    let (path, query) = match target.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (target, None),
    };
    let route = match route(method, path) {
        Ok(route) => route,
        Err(status) => return (status, Vec::new()),
    };
    if route == Route::Stats {
        return stats(state);
    }
    let _call = state.begin().await;
    match route {
        Route::FindSubscriptions => find_subscriptions(state, query),
        Route::Unsubscribe(id) => match path_segment(id) {
            Some(id) => unsubscribe(state, &id, query, anonymous),
            None => refuse(state, Status::BadRequest),
        },
        Route::FindBounces => find_bounces(state, query),
        Route::CreateBounce => create_bounce(state, body),
        Route::PatchBounce(id) => match path_segment(id) {
            Some(id) => patch_bounce(state, &id, body),
            None => refuse(state, Status::BadRequest),
        },
        Route::Stats => stats(state),
    }
}

/// A path parameter, percent-decoded; `None` unless UTF-8.
fn path_segment(raw: &str) -> Option<std::borrow::Cow<'_, str>> {
    percent_encoding::percent_decode_str(raw).decode_utf8().ok()
}

fn count(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

fn refuse(state: &ApiState, status: Status) -> Answer {
    count(&state.calls.refused);
    (status, Vec::new())
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

/// Appends `s` as a JSON string literal.
fn push_string(out: &mut Vec<u8>, s: &str) {
    // Writing a `str` into a `Vec` cannot fail.
    let _ = serde_json::to_writer(&mut *out, s);
}

/// Appends `n` in decimal.
fn push_u64(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

/// Appends a comma unless `out` is at the start of an array.
fn push_separator(out: &mut Vec<u8>) {
    if out.last() != Some(&b'[') {
        out.push(b',');
    }
}

fn push_sub(out: &mut Vec<u8>, id: &str, s: &Sub) {
    out.extend_from_slice(b"{\"id\":");
    push_string(out, id);
    out.extend_from_slice(b",\"serviceName\":\"bench\",\"channel\":\"email\",\"userChannelId\":");
    push_string(out, &s.address);
    out.extend_from_slice(b",\"state\":");
    push_string(out, s.state);
    out.extend_from_slice(b",\"unsubscriptionCode\":");
    push_string(out, &s.code);
    out.push(b'}');
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

fn find_subscriptions(state: &ApiState, query: Option<&str>) -> Answer {
    count(&state.calls.find_subscriptions);
    let Some(filter) = where_of(query) else {
        return refuse(state, Status::BadRequest);
    };
    let mut body = Vec::with_capacity(256);
    body.push(b'[');
    {
        let r = state.records();
        match filter.get("id").and_then(Value::as_str) {
            Some(id) => {
                if let Some(s) = r.subs.get(id).filter(|s| sub_matches(id, s, &filter)) {
                    push_sub(&mut body, id, s);
                }
            }
            None => {
                for (id, s) in r.subs.iter().filter(|(id, s)| sub_matches(id, s, &filter)) {
                    push_separator(&mut body);
                    push_sub(&mut body, id, s);
                }
            }
        }
    }
    body.push(b']');
    (Status::Ok, body)
}

fn unsubscribe(state: &ApiState, id: &str, query: Option<&str>, anonymous: bool) -> Answer {
    let p = params(query);
    let all = p.get("additionalServices").map(String::as_str) == Some("_all");
    count(if all {
        &state.calls.unsubscribe_all
    } else {
        &state.calls.unsubscribe
    });
    let mut r = state.records();
    let Some(sub) = r.subs.get_mut(id) else {
        drop(r);
        return refuse(state, Status::NotFound);
    };
    let code_ok = !anonymous || p.get("unsubscriptionCode") == Some(&sub.code);
    let address_ok = !anonymous
        || p.get("userChannelId")
            .is_none_or(|a| a.eq_ignore_ascii_case(&sub.address));
    if sub.state != "confirmed" || !code_ok || !address_ok {
        drop(r);
        return refuse(state, Status::Forbidden);
    }
    sub.unsubscribed += 1;
    if !state.forgetful {
        sub.state = "deleted";
    }
    (Status::Ok, Vec::new())
}

fn push_bounce(out: &mut Vec<u8>, b: &BounceRecord) {
    out.extend_from_slice(b"{\"id\":\"");
    push_u64(out, b.id);
    out.extend_from_slice(b"\",\"channel\":\"email\",\"userChannelId\":");
    push_string(out, &b.address);
    out.extend_from_slice(b",\"state\":");
    push_string(out, &b.state);
    out.extend_from_slice(b",\"hardBounceCount\":");
    push_u64(out, b.hard_bounce_count);
    out.extend_from_slice(b",\"bounceMessages\":[");
    for m in &b.messages {
        push_separator(out);
        // A `Value` always serialises.
        let _ = serde_json::to_writer(&mut *out, m);
    }
    out.extend_from_slice(b"]}");
}

fn find_bounces(state: &ApiState, query: Option<&str>) -> Answer {
    count(&state.calls.find_bounces);
    let Some(filter) = where_of(query) else {
        return refuse(state, Status::BadRequest);
    };
    let Some(address) = filter.get("userChannelId").and_then(Value::as_str) else {
        return refuse(state, Status::BadRequest);
    };
    let mut body = Vec::with_capacity(256);
    body.push(b'[');
    {
        let r = state.records();
        let matching = r.bounces.get(address).into_iter().flatten().filter(|b| {
            filter.iter().all(|(k, v)| match k.as_str() {
                "channel" => v == "email",
                "state" => v.as_str() == Some(b.state.as_str()),
                "userChannelId" => true,
                _ => false,
            })
        });
        for b in matching {
            push_separator(&mut body);
            push_bounce(&mut body, b);
        }
    }
    body.push(b']');
    (Status::Ok, body)
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

fn create_bounce(state: &ApiState, body: &[u8]) -> Answer {
    count(&state.calls.create_bounce);
    let Ok(b) = serde_json::from_slice::<NewBounceBody>(body) else {
        return refuse(state, Status::BadRequest);
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
    let mut answer = Vec::with_capacity(256);
    push_bounce(&mut answer, &record);
    if !state.forgetful {
        r.bounce_address.insert(record.id, record.address.clone());
        r.bounces
            .entry(record.address.clone())
            .or_default()
            .push(record);
    }
    drop(r);
    (Status::Ok, answer)
}

fn patch_bounce(state: &ApiState, id: &str, body: &[u8]) -> Answer {
    count(&state.calls.patch_bounce);
    let Ok(Value::Object(patch)) = serde_json::from_slice::<Value>(body) else {
        return refuse(state, Status::BadRequest);
    };
    if state.forgetful {
        return (Status::NoContent, Vec::new());
    }
    let Ok(id) = id.parse::<u64>() else {
        return refuse(state, Status::NotFound);
    };
    let mut r = state.records();
    let Some(address) = r.bounce_address.get(&id).cloned() else {
        drop(r);
        return refuse(state, Status::NotFound);
    };
    let Some(record) = r
        .bounces
        .get_mut(&address)
        .and_then(|v| v.iter_mut().find(|b| b.id == id))
    else {
        drop(r);
        return refuse(state, Status::NotFound);
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
    (Status::NoContent, Vec::new())
}

fn stats(state: &ApiState) -> Answer {
    let body = serde_json::to_vec(&state.counts().to_json()).unwrap_or_default();
    (Status::Ok, body)
}
