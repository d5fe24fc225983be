//! Several `un`/`bn` recipients in one transaction: each is processed, and the reply to
//! DATA speaks for all of them (451 if any failed for now, 550 if every one was refused,
//! else 250). A real SMTP client (lettre) and raw sockets talk to the server, which runs
//! the real flows against the fake NotifyBC API.

mod common;
mod harness;

use axum::http::Method;
use common::dsn::Dsn;
use common::fake_api::{FakeApi, Fault, FaultRule};
use common::in_process::{self, start_server, status};
use harness::{Client, code};
use lettre::transport::smtp::Error as SmtpError;
use lettre::transport::smtp::response::Response;
use notify_inbound::config::TlsMode;
use notify_inbound::server::Server;

const SUBSCRIBER: &str = "bar@foo.com";
const DOMAIN: &str = "invalid.local";
const UNSUBSCRIBE: &str =
    "From: bar@foo.com\r\nTo: un@invalid.local\r\nSubject: unsubscribe\r\n\r\nunsubscribe me\r\n";

/// The server with the flows against `fake`; `smtp` is added to `[inbound_smtp_server]`.
async fn server(fake: &FakeApi, smtp: &str) -> Server {
    start_server(fake, DOMAIN, smtp, "").await
}

/// One message from `from` to every address of `to`, in one transaction.
async fn send(
    server: &Server,
    from: Option<&str>,
    to: &[String],
    message: &str,
) -> Result<Response, SmtpError> {
    let to: Vec<&str> = to.iter().map(String::as_str).collect();
    in_process::send(server, from, &to, message).await
}

fn un(id: &str, code: &str) -> String {
    format!("un-{id}-{code}@{DOMAIN}")
}

fn bn(id: &str, code: &str) -> String {
    format!("bn-{id}-{code}@{DOMAIN}")
}

/// Three subscriptions of the same subscriber to three services.
fn three(fake: &FakeApi) -> Vec<String> {
    ["serviceA", "serviceB", "serviceC"]
        .iter()
        .map(|s| fake.add_subscription(s, SUBSCRIBER, "12345"))
        .collect()
}

/// Every one of `ids` is deleted, by exactly one unsubscribe.
fn assert_each_unsubscribed_once(fake: &FakeApi, ids: &[String]) {
    for id in ids {
        let s = fake.subscription(id).unwrap();
        assert_eq!(
            (s.state.as_str(), s.times_unsubscribed),
            ("deleted", 1),
            "{id}"
        );
    }
}

#[tokio::test]
async fn one_message_to_three_un_recipients_unsubscribes_all_three() {
    let fake = FakeApi::start().await;
    let ids = three(&fake);
    let server = server(&fake, "").await;
    let to: Vec<String> = ids.iter().map(|id| un(id, "12345")).collect();
    let r = send(&server, Some(SUBSCRIBER), &to, UNSUBSCRIBE)
        .await
        .unwrap();
    assert_eq!(r.code().to_string(), "250");
    assert_each_unsubscribed_once(&fake, &ids);
}

#[tokio::test]
async fn some_refused_the_others_applied_and_250() {
    let fake = FakeApi::start().await;
    let ids = three(&fake);
    let server = server(&fake, "").await;
    // The second carries a wrong code: NotifyBC refuses it (403).
    let to = vec![
        un(&ids[0], "12345"),
        un(&ids[1], "wrong"),
        un(&ids[2], "12345"),
    ];
    let r = send(&server, Some(SUBSCRIBER), &to, UNSUBSCRIBE)
        .await
        .unwrap();
    assert_eq!(r.code().to_string(), "250");
    let text = r.message().collect::<Vec<_>>().join(" ");
    assert!(
        text.contains("accepted for 2 of 3 recipients; 1 refused"),
        "{text}"
    );
    assert!(!text.contains("wrong"), "the code is never echoed: {text}");
    let states: Vec<String> = ids
        .iter()
        .map(|id| fake.subscription(id).unwrap().state)
        .collect();
    assert_eq!(states, ["deleted", "confirmed", "deleted"]);
}

#[tokio::test]
async fn every_recipient_refused_gives_550() {
    let fake = FakeApi::start().await;
    let ids = three(&fake);
    let server = server(&fake, "").await;
    let to = vec![un(&ids[0], "wrong"), un(&ids[1], "wrong")];
    let e = send(&server, Some(SUBSCRIBER), &to, UNSUBSCRIBE)
        .await
        .unwrap_err();
    assert!(e.is_permanent(), "{e}");
    assert_eq!(status(&e), "550");
    for id in &ids {
        assert_eq!(fake.subscription(id).unwrap().state, "confirmed");
    }
}

#[tokio::test]
async fn one_temporary_failure_gives_451_and_the_retry_applies_each_once() {
    let fake = FakeApi::start().await;
    let ids = three(&fake);
    let server = server(&fake, "").await;
    // The API fails the second recipient's unsubscribe call, before any effect.
    fake.add_fault(FaultRule::on(
        Method::GET,
        &format!("/subscriptions/{}/unsubscribe", ids[1]),
        Fault::Status(503),
    ));
    let to: Vec<String> = ids.iter().map(|id| un(id, "12345")).collect();
    let e = send(&server, Some(SUBSCRIBER), &to, UNSUBSCRIBE)
        .await
        .unwrap_err();
    assert!(e.is_transient(), "{e}");
    assert_eq!(status(&e), "451");
    assert_eq!(fake.subscription(&ids[0]).unwrap().state, "deleted");
    assert_eq!(fake.subscription(&ids[1]).unwrap().state, "confirmed");
    // The sender retries the whole message: every recipient ends applied exactly once.
    fake.clear_faults();
    let r = send(&server, Some(SUBSCRIBER), &to, UNSUBSCRIBE)
        .await
        .unwrap();
    assert_eq!(r.code().to_string(), "250");
    assert_each_unsubscribed_once(&fake, &ids);
}

#[tokio::test]
async fn a_bounce_to_two_bn_recipients_is_the_same_bounce_for_each() {
    let fake = FakeApi::start().await;
    let a = fake.add_subscription("serviceA", SUBSCRIBER, "12345");
    let b = fake.add_subscription("serviceB", "baz@foo.com", "67890");
    let server = server(&fake, "").await;
    let message = Dsn::default().build();
    let r = send(&server, None, &[bn(&a, "12345"), bn(&b, "67890")], &message)
        .await
        .unwrap();
    assert_eq!(r.code().to_string(), "250");
    // The report is about bar@foo.com: counted for that subscriber, recorded (not counted)
    // for the other.
    let records = fake.bounces_of(SUBSCRIBER);
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].hard_bounce_count, 1);
    let records = fake.bounces_of("baz@foo.com");
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].hard_bounce_count, 0);
    assert_eq!(records[0].bounce_messages.len(), 1);
}

#[tokio::test]
async fn recipients_past_the_limit_get_452_naming_it() {
    let fake = FakeApi::start().await;
    let ids = three(&fake);
    let server = server(&fake, "max_recipients_per_transaction = 2").await;
    let mut c = Client::connect(server.addr(TlsMode::Starttls).unwrap()).await;
    assert_eq!(code(&c.reply().await), 220);
    c.cmd("EHLO client.example").await;
    assert_eq!(
        code(&c.cmd(&format!("MAIL FROM:<{SUBSCRIBER}>")).await),
        250
    );
    for id in &ids[..2] {
        assert_eq!(
            code(&c.cmd(&format!("RCPT TO:<{}>", un(id, "12345"))).await),
            250
        );
    }
    let refused = c.cmd(&format!("RCPT TO:<{}>", un(&ids[2], "12345"))).await;
    assert!(refused.starts_with("452 4.5.3 "), "{refused}");
    assert!(refused.contains("at most 2 "), "{refused}");
    assert_eq!(code(&c.cmd("DATA").await), 354);
    c.send(format!("{UNSUBSCRIBE}.\r\n").as_bytes()).await;
    assert_eq!(code(&c.reply().await), 250);
    let states: Vec<String> = ids
        .iter()
        .map(|id| fake.subscription(id).unwrap().state)
        .collect();
    assert_eq!(states, ["deleted", "deleted", "confirmed"]);
}

#[test]
fn the_default_limit_is_fifty() {
    let s = notify_inbound::config::Settings::defaults().unwrap();
    assert_eq!(s.inbound_smtp_server.max_recipients_per_transaction, 50);
}
