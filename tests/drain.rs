//! The binary as an orchestrator stops it, and what its logs say about a session:
//! SIGTERM's drain delay (`/readyz` 503 at once, the listeners still accepting and
//! delivering for `limits.drain_delay_secs`, then closed), SIGINT without the delay, a
//! session id on every line of a session, enum fields in their configuration spelling, and the
//! build, process and certificate-expiry metrics of the running binary.

mod common;
mod harness;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use common::fake_api::FakeApi;
use common::free_port;
use harness::{Client, code};
use tokio::io::AsyncReadExt;

struct Running {
    child: tokio::process::Child,
    smtp: u16,
    ops: u16,
}

/// Starts the binary against `fake`, plain SMTP + STARTTLS on a free port, the operations
/// endpoint on another, JSON logs on standard error, with `env` added.
fn spawn(fake: &FakeApi, env: &[(&str, &str)]) -> Running {
    let (smtp, ops) = (free_port(), free_port());
    let mut cmd = common::serve_command(&fake.host_url(), "invalid.local", smtp);
    cmd.env(
        "NOTIFY_INBOUND__OPERATIONS__LISTEN",
        format!("127.0.0.1:{ops}"),
    )
    .env("NOTIFY_INBOUND__LOG__FORMAT", "json");
    for (k, v) in env {
        cmd.env(k, v);
    }
    Running {
        child: cmd.spawn().expect("binary starts"),
        smtp,
        ops,
    }
}

async fn readyz(ops: u16) -> Option<u16> {
    let r = reqwest::get(format!("http://127.0.0.1:{ops}/readyz"))
        .await
        .ok()?;
    Some(r.status().as_u16())
}

async fn wait_ready(r: &Running) {
    for _ in 0..200 {
        if readyz(r.ops).await == Some(200) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("/readyz never answered 200");
}

fn signal(child: &tokio::process::Child, sig: &str) {
    let pid = child.id().expect("running").to_string();
    let ok = std::process::Command::new("kill")
        .args([sig, &pid])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill {sig} {pid}");
}

/// One list-unsubscribe transaction on a new connection; the reply to the message.
async fn unsubscribe(port: u16, id: &str) -> String {
    let s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("the listener accepts");
    let mut c = Client::new(s);
    assert_eq!(code(&c.reply().await), 220);
    c.cmd("EHLO client.example").await;
    c.cmd("MAIL FROM:<bar@foo.com>").await;
    let r = c
        .cmd(&format!("RCPT TO:<un-{id}-12345@invalid.local>"))
        .await;
    assert_eq!(code(&r), 250, "{r}");
    assert_eq!(code(&c.cmd("DATA").await), 354);
    let reply = c.cmd("Subject: unsubscribe\r\n\r\n.").await;
    c.cmd("QUIT").await;
    reply
}

#[tokio::test]
async fn sigterm_turns_readyz_503_at_once_and_keeps_accepting_for_the_drain_delay() {
    const DRAIN: Duration = Duration::from_secs(3);
    let fake = FakeApi::start().await;
    let id = fake.add_subscription("myService", "bar@foo.com", "12345");
    let mut r = spawn(
        &fake,
        &[(
            "NOTIFY_INBOUND__INBOUND_SMTP_SERVER__LIMITS__DRAIN_DELAY_SECS",
            "3",
        )],
    );
    wait_ready(&r).await;
    let sent = Instant::now();
    signal(&r.child, "-TERM");

    // Not ready from the start of the drain (well before it ends).
    let mut not_ready_after = None;
    while sent.elapsed() < DRAIN {
        if readyz(r.ops).await == Some(503) {
            not_ready_after = Some(sent.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let not_ready_after = not_ready_after.expect("/readyz still 200 at the end of the drain delay");
    assert!(not_ready_after < DRAIN, "{not_ready_after:?}");

    // A sender arriving during the drain is served in full.
    let reply = unsubscribe(r.smtp, &id).await;
    assert!(
        sent.elapsed() < DRAIN,
        "the transaction took past the drain delay ({:?}); the check proves nothing",
        sent.elapsed()
    );
    assert!(reply.starts_with("250"), "{reply}");
    assert_eq!(fake.subscription(&id).unwrap().state, "deleted");

    // Then the listeners close: not before the delay, and the process exits cleanly.
    let closed_after = loop {
        if tokio::net::TcpStream::connect(("127.0.0.1", r.smtp))
            .await
            .is_err()
        {
            break sent.elapsed();
        }
        assert!(
            sent.elapsed() < DRAIN + Duration::from_secs(20),
            "still accepting long after the drain delay"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(
        closed_after >= DRAIN,
        "listeners closed after {closed_after:?}, before the {DRAIN:?} drain delay"
    );
    let status = tokio::time::timeout(Duration::from_secs(30), r.child.wait())
        .await
        .expect("exits after the drain")
        .unwrap();
    assert!(status.success(), "{status:?}");
}

#[tokio::test]
async fn sigint_does_not_wait_for_the_drain_delay() {
    let fake = FakeApi::start().await;
    let mut r = spawn(
        &fake,
        &[(
            "NOTIFY_INBOUND__INBOUND_SMTP_SERVER__LIMITS__DRAIN_DELAY_SECS",
            "600",
        )],
    );
    wait_ready(&r).await;
    signal(&r.child, "-INT");
    // The bound is far below the 600 s delay, far above an idle shutdown.
    let status = tokio::time::timeout(Duration::from_secs(60), r.child.wait())
        .await
        .expect("SIGINT exits without the drain delay")
        .unwrap();
    assert!(status.success(), "{status:?}");
}

#[tokio::test]
async fn every_line_of_a_session_carries_its_id_and_tls_is_in_config_spelling() {
    let fake = FakeApi::start().await;
    let id = fake.add_subscription("myService", "bar@foo.com", "12345");
    let id2 = fake.add_subscription("myService", "bar@foo.com", "12345");
    let mut r = spawn(
        &fake,
        &[
            ("NOTIFY_INBOUND__LOG__LEVEL", "debug"),
            (
                "NOTIFY_INBOUND__INBOUND_SMTP_SERVER__LIMITS__DRAIN_DELAY_SECS",
                "0",
            ),
        ],
    );
    wait_ready(&r).await;
    // Two sessions, each with a transaction (an info line) and its end (a debug line).
    assert!(unsubscribe(r.smtp, &id).await.starts_with("250"));
    let again = unsubscribe(r.smtp, &id2).await;
    assert!(again.starts_with("250"), "{again}");
    // A third that never says anything but garbage and is dropped.
    {
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", r.smtp))
            .await
            .unwrap();
        let mut buf = [0u8; 512];
        let _ = s.read(&mut buf).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    signal(&r.child, "-TERM");
    let mut stderr = r.child.stderr.take().unwrap();
    let mut logs = String::new();
    tokio::time::timeout(Duration::from_secs(30), stderr.read_to_string(&mut logs))
        .await
        .expect("the process exits and closes its standard error")
        .unwrap();
    let lines: Vec<serde_json::Value> = logs
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();

    let listener = lines
        .iter()
        .find(|v| v["message"] == "SMTP listener started")
        .unwrap_or_else(|| panic!("no listener line in\n{logs}"));
    assert_eq!(listener["tls"], "starttls", "{listener}");

    // Lines logged inside a session: the transaction lines and the sessions' own ends.
    let in_session: Vec<&serde_json::Value> = lines
        .iter()
        .filter(|v| v["message"] == "transaction" || v["client"] == "127.0.0.1")
        .collect();
    let transactions = in_session
        .iter()
        .filter(|v| v["message"] == "transaction")
        .count();
    assert_eq!(transactions, 2, "{logs}");
    let mut ids = HashSet::new();
    for v in &in_session {
        assert_eq!(v["span"]["name"], "session", "no session span on {v}");
        let sid = v["span"]["id"]
            .as_str()
            .unwrap_or_else(|| panic!("no session id on {v}"));
        assert!(
            sid.len() == 12 && sid.bytes().all(|b| b.is_ascii_hexdigit()),
            "{sid}"
        );
        ids.insert(sid.to_string());
    }
    assert!(
        ids.len() >= 2,
        "the two sessions have different ids: {ids:?}\n{logs}"
    );
    // Lines outside any session carry none.
    assert!(listener.get("span").is_none(), "{listener}");
    let _ = r.child.wait().await;
}

#[tokio::test]
async fn metrics_carry_build_info_the_process_and_the_certificate_expiry() {
    let fake = FakeApi::start().await;
    let mut r = spawn(&fake, &[]);
    wait_ready(&r).await;
    let body = reqwest::get(format!("http://127.0.0.1:{}/metrics", r.ops))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let value = |name: &str| -> f64 {
        body.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in\n{body}"))
    };
    let build = format!(
        "notify_inbound_build_info{{version=\"{}\"}}",
        env!("CARGO_PKG_VERSION")
    );
    assert_eq!(value(&build), 1.0);
    assert!(value("process_resident_memory_bytes") > 1e6);
    assert!(value("process_open_fds") >= 3.0);
    assert!(value("process_cpu_seconds_total") >= 0.0);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let started = value("process_start_time_seconds");
    assert!(
        started <= now + 1.0 && started > now - 600.0,
        "{started} vs {now}"
    );
    // No certificate configured: the STARTTLS listener serves a self-signed one.
    let expiry =
        value("notify_inbound_tls_certificate_expiry_timestamp_seconds{source=\"self_signed\"}");
    assert!(expiry > now, "{expiry}");
    let _ = r.child.start_kill();
}
