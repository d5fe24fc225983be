//! The SMTP server seen from outside: a real SMTP client (lettre) over plain, STARTTLS and
//! implicit TLS, and raw sockets where the protocol edge is the point. Delivery is
//! recorded by a stand-in so these tests pin down the protocol, not the flows.

mod harness;

use std::sync::Arc;
use std::time::Duration;

use harness::{Client, DOMAIN, Recorder, code, insecure_tls, settings, start};
use lettre::address::Envelope as LettreEnvelope;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use notify_inbound::config::TlsMode;
use notify_inbound::flows::CodeCheck;
use notify_inbound::reply::Reply;
use notify_inbound::router::RecipientKind;
use tokio_rustls::TlsConnector;

const MESSAGE: &[u8] = b"From: a@b.example\r\nTo: bn-1-2@notify.example\r\nSubject: hi\r\n\r\nline one\r\n..dot line\r\n";

fn lettre_envelope(from: Option<&str>, to: &str) -> LettreEnvelope {
    LettreEnvelope::new(from.map(|f| f.parse().unwrap()), vec![to.parse().unwrap()]).unwrap()
}

fn tls_params() -> TlsParameters {
    TlsParameters::builder(DOMAIN.to_string())
        .dangerous_accept_invalid_certs(true)
        .build_rustls()
        .unwrap()
}

async fn send_with(
    tls: Tls,
    port: u16,
    from: Option<&str>,
    to: &str,
) -> Result<lettre::transport::smtp::response::Response, lettre::transport::smtp::Error> {
    let transport = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous("127.0.0.1")
        .port(port)
        .tls(tls)
        .timeout(Some(Duration::from_secs(10)))
        .build();
    transport
        .send_raw(&lettre_envelope(from, to), MESSAGE)
        .await
}

#[tokio::test]
async fn plain_starttls_and_implicit_tls_deliver_with_a_real_client() {
    let rec = Recorder::new();
    let server = start(settings(""), rec.clone()).await;
    let plain = server.addr(TlsMode::Starttls).unwrap().port();
    let implicit = server.addr(TlsMode::Implicit).unwrap().port();

    let r = send_with(Tls::None, plain, None, "bn-1-2@notify.example")
        .await
        .unwrap();
    assert_eq!(r.code().to_string(), "250");
    send_with(
        Tls::Required(tls_params()),
        plain,
        Some("bar@foo.com"),
        "un-7-12345@notify.example",
    )
    .await
    .unwrap();
    send_with(
        Tls::Wrapper(tls_params()),
        implicit,
        Some("bar@foo.com"),
        "bn-9-x@NOTIFY.example",
    )
    .await
    .unwrap();

    let msgs = rec.messages.lock().unwrap().clone();
    assert_eq!(msgs.len(), 3);
    assert_eq!(msgs[0].0.mail_from, "");
    assert_eq!(msgs[0].0.recipient.kind, RecipientKind::Bounce);
    assert_eq!(msgs[1].0.mail_from, "bar@foo.com");
    assert_eq!(
        (
            msgs[1].0.recipient.id.as_str(),
            msgs[1].0.recipient.code.as_str()
        ),
        ("7", "12345")
    );
    assert_eq!(msgs[2].0.recipient.id, "9");
    // The client dot-stuffs "..dot line" and ends with CRLF.CRLF after its own CRLF; what
    // arrives is the message exactly, dot-stuffing undone. An unsubscribe needs no body,
    // and none is kept.
    for (envelope, body) in &msgs {
        if envelope.recipient.kind == RecipientKind::Unsubscribe {
            assert!(body.is_empty());
        } else {
            assert_eq!(body.as_slice(), [MESSAGE, b"\r\n"].concat().as_slice());
        }
    }
}

#[tokio::test]
async fn refused_recipients_and_delivery_errors_reach_the_client() {
    let rec = Recorder::new();
    let server = start(settings(""), rec.clone()).await;
    let port = server.addr(TlsMode::Starttls).unwrap().port();
    for to in [
        "undo-1-12345@notify.example",
        "un-1-12345@elsewhere.example",
    ] {
        let e = send_with(Tls::None, port, Some("bar@foo.com"), to)
            .await
            .unwrap_err();
        assert!(e.is_permanent(), "{to}: {e}");
    }
    *rec.reply.lock().unwrap() = Reply::temporary("API unavailable, try again later");
    let e = send_with(
        Tls::None,
        port,
        Some("bar@foo.com"),
        "un-1-12345@notify.example",
    )
    .await
    .unwrap_err();
    assert!(e.is_transient(), "{e}");
    assert_eq!(rec.count(), 1);
}

#[tokio::test]
async fn un_or_bn_recipients_past_the_limit_get_452() {
    let rec = Recorder::new();
    let mut s = settings("");
    s.inbound_smtp_server.max_recipients_per_transaction = 1;
    let server = start(s, rec.clone()).await;
    let mut c = Client::connect(server.addr(TlsMode::Starttls).unwrap()).await;
    c.reply().await;
    c.cmd("EHLO client.example").await;
    assert_eq!(code(&c.cmd("MAIL FROM:<>").await), 250);
    assert_eq!(code(&c.cmd("RCPT TO:<bn-1-a@notify.example>").await), 250);
    let r = c.cmd("RCPT TO:<bn-2-b@notify.example>").await;
    assert!(r.starts_with("452 4.5.3"), "{r}");
    assert_eq!(
        code(&c.cmd("RCPT TO:<postmaster@notify.example>").await),
        250
    );
    assert_eq!(code(&c.cmd("DATA").await), 354);
    assert_eq!(code(&c.cmd("Subject: x\r\n\r\nbody\r\n.").await), 250);
    let msgs = rec.messages.lock().unwrap().clone();
    assert_eq!(msgs.len(), 1);
    assert_eq!(msgs[0].0.recipient.id, "1");
    assert_eq!(msgs[0].1, b"Subject: x\r\n\r\nbody\r\n");
}

#[tokio::test]
async fn oversize_is_refused_at_mail_and_after_data_without_buffering() {
    let rec = Recorder::new();
    let server = start(
        settings("[inbound_smtp_server.options]\nsize = 10000\n"),
        rec.clone(),
    )
    .await;
    let mut c = Client::connect(server.addr(TlsMode::Starttls).unwrap()).await;
    c.reply().await;
    let ehlo = c.cmd("EHLO client.example").await;
    assert!(ehlo.contains("250-SIZE 10000"), "{ehlo}");
    let r = c.cmd("MAIL FROM:<> SIZE=10001").await;
    assert!(r.starts_with("552 5.3.4"), "{r}");
    assert_eq!(code(&c.cmd("MAIL FROM:<> SIZE=10000").await), 250);
    assert_eq!(code(&c.cmd("RCPT TO:<bn-1-a@notify.example>").await), 250);
    assert_eq!(code(&c.cmd("DATA").await), 354);
    let line = vec![b'x'; 998];
    for _ in 0..200 {
        c.send(&line).await;
        c.send(b"\r\n").await;
    }
    let r = c.cmd(".").await;
    assert!(r.starts_with("552 5.3.4"), "{r}");
    assert_eq!(rec.count(), 0);
    // The session goes on.
    assert_eq!(code(&c.cmd("NOOP").await), 250);
}

#[tokio::test]
async fn smuggled_terminators_never_split_a_message() {
    let rec = Recorder::new();
    let server = start(settings(""), rec.clone()).await;
    for sep in [&b"\n.\n"[..], b"\r.\r", b"\r\n.\n", b"\n.\r\n"] {
        let mut c = Client::connect(server.addr(TlsMode::Starttls).unwrap()).await;
        c.reply().await;
        c.cmd("EHLO client.example").await;
        c.cmd("MAIL FROM:<>").await;
        c.cmd("RCPT TO:<bn-1-a@notify.example>").await;
        assert_eq!(code(&c.cmd("DATA").await), 354);
        let mut body = b"Subject: a\r\n\r\nfirst".to_vec();
        body.extend_from_slice(sep);
        body.extend_from_slice(b"MAIL FROM:<>\r\nRCPT TO:<bn-2-b@notify.example>\r\nDATA\r\nSubject: smuggled\r\n\r\nx\r\n.\r\n");
        c.send(&body).await;
        let r = c.reply().await;
        assert!(r.starts_with("550 5.6.0"), "{sep:?}: {r}");
        // Nothing else was executed: the next reply belongs to the next command.
        assert_eq!(code(&c.cmd("NOOP").await), 250);
    }
    assert_eq!(rec.count(), 0);
}

#[tokio::test]
async fn starttls_discards_pipelined_plaintext() {
    let rec = Recorder::new();
    let server = start(settings(""), rec.clone()).await;
    let mut c = Client::connect(server.addr(TlsMode::Starttls).unwrap()).await;
    c.reply().await;
    c.cmd("EHLO client.example").await;
    c.send(b"STARTTLS\r\nRSET\r\n").await;
    let r = c.reply().await;
    assert!(r.starts_with("220 2.0.0"), "{r}");
    let connector = TlsConnector::from(insecure_tls());
    let name = rustls::pki_types::ServerName::try_from(DOMAIN).unwrap();
    let tls = connector.connect(name, c.into_inner()).await.unwrap();
    let mut c = Client::new(tls);
    // Had RSET been kept, its 250 would arrive first; MAIL before EHLO proves the reset.
    let r = c.cmd("MAIL FROM:<>").await;
    assert!(r.starts_with("503 5.5.1"), "{r}");
    let r = c.cmd("EHLO client.example").await;
    assert!(!r.contains("STARTTLS"), "{r}");
}

#[tokio::test]
async fn long_lines_timeouts_and_http_are_handled() {
    let rec = Recorder::new();
    let server = start(
        settings("[inbound_smtp_server.limits]\ncommand_timeout_secs = 1\n"),
        rec.clone(),
    )
    .await;
    let addr = server.addr(TlsMode::Starttls).unwrap();
    let mut c = Client::connect(addr).await;
    c.reply().await;
    let long = format!("NOOP {}", "x".repeat(600));
    let r = c.cmd(&long).await;
    assert!(r.starts_with("500 5.5.2"), "{r}");
    // A megabyte without a line end is skipped in bounded memory, then answered.
    c.send(&vec![b'a'; 1 << 20]).await;
    let r = c.cmd("").await;
    assert!(r.starts_with("500 5.5.2"), "{r}");
    assert_eq!(code(&c.cmd("NOOP").await), 250);
    // Idle past the command timeout: 421 4.4.2 and closed.
    let r = c.reply().await;
    assert!(r.starts_with("421 4.4.2"), "{r}");
    assert!(c.closed().await);

    let mut c = Client::connect(addr).await;
    c.reply().await;
    let r = c.cmd("CONNECT example.com:443 HTTP/1.1").await;
    assert_eq!(code(&r), 421);
    assert!(c.closed().await);
}

#[tokio::test]
async fn shutdown_lets_a_transaction_in_flight_finish() {
    let rec = Recorder::new();
    *rec.delay.lock().unwrap() = Duration::from_millis(500);
    let server = start(settings(""), rec.clone()).await;
    let addr = server.addr(TlsMode::Starttls).unwrap();
    let mut idle = Client::connect(addr).await;
    idle.reply().await;
    let mut c = Client::connect(addr).await;
    c.reply().await;
    c.cmd("EHLO client.example").await;
    c.cmd("MAIL FROM:<>").await;
    c.cmd("RCPT TO:<bn-1-a@notify.example>").await;
    let handle = server.shutdown_handle();
    let stopping = tokio::spawn(server.shutdown(Duration::from_secs(10)));
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(handle.phase() >= notify_inbound::server::shutdown::Phase::Draining);
    // The idle session is told to go away; the one in a transaction carries on.
    let r = idle.reply().await;
    assert!(r.starts_with("421 4.3.2"), "{r}");
    assert_eq!(code(&c.cmd("DATA").await), 354);
    let r = c.cmd("Subject: x\r\n\r\nbody\r\n.").await;
    assert!(r.starts_with("250"), "{r}");
    assert_eq!(rec.count(), 1);
    let r = c.cmd("NOOP").await;
    assert!(r.starts_with("421 4.3.2"), "{r}");
    stopping.await.unwrap();
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}

#[tokio::test]
async fn connection_limit_answers_421() {
    let rec = Recorder::new();
    let server = start(
        settings("[inbound_smtp_server.limits]\nmax_connections = 2\n"),
        rec.clone(),
    )
    .await;
    let addr = server.addr(TlsMode::Starttls).unwrap();
    let mut a = Client::connect(addr).await;
    a.reply().await;
    let mut b = Client::connect(addr).await;
    b.reply().await;
    let mut c = Client::connect(addr).await;
    let r = c.reply().await;
    assert!(r.starts_with("421 4.7.0"), "{r}");
    drop(a);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut d = Client::connect(addr).await;
    assert_eq!(code(&d.reply().await), 220);
    let _ = Arc::strong_count(&rec);
}

#[tokio::test]
async fn wrong_codes_from_one_client_are_rate_limited() {
    let rec = Recorder::new();
    *rec.reply.lock().unwrap() = Reply::new(550, "5.7.1", "wrong code");
    *rec.code_check.lock().unwrap() = CodeCheck::Wrong;
    let server = start(
        settings("[inbound_smtp_server.limits]\nfailed_unsubscribe_threshold = 3\nfailed_unsubscribe_window_secs = 600\n"),
        rec.clone(),
    )
    .await;
    let mut c = Client::connect(server.addr(TlsMode::Starttls).unwrap()).await;
    c.reply().await;
    c.cmd("EHLO client.example").await;
    for i in 0..3 {
        c.cmd("MAIL FROM:<bar@foo.com>").await;
        assert_eq!(
            code(&c.cmd(&format!("RCPT TO:<un-1-{i}@notify.example>")).await),
            250
        );
        c.cmd("DATA").await;
        assert_eq!(code(&c.cmd("Subject: x\r\n\r\n.").await), 550);
    }
    c.cmd("MAIL FROM:<bar@foo.com>").await;
    let r = c.cmd("RCPT TO:<un-2-99999@notify.example>").await;
    assert!(r.starts_with("450 4.7.1"), "{r}");
    // Codes can be guessed through bounces too: they are refused all the same.
    let r = c.cmd("RCPT TO:<bn-2-99999@notify.example>").await;
    assert!(r.starts_with("450 4.7.1"), "{r}");
    assert_eq!(rec.count(), 3);
}

#[tokio::test]
async fn per_address_connection_limit_answers_421() {
    let rec = Recorder::new();
    let server = start(
        settings("[inbound_smtp_server.limits]\nmax_connections_per_ip = 1\n"),
        rec.clone(),
    )
    .await;
    let addr = server.addr(TlsMode::Starttls).unwrap();
    let mut a = Client::connect(addr).await;
    assert_eq!(code(&a.reply().await), 220);
    let mut b = Client::connect(addr).await;
    let r = b.reply().await;
    assert!(
        r.starts_with("421 4.7.0") && r.contains("your address"),
        "{r}"
    );
}
