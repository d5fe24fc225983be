//! The connections of [`super::ApiClient`]: HTTP/1.1 (hyper's `client::conn::http1`) to the
//! one host of the API base, plain or over rustls, kept alive and reused.
//!
//! There is one destination and no proxy, so the pool is a stack of idle connections: the
//! most recently used one is taken first, at most `api.max_in_flight` are kept, and one idle
//! for 60 s is closed. A connection goes back on the stack when the answer it carried has
//! been dealt with (its body read, or dropped for hyper to drain), unless it is closed; one
//! still finishing the previous answer when taken is waited for, for no longer than a
//! connect may take. A request that a reused connection gave back unsent (the server had
//! closed it) is sent once more on a new connection; one that may have been sent never is.
//!
//! A new connection is made under `api.connect_timeout_ms` (name lookup, TCP, TLS
//! handshake), with `TCP_NODELAY` and TCP keepalive after 30 s. Its `Connection` runs in a
//! task of its own, which ends when the server closes it or its `SendRequest` is dropped.
//!
//! Errors read as those of hyper's pooling client did (`client error (Connect)`, `tcp
//! connect error`, ...); none holds the URL.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use bytes::Bytes;
use http::header::HOST;
use http::{HeaderValue, Request, Response, Uri};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::time::Instant;

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type Sender = SendRequest<Full<Bytes>>;

/// How long a connection may stay idle in the pool.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Idle time after which TCP keepalive probes start.
const TCP_KEEPALIVE: Duration = Duration::from_secs(30);

/// The idle connections to the API host, and how to make a new one.
pub(super) struct Pool {
    /// Oldest first: the last one is the most recently used.
    idle: Mutex<Vec<Idle>>,
    max_idle: usize,
    target: Target,
    /// Whether the task that closes connections idle for too long has been started.
    reaping: AtomicBool,
    me: Weak<Pool>,
}

struct Idle {
    sender: Sender,
    since: Instant,
}

/// Where the connections go.
struct Target {
    /// Plain TCP when `None`.
    tls: Option<Tls>,
    /// Set when the scheme is neither http nor https: every connect fails with it.
    unsupported: Option<String>,
    /// The host as the name resolver takes it (IPv6 without brackets).
    host: String,
    /// The host when it is an address literal: no name lookup.
    ip: Option<IpAddr>,
    port: u16,
    /// `host[:port]` of the base, the `Host` header of every request.
    host_header: HeaderValue,
    connect_timeout: Duration,
}

struct Tls {
    connector: tokio_rustls::TlsConnector,
    /// The server name sent (SNI) and verified, or why the host cannot be one.
    name: Result<ServerName<'static>, String>,
}

impl Pool {
    /// A pool for the host of `base` (a URL in the URL parser's normal form, without user
    /// info), using `tls` for https.
    pub(super) fn new(
        base: &str,
        tls: rustls::ClientConfig,
        max_idle: usize,
        connect_timeout: Duration,
    ) -> Result<Arc<Pool>, String> {
        let url = url::Url::parse(base).map_err(|e| e.to_string())?;
        let (host, ip) = match url.host() {
            Some(url::Host::Domain(name)) => (name.to_string(), None),
            Some(url::Host::Ipv4(ip)) => (ip.to_string(), Some(IpAddr::V4(ip))),
            Some(url::Host::Ipv6(ip)) => (ip.to_string(), Some(IpAddr::V6(ip))),
            None => return Err("the URL has no host".to_string()),
        };
        let port = url.port_or_known_default().unwrap_or(80);
        let authority = &url[url::Position::BeforeHost..url::Position::AfterPort];
        let host_header = HeaderValue::from_str(authority).map_err(|e| e.to_string())?;
        let (tls, unsupported) = match url.scheme() {
            "http" => (None, None),
            "https" => {
                let name = ServerName::try_from(host.clone()).map_err(|e| e.to_string());
                let connector = tokio_rustls::TlsConnector::from(Arc::new(tls));
                (Some(Tls { connector, name }), None)
            }
            other => (None, Some(format!("unsupported scheme {other}"))),
        };
        Ok(Arc::new_cyclic(|me| Pool {
            idle: Mutex::new(Vec::with_capacity(max_idle)),
            max_idle,
            target: Target {
                tls,
                unsupported,
                host,
                ip,
                port,
                host_header,
                connect_timeout,
            },
            reaping: AtomicBool::new(false),
            me: me.clone(),
        }))
    }

    /// Sends `request` (absolute URI of the API host) on an idle connection or a new one.
    /// The connection comes back with the answer and returns to the pool when dropped.
    pub(super) async fn send(
        &self,
        mut request: Request<Full<Bytes>>,
    ) -> Result<(Response<Incoming>, Pooled<'_>), ClientError> {
        // Origin form (`/path?query`) with `Host`, as hyper's pooling client sent it.
        let mut parts = std::mem::take(request.uri_mut()).into_parts();
        parts.scheme = None;
        parts.authority = None;
        // Cannot fail for the URIs the client builds (they always have a path), but a
        // request must never go to another path than its own.
        *request.uri_mut() =
            Uri::from_parts(parts).map_err(|e| ClientError::new(Kind::SendRequest, e))?;
        request
            .headers_mut()
            .insert(HOST, self.target.host_header.clone());

        let (mut sender, mut reused) = match self.checkout().await {
            Some(sender) => (sender, true),
            None => (self.connect().await?, false),
        };
        loop {
            match sender.try_send_request(request).await {
                Ok(response) => {
                    return Ok((
                        response,
                        Pooled {
                            sender: Some(sender),
                            pool: self,
                        },
                    ));
                }
                Err(mut e) => match e.take_message() {
                    // Given back unsent: the server had closed the idle connection.
                    Some(unsent) if reused => {
                        request = unsent;
                        reused = false;
                        sender = self.connect().await?;
                    }
                    Some(_) => return Err(ClientError::new(Kind::Canceled, e.into_error())),
                    None => return Err(ClientError::new(Kind::SendRequest, e.into_error())),
                },
            }
        }
    }

    fn lock(&self) -> MutexGuard<'_, Vec<Idle>> {
        self.idle.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The most recently used idle connection that is open and ready, if any.
    async fn checkout(&self) -> Option<Sender> {
        loop {
            let mut sender = {
                let mut idle = self.lock();
                let last = idle.pop()?;
                if last.since.elapsed() >= IDLE_TIMEOUT {
                    // The others have been idle longer still.
                    idle.clear();
                    return None;
                }
                last.sender
            };
            if sender.is_closed() {
                continue;
            }
            if sender.is_ready() {
                return Some(sender);
            }
            // Still finishing the previous answer (draining a body left unread).
            let timeout = self.target.connect_timeout;
            if let Ok(Ok(())) = tokio::time::timeout(timeout, sender.ready()).await {
                return Some(sender);
            }
        }
    }

    /// Puts a connection whose answer has been dealt with back, unless it is closed or the
    /// pool is full.
    fn put(&self, sender: Sender) {
        if sender.is_closed() {
            return;
        }
        let mut idle = self.lock();
        if idle.len() >= self.max_idle {
            return;
        }
        idle.push(Idle {
            sender,
            since: Instant::now(),
        });
        drop(idle);
        if !self.reaping.load(Ordering::Relaxed) && !self.reaping.swap(true, Ordering::AcqRel) {
            match tokio::runtime::Handle::try_current() {
                Ok(runtime) => {
                    runtime.spawn(reap(self.me.clone()));
                }
                Err(_) => self.reaping.store(false, Ordering::Release),
            }
        }
    }

    /// A new connection, under `api.connect_timeout_ms`.
    async fn connect(&self) -> Result<Sender, ClientError> {
        match tokio::time::timeout(self.target.connect_timeout, self.open()).await {
            Ok(Ok(sender)) => Ok(sender),
            Ok(Err(e)) => Err(ClientError::new(Kind::Connect, e)),
            Err(_) => Err(ClientError::new(Kind::Connect, ConnectTimeout)),
        }
    }

    async fn open(&self) -> Result<Sender, BoxError> {
        let target = &self.target;
        if let Some(unsupported) = &target.unsupported {
            return Err(std::io::Error::other(unsupported.clone()).into());
        }
        match &target.tls {
            None => handshake(self.tcp().await?).await,
            Some(tls) => {
                let name = tls.name.clone().map_err(std::io::Error::other)?;
                let tcp = self.tcp().await?;
                let stream = tls
                    .connector
                    .connect(name, tcp)
                    .await
                    .map_err(std::io::Error::other)?;
                handshake(stream).await
            }
        }
    }

    /// A TCP connection to the first address of the host that accepts one.
    async fn tcp(&self) -> Result<TcpStream, ConnectError> {
        let target = &self.target;
        let stream = match target.ip {
            Some(ip) => TcpStream::connect(SocketAddr::new(ip, target.port))
                .await
                .map_err(ConnectError::tcp)?,
            None => {
                let addresses = tokio::net::lookup_host((target.host.as_str(), target.port))
                    .await
                    .map_err(|cause| ConnectError {
                        what: "dns error",
                        cause,
                    })?;
                let mut last = None;
                let mut connected = None;
                for address in addresses {
                    match TcpStream::connect(address).await {
                        Ok(stream) => {
                            connected = Some(stream);
                            break;
                        }
                        Err(e) => last = Some(e),
                    }
                }
                match (connected, last) {
                    (Some(stream), _) => stream,
                    (None, Some(cause)) => return Err(ConnectError::tcp(cause)),
                    (None, None) => {
                        return Err(ConnectError {
                            what: "dns error",
                            cause: std::io::Error::other("no address found"),
                        });
                    }
                }
            }
        };
        if let Err(e) = stream.set_nodelay(true) {
            tracing::warn!("tcp set_nodelay error: {e}");
        }
        let keepalive = socket2::TcpKeepalive::new().with_time(TCP_KEEPALIVE);
        if let Err(e) = socket2::SockRef::from(&stream).set_tcp_keepalive(&keepalive) {
            tracing::warn!("tcp set_keepalive error: {e}");
        }
        Ok(stream)
    }
}

/// Starts HTTP/1.1 on `io` and runs the connection in a task of its own.
async fn handshake<T>(io: T) -> Result<Sender, BoxError>
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (sender, connection) = http1::handshake(TokioIo::new(io)).await?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!("connection to the notification service ended: {e}");
        }
    });
    Ok(sender)
}

/// Closes the connections idle for too long, every 60 s, while the pool exists.
async fn reap(pool: Weak<Pool>) {
    let mut tick = tokio::time::interval(IDLE_TIMEOUT);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tick.tick().await;
        let Some(pool) = pool.upgrade() else {
            return;
        };
        pool.lock()
            .retain(|c| !c.sender.is_closed() && c.since.elapsed() < IDLE_TIMEOUT);
    }
}

/// The connection an answer came on; back to the pool when dropped, unless discarded.
/// Held next to the answer, and dropped after it.
pub(super) struct Pooled<'a> {
    sender: Option<Sender>,
    pool: &'a Pool,
}

impl Pooled<'_> {
    /// Closes the connection instead: its answer was not read to the end.
    pub(super) fn discard(mut self) {
        self.sender = None;
    }
}

impl Drop for Pooled<'_> {
    fn drop(&mut self) {
        if let Some(sender) = self.sender.take() {
            self.pool.put(sender);
        }
    }
}

/// What failed: making the connection, a request given back unsent, or a sent request.
#[derive(Debug)]
enum Kind {
    Connect,
    Canceled,
    SendRequest,
}

/// A call that got no answer; reads `client error (Connect)` etc., its cause as source.
#[derive(Debug)]
pub(super) struct ClientError {
    kind: Kind,
    source: BoxError,
}

impl ClientError {
    fn new(kind: Kind, source: impl Into<BoxError>) -> ClientError {
        ClientError {
            kind,
            source: source.into(),
        }
    }
}

impl std::fmt::Display for ClientError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "client error ({:?})", self.kind)
    }
}

impl std::error::Error for ClientError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.source)
    }
}

/// A failed name lookup or TCP connect: `what` failed, `cause` says why.
#[derive(Debug)]
struct ConnectError {
    what: &'static str,
    cause: std::io::Error,
}

impl ConnectError {
    fn tcp(cause: std::io::Error) -> ConnectError {
        ConnectError {
            what: "tcp connect error",
            cause,
        }
    }
}

impl std::fmt::Display for ConnectError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.what)
    }
}

impl std::error::Error for ConnectError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.cause)
    }
}

/// A connect (TCP and TLS) that took longer than `api.connect_timeout_ms`.
#[derive(Debug)]
pub(super) struct ConnectTimeout;

impl std::fmt::Display for ConnectTimeout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("operation timed out")
    }
}

impl std::error::Error for ConnectTimeout {}
