//! NotifyBC's own inbound-SMTP test suite, ported, and the cases beyond it: a real SMTP
//! client (lettre) talks to the server, which runs the real flows against the fake
//! NotifyBC API over HTTP. Each test asserts the reply code and the API's state.

mod common;
mod harness;

use std::sync::Arc;
use std::time::Duration;

use common::dsn::Dsn;
use common::fake_api::{FakeApi, Fault, SettingsFor};
use lettre::address::Envelope;
use lettre::transport::smtp::Error as SmtpError;
use lettre::transport::smtp::client::Tls;
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use notify_inbound::config::TlsMode;
use notify_inbound::flows::Processor;
use notify_inbound::metrics::Metrics;
use notify_inbound::server::Server;

const SUBSCRIBER: &str = "bar@foo.com";
const DOMAIN: &str = "invalid.local";

/// The server on a random loopback port with the flows pointed at `fake`.
async fn server(fake: &FakeApi, extra: &str) -> Server {
    let settings = fake.settings(&format!(
        "{extra}\n[inbound_smtp_server]\ndomain = '{DOMAIN}'\nlistening_ip = '127.0.0.1'\nlistening_smtp_port = 0\n\
         [operations]\nlisten = ''\n"
    ));
    let processor = Arc::new(Processor::new(&settings).expect("processor"));
    Server::start(Arc::new(settings), processor, Arc::new(Metrics::new()))
        .await
        .expect("server")
}

async fn send(
    server: &Server,
    from: Option<&str>,
    to: &str,
    message: &str,
) -> Result<lettre::transport::smtp::response::Response, SmtpError> {
    let port = server.addr(TlsMode::Starttls).unwrap().port();
    let transport = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous("127.0.0.1")
        .port(port)
        .tls(Tls::None)
        .timeout(Some(Duration::from_secs(20)))
        .build();
    let envelope =
        Envelope::new(from.map(|f| f.parse().unwrap()), vec![to.parse().unwrap()]).unwrap();
    transport.send_raw(&envelope, message.as_bytes()).await
}

fn status(e: &SmtpError) -> String {
    e.status().map(|c| c.to_string()).unwrap_or_default()
}

/// An unsubscribe email from `from` to `un-{id}-{code}@` our domain.
async fn unsubscribe(
    server: &Server,
    from: &str,
    id: &str,
    code: &str,
) -> Result<lettre::transport::smtp::response::Response, SmtpError> {
    let to = format!("un-{id}-{code}@{DOMAIN}");
    send(server, Some(from), &to, unsubscribe_message()).await
}

fn unsubscribe_message() -> &'static str {
    "From: bar@foo.com\r\nTo: un@invalid.local\r\nSubject: unsubscribe\r\n\r\nunsubscribe me\r\n"
}

#[tokio::test]
async fn un_valid_unsubscribes_with_the_exact_anonymous_call() {
    let fake = FakeApi::start().await;
    let id = fake.add_subscription("myService", SUBSCRIBER, "12345");
    let server = server(&fake, "").await;
    let r = unsubscribe(&server, SUBSCRIBER, &id, "12345")
        .await
        .unwrap();
    assert_eq!(r.code().to_string(), "250");
    let requests = fake.requests();
    assert_eq!(requests.len(), 1, "{requests:?}");
    assert_eq!(
        requests[0].line(),
        format!(
            "GET /api/subscriptions/{id}/unsubscribe?unsubscriptionCode=12345&userChannelId=bar%40foo.com"
        )
    );
    assert_eq!(requests[0].header("is_anonymous"), Some("true"));
    assert_eq!(fake.subscription(&id).unwrap().state, "deleted");
}

#[tokio::test]
async fn invalid_recipients_are_refused_at_rcpt_without_an_api_call() {
    let fake = FakeApi::start().await;
    let id = fake.add_subscription("myService", SUBSCRIBER, "12345");
    let server = server(&fake, "").await;
    for to in [
        format!("undo-{id}-12345@{DOMAIN}"),
        format!("un-{id}-12345@other.invalid"),
    ] {
        let e = send(&server, Some(SUBSCRIBER), &to, unsubscribe_message())
            .await
            .unwrap_err();
        assert!(e.is_permanent(), "{to}: {e}");
        assert_eq!(status(&e), "550", "{to}");
    }
    assert!(fake.requests().is_empty());
    assert_eq!(fake.subscription(&id).unwrap().state, "confirmed");
}

async fn bounce(server: &Server, id: &str, dsn: &Dsn<'_>) -> Result<(), SmtpError> {
    send(
        server,
        None,
        &format!("bn-{id}-12345@{DOMAIN}"),
        &dsn.build(),
    )
    .await
    .map(|_| ())
}

#[tokio::test]
async fn bn_dsn_creates_then_increments_the_bounce_record() {
    let fake = FakeApi::start().await;
    let id = fake.add_subscription("myService", SUBSCRIBER, "12345");
    let server = server(&fake, "").await;
    let dsn = Dsn::default();
    bounce(&server, &id, &dsn).await.unwrap();
    let records = fake.bounces_of(SUBSCRIBER);
    assert_eq!(records.len(), 1);
    assert_eq!(
        (records[0].state.as_str(), records[0].hard_bounce_count),
        ("active", 1)
    );
    assert_eq!(records[0].bounce_messages.len(), 1);
    // The raw message is stored as received (lettre adds the final CRLF before the dot).
    assert!(
        records[0].bounce_messages[0]
            .message
            .starts_with(&dsn.build())
    );

    let second = Dsn {
        message_id: Some("<another@mta.invalid.local>"),
        ..Dsn::default()
    };
    bounce(&server, &id, &second).await.unwrap();
    let records = fake.bounces_of(SUBSCRIBER);
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].hard_bounce_count, 2);
    assert_eq!(records[0].bounce_messages.len(), 2);
    assert!(
        records[0].bounce_messages[0]
            .message
            .contains("<another@mta.invalid.local>")
    );
}

#[tokio::test]
async fn bn_not_counting_cases_are_recorded_with_the_count_unchanged() {
    let fake = FakeApi::start().await;
    let id = fake.add_subscription("myService", SUBSCRIBER, "12345");
    let record = fake.add_bounce(SUBSCRIBER, 1);
    let server = server(&fake, "").await;
    let cases = [
        Dsn {
            status: "4.1.1",
            message_id: Some("<a@x>"),
            ..Dsn::default()
        },
        Dsn {
            final_recipient: "barfoo@foo.com",
            message_id: Some("<b@x>"),
            ..Dsn::default()
        },
    ];
    for (i, dsn) in cases.iter().enumerate() {
        bounce(&server, &id, dsn).await.unwrap();
        let b = fake.bounce(&record).unwrap();
        assert_eq!(b.hard_bounce_count, 1, "case {i}");
        assert_eq!(b.bounce_messages.len(), i + 1, "case {i}");
    }
}

#[tokio::test]
async fn bn_x_failed_recipients_equal_to_the_subscriber_counts() {
    let fake = FakeApi::start().await;
    let id = fake.add_subscription("myService", SUBSCRIBER, "12345");
    // NotifyBC's rule, which takes X-Failed-Recipients over the report's entries.
    let server = server(&fake, "[bounce]\ndecision = 'notifybc'").await;
    let dsn = Dsn {
        x_failed_recipients: Some(SUBSCRIBER),
        final_recipient: "barfoo@foo.com",
        ..Dsn::default()
    };
    bounce(&server, &id, &dsn).await.unwrap();
    assert_eq!(fake.only_bounce_of(SUBSCRIBER).hard_bounce_count, 1);
}

#[tokio::test]
async fn bn_past_the_threshold_unsubscribes_everything_and_retires_the_record() {
    let fake = FakeApi::start().await;
    let id = fake.add_subscription("myService", SUBSCRIBER, "12345");
    let other = fake.add_subscription("otherService", SUBSCRIBER, "54321");
    let record = fake.add_bounce(SUBSCRIBER, 2);
    fake.set_redirect(Some("https://notify.invalid/unsubscribed"));
    let server = server(&fake, "[bounce]\nunsub_threshold = 1\n").await;
    bounce(&server, &id, &Dsn::default()).await.unwrap();
    let unsub: Vec<String> = fake
        .requests()
        .iter()
        .map(|r| r.line())
        .filter(|l| l.contains("/unsubscribe"))
        .collect();
    assert_eq!(
        unsub,
        vec![format!(
            "GET /api/subscriptions/{id}/unsubscribe?unsubscriptionCode=12345&userChannelId=bar%40foo.com&additionalServices=_all"
        )]
    );
    // The redirect was not followed: nothing was asked of the redirect target.
    assert!(
        fake.requests()
            .iter()
            .all(|r| r.path().starts_with("/api/"))
    );
    assert_eq!(fake.subscription(&id).unwrap().state, "deleted");
    assert_eq!(fake.subscription(&other).unwrap().state, "deleted");
    let b = fake.bounce(&record).unwrap();
    assert_eq!((b.hard_bounce_count, b.state.as_str()), (3, "deleted"));
}

#[tokio::test]
async fn bn_unparsable_message_gets_the_documented_reply() {
    let fake = FakeApi::start().await;
    let id = fake.add_subscription("myService", SUBSCRIBER, "12345");
    let server = server(&fake, "").await;
    // Not a message at all: no header section.
    let r = send(
        &server,
        None,
        &format!("bn-{id}-12345@{DOMAIN}"),
        "\u{0}\u{1}\u{2}garbage without headers\r\n",
    )
    .await
    .unwrap();
    assert_eq!(r.code().to_string(), "250");
    let records = fake.bounces_of(SUBSCRIBER);
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].hard_bounce_count, 0);
}

#[tokio::test]
async fn un_refusals_give_550_with_the_codes_of_the_spec() {
    let fake = FakeApi::start().await;
    let id = fake.add_subscription("myService", SUBSCRIBER, "12345");
    let server = server(&fake, "").await;
    let wrong_code = unsubscribe(&server, SUBSCRIBER, &id, "99999")
        .await
        .unwrap_err();
    assert_eq!(status(&wrong_code), "550");
    assert!(wrong_code.to_string().contains("5.7.1"), "{wrong_code}");
    let unknown = unsubscribe(&server, SUBSCRIBER, "999", "12345")
        .await
        .unwrap_err();
    assert_eq!(status(&unknown), "550");
    assert!(unknown.to_string().contains("5.1.1"), "{unknown}");
    fake.set_redirect(Some("https://notify.invalid/unsubscribed"));
    let redirected = unsubscribe(&server, "mallory@evil.invalid", &id, "12345")
        .await
        .unwrap_err();
    assert_eq!(status(&redirected), "550");
    assert_eq!(fake.subscription(&id).unwrap().state, "confirmed");
}

#[tokio::test]
async fn api_failures_give_451_and_the_retry_applies_once() {
    for fault in [
        Fault::Status(503),
        Fault::Status(429),
        Fault::Slow(Duration::from_secs(3)),
    ] {
        let fake = FakeApi::start().await;
        let id = fake.add_subscription("myService", SUBSCRIBER, "12345");
        let server = server(&fake, "[api]\ntimeout_ms = 1000\n").await;
        fake.fail_all(fault.clone());
        let e = bounce(&server, &id, &Dsn::default()).await.unwrap_err();
        assert!(e.is_transient(), "{fault:?}: {e}");
        assert_eq!(status(&e), "451", "{fault:?}");
        fake.clear_faults();
        // A slow call may still land late; give it time, then the sender's retry.
        tokio::time::sleep(Duration::from_millis(2500)).await;
        bounce(&server, &id, &Dsn::default()).await.unwrap();
        let records = fake.bounces_of(SUBSCRIBER);
        assert_eq!(records.len(), 1, "{fault:?}");
        assert_eq!(records[0].hard_bounce_count, 1, "{fault:?}: counted once");
    }
    // Nothing listening at all.
    let fake = FakeApi::start().await;
    let id = fake.add_subscription("myService", SUBSCRIBER, "12345");
    let server = server(&fake, "").await;
    fake.go_down().await;
    assert!(
        std::net::TcpStream::connect(fake.addr()).is_err(),
        "nothing listens"
    );
    // ...yet no other socket can take the port meanwhile: the fake comes back on it.
    assert!(
        std::net::TcpListener::bind(fake.addr()).is_err(),
        "the port of a fake that is down stays reserved"
    );
    let e = unsubscribe(&server, SUBSCRIBER, &id, "12345")
        .await
        .unwrap_err();
    assert_eq!(status(&e), "451");
    fake.come_up().await;
    unsubscribe(&server, SUBSCRIBER, &id, "12345")
        .await
        .unwrap();
    assert_eq!(fake.subscription(&id).unwrap().state, "deleted");
}

#[tokio::test]
async fn the_same_bounce_delivered_twice_counts_once() {
    let fake = FakeApi::start().await;
    let id = fake.add_subscription("myService", SUBSCRIBER, "12345");
    let server = server(&fake, "").await;
    bounce(&server, &id, &Dsn::default()).await.unwrap();
    bounce(&server, &id, &Dsn::default()).await.unwrap();
    let records = fake.bounces_of(SUBSCRIBER);
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].hard_bounce_count, 1);
}
