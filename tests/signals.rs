//! The binary as an operator runs it: SIGTERM while a transaction is in flight lets it
//! finish with its 250, refuses new connections, and exits cleanly; the logs carry one
//! JSON line per transaction and never a secret or a message body.

mod common;
mod harness;

use std::time::Duration;

use common::fake_api::{FakeApi, Fault};
use common::free_port;
use harness::{Client, code};

/// Starts the binary against `fake` on a free port with `env` added; returns it and the port.
fn spawn(fake: &FakeApi, env: &[(&str, &str)]) -> (tokio::process::Child, u16) {
    let port = free_port();
    let mut cmd = common::serve_command(&fake.host_url(), "invalid.local", port);
    cmd
        // SIGTERM's drain delay has tests of its own (tests/drain.rs).
        .env(
            "NOTIFY_INBOUND__INBOUND_SMTP_SERVER__LIMITS__DRAIN_DELAY_SECS",
            "0",
        );
    for (k, v) in env {
        cmd.env(k, v);
    }
    (cmd.spawn().expect("binary starts"), port)
}

#[tokio::test]
async fn sigterm_mid_transaction_finishes_it_then_exits() {
    let fake = FakeApi::start().await;
    let id = fake.add_subscription("myService", "bar@foo.com", "12345");
    // The unsubscribe call takes a while, so SIGTERM arrives while the API is being asked.
    fake.fail_all(Fault::Slow(Duration::from_millis(1500)));
    let (mut child, port) = spawn(&fake, &[]);
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let mut c = None;
    for _ in 0..100 {
        if let Ok(s) = tokio::net::TcpStream::connect(addr).await {
            c = Some(Client::new(s));
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut c = c.expect("server listening");
    assert_eq!(code(&c.reply().await), 220);
    c.cmd("EHLO client.example").await;
    c.cmd("MAIL FROM:<bar@foo.com>").await;
    assert_eq!(
        code(
            &c.cmd(&format!("RCPT TO:<un-{id}-12345@invalid.local>"))
                .await
        ),
        250
    );
    assert_eq!(code(&c.cmd("DATA").await), 354);
    c.send(b"Subject: unsubscribe\r\n\r\n.\r\n").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    common::terminate(&child);
    let r = c.reply().await;
    assert!(r.starts_with("250"), "{r}");
    assert_eq!(fake.subscription(&id).unwrap().state, "deleted");
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .expect("exits after the transaction")
        .unwrap();
    assert!(status.success(), "{status:?}");
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}

#[tokio::test]
async fn json_logs_have_one_line_per_transaction_and_no_secret_or_body() {
    const TOKEN: &str = "Bearer s3cr3t-t0ken-value";
    const BODY_MARK: &str = "private-body-text-4711";
    let fake = FakeApi::start().await;
    fake.require_token(Some(TOKEN));
    let id = fake.add_subscription("myService", "bar@foo.com", "12345");
    let (child, port) = spawn(
        &fake,
        &[
            ("NOTIFY_INBOUND__API__ACCESS_TOKEN", TOKEN),
            ("NOTIFY_INBOUND__LOG__FORMAT", "json"),
            ("NOTIFY_INBOUND__LOG__LEVEL", "debug"),
        ],
    );
    let mut c = Client::connect_when_listening(port).await;
    assert_eq!(code(&c.reply().await), 220);
    c.cmd("EHLO client.example").await;
    for (from, rcpt) in [
        ("bar@foo.com", format!("un-{id}-12345")),
        ("", format!("bn-{id}-12345")),
    ] {
        c.cmd(&format!("MAIL FROM:<{from}>")).await;
        assert_eq!(
            code(&c.cmd(&format!("RCPT TO:<{rcpt}@invalid.local>")).await),
            250
        );
        c.cmd("DATA").await;
        let r = c.cmd(&format!("Subject: x\r\n\r\n{BODY_MARK}\r\n.")).await;
        assert_eq!(code(&r), 250, "{r}");
    }
    c.cmd("QUIT").await;
    let logs = common::terminate_and_read_log(child).await;
    assert!(!logs.contains("s3cr3t"), "token in logs:\n{logs}");
    assert!(!logs.contains(BODY_MARK), "body in logs:\n{logs}");
    let transactions: Vec<serde_json::Value> = logs
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["message"] == "transaction")
        .collect();
    assert_eq!(transactions.len(), 2, "{logs}");
    // The last line, logged just before the process exits, was still written out.
    assert!(
        logs.lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .any(|v| v["message"] == "stopped"),
        "{logs}"
    );
    for (t, kind) in transactions.iter().zip(["un", "bn"]) {
        let f = t;
        assert_eq!(f["client"], "127.0.0.1");
        assert_eq!(f["kind"], kind);
        assert_eq!(f["outcome"], "accepted");
        assert_eq!(f["code"], 250);
    }
}

#[tokio::test]
async fn operations_endpoint_reports_health_readiness_and_metrics() {
    let fake = FakeApi::start().await;
    let id = fake.add_subscription("myService", "bar@foo.com", "12345");
    let ops_port = free_port();
    let ops = format!("127.0.0.1:{ops_port}");
    let (mut child, port) = spawn(
        &fake,
        &[("NOTIFY_INBOUND__OPERATIONS__LISTEN", ops.as_str())],
    );
    let mut c = Client::connect_when_listening(port).await;
    assert_eq!(code(&c.reply().await), 220);
    let http = reqwest::Client::new();
    let get = |path: &str| {
        let url = format!("http://{ops}{path}");
        let http = http.clone();
        async move {
            let r = http
                .get(url)
                .send()
                .await
                .expect("operations endpoint answers");
            (r.status().as_u16(), r.text().await.unwrap())
        }
    };
    assert_eq!(get("/healthz").await.0, 200);
    assert_eq!(get("/readyz").await, (200, "ready\n".to_string()));
    c.cmd("EHLO client.example").await;
    c.cmd("MAIL FROM:<bar@foo.com>").await;
    c.cmd(&format!("RCPT TO:<un-{id}-12345@invalid.local>"))
        .await;
    c.cmd("RCPT TO:<someone@elsewhere.example>").await;
    c.cmd("DATA").await;
    assert_eq!(code(&c.cmd("Subject: x\r\n\r\n.").await), 250);
    let (status, metrics) = get("/metrics").await;
    assert_eq!(status, 200);
    for line in [
        "notify_inbound_smtp_messages_total{kind=\"un\",outcome=\"accepted\"} 1",
        "notify_inbound_smtp_rcpt_rejected_total{reason=\"relay_denied\"} 1",
        "notify_inbound_api_requests_total{endpoint=\"unsubscribe\",status=\"2xx\"} 1",
        "notify_inbound_smtp_connections_open{listener=",
    ] {
        assert!(metrics.contains(line), "missing {line} in\n{metrics}");
    }
    assert!(
        metrics.lines().any(|l| l == "notify_inbound_api_up 1"),
        "the API probe ran at start:\n{metrics}"
    );
    fake.go_down().await;
    // The API is probed every 5 s: api_up turns 0, readiness does not change.
    let mut up = true;
    for _ in 0..60 {
        let (_, m) = get("/metrics").await;
        if m.lines().any(|l| l == "notify_inbound_api_up 0") {
            up = false;
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(
        !up,
        "notify_inbound_api_up never turned 0 with the API down"
    );
    assert_eq!(get("/readyz").await, (200, "ready\n".to_string()));
    child.start_kill().unwrap();
}
