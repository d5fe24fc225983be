//! The operations HTTP endpoint (the README's Operations section) on `operations.listen`: `/healthz`, `/readyz`
//! and `/metrics`, for probes and Prometheus.
//!
//! - `/healthz`: `200 ok` whenever the process can answer at all (liveness).
//! - `/readyz`: `200 ready` while every SMTP listener is bound ([`Readiness`]'s
//!   `listeners_ready`, set by the server) and the server is not draining; otherwise
//!   `503 not ready: <reason>`. On SIGTERM the server starts draining: `/readyz` answers
//!   503 at once so load balancers stop sending new connections, while the listeners keep
//!   accepting for `limits.drain_delay_secs`.
//! - The notification service API's health is not readiness: an API outage must keep every
//!   replica in the load balancer answering `451` (the senders retry), not take them all
//!   out so that senders see refused connections. [`ApiMonitor`] probes the API
//!   periodically ([`ApiProbe`]) and reports it as the metric `notify_inbound_api_up` and a
//!   log line whenever it changes.
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
/// `listeners_ready` and starts draining, and `/readyz`.
#[derive(Debug, Default)]
pub struct Readiness {
    /// Set by the server once every SMTP listener is bound; cleared when they close.
    pub listeners_ready: AtomicBool,
    draining: AtomicBool,
}

impl Readiness {
    /// Listeners not yet bound, not draining.
    pub fn new() -> Readiness {
        Readiness::default()
    }

    pub fn set_listeners_ready(&self, ready: bool) {
        self.listeners_ready.store(ready, Ordering::Release);
    }

    pub fn listeners_ready(&self) -> bool {
        self.listeners_ready.load(Ordering::Acquire)
    }

    /// Shutdown has begun: not ready from now on, whatever the listeners do.
    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::Release);
    }

    pub fn draining(&self) -> bool {
        self.draining.load(Ordering::Acquire)
    }

    /// `Ok` when ready; otherwise why not.
    pub fn check(&self) -> Result<(), String> {
        if self.draining() {
            return Err("shutting down (draining)".into());
        }
        if !self.listeners_ready() {
            return Err("SMTP listeners are not bound (starting up or shutting down)".into());
        }
        Ok(())
    }
}

/// Probes the notification service API every few seconds and reports the result as the
/// metric `notify_inbound_api_up` (1 or 0) and a log line whenever it changes (a warning
/// with the reason when the API goes down, an info line when it is back).
pub struct ApiMonitor {
    probe: Box<dyn ApiProbe>,
    probe_timeout: Duration,
    metrics: Arc<Metrics>,
    /// The last result: `None` before the first probe.
    last: std::sync::Mutex<Option<Result<(), String>>>,
}

impl std::fmt::Debug for ApiMonitor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiMonitor")
            .field("probe_timeout", &self.probe_timeout)
            .finish_non_exhaustive()
    }
}

impl ApiMonitor {
    /// How often [`ApiMonitor::spawn`] probes.
    pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(5);
    /// How long a probe may take before the API counts as not answering.
    pub const DEFAULT_PROBE_TIMEOUT: Duration = Duration::from_secs(2);

    pub fn new(probe: impl ApiProbe, metrics: Arc<Metrics>) -> ApiMonitor {
        Self::with_timeout(probe, metrics, Self::DEFAULT_PROBE_TIMEOUT)
    }

    pub fn with_timeout(
        probe: impl ApiProbe,
        metrics: Arc<Metrics>,
        probe_timeout: Duration,
    ) -> ApiMonitor {
        ApiMonitor {
            probe: Box::new(probe),
            probe_timeout,
            metrics,
            last: std::sync::Mutex::new(None),
        }
    }

    /// Probes once, updates the metric, logs a change; returns the result.
    pub async fn probe_once(&self) -> Result<(), String> {
        let result = match tokio::time::timeout(self.probe_timeout, self.probe.probe()).await {
            Ok(r) => r,
            Err(_) => Err(format!(
                "the notification service API did not answer within {} ms",
                self.probe_timeout.as_millis()
            )),
        };
        self.metrics.set_api_up(result.is_ok());
        let mut last = match self.last.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        let was_up = last.as_ref().map(Result::is_ok);
        match (&result, was_up) {
            (Ok(()), Some(true)) | (Err(_), Some(false)) => {}
            (Ok(()), None) => tracing::info!(api_up = true, "the notification service API answers"),
            (Ok(()), Some(false)) => {
                tracing::info!(api_up = true, "the notification service API answers again")
            }
            (Err(reason), _) => tracing::warn!(
                api_up = false,
                %reason,
                "the notification service API is down: messages get 451 until it is back"
            ),
        }
        *last = Some(result.clone());
        result
    }

    /// Probes every `interval` until the task is aborted.
    pub fn spawn(self: Arc<Self>, interval: Duration) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let _ = self.probe_once().await;
            }
        })
    }
}

/// Probes the API over HTTP: `GET {api_base}/subscriptions?filter={"limit":1,...}` through
/// the [`ApiClient`] the flows use ([`ApiClient::probe`]), so with the same connections,
/// TLS set-up (client certificate, CA bundle) and `Authorization` header.
///
/// Any answer below 500 means the API is up. `401` and `403` mean our credentials (access
/// token, client certificate or admin address) are not accepted: down, with that reason,
/// when `credentials_required` (bounce handling needs admin access); up otherwise, since
/// list-unsubscribe works anonymously.
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
    let Some(addr) = settings.listen else {
        return Ok(None);
    };
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
    match state.readiness.check() {
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
    async fn a_probe_that_never_answers_times_out_as_down() {
        let metrics = Arc::new(Metrics::new());
        let m = ApiMonitor::with_timeout(
            futures::future::pending::<Result<(), String>>,
            metrics.clone(),
            Duration::from_secs(2),
        );
        let reason = m.probe_once().await.unwrap_err();
        assert!(reason.contains("did not answer within 2000 ms"), "{reason}");
        assert!(
            metrics
                .encode()
                .lines()
                .any(|l| l == "notify_inbound_api_up 0")
        );
    }

    #[tokio::test(start_paused = true)]
    async fn the_periodic_probe_sets_api_up() {
        let calls = Arc::new(AtomicUsize::new(0));
        let c = calls.clone();
        let metrics = Arc::new(Metrics::new());
        let m = Arc::new(ApiMonitor::new(
            move || {
                let n = c.fetch_add(1, Ordering::SeqCst);
                async move { if n < 2 { Ok(()) } else { Err("down".into()) } }
            },
            metrics.clone(),
        ));
        let up = |m: &Metrics| m.encode().lines().any(|l| l == "notify_inbound_api_up 1");
        let task = m.spawn(Duration::from_secs(5));
        tokio::time::sleep(Duration::from_millis(1)).await;
        assert_eq!(calls.load(Ordering::SeqCst), 1, "first probe at once");
        assert!(up(&metrics));
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        assert!(up(&metrics));
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert_eq!(calls.load(Ordering::SeqCst), 3);
        assert!(!up(&metrics), "down after a failed probe");
        task.abort();
    }

    #[test]
    fn readiness_is_listeners_and_not_draining() {
        let r = Readiness::new();
        assert!(r.check().unwrap_err().contains("not bound"));
        r.set_listeners_ready(true);
        assert_eq!(r.check(), Ok(()));
        r.start_draining();
        assert!(r.check().unwrap_err().contains("draining"));
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
