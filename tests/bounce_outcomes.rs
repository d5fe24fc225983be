//! What became of each bounce is visible where an operator looks: the binary's
//! transaction log line (`bounce`, `bounce_reason`, `bounce_count`) and the
//! `notify_inbound_bounces_total{outcome}` metric, for every outcome.

mod common;
mod harness;

use common::dsn::Dsn;
use common::fake_api::FakeApi;
use common::free_port;
use harness::{Client, code};

const SUBSCRIBER: &str = "bar@foo.com";

fn spawn(fake: &FakeApi, ops: &str) -> (tokio::process::Child, u16) {
    let port = free_port();
    let mut cmd = common::serve_command(&fake.host_url(), "invalid.local", port);
    cmd.env("NOTIFY_INBOUND__OPERATIONS__LISTEN", ops)
        .env("NOTIFY_INBOUND__LOG__FORMAT", "json")
        // SIGTERM ends the test; no load balancer to drain from.
        .env(
            "NOTIFY_INBOUND__INBOUND_SMTP_SERVER__LIMITS__DRAIN_DELAY_SECS",
            "0",
        )
        .env("NOTIFY_INBOUND__BOUNCE__COMPLAINTS_UNSUBSCRIBE", "true");
    (cmd.spawn().expect("binary starts"), port)
}

/// One transaction from the null sender to `rcpts`; the reply to DATA.
async fn bounce(c: &mut Client<tokio::net::TcpStream>, rcpts: &[String], message: &str) -> u16 {
    assert_eq!(code(&c.cmd("MAIL FROM:<>").await), 250);
    for r in rcpts {
        assert_eq!(code(&c.cmd(&format!("RCPT TO:<{r}>")).await), 250);
    }
    assert_eq!(code(&c.cmd("DATA").await), 354);
    c.send(message.as_bytes()).await;
    c.send(b".\r\n").await;
    code(&c.reply().await)
}

fn complaint() -> String {
    "From: abuse@isp.example\r\nTo: bn-x@invalid.local\r\nSubject: complaint\r\n\
     Message-ID: <arf-1@isp.example>\r\nMIME-Version: 1.0\r\n\
     Content-Type: multipart/report; report-type=feedback-report; boundary=\"f\"\r\n\r\n\
     --f\r\nContent-Type: text/plain\r\n\r\nA complaint.\r\n\
     --f\r\nContent-Type: message/feedback-report\r\n\r\n\
     Feedback-Type: abuse\r\nUser-Agent: isp/1.0\r\nVersion: 1\r\n\
     Original-Rcpt-To: baz@foo.com\r\n\r\n\
     --f\r\nContent-Type: message/rfc822\r\n\r\nFrom: n@notify.example\r\nTo: baz@foo.com\r\n\
     Subject: hello\r\n\r\nhello\r\n--f--\r\n"
        .to_string()
}

#[tokio::test]
async fn the_transaction_line_and_the_metric_say_what_became_of_each_bounce() {
    let fake = FakeApi::start().await;
    let id = fake.add_subscription("myService", SUBSCRIBER, "12345");
    // A subscriber one bounce away from the threshold (5).
    let near = fake.add_subscription("myService", "near@foo.com", "777");
    fake.add_bounce("near@foo.com", 5);
    let plaintiff = fake.add_subscription("myService", "baz@foo.com", "999");
    let ops = format!("127.0.0.1:{}", free_port());
    let (child, port) = spawn(&fake, &ops);
    let mut c = Client::connect_when_listening(port).await;
    assert_eq!(code(&c.reply().await), 220);
    c.cmd("EHLO client.example").await;

    let bn = |id: &str, code: &str| vec![format!("bn-{id}-{code}@invalid.local")];
    let hard = Dsn::default().build();
    let soft = Dsn {
        status: "5.2.2",
        message_id: Some("<full-1@mta.invalid.local>"),
        ..Dsn::default()
    }
    .build();
    let near_hard = Dsn {
        final_recipient: "near@foo.com",
        message_id: Some("<near-1@mta.invalid.local>"),
        ..Dsn::default()
    }
    .build();
    // In order: counted, duplicate (the same message again), not counted (soft), no such
    // subscription, the threshold passed, a complaint; then one message to two bn
    // recipients.
    assert_eq!(bounce(&mut c, &bn(&id, "12345"), &hard).await, 250);
    assert_eq!(bounce(&mut c, &bn(&id, "12345"), &hard).await, 250);
    assert_eq!(bounce(&mut c, &bn(&id, "12345"), &soft).await, 250);
    assert_eq!(bounce(&mut c, &bn("nosuch", "1"), &hard).await, 250);
    assert_eq!(bounce(&mut c, &bn(&near, "777"), &near_hard).await, 250);
    assert_eq!(
        bounce(&mut c, &bn(&plaintiff, "999"), &complaint()).await,
        250
    );
    let other = fake.add_subscription("myService", "other@foo.com", "55");
    let two = [bn(&id, "12345"), bn(&other, "55")].concat();
    let third = Dsn {
        message_id: Some("<hard-3@mta.invalid.local>"),
        ..Dsn::default()
    }
    .build();
    assert_eq!(bounce(&mut c, &two, &third).await, 250);
    assert_eq!(fake.bounces_of(SUBSCRIBER)[0].hard_bounce_count, 2);
    assert_eq!(fake.subscription(&near).unwrap().state, "deleted");
    assert_eq!(fake.subscription(&plaintiff).unwrap().state, "deleted");

    let metrics = reqwest::get(format!("http://{ops}/metrics"))
        .await
        .expect("operations endpoint answers")
        .text()
        .await
        .unwrap();
    for (outcome, n) in [
        ("counted", 2),
        ("duplicate", 1),
        ("not_counted", 2),
        ("dropped_no_subscription", 1),
        ("unsubscribed", 2),
        ("temporary", 0),
    ] {
        let line = format!("notify_inbound_bounces_total{{outcome=\"{outcome}\"}} {n}\n");
        assert!(metrics.contains(&line), "missing {line} in\n{metrics}");
    }

    c.cmd("QUIT").await;
    let logs = common::terminate_and_read_log(child).await;
    let lines: Vec<serde_json::Value> = logs
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["message"] == "transaction")
        .collect();
    let got: Vec<(String, String, String)> = lines
        .iter()
        .map(|v| {
            let s = |k: &str| v[k].as_str().unwrap_or("<absent>").to_string();
            (s("bounce"), s("bounce_reason"), s("bounce_count"))
        })
        .collect();
    let want = [
        ("counted", "", "1"),
        ("duplicate", "", "1"),
        ("not_counted", "soft", "1"),
        ("dropped_no_subscription", "", ""),
        ("unsubscribed", "threshold", "6"),
        ("unsubscribed", "complaint", "0"),
        ("counted,not_counted", ",not_our_recipient", "2,0"),
    ]
    .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()));
    assert_eq!(got, want, "{logs}");
    for v in &lines {
        assert_eq!(v["kind"], "bn");
        assert_eq!(v["code"], 250);
    }
}
