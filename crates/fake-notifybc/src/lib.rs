//! An in-process fake of the NotifyBC API, on `127.0.0.1:0`, with NotifyBC's semantics for
//! the calls notify-inbound makes:
//!
//! - `GET /api/subscriptions/{id}/unsubscribe`: unknown id → 404; with header
//!   `is_anonymous: true` the anonymous checks apply (the code must equal the subscription's
//!   when it has one, `userChannelId` when given must equal the subscription's
//!   case-insensitively) and in every case the subscription must be `confirmed`, else 403.
//!   `additionalServices=_all` also deletes the user's other confirmed subscriptions on the
//!   channel. In redirect mode ([`FakeApi::set_redirect`]) success is a 302 to
//!   `{url}?channel=email` and a refusal a 302 to `{url}?channel=email&err=...`, as NotifyBC
//!   does when `anonymousUnsubscription.acknowledgements.onScreen.redirectUrl` is set.
//! - `GET /api/subscriptions?filter=<json>` and `GET /api/bounces?filter=<json>`: records
//!   whose fields equal every entry of `where`; `GET /api/subscriptions/{id}`.
//! - `POST /api/bounces` → 200 with the record and its id (state `active` by default);
//!   `PATCH /api/bounces/{id}` → 204. Like NotifyBC's schema, `bounceMessages` items keep
//!   only `date` and `message`.
//!
//! Every request is logged as received ([`FakeApi::requests`]): method, path and query
//! exactly as sent, headers, body. Faults can be injected ([`Fault`], [`FaultRule`]): the
//! whole server down (nothing listening), slow answers, fixed statuses, a seeded random
//! share of failures, and answers lost after the effect was applied (a 502, or the
//! connection closed without an answer).
//!
//! [`FakeApi::start_mtls`] serves the same over TLS and requires a client certificate, for
//! the API client's mutual-TLS authentication (`api.client_cert`, `api.client_key`).
//!
//! Ids are `"1"`, `"2"`, ... per collection, like the records of NotifyBC's own tests.
//!
//! [`fast`] is a second transport for benchmarks and load runs (`httparse` on tokio,
//! hash-map look-ups, call counters, a forgetful mode), with the subset of these rules that
//! the `un` and `bn` flows exercise.

pub mod fast;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Query, Request, State as AxState};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::{Next, from_fn_with_state};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::net::TcpSocket;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A subscription record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Subscription {
    pub id: String,
    pub service_name: String,
    pub channel: String,
    pub user_channel_id: String,
    pub state: String,
    pub unsubscription_code: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unsubscribed_additional_services: Option<Value>,
    /// How many times the unsubscribe endpoint moved this record from confirmed to deleted.
    #[serde(skip)]
    pub times_unsubscribed: u32,
}

/// One item of a bounce record's `bounceMessages`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BounceMessage {
    pub date: String,
    pub message: String,
}

/// A bounce record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Bounce {
    pub id: String,
    pub channel: String,
    pub user_channel_id: String,
    pub state: String,
    pub hard_bounce_count: u64,
    pub bounce_messages: Vec<BounceMessage>,
}

/// A request as the fake received it.
#[derive(Debug, Clone)]
pub struct LoggedRequest {
    pub method: String,
    /// Path and query exactly as received (still percent-encoded).
    pub uri: String,
    /// Header names in lower case.
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl LoggedRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn path(&self) -> &str {
        self.uri.split('?').next().unwrap_or("")
    }

    /// `"GET /api/..."`: handy in assertion messages.
    pub fn line(&self) -> String {
        format!("{} {}", self.method, self.uri)
    }
}

/// What goes wrong with a call that a [`FaultRule`] matches.
#[derive(Debug, Clone)]
pub enum Fault {
    /// Answer this status at once, without any effect.
    Status(u16),
    /// Wait this long, then process the call normally (the effect is applied late, after a
    /// client with a shorter timeout has given up).
    Slow(Duration),
    /// Fail this share of calls (0–100) with 503 before any effect, drawn from the seeded
    /// generator ([`FakeApi::seed`]).
    RandomFail { percent: u8 },
    /// Apply the call, then answer 502 as if the answer had been lost.
    LoseAnswer,
    /// Like `LoseAnswer`, for this share of calls (0–100).
    RandomLoseAnswer { percent: u8 },
    /// Apply the call, then close the connection without a byte of answer (the API crashed
    /// or a proxy cut the connection after the effect).
    ApplyThenDrop,
}

/// A fault and the calls it applies to.
#[derive(Debug, Clone)]
pub struct FaultRule {
    pub fault: Fault,
    /// Only calls with this method (any when `None`).
    pub method: Option<Method>,
    /// Only calls whose path and query contain this text (any when `None`).
    pub uri_contains: Option<String>,
    /// Only this many times (always when `None`).
    pub times: Option<usize>,
}

impl FaultRule {
    /// The fault on every call, always.
    pub fn all(fault: Fault) -> FaultRule {
        FaultRule {
            fault,
            method: None,
            uri_contains: None,
            times: None,
        }
    }

    /// The fault on calls with `method` whose path and query contain `text`.
    pub fn on(method: Method, text: &str, fault: Fault) -> FaultRule {
        FaultRule {
            fault,
            method: Some(method),
            uri_contains: Some(text.to_string()),
            times: None,
        }
    }

    pub fn times(mut self, n: usize) -> FaultRule {
        self.times = Some(n);
        self
    }
}

#[derive(Debug, Default)]
struct State {
    subscriptions: Vec<Subscription>,
    bounces: Vec<Bounce>,
    next_subscription: u64,
    next_bounce: u64,
    requests: Vec<LoggedRequest>,
    token: Option<String>,
    redirect: Option<String>,
    faults: Vec<FaultRule>,
    rng: u64,
}

impl State {
    /// xorshift64: reproducible draws for the random faults.
    fn roll(&mut self, percent: u8) -> bool {
        let mut x = if self.rng == 0 {
            0x9E37_79B9_7F4A_7C15
        } else {
            self.rng
        };
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rng = x;
        x % 100 < u64::from(percent)
    }
}

type Shared = Arc<Mutex<State>>;

fn lock(state: &Shared) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(|e| e.into_inner())
}

struct Running {
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

/// PEM files for talking to a mutual-TLS fake ([`FakeApi::start_mtls`]); they live as long
/// as this value.
pub struct MtlsFiles {
    _dir: tempfile::TempDir,
    /// The CA that signed the server's and the client's certificates (`api.ca_bundle`).
    pub ca: String,
    /// The client certificate (`api.client_cert`).
    pub client_cert: String,
    /// The client's private key (`api.client_key`).
    pub client_key: String,
}

impl MtlsFiles {
    /// The `[api]` section that authenticates with the client certificate.
    pub fn api_section(&self) -> String {
        format!(
            "[api]\nclient_cert = '{}'\nclient_key = '{}'\nca_bundle = '{}'\n",
            self.client_cert, self.client_key, self.ca
        )
    }
}

/// The fake NotifyBC API server. Dropping it stops the server.
pub struct FakeApi {
    state: Shared,
    addr: SocketAddr,
    tls: Option<Arc<rustls::ServerConfig>>,
    running: tokio::sync::Mutex<Option<Running>>,
    _port: TcpSocket,
}

impl FakeApi {
    /// Starts the fake on a free loopback port, plain HTTP.
    pub async fn start() -> FakeApi {
        FakeApi::start_with(None).await
    }

    /// Starts the fake over HTTPS on `127.0.0.1`, accepting only clients that present a
    /// certificate signed by the CA in the returned files.
    pub async fn start_mtls() -> (FakeApi, MtlsFiles) {
        let (config, files) = mtls_material();
        (FakeApi::start_with(Some(Arc::new(config))).await, files)
    }

    async fn start_with(tls: Option<Arc<rustls::ServerConfig>>) -> FakeApi {
        let state: Shared = Arc::default();
        let listener = bind("127.0.0.1:0".parse().unwrap()).await;
        let addr = listener.local_addr().unwrap();
        let port = reserve(addr);
        let running = spawn(listener, tls.clone(), state.clone());
        FakeApi {
            state,
            addr,
            tls,
            running: tokio::sync::Mutex::new(Some(running)),
            _port: port,
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:{port}` (`https://` for a TLS fake): the value for
    /// `internal_http_host` (`rest_api_root` is the default `/api`).
    pub fn host_url(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    /// Configuration TOML pointing at this fake, followed by `extra` (which may open
    /// sections such as `[api]` or `[bounce]`).
    pub fn config_toml(&self, extra: &str) -> String {
        format!(
            "internal_http_host = \"{}\"\nrest_api_root = \"/api\"\n{extra}\n",
            self.host_url()
        )
    }

    // ---- seeding and inspecting state ----

    /// Adds a confirmed email subscription and returns its id.
    pub fn add_subscription(&self, service: &str, user_channel_id: &str, code: &str) -> String {
        self.insert_subscription(service, user_channel_id, code, "confirmed")
    }

    /// Adds an email subscription in the given state and returns its id.
    pub fn insert_subscription(
        &self,
        service: &str,
        user_channel_id: &str,
        code: &str,
        state: &str,
    ) -> String {
        let mut s = lock(&self.state);
        s.next_subscription += 1;
        let id = s.next_subscription.to_string();
        s.subscriptions.push(Subscription {
            id: id.clone(),
            service_name: service.to_string(),
            channel: "email".to_string(),
            user_channel_id: user_channel_id.to_string(),
            state: state.to_string(),
            unsubscription_code: code.to_string(),
            unsubscribed_additional_services: None,
            times_unsubscribed: 0,
        });
        id
    }

    pub fn subscription(&self, id: &str) -> Option<Subscription> {
        lock(&self.state)
            .subscriptions
            .iter()
            .find(|s| s.id == id)
            .cloned()
    }

    pub fn subscriptions(&self) -> Vec<Subscription> {
        lock(&self.state).subscriptions.clone()
    }

    /// Adds an active email bounce record with this count and no messages; returns its id.
    pub fn add_bounce(&self, user_channel_id: &str, hard_bounce_count: u64) -> String {
        let mut s = lock(&self.state);
        s.next_bounce += 1;
        let id = s.next_bounce.to_string();
        s.bounces.push(Bounce {
            id: id.clone(),
            channel: "email".to_string(),
            user_channel_id: user_channel_id.to_string(),
            state: "active".to_string(),
            hard_bounce_count,
            bounce_messages: Vec::new(),
        });
        id
    }

    pub fn bounce(&self, id: &str) -> Option<Bounce> {
        lock(&self.state)
            .bounces
            .iter()
            .find(|b| b.id == id)
            .cloned()
    }

    pub fn bounces(&self) -> Vec<Bounce> {
        lock(&self.state).bounces.clone()
    }

    /// The bounce records of an address, in creation order.
    pub fn bounces_of(&self, user_channel_id: &str) -> Vec<Bounce> {
        lock(&self.state)
            .bounces
            .iter()
            .filter(|b| b.user_channel_id == user_channel_id)
            .cloned()
            .collect()
    }

    /// The one bounce record of an address. Fails the test when there is none or more than
    /// one: a duplicate record is what a race between two deliveries would leave.
    pub fn only_bounce_of(&self, user_channel_id: &str) -> Bounce {
        let mut records = self.bounces_of(user_channel_id);
        assert_eq!(
            records.len(),
            1,
            "exactly one bounce record for {user_channel_id}: {records:?}"
        );
        records.remove(0)
    }

    // ---- the request log ----

    pub fn requests(&self) -> Vec<LoggedRequest> {
        lock(&self.state).requests.clone()
    }

    pub fn clear_requests(&self) {
        lock(&self.state).requests.clear();
    }

    // ---- behaviour ----

    /// Requires `Authorization: {token}` on every call (401 otherwise); `None` turns it off.
    pub fn require_token(&self, token: Option<&str>) {
        lock(&self.state).token = token.map(str::to_string);
    }

    /// Redirect mode for the unsubscribe endpoint; `None` answers 200 / 403 instead.
    pub fn set_redirect(&self, url: Option<&str>) {
        lock(&self.state).redirect = url.map(str::to_string);
    }

    /// Adds a fault rule; the first rule that matches a call applies.
    pub fn add_fault(&self, rule: FaultRule) {
        lock(&self.state).faults.push(rule);
    }

    /// Replaces all rules by one that applies `fault` to every call.
    pub fn fail_all(&self, fault: Fault) {
        let mut s = lock(&self.state);
        s.faults.clear();
        s.faults.push(FaultRule::all(fault));
    }

    pub fn clear_faults(&self) {
        lock(&self.state).faults.clear();
    }

    /// Seeds the generator behind the random faults.
    pub fn seed(&self, seed: u64) {
        lock(&self.state).rng = seed;
    }

    /// Stops listening and closes every connection (calls in progress finish first): the
    /// API is unreachable until [`FakeApi::come_up`].
    pub async fn go_down(&self) {
        if let Some(running) = self.running.lock().await.take() {
            let _ = running.stop.send(());
            let _ = running.task.await;
        }
    }

    /// Listens again on the same port, which stayed reserved meanwhile.
    pub async fn come_up(&self) {
        let mut running = self.running.lock().await;
        if running.is_none() {
            let listener = bind(self.addr).await;
            *running = Some(spawn(listener, self.tls.clone(), self.state.clone()));
        }
    }
}

async fn bind(addr: SocketAddr) -> tokio::net::TcpListener {
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_reuseaddr(true).unwrap();
    // Shared with the fake's reservation of its port ([`reserve`]).
    socket.set_reuseport(true).unwrap();
    socket
        .bind(addr)
        .unwrap_or_else(|e| panic!("the fake API cannot listen on {addr} again: {e}"));
    socket.listen(1024).unwrap()
}

/// A socket bound to the fake's port and never listening, held for the fake's lifetime: while
/// the fake is down ([`FakeApi::go_down`]) connections are refused as with nothing there, yet
/// no other socket (a client's ephemeral port, another test's listener) can take the port,
/// so [`FakeApi::come_up`] always gets it back. Only sockets with `SO_REUSEPORT` of the same
/// user share it, which is what [`bind`] sets. Without `SO_REUSEADDR` here, since Linux lets
/// a socket with it listen beside a bound one that has it too.
fn reserve(addr: SocketAddr) -> TcpSocket {
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_reuseport(true).unwrap();
    socket
        .bind(addr)
        .unwrap_or_else(|e| panic!("cannot reserve the fake API's port {addr}: {e}"));
    socket
}

fn spawn(
    listener: tokio::net::TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    state: Shared,
) -> Running {
    let app = Router::new()
        .route("/api/subscriptions", get(list_subscriptions))
        .route("/api/subscriptions/{id}", get(get_subscription))
        .route("/api/subscriptions/{id}/unsubscribe", get(unsubscribe))
        .route("/api/bounces", get(list_bounces).post(create_bounce))
        .route("/api/bounces/{id}", get(get_bounce).patch(patch_bounce))
        .fallback(|| async { StatusCode::NOT_FOUND })
        .layer(from_fn_with_state(state.clone(), front))
        .with_state(state);
    let (stop, stopped) = oneshot::channel::<()>();
    let stopped = async {
        let _ = stopped.await;
    };
    let task = tokio::spawn(async move {
        let _ = match tls {
            None => {
                axum::serve(listener, app)
                    .with_graceful_shutdown(stopped)
                    .await
            }
            Some(config) => {
                let listener = TlsListener {
                    tcp: listener,
                    acceptor: tokio_rustls::TlsAcceptor::from(config),
                };
                axum::serve(listener, app)
                    .with_graceful_shutdown(stopped)
                    .await
            }
        };
    });
    Running { stop, task }
}

/// Accepts TCP connections and completes the TLS handshake; failed handshakes (a client
/// without an acceptable certificate) are dropped.
struct TlsListener {
    tcp: tokio::net::TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
}

impl axum::serve::Listener for TlsListener {
    type Io = tokio_rustls::server::TlsStream<tokio::net::TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let Ok((tcp, addr)) = self.tcp.accept().await else {
                continue;
            };
            let handshake = self.acceptor.accept(tcp);
            if let Ok(Ok(tls)) = tokio::time::timeout(Duration::from_secs(5), handshake).await {
                return (tls, addr);
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.tcp.local_addr()
    }
}

/// A CA, a server certificate for 127.0.0.1 and a client certificate, all fresh.
fn mtls_material() -> (rustls::ServerConfig, MtlsFiles) {
    use rcgen::{
        BasicConstraints, CertificateParams, ExtendedKeyUsagePurpose, IsCa, KeyPair, SanType,
    };
    use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();

    let server_key = KeyPair::generate().unwrap();
    let mut server_params = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    server_params
        .subject_alt_names
        .push(SanType::IpAddress(std::net::IpAddr::V4(
            std::net::Ipv4Addr::LOCALHOST,
        )));
    server_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let server = server_params.signed_by(&server_key, &ca, &ca_key).unwrap();

    let client_key = KeyPair::generate().unwrap();
    let mut client_params = CertificateParams::new(vec!["notify-inbound".to_string()]).unwrap();
    client_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let client = client_params.signed_by(&client_key, &ca, &ca_key).unwrap();

    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.der().clone()).unwrap();
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .build()
    .unwrap();
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_client_cert_verifier(verifier)
        .with_single_cert(
            vec![server.der().clone()],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(server_key.serialize_der())),
        )
        .unwrap();

    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, pem: String| {
        let path = dir.path().join(name);
        std::fs::write(&path, pem).unwrap();
        path.to_string_lossy().into_owned()
    };
    let files = MtlsFiles {
        ca: write("ca.pem", ca.pem()),
        client_cert: write("client.pem", client.pem()),
        client_key: write("client.key", client_key.serialize_pem()),
        _dir: dir,
    };
    (config, files)
}

/// Logs the request, checks the token and applies the first matching fault.
async fn front(AxState(state): AxState<Shared>, request: Request, next: Next) -> Response {
    let (parts, body) = request.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap_or_default();
    let uri = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_default();
    let logged = LoggedRequest {
        method: parts.method.to_string(),
        uri: uri.clone(),
        headers: parts
            .headers
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body: String::from_utf8_lossy(&bytes).into_owned(),
    };
    let fault = {
        let mut s = lock(&state);
        s.requests.push(logged);
        if let Some(token) = &s.token {
            let sent = parts
                .headers
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok());
            if sent != Some(token.as_str()) {
                return StatusCode::UNAUTHORIZED.into_response();
            }
        }
        let method = parts.method.clone();
        let found = s.faults.iter_mut().find(|r| {
            r.method.as_ref().is_none_or(|m| *m == method)
                && r.uri_contains
                    .as_ref()
                    .is_none_or(|t| uri.contains(t.as_str()))
                && r.times != Some(0)
        });
        let fault = found.map(|r| {
            if let Some(n) = r.times.as_mut() {
                *n -= 1;
            }
            r.fault.clone()
        });
        match fault {
            Some(Fault::RandomFail { percent }) => s.roll(percent).then_some(Fault::Status(503)),
            Some(Fault::RandomLoseAnswer { percent }) => {
                s.roll(percent).then_some(Fault::LoseAnswer)
            }
            other => other,
        }
    };
    let request = Request::from_parts(parts, Body::from(bytes));
    match fault {
        None => next.run(request).await,
        Some(Fault::Status(code)) => StatusCode::from_u16(code)
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
            .into_response(),
        Some(Fault::Slow(delay)) => {
            tokio::time::sleep(delay).await;
            next.run(request).await
        }
        Some(Fault::LoseAnswer) => {
            let _applied = next.run(request).await;
            StatusCode::BAD_GATEWAY.into_response()
        }
        Some(Fault::ApplyThenDrop) => {
            let _applied = next.run(request).await;
            // Unwinding ends the task serving this connection, which drops the socket with
            // nothing written; `resume_unwind` skips the panic hook, so nothing is printed.
            std::panic::resume_unwind(Box::new("the fake API drops the connection"))
        }
        Some(Fault::RandomFail { .. }) | Some(Fault::RandomLoseAnswer { .. }) => {
            next.run(request).await
        }
    }
}

/// The `where` object of a `filter` query parameter; `Err` is the text of a 400.
fn where_of(query: &HashMap<String, String>) -> Result<serde_json::Map<String, Value>, String> {
    let Some(filter) = query.get("filter") else {
        return Ok(serde_json::Map::new());
    };
    let filter: Value =
        serde_json::from_str(filter).map_err(|_| "filter is not JSON".to_string())?;
    match filter.get("where") {
        None => Ok(serde_json::Map::new()),
        Some(Value::Object(w)) => Ok(w.clone()),
        Some(_) => Err("where is not an object".to_string()),
    }
}

fn bad_request(why: String) -> Response {
    (StatusCode::BAD_REQUEST, why).into_response()
}

fn matches(record: &impl Serialize, filter: &serde_json::Map<String, Value>) -> bool {
    let value = serde_json::to_value(record).unwrap_or(Value::Null);
    filter.iter().all(|(k, v)| value.get(k) == Some(v))
}

async fn list_subscriptions(
    AxState(state): AxState<Shared>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let filter = match where_of(&query) {
        Ok(f) => f,
        Err(why) => return bad_request(why),
    };
    let s = lock(&state);
    let found: Vec<&Subscription> = s
        .subscriptions
        .iter()
        .filter(|x| matches(x, &filter))
        .collect();
    axum::Json(json!(found)).into_response()
}

async fn get_subscription(AxState(state): AxState<Shared>, Path(id): Path<String>) -> Response {
    let s = lock(&state);
    match s.subscriptions.iter().find(|x| x.id == id) {
        Some(x) => axum::Json(json!(x)).into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn unsubscribe(
    AxState(state): AxState<Shared>,
    Path(id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let mut s = lock(&state);
    let redirect = s.redirect.clone();
    let Some(index) = s.subscriptions.iter().position(|x| x.id == id) else {
        // NotifyBC answers 404 before its redirect handling.
        return StatusCode::NOT_FOUND.into_response();
    };
    let anonymous = headers
        .get("is_anonymous")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("true"));
    let target = s.subscriptions[index].clone();
    let mut forbidden = target.state != "confirmed";
    if anonymous {
        let code = query.get("unsubscriptionCode").map(String::as_str);
        if !target.unsubscription_code.is_empty()
            && code != Some(target.unsubscription_code.as_str())
        {
            forbidden = true;
        }
        if let Some(address) = query.get("userChannelId").filter(|a| !a.is_empty())
            && address.to_lowercase() != target.user_channel_id.to_lowercase()
        {
            forbidden = true;
        }
    }
    if forbidden {
        return match redirect {
            Some(url) => found(&format!(
                "{url}?channel={}&err=HttpException%3A%20Forbidden",
                target.channel
            )),
            None => StatusCode::FORBIDDEN.into_response(),
        };
    }
    let additional: Vec<String> = query
        .get("additionalServices")
        .map(|v| v.split(',').map(str::to_string).collect())
        .unwrap_or_default();
    let mut others: Vec<usize> = Vec::new();
    if additional == ["_all"] {
        others = (0..s.subscriptions.len())
            .filter(|&i| {
                let x = &s.subscriptions[i];
                i != index
                    && x.state == "confirmed"
                    && x.channel == target.channel
                    && x.user_channel_id == target.user_channel_id
            })
            .collect();
    } else if !additional.is_empty() {
        others = (0..s.subscriptions.len())
            .filter(|&i| {
                let x = &s.subscriptions[i];
                i != index
                    && additional.contains(&x.service_name)
                    && x.channel == target.channel
                    && x.user_channel_id == target.user_channel_id
            })
            .collect();
    }
    for &i in others.iter().chain(std::iter::once(&index)) {
        let x = &mut s.subscriptions[i];
        if x.state != "deleted" {
            x.times_unsubscribed += 1;
        }
        x.state = "deleted".to_string();
    }
    if !additional.is_empty() {
        let names: Vec<String> = others
            .iter()
            .map(|&i| s.subscriptions[i].service_name.clone())
            .collect();
        let ids: Vec<String> = others
            .iter()
            .map(|&i| s.subscriptions[i].id.clone())
            .collect();
        s.subscriptions[index].unsubscribed_additional_services =
            Some(json!({ "names": names, "ids": ids }));
    }
    match redirect {
        Some(url) => found(&format!("{url}?channel={}", target.channel)),
        None => (StatusCode::OK, "You have been un-subscribed.").into_response(),
    }
}

fn found(location: &str) -> Response {
    (
        StatusCode::FOUND,
        [(header::LOCATION, location.to_string())],
    )
        .into_response()
}

async fn list_bounces(
    AxState(state): AxState<Shared>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let filter = match where_of(&query) {
        Ok(f) => f,
        Err(why) => return bad_request(why),
    };
    let s = lock(&state);
    let found: Vec<&Bounce> = s.bounces.iter().filter(|x| matches(x, &filter)).collect();
    axum::Json(json!(found)).into_response()
}

async fn get_bounce(AxState(state): AxState<Shared>, Path(id): Path<String>) -> Response {
    let s = lock(&state);
    match s.bounces.iter().find(|x| x.id == id) {
        Some(x) => axum::Json(json!(x)).into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

/// `bounceMessages` as NotifyBC's schema keeps them: `date` and `message` only.
fn bounce_messages(value: &Value) -> Result<Vec<BounceMessage>, String> {
    serde_json::from_value::<Vec<BounceMessage>>(value.clone())
        .map_err(|e| format!("bounceMessages: {e}"))
}

async fn create_bounce(AxState(state): AxState<Shared>, body: String) -> Response {
    let Ok(body) = serde_json::from_str::<Value>(&body) else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    let messages = match body.get("bounceMessages") {
        Some(v) => match bounce_messages(v) {
            Ok(m) => m,
            Err(why) => return bad_request(why),
        },
        None => Vec::new(),
    };
    let text = |k: &str| body.get(k).and_then(Value::as_str).map(str::to_string);
    let mut s = lock(&state);
    s.next_bounce += 1;
    let record = Bounce {
        id: s.next_bounce.to_string(),
        channel: text("channel").unwrap_or_default(),
        user_channel_id: text("userChannelId").unwrap_or_default(),
        state: text("state").unwrap_or_else(|| "active".to_string()),
        hard_bounce_count: body
            .get("hardBounceCount")
            .and_then(Value::as_u64)
            .unwrap_or(0),
        bounce_messages: messages,
    };
    s.bounces.push(record.clone());
    axum::Json(json!(record)).into_response()
}

async fn patch_bounce(
    AxState(state): AxState<Shared>,
    Path(id): Path<String>,
    body: String,
) -> Response {
    let Ok(body) = serde_json::from_str::<Value>(&body) else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    let messages = match body.get("bounceMessages") {
        Some(v) => match bounce_messages(v) {
            Ok(m) => Some(m),
            Err(why) => return bad_request(why),
        },
        None => None,
    };
    let mut s = lock(&state);
    let Some(record) = s.bounces.iter_mut().find(|x| x.id == id) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    if let Some(m) = messages {
        record.bounce_messages = m;
    }
    if let Some(n) = body.get("hardBounceCount").and_then(Value::as_u64) {
        record.hard_bounce_count = n;
    }
    for (key, field) in [
        ("state", &mut record.state),
        ("channel", &mut record.channel),
        ("userChannelId", &mut record.user_channel_id),
    ] {
        if let Some(v) = body.get(key).and_then(Value::as_str) {
            *field = v.to_string();
        }
    }
    StatusCode::NO_CONTENT.into_response()
}
