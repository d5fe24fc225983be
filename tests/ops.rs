//! The operations endpoint over real loopback HTTP: `/healthz`, `/readyz` (listeners and
//! draining, never the API), the API monitor against a stand-in notification service API
//! (`notify_inbound_api_up`), `/metrics`, and shutdown.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU16, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;
use notify_inbound::api::ApiClient;
use notify_inbound::config::Settings;
use notify_inbound::metrics::{ApiEndpoint, CommandClass, Metrics, RejectReason};
use notify_inbound::ops::{self, ApiMonitor, HttpApiProbe, OpsState, Readiness};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

const TOKEN: &str = "Bearer s3cr3t-ops-token";

/// A stand-in for the notification service: answers `GET /api/subscriptions` with the
/// status in `status` and remembers what it was sent.
#[derive(Default)]
struct StandIn {
    status: AtomicU16,
    hits: AtomicUsize,
    authorization: Mutex<Option<String>>,
    filter: Mutex<Option<String>>,
}

async fn subscriptions(
    State(s): State<Arc<StandIn>>,
    headers: HeaderMap,
    Query(q): Query<std::collections::HashMap<String, String>>,
) -> (StatusCode, &'static str) {
    s.hits.fetch_add(1, Ordering::SeqCst);
    *s.authorization.lock().unwrap() = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    *s.filter.lock().unwrap() = q.get("filter").cloned();
    let code = StatusCode::from_u16(s.status.load(Ordering::SeqCst)).unwrap();
    (code, "[]")
}

async fn start_stand_in() -> (SocketAddr, Arc<StandIn>) {
    let state = Arc::new(StandIn::default());
    state.status.store(200, Ordering::SeqCst);
    let app = Router::new()
        .route("/api/subscriptions", get(subscriptions))
        .with_state(state.clone());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (addr, state)
}

struct Ops {
    base: String,
    metrics: Arc<Metrics>,
    readiness: Arc<Readiness>,
    monitor: ApiMonitor,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

/// The operations endpoint, and an API monitor probing the API at `api_host` (root `/api`)
/// through an [`ApiClient`] that sends [`TOKEN`], reporting into the endpoint's metrics.
async fn start_ops(api_host: &str, credentials_required: bool) -> Ops {
    let settings = Settings::from_toml_str(&format!(
        "internal_http_host = '{api_host}'\nrest_api_root = '/api'\n[api]\naccess_token = '{TOKEN}'\n"
    ))
    .unwrap();
    let probe = HttpApiProbe::new(ApiClient::new(&settings).unwrap(), credentials_required);
    let readiness = Arc::new(Readiness::new());
    let metrics = Arc::new(Metrics::new());
    let monitor = ApiMonitor::with_timeout(probe, metrics.clone(), Duration::from_secs(10));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = oneshot::channel::<()>();
    let state = OpsState {
        metrics: metrics.clone(),
        readiness: readiness.clone(),
    };
    let task = tokio::spawn(ops::serve(listener, state, async move {
        let _ = rx.await;
    }));
    Ops {
        base,
        metrics,
        readiness,
        monitor,
        stop: Some(tx),
        task,
    }
}

async fn get_text(url: &str) -> (u16, String) {
    let resp = reqwest::get(url).await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.text().await.unwrap())
}

async fn api_up(ops: &Ops) -> Option<i64> {
    let (_, body) = get_text(&format!("{}/metrics", ops.base)).await;
    body.lines()
        .find_map(|l| l.strip_prefix("notify_inbound_api_up "))
        .and_then(|v| v.parse().ok())
}

#[tokio::test]
async fn healthz_answers_ok_even_when_not_ready() {
    let (api, _s) = start_stand_in().await;
    let ops = start_ops(&format!("http://{api}"), true).await;
    assert_eq!(
        get_text(&format!("{}/healthz", ops.base)).await,
        (200, "ok\n".to_string())
    );
    assert_eq!(get_text(&format!("{}/readyz", ops.base)).await.0, 503);
    assert_eq!(get_text(&format!("{}/nothing", ops.base)).await.0, 404);
}

#[tokio::test]
async fn readyz_follows_listeners_and_draining() {
    let (api, stand_in) = start_stand_in().await;
    let ops = start_ops(&format!("http://{api}"), true).await;
    let url = format!("{}/readyz", ops.base);

    let (code, body) = get_text(&url).await;
    assert_eq!(code, 503);
    assert!(body.contains("listeners are not bound"), "{body}");
    ops.readiness.set_listeners_ready(true);
    assert_eq!(get_text(&url).await, (200, "ready\n".to_string()));

    // SIGTERM: draining, 503 at once although the listeners are still bound.
    ops.readiness.start_draining();
    let (code, body) = get_text(&url).await;
    assert_eq!(code, 503);
    assert!(body.contains("draining"), "{body}");
    assert_eq!(
        stand_in.hits.load(Ordering::SeqCst),
        0,
        "readiness never calls the API"
    );
}

#[tokio::test]
async fn readyz_stays_ready_while_the_api_is_down_and_api_up_says_so() {
    let (api, stand_in) = start_stand_in().await;
    let ops = start_ops(&format!("http://{api}"), true).await;
    ops.readiness.set_listeners_ready(true);
    let url = format!("{}/readyz", ops.base);

    assert_eq!(ops.monitor.probe_once().await, Ok(()));
    assert_eq!(api_up(&ops).await, Some(1));
    assert_eq!(stand_in.hits.load(Ordering::SeqCst), 1);
    assert_eq!(
        stand_in.authorization.lock().unwrap().as_deref(),
        Some(TOKEN),
        "the probe sends the configured Authorization header"
    );
    let filter = stand_in.filter.lock().unwrap().clone().unwrap();
    let filter: serde_json::Value = serde_json::from_str(&filter).unwrap();
    assert_eq!(filter["limit"], 1);

    stand_in.status.store(503, Ordering::SeqCst);
    let reason = ops.monitor.probe_once().await.unwrap_err();
    assert!(reason.contains("answered HTTP 503"), "{reason}");
    assert_eq!(api_up(&ops).await, Some(0));
    assert_eq!(get_text(&url).await, (200, "ready\n".to_string()));

    stand_in.status.store(401, Ordering::SeqCst);
    let reason = ops.monitor.probe_once().await.unwrap_err();
    assert!(
        reason.contains("refused our credentials (HTTP 401)"),
        "{reason}"
    );
    assert!(
        !reason.contains("s3cr3t"),
        "the token must not be shown: {reason}"
    );
    assert_eq!(api_up(&ops).await, Some(0));
    assert_eq!(get_text(&url).await.0, 200);

    // Any other answer below 500 means the API is there.
    stand_in.status.store(404, Ordering::SeqCst);
    assert_eq!(ops.monitor.probe_once().await, Ok(()));
    assert_eq!(api_up(&ops).await, Some(1));
}

#[tokio::test]
async fn forbidden_is_up_when_credentials_are_not_required() {
    let (api, stand_in) = start_stand_in().await;
    let ops = start_ops(&format!("http://{api}"), false).await;
    stand_in.status.store(403, Ordering::SeqCst);
    assert_eq!(ops.monitor.probe_once().await, Ok(()));
    assert_eq!(api_up(&ops).await, Some(1));
}

#[tokio::test]
async fn an_unreachable_api_is_down_but_readyz_stays_ready() {
    // A port that was free a moment ago and has nothing listening now.
    let closed = {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        l.local_addr().unwrap()
    };
    let ops = start_ops(&format!("http://{closed}"), true).await;
    ops.readiness.set_listeners_ready(true);
    let reason = ops.monitor.probe_once().await.unwrap_err();
    assert!(reason.contains("unreachable"), "{reason}");
    assert!(
        reason.contains(&format!("http://{closed}/api/subscriptions")),
        "{reason}"
    );
    assert_eq!(api_up(&ops).await, Some(0));
    assert_eq!(
        get_text(&format!("{}/readyz", ops.base)).await,
        (200, "ready\n".to_string())
    );
}

#[tokio::test]
async fn metrics_are_served_in_the_prometheus_text_format() {
    let (api, _s) = start_stand_in().await;
    let ops = start_ops(&format!("http://{api}"), true).await;
    let l = ops.metrics.listener("127.0.0.1:2525");
    let _open = l.connection_opened();
    ops.metrics.connection_rejected(RejectReason::NotAllowed);
    ops.metrics.smtp_reply(CommandClass::Greeting, 220);
    ops.metrics.api_call(
        ApiEndpoint::Unsubscribe,
        Some(200),
        Duration::from_millis(3),
    );

    let resp = reqwest::get(format!("{}/metrics", ops.base)).await.unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let ct = resp.headers()["content-type"].to_str().unwrap().to_string();
    assert!(ct.starts_with("text/plain; version=0.0.4"), "{ct}");
    let body = resp.text().await.unwrap();
    for line in [
        r#"notify_inbound_smtp_connections_open{listener="127.0.0.1:2525"} 1"#,
        r#"notify_inbound_smtp_connections_total{listener="127.0.0.1:2525"} 1"#,
        r#"notify_inbound_smtp_connections_rejected_total{reason="not_allowed"} 1"#,
        r#"notify_inbound_smtp_replies_total{command="greeting",code="2xx"} 1"#,
        r#"notify_inbound_api_requests_total{endpoint="unsubscribe",status="2xx"} 1"#,
        r#"notify_inbound_api_request_duration_seconds_bucket{le="0.005",endpoint="unsubscribe"} 1"#,
        "# TYPE notify_inbound_smtp_tls_handshakes counter",
        "# TYPE notify_inbound_smtp_messages counter",
        "# TYPE notify_inbound_smtp_rcpt_rejected counter",
    ] {
        assert!(
            body.lines().any(|l| l == line),
            "missing {line:?} in\n{body}"
        );
    }

    let resp = reqwest::Client::new()
        .get(format!("{}/metrics", ops.base))
        .header(
            "accept",
            "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5",
        )
        .send()
        .await
        .unwrap();
    let ct = resp.headers()["content-type"].to_str().unwrap().to_string();
    assert!(ct.starts_with("application/openmetrics-text"), "{ct}");
    assert!(resp.text().await.unwrap().ends_with("# EOF\n"));
}

#[tokio::test]
async fn serve_returns_after_shutdown() {
    let (api, _s) = start_stand_in().await;
    let mut ops = start_ops(&format!("http://{api}"), true).await;
    assert_eq!(get_text(&format!("{}/healthz", ops.base)).await.0, 200);
    ops.stop.take().unwrap().send(()).unwrap();
    // The bound only keeps a broken shutdown from hanging the suite.
    let result = tokio::time::timeout(Duration::from_secs(30), &mut ops.task)
        .await
        .expect("serve did not return after shutdown")
        .unwrap();
    assert!(result.is_ok());
    assert!(
        reqwest::get(format!("{}/healthz", ops.base)).await.is_err(),
        "the endpoint still answers after shutdown"
    );
}

#[tokio::test]
async fn bind_is_off_when_empty_and_names_the_key_when_invalid() {
    let off = Settings::from_toml_str("[operations]\nlisten = ' '\n").unwrap();
    assert!(ops::bind(&off.operations).await.unwrap().is_none());
    let on = Settings::from_toml_str("[operations]\nlisten = '127.0.0.1:0'\n").unwrap();
    let on = ops::bind(&on.operations).await.unwrap().unwrap();
    assert!(on.local_addr().unwrap().ip().is_loopback());
    let err = Settings::from_toml_str("[operations]\nlisten = 'localhost'\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("operations.listen"), "{err}");
}
