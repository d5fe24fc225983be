//! The real client address behind proxies (docs/behaviour.md §3): PROXY protocol v1/v2 from trusted
//! ranges, XCLIENT from trusted ranges, and allowed_clients. What the server records as
//! the client is what the delivered envelope carries.

mod harness;

use std::net::SocketAddr;
use std::time::Duration;

use harness::{Client, Recorder, code, start};
use notify_inbound::config::Settings;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

fn settings(listener: &str, server: &str) -> Settings {
    Settings::from_toml_str(&format!(
        "[inbound_smtp_server]\ndomain = 'notify.example'\n{server}\n\
         [inbound_smtp_server.limits]\nproxy_header_timeout_secs = 1\n\
         [[inbound_smtp_server.listeners]]\nip = '127.0.0.1'\nport = 0\ntls = 'none'\n{listener}\n\
         [operations]\nlisten = ''\n"
    ))
    .unwrap()
}

async fn send_bounce<S>(c: &mut Client<S>) -> String
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    assert_eq!(code(&c.cmd("EHLO proxy.example").await), 250);
    assert_eq!(code(&c.cmd("MAIL FROM:<>").await), 250);
    assert_eq!(code(&c.cmd("RCPT TO:<bn-1-2@notify.example>").await), 250);
    assert_eq!(code(&c.cmd("DATA").await), 354);
    c.cmd("Subject: x\r\n\r\nbody\r\n.").await
}

fn first_addr(server: &notify_inbound::server::Server) -> SocketAddr {
    server.listeners[0].addr
}

#[tokio::test]
async fn proxy_protocol_v1_and_v2_from_trusted_proxies_set_the_client() {
    let rec = Recorder::new();
    let server = start(
        settings("proxy_protocol = true", "trusted_proxies = ['127.0.0.0/8']"),
        rec.clone(),
    )
    .await;
    let addr = first_addr(&server);

    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(b"PROXY TCP4 203.0.113.7 192.0.2.1 40000 25\r\n")
        .await
        .unwrap();
    let mut c = Client::new(tcp);
    assert_eq!(code(&c.reply().await), 220);
    assert_eq!(code(&send_bounce(&mut c).await), 250);

    let header = ppp::v2::Builder::with_addresses(
        ppp::v2::Version::Two | ppp::v2::Command::Proxy,
        ppp::v2::Protocol::Stream,
        (
            "[2001:db8::42]:40000".parse::<SocketAddr>().unwrap(),
            "[2001:db8::1]:25".parse::<SocketAddr>().unwrap(),
        ),
    )
    .build()
    .unwrap();
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(&header).await.unwrap();
    let mut c = Client::new(tcp);
    assert_eq!(code(&c.reply().await), 220);
    assert_eq!(code(&send_bounce(&mut c).await), 250);

    let clients: Vec<String> = rec
        .messages
        .lock()
        .unwrap()
        .iter()
        .map(|(e, _)| e.client.to_string())
        .collect();
    assert_eq!(clients, vec!["203.0.113.7", "2001:db8::42"]);
}

#[tokio::test]
async fn a_trusted_proxy_must_send_the_header_and_others_may_not() {
    let rec = Recorder::new();
    let server = start(
        settings("proxy_protocol = true", "trusted_proxies = ['127.0.0.0/8']"),
        rec.clone(),
    )
    .await;
    // No header within the timeout: closed without a greeting.
    let mut c = Client::connect(first_addr(&server)).await;
    assert_eq!(c.try_reply().await, None);

    let server = start(
        settings("proxy_protocol = true", "trusted_proxies = ['10.0.0.0/8']"),
        rec.clone(),
    )
    .await;
    let mut c = Client::connect(first_addr(&server)).await;
    assert_eq!(code(&c.reply().await), 220);
    let r = c.cmd("PROXY TCP4 203.0.113.7 192.0.2.1 40000 25").await;
    assert!(r.starts_with("500"), "{r}");
    assert_eq!(code(&send_bounce(&mut c).await), 250);
    assert_eq!(
        rec.messages.lock().unwrap()[0].0.client.to_string(),
        "127.0.0.1"
    );
}

#[tokio::test]
async fn xclient_only_from_trusted_proxies() {
    let rec = Recorder::new();
    let server = start(
        settings("xclient = true", "trusted_proxies = ['127.0.0.1/32']"),
        rec.clone(),
    )
    .await;
    let mut c = Client::connect(first_addr(&server)).await;
    c.reply().await;
    let ehlo = c.cmd("EHLO nginx.example").await;
    assert!(ehlo.contains("XCLIENT"), "{ehlo}");
    let r = c
        .cmd("XCLIENT ADDR=198.51.100.9 LOGIN=[UNAVAILABLE] NAME=[UNAVAILABLE]")
        .await;
    assert!(r.starts_with("220"), "{r}");
    assert_eq!(code(&send_bounce(&mut c).await), 250);
    assert_eq!(
        rec.messages.lock().unwrap()[0].0.client.to_string(),
        "198.51.100.9"
    );

    let server = start(
        settings("xclient = true", "trusted_proxies = ['10.0.0.0/8']"),
        rec.clone(),
    )
    .await;
    let mut c = Client::connect(first_addr(&server)).await;
    c.reply().await;
    let ehlo = c.cmd("EHLO nginx.example").await;
    assert!(!ehlo.contains("XCLIENT"), "{ehlo}");
    let r = c.cmd("XCLIENT ADDR=198.51.100.9").await;
    assert!(r.starts_with("550 5.7.0"), "{r}");
}

#[tokio::test]
async fn clients_outside_allowed_ranges_get_554_at_connect() {
    let rec = Recorder::new();
    let server = start(
        settings("", "allowed_clients = ['10.0.0.0/8']"),
        rec.clone(),
    )
    .await;
    let mut c = Client::connect(first_addr(&server)).await;
    let r = c.reply().await;
    assert!(r.starts_with("554 5.7.1"), "{r}");
    assert!(c.closed().await);
    let server = start(
        settings("", "allowed_clients = ['127.0.0.0/8']"),
        rec.clone(),
    )
    .await;
    let mut c = Client::connect(first_addr(&server)).await;
    assert_eq!(code(&c.reply().await), 220);
    tokio::time::sleep(Duration::from_millis(10)).await;
}
