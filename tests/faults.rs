//! Faults behind us and in front of us, through the SMTP server and the real flows against
//! the fake NotifyBC API (docs/behaviour.md §3, §4):
//!
//! - with the API down, slower than the timeout, answering 5xx or 429, failing a random 30 %
//!   of its calls or losing 30 % of its answers after applying them, a client that retries
//!   on 4xx like an MTA delivers 1,000 `un` and `bn` messages and every effect is applied
//!   exactly once;
//! - a client that drops the connection mid-DATA or mid-TLS-handshake leaves no effect, and
//!   one that drops right after the final dot (so its 250 is lost) has the effect applied
//!   once and gets 250 on its retry, which applies nothing more.

mod common;
mod harness;
mod mta;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use common::dsn::Dsn;
use common::fake_api::{FakeApi, Fault, SettingsFor};
use mta::{Job, Outcome, Replies};
use notify_inbound::config::TlsMode;
use notify_inbound::flows::Processor;
use notify_inbound::metrics::Metrics;
use notify_inbound::server::Server;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::{Semaphore, mpsc};

const DOMAIN: &str = "invalid.local";

/// The server with the real flows pointed at `fake`: a plain listener offering STARTTLS and
/// an implicit-TLS one, both on random loopback ports.
async fn server(fake: &FakeApi, extra: &str) -> Server {
    let settings = fake.settings(&format!(
        "{extra}\n[inbound_smtp_server]\ndomain = '{DOMAIN}'\nlistening_ip = '127.0.0.1'\n\
         [[inbound_smtp_server.listeners]]\nip = '127.0.0.1'\nport = 0\ntls = 'starttls'\n\
         [[inbound_smtp_server.listeners]]\nip = '127.0.0.1'\nport = 0\ntls = 'implicit'\n\
         [inbound_smtp_server.limits]\nmax_connections_per_ip = 200\n\
         [operations]\nlisten = ''\n"
    ));
    let processor = Arc::new(Processor::new(&settings).expect("processor"));
    Server::start(Arc::new(settings), processor, Arc::new(Metrics::new()))
        .await
        .expect("server")
}

fn plain(server: &Server) -> SocketAddr {
    server.addr(TlsMode::Starttls).unwrap()
}

fn un_job(id: &str, code: &str, address: &str) -> Job {
    Job {
        from: address.to_string(),
        to: format!("un-{id}-{code}@{DOMAIN}"),
        message: format!(
            "From: {address}\r\nTo: un@{DOMAIN}\r\nSubject: unsubscribe\r\n\r\nunsubscribe me\r\n"
        ),
    }
}

/// A DSN for `address` with its own Message-ID; `hard` picks a 5.1.1 (counts) or a 4.2.2
/// (recorded, not counted).
fn bn_job(id: &str, code: &str, address: &str, message_id: &str, hard: bool) -> Job {
    let message = Dsn {
        message_id: Some(message_id),
        final_recipient: address,
        status: if hard { "5.1.1" } else { "4.2.2" },
        ..Dsn::default()
    }
    .build();
    Job {
        from: String::new(),
        to: format!("bn-{id}-{code}@{DOMAIN}"),
        message,
    }
}

/// Waits until the server has no connection left (the one a test dropped has been fully
/// processed).
async fn wait_idle(server: &Server) {
    for _ in 0..400 {
        if server.active_connections() == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!(
        "{} connections still open after 10 s",
        server.active_connections()
    );
}

// ---------------------------------------------------------------------------------------
// Faults behind us
// ---------------------------------------------------------------------------------------

/// One phase of the API's bad day.
struct Phase {
    name: &'static str,
    /// `None`: nothing listening at all.
    fault: Option<Fault>,
    /// Every first attempt during the phase must get 451 4.3.0 (else: some may pass).
    all_fail: bool,
}

const UN_SUBSCRIBERS: usize = 400;
const BN_ADDRESSES: usize = 150;
/// Bounces per address: the first three count, the last is a 4.x.x and does not.
const BOUNCES_PER_ADDRESS: usize = 4;
/// API timeout and the slow fault's delay: the slow calls land late, after we gave up.
const API_TIMEOUT_MS: u64 = 300;
const SLOW: Duration = Duration::from_millis(700);
/// Between attempts of one message. MTAs wait minutes; what matters is that it exceeds the
/// API's worst delay, so a late write has landed before the retry reads the state.
const BACKOFF: Duration = Duration::from_millis(1000);

/// 1,000 messages (400 `un`, 600 `bn`) in eight batches; while each batch makes its first
/// attempts the API suffers one fault (down, slow, 500, 503, 429, 30 % failing, 30 % of
/// answers lost after the effect, then healthy), and earlier batches' retries run through
/// later phases. Every message ends up delivered, and the API's state shows each effect
/// exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_messages_through_every_api_fault_apply_exactly_once() {
    let fake = Arc::new(FakeApi::start().await);
    fake.seed(0xFA17);
    let server = server(
        &fake,
        &format!(
            "[api]\ntimeout_ms = {API_TIMEOUT_MS}\nconnect_timeout_ms = 200\n\
             [bounce]\nunsub_threshold = 100000\n"
        ),
    )
    .await;
    let addr = plain(&server);

    let mut un_ids = Vec::new();
    let mut un_jobs = Vec::new();
    for n in 0..UN_SUBSCRIBERS {
        let address = format!("u{n}@foo.com");
        let code = format!("{n:05}");
        let id = fake.add_subscription("unService", &address, &code);
        un_jobs.push(un_job(&id, &code, &address));
        un_ids.push(id);
    }
    let mut bn_jobs = Vec::new();
    let mut expected_ids: Vec<(String, BTreeSet<String>)> = Vec::new();
    for n in 0..BN_ADDRESSES {
        let address = format!("b{n}@foo.com");
        let id = fake.add_subscription("bnService", &address, "777");
        let mut ids = BTreeSet::new();
        for k in 0..BOUNCES_PER_ADDRESS {
            let message_id = format!("<b{n}.k{k}@mta.example>");
            let hard = k + 1 < BOUNCES_PER_ADDRESS;
            bn_jobs.push(bn_job(&id, "777", &address, &message_id, hard));
            ids.insert(message_id);
        }
        expected_ids.push((address, ids));
    }
    // Interleave so every batch mixes both kinds and the bounces of one address spread
    // over several batches (and so over several faults).
    let mut jobs = Vec::new();
    let (mut u, mut b) = (un_jobs.into_iter(), bn_jobs.into_iter());
    loop {
        let next_un = u.next();
        let next_bn = [b.next(), b.next()];
        if next_un.is_none() && next_bn.iter().all(Option::is_none) {
            break;
        }
        jobs.extend(next_un);
        jobs.extend(next_bn.into_iter().flatten());
    }
    assert_eq!(jobs.len(), 1000);

    let phases = [
        Phase {
            name: "down",
            fault: None,
            all_fail: true,
        },
        Phase {
            name: "slower than the timeout",
            fault: Some(Fault::Slow(SLOW)),
            all_fail: true,
        },
        Phase {
            name: "500",
            fault: Some(Fault::Status(500)),
            all_fail: true,
        },
        Phase {
            name: "503",
            fault: Some(Fault::Status(503)),
            all_fail: true,
        },
        Phase {
            name: "429",
            fault: Some(Fault::Status(429)),
            all_fail: true,
        },
        Phase {
            name: "30 % of calls failing",
            fault: Some(Fault::RandomFail { percent: 30 }),
            all_fail: false,
        },
        Phase {
            name: "30 % of answers lost after the effect",
            fault: Some(Fault::RandomLoseAnswer { percent: 30 }),
            all_fail: false,
        },
        Phase {
            name: "healthy",
            fault: None,
            all_fail: false,
        },
    ];
    let batch = jobs.len() / phases.len();
    let sending = Arc::new(Semaphore::new(32));
    let mut tasks = Vec::new();
    let mut attempts_total = 0usize;
    for (p, phase) in phases.iter().enumerate() {
        match (&phase.fault, phase.all_fail) {
            (None, true) => fake.go_down().await,
            (Some(f), _) => fake.fail_all(f.clone()),
            (None, false) => {}
        }
        let (first_tx, mut first_rx) = mpsc::unbounded_channel::<Outcome>();
        for job in &jobs[p * batch..(p + 1) * batch] {
            let job = job.clone();
            let (sending, mut first_tx) = (sending.clone(), Some(first_tx.clone()));
            tasks.push(tokio::spawn(async move {
                let mut outcomes = Vec::new();
                loop {
                    let outcome = {
                        let _slot = sending.acquire().await.unwrap();
                        mta::attempt(addr, &job).await
                    };
                    if let Some(tx) = first_tx.take() {
                        let _ = tx.send(outcome.clone());
                    }
                    let done = outcome == Outcome::Delivered;
                    assert!(
                        done || outcome.is_retryable(),
                        "{job:?} refused: {outcome:?}"
                    );
                    outcomes.push(outcome);
                    if done {
                        return outcomes;
                    }
                    assert!(outcomes.len() < 60, "{job:?} never delivered: {outcomes:?}");
                    tokio::time::sleep(BACKOFF).await;
                }
            }));
        }
        drop(first_tx);
        let mut firsts = Vec::new();
        while let Some(o) = first_rx.recv().await {
            firsts.push(o);
        }
        assert_eq!(firsts.len(), batch, "a first attempt panicked");
        let temporary = firsts
            .iter()
            .filter(|o| matches!(o, Outcome::Temporary(r) if r.starts_with("451 4.3.0")))
            .count();
        let delivered = firsts.iter().filter(|o| **o == Outcome::Delivered).count();
        if phase.all_fail {
            assert_eq!(temporary, batch, "{}: {firsts:?}", phase.name);
        } else if phase.fault.is_some() {
            assert!(
                temporary > 0 && delivered > 0,
                "{}: {temporary} deferred, {delivered} delivered",
                phase.name
            );
            assert_eq!(temporary + delivered, batch, "{}: {firsts:?}", phase.name);
        } else {
            assert_eq!(delivered, batch, "{}: {firsts:?}", phase.name);
        }
        fake.clear_faults();
        fake.come_up().await;
    }
    for t in tasks {
        let outcomes = tokio::time::timeout(Duration::from_secs(120), t)
            .await
            .expect("every message delivered within 2 minutes")
            .expect("delivery task");
        attempts_total += outcomes.len();
    }
    assert!(
        attempts_total > 1000 + 5 * batch,
        "{attempts_total} attempts"
    );
    // Any write still sleeping in the fake lands now; nothing may change after it.
    tokio::time::sleep(SLOW + Duration::from_millis(200)).await;

    let subscriptions = fake.subscriptions();
    assert_eq!(subscriptions.len(), UN_SUBSCRIBERS + BN_ADDRESSES);
    for s in &subscriptions {
        if s.service_name == "unService" {
            assert_eq!(
                (s.state.as_str(), s.times_unsubscribed),
                ("deleted", 1),
                "unsubscribed exactly once: {s:?}"
            );
        } else {
            assert_eq!(
                (s.state.as_str(), s.times_unsubscribed),
                ("confirmed", 0),
                "{s:?}"
            );
        }
    }
    let records = fake.bounces();
    assert_eq!(records.len(), BN_ADDRESSES, "one bounce record per address");
    for (address, ids) in &expected_ids {
        let mine = fake.bounces_of(address);
        assert_eq!(mine.len(), 1, "{address}: {mine:?}");
        let record = &mine[0];
        let stored: Vec<String> = record
            .bounce_messages
            .iter()
            .map(|m| message_id_of(&m.message))
            .collect();
        let distinct: BTreeSet<String> = stored.iter().cloned().collect();
        assert_eq!(stored.len(), distinct.len(), "{address}: a message twice");
        assert_eq!(&distinct, ids, "{address}: a message lost");
        assert_eq!(
            (record.hard_bounce_count, record.state.as_str()),
            ((BOUNCES_PER_ADDRESS - 1) as u64, "active"),
            "{address}: counted once each"
        );
    }
}

fn message_id_of(message: &str) -> String {
    message
        .lines()
        .find_map(|l| l.strip_prefix("Message-Id: "))
        .unwrap_or_default()
        .trim()
        .to_string()
}

// ---------------------------------------------------------------------------------------
// Faults in front of us
// ---------------------------------------------------------------------------------------

/// Opens a transaction for `job` and stops after the 354, returning the stream.
async fn open_data(addr: SocketAddr, job: &Job) -> (TcpStream, Replies) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let mut r = Replies::new();
    assert_eq!(mta::code(&r.next(&mut s).await.unwrap()), 220);
    for (cmd, want) in [
        ("EHLO mta.example".to_string(), 250),
        (format!("MAIL FROM:<{}>", job.from), 250),
        (format!("RCPT TO:<{}>", job.to), 250),
        ("DATA".to_string(), 354),
    ] {
        s.write_all(format!("{cmd}\r\n").as_bytes()).await.unwrap();
        let reply = r.next(&mut s).await.unwrap();
        assert_eq!(mta::code(&reply), want, "{cmd}: {reply}");
    }
    (s, r)
}

/// How a client goes away.
#[derive(Debug, Clone, Copy)]
enum Leave {
    /// FIN: close the socket normally.
    Close,
    /// RST: SO_LINGER 0, as a crashed host or a middlebox would.
    Reset,
}

fn go_away(stream: TcpStream, how: Leave) {
    if let Leave::Reset = how {
        stream.set_zero_linger().unwrap();
    }
    std::mem::drop(stream);
}

#[tokio::test]
async fn dropping_mid_data_applies_nothing_and_the_retry_applies_once() {
    let fake = FakeApi::start().await;
    let server = server(&fake, "").await;
    let addr = plain(&server);
    let un_id = fake.add_subscription("s", "u@foo.com", "12345");
    let bn_id = fake.add_subscription("s", "b@foo.com", "777");
    let jobs = [
        un_job(&un_id, "12345", "u@foo.com"),
        bn_job(&bn_id, "777", "b@foo.com", "<mid-data@mta>", true),
    ];
    for how in [Leave::Close, Leave::Reset] {
        for job in &jobs {
            let payload = mta::data_payload(&job.message);
            // All but the last LF, all but the final dot line, half, one byte: none of them
            // is a complete message.
            for cut in [
                payload.len() - 1,
                payload.len() - 3,
                payload.len() / 2,
                job.message.len().min(1),
            ] {
                let (mut s, _) = open_data(addr, job).await;
                s.write_all(&payload[..cut]).await.unwrap();
                s.flush().await.unwrap();
                go_away(s, how);
                wait_idle(&server).await;
            }
        }
    }
    assert!(
        fake.requests().is_empty(),
        "an incomplete message reached the API: {:?}",
        fake.requests().iter().map(|r| r.line()).collect::<Vec<_>>()
    );
    assert_eq!(fake.subscription(&un_id).unwrap().state, "confirmed");
    assert!(fake.bounces().is_empty());

    for job in &jobs {
        assert_eq!(mta::attempt(addr, job).await, Outcome::Delivered);
    }
    let s = fake.subscription(&un_id).unwrap();
    assert_eq!((s.state.as_str(), s.times_unsubscribed), ("deleted", 1));
    let records = fake.bounces_of("b@foo.com");
    assert_eq!(records.len(), 1);
    assert_eq!(
        (
            records[0].hard_bounce_count,
            records[0].bounce_messages.len()
        ),
        (1, 1)
    );
}

/// The first flight of a TLS client (its ClientHello), as bytes.
fn client_hello() -> Vec<u8> {
    let name = rustls::pki_types::ServerName::try_from(DOMAIN).unwrap();
    let mut conn = rustls::ClientConnection::new(harness::insecure_tls(), name).unwrap();
    let mut out = Vec::new();
    while conn.wants_write() {
        conn.write_tls(&mut out).unwrap();
    }
    out
}

#[tokio::test]
async fn dropping_mid_tls_handshake_applies_nothing() {
    let fake = FakeApi::start().await;
    let server = server(&fake, "").await;
    let addr = plain(&server);
    let implicit = server.addr(TlsMode::Implicit).unwrap();
    let id = fake.add_subscription("s", "u@foo.com", "12345");
    let job = un_job(&id, "12345", "u@foo.com");
    let hello = client_hello();

    for how in [Leave::Close, Leave::Reset] {
        // STARTTLS inside an open transaction: half a ClientHello, then gone.
        let mut s = TcpStream::connect(addr).await.unwrap();
        let mut r = Replies::new();
        r.next(&mut s).await.unwrap();
        for cmd in [
            "EHLO mta.example".to_string(),
            format!("MAIL FROM:<{}>", job.from),
            format!("RCPT TO:<{}>", job.to),
            "STARTTLS".to_string(),
        ] {
            s.write_all(format!("{cmd}\r\n").as_bytes()).await.unwrap();
            let reply = r.next(&mut s).await.unwrap();
            assert!(matches!(mta::code(&reply), 250 | 220), "{cmd}: {reply}");
        }
        s.write_all(&hello[..hello.len() / 2]).await.unwrap();
        go_away(s, how);

        // Implicit TLS: a whole ClientHello, the server's first flight read, then gone.
        let mut s = TcpStream::connect(implicit).await.unwrap();
        s.write_all(&hello).await.unwrap();
        let mut first = [0u8; 512];
        let n = tokio::io::AsyncReadExt::read(&mut s, &mut first)
            .await
            .unwrap();
        assert!(n > 0 && first[0] == 0x16, "a TLS handshake record");
        go_away(s, how);

        // Implicit TLS: the connection dies before the ClientHello is complete.
        let mut s = TcpStream::connect(implicit).await.unwrap();
        s.write_all(&hello[..10]).await.unwrap();
        go_away(s, how);
    }
    // Inside TLS, mid-DATA: the TLS stream ends without close_notify.
    let tcp = TcpStream::connect(implicit).await.unwrap();
    let connector = tokio_rustls::TlsConnector::from(harness::insecure_tls());
    let name = rustls::pki_types::ServerName::try_from(DOMAIN).unwrap();
    let mut tls = connector.connect(name, tcp).await.unwrap();
    let mut r = Replies::new();
    assert_eq!(mta::code(&r.next(&mut tls).await.unwrap()), 220);
    for cmd in [
        "EHLO mta.example".to_string(),
        format!("MAIL FROM:<{}>", job.from),
        format!("RCPT TO:<{}>", job.to),
        "DATA".to_string(),
    ] {
        tls.write_all(format!("{cmd}\r\n").as_bytes())
            .await
            .unwrap();
        r.next(&mut tls).await.unwrap();
    }
    tls.write_all(b"Subject: unsubscribe\r\n\r\nhalf")
        .await
        .unwrap();
    tls.flush().await.unwrap();
    let (tcp, _) = tls.into_inner();
    go_away(tcp, Leave::Reset);

    wait_idle(&server).await;
    assert!(
        fake.requests().is_empty(),
        "{:?}",
        fake.requests().iter().map(|r| r.line()).collect::<Vec<_>>()
    );
    assert_eq!(fake.subscription(&id).unwrap().state, "confirmed");

    // The slots were all given back and the retry goes through once.
    assert_eq!(mta::attempt(addr, &job).await, Outcome::Delivered);
    let s = fake.subscription(&id).unwrap();
    assert_eq!((s.state.as_str(), s.times_unsubscribed), ("deleted", 1));
}

/// Sends the whole message including the final dot, then goes away without reading the
/// reply: the effect is applied, the 250 is lost.
async fn send_and_vanish(addr: SocketAddr, job: &Job, how: Leave) {
    let (mut s, _) = open_data(addr, job).await;
    s.write_all(&mta::data_payload(&job.message)).await.unwrap();
    s.flush().await.unwrap();
    go_away(s, how);
}

#[tokio::test]
async fn dropping_right_after_the_final_dot_then_retrying_applies_once() {
    let fake = FakeApi::start().await;
    // Slow calls make sure the client is gone long before the server's reply is ready.
    let server = server(&fake, "[api]\ntimeout_ms = 5000\n").await;
    let addr = plain(&server);
    for how in [Leave::Close, Leave::Reset] {
        let address = format!("{how:?}@foo.com").to_lowercase();
        let un_id = fake.add_subscription("s", &address, "12345");
        let bounced = format!("b-{address}");
        let bn_id = fake.add_subscription("s", &bounced, "777");
        let un = un_job(&un_id, "12345", &address);
        let bn = bn_job(&bn_id, "777", &bounced, &format!("<{how:?}@mta>"), true);

        fake.fail_all(Fault::Slow(Duration::from_millis(300)));
        send_and_vanish(addr, &un, how).await;
        send_and_vanish(addr, &bn, how).await;
        wait_idle(&server).await;
        fake.clear_faults();

        // The message was complete: its effect is there although no 250 reached anyone.
        let s = fake.subscription(&un_id).unwrap();
        assert_eq!((s.state.as_str(), s.times_unsubscribed), ("deleted", 1));
        let records = fake.bounces_of(&bounced);
        assert_eq!(records.len(), 1);
        assert_eq!(records[0].hard_bounce_count, 1);

        // The sender never saw the 250 and retries: 250 again, nothing applied twice.
        for job in [&un, &bn] {
            assert_eq!(mta::attempt(addr, job).await, Outcome::Delivered, "{job:?}");
        }
        let s = fake.subscription(&un_id).unwrap();
        assert_eq!((s.state.as_str(), s.times_unsubscribed), ("deleted", 1));
        let records = fake.bounces_of(&bounced);
        assert_eq!(records.len(), 1);
        assert_eq!(
            (
                records[0].hard_bounce_count,
                records[0].bounce_messages.len()
            ),
            (1, 1)
        );
    }
}
