//! The operations endpoint over real loopback HTTP: `/healthz`, `/readyz` against a
//! stand-in notification service API, `/metrics`, and shutdown.

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
use notify_inbound::ops::{self, HttpApiProbe, OpsState, Readiness};
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
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

/// The operations endpoint, its readiness probing the API at `api_host` (root `/api`)
/// through an [`ApiClient`] that sends [`TOKEN`].
async fn start_ops(api_host: &str, credentials_required: bool, cache_for: Duration) -> Ops {
    let settings = Settings::from_toml_str(&format!(
        "internal_http_host = '{api_host}'\nrest_api_root = '/api'\n[api]\naccess_token = '{TOKEN}'\n"
    ))
    .unwrap();
    let probe = HttpApiProbe::new(ApiClient::new(&settings).unwrap(), credentials_required);
    let readiness = Arc::new(Readiness::with_timing(
        probe,
        cache_for,
        Duration::from_secs(10),
    ));
    let metrics = Arc::new(Metrics::new());
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
        stop: Some(tx),
        task,
    }
}

async fn get_text(url: &str) -> (u16, String) {
    let resp = reqwest::get(url).await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.text().await.unwrap())
}

#[tokio::test]
async fn healthz_answers_ok_even_when_not_ready() {
    let (api, _s) = start_stand_in().await;
    let ops = start_ops(&format!("http://{api}"), true, Duration::ZERO).await;
    assert_eq!(
        get_text(&format!("{}/healthz", ops.base)).await,
        (200, "ok\n".to_string())
    );
    assert_eq!(get_text(&format!("{}/readyz", ops.base)).await.0, 503);
    assert_eq!(get_text(&format!("{}/nothing", ops.base)).await.0, 404);
}

#[tokio::test]
async fn readyz_follows_listeners_and_the_api() {
    let (api, stand_in) = start_stand_in().await;
    let ops = start_ops(&format!("http://{api}"), true, Duration::ZERO).await;
    let url = format!("{}/readyz", ops.base);

    let (code, body) = get_text(&url).await;
    assert_eq!(code, 503);
    assert!(body.contains("listeners are not bound"), "{body}");
    assert_eq!(
        stand_in.hits.load(Ordering::SeqCst),
        0,
        "the API is not probed before the listeners are up"
    );

    ops.readiness.set_listeners_ready(true);
    assert_eq!(get_text(&url).await, (200, "ready\n".to_string()));
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
    let (code, body) = get_text(&url).await;
    assert_eq!(code, 503);
    assert!(body.contains("answered HTTP 503"), "{body}");

    stand_in.status.store(401, Ordering::SeqCst);
    let (code, body) = get_text(&url).await;
    assert_eq!(code, 503);
    assert!(
        body.contains("refused our credentials (HTTP 401)"),
        "{body}"
    );
    assert!(
        !body.contains("s3cr3t"),
        "the token must not be shown: {body}"
    );

    // Any other answer below 500 means the API is there.
    stand_in.status.store(404, Ordering::SeqCst);
    assert_eq!(get_text(&url).await.0, 200);

    // Shutdown starts: the server clears the flag, probes fail at once.
    ops.readiness.set_listeners_ready(false);
    assert_eq!(get_text(&url).await.0, 503);
}

#[tokio::test]
async fn forbidden_is_ready_when_credentials_are_not_required() {
    let (api, stand_in) = start_stand_in().await;
    let ops = start_ops(&format!("http://{api}"), false, Duration::ZERO).await;
    ops.readiness.set_listeners_ready(true);
    stand_in.status.store(403, Ordering::SeqCst);
    assert_eq!(get_text(&format!("{}/readyz", ops.base)).await.0, 200);
}

#[tokio::test]
async fn readyz_reports_an_unreachable_api() {
    // A port that was free a moment ago and has nothing listening now.
    let closed = {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        l.local_addr().unwrap()
    };
    let ops = start_ops(&format!("http://{closed}"), true, Duration::ZERO).await;
    ops.readiness.set_listeners_ready(true);
    let (code, body) = get_text(&format!("{}/readyz", ops.base)).await;
    assert_eq!(code, 503);
    assert!(body.contains("unreachable"), "{body}");
    assert!(
        body.contains(&format!("http://{closed}/api/subscriptions")),
        "{body}"
    );
}

#[tokio::test]
async fn readyz_reuses_a_recent_probe_result() {
    let (api, stand_in) = start_stand_in().await;
    let ops = start_ops(&format!("http://{api}"), true, Duration::from_secs(3600)).await;
    ops.readiness.set_listeners_ready(true);
    let url = format!("{}/readyz", ops.base);
    assert_eq!(get_text(&url).await.0, 200);
    stand_in.status.store(500, Ordering::SeqCst);
    let answers = futures::future::join_all((0..5).map(|_| get_text(&url))).await;
    assert!(answers.iter().all(|(c, _)| *c == 200), "{answers:?}");
    assert_eq!(stand_in.hits.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn metrics_are_served_in_the_prometheus_text_format() {
    let (api, _s) = start_stand_in().await;
    let ops = start_ops(&format!("http://{api}"), true, Duration::ZERO).await;
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
    let mut ops = start_ops(&format!("http://{api}"), true, Duration::ZERO).await;
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
    let off = ops::bind(&notify_inbound::config::OperationsSettings { listen: " ".into() })
        .await
        .unwrap();
    assert!(off.is_none());
    let on = ops::bind(&notify_inbound::config::OperationsSettings {
        listen: "127.0.0.1:0".into(),
    })
    .await
    .unwrap()
    .unwrap();
    assert!(on.local_addr().unwrap().ip().is_loopback());
    let err = ops::bind(&notify_inbound::config::OperationsSettings {
        listen: "localhost".into(),
    })
    .await
    .unwrap_err()
    .to_string();
    assert!(err.contains("operations.listen"), "{err}");
}
