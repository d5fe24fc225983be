//! An in-process fake of the NotifyBC API, on `127.0.0.1:0`, with NotifyBC's semantics for
//! the calls notify-inbound makes. The rules and the records live in [`rules`] (what each
//! call does) and [`state`] (the records and counters a transport serves); this module is
//! the axum transport, for tests and examples, and [`fast`] a leaner one for benchmarks and
//! load runs. Both answer the same calls the same way.
//!
//! Every request is logged as received ([`FakeApi::requests`]): method, path and query
//! exactly as sent, headers, body. Faults can be injected ([`Fault`], [`FaultRule`]): the
//! whole server down (nothing listening), slow answers, fixed statuses, a seeded random
//! share of failures, and answers lost after the effect was applied (a 502, or the
//! connection closed without an answer).
//!
//! [`FakeApi::start_mtls`] serves the same over TLS and requires a client certificate, for
//! the API client's mutual-TLS authentication (`api.client_cert`, `api.client_key`).

pub mod fast;
pub mod rules;
pub mod state;

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State as AxState};
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::middleware::{Next, from_fn_with_state};
use axum::response::{IntoResponse, Response};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use rules::{Bounce, BounceMessage, Subscription};
pub use state::CallCounts;
use state::{ApiState, Connection};

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

/// What the axum transport adds to the shared state: the request log, the token and the
/// faults.
#[derive(Debug, Default)]
struct Front {
    requests: Vec<LoggedRequest>,
    token: Option<String>,
    faults: Vec<FaultRule>,
    rng: u64,
}

impl Front {
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

#[derive(Debug, Clone, Default)]
struct Shared {
    api: Arc<ApiState>,
    front: Arc<Mutex<Front>>,
}

impl Shared {
    fn front(&self) -> MutexGuard<'_, Front> {
        self.front.lock().unwrap_or_else(|e| e.into_inner())
    }
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
        let state = Shared::default();
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

    /// The records and counters this fake serves, shared with its transport.
    pub fn state(&self) -> &Arc<ApiState> {
        &self.state.api
    }

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
        self.state
            .api
            .store()
            .insert_subscription(None, service, user_channel_id, code, state)
    }

    pub fn subscription(&self, id: &str) -> Option<Subscription> {
        self.state.api.subscription(id)
    }

    pub fn subscriptions(&self) -> Vec<Subscription> {
        self.state.api.store().subscriptions().to_vec()
    }

    /// Adds an active email bounce record with this count and no messages; returns its id.
    pub fn add_bounce(&self, user_channel_id: &str, hard_bounce_count: u64) -> String {
        self.state
            .api
            .store()
            .add_bounce(user_channel_id, hard_bounce_count)
    }

    pub fn bounce(&self, id: &str) -> Option<Bounce> {
        self.state.api.store().bounce(id).cloned()
    }

    pub fn bounces(&self) -> Vec<Bounce> {
        self.state.api.store().bounces().to_vec()
    }

    /// The bounce records of an address, in creation order.
    pub fn bounces_of(&self, user_channel_id: &str) -> Vec<Bounce> {
        self.state.api.bounces_of(user_channel_id)
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

    /// The calls received, by endpoint, and the HTTP connections.
    pub fn counts(&self) -> CallCounts {
        self.state.api.counts()
    }

    // ---- the request log ----

    pub fn requests(&self) -> Vec<LoggedRequest> {
        self.state.front().requests.clone()
    }

    pub fn clear_requests(&self) {
        self.state.front().requests.clear();
    }

    // ---- behaviour ----

    /// Requires `Authorization: {token}` on every call (401 otherwise); `None` turns it off.
    pub fn require_token(&self, token: Option<&str>) {
        self.state.front().token = token.map(str::to_string);
    }

    /// Redirect mode for the unsubscribe endpoint; `None` answers 200 / 403 instead.
    pub fn set_redirect(&self, url: Option<&str>) {
        self.state.api.store().set_redirect(url);
    }

    /// Forgetful mode: effects are counted but not kept (see [`rules`]).
    pub fn set_forgetful(&self, forgetful: bool) {
        self.state.api.store().set_forgetful(forgetful);
    }

    /// Adds a fault rule; the first rule that matches a call applies.
    pub fn add_fault(&self, rule: FaultRule) {
        self.state.front().faults.push(rule);
    }

    /// Replaces all rules by one that applies `fault` to every call.
    pub fn fail_all(&self, fault: Fault) {
        let mut s = self.state.front();
        s.faults.clear();
        s.faults.push(FaultRule::all(fault));
    }

    pub fn clear_faults(&self) {
        self.state.front().faults.clear();
    }

    /// Seeds the generator behind the random faults.
    pub fn seed(&self, seed: u64) {
        self.state.front().rng = seed;
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
    let api = state.api.clone();
    // The routing is the rules' ([`rules::Store::answer`]), so every call goes to `call`.
    let app = Router::new()
        .fallback(call)
        .layer(from_fn_with_state(state.clone(), front))
        .with_state(state);
    let (stop, stopped) = oneshot::channel::<()>();
    let stopped = async {
        let _ = stopped.await;
    };
    let task = tokio::spawn(async move {
        let _ = match tls {
            None => {
                let listener = PlainListener { tcp: listener, api };
                axum::serve(listener, app)
                    .with_graceful_shutdown(stopped)
                    .await
            }
            Some(config) => {
                let listener = TlsListener {
                    tcp: listener,
                    acceptor: tokio_rustls::TlsAcceptor::from(config),
                    api,
                };
                axum::serve(listener, app)
                    .with_graceful_shutdown(stopped)
                    .await
            }
        };
    });
    Running { stop, task }
}

/// A connection, counted as open ([`ApiState::connection`]) until it is dropped.
struct Counted<T> {
    io: T,
    _open: Connection,
}

impl<T: AsyncRead + Unpin> AsyncRead for Counted<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Counted<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

/// The next TCP connection, counted while it is open.
async fn accept_counted(
    tcp: &tokio::net::TcpListener,
    api: &Arc<ApiState>,
) -> (Counted<TcpStream>, SocketAddr) {
    loop {
        let Ok((io, addr)) = tcp.accept().await else {
            // Out of descriptors and the like: let the other side finish something.
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let _ = io.set_nodelay(true);
        let open = api.connection();
        return (Counted { io, _open: open }, addr);
    }
}

/// Accepts TCP connections, counting them.
struct PlainListener {
    tcp: tokio::net::TcpListener,
    api: Arc<ApiState>,
}

impl axum::serve::Listener for PlainListener {
    type Io = Counted<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        accept_counted(&self.tcp, &self.api).await
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.tcp.local_addr()
    }
}

/// Accepts TCP connections, counting them, and completes the TLS handshake; failed
/// handshakes (a client without an acceptable certificate) are dropped.
struct TlsListener {
    tcp: tokio::net::TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
    api: Arc<ApiState>,
}

impl axum::serve::Listener for TlsListener {
    type Io = tokio_rustls::server::TlsStream<Counted<TcpStream>>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let (tcp, addr) = accept_counted(&self.tcp, &self.api).await;
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
        let mut s = state.front();
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

/// Every call past [`front`]: the rules answer it.
async fn call(
    AxState(state): AxState<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let request = rules::Request {
        method: rules::Method::from_name(method.as_str()),
        path: uri.path(),
        query: uri.query(),
        anonymous: headers
            .get("is_anonymous")
            .is_some_and(|v| rules::is_anonymous(v.as_bytes())),
        body: &body,
    };
    let reply = state.api.answer(&request).await;
    let status = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = Response::builder().status(status);
    if let Some(kind) = reply.content_type() {
        response = response.header(header::CONTENT_TYPE, kind);
    }
    if let Some(location) = &reply.location {
        response = response.header(header::LOCATION, location);
    }
    let body = match reply.body {
        rules::Body::Empty => Body::empty(),
        rules::Body::Text(text) => Body::from(text),
        rules::Body::Json(json) => Body::from(json),
    };
    response
        .body(body)
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}
