//! The SMTP server: binds the configured listeners, accepts connections under the
//! connection limits, and runs one [`connection::Connection`] task per client until
//! shutdown.

pub mod connection;
pub mod io;
pub mod session;
pub mod shutdown;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tracing::Instrument;

use crate::access::Cidrs;
use crate::config::{ListenerSettings, Settings, TlsMode};
use crate::flows::Deliver;
use crate::limiter::{ByteBudget, ConnectionLimiter, FailedUnsubscribeLimiter};
use crate::metrics::{CertificateSource, HandshakeMode, ListenerMetrics, Metrics, RejectReason};
use crate::reply::Reply;
use crate::router::Router;
use crate::tls::{TlsError, TlsProvider};
use connection::Connection;
use io::{BoxStream, write_all_timeout};
use session::{RcptGuard, SessionConfig, TlsAtStart};
use shutdown::{Phase, Shutdown};

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("TLS: {0}")]
    Tls(#[from] TlsError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
}

/// Everything the connections share, built once at start.
pub struct Context {
    pub settings: Arc<Settings>,
    pub session_cfg: SessionConfig,
    pub router: Router,
    pub hostname: String,
    pub deliver: Arc<dyn Deliver>,
    pub tls: Option<Arc<TlsProvider>>,
    pub guard: Option<Arc<dyn RcptGuard>>,
    pub shutdown: Shutdown,
    pub metrics: Arc<Metrics>,
    pub connections: ConnectionLimiter,
    pub failed_unsubscribes: Arc<FailedUnsubscribeLimiter>,
    /// Message bytes all sessions hold in memory together.
    pub inflight: Arc<ByteBudget>,
    /// Who may send the PROXY protocol and XCLIENT.
    pub trusted_proxies: Cidrs,
    /// Who may connect at all (empty = everyone).
    pub allowed_clients: Cidrs,
    tracker: Tracker,
}

impl RcptGuard for FailedUnsubscribeLimiter {
    fn check(&self, client: IpAddr, recipient: &crate::router::Recipient) -> Option<Reply> {
        if let Some(wait) = self.blocked_for(client) {
            return Some(Reply::new(
                450,
                "4.7.1",
                format!(
                    "too many wrong unsubscription codes from {client}; try again in {} s",
                    wait.as_secs().max(1)
                ),
            ));
        }
        self.id_blocked_for(&recipient.id).map(|wait| {
            Reply::new(
                450,
                "4.7.1",
                format!(
                    "too many wrong unsubscription codes for this subscription; try again in {} s",
                    wait.as_secs().max(1)
                ),
            )
        })
    }
}

/// Counts live connections so shutdown can wait for them.
#[derive(Default)]
struct Tracker {
    active: AtomicUsize,
    idle: Notify,
}

struct Active<'a>(&'a Tracker);

impl Drop for Active<'_> {
    fn drop(&mut self) {
        if self.0.active.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

/// A bound listener.
#[derive(Debug, Clone)]
pub struct BoundListener {
    pub addr: SocketAddr,
    pub settings: ListenerSettings,
}

/// The running server.
pub struct Server {
    ctx: Arc<Context>,
    pub listeners: Vec<BoundListener>,
    accept_tasks: Vec<tokio::task::JoinHandle<()>>,
    reloader: Option<tokio::task::JoinHandle<()>>,
}

impl Server {
    /// Binds every configured listener and starts accepting.
    pub async fn start(
        settings: Arc<Settings>,
        deliver: Arc<dyn Deliver>,
        metrics: Arc<Metrics>,
    ) -> Result<Server, ServerError> {
        let listeners = settings.listeners().to_vec();
        let wants_tls = listeners.iter().any(|l| l.tls != TlsMode::None);
        let opts = &settings.inbound_smtp_server.options;
        let tls = if wants_tls {
            let mut names = settings.domains().to_vec();
            names.insert(0, settings.hostname().to_string());
            names.dedup();
            let provider = TlsProvider::new(&opts.cert, &opts.key, &names)?;
            let source = if provider.self_signed {
                tracing::warn!(
                    "no TLS certificate configured (inbound_smtp_server.options.cert and .key unset): using a self-signed certificate made at start"
                );
                CertificateSource::SelfSigned
            } else {
                CertificateSource::Configured
            };
            let provider = provider.with_expiry_gauge(metrics.tls_certificate_expiry(source));
            Some(Arc::new(provider))
        } else {
            None
        };
        let reloader = tls
            .as_ref()
            .and_then(|t| t.spawn_reloader(settings.inbound_smtp_server.tls_reload_interval));
        let s = &settings.inbound_smtp_server;
        let failed_unsubscribes = Arc::new(FailedUnsubscribeLimiter::from_limits(&s.limits));
        let ctx = Arc::new(Context {
            metrics,
            session_cfg: SessionConfig {
                hostname: settings.hostname().to_string(),
                size_limit: s.options.size,
                max_recipients: s.max_recipients_per_transaction,
                max_errors: s.limits.max_errors,
                max_commands: s.limits.max_commands,
                max_transactions: s.limits.max_transactions,
                max_noops: s.limits.max_noop_commands,
            },
            router: Router::new(&settings),
            hostname: settings.hostname().to_string(),
            deliver,
            tls,
            guard: Some(failed_unsubscribes.clone() as Arc<dyn RcptGuard>),
            failed_unsubscribes,
            inflight: ByteBudget::new(s.limits.max_inflight_bytes),
            connections: ConnectionLimiter::from_limits(&s.limits),
            trusted_proxies: Cidrs::new(s.trusted_proxies.clone()),
            allowed_clients: Cidrs::new(s.allowed_clients.clone()),
            shutdown: Shutdown::new(),
            tracker: Tracker::default(),
            settings: settings.clone(),
        });
        let mut bound = Vec::new();
        let mut accept_tasks = Vec::new();
        for l in listeners {
            let addr = l.addr.to_string();
            let listener = TcpListener::bind(l.addr)
                .await
                .map_err(|source| ServerError::Bind {
                    addr: addr.clone(),
                    source,
                })?;
            let local = listener
                .local_addr()
                .map_err(|source| ServerError::Bind { addr, source })?;
            tracing::info!(addr = %local, tls = %l.tls, proxy_protocol = l.proxy_protocol, "SMTP listener started");
            bound.push(BoundListener {
                addr: local,
                settings: l.clone(),
            });
            let metrics = ctx.metrics.listener(&local.to_string());
            accept_tasks.push(tokio::spawn(accept_loop(ctx.clone(), listener, l, metrics)));
        }
        Ok(Server {
            ctx,
            listeners: bound,
            accept_tasks,
            reloader,
        })
    }

    /// The address of the first listener with the given TLS mode.
    pub fn addr(&self, mode: TlsMode) -> Option<SocketAddr> {
        self.listeners
            .iter()
            .find(|l| l.settings.tls == mode)
            .map(|l| l.addr)
    }

    pub fn shutdown_handle(&self) -> Shutdown {
        self.ctx.shutdown.clone()
    }

    pub fn active_connections(&self) -> usize {
        self.ctx.tracker.active.load(Ordering::Acquire)
    }

    /// Stops accepting, lets transactions in flight finish for up to `grace`, then closes
    /// the remaining sessions with 421 4.3.2.
    pub async fn shutdown(self, grace: Duration) {
        self.ctx.shutdown.advance(Phase::Draining);
        for t in &self.accept_tasks {
            t.abort();
        }
        if let Some(r) = &self.reloader {
            r.abort();
        }
        if tokio::time::timeout(grace, self.wait_idle()).await.is_err() {
            tracing::warn!(
                remaining = self.active_connections(),
                "grace period over, closing remaining sessions"
            );
        }
        self.ctx.shutdown.advance(Phase::Closing);
        let _ = tokio::time::timeout(Duration::from_secs(5), self.wait_idle()).await;
    }

    async fn wait_idle(&self) {
        loop {
            let notified = self.ctx.tracker.idle.notified();
            if self.active_connections() == 0 {
                return;
            }
            notified.await;
        }
    }
}

async fn accept_loop(
    ctx: Arc<Context>,
    listener: TcpListener,
    settings: ListenerSettings,
    metrics: ListenerMetrics,
) {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                // Out of file descriptors and the like: back off instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        if ctx.shutdown.phase() != Phase::Running {
            return;
        }
        let _ = stream.set_nodelay(true);
        ctx.tracker.active.fetch_add(1, Ordering::AcqRel);
        let open = metrics.connection_opened();
        let ctx = ctx.clone();
        let settings = settings.clone();
        // Every line a session logs carries its id, so one session's lines can be picked
        // out of many (the README's Operations section).
        let span = tracing::info_span!("session", id = %session_id());
        tokio::spawn(
            async move {
                let _active = Active(&ctx.tracker);
                let _open = open;
                handle(&ctx, stream, peer, &settings).await;
            }
            .instrument(span),
        );
    }
}

/// A short id for a session: 12 hex digits, unique within the process (a counter mapped
/// one-to-one onto 48 bits) and, starting from the clock and the process id, unlikely to
/// repeat across replicas and restarts.
pub fn session_id() -> String {
    use std::sync::OnceLock;
    use std::sync::atomic::AtomicU64;
    static NEXT: AtomicU64 = AtomicU64::new(0);
    static START: OnceLock<u64> = OnceLock::new();
    let start = *START.get_or_init(|| {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        nanos ^ (u64::from(std::process::id()) << 40)
    });
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    // An odd multiplier is a bijection modulo 2^48, so ids repeat only after 2^48 sessions.
    let id = start.wrapping_add(n.wrapping_mul(0x9E37_79B9_7F4A_7C15)) & 0xFFFF_FFFF_FFFF;
    format!("{id:012x}")
}

async fn handle(
    ctx: &Arc<Context>,
    mut tcp: TcpStream,
    peer: SocketAddr,
    listener: &ListenerSettings,
) {
    let limits = &ctx.settings.inbound_smtp_server.limits;
    let trusted = ctx.trusted_proxies.contains(peer.ip());
    // From a trusted proxy on a PROXY-protocol listener the header is required and nothing
    // is sent before it; from anyone else a PROXY line is just an unknown command.
    let client = if listener.proxy_protocol && trusted {
        let timeout = limits.proxy_header_timeout;
        match crate::proxy::read_header(&mut tcp, timeout).await {
            Ok(header) => header.client_addr(peer),
            Err(e) => {
                ctx.metrics.connection_rejected(RejectReason::ProxyHeader);
                tracing::warn!(%peer, error = %e, "closing connection from a trusted proxy without a valid PROXY header");
                return;
            }
        }
    } else {
        peer
    };
    if !ctx.allowed_clients.allows(client.ip()) {
        ctx.metrics.connection_rejected(RejectReason::NotAllowed);
        tracing::info!(client = %client, "connection refused: not in allowed_clients");
        let reply = Reply::new(554, "5.7.1", "no SMTP service for your address");
        refuse(ctx, Box::new(tcp), reply).await;
        return;
    }
    let permit = match ctx.connections.try_acquire(client.ip()) {
        Ok(permit) => permit,
        Err(e) => {
            ctx.metrics.connection_rejected(RejectReason::from(e));
            let reply = Reply::new(421, "4.7.0", e.to_string());
            refuse(ctx, Box::new(tcp), reply).await;
            return;
        }
    };
    let mut stream: BoxStream = Box::new(tcp);
    let tls_active = listener.tls == TlsMode::Implicit;
    if tls_active {
        let Some(tls) = ctx.tls.clone() else { return };
        let timeout = limits.command_timeout;
        let result = tokio::time::timeout(timeout, tls.acceptor().accept(stream)).await;
        ctx.metrics
            .tls_handshake(HandshakeMode::Implicit, matches!(result, Ok(Ok(_))));
        match result {
            Ok(Ok(s)) => stream = Box::new(s),
            Ok(Err(e)) => {
                tracing::debug!(%client, error = %e, "TLS handshake failed");
                return;
            }
            Err(_) => {
                tracing::debug!(%client, "TLS handshake timed out");
                return;
            }
        }
    }
    let tls = if tls_active {
        TlsAtStart::Active
    } else if listener.tls == TlsMode::Starttls && ctx.tls.is_some() {
        TlsAtStart::Offered
    } else {
        TlsAtStart::Unavailable
    };
    // XCLIENT replaces the client address, so it is honoured only where that address is a
    // trusted proxy: after a PROXY header the client is the one the header named.
    let xclient = listener.xclient && ctx.trusted_proxies.contains(client.ip());
    let conn = Connection::new(ctx.clone(), stream, client, permit, tls, xclient);
    if let Err(e) = conn.run().await {
        tracing::debug!(%client, error = %e, "connection ended");
    }
}

async fn refuse(ctx: &Context, mut stream: BoxStream, reply: Reply) {
    let limits = &ctx.settings.inbound_smtp_server.limits;
    let timeout = limits.command_timeout.min(Duration::from_secs(10));
    let _ = write_all_timeout(&mut stream, reply.to_wire().as_bytes(), timeout).await;
}
