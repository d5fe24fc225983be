//! The release of the binary as an operator runs it: SIGTERM while a transaction is in
//! flight lets it finish with its 250, refuses new connections, and exits cleanly.

mod common;
mod harness;

use std::process::Stdio;
use std::time::Duration;

use common::fake_api::{FakeApi, Fault};
use harness::{Client, code};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test]
async fn sigterm_mid_transaction_finishes_it_then_exits() {
    let fake = FakeApi::start().await;
    let id = fake.add_subscription("myService", "bar@foo.com", "12345");
    // The unsubscribe call takes a while, so SIGTERM arrives while the API is being asked.
    fake.fail_all(Fault::Slow(Duration::from_millis(1500)));
    let port = free_port();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_notify-inbound"))
        .arg("serve")
        .env("NOTIFY_INBOUND__INTERNAL_HTTP_HOST", fake.host_url())
        .env("NOTIFY_INBOUND__INBOUND_SMTP_SERVER__DOMAIN", "invalid.local")
        .env("NOTIFY_INBOUND__INBOUND_SMTP_SERVER__LISTENING_IP", "127.0.0.1")
        .env("NOTIFY_INBOUND__INBOUND_SMTP_SERVER__LISTENING_SMTP_PORT", port.to_string())
        .env("NOTIFY_INBOUND__OPERATIONS__LISTEN", "")
        .current_dir(std::env::temp_dir())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("binary starts");
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let mut c = None;
    for _ in 0..100 {
        if let Ok(s) = tokio::net::TcpStream::connect(addr).await {
            c = Some(Client::new(s));
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut c = c.expect("server listening");
    assert_eq!(code(&c.reply().await), 220);
    c.cmd("EHLO client.example").await;
    c.cmd("MAIL FROM:<bar@foo.com>").await;
    assert_eq!(code(&c.cmd(&format!("RCPT TO:<un-{id}-12345@invalid.local>")).await), 250);
    assert_eq!(code(&c.cmd("DATA").await), 354);
    c.send(b"Subject: unsubscribe\r\n\r\n.\r\n").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let pid = child.id().unwrap().to_string();
    let killed = std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(killed.success());
    let r = c.reply().await;
    assert!(r.starts_with("250"), "{r}");
    assert_eq!(fake.subscription(&id).unwrap().state, "deleted");
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .expect("exits after the transaction")
        .unwrap();
    assert!(status.success(), "{status:?}");
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}
