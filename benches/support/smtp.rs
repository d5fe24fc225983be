//! A small SMTP client for benchmarks (PIPELINING of MAIL, RCPT and DATA, as Postfix's
//! client does), and the `un` and `bn` test messages.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// Why a client gave up.
#[derive(Debug)]
pub enum ClientError {
    Io(std::io::Error),
    Closed,
    /// A reply other than the expected one: (what was sent, the reply).
    Unexpected(&'static str, String),
}

impl std::fmt::Display for ClientError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClientError::Io(e) => write!(f, "i/o: {e}"),
            ClientError::Closed => write!(f, "server closed the connection"),
            ClientError::Unexpected(cmd, reply) => write!(f, "{cmd}: unexpected reply {reply:?}"),
        }
    }
}

impl From<std::io::Error> for ClientError {
    fn from(e: std::io::Error) -> Self {
        ClientError::Io(e)
    }
}

pub struct Client {
    stream: TcpStream,
    buf: Vec<u8>,
    /// Bytes in `buf` already consumed.
    start: usize,
}

impl Client {
    pub async fn connect(addr: SocketAddr) -> Result<Client, ClientError> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(Client::from_stream(stream))
    }

    /// Connects from a given local address (to spread many connections over 127.0.0.x).
    pub async fn connect_from(local: SocketAddr, addr: SocketAddr) -> Result<Client, ClientError> {
        let socket = TcpSocket::new_v4()?;
        socket.bind(local)?;
        let stream = socket.connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(Client::from_stream(stream))
    }

    pub fn from_stream(stream: TcpStream) -> Client {
        Client {
            stream,
            buf: Vec::with_capacity(512),
            start: 0,
        }
    }

    /// Reads one whole reply (all its lines) and returns its code and text.
    pub async fn reply(&mut self) -> Result<(u16, String), ClientError> {
        let begin = self.start;
        loop {
            // Look for the last line of the reply: "ddd " (or a line shorter than 4).
            let mut pos = self.start;
            let mut done = None;
            while let Some(nl) = self.buf[pos..].iter().position(|&b| b == b'\n') {
                let line = &self.buf[pos..pos + nl + 1];
                pos += nl + 1;
                if line.len() < 5 || line[3] == b' ' {
                    done = Some(pos);
                    break;
                }
            }
            if let Some(end) = done {
                let text = String::from_utf8_lossy(&self.buf[begin..end]).into_owned();
                let code = text.get(..3).and_then(|c| c.parse().ok()).unwrap_or(0);
                self.start = end;
                if self.start == self.buf.len() {
                    self.buf.clear();
                    self.start = 0;
                }
                return Ok((code, text));
            }
            let mut chunk = [0u8; 2048];
            let n = self.stream.read(&mut chunk).await?;
            if n == 0 {
                return Err(ClientError::Closed);
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    pub async fn expect(&mut self, what: &'static str, code: u16) -> Result<(), ClientError> {
        let (got, text) = self.reply().await?;
        if got != code {
            return Err(ClientError::Unexpected(what, text));
        }
        Ok(())
    }

    pub async fn send(&mut self, bytes: &[u8]) -> Result<(), ClientError> {
        self.stream.write_all(bytes).await?;
        Ok(())
    }

    /// Reads the greeting and says EHLO.
    pub async fn hello(&mut self) -> Result<(), ClientError> {
        self.expect("greeting", 220).await?;
        self.send(b"EHLO bench.client.example\r\n").await?;
        self.expect("EHLO", 250).await
    }

    /// One transaction, MAIL, RCPT and DATA pipelined; `body` is dot-stuffed and ends with
    /// CRLF. Returns the time from the first byte sent to the reply to the message.
    pub async fn transaction(
        &mut self,
        from: &str,
        to: &str,
        body: &[u8],
    ) -> Result<Duration, ClientError> {
        let started = Instant::now();
        let envelope = format!("MAIL FROM:<{from}>\r\nRCPT TO:<{to}>\r\nDATA\r\n");
        self.send(envelope.as_bytes()).await?;
        self.expect("MAIL FROM", 250).await?;
        self.expect("RCPT TO", 250).await?;
        self.expect("DATA", 354).await?;
        let mut message = Vec::with_capacity(body.len() + 3);
        message.extend_from_slice(body);
        message.extend_from_slice(b".\r\n");
        self.send(&message).await?;
        self.expect("end of data", 250).await?;
        Ok(started.elapsed())
    }

    pub async fn quit(mut self) {
        let _ = self.send(b"QUIT\r\n").await;
        let _ = self.reply().await;
    }
}

/// A list-unsubscribe message as a mail client sends it to a `List-Unsubscribe: mailto:`
/// address.
pub fn un_message(from: &str, to: &str, n: u64) -> Vec<u8> {
    format!(
        "Date: Thu, 29 Aug 2024 11:55:34 -0700\r\n\
         From: <{from}>\r\n\
         To: <{to}>\r\n\
         Subject: unsubscribe\r\n\
         Message-ID: <unsub.{n}@client.example>\r\n\
         MIME-Version: 1.0\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\
         \r\n\
         This message was sent to unsubscribe from the list.\r\n"
    )
    .into_bytes()
}

/// A Postfix-style delivery status notification (multipart/report) for a hard bounce
/// (5.1.1) of `failed`, with the returned message's headers, as sent to the VERP address
/// `to`.
pub fn bn_message(failed: &str, to: &str, n: u64) -> Vec<u8> {
    let boundary = format!("{n}.1724957734/mx.subscriber.example");
    format!(
        "Received: by mx.subscriber.example (Postfix)\r\n\
         \tid 4Wv1Yk3Lz7z9t; Thu, 29 Aug 2024 18:55:34 +0000 (UTC)\r\n\
         Date: Thu, 29 Aug 2024 18:55:34 +0000 (UTC)\r\n\
         From: MAILER-DAEMON@mx.subscriber.example (Mail Delivery System)\r\n\
         Subject: Undelivered Mail Returned to Sender\r\n\
         To: {to}\r\n\
         Auto-Submitted: auto-replied\r\n\
         MIME-Version: 1.0\r\n\
         Content-Type: multipart/report; report-type=delivery-status;\r\n\
         \tboundary=\"{boundary}\"\r\n\
         Content-Transfer-Encoding: 8bit\r\n\
         Message-Id: <dsn.{n}@mx.subscriber.example>\r\n\
         \r\n\
         This is a MIME-encapsulated message.\r\n\
         \r\n\
         --{boundary}\r\n\
         Content-Description: Notification\r\n\
         Content-Type: text/plain; charset=us-ascii\r\n\
         \r\n\
         This is the mail system at host mx.subscriber.example.\r\n\
         \r\n\
         I'm sorry to have to inform you that your message could not\r\n\
         be delivered to one or more recipients. It's attached below.\r\n\
         \r\n\
         \x20                  The mail system\r\n\
         \r\n\
         <{failed}>: host mx.subscriber.example[192.0.2.25] said: 550 5.1.1\r\n\
         \x20   <{failed}>: Recipient address rejected: User unknown in local\r\n\
         \x20   recipient table (in reply to RCPT TO command)\r\n\
         \r\n\
         --{boundary}\r\n\
         Content-Description: Delivery report\r\n\
         Content-Type: message/delivery-status\r\n\
         \r\n\
         Reporting-MTA: dns; mx.subscriber.example\r\n\
         X-Postfix-Queue-ID: 4Wv1Yk3Lz7z9t\r\n\
         Arrival-Date: Thu, 29 Aug 2024 18:55:33 +0000 (UTC)\r\n\
         \r\n\
         Final-Recipient: rfc822; {failed}\r\n\
         Original-Recipient: rfc822;{failed}\r\n\
         Action: failed\r\n\
         Status: 5.1.1\r\n\
         Remote-MTA: dns; mx.subscriber.example\r\n\
         Diagnostic-Code: smtp; 550 5.1.1 <{failed}>: Recipient address rejected:\r\n\
         \x20   User unknown in local recipient table\r\n\
         \r\n\
         --{boundary}\r\n\
         Content-Description: Undelivered Message Headers\r\n\
         Content-Type: text/rfc822-headers\r\n\
         \r\n\
         Return-Path: <{to}>\r\n\
         Received: from notify.example (notify.example [192.0.2.10])\r\n\
         \tby mx.subscriber.example (Postfix) with ESMTPS id 4Wv1Yk3Lz7z9t\r\n\
         \tfor <{failed}>; Thu, 29 Aug 2024 18:55:33 +0000 (UTC)\r\n\
         From: Notifications <noreply@notify.example>\r\n\
         To: <{failed}>\r\n\
         Subject: Your weekly notification\r\n\
         Message-ID: <notification.{n}@notify.example>\r\n\
         Date: Thu, 29 Aug 2024 18:55:30 +0000\r\n\
         MIME-Version: 1.0\r\n\
         Content-Type: text/html; charset=utf-8\r\n\
         \r\n\
         --{boundary}--\r\n"
    )
    .into_bytes()
}

/// The `p` quantile (0..=1) of sorted samples.
pub fn quantile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Milliseconds with three decimals, for tables.
pub fn ms(d: Duration) -> String {
    format!("{:.3}", d.as_secs_f64() * 1000.0)
}
