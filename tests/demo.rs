//! The README's demo (`cargo run --example demo`): its printed `swaks` lines, read back and
//! sent by a real SMTP client, get the replies the demo promises and change the fake API's
//! records.

#[path = "../examples/demo.rs"]
mod demo;

use std::time::Duration;

use lettre::address::Envelope;
use lettre::transport::smtp::client::Tls;
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};

/// Splits a shell line into words: blanks separate, single quotes group.
fn words(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut word = String::new();
    let mut quoted = false;
    let mut any = false;
    for c in line.chars() {
        match c {
            '\'' => {
                quoted = !quoted;
                any = true;
            }
            c if c.is_whitespace() && !quoted => {
                if any {
                    out.push(std::mem::take(&mut word));
                    any = false;
                }
            }
            c => {
                word.push(c);
                any = true;
            }
        }
    }
    if any {
        out.push(word);
    }
    out
}

/// What one `swaks` line sends: the server, the envelope and the message.
struct Swaks {
    server: String,
    from: Option<String>,
    to: String,
    message: Vec<u8>,
}

fn parse_swaks(line: &str) -> Swaks {
    let words = words(line);
    assert_eq!(words[0], "swaks", "{line}");
    let (mut server, mut from, mut to) = (None, None, None);
    let (mut headers, mut body, mut data) = (Vec::new(), None, None);
    let mut args = words[1..].iter();
    while let Some(flag) = args.next() {
        let value = args
            .next()
            .unwrap_or_else(|| panic!("{flag} without a value: {line}"));
        match flag.as_str() {
            "--server" => server = Some(value.clone()),
            "--from" => from = Some(value.clone()),
            "--to" => to = Some(value.clone()),
            "--header" => headers.push(value.clone()),
            "--body" => body = Some(value.clone()),
            "--data" => {
                let path = value.strip_prefix('@').expect("--data @FILE");
                data = Some(std::fs::read(path).expect("the demo's DSN file"));
            }
            other => panic!("unexpected swaks option {other}: {line}"),
        }
    }
    let to = to.expect("--to");
    let from = from.expect("--from");
    let from = (from != "<>").then_some(from);
    let message = data.unwrap_or_else(|| {
        let mut m = format!("From: {}\r\nTo: {to}\r\n", from.as_deref().unwrap_or("<>"));
        for h in &headers {
            m.push_str(&format!("{h}\r\n"));
        }
        m.push_str(&format!("\r\n{}\r\n", body.as_deref().unwrap_or("")));
        m.into_bytes()
    });
    Swaks {
        server: server.expect("--server"),
        from,
        to,
        message,
    }
}

/// Sends as `swaks` would and returns the reply to DATA (or to the command that failed).
async fn send(swaks: &Swaks) -> String {
    let (host, port) = swaks.server.rsplit_once(':').expect("--server HOST:PORT");
    let transport = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host)
        .port(port.parse().expect("port"))
        .tls(Tls::None)
        .timeout(Some(Duration::from_secs(20)))
        .build();
    let envelope = Envelope::new(
        swaks.from.as_deref().map(|f| f.parse().expect("from")),
        vec![swaks.to.parse().expect("to")],
    )
    .expect("envelope");
    match transport.send_raw(&envelope, &swaks.message).await {
        Ok(r) => format!("{} {}", r.code(), r.message().collect::<Vec<_>>().join(" ")),
        Err(e) => e.to_string(),
    }
}

#[tokio::test]
async fn the_demo_lines_unsubscribe_and_record_a_bounce() {
    let dir = tempfile::tempdir().unwrap();
    let demo = demo::Demo::start(dir.path()).await.expect("demo starts");
    let lines: Vec<&str> = demo
        .instructions
        .lines()
        .filter(|l| l.starts_with("swaks "))
        .collect();
    assert_eq!(lines.len(), 3, "{}", demo.instructions);
    assert!(lines[1].contains(&format!("--data @{}", demo.dsn.display())));

    let reply = send(&parse_swaks(lines[0])).await;
    assert_eq!(reply, "250 2.0.0 unsubscribed");
    let alice = demo.fake.subscription("1").unwrap();
    assert_eq!(alice.user_channel_id, "alice@example.com");
    assert_eq!(alice.state, "deleted");

    let reply = send(&parse_swaks(lines[1])).await;
    assert_eq!(reply, "250 2.0.0 bounce accepted");
    let bounce = demo.fake.only_bounce_of("bob@example.com");
    assert_eq!(bounce.hard_bounce_count, 1);
    assert_eq!(bounce.state, "active");
    assert_eq!(demo.fake.subscription("2").unwrap().state, "confirmed");

    let reply = send(&parse_swaks(lines[2])).await;
    assert!(reply.contains("550") && reply.contains("5.7.1"), "{reply}");
    assert_eq!(demo.fake.subscription("3").unwrap().state, "confirmed");

    assert!(
        demo.records()
            .contains(&"subscription 1 alice@example.com deleted".to_string())
    );
    demo.stop().await;
}
