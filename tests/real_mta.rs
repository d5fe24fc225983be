//! notify-inbound behind real mail servers: Postfix and Exim, each in its own temporary
//! instance (see tests/mtas), on the shipped settings.
//!
//! - As sending MTAs: they relay `un` and `bn` mail to notify-inbound over STARTTLS through
//!   their real queues; when the API fails (before the effect, or after it with the answer
//!   lost) they defer on our `451`, and a queue flush applies the effect exactly once; a message
//!   to three `un` recipients is applied for all three in one delivery.
//! - As bounce generators: a message with envelope sender `bn-{id}-{code}@` our domain fails,
//!   and the DSN the MTA writes is delivered to notify-inbound. User unknown (local, a remote
//!   `550 5.1.1`) and Exim's "Unrouteable address" count; a full mailbox given up on and a
//!   delay warning do not.
//!
//! Every test asserts the effect at the fake NotifyBC API and prints the reply the MTA logged.
//! The MTAs are installed by scripts/ensure-mtas.sh (called by scripts/run-tests.sh).

mod common;
mod mta;
mod mtas;

use std::sync::Arc;
use std::time::Duration;

use axum::http::Method;
use common::dsn::Dsn;
use common::fake_api::{FakeApi, Fault, FaultRule, SettingsFor};
use mtas::{Delivery, FakeMx, Fate, Kind, LOCAL_DOMAIN, Mta, NOTIFY_DOMAIN, REMOTE_DOMAIN, Setup};
use notify_inbound::config::TlsMode;
use notify_inbound::flows::Processor;
use notify_inbound::metrics::Metrics;
use notify_inbound::server::Server;

/// Bound on any one wait for an MTA's delivery.
const WAIT: Duration = Duration::from_secs(60);

/// notify-inbound on a random loopback port, shipped defaults but for the domain and address.
async fn server(fake: &FakeApi) -> Server {
    let settings = fake.settings(&format!(
        "[inbound_smtp_server]\ndomain = '{NOTIFY_DOMAIN}'\nlistening_ip = '127.0.0.1'\n\
         listening_smtp_port = 0\n[operations]\nlisten = ''\n"
    ));
    let processor = Arc::new(Processor::new(&settings).expect("processor"));
    Server::start(Arc::new(settings), processor, Arc::new(Metrics::new()))
        .await
        .expect("server")
}

/// The fake API, notify-inbound, a fake MX and an MTA of `kind` set up by `adjust`.
struct Rig {
    fake: FakeApi,
    server: Server,
    mx: FakeMx,
    mta: Mta,
}

impl Rig {
    async fn start(kind: Kind, adjust: impl FnOnce(&mut Setup)) -> Rig {
        let fake = FakeApi::start().await;
        let server = server(&fake).await;
        let mx = FakeMx::start().await;
        let mut setup = Setup::new(server.addr(TlsMode::Starttls).unwrap().port(), mx.port());
        adjust(&mut setup);
        let mta = Mta::start(kind, setup).await;
        Rig {
            fake,
            server,
            mx,
            mta,
        }
    }

    fn notify_port(&self) -> u16 {
        self.server.addr(TlsMode::Starttls).unwrap().port()
    }

    /// Waits for the `n`th logged result for `rcpt`, prints it, and returns it.
    async fn nth_result(&self, rcpt: &str, n: usize) -> Delivery {
        let results = self.mta.wait_results(rcpt, n, WAIT).await;
        let d = results[n - 1].clone();
        println!("{} logged for {rcpt}: {}", self.mta.kind, d.line);
        d
    }

    /// Waits for a delivery of a DSN to `bn_addr` and asserts notify-inbound took it with 250
    /// over TLS.
    async fn dsn_delivered(&self, bn_addr: &str) -> Delivery {
        let d = self.nth_result(bn_addr, 1).await;
        assert_eq!(d.fate, Fate::Delivered, "{}", d.line);
        assert!(d.line.contains("250"), "not our 250: {}", d.line);
        assert!(
            self.mta.used_tls_to(self.notify_port(), &d),
            "{}: no TLS to notify-inbound:\n{}",
            self.mta.kind,
            self.mta.log()
        );
        d
    }
}

fn un_message(from: &str, to: &str, id: &str) -> String {
    format!(
        "From: {from}\r\nTo: {to}\r\nSubject: unsubscribe\r\nMessage-ID: <{id}@sender.example>\r\n\
         Date: Mon, 07 Dec 2026 02:00:00 +0000\r\n\r\nPlease unsubscribe me.\r\n"
    )
}

/// A notification as NotifyBC would send it, to be bounced by the MTA.
fn notification(to: &str, id: &str) -> String {
    format!(
        "From: Notify <notify@{NOTIFY_DOMAIN}>\r\nTo: {to}\r\nSubject: Your notification\r\n\
         Message-ID: <{id}@notify.example>\r\nDate: Mon, 07 Dec 2026 02:00:00 +0000\r\n\
         MIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n\
         Hello subscriber.\r\n"
    )
}

fn bn_addr(id: &str, code: &str) -> String {
    format!("bn-{id}-{code}@{NOTIFY_DOMAIN}")
}

fn un_addr(id: &str, code: &str) -> String {
    format!("un-{id}-{code}@{NOTIFY_DOMAIN}")
}

/// The summed `hardBounceCount` and the number of stored messages over an address's records.
fn bounce_state(fake: &FakeApi, addr: &str) -> (u64, usize) {
    fake.bounces_of(addr).iter().fold((0, 0), |(c, m), b| {
        (c + b.hard_bounce_count, m + b.bounce_messages.len())
    })
}

// ---- sending MTAs ----

async fn un_and_bn_over_starttls(kind: Kind) {
    let rig = Rig::start(kind, |_| {}).await;
    let alice = "alice@sender.example";
    let un_id = rig.fake.add_subscription("news", alice, "11111");
    let bob = "bob@remote.example";
    let bn_id = rig.fake.add_subscription("news", bob, "22222");

    let un = un_addr(&un_id, "11111");
    rig.mta
        .submit(alice, &[&un], &un_message(alice, &un, "u1"))
        .await
        .unwrap();
    let bn = bn_addr(&bn_id, "22222");
    let dsn = Dsn {
        final_recipient: bob,
        message_id: Some("<dsn-1@mx.remote.example>"),
        ..Dsn::default()
    }
    .build();
    rig.mta.submit("", &[&bn], &dsn).await.unwrap();

    rig.dsn_delivered(&un).await;
    rig.dsn_delivered(&bn).await;
    let s = rig.fake.subscription(&un_id).unwrap();
    assert_eq!((s.state.as_str(), s.times_unsubscribed), ("deleted", 1));
    let records = rig.fake.bounces_of(bob);
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(records[0].hard_bounce_count, 1, "{records:?}");
    assert_eq!(records[0].bounce_messages.len(), 1);
    println!(
        "{kind}: effect: subscription {un_id} deleted; bounce record of {bob} hardBounceCount 1"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postfix_relays_un_and_bn_over_starttls() {
    un_and_bn_over_starttls(Kind::Postfix).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exim_relays_un_and_bn_over_starttls() {
    un_and_bn_over_starttls(Kind::Exim).await;
}

/// One `un` and one `bn` through the MTA while the API fails once on each; the MTA must log our
/// 451 and keep the message; a flush then delivers it and the effect is there exactly once.
/// `fault` is applied before the effect (`Status(503)`) or after it (`LoseAnswer`).
async fn deferred_then_flushed(rig: &Rig, fault: Fault, tag: &str) {
    let kind = rig.mta.kind;
    let who = format!("carol-{tag}@sender.example");
    let un_id = rig.fake.add_subscription("news", &who, "33333");
    let dave = format!("dave-{tag}@remote.example");
    let bn_id = rig.fake.add_subscription("news", &dave, "44444");
    rig.fake.add_fault(
        FaultRule::on(
            Method::GET,
            &format!("/subscriptions/{un_id}/unsubscribe"),
            fault.clone(),
        )
        .times(1),
    );
    rig.fake
        .add_fault(FaultRule::on(Method::POST, "/api/bounces", fault.clone()).times(1));
    let lost = matches!(fault, Fault::LoseAnswer);

    let un = un_addr(&un_id, "33333");
    rig.mta
        .submit(&who, &[&un], &un_message(&who, &un, tag))
        .await
        .unwrap();
    let first = rig.nth_result(&un, 1).await;
    assert_eq!(first.fate, Fate::Deferred, "{}", first.line);
    assert!(first.line.contains("451"), "not our 451: {}", first.line);
    let s = rig.fake.subscription(&un_id).unwrap();
    if lost {
        assert_eq!((s.state.as_str(), s.times_unsubscribed), ("deleted", 1));
    } else {
        assert_eq!((s.state.as_str(), s.times_unsubscribed), ("confirmed", 0));
    }

    let bn = bn_addr(&bn_id, "44444");
    let mid = format!("<dsn-{tag}@mx.remote.example>");
    let dsn = Dsn {
        final_recipient: &dave,
        message_id: Some(&mid),
        ..Dsn::default()
    }
    .build();
    rig.mta.submit("", &[&bn], &dsn).await.unwrap();
    let first = rig.nth_result(&bn, 1).await;
    assert_eq!(first.fate, Fate::Deferred, "{}", first.line);
    assert!(first.line.contains("451"), "not our 451: {}", first.line);
    assert_eq!(
        bounce_state(&rig.fake, &dave),
        if lost { (1, 1) } else { (0, 0) },
        "{:?}",
        rig.fake.bounces_of(&dave)
    );

    rig.mta.flush().await;
    for rcpt in [&un, &bn] {
        let second = rig.nth_result(rcpt, 2).await;
        assert_eq!(second.fate, Fate::Delivered, "{}", second.line);
        assert!(second.line.contains("250"), "not our 250: {}", second.line);
    }
    let s = rig.fake.subscription(&un_id).unwrap();
    assert_eq!((s.state.as_str(), s.times_unsubscribed), ("deleted", 1));
    let records = rig.fake.bounces_of(&dave);
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(
        (
            records[0].hard_bounce_count,
            records[0].bounce_messages.len()
        ),
        (1, 1),
        "{records:?}"
    );
    println!(
        "{kind} ({tag}): effect after the flush: subscription {un_id} deleted once; \
         bounce record of {dave} hardBounceCount 1 with 1 message"
    );
    rig.fake.clear_faults();
}

async fn api_failures_deferred_then_flushed(kind: Kind) {
    let rig = Rig::start(kind, |_| {}).await;
    deferred_then_flushed(&rig, Fault::Status(503), "before-effect").await;
    deferred_then_flushed(&rig, Fault::LoseAnswer, "answer-lost").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postfix_defers_on_our_451_and_a_flush_applies_once() {
    api_failures_deferred_then_flushed(Kind::Postfix).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exim_defers_on_our_451_and_a_flush_applies_once() {
    api_failures_deferred_then_flushed(Kind::Exim).await;
}

async fn three_un_recipients_in_one_delivery(kind: Kind) {
    let rig = Rig::start(kind, |_| {}).await;
    let erin = "erin@sender.example";
    let ids: Vec<String> = ["a", "b", "c"]
        .iter()
        .map(|svc| rig.fake.add_subscription(svc, erin, "55555"))
        .collect();
    let rcpts: Vec<String> = ids.iter().map(|id| un_addr(id, "55555")).collect();
    let refs: Vec<&str> = rcpts.iter().map(String::as_str).collect();
    rig.mta
        .submit(erin, &refs, &un_message(erin, &rcpts[0], "three"))
        .await
        .unwrap();
    for rcpt in &rcpts {
        rig.dsn_delivered(rcpt).await;
    }
    // No retry happens on this set-up unless the test flushes: every recipient delivered
    // and none deferred means one delivery took all three.
    for rcpt in &rcpts {
        let results = rig.mta.results(rcpt);
        assert!(
            results.iter().all(|d| d.fate == Fate::Delivered),
            "{kind}: {rcpt} was not taken in the one delivery: {results:?}"
        );
    }
    for id in &ids {
        let s = rig.fake.subscription(id).unwrap();
        assert_eq!(
            (s.state.as_str(), s.times_unsubscribed),
            ("deleted", 1),
            "{id}"
        );
    }
    println!("{kind}: effect: subscriptions {ids:?} all deleted from one delivery");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postfix_three_un_recipients_applied_in_one_delivery() {
    three_un_recipients_in_one_delivery(Kind::Postfix).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exim_three_un_recipients_applied_in_one_delivery() {
    three_un_recipients_in_one_delivery(Kind::Exim).await;
}

// ---- bounce generators ----

/// Sends a notification to `subscriber` with envelope sender `bn-{id}-{code}@` our domain,
/// for a new confirmed subscription of `subscriber`; returns the subscription id and the bn
/// address the MTA's DSN goes to.
async fn bounce_from(rig: &Rig, subscriber: &str, code: &str) -> (String, String) {
    let id = rig.fake.add_subscription("news", subscriber, code);
    let bn = bn_addr(&id, code);
    rig.mta
        .submit(&bn, &[subscriber], &notification(subscriber, code))
        .await
        .unwrap();
    (id, bn)
}

/// The failed delivery the MTA logged for `subscriber`, printed.
fn print_failure(rig: &Rig, subscriber: &str) {
    for d in rig.mta.results(subscriber) {
        println!("{} logged for {subscriber}: {}", rig.mta.kind, d.line);
    }
}

async fn assert_counted(rig: &Rig, subscriber: &str, id: &str) {
    let records = rig.fake.bounces_of(subscriber);
    assert_eq!(
        records.len(),
        1,
        "{}: bounce for {subscriber}: {records:?}",
        rig.mta.kind
    );
    assert_eq!(
        (
            records[0].hard_bounce_count,
            records[0].bounce_messages.len()
        ),
        (1, 1),
        "{}: the {subscriber} bounce did not count: {records:?}",
        rig.mta.kind
    );
    assert_eq!(rig.fake.subscription(id).unwrap().state, "confirmed");
    println!(
        "{}: effect: bounce record of {subscriber} hardBounceCount 1",
        rig.mta.kind
    );
}

async fn hard_bounces_count(kind: Kind) {
    let rig = Rig::start(kind, |_| {}).await;
    let mut cases = vec![
        // A local address with no such user.
        (format!("nosuchuser@{LOCAL_DOMAIN}"), "60001"),
        // The remote MX answers 550 5.1.1.
        (format!("nouser@{REMOTE_DOMAIN}"), "60002"),
    ];
    if kind == Kind::Exim {
        // A domain nothing routes: Exim's "Unrouteable address".
        cases.push(("someone@unrouteable.example".to_string(), "60003"));
    }
    let mut sent = Vec::new();
    for (subscriber, code) in &cases {
        sent.push(bounce_from(&rig, subscriber, code).await);
    }
    for ((subscriber, _), (id, bn)) in cases.iter().zip(&sent) {
        rig.dsn_delivered(bn).await;
        print_failure(&rig, subscriber);
        assert_counted(&rig, subscriber, id).await;
    }
    if kind == Kind::Exim {
        assert!(rig.mta.log().contains("Unrouteable address"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postfix_user_unknown_bounces_count() {
    hard_bounces_count(Kind::Postfix).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exim_user_unknown_and_unrouteable_bounces_count() {
    hard_bounces_count(Kind::Exim).await;
}

async fn mailbox_full_given_up_not_counted(kind: Kind) {
    let rig = Rig::start(kind, |s| s.give_up_fast = true).await;
    let subscriber = format!("full@{REMOTE_DOMAIN}");
    let (id, bn) = bounce_from(&rig, &subscriber, "70001").await;
    rig.dsn_delivered(&bn).await;
    print_failure(&rig, &subscriber);
    let given_up = match kind {
        Kind::Postfix => "status=expired, returned to sender",
        Kind::Exim => "retry timeout exceeded",
    };
    let line = rig.mta.wait_line(&[given_up], WAIT).await;
    println!("{kind} logged: {line}");
    // The DSN reached us, and the bounce is recorded but does not count.
    let records = rig.fake.bounces_of(&subscriber);
    assert_eq!(
        bounce_state(&rig.fake, &subscriber),
        (0, 1),
        "{kind}: a full mailbox given up on counted (or was not recorded): {records:?}"
    );
    assert_eq!(rig.fake.subscription(&id).unwrap().state, "confirmed");
    println!(
        "{kind}: effect: bounce record of {subscriber} hardBounceCount 0 (recorded, not counted)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postfix_mailbox_full_given_up_does_not_count() {
    mailbox_full_given_up_not_counted(Kind::Postfix).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exim_mailbox_full_given_up_does_not_count() {
    mailbox_full_given_up_not_counted(Kind::Exim).await;
}

async fn delay_warning_not_counted(kind: Kind) {
    let rig = Rig::start(kind, |s| s.warn_delays = true).await;
    let subscriber = format!("full-later@{REMOTE_DOMAIN}");
    let (id, bn) = bounce_from(&rig, &subscriber, "80001").await;
    rig.dsn_delivered(&bn).await;
    print_failure(&rig, &subscriber);
    let warned = match kind {
        Kind::Postfix => "sender delay notification",
        Kind::Exim => "<= <> R=",
    };
    let line = rig.mta.wait_line(&[warned], WAIT).await;
    println!("{kind} logged: {line}");
    assert!(
        rig.mta
            .results(&subscriber)
            .iter()
            .all(|d| d.fate == Fate::Deferred),
        "{kind}: the message was not merely delayed:\n{}",
        rig.mta.log()
    );
    assert_eq!(
        bounce_state(&rig.fake, &subscriber).0,
        0,
        "{kind}: a delay warning counted: {:?}",
        rig.fake.bounces_of(&subscriber)
    );
    assert_eq!(rig.fake.subscription(&id).unwrap().state, "confirmed");
    assert!(rig.mx.accepted().is_empty());
    println!(
        "{kind}: effect: no hard bounce counted for {subscriber}; subscription {id} confirmed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postfix_delay_warning_does_not_count() {
    delay_warning_not_counted(Kind::Postfix).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exim_delay_warning_does_not_count() {
    delay_warning_not_counted(Kind::Exim).await;
}
