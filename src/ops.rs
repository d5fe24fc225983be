//! The operations HTTP endpoint (SPEC §8) on `operations.listen`: `/healthz`, `/readyz`
//! and `/metrics`, for probes and Prometheus.
//!
//! - `/healthz`: `200 ok` whenever the process can answer at all (liveness).
//! - `/readyz`: `200 ready` only when every SMTP listener is bound ([`Readiness`]'s
//!   `listeners_ready`, set by the server) and the notification service API answers
//!   ([`ApiProbe`], cached for a few seconds so probes do not hammer the API); otherwise
//!   `503 not ready: <reason>`. The server clears `listeners_ready` when shutdown starts so
//!   load balancers stop sending new connections while transactions finish.
//! - `/metrics`: [`Metrics::encode`] as `text/plain; version=0.0.4`, or as
//!   `application/openmetrics-text` to a scraper that asks for it.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures::future::BoxFuture;
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use tokio::net::TcpListener;
use tokio::sync::Mutex;
use tokio::time::Instant;

use crate::api::ApiClient;
use crate::config::{OperationsSettings, Settings};
use crate::metrics::Metrics;

/// Content type of `/metrics` unless the scraper asks for OpenMetrics.
pub const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";
/// Content type of `/metrics` for a scraper that accepts OpenMetrics (Prometheus does).
pub const OPENMETRICS_TEXT: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Errors setting up the operations endpoint.
#[derive(Debug, thiserror::Error)]
pub enum OpsError {
    #[error(
        "operations.listen = {value:?} is not host:port (such as 127.0.0.1:9025, or empty to turn the endpoint off)"
    )]
    InvalidListen { value: String },
    #[error("cannot listen on operations.listen = {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// Checks whether the notification service API answers. `Err` carries the reason shown by
/// `/readyz` (no secrets in it).
pub trait ApiProbe: Send + Sync + 'static {
    fn probe(&self) -> BoxFuture<'_, Result<(), String>>;
}

/// Any `Fn() -> impl Future<Output = Result<(), String>>` is a probe (tests, stand-ins).
impl<F, Fut> ApiProbe for F
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), String>> + Send + 'static,
{
    fn probe(&self) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(self())
    }
}

/// Whether the server is ready to take mail: shared between the SMTP server, which sets
/// `listeners_ready`, and `/readyz`.
pub struct Readiness {
    /// Set by the server once every SMTP listener is bound; cleared when shutdown starts.
    pub listeners_ready: AtomicBool,
    probe: Box<dyn ApiProbe>,
    cache_for: Duration,
    probe_timeout: Duration,
    /// The last probe's result. A tokio mutex held across the probe, so concurrent
    /// `/readyz` requests wait for one probe instead of each sending their own.
    last: Mutex<Option<(Instant, Result<(), String>)>>,
}

impl std::fmt::Debug for Readiness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Readiness")
            .field("listeners_ready", &self.listeners_ready)
            .field("cache_for", &self.cache_for)
            .field("probe_timeout", &self.probe_timeout)
            .finish_non_exhaustive()
    }
}

impl Readiness {
    /// How long a probe result is reused.
    pub const DEFAULT_CACHE_FOR: Duration = Duration::from_secs(5);
    /// How long a probe may take before the API counts as not answering. Below the usual
    /// probe timeouts of orchestrators, so they see our reason rather than their timeout.
    pub const DEFAULT_PROBE_TIMEOUT: Duration = Duration::from_secs(2);

    /// Listeners not yet ready; the API checked by `probe` with the default timing.
    pub fn new(probe: impl ApiProbe) -> Readiness {
        Self::with_timing(probe, Self::DEFAULT_CACHE_FOR, Self::DEFAULT_PROBE_TIMEOUT)
    }

    /// Like [`Readiness::new`], reusing a probe result for `cache_for` (zero: probe on
    /// every request) and giving a probe at most `probe_timeout`.
    pub fn with_timing(
        probe: impl ApiProbe,
        cache_for: Duration,
        probe_timeout: Duration,
    ) -> Readiness {
        Readiness {
            listeners_ready: AtomicBool::new(false),
            probe: Box::new(probe),
            cache_for,
            probe_timeout,
            last: Mutex::new(None),
        }
    }

    pub fn set_listeners_ready(&self, ready: bool) {
        self.listeners_ready.store(ready, Ordering::Release);
    }

    pub fn listeners_ready(&self) -> bool {
        self.listeners_ready.load(Ordering::Acquire)
    }

    /// `Ok` when ready; otherwise why not.
    pub async fn check(&self) -> Result<(), String> {
        if !self.listeners_ready() {
            return Err("SMTP listeners are not bound (starting up or shutting down)".into());
        }
        let mut last = self.last.lock().await;
        if let Some((at, result)) = last.as_ref()
            && at.elapsed() < self.cache_for
        {
            return result.clone();
        }
        let result = match tokio::time::timeout(self.probe_timeout, self.probe.probe()).await {
            Ok(r) => r,
            Err(_) => Err(format!(
                "the notification service API did not answer within {} ms",
                self.probe_timeout.as_millis()
            )),
        };
        *last = Some((Instant::now(), result.clone()));
        result
    }
}

/// Probes the API over HTTP: `GET {api_base}/subscriptions?filter={"limit":1,...}` through
/// the [`ApiClient`] the flows use ([`ApiClient::probe`]), so with the same connections,
/// TLS set-up (client certificate, CA bundle) and `Authorization` header.
///
/// Any answer below 500 means the API is up. `401` and `403` mean our credentials (access
/// token, client certificate or admin address) are not accepted: not ready, with that
/// reason, when `credentials_required` (bounce handling needs admin access); ready
/// otherwise, since list-unsubscribe works anonymously.
#[derive(Debug, Clone)]
pub struct HttpApiProbe {
    api: ApiClient,
    /// The encoded query of the probe request.
    query: String,
    /// The URL as shown in reasons: no user info, no query.
    shown_url: String,
    credentials_required: bool,
}

impl HttpApiProbe {
    /// A probe that calls the API through `api`.
    pub fn new(api: ApiClient, credentials_required: bool) -> HttpApiProbe {
        let filter = r#"{"limit":1,"fields":{"id":true}}"#;
        HttpApiProbe {
            query: format!("filter={}", utf8_percent_encode(filter, NON_ALPHANUMERIC)),
            shown_url: format!("{}{PROBE_PATH}", api.base()),
            api,
            credentials_required,
        }
    }

    /// From the settings: credentials required when `bounce.enabled`.
    pub fn from_settings(settings: &Settings, api: ApiClient) -> HttpApiProbe {
        Self::new(api, settings.bounce.enabled)
    }

    async fn run(&self) -> Result<(), String> {
        let status = self
            .api
            .probe(PROBE_PATH, &self.query)
            .await
            .map_err(|detail| {
                format!(
                    "the notification service API at {} is unreachable: {detail}",
                    self.shown_url
                )
            })?;
        match status.as_u16() {
            401 | 403 if self.credentials_required => Err(format!(
                "the notification service API at {} refused our credentials (HTTP {}): check api.access_token, api.client_cert or NotifyBC's adminIps",
                self.shown_url,
                status.as_u16()
            )),
            500.. => Err(format!(
                "the notification service API at {} answered HTTP {}",
                self.shown_url,
                status.as_u16()
            )),
            _ => Ok(()),
        }
    }
}

/// The path the probe requests, under the API base.
const PROBE_PATH: &str = "/subscriptions";

impl ApiProbe for HttpApiProbe {
    fn probe(&self) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(self.run())
    }
}

/// What the handlers share.
#[derive(Debug, Clone)]
pub struct OpsState {
    pub metrics: Arc<Metrics>,
    pub readiness: Arc<Readiness>,
}

/// The endpoint's routes, for [`serve`] or to mount elsewhere.
pub fn router(state: OpsState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(state)
}

/// Binds `operations.listen`; `Ok(None)` when it is empty (endpoint off).
pub async fn bind(settings: &OperationsSettings) -> Result<Option<TcpListener>, OpsError> {
    let value = settings.listen.trim();
    if value.is_empty() {
        return Ok(None);
    }
    let addr: SocketAddr = value.parse().map_err(|_| OpsError::InvalidListen {
        value: value.to_string(),
    })?;
    TcpListener::bind(addr)
        .await
        .map(Some)
        .map_err(|source| OpsError::Bind { addr, source })
}

/// Serves the endpoint on `listener` until `shutdown` completes, then finishes the
/// requests in flight. Trigger `shutdown` last, after the SMTP server has drained, so
/// probes keep getting answers (`/readyz` 503) while it does.
pub async fn serve(
    listener: TcpListener,
    state: OpsState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(state): State<OpsState>) -> Response {
    match state.readiness.check().await {
        Ok(()) => (StatusCode::OK, "ready\n").into_response(),
        Err(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {reason}\n"),
        )
            .into_response(),
    }
}

async fn metrics(State(state): State<OpsState>, headers: HeaderMap) -> Response {
    let openmetrics = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("application/openmetrics-text"));
    let content_type = if openmetrics {
        OPENMETRICS_TEXT
    } else {
        PROMETHEUS_TEXT
    };
    (
        [(header::CONTENT_TYPE, content_type)],
        state.metrics.encode(),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    #[tokio::test(start_paused = true)]
    async fn a_probe_that_never_answers_times_out_as_not_ready() {
        let r = Readiness::with_timing(
            futures::future::pending::<Result<(), String>>,
            Duration::ZERO,
            Duration::from_secs(2),
        );
        r.set_listeners_ready(true);
        let reason = r.check().await.unwrap_err();
        assert!(reason.contains("did not answer within 2000 ms"), "{reason}");
    }

    #[tokio::test(start_paused = true)]
    async fn results_are_cached_for_the_configured_time() {
        let calls = Arc::new(AtomicUsize::new(0));
        let c = calls.clone();
        let r = Readiness::with_timing(
            move || {
                let n = c.fetch_add(1, Ordering::SeqCst);
                async move { if n == 0 { Ok(()) } else { Err("down".into()) } }
            },
            Duration::from_secs(5),
            Duration::from_secs(1),
        );
        assert!(r.check().await.is_err(), "listeners not ready yet");
        assert_eq!(calls.load(Ordering::SeqCst), 0, "no probe before listeners");
        r.set_listeners_ready(true);
        assert_eq!(r.check().await, Ok(()));
        tokio::time::advance(Duration::from_secs(4)).await;
        assert_eq!(r.check().await, Ok(()));
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(r.check().await, Err("down".to_string()));
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn probe_query_and_shown_url() {
        let settings = Settings::from_toml_str(
            "internal_http_host = 'http://user:pw@localhost:3000'\nrest_api_root = '/api/'\n",
        )
        .unwrap();
        let p = HttpApiProbe::new(ApiClient::new(&settings).unwrap(), true);
        assert_eq!(
            p.query,
            "filter=%7B%22limit%22%3A1%2C%22fields%22%3A%7B%22id%22%3Atrue%7D%7D"
        );
        assert_eq!(p.shown_url, "http://localhost:3000/api/subscriptions");
    }
}
