//! The `un` and `bn` flows against the fake NotifyBC API over real HTTP: every case of
//! NotifyBC's own inbound-SMTP test suite, then the retry, fault and abuse cases that go
//! beyond it, then (`over_smtp`) the same flows behind the SMTP server with a real SMTP
//! client. Each test asserts the reply and the API's resulting state.

mod common;

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use axum::http::Method;
use common::dsn::Dsn;
use common::encode_uri_component as encode;
use common::fake_api::{FakeApi, Fault, FaultRule, SettingsFor};
use notify_inbound::flows::{Deliver, Envelope, Processor};
use notify_inbound::reply::Reply;
use notify_inbound::router::{Recipient, RecipientKind};

const SUBSCRIBER: &str = "bar@foo.com";

fn envelope(kind: RecipientKind, id: &str, code: &str, mail_from: &str) -> Envelope {
    Envelope {
        client: IpAddr::V4(Ipv4Addr::LOCALHOST),
        mail_from: mail_from.to_string(),
        recipient: Recipient {
            kind,
            id: id.to_string(),
            code: code.to_string(),
            address: format!("{}-{id}-{code}@invalid.local", kind.as_str()),
        },
    }
}

fn un(id: &str, code: &str, from: &str) -> Envelope {
    envelope(RecipientKind::Unsubscribe, id, code, from)
}

fn bn(id: &str, code: &str) -> Envelope {
    envelope(RecipientKind::Bounce, id, code, "")
}

#[track_caller]
fn assert_reply(reply: &Reply, code: u16, enhanced: &str) {
    assert_eq!(
        (reply.code, reply.enhanced),
        (code, enhanced),
        "unexpected reply: {reply}"
    );
}

fn dsn() -> String {
    Dsn::default().build()
}

fn dsn_with_id(message_id: &str) -> String {
    Dsn {
        message_id: Some(message_id),
        ..Dsn::default()
    }
    .build()
}

/// Delivers `message` as a bounce for subscription `id` (code 12345) and expects 250.
async fn bounce_accepted(p: &Processor, id: &str, message: &str) {
    assert_reply(
        &p.deliver(&bn(id, "12345"), message.as_bytes()).await,
        250,
        "2.0.0",
    );
}

async fn processor(fake: &FakeApi, extra: &str) -> Processor {
    Processor::new(&fake.settings(extra)).expect("processor")
}

// ---------------------------------------------------------------------------------------
// NotifyBC's inbound-SMTP suite, ported
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn un_valid_request_unsubscribes_with_the_exact_call() {
    let fake = FakeApi::start().await;
    let id = fake.add_subscription("myService", SUBSCRIBER, "12345");
    let p = processor(&fake, "").await;

    let reply = p
        .deliver(&un(&id, "12345", SUBSCRIBER), b"unsubscribe")
        .await;

    assert_reply(&reply, 250, "2.0.0");
    assert_eq!(fake.subscription(&id).unwrap().state, "deleted");
    let requests = fake.requests();
    assert_eq!(requests.len(), 1, "{:?}", requests);
    assert_eq!(requests[0].method, "GET");
    assert_eq!(
        requests[0].uri,
        format!(
            "/api/subscriptions/{id}/unsubscribe?unsubscriptionCode=12345&userChannelId=bar%40foo.com"
        )
    );
    assert_eq!(requests[0].header("is_anonymous"), Some("true"));
}

#[tokio::test]
async fn bn_dsn_creates_a_bounce_record_with_count_1_and_the_raw_message() {
    let fake = FakeApi::start().await;
    let id = fake.add_subscription("myService", SUBSCRIBER, "12345");
    let p = processor(&fake, "").await;
    let message = dsn();

    let reply = p.deliver(&bn(&id, "12345"), message.as_bytes()).await;

    assert_reply(&reply, 250, "2.0.0");
    let records = fake.bounces_of(SUBSCRIBER);
    assert_eq!(records.len(), 1);
    let b = &records[0];
    assert_eq!(
        (b.channel.as_str(), b.state.as_str(), b.hard_bounce_count),
        ("email", "active", 1)
    );
    assert_eq!(b.bounce_messages.len(), 1);
    assert_eq!(b.bounce_messages[0].message, message);
    assert!(
        chrono::DateTime::parse_from_rfc3339(&b.bounce_messages[0].date).is_ok(),
        "date {:?}",
        b.bounce_messages[0].date
    );
    // The subscription lookup is §4.2 step 3's filter, exactly.
    let lookup = &fake.requests()[0];
    assert_eq!(
        lookup.uri,
        format!(
            "/api/subscriptions?filter={}",
            encode(&format!(
                r#"{{"where":{{"id":"{id}","channel":"email","state":"confirmed","unsubscriptionCode":"12345"}}}}"#
            ))
        )
    );
    assert_eq!(fake.subscription(&id).unwrap().state, "confirmed");
}

#[tokio::test]
async fn bn_increments_an_existing_record_and_prepends_the_message() {
    let fake = FakeApi::start().await;
    let id = fake.add_subscription("myService", SUBSCRIBER, "12345");
    let bid = fake.add_bounce(SUBSCRIBER, 1);
    let p = processor(&fake, "").await;

    let first = dsn_with_id("<first@mta>");
    let second = dsn_with_id("<second@mta>");
    bounce_accepted(&p, &id, &first).await;
    bounce_accepted(&p, &id, &second).await;

    let b = fake.bounce(&bid).unwrap();
    assert_eq!(b.hard_bounce_count, 3);
    let stored: Vec<&str> = b
        .bounce_messages
        .iter()
        .map(|m| m.message.as_str())
        .collect();
    assert_eq!(stored, vec![second.as_str(), first.as_str()]);
    let patch = fake
        .requests()
        .into_iter()
        .find(|r| r.method == "PATCH")
        .unwrap();
    assert_eq!(patch.uri, format!("/api/bounces/{bid}"));
}

/// Delivers `message` as a bounce for a subscriber whose record is at 1, with `extra`
/// configuration; returns the record's count and stored messages afterwards.
async fn bounce_on_record_at_1(extra: &str, message: &str) -> (u64, Vec<String>) {
    let fake = FakeApi::start().await;
    let id = fake.add_subscription("myService", SUBSCRIBER, "12345");
    let bid = fake.add_bounce(SUBSCRIBER, 1);
    let p = processor(&fake, extra).await;
    let reply = p.deliver(&bn(&id, "12345"), message.as_bytes()).await;
    assert_reply(&reply, 250, "2.0.0");
    let b = fake.bounce(&bid).unwrap();
    let stored = b.bounce_messages.into_iter().map(|m| m.message).collect();
    (b.hard_bounce_count, stored)
}

#[tokio::test]
async fn bn_with_subject_not_matching_subject_regex_is_recorded_not_counted() {
    let message = Dsn {
        subject: "invalid",
        ..Dsn::default()
    }
    .build();
    let (count, stored) =
        bounce_on_record_at_1("[bounce]\nsubject_regex = 'Returned mail'\n", &message).await;
    assert_eq!((count, stored.len()), (1, 1));
}

#[tokio::test]
async fn bn_with_only_a_4xx_status_is_recorded_not_counted() {
    let message = Dsn {
        status: "4.1.1",
        ..Dsn::default()
    }
    .build();
    let (count, stored) = bounce_on_record_at_1("", &message).await;
    assert_eq!((count, stored), (1, vec![message]));
}

#[tokio::test]
async fn bn_for_another_final_recipient_is_recorded_not_counted() {
    let message = Dsn {
        final_recipient: "bar@invalid.local",
        ..Dsn::default()
    }
    .build();
    let (count, stored) = bounce_on_record_at_1("", &message).await;
    assert_eq!((count, stored.len()), (1, 1));
}

#[tokio::test]
async fn bn_x_failed_recipients_wins_over_the_body() {
    let message = Dsn {
        final_recipient: "bar@invalid.local",
        x_failed_recipients: Some(SUBSCRIBER),
        ..Dsn::default()
    }
    .build();
    // NotifyBC's rule: the classifier's decision reads the report's own entries.
    let (count, _) = bounce_on_record_at_1("[bounce]\ndecision = 'notifybc'\n", &message).await;
    assert_eq!(count, 2);
}

#[tokio::test]
async fn bn_past_the_threshold_unsubscribes_everything_and_retires_the_record() {
    let fake = FakeApi::start().await;
    let id = fake.add_subscription("myService", SUBSCRIBER, "12345");
    let other = fake.add_subscription("otherService", SUBSCRIBER, "54321");
    let stranger = fake.add_subscription("myService", "someone@foo.com", "11111");
    let bid = fake.add_bounce(SUBSCRIBER, 2);
    // Success and failure would both redirect to the fake itself: a followed redirect
    // would show up in the request log.
    fake.set_redirect(Some(&format!("{}/landing", fake.host_url())));
    let p = processor(&fake, "[bounce]\nunsub_threshold = 1\n").await;

    let reply = p.deliver(&bn(&id, "12345"), dsn().as_bytes()).await;

    assert_reply(&reply, 250, "2.0.0");
    assert_eq!(fake.subscription(&id).unwrap().state, "deleted");
    assert_eq!(fake.subscription(&other).unwrap().state, "deleted");
    assert_eq!(fake.subscription(&stranger).unwrap().state, "confirmed");
    let b = fake.bounce(&bid).unwrap();
    assert_eq!((b.hard_bounce_count, b.state.as_str()), (3, "deleted"));
    let requests = fake.requests();
    let unsub: Vec<_> = requests
        .iter()
        .filter(|r| r.path().ends_with("/unsubscribe"))
        .collect();
    assert_eq!(unsub.len(), 1);
    assert_eq!(
        unsub[0].uri,
        format!(
            "/api/subscriptions/{id}/unsubscribe?unsubscriptionCode=12345&userChannelId=bar%40foo.com&additionalServices=_all"
        )
    );
    assert_eq!(unsub[0].header("is_anonymous"), Some("true"));
    assert!(
        requests.iter().all(|r| !r.path().starts_with("/landing")),
        "a redirect was followed: {:?}",
        requests.iter().map(|r| r.line()).collect::<Vec<_>>()
    );
    let last = requests.last().unwrap();
    assert_eq!(
        (last.method.as_str(), last.body.as_str()),
        ("PATCH", r#"{"state":"deleted"}"#)
    );
}

/// docs/behaviour.md §4: a message that cannot be parsed is accepted and
/// recorded as not counting, rather than NotifyBC's 451, which only makes the sender retry
/// something that can never succeed.
#[tokio::test]
async fn bn_unparsable_message_is_accepted_and_recorded_without_counting() {
    let fake = FakeApi::start().await;
    let id = fake.add_subscription("myService", SUBSCRIBER, "12345");
    let bid = fake.add_bounce(SUBSCRIBER, 1);
    let p = processor(&fake, "").await;
    let garbage: &[u8] = b"\x00\x01\x02 this is not a mail message \xff\xfe";

    let reply = p.deliver(&bn(&id, "12345"), garbage).await;

    assert_reply(&reply, 250, "2.0.0");
    let b = fake.bounce(&bid).unwrap();
    assert_eq!(b.hard_bounce_count, 1);
    assert_eq!(b.bounce_messages.len(), 1);
    assert_eq!(
        b.bounce_messages[0].message,
        String::from_utf8_lossy(garbage)
    );
}

// ---------------------------------------------------------------------------------------
// Replies of the un flow
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn un_with_a_wrong_code_is_refused_550_5_7_1() {
    let fake = FakeApi::start().await;
    let id = fake.add_subscription("myService", SUBSCRIBER, "12345");
    let p = processor(&fake, "").await;

    let reply = p.deliver(&un(&id, "99999", SUBSCRIBER), b"x").await;

    assert_reply(&reply, 550, "5.7.1");
    assert!(reply.text.contains("unsubscribe link"), "{reply}");
    assert_eq!(fake.subscription(&id).unwrap().state, "confirmed");
}

#[tokio::test]
async fn un_from_another_address_is_refused_550_5_7_1() {
    let fake = FakeApi::start().await;
    let id = fake.add_subscription("myService", SUBSCRIBER, "12345");
    let p = processor(&fake, "").await;

    let reply = p
        .deliver(&un(&id, "12345", "mallory@evil.example"), b"x")
        .await;

    assert_reply(&reply, 550, "5.7.1");
    assert_eq!(fake.subscription(&id).unwrap().state, "confirmed");
}

#[tokio::test]
async fn un_for_an_unknown_subscription_is_refused_550_5_1_1() {
    let fake = FakeApi::start().await;
    let p = processor(&fake, "").await;

    let reply = p.deliver(&un("424242", "12345", SUBSCRIBER), b"x").await;

    assert_reply(&reply, 550, "5.1.1");
    assert!(reply.text.contains("no such subscription"), "{reply}");
}

#[tokio::test]
async fn un_redirect_with_err_is_a_refusal_and_without_err_a_success() {
    let fake = FakeApi::start().await;
    let id = fake.add_subscription("myService", SUBSCRIBER, "12345");
    fake.set_redirect(Some(&format!("{}/landing", fake.host_url())));
    let p = processor(&fake, "").await;

    let refused = p.deliver(&un(&id, "00000", SUBSCRIBER), b"x").await;
    assert_reply(&refused, 550, "5.7.1");
    assert_eq!(fake.subscription(&id).unwrap().state, "confirmed");

    let accepted = p.deliver(&un(&id, "12345", SUBSCRIBER), b"x").await;
    assert_reply(&accepted, 250, "2.0.0");
    assert_eq!(fake.subscription(&id).unwrap().state, "deleted");
    assert!(
        fake.requests()
            .iter()
            .all(|r| !r.path().starts_with("/landing"))
    );
}

#[tokio::test]
async fn un_retry_after_a_lost_answer_gets_250_and_applies_once() {
    let fake = FakeApi::start().await;
    let id = fake.add_subscription("myService", SUBSCRIBER, "12345");
    fake.add_fault(FaultRule::on(Method::GET, "/unsubscribe", Fault::LoseAnswer).times(1));
    let p = processor(&fake, "").await;
    let envelope = un(&id, "12345", SUBSCRIBER);

    let first = p.deliver(&envelope, b"x").await;
    assert_reply(&first, 451, "4.3.0");
    assert_eq!(fake.subscription(&id).unwrap().state, "deleted");

    let retry = p.deliver(&envelope, b"x").await;
    assert_reply(&retry, 250, "2.0.0");
    assert_eq!(fake.subscription(&id).unwrap().times_unsubscribed, 1);

    // The recognition is no back door: another code or address is still refused.
    assert_reply(
        &p.deliver(&un(&id, "12346", SUBSCRIBER), b"x").await,
        550,
        "5.7.1",
    );
    assert_reply(
        &p.deliver(&un(&id, "12345", "other@foo.com"), b"x").await,
        550,
        "5.7.1",
    );
}

#[tokio::test]
async fn un_retry_in_redirect_mode_after_a_lost_answer_gets_250() {
    let fake = FakeApi::start().await;
    let id = fake.add_subscription("myService", SUBSCRIBER, "12345");
    fake.set_redirect(Some("https://notify.example/unsubscribed"));
    fake.add_fault(FaultRule::on(Method::GET, "/unsubscribe", Fault::LoseAnswer).times(1));
    let p = processor(&fake, "").await;
    let envelope = un(&id, "12345", SUBSCRIBER);

    assert_reply(&p.deliver(&envelope, b"x").await, 451, "4.3.0");
    assert_reply(&p.deliver(&envelope, b"x").await, 250, "2.0.0");
    assert_eq!(fake.subscription(&id).unwrap().times_unsubscribed, 1);
}

#[tokio::test]
async fn un_disabled_is_refused_without_calling_the_api() {
    let fake = FakeApi::start().await;
    let id = fake.add_subscription("myService", SUBSCRIBER, "12345");
    let p = processor(&fake, "[list_unsubscribe_by_email]\nenabled = false\n").await;

    let reply = p.deliver(&un(&id, "12345", SUBSCRIBER), b"x").await;

    assert_reply(&reply, 550, "5.7.1");
    assert!(fake.requests().is_empty());
    assert_eq!(fake.subscription(&id).unwrap().state, "confirmed");
}

// ---------------------------------------------------------------------------------------
// Replies of the bn flow
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn bn_without_a_confirmed_subscription_is_accepted_and_dropped() {
    let fake = FakeApi::start().await;
    let id = fake.insert_subscription("myService", SUBSCRIBER, "12345", "unconfirmed");
    let p = processor(&fake, "").await;

    assert_reply(
        &p.deliver(&bn(&id, "12345"), dsn().as_bytes()).await,
        250,
        "2.0.0",
    );
    assert_reply(
        &p.deliver(&bn("777", "12345"), dsn().as_bytes()).await,
        250,
        "2.0.0",
    );
    // A wrong code finds nothing either.
    let confirmed = fake.add_subscription("myService", SUBSCRIBER, "12345");
    assert_reply(
        &p.deliver(&bn(&confirmed, "99999"), dsn().as_bytes()).await,
        250,
        "2.0.0",
    );

    assert!(fake.bounces().is_empty());
    assert!(fake.requests().iter().all(|r| r.method == "GET"));
}

#[tokio::test]
async fn bn_disabled_is_accepted_and_dropped_without_calling_the_api() {
    let fake = FakeApi::start().await;
    let id = fake.add_subscription("myService", SUBSCRIBER, "12345");
    let p = processor(&fake, "[bounce]\nenabled = false\n").await;

    let reply = p.deliver(&bn(&id, "12345"), dsn().as_bytes()).await;

    assert_reply(&reply, 250, "2.0.0");
    assert!(fake.requests().is_empty());
    assert!(fake.bounces().is_empty());
}

#[tokio::test]
async fn bn_same_bounce_delivered_twice_counts_once() {
    let fake = FakeApi::start().await;
    let id = fake.add_subscription("myService", SUBSCRIBER, "12345");
    let p = processor(&fake, "").await;
    let message = dsn();

    bounce_accepted(&p, &id, &message).await;
    bounce_accepted(&p, &id, &message).await;

    let records = fake.bounces_of(SUBSCRIBER);
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].hard_bounce_count, 1);
    assert_eq!(records[0].bounce_messages.len(), 1);
}

#[tokio::test]
async fn bn_same_message_id_with_other_bytes_counts_once() {
    let fake = FakeApi::start().await;
    let id = fake.add_subscription("myService", SUBSCRIBER, "12345");
    let p = processor(&fake, "").await;
    let message = dsn();
    // A relay on the way added a trace header the second time.
    let again = format!("Received: from relay.invalid.local\r\n{message}");

    bounce_accepted(&p, &id, &message).await;
    bounce_accepted(&p, &id, &again).await;

    let b = &fake.only_bounce_of(SUBSCRIBER);
    assert_eq!((b.hard_bounce_count, b.bounce_messages.len()), (1, 1));
}

#[tokio::test]
async fn bn_stored_message_is_capped_and_still_recognised_on_retry() {
    let fake = FakeApi::start().await;
    let id = fake.add_subscription("myService", SUBSCRIBER, "12345");
    let p = processor(&fake, "[bounce]\nmax_stored_message_bytes = 200\n").await;
    let message = Dsn {
        message_id: None,
        ..Dsn::default()
    }
    .build();
    assert!(message.len() > 200);

    bounce_accepted(&p, &id, &message).await;
    bounce_accepted(&p, &id, &message).await;

    let b = &fake.only_bounce_of(SUBSCRIBER);
    assert_eq!((b.hard_bounce_count, b.bounce_messages.len()), (1, 1));
    assert_eq!(b.bounce_messages[0].message, message[..200]);
}

#[tokio::test]
async fn bn_count_window_counts_one_hard_bounce_per_window() {
    let fake = FakeApi::start().await;
    let id = fake.add_subscription("myService", SUBSCRIBER, "12345");
    let p = processor(&fake, "[bounce]\ncount_window_secs = 86400\n").await;

    for n in 0..3 {
        let m = dsn_with_id(&format!("<window-{n}@mta>"));
        bounce_accepted(&p, &id, &m).await;
    }

    let b = &fake.only_bounce_of(SUBSCRIBER);
    assert_eq!((b.hard_bounce_count, b.bounce_messages.len()), (1, 3));
}

#[tokio::test]
async fn bn_concurrent_bounces_for_one_address_lose_no_increment() {
    let fake = FakeApi::start().await;
    let id = fake.add_subscription("myService", SUBSCRIBER, "12345");
    // Slow reads widen the read-modify-write window that concurrent bounces race in.
    fake.add_fault(FaultRule::on(
        Method::GET,
        "/api/bounces",
        Fault::Slow(Duration::from_millis(20)),
    ));
    let p = processor(&fake, "[bounce]\nunsub_threshold = 1000\n").await;
    let envelope = bn(&id, "12345");
    let messages: Vec<String> = (0..16)
        .map(|n| dsn_with_id(&format!("<concurrent-{n}@mta>")))
        .collect();

    let replies =
        futures::future::join_all(messages.iter().map(|m| p.deliver(&envelope, m.as_bytes())))
            .await;

    for r in &replies {
        assert_reply(r, 250, "2.0.0");
    }
    let records = fake.bounces_of(SUBSCRIBER);
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].hard_bounce_count, 16);
    assert_eq!(records[0].bounce_messages.len(), 16);
}

/// An RFC 5965 abuse report about a notification sent to the subscriber.
fn arf_complaint() -> String {
    [
        "From: Abuse Desk <abuse@mailbox.example>",
        "To: bn-1-12345@invalid.local",
        "Subject: Abuse report",
        "Message-ID: <arf-1@mailbox.example>",
        "MIME-Version: 1.0",
        "Content-Type: multipart/report; report-type=feedback-report; boundary=\"arf\"",
        "",
        "--arf",
        "Content-Type: text/plain",
        "",
        "This is an email abuse report for a message received from 192.0.2.1.",
        "",
        "--arf",
        "Content-Type: message/feedback-report",
        "",
        "Feedback-Type: abuse",
        "User-Agent: ReportGenerator/1.0",
        "Version: 1",
        "Original-Rcpt-To: <bar@foo.com>",
        "",
        "--arf",
        "Content-Type: message/rfc822",
        "",
        "From: notify@invalid.local",
        "To: bar@foo.com",
        "Subject: Your notification",
        "",
        "Hello.",
        "--arf--",
        "",
    ]
    .join("\r\n")
}

#[tokio::test]
async fn bn_complaint_unsubscribes_everything_when_complaints_unsubscribe_is_on() {
    let fake = FakeApi::start().await;
    let id = fake.add_subscription("myService", SUBSCRIBER, "12345");
    let other = fake.add_subscription("otherService", SUBSCRIBER, "54321");
    let p = processor(&fake, "[bounce]\ncomplaints_unsubscribe = true\n").await;
    let report = arf_complaint();

    let reply = p.deliver(&bn(&id, "12345"), report.as_bytes()).await;

    assert_reply(&reply, 250, "2.0.0");
    assert_eq!(fake.subscription(&id).unwrap().state, "deleted");
    assert_eq!(fake.subscription(&other).unwrap().state, "deleted");
    let records = fake.bounces_of(SUBSCRIBER);
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].state, "deleted");
    assert_eq!(records[0].hard_bounce_count, 0);
    assert_eq!(records[0].bounce_messages[0].message, report);
    assert!(
        fake.requests()
            .iter()
            .any(|r| r.uri.ends_with("&additionalServices=_all"))
    );
}

#[tokio::test]
async fn bn_complaint_is_only_recorded_when_complaints_unsubscribe_is_off() {
    let fake = FakeApi::start().await;
    let id = fake.add_subscription("myService", SUBSCRIBER, "12345");
    let p = processor(&fake, "").await;
    let report = arf_complaint();

    let reply = p.deliver(&bn(&id, "12345"), report.as_bytes()).await;

    assert_reply(&reply, 250, "2.0.0");
    assert_eq!(fake.subscription(&id).unwrap().state, "confirmed");
    let records = fake.bounces_of(SUBSCRIBER);
    assert_eq!(records.len(), 1);
    assert_eq!(
        (records[0].state.as_str(), records[0].hard_bounce_count),
        ("active", 0)
    );
    assert_eq!(records[0].bounce_messages.len(), 1);
}

// ---------------------------------------------------------------------------------------
// Faults behind us: 451 4.3.0, nothing applied, and a retry after recovery applies once
// ---------------------------------------------------------------------------------------

/// Delivers `envelope` while the API fails, then after recovery.
async fn fail_then_recover(
    fake: &FakeApi,
    p: &Processor,
    envelope: &Envelope,
    message: &[u8],
    check_nothing_applied: impl Fn(&FakeApi),
) {
    let reply = p.deliver(envelope, message).await;
    assert_reply(&reply, 451, "4.3.0");
    check_nothing_applied(fake);
    fake.clear_faults();
    fake.come_up().await;
    let reply = p.deliver(envelope, message).await;
    assert_reply(&reply, 250, "2.0.0");
}

async fn un_fault_case(fault: Option<Fault>, extra: &str) {
    let fake = FakeApi::start().await;
    let id = fake.add_subscription("myService", SUBSCRIBER, "12345");
    match fault {
        Some(f) => fake.fail_all(f),
        None => fake.go_down().await,
    }
    let p = processor(&fake, extra).await;
    fail_then_recover(&fake, &p, &un(&id, "12345", SUBSCRIBER), b"x", |f| {
        assert_eq!(f.subscription(&id).unwrap().state, "confirmed");
    })
    .await;
    let s = fake.subscription(&id).unwrap();
    assert_eq!((s.state.as_str(), s.times_unsubscribed), ("deleted", 1));
}

async fn bn_fault_case(fault: Option<Fault>, extra: &str) {
    let fake = FakeApi::start().await;
    let id = fake.add_subscription("myService", SUBSCRIBER, "12345");
    let bid = fake.add_bounce(SUBSCRIBER, 1);
    match fault {
        Some(f) => fake.fail_all(f),
        None => fake.go_down().await,
    }
    let p = processor(&fake, extra).await;
    fail_then_recover(&fake, &p, &bn(&id, "12345"), dsn().as_bytes(), |f| {
        let b = f.bounce(&bid).unwrap();
        assert_eq!((b.hard_bounce_count, b.bounce_messages.len()), (1, 0));
    })
    .await;
    let b = fake.bounce(&bid).unwrap();
    assert_eq!((b.hard_bounce_count, b.bounce_messages.len()), (2, 1));
    assert_eq!(fake.bounces().len(), 1);
}

#[tokio::test]
async fn api_down_gives_451_then_the_retry_applies_once() {
    un_fault_case(None, "").await;
    bn_fault_case(None, "").await;
}

#[tokio::test]
async fn api_5xx_gives_451_then_the_retry_applies_once() {
    un_fault_case(Some(Fault::Status(500)), "").await;
    bn_fault_case(Some(Fault::Status(503)), "").await;
}

#[tokio::test]
async fn api_429_gives_451_then_the_retry_applies_once() {
    un_fault_case(Some(Fault::Status(429)), "").await;
    bn_fault_case(Some(Fault::Status(429)), "").await;
}

#[tokio::test]
async fn api_401_on_admin_calls_gives_451() {
    bn_fault_case(Some(Fault::Status(401)), "").await;
}

#[tokio::test]
async fn api_slower_than_the_timeout_gives_451_then_the_retry_applies_once() {
    let extra = "[api]\ntimeout_ms = 200\n";
    bn_fault_case(Some(Fault::Slow(Duration::from_millis(1500))), extra).await;

    // For un the slow call may still be applied after we gave up: whether it was or not,
    // the retry gets 250 and the subscription is unsubscribed once.
    let fake = FakeApi::start().await;
    let id = fake.add_subscription("myService", SUBSCRIBER, "12345");
    fake.fail_all(Fault::Slow(Duration::from_millis(1500)));
    let p = processor(&fake, extra).await;
    let envelope = un(&id, "12345", SUBSCRIBER);
    assert_reply(&p.deliver(&envelope, b"x").await, 451, "4.3.0");
    fake.clear_faults();
    assert_reply(&p.deliver(&envelope, b"x").await, 250, "2.0.0");
    // Let the delayed call run to its end before looking at the state.
    tokio::time::sleep(Duration::from_millis(1600)).await;
    let s = fake.subscription(&id).unwrap();
    assert_eq!((s.state.as_str(), s.times_unsubscribed), ("deleted", 1));
}

#[tokio::test]
async fn bn_lost_answer_to_the_record_write_is_not_counted_twice() {
    // PATCH of an existing record.
    let fake = FakeApi::start().await;
    let id = fake.add_subscription("myService", SUBSCRIBER, "12345");
    let bid = fake.add_bounce(SUBSCRIBER, 1);
    fake.add_fault(FaultRule::on(Method::PATCH, "/api/bounces", Fault::LoseAnswer).times(1));
    let p = processor(&fake, "").await;
    let message = dsn();
    assert_reply(
        &p.deliver(&bn(&id, "12345"), message.as_bytes()).await,
        451,
        "4.3.0",
    );
    bounce_accepted(&p, &id, &message).await;
    let b = fake.bounce(&bid).unwrap();
    assert_eq!((b.hard_bounce_count, b.bounce_messages.len()), (2, 1));

    // POST of a new record.
    let fake = FakeApi::start().await;
    let id = fake.add_subscription("myService", SUBSCRIBER, "12345");
    fake.add_fault(FaultRule::on(Method::POST, "/api/bounces", Fault::LoseAnswer).times(1));
    let p = processor(&fake, "").await;
    assert_reply(
        &p.deliver(&bn(&id, "12345"), message.as_bytes()).await,
        451,
        "4.3.0",
    );
    bounce_accepted(&p, &id, &message).await;
    let records = fake.bounces_of(SUBSCRIBER);
    assert_eq!(records.len(), 1);
    assert_eq!(
        (
            records[0].hard_bounce_count,
            records[0].bounce_messages.len()
        ),
        (1, 1)
    );
}

#[tokio::test]
async fn bn_threshold_unsubscribe_failing_is_finished_by_the_retry() {
    let fake = FakeApi::start().await;
    let id = fake.add_subscription("myService", SUBSCRIBER, "12345");
    let bid = fake.add_bounce(SUBSCRIBER, 1);
    fake.add_fault(FaultRule::on(Method::GET, "/unsubscribe", Fault::Status(503)).times(1));
    let p = processor(&fake, "[bounce]\nunsub_threshold = 1\n").await;
    let message = dsn();

    assert_reply(
        &p.deliver(&bn(&id, "12345"), message.as_bytes()).await,
        451,
        "4.3.0",
    );
    let b = fake.bounce(&bid).unwrap();
    assert_eq!((b.hard_bounce_count, b.state.as_str()), (2, "active"));
    assert_eq!(fake.subscription(&id).unwrap().state, "confirmed");

    bounce_accepted(&p, &id, &message).await;
    let b = fake.bounce(&bid).unwrap();
    assert_eq!(
        (
            b.hard_bounce_count,
            b.bounce_messages.len(),
            b.state.as_str()
        ),
        (2, 1, "deleted")
    );
    assert_eq!(fake.subscription(&id).unwrap().times_unsubscribed, 1);
}

#[tokio::test]
async fn bn_record_retirement_failing_is_finished_by_the_retry() {
    let fake = FakeApi::start().await;
    let id = fake.add_subscription("myService", SUBSCRIBER, "12345");
    // Threshold 0: the first counted bounce creates the record (POST) and unsubscribes;
    // the only PATCH is the retirement, which fails once.
    fake.add_fault(FaultRule::on(Method::PATCH, "/api/bounces", Fault::Status(503)).times(1));
    let p = processor(&fake, "[bounce]\nunsub_threshold = 0\n").await;
    let message = dsn();

    assert_reply(
        &p.deliver(&bn(&id, "12345"), message.as_bytes()).await,
        451,
        "4.3.0",
    );
    assert_eq!(fake.subscription(&id).unwrap().state, "deleted");
    assert_eq!(fake.only_bounce_of(SUBSCRIBER).state, "active");

    bounce_accepted(&p, &id, &message).await;
    let records = fake.bounces_of(SUBSCRIBER);
    assert_eq!(records.len(), 1);
    assert_eq!(
        (records[0].hard_bounce_count, records[0].state.as_str()),
        (1, "deleted")
    );
    assert_eq!(fake.subscription(&id).unwrap().times_unsubscribed, 1);

    // A different bounce for the now unsubscribed subscriber is simply dropped.
    let other = dsn_with_id("<later@mta>");
    bounce_accepted(&p, &id, &other).await;
    assert_eq!(fake.only_bounce_of(SUBSCRIBER).bounce_messages.len(), 1);
}

#[tokio::test]
async fn bn_threshold_unsubscribe_refused_by_the_api_still_retires_the_record() {
    // The API refuses the unsubscribe (403: the subscription is no longer confirmed, for
    // one): there is nothing left to unsubscribe, the record is retired all the same.
    for refusal in [Fault::Status(403), Fault::Status(404)] {
        let fake = FakeApi::start().await;
        let id = fake.add_subscription("myService", SUBSCRIBER, "12345");
        let bid = fake.add_bounce(SUBSCRIBER, 1);
        fake.add_fault(FaultRule::on(Method::GET, "/unsubscribe", refusal.clone()));
        let p = processor(&fake, "[bounce]\nunsub_threshold = 1\n").await;

        let reply = p.deliver(&bn(&id, "12345"), dsn().as_bytes()).await;

        // Every accepted bounce gets the same reply (no code oracle); the record says more.
        assert_reply(&reply, 250, "2.0.0");
        let b = fake.only_bounce_of(SUBSCRIBER);
        assert_eq!(b.id, bid);
        assert_eq!(
            (
                b.hard_bounce_count,
                b.bounce_messages.len(),
                b.state.as_str()
            ),
            (2, 1, "deleted"),
            "{refusal:?}"
        );
        let unsubscribes = fake
            .requests()
            .iter()
            .filter(|r| r.path().ends_with("/unsubscribe"))
            .count();
        assert_eq!(unsubscribes, 1, "{refusal:?}: asked once, not retried");
        assert_eq!(fake.subscription(&id).unwrap().times_unsubscribed, 0);
    }
}

#[tokio::test]
async fn a_write_applied_then_its_connection_dropped_gets_451_and_the_retry_applies_once() {
    // The unsubscribe.
    let fake = FakeApi::start().await;
    let id = fake.add_subscription("myService", SUBSCRIBER, "12345");
    fake.add_fault(FaultRule::on(Method::GET, "/unsubscribe", Fault::ApplyThenDrop).times(1));
    let p = processor(&fake, "").await;
    let envelope = un(&id, "12345", SUBSCRIBER);
    assert_reply(&p.deliver(&envelope, b"x").await, 451, "4.3.0");
    assert_eq!(fake.subscription(&id).unwrap().state, "deleted");
    assert_reply(&p.deliver(&envelope, b"x").await, 250, "2.0.0");
    assert_eq!(fake.subscription(&id).unwrap().times_unsubscribed, 1);

    // The bounce record: created (POST) and updated (PATCH), each on a connection already
    // used for the look-ups before it, so it must not be sent again on a new one.
    for method in [Method::POST, Method::PATCH] {
        let fake = FakeApi::start().await;
        let id = fake.add_subscription("myService", SUBSCRIBER, "12345");
        if method == Method::PATCH {
            fake.add_bounce(SUBSCRIBER, 1);
        }
        fake.add_fault(
            FaultRule::on(method.clone(), "/api/bounces", Fault::ApplyThenDrop).times(1),
        );
        let p = processor(&fake, "").await;
        let message = dsn();
        assert_reply(
            &p.deliver(&bn(&id, "12345"), message.as_bytes()).await,
            451,
            "4.3.0",
        );
        let writes = || {
            fake.requests()
                .iter()
                .filter(|r| r.method == method.as_str())
                .count()
        };
        assert_eq!(writes(), 1, "{method}: sent once");
        let applied = fake.only_bounce_of(SUBSCRIBER);
        assert_eq!(applied.bounce_messages.len(), 1, "{method}: applied");

        bounce_accepted(&p, &id, &message).await;
        let b = fake.only_bounce_of(SUBSCRIBER);
        let count = if method == Method::PATCH { 2 } else { 1 };
        assert_eq!(
            (b.hard_bounce_count, b.bounce_messages.len()),
            (count, 1),
            "{method}: applied once"
        );
        assert_eq!(
            writes(),
            1,
            "{method}: the retry recognised the applied write"
        );
    }
}

/// A client that retries on 4xx like an MTA, against an API failing a seeded share of its
/// calls, before or after applying them: every effect ends up applied exactly once.
async fn retrying_client_applies_everything_once(fault: Fault) {
    let fake = FakeApi::start().await;
    fake.seed(0x5EED);
    let p = processor(&fake, "[bounce]\nunsub_threshold = 1000\n").await;
    let mut jobs = Vec::new();
    for n in 0..20 {
        let addr = format!("user{n}@foo.com");
        let un_id = fake.add_subscription("unService", &addr, &format!("{n:05}"));
        jobs.push((un(&un_id, &format!("{n:05}"), &addr), String::from("x")));
        let bn_id = fake.add_subscription("bnService", &format!("b{addr}"), "777");
        for k in 0..(n % 3 + 1) {
            let m = Dsn {
                final_recipient: &format!("b{addr}"),
                ..Dsn::default()
            }
            .build()
            .replace("w7TItYs41", &format!("m{n}k{k}"));
            jobs.push((bn(&bn_id, "777"), m));
        }
    }
    fake.fail_all(fault);
    for (envelope, message) in &jobs {
        let mut attempts = 0;
        loop {
            attempts += 1;
            let reply = p.deliver(envelope, message.as_bytes()).await;
            if reply.code == 250 {
                break;
            }
            assert_reply(&reply, 451, "4.3.0");
            assert!(attempts < 100, "never delivered: {envelope:?}");
        }
    }
    for s in fake.subscriptions() {
        if s.service_name == "unService" {
            assert_eq!(
                (s.state.as_str(), s.times_unsubscribed),
                ("deleted", 1),
                "{s:?}"
            );
        } else {
            assert_eq!(s.state, "confirmed", "{s:?}");
        }
    }
    for n in 0..20u64 {
        let records = fake.bounces_of(&format!("buser{n}@foo.com"));
        assert_eq!(records.len(), 1, "user {n}: {records:?}");
        assert_eq!(records[0].hard_bounce_count, n % 3 + 1, "user {n}");
        assert_eq!(
            records[0].bounce_messages.len() as u64,
            n % 3 + 1,
            "user {n}"
        );
    }
}

#[tokio::test]
async fn random_failures_before_the_effect_leave_every_effect_applied_once() {
    retrying_client_applies_everything_once(Fault::RandomFail { percent: 30 }).await;
}

#[tokio::test]
async fn random_answers_lost_after_the_effect_leave_every_effect_applied_once() {
    retrying_client_applies_everything_once(Fault::RandomLoseAnswer { percent: 30 }).await;
}

// ---------------------------------------------------------------------------------------
// Authentication and crafted input
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn access_token_is_sent_on_every_call() {
    let fake = FakeApi::start().await;
    let id = fake.add_subscription("myService", SUBSCRIBER, "12345");
    fake.require_token(Some("Bearer s3cret-token"));
    let p = processor(&fake, "[api]\naccess_token = 'Bearer s3cret-token'\n").await;

    assert_reply(
        &p.deliver(&bn(&id, "12345"), dsn().as_bytes()).await,
        250,
        "2.0.0",
    );
    assert_reply(
        &p.deliver(&un(&id, "12345", SUBSCRIBER), b"x").await,
        250,
        "2.0.0",
    );

    let requests = fake.requests();
    assert!(requests.len() >= 4);
    for r in &requests {
        assert_eq!(
            r.header("authorization"),
            Some("Bearer s3cret-token"),
            "{}",
            r.line()
        );
    }
    assert_eq!(fake.only_bounce_of(SUBSCRIBER).hard_bounce_count, 1);
    assert_eq!(fake.subscription(&id).unwrap().state, "deleted");
}

#[tokio::test]
async fn a_wrong_access_token_gives_451_not_a_refusal() {
    let fake = FakeApi::start().await;
    let id = fake.add_subscription("myService", SUBSCRIBER, "12345");
    fake.require_token(Some("Bearer right"));
    let p = processor(&fake, "[api]\naccess_token = 'Bearer wrong'\n").await;

    assert_reply(
        &p.deliver(&un(&id, "12345", SUBSCRIBER), b"x").await,
        451,
        "4.3.0",
    );
    assert_reply(
        &p.deliver(&bn(&id, "12345"), dsn().as_bytes()).await,
        451,
        "4.3.0",
    );
    assert_eq!(fake.subscription(&id).unwrap().state, "confirmed");
    assert!(fake.bounces().is_empty());
}

#[tokio::test]
async fn client_certificate_authenticates_to_a_mutual_tls_api() {
    let (fake, files) = FakeApi::start_mtls().await;
    let id = fake.add_subscription("myService", SUBSCRIBER, "12345");
    let p = processor(&fake, &files.api_section()).await;

    assert_reply(
        &p.deliver(&bn(&id, "12345"), dsn().as_bytes()).await,
        250,
        "2.0.0",
    );
    assert_reply(
        &p.deliver(&un(&id, "12345", SUBSCRIBER), b"x").await,
        250,
        "2.0.0",
    );
    assert_eq!(fake.only_bounce_of(SUBSCRIBER).hard_bounce_count, 1);
    assert_eq!(fake.subscription(&id).unwrap().state, "deleted");

    // Trusting the CA without presenting a certificate: the handshake is refused, 451.
    let other = fake.add_subscription("myService", "baz@foo.com", "12345");
    let requests_before = fake.requests().len();
    let without_cert = processor(&fake, &format!("[api]\nca_bundle = '{}'\n", files.ca)).await;
    assert_reply(
        &without_cert
            .deliver(&un(&other, "12345", "baz@foo.com"), b"x")
            .await,
        451,
        "4.3.0",
    );
    assert_eq!(fake.subscription(&other).unwrap().state, "confirmed");
    assert_eq!(fake.requests().len(), requests_before);
}

#[tokio::test]
async fn api_calls_are_counted_by_endpoint_and_status() {
    let fake = FakeApi::start().await;
    let id = fake.add_subscription("myService", SUBSCRIBER, "12345");
    let settings = fake.settings("[bounce]\nunsub_threshold = 0\n");
    let metrics = std::sync::Arc::new(notify_inbound::metrics::Metrics::new());
    let client = notify_inbound::api::ApiClient::new(&settings)
        .unwrap()
        .with_metrics(metrics.clone());
    let p = Processor::with_client(&settings, client).unwrap();

    assert_reply(
        &p.deliver(&bn(&id, "12345"), dsn().as_bytes()).await,
        250,
        "2.0.0",
    );
    assert_reply(
        &p.deliver(&un("404", "1", SUBSCRIBER), b"x").await,
        550,
        "5.1.1",
    );

    let text = metrics.encode();
    let count = |endpoint: &str, status: &str| {
        let prefix = format!(
            "notify_inbound_api_requests_total{{endpoint=\"{endpoint}\",status=\"{status}\"}} "
        );
        text.lines()
            .find_map(|l| l.strip_prefix(prefix.as_str()))
            .unwrap_or_else(|| panic!("no {prefix} in\n{text}"))
            .trim()
            .to_string()
    };
    assert_eq!(count("find_subscription", "2xx"), "1");
    assert_eq!(count("find_bounce", "2xx"), "1");
    assert_eq!(count("create_bounce", "2xx"), "1");
    assert_eq!(count("unsubscribe_all", "2xx"), "1");
    assert_eq!(count("deactivate_bounce", "2xx"), "1");
    assert_eq!(count("unsubscribe", "4xx"), "1");
    assert_eq!(count("update_bounce", "2xx"), "0");
}

#[tokio::test]
async fn crafted_ids_codes_and_senders_never_reach_another_path() {
    let fake = FakeApi::start().await;
    let victim = fake.add_subscription("myService", SUBSCRIBER, "12345");
    let p = processor(&fake, "").await;
    let crafted = [
        ("a/../b", "12345", SUBSCRIBER),
        ("1/unsubscribe?x=", "12345", SUBSCRIBER),
        ("1?unsubscriptionCode=12345", "1", SUBSCRIBER),
        ("1#frag", "12345", SUBSCRIBER),
        ("%2E%2E", "12345", SUBSCRIBER),
        ("1%2F..", "12345", SUBSCRIBER),
        ("1\u{0}", "12345", SUBSCRIBER),
        ("1 2", "12345", SUBSCRIBER),
        ("\"1\"", "12345", SUBSCRIBER),
        ("é", "12345", SUBSCRIBER),
        (&victim, "1&unsubscriptionCode=12345", SUBSCRIBER),
        (&victim, "x#", "bar@foo.com&unsubscriptionCode=12345"),
    ];
    for (id, code, from) in crafted {
        let reply = p.deliver(&un(id, code, from), b"x").await;
        assert!(reply.code >= 500, "{id:?} {code:?} {from:?}: {reply}");
    }
    // Dot segments would be resolved by the URL parser: no request is made at all.
    for id in ["..", "."] {
        let reply = p.deliver(&un(id, "12345", SUBSCRIBER), b"x").await;
        assert_reply(&reply, 550, "5.1.1");
    }
    assert_eq!(fake.subscription(&victim).unwrap().state, "confirmed");

    for r in fake.requests() {
        let path = r.path();
        if let Some(rest) = path.strip_prefix("/api/subscriptions/") {
            let segment = rest
                .strip_suffix("/unsubscribe")
                .unwrap_or_else(|| panic!("{}", r.line()));
            assert!(
                !segment.contains('/') && !segment.is_empty(),
                "{}",
                r.line()
            );
            assert!(segment != ".." && segment != ".", "{}", r.line());
            let query = r.uri.split_once('?').map(|(_, q)| q).unwrap_or("");
            let keys: Vec<&str> = query
                .split('&')
                .map(|kv| kv.split('=').next().unwrap_or(""))
                .collect();
            assert_eq!(
                keys,
                ["unsubscriptionCode", "userChannelId"],
                "{}",
                r.line()
            );
            assert!(!r.uri.contains('#'), "{}", r.line());
        } else {
            // Only the retry-recognition lookup, whose id travels inside the JSON filter.
            assert_eq!(path, "/api/subscriptions", "{}", r.line());
        }
    }
}

/// The same flows behind the SMTP server, driven by a real SMTP client (lettre): what the
/// SMTP layer adds to the cases above (the reply on the wire, refusals at RCPT, the message
/// stored as it arrived after DATA, a fake that is down).
mod over_smtp {
    use std::time::Duration;

    use super::common::dsn::Dsn;
    use super::common::fake_api::{FakeApi, Fault};
    use super::common::in_process::{self, start_server, status};
    use lettre::transport::smtp::Error as SmtpError;
    use lettre::transport::smtp::response::Response;
    use notify_inbound::server::Server;

    const SUBSCRIBER: &str = "bar@foo.com";
    const DOMAIN: &str = "invalid.local";

    /// The server on a random loopback port with the flows pointed at `fake`; `sections`
    /// are added to its settings.
    async fn server(fake: &FakeApi, sections: &str) -> Server {
        start_server(fake, DOMAIN, "", sections).await
    }

    async fn send(
        server: &Server,
        from: Option<&str>,
        to: &str,
        message: &str,
    ) -> Result<Response, SmtpError> {
        in_process::send(server, from, &[to], message).await
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
}
