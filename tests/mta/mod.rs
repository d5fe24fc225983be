//! A sending MTA as the reliability tests need it: one transaction per connection over raw
//! sockets, every I/O step under a deadline, and a retry loop that treats a 4xx reply, a
//! dropped connection or a missing reply the way Postfix or Exim do (try again later) and a
//! 5xx as final. The source address can be chosen on loopback (127.0.0.0/8), so a test can
//! play several clients against the per-address limits.
#![allow(dead_code)]

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpSocket, TcpStream};

// One reader for every test client; a test using both the harness and the mta loads it
// twice, a private copy each.
#[allow(clippy::duplicate_mod)]
#[path = "../common/replies.rs"]
mod replies;
pub use replies::Replies;

/// One message to deliver.
#[derive(Debug, Clone)]
pub struct Job {
    /// MAIL FROM address, empty for the null sender.
    pub from: String,
    pub to: String,
    /// The message with CRLF line ends; dot-stuffed on sending.
    pub message: String,
}

/// What one attempt came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// 250 to the message.
    Delivered,
    /// A 4xx reply at any step (the reply line).
    Temporary(String),
    /// A 5xx reply at any step (the reply line).
    Permanent(String),
    /// The connection failed or closed, or a reply did not come in time.
    Dropped(String),
}

impl Outcome {
    pub fn is_retryable(&self) -> bool {
        matches!(self, Outcome::Temporary(_) | Outcome::Dropped(_))
    }
}

/// How long each step may take before the attempt counts as dropped.
pub const STEP_TIMEOUT: Duration = Duration::from_secs(20);

/// Connects to `server`, from `source` when given (any port).
pub async fn connect(server: SocketAddr, source: Option<IpAddr>) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    if let Some(ip) = source {
        socket.bind(SocketAddr::new(ip, 0))?;
    }
    tokio::time::timeout(STEP_TIMEOUT, socket.connect(server))
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out"))?
}

/// The reply code at the start of a reply text (0 when there is none).
pub fn code(reply: &str) -> u16 {
    reply.get(..3).and_then(|c| c.parse().ok()).unwrap_or(0)
}

/// `message` dot-stuffed and terminated, ready to follow 354.
pub fn data_payload(message: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len() + 8);
    let mut at_line_start = true;
    for &b in message.as_bytes() {
        if at_line_start && b == b'.' {
            out.push(b'.');
        }
        out.push(b);
        at_line_start = b == b'\n';
    }
    if !out.ends_with(b"\r\n") {
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b".\r\n");
    out
}

/// One transaction on a new connection; also returns the greeting (it names the replica).
pub async fn attempt_from(
    server: SocketAddr,
    source: Option<IpAddr>,
    job: &Job,
) -> (Outcome, String) {
    let mut stream = match connect(server, source).await {
        Ok(s) => s,
        Err(e) => return (Outcome::Dropped(format!("connect: {e}")), String::new()),
    };
    let mut replies = Replies::new();
    let Some(greeting) = replies.next(&mut stream).await else {
        return (Outcome::Dropped("no greeting".into()), String::new());
    };
    let outcome = transaction(&mut stream, &mut replies, &greeting, job).await;
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        let _ = stream.write_all(b"QUIT\r\n").await;
        let _ = replies.next(&mut stream).await;
    })
    .await;
    (outcome, greeting)
}

pub async fn attempt(server: SocketAddr, job: &Job) -> Outcome {
    attempt_from(server, None, job).await.0
}

async fn transaction(
    stream: &mut TcpStream,
    replies: &mut Replies,
    greeting: &str,
    job: &Job,
) -> Outcome {
    if let Some(stop) = judge(greeting, 220) {
        return stop;
    }
    let steps = [
        ("EHLO mta.example".to_string(), 250),
        (format!("MAIL FROM:<{}>", job.from), 250),
        (format!("RCPT TO:<{}>", job.to), 250),
        ("DATA".to_string(), 354),
    ];
    for (command, want) in steps {
        if let Err(e) = stream.write_all(format!("{command}\r\n").as_bytes()).await {
            return Outcome::Dropped(format!("{command}: {e}"));
        }
        let Some(reply) = replies.next(stream).await else {
            return Outcome::Dropped(format!("no reply to {command}"));
        };
        if let Some(stop) = judge(&reply, want) {
            return stop;
        }
    }
    if let Err(e) = stream.write_all(&data_payload(&job.message)).await {
        return Outcome::Dropped(format!("message: {e}"));
    }
    let Some(reply) = replies.next(stream).await else {
        return Outcome::Dropped("no reply to the message".into());
    };
    judge(&reply, 250).unwrap_or(Outcome::Delivered)
}

/// `None` when the reply is the one wanted, else how the attempt ends.
fn judge(reply: &str, want: u16) -> Option<Outcome> {
    let c = code(reply);
    if c == want {
        None
    } else if (400..500).contains(&c) {
        Some(Outcome::Temporary(reply.trim_end().to_string()))
    } else if c >= 500 {
        Some(Outcome::Permanent(reply.trim_end().to_string()))
    } else {
        Some(Outcome::Dropped(format!(
            "unexpected reply: {}",
            reply.trim_end()
        )))
    }
}

/// Delivers `job` like an MTA: retries after `backoff` on a 4xx or a dropped connection,
/// panics on a 5xx or after `max_attempts`. Returns the outcome of every attempt.
pub async fn deliver_with_retries(
    server: SocketAddr,
    job: &Job,
    backoff: Duration,
    max_attempts: usize,
) -> Vec<Outcome> {
    let mut outcomes = Vec::new();
    loop {
        let outcome = attempt(server, job).await;
        let done = outcome == Outcome::Delivered;
        let retry = outcome.is_retryable();
        outcomes.push(outcome);
        if done {
            return outcomes;
        }
        assert!(retry, "{job:?} refused: {outcomes:?}");
        assert!(
            outcomes.len() < max_attempts,
            "{job:?} not delivered after {max_attempts} attempts: {outcomes:?}"
        );
        tokio::time::sleep(backoff).await;
    }
}

/// Waits until a full SMTP greeting naming `name` (a replica's hostname) comes from `port`
/// on 127.0.0.1, directly or through a proxy in front of the replicas.
pub async fn wait_greeting_from(port: u16, name: &str) {
    let addr = format!("127.0.0.1:{port}").parse().unwrap();
    for _ in 0..400 {
        if let Ok(mut s) = connect(addr, None).await {
            let mut r = Replies::new();
            if let Ok(Some(g)) =
                tokio::time::timeout(Duration::from_millis(500), r.next(&mut s)).await
                && g.starts_with("220 ")
                && g.contains(name)
            {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no greeting from {name} on port {port}");
}
