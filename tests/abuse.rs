//! Abuse from the internet (docs/behaviour.md §2, §3): slow clients, floods, endless recipients, long
//! lines, garbage bytes, garbage instead of TLS, hostile messages and smuggling attempts,
//! crafted recipients aimed at other API paths, and relay attempts. Each case checks the
//! reply the abuser gets and that a normal client, from another address, is served while
//! the abuse goes on.

mod common;
mod harness;
mod mta;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use common::dsn::Dsn;
use common::encode_uri_component as encode;
use common::fake_api::{FakeApi, SettingsFor};
use harness::{Recorder, settings, start};
use mta::{Job, Outcome, Replies, code};
use notify_inbound::config::TlsMode;
use notify_inbound::flows::Processor;
use notify_inbound::metrics::Metrics;
use notify_inbound::server::Server;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const DOMAIN: &str = harness::DOMAIN;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// The normal client: 127.0.0.2, never used by an abuser.
fn normal() -> IpAddr {
    ip("127.0.0.2")
}

fn bounce_job(id: u32) -> Job {
    Job {
        from: String::new(),
        to: format!("bn-{id}-a@{DOMAIN}"),
        message: format!("Subject: bounce {id}\r\n\r\nStatus: 5.1.1\r\n"),
    }
}

/// A normal client delivers one message from 127.0.0.2; the recorder must hold it.
async fn assert_served(addr: SocketAddr, rec: &Recorder, id: u32) {
    let (outcome, _) = mta::attempt_from(addr, Some(normal()), &bounce_job(id)).await;
    assert_eq!(outcome, Outcome::Delivered, "normal client not served");
    let delivered = rec.messages.lock().unwrap().clone();
    assert!(
        delivered
            .iter()
            .any(|(e, _)| e.recipient.id == id.to_string()),
        "message {id} not delivered"
    );
}

/// Connects from `source` and reads the first reply (None: closed without one).
async fn greet(addr: SocketAddr, source: IpAddr) -> (TcpStream, Replies, Option<String>) {
    let mut s = mta::connect(addr, Some(source)).await.unwrap();
    let mut r = Replies::new();
    let first = r.next(&mut s).await;
    (s, r, first)
}

/// Awaits greeted connections: those greeted with 220 are kept in `held`, the others must
/// have been refused with `421 4.7.0` naming `why`; returns how many were refused.
async fn hold_or_refused(
    greeted: Vec<tokio::task::JoinHandle<(TcpStream, Replies, Option<String>)>>,
    held: &mut Vec<TcpStream>,
    why: &str,
) -> usize {
    let mut refused = 0;
    for t in greeted {
        let (s, _, first) = t.await.unwrap();
        let first = first.unwrap_or_default();
        if code(&first) == 220 {
            held.push(s);
        } else {
            assert!(
                first.starts_with("421 4.7.0") && first.contains(why),
                "{first}"
            );
            refused += 1;
        }
    }
    refused
}

async fn cmd(s: &mut TcpStream, r: &mut Replies, line: &str) -> String {
    s.write_all(format!("{line}\r\n").as_bytes()).await.unwrap();
    r.next(s).await.unwrap_or_default()
}

/// True when the peer closes within 10 s (EOF or reset).
async fn closed(s: &mut TcpStream) -> bool {
    let mut buf = [0u8; 1024];
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return true,
                Ok(_) => continue,
            }
        }
    })
    .await
    .unwrap_or(false)
}

/// Waits until the server holds exactly `n` connections.
async fn wait_connections(server: &Server, n: usize) {
    for _ in 0..400 {
        if server.active_connections() == n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!(
        "{} connections open, expected {n}",
        server.active_connections()
    );
}

// ---------------------------------------------------------------------------------------
// Slow clients and floods
// ---------------------------------------------------------------------------------------

/// Sends `bytes` one at a time every `every`, ignoring write errors (the server may be gone).
fn trickle(mut w: tokio::net::tcp::OwnedWriteHalf, bytes: Vec<u8>, every: Duration) {
    tokio::spawn(async move {
        for b in bytes {
            tokio::time::sleep(every).await;
            if w.write_all(&[b]).await.is_err() {
                return;
            }
        }
    });
}

/// Reads replies until the server closes; returns them all.
async fn replies_until_close(mut rd: tokio::net::tcp::OwnedReadHalf) -> Vec<String> {
    let mut r = Replies::new();
    let mut all = Vec::new();
    while let Some(reply) = r.next(&mut rd).await {
        all.push(reply);
    }
    all
}

#[tokio::test]
async fn slowloris_up_to_the_limits_is_timed_out_and_others_are_served() {
    let rec = Recorder::new();
    let server = start(
        settings(
            // The slow slots must outlive a full delivery and the filling of the server on
            // a loaded machine before their timeouts free them: 10 s, not a tight margin.
            // Stress mode and the no-op limit (which would cut the idle and the NOOP sessions
            // sooner) are off: this test is about the plain timeouts; tests/attacks.rs covers
            // both.
            "[inbound_smtp_server.limits]\nmax_connections = 8\nmax_connections_per_ip = 4\n\
             command_timeout_secs = 10\ndata_timeout_secs = 10\nsession_timeout_secs = 12\n\
             stress_threshold_percent = 0\nmax_noop_commands = 100\n",
        ),
        rec.clone(),
    )
    .await;
    let addr = server.addr(TlsMode::Starttls).unwrap();
    let attacker = ip("127.0.0.10");
    let every = Duration::from_millis(300);

    // Four slow connections from one address, each holding a slot a different way.
    let mut slow = Vec::new();
    // 1. Says nothing after the greeting.
    let (s, _, first) = greet(addr, attacker).await;
    assert_eq!(code(&first.unwrap()), 220);
    let (rd, wr) = s.into_split();
    slow.push((
        "idle",
        tokio::spawn(async move {
            let _keep = wr;
            replies_until_close(rd).await
        }),
    ));
    // 2. Sends a command one byte at a time, never finishing the line.
    let (s, _, _) = greet(addr, attacker).await;
    let (rd, wr) = s.into_split();
    // Longer than the command timeout at this pace: the line is never finished in time.
    trickle(
        wr,
        b"EHLO slow-client-sending-one-byte-at-a-time.example".to_vec(),
        every,
    );
    slow.push(("command trickle", tokio::spawn(replies_until_close(rd))));
    // 3. Opens a transaction and sends the message one byte at a time.
    let (mut s, mut r, _) = greet(addr, attacker).await;
    for (line, want) in [
        ("EHLO slow.example", 250),
        ("MAIL FROM:<>", 250),
        ("RCPT TO:<bn-1-a@notify.example>", 250),
        ("DATA", 354),
    ] {
        assert_eq!(code(&cmd(&mut s, &mut r, line).await), want);
    }
    let (rd, wr) = s.into_split();
    trickle(wr, vec![b'x'; 100], every);
    slow.push(("data trickle", tokio::spawn(replies_until_close(rd))));
    // 4. Sends a valid NOOP before every command timeout, forever.
    let (s, _, _) = greet(addr, attacker).await;
    let (rd, mut wr) = s.into_split();
    tokio::spawn(async move {
        for _ in 0..40 {
            tokio::time::sleep(Duration::from_millis(500)).await;
            if wr.write_all(b"NOOP\r\n").await.is_err() {
                break;
            }
        }
    });

    // The attacker's address is at its limit; everyone else is served.
    let (_, _, refused) = greet(addr, attacker).await;
    let refused = refused.unwrap();
    assert!(
        refused.starts_with("421 4.7.0") && refused.contains("your address"),
        "{refused}"
    );
    assert_served(addr, &rec, 1).await;

    // Slow clients from other addresses fill the server: now newcomers are turned away...
    wait_connections(&server, 4).await;
    let mut fillers = Vec::new();
    for n in 11..15 {
        let (s, _, first) = greet(addr, ip(&format!("127.0.0.{n}"))).await;
        assert_eq!(code(&first.unwrap()), 220);
        fillers.push(s);
    }
    let (_, _, full) = greet(addr, normal()).await;
    let full = full.unwrap();
    assert!(
        full.starts_with("421 4.7.0") && full.contains("too many connections"),
        "{full}"
    );

    // ...until the timeouts free the slots, without the slow clients' help.
    let noop_replies = replies_until_close(rd).await;
    let last = noop_replies.last().unwrap();
    assert!(
        last.starts_with("421 4.4.2") && last.contains("session time limit"),
        "{last}"
    );
    assert!(noop_replies.len() > 3, "NOOPs were answered meanwhile");
    for (what, task) in slow {
        let replies = task.await.unwrap();
        let last = replies.last().unwrap_or_else(|| panic!("{what}: no reply"));
        assert!(last.starts_with("421 4.4.2"), "{what}: {last}");
    }
    for mut s in fillers {
        assert!(closed(&mut s).await, "filler not timed out");
    }
    wait_connections(&server, 0).await;
    assert_served(addr, &rec, 2).await;
    let (_, _, again) = greet(addr, attacker).await;
    assert_eq!(
        code(&again.unwrap()),
        220,
        "the attacker's slots were freed"
    );
    assert_eq!(
        rec.count(),
        2,
        "nothing from the slow clients was delivered"
    );
}

#[tokio::test]
async fn a_connection_flood_gets_421_past_the_per_address_and_global_limits() {
    let rec = Recorder::new();
    let server = start(
        settings(
            "[inbound_smtp_server.limits]\nmax_connections = 20\nmax_connections_per_ip = 5\n\
             command_timeout_secs = 30\n",
        ),
        rec.clone(),
    )
    .await;
    let addr = server.addr(TlsMode::Starttls).unwrap();

    // 200 connections at once from one address: five are greeted, the rest turned away.
    let flood: Vec<_> = (0..200)
        .map(|_| tokio::spawn(greet(addr, ip("127.0.0.20"))))
        .collect();
    let normal_client = tokio::spawn({
        let rec = rec.clone();
        async move { assert_served(addr, &rec, 1).await }
    });
    let mut held = Vec::new();
    let per_address = hold_or_refused(flood, &mut held, "your address").await;
    normal_client.await.unwrap();
    assert_eq!((held.len(), per_address), (5, 195));

    // Many addresses, one connection each: past the global limit everyone gets 421.
    wait_connections(&server, 5).await;
    let spread: Vec<_> = (1..=30)
        .map(|n| tokio::spawn(greet(addr, ip(&format!("127.0.1.{n}")))))
        .collect();
    let global = hold_or_refused(spread, &mut held, "too many connections").await;
    assert_eq!((held.len(), global), (20, 15));
    let (_, _, full) = greet(addr, normal()).await;
    assert!(full.unwrap().starts_with("421 4.7.0"));

    // The flood ends: service resumes at once.
    drop(held);
    wait_connections(&server, 0).await;
    assert_served(addr, &rec, 2).await;
    assert_eq!(rec.count(), 2);
}

// ---------------------------------------------------------------------------------------
// Hostile commands
// ---------------------------------------------------------------------------------------

/// Writes `input` in one go while reading every reply until the server closes.
async fn blast(addr: SocketAddr, source: IpAddr, input: Vec<u8>) -> Vec<String> {
    let s = mta::connect(addr, Some(source)).await.unwrap();
    let (rd, mut wr) = s.into_split();
    let writer = tokio::spawn(async move {
        let _ = wr.write_all(&input).await;
        wr
    });
    let replies = replies_until_close(rd).await;
    drop(writer.await);
    replies
}

#[tokio::test]
async fn thousands_of_recipients_get_452_then_421_and_others_are_served() {
    let rec = Recorder::new();
    let server = start(
        settings("[inbound_smtp_server.limits]\nmax_commands = 1000\nmax_errors = 10\n"),
        rec.clone(),
    )
    .await;
    let addr = server.addr(TlsMode::Starttls).unwrap();

    // 5,000 valid-looking recipients in one transaction, pipelined.
    let mut input = b"EHLO flood.example\r\nMAIL FROM:<>\r\n".to_vec();
    for i in 0..5000 {
        input.extend_from_slice(format!("RCPT TO:<bn-{i}-x@{DOMAIN}>\r\n").as_bytes());
    }
    input.extend_from_slice(b"DATA\r\nSubject: x\r\n\r\nx\r\n.\r\n");
    let attack = tokio::spawn(blast(addr, ip("127.0.0.30"), input));
    assert_served(addr, &rec, 900_001).await;
    let replies = attack.await.unwrap();
    let codes: Vec<u16> = replies.iter().map(|r| code(r)).collect();
    // Greeting, EHLO, MAIL, the first 50 RCPTs (max_recipients_per_transaction); then
    // 452 4.5.3 for every further one until the 1,000-command limit closes the session.
    assert_eq!(codes[..3], [220, 250, 250]);
    assert!(codes[3..53].iter().all(|&c| c == 250), "{codes:?}");
    let rest = &replies[53..replies.len() - 1];
    assert_eq!(rest.len(), 1000 - 2 - 50);
    assert!(rest.iter().all(|r| r.starts_with("452 4.5.3")));
    let last = replies.last().unwrap();
    assert!(
        last.starts_with("421 4.7.0") && last.contains("too many commands"),
        "{last}"
    );

    // 5,000 foreign recipients: each is an error, and ten errors close the session.
    let mut input = b"EHLO flood.example\r\nMAIL FROM:<>\r\n".to_vec();
    for i in 0..5000 {
        input.extend_from_slice(format!("RCPT TO:<user{i}@other.example>\r\n").as_bytes());
    }
    let replies = blast(addr, ip("127.0.0.31"), input).await;
    assert_eq!(replies.len(), 3 + 10, "{replies:?}");
    assert!(replies[3..12].iter().all(|r| r.starts_with("550 5.7.1")));
    assert!(replies[12].starts_with("421 4.7.0"), "{}", replies[12]);

    assert_eq!(rec.count(), 1, "only the normal client's message");
}

/// Reply lines are printable ASCII: no byte a client sent can come back raw.
fn assert_clean(reply: &str) {
    assert!(
        reply
            .trim_end()
            .lines()
            .all(|l| l.bytes().all(|b| (0x20..0x7f).contains(&b))),
        "reply with control or 8-bit bytes: {reply:?}"
    );
}

#[tokio::test]
async fn nul_and_8bit_garbage_in_commands_is_refused_and_others_are_served() {
    let rec = Recorder::new();
    let server = start(
        settings("[inbound_smtp_server.limits]\nmax_errors = 10\n"),
        rec.clone(),
    )
    .await;
    let addr = server.addr(TlsMode::Starttls).unwrap();
    let garbage: Vec<&[u8]> = vec![
        b"\0\0\0\0",
        b"\xff\xfe\xfd\xfc",
        b"RCPT TO:<bn-1-\xe9@notify.example>",
        b"RCPT TO:<bn-\x001-a@notify.example>",
        b"RCPT TO:<bn-1-a@notify.example\x00.evil.example>",
        b"RCPT TO:<bn-1-a@notify.example>\x00",
        b"\x1b[31mRCPT TO:<bn-1-a@notify.example>",
        b"DATA\xff",
        b"\x80\x81\x82\x83",
        b"MAIL FROM:<\x00@x.example>",
        b"EHLO \x00\x01\x02",
    ];
    let mut input = b"EHLO garbage.example\r\nMAIL FROM:<>\r\n".to_vec();
    for g in &garbage {
        input.extend_from_slice(g);
        input.extend_from_slice(b"\r\n");
    }
    input.extend_from_slice(b"DATA\r\nSubject: x\r\n\r\nx\r\n.\r\n");
    let attack = tokio::spawn(blast(addr, ip("127.0.0.40"), input));
    assert_served(addr, &rec, 1).await;
    let replies = attack.await.unwrap();
    for r in &replies {
        assert_clean(r);
    }
    // Greeting, EHLO, MAIL: then no garbage line gets a 2xx or 354, and the error limit
    // closes the session before the DATA at the end.
    assert_eq!(
        replies.iter().take(3).map(|r| code(r)).collect::<Vec<_>>(),
        [220, 250, 250]
    );
    for (line, reply) in garbage.iter().zip(&replies[3..]) {
        assert!(
            code(reply) >= 400,
            "{:?} accepted: {reply}",
            String::from_utf8_lossy(line)
        );
    }
    let last = replies.last().unwrap();
    assert!(last.starts_with("421 4.7.0"), "{last}");
    assert_eq!(rec.count(), 1, "only the normal client's message");
}

#[tokio::test]
async fn over_long_lines_are_refused_or_carried_without_harm() {
    let rec = Recorder::new();
    let server = start(settings(""), rec.clone()).await;
    let addr = server.addr(TlsMode::Starttls).unwrap();
    let (mut s, mut r, _) = greet(addr, ip("127.0.0.50")).await;
    // 512 octets with the CRLF is the longest command line; one more is refused.
    let at_limit = format!("NOOP {}", "x".repeat(512 - 2 - 5));
    assert_eq!(code(&cmd(&mut s, &mut r, &at_limit).await), 250);
    let over = format!("NOOP {}", "x".repeat(512 - 2 - 5 + 1));
    assert!(cmd(&mut s, &mut r, &over).await.starts_with("500 5.5.2"));
    // 8 MB without a line end while a normal client is served.
    let big = tokio::spawn(async move {
        let chunk = vec![b'A'; 1 << 16];
        for _ in 0..128 {
            s.write_all(&chunk).await.unwrap();
        }
        let reply = cmd(&mut s, &mut r, "").await;
        (s, r, reply)
    });
    assert_served(addr, &rec, 1).await;
    let (mut s, mut r, reply) = big.await.unwrap();
    assert!(reply.starts_with("500 5.5.2"), "{reply}");

    // A text line of 300,000 octets inside a message under the size limit arrives intact.
    let long_line = "y".repeat(300_000);
    let message = format!("Subject: long\r\n\r\n{long_line}\r\nend\r\n");
    for (line, want) in [
        ("EHLO long.example", 250),
        ("MAIL FROM:<>", 250),
        ("RCPT TO:<bn-2-a@notify.example>", 250),
        ("DATA", 354),
    ] {
        assert_eq!(code(&cmd(&mut s, &mut r, line).await), want);
    }
    s.write_all(&mta::data_payload(&message)).await.unwrap();
    assert_eq!(code(&r.next(&mut s).await.unwrap()), 250);
    let delivered = rec.bodies().pop().unwrap();
    assert_eq!(delivered, message.as_bytes());

    // A single 2,000,000-octet line goes over the size limit: 552, and the session goes on.
    for (line, want) in [
        ("MAIL FROM:<>", 250),
        ("RCPT TO:<bn-3-a@notify.example>", 250),
        ("DATA", 354),
    ] {
        assert_eq!(code(&cmd(&mut s, &mut r, line).await), want);
    }
    let huge = format!("Subject: huge\r\n\r\n{}\r\n", "z".repeat(2_000_000));
    s.write_all(&mta::data_payload(&huge)).await.unwrap();
    assert!(r.next(&mut s).await.unwrap().starts_with("552 5.3.4"));
    assert_eq!(code(&cmd(&mut s, &mut r, "NOOP").await), 250);
    assert_eq!(rec.count(), 2);
}

#[tokio::test]
async fn garbage_instead_of_a_tls_handshake_is_dropped_and_frees_its_slot() {
    let rec = Recorder::new();
    let server = start(
        settings("[inbound_smtp_server.limits]\nmax_connections_per_ip = 2\n"),
        rec.clone(),
    )
    .await;
    let plain = server.addr(TlsMode::Starttls).unwrap();
    let implicit = server.addr(TlsMode::Implicit).unwrap();
    let attacker = ip("127.0.0.60");
    let garbage: Vec<Vec<u8>> = vec![
        b"EHLO plain.example\r\n".to_vec(),
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
        (0..4096u32).map(|i| (i * 7919 % 251) as u8).collect(),
        // A TLS record header announcing a 16 KB handshake that never comes.
        vec![0x16, 0x03, 0x01, 0x40, 0x00, 0x01],
        vec![0u8; 64],
    ];
    let normal_client = tokio::spawn({
        let rec = rec.clone();
        async move { assert_served(plain, &rec, 1).await }
    });
    // More attempts than the per-address limit: each one's slot must be given back.
    for g in garbage.iter().chain(garbage.iter()) {
        let mut s = mta::connect(implicit, Some(attacker)).await.unwrap();
        let _ = s.write_all(g).await;
        let _ = s.shutdown().await;
        let mut answer = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut answer)).await;
        assert!(
            !answer.starts_with(b"220") && !answer.starts_with(b"421"),
            "{:?}",
            String::from_utf8_lossy(&answer)
        );
        // STARTTLS, then the same garbage.
        let (mut s, mut r, _) = greet(plain, attacker).await;
        assert!(
            cmd(&mut s, &mut r, "STARTTLS")
                .await
                .starts_with("220 2.0.0")
        );
        let _ = s.write_all(g).await;
        let _ = s.shutdown().await;
        assert!(closed(&mut s).await);
        // The attacker's connection is gone (the normal client may hold one).
        for _ in 0..400 {
            if server.active_connections() <= 1 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
    normal_client.await.unwrap();
    // A real TLS client from the same address, and a normal client, are served.
    let tcp = mta::connect(implicit, Some(attacker)).await.unwrap();
    let connector = tokio_rustls::TlsConnector::from(harness::insecure_tls());
    let name = rustls::pki_types::ServerName::try_from(DOMAIN).unwrap();
    let mut tls = connector.connect(name, tcp).await.unwrap();
    let mut r = Replies::new();
    assert_eq!(code(&r.next(&mut tls).await.unwrap()), 220);
    assert_eq!(rec.count(), 1);
}

// ---------------------------------------------------------------------------------------
// Smuggling
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn smuggled_terminators_never_make_two_messages_of_one() {
    let rec = Recorder::new();
    let server = start(settings(""), rec.clone()).await;
    let addr = server.addr(TlsMode::Starttls).unwrap();
    let second =
        "MAIL FROM:<>\r\nRCPT TO:<bn-2-b@notify.example>\r\nDATA\r\nSubject: smuggled\r\n\r\nx\r\n";
    // The separators tests/smtp.rs does not try: a dot followed by a bare CR (a lenient
    // reader ends DATA at CR CR LF), and a dot with a bare line end right after DATA.
    let first = b"Subject: a\r\n\r\nfirst";
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "CRLF.CR CRLF",
            [&first[..], b"\r\n.\r\r\n", second.as_bytes(), b".\r\n"].concat(),
        ),
        (
            "CRLF.CR CR CRLF",
            [&first[..], b"\r\n.\r\r\r\n", second.as_bytes(), b".\r\n"].concat(),
        ),
        (
            "CRLF.CR SP CRLF",
            [&first[..], b"\r\n.\r \r\n", second.as_bytes(), b".\r\n"].concat(),
        ),
        (
            "LF right after DATA",
            [&b".\n"[..], second.as_bytes(), b".\r\n"].concat(),
        ),
        (
            "CR CRLF right after DATA",
            [&b".\r\r\n"[..], second.as_bytes(), b".\r\n"].concat(),
        ),
    ];
    let normal_client = tokio::spawn({
        let rec = rec.clone();
        async move { assert_served(addr, &rec, 3).await }
    });
    for (name, body) in cases {
        let (mut s, mut r, _) = greet(addr, ip("127.0.0.70")).await;
        for (line, want) in [
            ("EHLO smuggler.example", 250),
            ("MAIL FROM:<>", 250),
            ("RCPT TO:<bn-1-a@notify.example>", 250),
            ("DATA", 354),
        ] {
            assert_eq!(code(&cmd(&mut s, &mut r, line).await), want, "{name}");
        }
        s.write_all(&body).await.unwrap();
        let reply = r.next(&mut s).await.unwrap();
        assert!(reply.starts_with("550 5.6.0"), "{name}: {reply}");
        // The next reply answers the next command: nothing inside the message was run.
        assert_eq!(code(&cmd(&mut s, &mut r, "NOOP").await), 250, "{name}");
    }
    normal_client.await.unwrap();
    let delivered = rec.messages.lock().unwrap().clone();
    assert_eq!(delivered.len(), 1, "only the normal client's message");
    assert_eq!(delivered[0].0.recipient.id, "3");
}

// ---------------------------------------------------------------------------------------
// Hostile messages, through the real flows
// ---------------------------------------------------------------------------------------

const SUBSCRIBER: &str = "bar@foo.com";

/// The server with the real flows; `smtp` goes into the `[inbound_smtp_server]` section.
async fn flows_server(fake: &FakeApi, extra: &str, smtp: &str) -> Server {
    let settings = fake.settings(&format!(
        "{extra}\n[inbound_smtp_server]\ndomain = '{DOMAIN}'\nlistening_ip = '127.0.0.1'\n\
         listening_smtp_port = 0\n{smtp}\n[operations]\nlisten = ''\n"
    ));
    let processor = Arc::new(Processor::new(&settings).expect("processor"));
    Server::start(Arc::new(settings), processor, Arc::new(Metrics::new()))
        .await
        .expect("server")
}

/// Delivers `message` as a bounce for subscription `id` while another subscriber's bounce
/// is delivered by a normal client; returns the hostile message's outcome.
async fn hostile_bounce(
    server: &Server,
    id: &str,
    other_id: &str,
    round: u32,
    message: String,
) -> Outcome {
    let addr = server.addr(TlsMode::Starttls).unwrap();
    let hostile = Job {
        from: String::new(),
        to: format!("bn-{id}-777@{DOMAIN}"),
        message,
    };
    let attack = tokio::spawn(async move {
        mta::attempt_from(addr, Some(ip("127.0.0.80")), &hostile)
            .await
            .0
    });
    let normal_job = Job {
        from: String::new(),
        to: format!("bn-{other_id}-777@{DOMAIN}"),
        message: Dsn {
            final_recipient: "other@foo.com",
            message_id: Some(&format!("<normal-{round}@mta>")),
            ..Dsn::default()
        }
        .build(),
    };
    let (served, _) = mta::attempt_from(addr, Some(normal()), &normal_job).await;
    assert_eq!(served, Outcome::Delivered);
    attack.await.unwrap()
}

#[tokio::test]
async fn hostile_messages_are_recorded_without_harm() {
    let fake = FakeApi::start().await;
    let server = flows_server(&fake, "", "").await;
    let other = fake.add_subscription("s", "other@foo.com", "777");

    // Headers only: no blank line, no body.
    let id = fake.add_subscription("s", SUBSCRIBER, "777");
    let headers_only =
        "From: MAILER-DAEMON@mta.example\r\nSubject: failure\r\nMessage-ID: <h@mta>\r\n"
            .to_string();
    let outcome = hostile_bounce(&server, &id, &other, 1, headers_only).await;
    assert_eq!(outcome, Outcome::Delivered);
    let record = &fake.only_bounce_of(SUBSCRIBER);
    assert_eq!(
        (record.hard_bounce_count, record.bounce_messages.len()),
        (0, 1)
    );

    // 100,000 header lines in front of a real DSN: still read, and it still counts.
    let dsn = Dsn {
        message_id: Some("<many-headers@mta>"),
        ..Dsn::default()
    }
    .build();
    let many = format!("{}{dsn}", "X:\r\n".repeat(100_000));
    let outcome = hostile_bounce(&server, &id, &other, 2, many).await;
    assert_eq!(outcome, Outcome::Delivered);
    let record = &fake.only_bounce_of(SUBSCRIBER);
    assert_eq!(
        (record.hard_bounce_count, record.bounce_messages.len()),
        (1, 2)
    );

    // Multipart nested 5,000 deep: read without exhausting the stack, and recorded. Its
    // innermost text names the subscriber with a 5.1.1, but nothing presents it as a
    // delivery report (sender, subject, report part), so the classifier's decision does not
    // count it.
    let depth = 5000;
    let mut nested = String::from("Message-ID: <deep@mta>\r\nSubject: deep\r\n");
    for level in 0..depth {
        nested.push_str(&format!(
            "Content-Type: multipart/mixed; boundary=\"b{level}\"\r\n\r\n--b{level}\r\n"
        ));
    }
    nested.push_str("Content-Type: text/plain\r\n\r\nStatus: 5.1.1 bar@foo.com\r\n");
    for level in (0..depth).rev() {
        nested.push_str(&format!("--b{level}--\r\n"));
    }
    assert!(nested.len() < 1_000_000);
    let outcome = hostile_bounce(&server, &id, &other, 3, nested).await;
    assert_eq!(outcome, Outcome::Delivered);
    let record = &fake.only_bounce_of(SUBSCRIBER);
    assert_eq!(
        (record.hard_bounce_count, record.bounce_messages.len()),
        (1, 3)
    );
    assert_eq!(fake.only_bounce_of("other@foo.com").hard_bounce_count, 3);
}

// ---------------------------------------------------------------------------------------
// Crafted recipients and relay attempts
// ---------------------------------------------------------------------------------------

/// One transaction to `rcpt` (the text inside the angle brackets, raw bytes allowed);
/// returns the replies to RCPT and to the message (None: no DATA was possible).
async fn try_recipient(addr: SocketAddr, from: &str, rcpt: &[u8]) -> (String, Option<String>) {
    let (mut s, mut r, _) = greet(addr, ip("127.0.0.90")).await;
    assert_eq!(
        code(&cmd(&mut s, &mut r, "EHLO crafted.example").await),
        250
    );
    assert_eq!(
        code(&cmd(&mut s, &mut r, &format!("MAIL FROM:<{from}> SMTPUTF8")).await),
        250
    );
    let mut line = b"RCPT TO:<".to_vec();
    line.extend_from_slice(rcpt);
    line.extend_from_slice(b">\r\n");
    s.write_all(&line).await.unwrap();
    let rcpt_reply = r.next(&mut s).await.unwrap();
    if code(&rcpt_reply) != 250 {
        let data = cmd(&mut s, &mut r, "DATA").await;
        assert!(
            matches!(code(&data), 503 | 554),
            "DATA without a recipient: {data}"
        );
        return (rcpt_reply, None);
    }
    assert_eq!(code(&cmd(&mut s, &mut r, "DATA").await), 354);
    s.write_all(&mta::data_payload("Subject: unsubscribe\r\n\r\nx\r\n"))
        .await
        .unwrap();
    (rcpt_reply, r.next(&mut s).await)
}

#[tokio::test]
async fn crafted_recipients_never_reach_another_api_path() {
    // With the default id and code patterns, and with patterns that let anything through
    // (an operator's mistake): the encoding alone must then keep the path intact.
    for patterns in ["", "id_regex = '^.+$'\ncode_regex = '^.*$'\n"] {
        let fake = FakeApi::start().await;
        let victim = fake.add_subscription("s", SUBSCRIBER, "12345");
        let other = fake.add_subscription("s", "other@foo.com", "12345");
        // Every refusal by the API would count toward the brute-force limit of one client.
        let server = flows_server(
            &fake,
            "[inbound_smtp_server.limits]\nfailed_unsubscribe_threshold = 100000\n",
            patterns,
        )
        .await;
        let addr = server.addr(TlsMode::Starttls).unwrap();
        let crafted: Vec<(String, String)> = [
            (format!("{victim}/..%2F{other}"), "12345".to_string()),
            (format!("{other}/x"), "12345".to_string()),
            (
                format!("{other}/unsubscribe?unsubscriptionCode=12345&x="),
                "12345".to_string(),
            ),
            (format!("{other}/../{victim}"), "12345".to_string()),
            ("..".to_string(), "12345".to_string()),
            (".".to_string(), "12345".to_string()),
            ("%2E%2E".to_string(), "12345".to_string()),
            (format!("{other}%2F..%2F{victim}"), "12345".to_string()),
            (
                format!("{victim}?unsubscriptionCode=12345&x="),
                "1".to_string(),
            ),
            (format!("{victim}#"), "12345".to_string()),
            (format!("{victim}%00"), "12345".to_string()),
            (format!("{victim}%3F"), "12345".to_string()),
            (victim.clone(), "12345&userChannelId=x".to_string()),
            (victim.clone(), "12345#".to_string()),
            (victim.clone(), "1%26additionalServices%3D_all".to_string()),
            (victim.clone(), "12345?".to_string()),
            (format!("{victim}é"), "12345".to_string()),
            (victim.clone(), "12345é".to_string()),
            (format!("{victim}\u{202e}"), "12345".to_string()),
        ]
        .into_iter()
        .collect();
        let mut sent = Vec::new();
        for (id, code) in &crafted {
            for form in [
                format!("un-{id}-{code}@{DOMAIN}"),
                format!("\"un-{id}-{code}\"@{DOMAIN}"),
            ] {
                fake.clear_requests();
                let (rcpt, message) = try_recipient(addr, SUBSCRIBER, form.as_bytes()).await;
                if message.is_none() {
                    assert!(mta::code(&rcpt) >= 500, "{form}: {rcpt}");
                    assert!(
                        fake.requests().is_empty(),
                        "{form}: refused, yet an API call"
                    );
                    continue;
                }
                sent.push(form.clone());
                // The unsubscribe went to exactly this id's path, with exactly our two
                // parameters; anything else was the lookup whose id sits in a JSON filter.
                let expected = format!("/api/subscriptions/{}/unsubscribe", encode(id));
                let mut unsubscribes = 0;
                for r in fake.requests() {
                    if r.path().ends_with("/unsubscribe") {
                        unsubscribes += 1;
                        assert_eq!(r.path(), expected, "{form}: {}", r.line());
                        let query = r.uri.split_once('?').map(|(_, q)| q).unwrap_or("");
                        let keys: Vec<&str> = query
                            .split('&')
                            .map(|kv| kv.split('=').next().unwrap_or(""))
                            .collect();
                        assert_eq!(
                            keys,
                            ["unsubscriptionCode", "userChannelId"],
                            "{form}: {}",
                            r.line()
                        );
                    } else {
                        assert_eq!(r.path(), "/api/subscriptions", "{form}: {}", r.line());
                    }
                }
                assert_eq!(unsubscribes, 1, "{form}");
            }
        }
        // Spaces, quotes and NUL inside the brackets.
        for raw in [
            format!("un-{victim} x-12345@{DOMAIN}"),
            format!("un-{victim}\"-12345@{DOMAIN}"),
            format!("un-{victim}\0-12345@{DOMAIN}"),
            format!("\"un-{victim} x\"-12345@{DOMAIN}"),
        ] {
            let (rcpt, message) = try_recipient(addr, SUBSCRIBER, raw.as_bytes()).await;
            assert!(
                message.is_none() && mta::code(&rcpt) >= 500,
                "{raw:?}: {rcpt}"
            );
        }
        if patterns.is_empty() {
            assert!(
                sent.is_empty(),
                "accepted with the default patterns: {sent:?}"
            );
        } else {
            // Only the forms the SMTP grammar itself refuses (".." is not a dot-string,
            // quotes are not the pattern) stop at RCPT; the rest test the encoding.
            for c in ["/", "?", "#", "%", "&", "\u{e9}"] {
                assert!(
                    sent.iter().any(|f| f.contains(c)),
                    "no accepted recipient with {c:?}: {sent:?}"
                );
            }
        }
        for id in [&victim, &other] {
            let s = fake.subscription(id).unwrap();
            assert_eq!(s.state, "confirmed", "{s:?}");
        }
    }
}

#[tokio::test]
async fn nothing_outside_the_pattern_at_our_domains_is_accepted() {
    let fake = FakeApi::start().await;
    let server = flows_server(&fake, "", "").await;
    let addr = server.addr(TlsMode::Starttls).unwrap();
    let refused = [
        "postmaster@other.example".to_string(),
        "PostMaster@Other.Example".to_string(),
        format!("abuse@{DOMAIN}"),
        format!("root@{DOMAIN}"),
        format!("un-1@{DOMAIN}"),
        format!("bn--a@{DOMAIN}"),
        "bn-1-a@other.example".to_string(),
        "un-1-12345@other.example".to_string(),
        format!("@{DOMAIN}:user@other.example"),
        format!("@{DOMAIN},@relay.example:bn-1-a@other.example"),
        format!("\"bn-1-a\"@{DOMAIN}"),
        format!("\"user@other.example\"@{DOMAIN}"),
        format!("user%other.example@{DOMAIN}"),
        format!("bn-1-a%other.example@{DOMAIN}"),
        format!("user@other.example@{DOMAIN}"),
        format!("bn-1-a@{DOMAIN}@other.example"),
        format!("other.example!user@{DOMAIN}"),
        format!("bn-1-a!user@{DOMAIN}"),
        "other.example!bn-1-a".to_string(),
        "bn-1-a".to_string(),
        format!("bn-1-a@sub.{DOMAIN}"),
        format!("bn-1-a@{DOMAIN}.other.example"),
        format!("bn-1-a@x{DOMAIN}"),
        "bn-1-a@[127.0.0.1]".to_string(),
        "bn-1-a@[IPv6:::1]".to_string(),
        format!("bn-1-a@{DOMAIN}\u{0130}"),
        "".to_string(),
    ];
    for rcpt in &refused {
        let (reply, message) = try_recipient(addr, "sender@other.example", rcpt.as_bytes()).await;
        assert!(
            message.is_none() && code(&reply) >= 500,
            "{rcpt:?} accepted: {reply}"
        );
    }
    assert!(
        fake.requests().is_empty(),
        "{:?}",
        fake.requests().iter().map(|r| r.line()).collect::<Vec<_>>()
    );
}
