//! Attacks from a hostile internet (see `docs/reliability.md`): guessing unsubscription
//! codes through `un-` and `bn-`, re-addressing a client with XCLIENT behind a PROXY
//! header, exhausting memory with unfinished messages, holding every slot with idle
//! sessions, and the protocol weak spots (overflowing SIZE, bare postmaster, DSN
//! parameters, a null sender on `un-`, TLS close_notify, client-triggered library logs).
//! Each test checks what the attacker gets and, where it matters, that a normal client is
//! still served. Loopback only, bounded in time and in connections.

mod common;
mod harness;
mod mta;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::fake_api::{FakeApi, SettingsFor};
use common::free_port;
use harness::{Recorder, insecure_tls, start};
use mta::{Job, Outcome, Replies, code};
use notify_inbound::config::{Settings, TlsMode};
use notify_inbound::flows::Processor;
use notify_inbound::metrics::Metrics;
use notify_inbound::server::Server;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const DOMAIN: &str = "notify.example";

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// A raw SMTP session from a chosen loopback address.
struct Smtp {
    stream: TcpStream,
    replies: Replies,
    greeting: String,
}

impl Smtp {
    async fn open(addr: SocketAddr, source: &str) -> Smtp {
        let mut stream = mta::connect(addr, Some(ip(source))).await.expect("connect");
        let mut replies = Replies::new();
        let greeting = replies.next(&mut stream).await.unwrap_or_default();
        Smtp {
            stream,
            replies,
            greeting,
        }
    }

    /// Sends one command line and returns its reply ("" when the server closed).
    async fn cmd(&mut self, line: &str) -> String {
        if self
            .stream
            .write_all(format!("{line}\r\n").as_bytes())
            .await
            .is_err()
        {
            return String::new();
        }
        self.reply().await
    }

    async fn reply(&mut self) -> String {
        self.replies
            .next(&mut self.stream)
            .await
            .unwrap_or_default()
    }

    /// One whole transaction on this session; returns the replies to RCPT and to the
    /// message (the latter empty when RCPT was refused).
    async fn transaction(&mut self, from: &str, rcpt: &str, message: &str) -> (String, String) {
        self.cmd(&format!("MAIL FROM:<{from}>")).await;
        let r = self.cmd(&format!("RCPT TO:<{rcpt}>")).await;
        if code(&r) != 250 {
            self.cmd("RSET").await;
            return (r, String::new());
        }
        assert_eq!(code(&self.cmd("DATA").await), 354);
        self.stream
            .write_all(&mta::data_payload(message))
            .await
            .unwrap();
        (r, self.reply().await)
    }
}

/// The server with the real flows against `fake`; `smtp` goes into `[inbound_smtp_server]`,
/// `limits` into `[inbound_smtp_server.limits]`.
async fn flows_server(fake: &FakeApi, smtp: &str, limits: &str) -> Server {
    let settings = fake.settings(&format!(
        "[inbound_smtp_server]\ndomain = '{DOMAIN}'\nlistening_ip = '127.0.0.1'\n\
         listening_smtp_port = 0\n{smtp}\n[inbound_smtp_server.limits]\n{limits}\n\
         [operations]\nlisten = ''\n"
    ));
    let processor = Arc::new(Processor::new(&settings).expect("processor"));
    Server::start(Arc::new(settings), processor, Arc::new(Metrics::new()))
        .await
        .expect("server")
}

fn bounce_for(address: &str) -> String {
    format!(
        "Subject: Undelivered Mail Returned to Sender\r\nX-Failed-Recipients: {address}\r\n\r\n\
         <{address}>: host mx.foo.com said: 550 5.1.1 user unknown\r\n"
    )
}

// ---------------------------------------------------------------------------------------
// 1. Unsubscription codes cannot be guessed through un- or bn-
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn bn_is_no_code_oracle_and_wrong_codes_are_counted_per_id_and_per_client() {
    let fake = FakeApi::start().await;
    let server = flows_server(&fake, "", "").await;
    let addr = server.addr(TlsMode::Starttls).unwrap();

    // The reply to an accepted bounce is the same whether the code is right or wrong.
    let victim = fake.add_subscription("svc", "victim@foo.com", "54321");
    let mut s = Smtp::open(addr, "127.0.0.40").await;
    s.cmd("EHLO attacker.example").await;
    let (_, wrong) = s
        .transaction(
            "",
            &format!("bn-{victim}-11111@{DOMAIN}"),
            &bounce_for("victim@foo.com"),
        )
        .await;
    let (_, right) = s
        .transaction(
            "",
            &format!("bn-{victim}-54321@{DOMAIN}"),
            &bounce_for("victim@foo.com"),
        )
        .await;
    assert_eq!(code(&right), 250, "{right}");
    assert_eq!(
        wrong, right,
        "the DATA reply tells a wrong code from a right one"
    );
    assert_eq!(
        fake.bounces_of("victim@foo.com").len(),
        1,
        "the right one counted"
    );

    // Per subscription id: a few wrong codes from different addresses, through bn- and
    // un- alike, then that id gets 450 4.7.1 from anyone, right code or not.
    let target = fake.add_subscription("svc", "target@foo.com", "24680");
    for (i, prefix) in ["bn", "un", "bn", "un", "bn"].iter().enumerate() {
        let mut s = Smtp::open(addr, &format!("127.0.0.{}", 50 + i)).await;
        s.cmd("EHLO guesser.example").await;
        let from = if *prefix == "un" {
            "guess@evil.example"
        } else {
            ""
        };
        let (rcpt, _) = s
            .transaction(
                from,
                &format!("{prefix}-{target}-{:05}@{DOMAIN}", 10000 + i),
                &bounce_for("target@foo.com"),
            )
            .await;
        assert_eq!(code(&rcpt), 250, "attempt {i}: {rcpt}");
    }
    for (source, prefix, from) in [
        ("127.0.0.60", "bn", ""),
        ("127.0.0.61", "un", "target@foo.com"),
    ] {
        let mut s = Smtp::open(addr, source).await;
        s.cmd("EHLO someone.example").await;
        let (rcpt, _) = s
            .transaction(
                from,
                &format!("{prefix}-{target}-24680@{DOMAIN}"),
                &bounce_for("target@foo.com"),
            )
            .await;
        assert!(
            rcpt.starts_with("450 4.7.1"),
            "{prefix} after 5 wrong codes: {rcpt}"
        );
    }
    assert_eq!(fake.subscription(&target).unwrap().state, "confirmed");

    // Per client: one address guessing codes of many ids through bn- only. Count how many
    // guesses it gets in before it is refused.
    let ids: Vec<String> = (0..40)
        .map(|i| fake.add_subscription("svc", &format!("p{i}@foo.com"), "13579"))
        .collect();
    let mut s = Smtp::open(addr, "127.0.0.70").await;
    s.cmd("EHLO guesser.example").await;
    let started = Instant::now();
    let mut accepted = 0;
    let mut refused = None;
    for (n, id) in ids.iter().enumerate() {
        let (rcpt, data) = s
            .transaction(
                "",
                &format!("bn-{id}-00000@{DOMAIN}"),
                "Subject: x\r\n\r\nx\r\n",
            )
            .await;
        if code(&rcpt) == 250 {
            accepted += 1;
            assert_eq!(data, right, "guess {n}");
        } else {
            refused = Some((n, rcpt));
            break;
        }
        if n % 9 == 8 {
            // A new session now and then: the per-session transaction limit is not the point.
            s = Smtp::open(addr, "127.0.0.70").await;
            s.cmd("EHLO guesser.example").await;
        }
    }
    let elapsed = started.elapsed();
    eprintln!(
        "bn- guesses from one client: {accepted} accepted in {:.2} s, then {:?}",
        elapsed.as_secs_f64(),
        refused.as_ref().map(|(_, r)| r.trim_end())
    );
    let (n, reply) = refused.expect("a client guessing codes through bn- is never refused");
    assert_eq!(n, 30, "refused after the per-client threshold (30)");
    assert!(reply.starts_with("450 4.7.1"), "{reply}");
}

#[tokio::test]
async fn a_right_code_on_a_subscription_no_longer_confirmed_is_no_failure() {
    let fake = FakeApi::start().await;
    let server = flows_server(&fake, "", "failed_code_per_id_threshold = 2\n").await;
    let addr = server.addr(TlsMode::Starttls).unwrap();
    let gone = fake.insert_subscription("svc", "gone@foo.com", "12345", "deleted");
    let mut s = Smtp::open(addr, "127.0.0.80").await;
    s.cmd("EHLO mta.example").await;
    for round in 0..4 {
        // A late bounce with the right code, the person's own unsubscribe sent again, and
        // the same from another address (refused, the address is not the subscriber's):
        // none is a guess.
        let (rcpt, data) = s
            .transaction(
                "",
                &format!("bn-{gone}-12345@{DOMAIN}"),
                &bounce_for("gone@foo.com"),
            )
            .await;
        assert_eq!(code(&rcpt), 250, "round {round}: {rcpt}");
        assert_eq!(code(&data), 250, "round {round}: {data}");
        let (rcpt, data) = s
            .transaction(
                "gone@foo.com",
                &format!("un-{gone}-12345@{DOMAIN}"),
                "Subject: unsubscribe\r\n\r\n",
            )
            .await;
        assert_eq!(code(&rcpt), 250, "round {round}: {rcpt}");
        assert!(data.starts_with("250 2.0.0 already unsubscribed"), "{data}");
        let (rcpt, data) = s
            .transaction(
                "other@foo.com",
                &format!("un-{gone}-12345@{DOMAIN}"),
                "Subject: unsubscribe\r\n\r\n",
            )
            .await;
        assert_eq!(code(&rcpt), 250, "round {round}: {rcpt}");
        assert!(data.starts_with("550 5.7.1"), "{data}");
    }
}

// ---------------------------------------------------------------------------------------
// 2. XCLIENT after a PROXY header
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn xclient_cannot_readdress_a_client_named_by_a_proxy_header() {
    let rec = Recorder::new();
    let settings = Settings::from_toml_str(&format!(
        "[inbound_smtp_server]\ndomain = '{DOMAIN}'\ntrusted_proxies = ['127.0.0.2/32']\n\
         [[inbound_smtp_server.listeners]]\nip = '127.0.0.1'\nport = 0\ntls = 'none'\n\
         proxy_protocol = true\nxclient = true\n[operations]\nlisten = ''\n"
    ))
    .unwrap();
    let server = start(settings, rec.clone()).await;
    let addr = server.addr(TlsMode::None).unwrap();

    let proxied = |client: &'static str| async move {
        let mut stream = mta::connect(addr, Some(ip("127.0.0.2"))).await.unwrap();
        stream
            .write_all(format!("PROXY TCP4 {client} 127.0.0.1 40000 25\r\n").as_bytes())
            .await
            .unwrap();
        let mut replies = Replies::new();
        let greeting = replies.next(&mut stream).await.unwrap_or_default();
        assert_eq!(code(&greeting), 220, "{greeting}");
        Smtp {
            stream,
            replies,
            greeting,
        }
    };

    // The header names 203.0.113.7, which is no proxy: it may not re-address itself.
    let mut s = proxied("203.0.113.7").await;
    let ehlo = s.cmd("EHLO client.example").await;
    assert!(!ehlo.contains("XCLIENT"), "{ehlo}");
    for _ in 0..3 {
        let r = s.cmd("XCLIENT ADDR=192.0.2.99").await;
        assert!(r.starts_with("550 5.7.0"), "{r}");
    }
    s.transaction("", &format!("bn-1-a@{DOMAIN}"), "Subject: b\r\n\r\nx\r\n")
        .await;
    let delivered = rec.messages.lock().unwrap().clone();
    assert_eq!(delivered.len(), 1);
    assert_eq!(delivered[0].0.client, ip("203.0.113.7"));

    // The header names the trusted proxy itself (a proxy chain): XCLIENT once, and not
    // again from the address it named.
    let mut s = proxied("127.0.0.2").await;
    let ehlo = s.cmd("EHLO nginx.example").await;
    assert!(ehlo.contains("XCLIENT"), "{ehlo}");
    let r = s.cmd("XCLIENT ADDR=198.51.100.9").await;
    assert_eq!(code(&r), 220, "{r}");
    let r = s.cmd("XCLIENT ADDR=192.0.2.99").await;
    assert!(r.starts_with("550 5.7.0"), "{r}");
}

// ---------------------------------------------------------------------------------------
// 3 and 5: the real binary, shipped defaults: memory under unfinished messages, and
// client-triggered library log lines
// ---------------------------------------------------------------------------------------

/// Starts the binary against `fake` on a free port with the shipped defaults and `env`.
fn spawn(fake: &FakeApi, env: &[(&str, &str)]) -> (tokio::process::Child, u16) {
    let port = free_port();
    let mut cmd = common::serve_command(&fake.host_url(), DOMAIN, port);
    for (k, v) in env {
        cmd.env(k, v);
    }
    (cmd.spawn().expect("binary starts"), port)
}

async fn wait_listening(addr: SocketAddr) {
    for _ in 0..200 {
        if TcpStream::connect(addr).await.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("server not listening on {addr}");
}

/// `VmRSS` and `VmHWM` (peak) of a process, in KiB.
fn memory_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// Opens a bounce transaction from `source` and sends `bytes` of message without its end.
async fn unfinished_message(addr: SocketAddr, source: IpAddr, bytes: usize) -> Option<Smtp> {
    let mut stream = mta::connect(addr, Some(source)).await.ok()?;
    let mut replies = Replies::new();
    let greeting = replies.next(&mut stream).await?;
    if code(&greeting) != 220 {
        return None;
    }
    let mut s = Smtp {
        stream,
        replies,
        greeting,
    };
    s.cmd("EHLO hog.example").await;
    s.cmd("MAIL FROM:<>").await;
    s.cmd(&format!("RCPT TO:<bn-1-a@{DOMAIN}>")).await;
    if code(&s.cmd("DATA").await) != 354 {
        return Some(s);
    }
    let line = format!("{}\r\n", "x".repeat(998));
    let chunk = line.repeat(64);
    let mut sent = 0;
    while sent < bytes {
        s.stream.write_all(chunk.as_bytes()).await.ok()?;
        sent += chunk.len();
    }
    Some(s)
}

#[tokio::test]
async fn unfinished_messages_cannot_exhaust_memory_and_a_normal_client_is_answered() {
    let fake = FakeApi::start().await;
    let id = fake.add_subscription("svc", "bar@foo.com", "12345");
    let (child, port) = spawn(&fake, &[]);
    let pid = child.id().unwrap();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    wait_listening(addr).await;
    let (rss_idle, _) = memory_kib(pid);

    // 600 connections from 30 addresses in 30 networks (20 each, the per-address limit),
    // each holding ~950 KB of a message it never finishes.
    let started = Instant::now();
    let mut held = Vec::new();
    for _round in 0..20 {
        let tasks: Vec<_> = (1..=30u8)
            .map(|net| {
                tokio::spawn(unfinished_message(
                    addr,
                    IpAddr::from([127, net, 0, 1]),
                    950_000,
                ))
            })
            .collect();
        for t in tasks {
            if let Some(s) = t.await.unwrap() {
                held.push(s);
            }
        }
    }
    let (rss_attack, peak) = memory_kib(pid);
    eprintln!(
        "memory attack: {} connections holding ~950 KB each after {:.1} s; RSS {} MiB at \
         rest, {} MiB under attack, peak {} MiB",
        held.len(),
        started.elapsed().as_secs_f64(),
        rss_idle / 1024,
        rss_attack / 1024,
        peak / 1024
    );
    assert_eq!(held.len(), 600, "every attack connection was let in");

    // A normal client is answered: its unsubscribe is applied.
    let mut normal = Smtp::open(addr, "127.0.99.1").await;
    assert_eq!(code(&normal.greeting), 220);
    normal.cmd("EHLO mta.foo.com").await;
    let (_, reply) = normal
        .transaction(
            "bar@foo.com",
            &format!("un-{id}-12345@{DOMAIN}"),
            "Subject: unsubscribe\r\n\r\n",
        )
        .await;
    assert!(reply.starts_with("250"), "{reply}");
    assert_eq!(fake.subscription(&id).unwrap().state, "deleted");

    // The last attack messages were discarded, not kept: finished, they get 452 4.3.1.
    for s in held.iter_mut().rev().take(5) {
        s.stream.write_all(b"\r\n.\r\n").await.unwrap();
        let r = s.reply().await;
        assert!(r.starts_with("452 4.3.1"), "{r}");
    }
    let (_, peak) = memory_kib(pid);
    assert!(
        peak < 200 * 1024,
        "peak RSS {} MiB with the shipped defaults",
        peak / 1024
    );
    drop(held);
    drop(child);
}

/// A TLS ClientHello naming `127.0.0.1` as SNI: rustls warns about it on every handshake.
fn client_hello_with_ip_sni() -> Vec<u8> {
    let name = b"127.0.0.1";
    let mut sni = vec![0x00, 0x00];
    let list_len = name.len() + 3;
    sni.extend_from_slice(&((list_len + 2) as u16).to_be_bytes());
    sni.extend_from_slice(&(list_len as u16).to_be_bytes());
    sni.push(0);
    sni.extend_from_slice(&(name.len() as u16).to_be_bytes());
    sni.extend_from_slice(name);
    let mut body = vec![0x03, 0x03];
    body.extend_from_slice(&[7u8; 32]);
    body.push(0); // no session id
    body.extend_from_slice(&[0x00, 0x04, 0x13, 0x01, 0xc0, 0x2f]);
    body.extend_from_slice(&[0x01, 0x00]);
    body.extend_from_slice(&(sni.len() as u16).to_be_bytes());
    body.extend_from_slice(&sni);
    let mut hs = vec![0x01];
    hs.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
    hs.extend_from_slice(&body);
    let mut record = vec![0x16, 0x03, 0x01];
    record.extend_from_slice(&(hs.len() as u16).to_be_bytes());
    record.extend_from_slice(&hs);
    record
}

#[tokio::test]
async fn handshakes_naming_an_ip_address_do_not_fill_the_log() {
    let fake = FakeApi::start().await;
    let (child, port) = spawn(
        &fake,
        &[(
            "NOTIFY_INBOUND__INBOUND_SMTP_SERVER__OPTIONS__SECURE",
            "true",
        )],
    );
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    wait_listening(addr).await;
    let hello = client_hello_with_ip_sni();
    for _ in 0..50 {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(&hello).await.unwrap();
        let mut buf = [0u8; 4096];
        let _ = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf)).await;
    }
    let log = common::terminate_and_read_log(child).await;
    let lines = log.lines().filter(|l| l.contains("SNI")).count();
    eprintln!(
        "log after 50 handshakes with an IP address as SNI: {} bytes, {lines} SNI lines",
        log.len()
    );
    assert!(log.contains("SMTP listener started"), "{log}");
    assert_eq!(lines, 0, "client-triggered library warnings logged:\n{log}");
}

// ---------------------------------------------------------------------------------------
// 4. Idle sessions holding every slot (slowloris), no-op commands, networks
// ---------------------------------------------------------------------------------------

/// Test settings: a plain listener on loopback, a recording deliverer, `limits` given.
fn small_server(limits: &str) -> Settings {
    Settings::from_toml_str(&format!(
        "[inbound_smtp_server]\ndomain = '{DOMAIN}'\n\
         [inbound_smtp_server.limits]\n{limits}\n\
         [[inbound_smtp_server.listeners]]\nip = '127.0.0.1'\nport = 0\ntls = 'none'\n\
         [operations]\nlisten = ''\n"
    ))
    .unwrap()
}

/// An attacker's connection: EHLO, then NOOP every `every` until the server closes it;
/// then it opens another after `pause`, until `stop`.
async fn idle_attacker(
    addr: SocketAddr,
    source: IpAddr,
    every: Duration,
    pause: Duration,
    stop: Instant,
) -> usize {
    let mut opened = 0;
    while Instant::now() < stop {
        if let Ok(mut stream) = mta::connect(addr, Some(source)).await {
            let mut replies = Replies::new();
            if replies
                .next(&mut stream)
                .await
                .is_some_and(|g| code(&g) == 220)
            {
                opened += 1;
                let _ = stream.write_all(b"EHLO idle.example\r\n").await;
                let _ = replies.next(&mut stream).await;
                while Instant::now() < stop {
                    tokio::time::sleep(every).await;
                    if stream.write_all(b"NOOP\r\n").await.is_err() {
                        break;
                    }
                    match replies.next(&mut stream).await {
                        Some(r) if code(&r) == 250 => continue,
                        _ => break,
                    }
                }
            }
        }
        tokio::time::sleep(pause).await;
    }
    opened
}

#[tokio::test]
async fn idle_sessions_holding_every_slot_are_shed_and_a_normal_client_is_served() {
    let rec = Recorder::new();
    let server = start(
        small_server(
            "max_connections = 20\nmax_connections_per_ip = 5\nmax_connections_per_network = 0\n\
             stress_command_timeout_secs = 3\n",
        ),
        rec.clone(),
    )
    .await;
    let addr = server.addr(TlsMode::None).unwrap();
    let stop = Instant::now() + Duration::from_secs(40);
    let attackers: Vec<_> = (11..15u8)
        .flat_map(|host| {
            (0..5).map(move |_| {
                tokio::spawn(idle_attacker(
                    addr,
                    IpAddr::from([127, 0, 0, host]),
                    Duration::from_secs(2),
                    Duration::from_secs(1),
                    stop,
                ))
            })
        })
        .collect();
    for _ in 0..200 {
        if server.active_connections() >= 20 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(
        server.active_connections(),
        20,
        "the attack holds every slot"
    );

    // A normal client tries every half second, as a queue runner would (faster).
    let started = Instant::now();
    let job = Job {
        from: String::new(),
        to: format!("bn-7-a@{DOMAIN}"),
        message: "Subject: bounce\r\n\r\n5.1.1\r\n".into(),
    };
    let mut tries = 0;
    let served = loop {
        tries += 1;
        let (outcome, _) = mta::attempt_from(addr, Some(ip("127.0.0.2")), &job).await;
        if outcome == Outcome::Delivered {
            break started.elapsed();
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "normal client not served within 30 s: {outcome:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    eprintln!(
        "slowloris: normal client served after {:.1} s ({tries} tries)",
        served.as_secs_f64()
    );
    assert_eq!(rec.count(), 1);
    for a in attackers {
        a.abort();
    }
}

#[tokio::test]
async fn no_op_commands_are_limited_per_session() {
    let rec = Recorder::new();
    let server = start(small_server("max_noop_commands = 5\n"), rec.clone()).await;
    let addr = server.addr(TlsMode::None).unwrap();
    let mut s = Smtp::open(addr, "127.0.0.30").await;
    assert_eq!(code(&s.cmd("EHLO a.example").await), 250);
    for line in ["NOOP", "RSET", "VRFY root", "HELP", "EHLO a.example"] {
        assert_eq!(code(&s.cmd(line).await) / 100, 2, "{line}");
    }
    let r = s.cmd("NOOP").await;
    assert!(r.starts_with("421 4.7.0"), "{r}");
    assert_eq!(s.reply().await, "", "closed");

    // Mail getting through earns a session more of them.
    let mut s = Smtp::open(addr, "127.0.0.31").await;
    s.cmd("EHLO b.example").await;
    for round in 0..3 {
        for _ in 0..4 {
            assert_eq!(code(&s.cmd("NOOP").await), 250, "round {round}");
        }
        let (_, r) = s
            .transaction(
                "",
                &format!("bn-{round}-a@{DOMAIN}"),
                "Subject: b\r\n\r\nx\r\n",
            )
            .await;
        assert_eq!(code(&r), 250, "{r}");
    }
}

#[tokio::test]
async fn connections_are_limited_per_network() {
    let rec = Recorder::new();
    let server = start(
        small_server("max_connections_per_ip = 2\nmax_connections_per_network = 5\n"),
        rec.clone(),
    )
    .await;
    let addr = server.addr(TlsMode::None).unwrap();
    let mut held = Vec::new();
    for host in 1..=3u8 {
        for _ in 0..2 {
            held.push(Smtp::open(addr, &format!("127.0.7.{host}")).await);
        }
    }
    let greetings: Vec<u16> = held.iter().map(|s| code(&s.greeting)).collect();
    assert_eq!(greetings, [220, 220, 220, 220, 220, 421]);
    assert!(
        held[5]
            .greeting
            .contains("too many connections from your network"),
        "{}",
        held[5].greeting
    );
    let other = Smtp::open(addr, "127.0.8.1").await;
    assert_eq!(code(&other.greeting), 220, "another network is served");
}

// ---------------------------------------------------------------------------------------
// 5. Weak spots
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn protocol_weak_spots_are_closed() {
    let rec = Recorder::new();
    let server = start(small_server(""), rec.clone()).await;
    let addr = server.addr(TlsMode::None).unwrap();
    let mut s = Smtp::open(addr, "127.0.0.1").await;
    s.cmd("EHLO client.example").await;

    let r = s
        .cmd("MAIL FROM:<a@b.example> SIZE=99999999999999999999999")
        .await;
    assert!(r.starts_with("552 5.3.4"), "overflowing SIZE: {r}");

    // A bare postmaster is accepted (RFC 5321 §4.1.1.3).
    assert_eq!(code(&s.cmd("MAIL FROM:<a@b.example>").await), 250);
    let r = s.cmd("RCPT TO:<postmaster>").await;
    assert!(r.starts_with("250"), "bare postmaster: {r}");
    assert_eq!(code(&s.cmd("DATA").await), 354);
    s.stream
        .write_all(b"Subject: hello postmaster\r\n\r\nhi\r\n.\r\n")
        .await
        .unwrap();
    assert_eq!(code(&s.reply().await), 250);

    // DSN is not offered: its RCPT parameters are refused.
    assert_eq!(code(&s.cmd("MAIL FROM:<>").await), 250);
    for param in ["NOTIFY=FAILURE", "ORCPT=rfc822;x@y.example"] {
        let r = s.cmd(&format!("RCPT TO:<bn-1-a@{DOMAIN}> {param}")).await;
        assert!(r.starts_with("555 5.5.4"), "{param}: {r}");
    }
    // A null sender on un- is refused: an unsubscribe request has a sender.
    let r = s.cmd(&format!("RCPT TO:<un-1-a@{DOMAIN}>")).await;
    assert!(r.starts_with("550 5.7.1"), "null sender on un-: {r}");
    assert_eq!(rec.count(), 0);
}

#[tokio::test]
async fn tls_sessions_end_with_close_notify() {
    let rec = Recorder::new();
    let server = start(harness::settings(""), rec.clone()).await;
    let addr = server.addr(TlsMode::Implicit).unwrap();
    let tcp = TcpStream::connect(addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("notify.example").unwrap();
    let mut tls = tokio_rustls::TlsConnector::from(insecure_tls())
        .connect(name, tcp)
        .await
        .unwrap();
    let mut replies = Replies::new();
    assert_eq!(code(&replies.next(&mut tls).await.unwrap()), 220);
    tls.write_all(b"QUIT\r\n").await.unwrap();
    assert_eq!(code(&replies.next(&mut tls).await.unwrap()), 221);
    let mut rest = Vec::new();
    let end = tokio::time::timeout(Duration::from_secs(10), tls.read_to_end(&mut rest))
        .await
        .expect("the server closes");
    assert!(
        end.is_ok(),
        "TLS closed without close_notify after 221: {end:?}"
    );
}

#[tokio::test]
async fn a_used_up_message_budget_gets_452_at_data_and_unsubscribes_still_pass() {
    let rec = Recorder::new();
    // One bounce's first buffer (8 KiB) uses the whole budget.
    let server = start(small_server("max_inflight_bytes = 8192\n"), rec.clone()).await;
    let addr = server.addr(TlsMode::None).unwrap();
    let mut hog = Smtp::open(addr, "127.0.0.20").await;
    hog.cmd("EHLO hog.example").await;
    hog.cmd("MAIL FROM:<>").await;
    hog.cmd(&format!("RCPT TO:<bn-1-a@{DOMAIN}>")).await;
    assert_eq!(code(&hog.cmd("DATA").await), 354);
    hog.stream.write_all(b"Subject: hog\r\n\r\n").await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;

    let mut other = Smtp::open(addr, "127.0.0.21").await;
    other.cmd("EHLO mta.example").await;
    other.cmd("MAIL FROM:<>").await;
    other.cmd(&format!("RCPT TO:<bn-2-a@{DOMAIN}>")).await;
    let r = other.cmd("DATA").await;
    assert!(r.starts_with("452 4.3.1"), "{r}");
    // An unsubscribe keeps no body, so it needs none of the budget.
    let (_, r) = other
        .transaction(
            "bar@foo.com",
            &format!("un-3-a@{DOMAIN}"),
            "Subject: unsubscribe\r\n\r\n",
        )
        .await;
    assert_eq!(code(&r), 250, "{r}");

    // The hog's message grows past the budget: read to its end, discarded, 452 4.3.1.
    let line = format!("{}\r\n", "x".repeat(998));
    for _ in 0..20 {
        hog.stream.write_all(line.as_bytes()).await.unwrap();
    }
    hog.stream.write_all(b".\r\n").await.unwrap();
    let r = hog.reply().await;
    assert!(r.starts_with("452 4.3.1"), "{r}");
    let delivered = rec.messages.lock().unwrap().clone();
    assert_eq!(delivered.len(), 1);
    assert_eq!(delivered[0].0.recipient.id, "3");
}
