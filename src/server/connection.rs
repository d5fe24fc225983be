//! One SMTP connection: reads command lines and message data from the stream under the
//! limits (line length, size, timeouts, shutdown), runs them through the [`Session`] state
//! machine, performs STARTTLS, and hands each complete transaction to the flows
//! ([`crate::flows::deliver_transaction`]), which decide the reply.
//!
//! Replies are buffered while the client has more pipelined commands waiting and flushed
//! before the next read would block (RFC 2920).

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, BytesMut};
use smtp_proto::request::receiver::DataReceiver;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

use super::Context;
use super::io::{BoxStream, write_all_timeout};
use super::session::{Action, MAX_COMMAND_LINE, Session, TlsAtStart};
use super::shutdown::Phase;
use crate::flows::{Transaction, TransactionOutcome, deliver_transaction};
use crate::limiter::{Charge, ConnectionPermit};
use crate::logging;
use crate::metrics::{AbortReason, CommandClass, HandshakeMode, MessageOutcome};
use crate::reply::Reply;
use crate::router::RecipientKind;

/// Why a connection ended early.
#[derive(Debug, thiserror::Error)]
pub enum ConnError {
    #[error("client closed the connection")]
    Closed,
    #[error("i/o error: {0}")]
    Io(#[from] io::Error),
    #[error("timed out")]
    Timeout,
    #[error("server shutting down")]
    Shutdown,
    #[error("TLS handshake failed: {0}")]
    Tls(io::Error),
}

/// A command line as read, or the fact that it was too long (and has been skipped).
enum Line {
    Command(Vec<u8>),
    TooLong,
}

/// The outcome of reading one message body.
struct Body {
    bytes: Vec<u8>,
    /// Total size after dot-unstuffing, even when the bytes were discarded.
    size: usize,
    oversize: bool,
    /// A bare CR or LF next to a lone dot: an attempt to smuggle a second message.
    smuggling: bool,
    /// Keeping the message would have crossed `limits.max_inflight_bytes`: its bytes were
    /// discarded.
    over_budget: bool,
    /// The bytes kept, held against the in-flight budget until the message is done with.
    charge: Option<Charge>,
}

/// Read sizes: small while waiting for a command, so the many idle sessions a server holds
/// cost little memory each, and larger while a message streams in, so it takes few reads.
const COMMAND_READ: usize = 1024;
const DATA_READ: usize = 16 * 1024;

/// A connection in progress.
pub struct Connection {
    ctx: Arc<Context>,
    stream: BoxStream,
    rbuf: BytesMut,
    wbuf: Vec<u8>,
    session: Session,
    /// This connection's slot under the connection limits, held by the real client address.
    permit: ConnectionPermit,
    session_deadline: Instant,
    /// When the session last sent a command that did work; under stress a session must do
    /// so every `limits.stress_command_timeout_secs`.
    last_work: Instant,
    /// Skipping the rest of an over-long line.
    discarding: bool,
}

impl Connection {
    pub fn new(
        ctx: Arc<Context>,
        stream: BoxStream,
        client: SocketAddr,
        permit: ConnectionPermit,
        tls: TlsAtStart,
        xclient_allowed: bool,
    ) -> Connection {
        let limits = &ctx.settings.inbound_smtp_server.limits;
        let session_deadline = Instant::now() + limits.session_timeout;
        let mut session = Session::new(client.ip(), tls);
        session.xclient_allowed = xclient_allowed;
        Connection {
            ctx,
            stream,
            rbuf: BytesMut::new(),
            wbuf: Vec::new(),
            session,
            permit,
            session_deadline,
            last_work: Instant::now(),
            discarding: false,
        }
    }

    fn limits(&self) -> &crate::config::SmtpLimits {
        &self.ctx.settings.inbound_smtp_server.limits
    }

    /// Runs the session to its end. Errors are the client's doing or the network's and are
    /// only logged by the caller.
    pub async fn run(mut self) -> Result<(), ConnError> {
        let greeting = Reply::new(
            220,
            "",
            format!("{} ESMTP notify-inbound", self.ctx.hostname),
        );
        self.ctx
            .metrics
            .smtp_reply(CommandClass::Greeting, greeting.code);
        self.queue(&greeting);
        self.flush().await?;
        loop {
            let line = match self.next_line().await {
                Ok(line) => line,
                Err(ConnError::Timeout) => {
                    let (text, reason) = if self.ctx.connections.stressed() {
                        (
                            "server busy and this session idle, closing",
                            AbortReason::StressIdle,
                        )
                    } else if Instant::now() >= self.session_deadline {
                        (
                            "session time limit reached, closing",
                            AbortReason::SessionTimeout,
                        )
                    } else {
                        (
                            "timeout waiting for a command, closing",
                            AbortReason::CommandTimeout,
                        )
                    };
                    return self.abort(reason, Reply::new(421, "4.4.2", text)).await;
                }
                Err(ConnError::Shutdown) => {
                    return self.abort(AbortReason::Shutdown, shutting_down()).await;
                }
                Err(e) => return Err(e),
            };
            let (class, action) = match line {
                Line::TooLong => (
                    CommandClass::Unknown,
                    self.session.line_too_long(&self.ctx.session_cfg),
                ),
                Line::Command(line) => {
                    let guard = self.ctx.guard.as_deref();
                    let action =
                        self.session
                            .handle(&line, &self.ctx.session_cfg, &self.ctx.router, guard);
                    if !self.session.last_was_noop {
                        self.last_work = Instant::now();
                    }
                    (command_class(&line), action)
                }
            };
            self.record(class, &action);
            match action {
                Action::Reply(reply) => {
                    self.queue(&reply);
                    if !self.rbuf.contains(&b'\n') {
                        self.flush().await?;
                    }
                }
                Action::Close(reply) => return self.close_with(reply).await,
                Action::StartTls(reply) => {
                    self.queue(&reply);
                    self.flush().await?;
                    self.start_tls().await?;
                }
                Action::Data(_) if self.keeps_body() && self.ctx.inflight.available() == 0 => {
                    self.session.transaction = None;
                    let reply = insufficient_storage();
                    self.ctx.metrics.smtp_reply(CommandClass::Data, reply.code);
                    self.queue(&reply);
                    self.flush().await?;
                }
                Action::Data(reply) => {
                    self.queue(&reply);
                    self.flush().await?;
                    let reply = match Box::pin(self.receive_message()).await {
                        Ok(reply) => reply,
                        Err(ConnError::Timeout) => {
                            let reply =
                                Reply::new(421, "4.4.2", "timeout reading the message, closing");
                            return self.abort(AbortReason::DataTimeout, reply).await;
                        }
                        Err(ConnError::Shutdown) => {
                            return self.abort(AbortReason::Shutdown, shutting_down()).await;
                        }
                        Err(e) => return Err(e),
                    };
                    self.ctx
                        .metrics
                        .smtp_reply(CommandClass::Message, reply.code);
                    self.queue(&reply);
                    if !self.rbuf.contains(&b'\n') {
                        self.flush().await?;
                    }
                }
                Action::Xclient(args) => match self.apply_xclient(&args) {
                    Ok(reply) => {
                        self.ctx
                            .metrics
                            .smtp_reply(CommandClass::Xclient, reply.code);
                        self.queue(&reply);
                        self.flush().await?;
                    }
                    Err(reply) => return self.close_with(reply).await,
                },
            }
        }
    }

    /// Counts the reply to one command, and why the session closes if it does.
    fn record(&mut self, class: CommandClass, action: &Action) {
        let m = &self.ctx.metrics;
        match action {
            Action::Reply(r) | Action::Close(r) | Action::StartTls(r) | Action::Data(r) => {
                m.smtp_reply(class, r.code)
            }
            Action::Xclient(_) => {}
        }
        if let Some(reason) = self.session.rcpt_refusal.take() {
            m.rcpt_rejected(reason);
        }
        if let Some(reason) = self.session.abort.take() {
            m.session_aborted(reason);
        }
    }

    /// XCLIENT from a trusted proxy: the session now speaks for the client the proxy names
    /// and starts over with a new greeting (Postfix's XCLIENT semantics). Err: close.
    fn apply_xclient(&mut self, args: &str) -> Result<Reply, Reply> {
        let update = match crate::xclient::parse(args) {
            Ok(u) => u,
            Err(e) => return Ok(Reply::new(501, "5.5.4", e.to_string())),
        };
        let mut info = crate::xclient::ClientInfo::new(self.session.client);
        update.apply_to(&mut info);
        if info.addr != self.session.client {
            if let Err(e) = self.permit.reassign(info.addr) {
                self.ctx.metrics.connection_rejected(e.into());
                return Err(Reply::new(421, "4.7.0", e.to_string()));
            }
            self.session.client = info.addr;
        }
        // A further XCLIENT would replace this address: only if it is a trusted proxy too.
        self.session.xclient_allowed = self.ctx.trusted_proxies.contains(self.session.client);
        self.session.helo = None;
        self.session.transaction = None;
        Ok(Reply::new(
            220,
            "",
            format!("{} ESMTP notify-inbound", self.ctx.hostname),
        ))
    }

    /// Closes a session the server gave up on, counting why.
    async fn abort(&mut self, reason: AbortReason, reply: Reply) -> Result<(), ConnError> {
        self.ctx.metrics.session_aborted(reason);
        self.close_with(reply).await
    }

    async fn close_with(&mut self, reply: Reply) -> Result<(), ConnError> {
        self.queue(&reply);
        if self.flush().await.is_ok() {
            // On TLS this sends close_notify, so the client sees a clean end rather than a
            // truncation (Exim logs every session without one as an error).
            let timeout = self.limits().command_timeout.min(Duration::from_secs(10));
            let _ = tokio::time::timeout(timeout, self.stream.shutdown()).await;
        }
        Ok(())
    }

    /// Whether the open transaction needs its message kept: a `un` needs none of it (only
    /// the envelope), a `bn` or postmaster message does.
    fn keeps_body(&self) -> bool {
        self.session.transaction.as_ref().is_some_and(|tx| {
            tx.postmaster
                || tx
                    .recipients
                    .iter()
                    .any(|r| r.kind == RecipientKind::Bounce)
        })
    }

    fn queue(&mut self, reply: &Reply) {
        reply.write_wire(&mut self.wbuf);
    }

    async fn flush(&mut self) -> Result<(), ConnError> {
        if self.wbuf.is_empty() {
            return Ok(());
        }
        let timeout = self.limits().command_timeout;
        let result = write_all_timeout(&mut self.stream, &self.wbuf, timeout).await;
        self.wbuf.clear();
        result.map_err(|e| {
            if e.kind() == io::ErrorKind::TimedOut {
                ConnError::Timeout
            } else {
                ConnError::Io(e)
            }
        })
    }

    /// The deadline of the next read: the command or data timeout, capped by the session's.
    fn deadline(&self, timeout: Duration) -> Instant {
        (Instant::now() + timeout).min(self.session_deadline)
    }

    /// Reads up to about `chunk` more bytes into `rbuf`, honouring the deadline, stress
    /// and shutdown. Under stress the wait is cut to `limits.stress_command_timeout_secs`,
    /// counted from `since` (the last command that did work) when given, else from now;
    /// when stress starts during the wait, it returns without data so the caller waits
    /// again under the new deadline.
    async fn fill(
        &mut self,
        deadline: Instant,
        in_transaction: bool,
        chunk: usize,
        since: Option<Instant>,
    ) -> Result<(), ConnError> {
        let ctx = self.ctx.clone();
        let onset = ctx.connections.stress_onset();
        let stressed = ctx.connections.stressed();
        let deadline = if stressed {
            let stress = self.limits().stress_command_timeout;
            deadline.min(since.unwrap_or_else(Instant::now) + stress)
        } else {
            deadline
        };
        // Idle sessions close as soon as draining starts; a transaction in progress gets
        // the grace period.
        let stop_at = if in_transaction {
            Phase::Closing
        } else {
            Phase::Draining
        };
        let shutdown = self.ctx.shutdown.clone();
        if shutdown.phase() >= stop_at {
            return Err(ConnError::Shutdown);
        }
        if self.rbuf.capacity() - self.rbuf.len() < chunk / 2 {
            self.rbuf.reserve(chunk);
        }
        tokio::select! {
            read = tokio::time::timeout_at(deadline, self.stream.read_buf(&mut self.rbuf)) => {
                match read {
                    Err(_) => Err(ConnError::Timeout),
                    Ok(Ok(0)) => Err(ConnError::Closed),
                    Ok(Ok(_)) => Ok(()),
                    Ok(Err(e)) => Err(ConnError::Io(e)),
                }
            }
            _ = shutdown.reached(stop_at) => Err(ConnError::Shutdown),
            _ = onset, if !stressed => Ok(()),
        }
    }

    async fn next_line(&mut self) -> Result<Line, ConnError> {
        let deadline = self.deadline(self.limits().command_timeout);
        loop {
            if let Some(pos) = self.rbuf.iter().position(|&b| b == b'\n') {
                let too_long = std::mem::take(&mut self.discarding) || pos + 1 > MAX_COMMAND_LINE;
                let line = (!too_long).then(|| {
                    let text = &self.rbuf[..pos];
                    text.strip_suffix(b"\r").unwrap_or(text).to_vec()
                });
                self.rbuf.advance(pos + 1);
                return Ok(line.map_or(Line::TooLong, Line::Command));
            }
            if self.rbuf.len() > MAX_COMMAND_LINE {
                // Keep nothing of an over-long line: memory stays bounded however long it is.
                self.rbuf.clear();
                self.discarding = true;
            }
            if self.rbuf.is_empty() && self.rbuf.capacity() > 2 * COMMAND_READ {
                // Nothing pending after a message: give the large buffer back while the
                // session waits for its next command.
                self.rbuf = BytesMut::new();
            }
            let in_tx = self.session.transaction.is_some();
            self.fill(deadline, in_tx, COMMAND_READ, Some(self.last_work))
                .await?;
        }
    }

    async fn start_tls(&mut self) -> Result<(), ConnError> {
        let Some(tls) = self.ctx.tls.clone() else {
            return Err(ConnError::Closed);
        };
        // Whatever the client pipelined after STARTTLS was sent in clear text and must not
        // be executed inside the TLS session (CVE-2011-0411).
        self.rbuf.clear();
        let plain = std::mem::replace(&mut self.stream, Box::new(tokio::io::empty()));
        let timeout = self.limits().command_timeout;
        let result = tokio::time::timeout(timeout, Box::pin(tls.acceptor().accept(plain))).await;
        self.ctx
            .metrics
            .tls_handshake(HandshakeMode::Starttls, matches!(result, Ok(Ok(_))));
        let tls_stream = match result {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => return Err(ConnError::Tls(e)),
            Err(_) => return Err(ConnError::Timeout),
        };
        self.stream = Box::new(tls_stream);
        self.session.tls_started();
        Ok(())
    }

    /// Reads the message after 354, then delivers it and returns the reply to DATA.
    async fn receive_message(&mut self) -> Result<Reply, ConnError> {
        let limit = self.ctx.session_cfg.size_limit;
        let body = match self.read_body(limit).await {
            Ok(body) => body,
            Err(ConnError::Timeout) => {
                self.session.finish_transaction();
                return Err(ConnError::Timeout);
            }
            Err(e) => return Err(e),
        };
        let Some(tx) = self.session.finish_transaction() else {
            return Ok(Reply::new(503, "5.5.1", "no transaction"));
        };
        if body.oversize {
            let reply = Reply::new(
                552,
                "5.3.4",
                format!("message too big (limit {limit} bytes)"),
            );
            self.log_refusal(&tx, &reply, body.size);
            return Ok(reply);
        }
        if body.smuggling {
            let reply = Reply::new(
                550,
                "5.6.0",
                "message refused: bare CR or LF around a lone dot; use CRLF line endings",
            );
            self.log_refusal(&tx, &reply, body.size);
            return Ok(reply);
        }
        if body.over_budget {
            let reply = insufficient_storage();
            tracing::warn!(
                client = %self.session.client,
                size = body.size,
                max_inflight_bytes = self.limits().max_inflight_bytes,
                "message refused: the in-flight message budget is used up"
            );
            self.log_refusal(&tx, &reply, body.size);
            return Ok(reply);
        }
        let _charge = body.charge;
        let started = std::time::Instant::now();
        let size = body.size;
        let TransactionOutcome {
            reply,
            kind,
            bounces,
        } = deliver_transaction(
            self.ctx.deliver.as_ref(),
            &self.ctx.failed_unsubscribes,
            self.session.client,
            tx,
            &body.bytes,
        )
        .await;
        self.ctx
            .metrics
            .message(kind, MessageOutcome::from_code(reply.code));
        for b in &bounces {
            self.ctx.metrics.bounce(b.outcome);
        }
        let t = logging::Transaction {
            client: self.session.client,
            kind,
            reply: &reply,
            size,
            elapsed: started.elapsed(),
        };
        match logging::BounceFields::of(&bounces) {
            Some(b) => logging::bounce_transaction(&t, &b),
            None => logging::transaction(&t),
        }
        Ok(reply)
    }

    fn log_refusal(&self, tx: &Transaction, reply: &Reply, size: usize) {
        let kind = tx.kind();
        self.ctx
            .metrics
            .message(kind, MessageOutcome::from_code(reply.code));
        logging::transaction(&logging::Transaction {
            client: self.session.client,
            kind,
            reply,
            size,
            elapsed: std::time::Duration::ZERO,
        });
    }

    async fn read_body(&mut self, limit: usize) -> Result<Body, ConnError> {
        let deadline = self.deadline(self.limits().data_timeout);
        let keep = self.keeps_body();
        let mut charge = self.ctx.inflight.charge();
        let initial = if keep { 8192.min(limit) } else { 0 };
        let mut body = Body {
            bytes: Vec::with_capacity(initial),
            size: 0,
            oversize: false,
            smuggling: false,
            over_budget: !charge.resize(initial),
            charge: None,
        };
        if body.over_budget {
            body.bytes = Vec::new();
        }
        let mut receiver = receiver_after_crlf();
        // The last bytes read, starting with the CRLF that ended the DATA command.
        let mut tail = *b"\0\0\r\n";
        loop {
            let available = self.rbuf.len();
            let (done, consumed) = {
                let mut iter = self.rbuf.iter();
                let done = receiver.ingest(&mut iter, &mut body.bytes);
                (done, available - iter.as_slice().len())
            };
            body.smuggling |= scan_smuggling(&mut tail, &self.rbuf[..consumed]);
            self.rbuf.advance(consumed);
            if body.bytes.len() > limit {
                // Over the limit: count, and drop what was read, so memory stays bounded.
                body.oversize = true;
            }
            if !keep || body.oversize || body.over_budget {
                body.size += body.bytes.len();
                body.bytes.clear();
                if charge.bytes() > 0 {
                    // Nothing more is kept: give the buffer and its charge back.
                    body.bytes = Vec::new();
                    charge.resize(0);
                }
            } else if !charge.resize(body.bytes.capacity()) {
                // Keeping more would cross the in-flight budget: give back what is held
                // and discard the rest as it comes.
                body.over_budget = true;
                body.size += body.bytes.len();
                body.bytes = Vec::new();
                charge.resize(0);
            }
            if done && &tail != b"\n.\r\n" {
                // The receiver also stops at <CRLF>.<CR><CR>...<LF>, which is not the end
                // (only <CRLF>.<CRLF> is): a sender's MTA would pass on what follows as part
                // of this message, so it must not be read as commands. Refuse the message
                // and read on to the real end.
                body.smuggling = true;
                receiver = receiver_after_crlf();
                continue;
            }
            if done {
                body.size += body.bytes.len();
                if body.oversize || body.over_budget {
                    body.bytes = Vec::new();
                }
                body.charge = Some(charge);
                return Ok(body);
            }
            self.fill(deadline, true, DATA_READ, None).await?;
        }
    }
}

/// `452 4.3.1`: the in-flight message budget is used up; the sender retries later.
fn insufficient_storage() -> Reply {
    Reply::new(
        452,
        "4.3.1",
        "insufficient system storage: too many messages in progress, try again later",
    )
}

fn shutting_down() -> Reply {
    Reply::new(421, "4.3.2", "server shutting down, try again later")
}

/// The metrics class of each command verb.
const COMMAND_CLASSES: &[(&str, CommandClass)] = &[
    ("EHLO", CommandClass::Helo),
    ("HELO", CommandClass::Helo),
    ("MAIL", CommandClass::Mail),
    ("RCPT", CommandClass::Rcpt),
    ("DATA", CommandClass::Data),
    ("RSET", CommandClass::Rset),
    ("NOOP", CommandClass::Noop),
    ("VRFY", CommandClass::Vrfy),
    ("EXPN", CommandClass::Vrfy),
    ("HELP", CommandClass::Help),
    ("STARTTLS", CommandClass::Starttls),
    ("XCLIENT", CommandClass::Xclient),
    ("QUIT", CommandClass::Quit),
];

/// A DATA receiver that has seen a CRLF: it recognises "." only after a CRLF it has seen,
/// and the message starts a line.
fn receiver_after_crlf() -> DataReceiver {
    let mut receiver = DataReceiver::new();
    let mut scratch = Vec::new();
    receiver.ingest(&mut b"\r\n".iter(), &mut scratch);
    receiver
}

/// The metrics class of a command line, from its verb.
fn command_class(line: &[u8]) -> CommandClass {
    let end = line.iter().position(|&b| b == b' ').unwrap_or(line.len());
    let verb = &line[..end];
    COMMAND_CLASSES
        .iter()
        .find(|(name, _)| verb.eq_ignore_ascii_case(name.as_bytes()))
        .map_or(CommandClass::Unknown, |(_, class)| *class)
}

/// Looks for `<LF>.<LF>`, `<CR>.<CR>`, `<LF>.<CR><LF>`, `<CR><LF>.<LF>` and
/// `<CR><LF>.<CR>` not followed by `<LF>` — a lone dot next to a bare line ending — across
/// chunk boundaries (`tail` carries the last four bytes of the previous chunks).
///
/// A dot is judged when the byte after it arrives ([`bare_eol_dot`]) and, for the one
/// case that needs it, when the second byte after it does ([`unended_dot_line`]).
fn scan_smuggling(tail: &mut [u8; 4], chunk: &[u8]) -> bool {
    let mut found = false;
    // Dots whose neighbours reach into the previous chunk, byte by byte.
    let mut w = *tail;
    for &b in &chunk[..chunk.len().min(4)] {
        found |= w[3] == b'.' && bare_eol_dot(w[1], w[2], b);
        found |= w[2] == b'.' && unended_dot_line(w[0], w[1], w[3], b);
        w.copy_within(1.., 0);
        w[3] = b;
    }
    // Every other dot has its neighbours inside the chunk; dots are rare in mail, so
    // jumping from one to the next costs far less than looking at every byte.
    for p in memchr::memchr_iter(b'.', chunk) {
        if p >= 3 && p + 1 < chunk.len() {
            found |= bare_eol_dot(chunk[p - 2], chunk[p - 1], chunk[p + 1]);
        }
        if p >= 2 && p + 2 < chunk.len() {
            found |= unended_dot_line(chunk[p - 2], chunk[p - 1], chunk[p + 1], chunk[p + 2]);
        }
    }
    if chunk.len() >= 4 {
        tail.copy_from_slice(&chunk[chunk.len() - 4..]);
    } else {
        *tail = w;
    }
    found
}

/// A dot with a line-ending byte on both sides, other than `<CR><LF>.<CR>`.
fn bare_eol_dot(before2: u8, before1: u8, after1: u8) -> bool {
    let eol = |x: u8| x == b'\n' || x == b'\r';
    eol(before1) && eol(after1) && !(before2 == b'\r' && before1 == b'\n' && after1 == b'\r')
}

/// `<CR><LF>.<CR>` followed by anything but `<LF>`.
fn unended_dot_line(before2: u8, before1: u8, after1: u8, after2: u8) -> bool {
    before2 == b'\r' && before1 == b'\n' && after1 == b'\r' && after2 != b'\n'
}

#[cfg(test)]
mod tests {
    use super::*;

    fn smuggles(s: &[u8]) -> bool {
        scan_smuggling(&mut [0u8; 4], s)
    }

    #[test]
    fn smuggling_patterns() {
        assert!(smuggles(b"a\r\n\n.\nMAIL FROM"));
        assert!(smuggles(b"a\r.\rb"));
        assert!(smuggles(b"a\n.\r\nb"));
        assert!(smuggles(b"a\r\n.\nb"));
        assert!(!smuggles(b"a\r\n..\r\nb\r\n"));
        assert!(!smuggles(b"a\r\n.x\r\n"));
        assert!(!smuggles(b"a\r\n.\r\n"));
        let mut tail = [0u8; 4];
        assert!(!scan_smuggling(&mut tail, b"abc\n"));
        assert!(scan_smuggling(&mut tail, b".\n"));
        // A dot line ended by more than one CR, or by CR and something else.
        assert!(smuggles(b"a\r\n.\r\r\nb"));
        assert!(smuggles(b"a\r\n.\r b\r\n"));
        let mut tail = [0u8; 4];
        assert!(!scan_smuggling(&mut tail, b"a\r\n.\r"));
        assert!(scan_smuggling(&mut tail, b"\r\n"));
        // Right after DATA, whose CRLF starts the tail.
        let after_data = || *b"\0\0\r\n";
        assert!(scan_smuggling(&mut after_data(), b".\nx"));
        assert!(!scan_smuggling(&mut after_data(), b".\r\n"));
    }

    /// The byte-at-a-time scan this one replaced, as the reference.
    fn reference(tail: &mut [u8; 4], chunk: &[u8]) -> bool {
        let mut window = [0u8; 5];
        let mut found = false;
        for &b in chunk {
            window[..4].copy_from_slice(&tail[..]);
            window[4] = b;
            let (a, dot, c) = (window[2], window[3], window[4]);
            if dot == b'.' && (a == b'\n' || a == b'\r') && (c == b'\n' || c == b'\r') {
                let proper = a == b'\n' && window[1] == b'\r' && c == b'\r';
                found |= !proper;
            }
            found |= &window[..4] == b"\r\n.\r" && b != b'\n';
            tail.copy_within(1.., 0);
            tail[3] = b;
        }
        found
    }

    #[test]
    fn same_verdicts_as_the_byte_at_a_time_scan_at_every_split() {
        let mut rng = 0x2545_F491_4F6C_DD1Du64;
        let mut next = || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        let alphabet = b"\r\n.a";
        let (mut found, mut clean) = (0, 0);
        for _ in 0..3000 {
            let len = (next() % 24) as usize;
            let text: Vec<u8> = (0..len).map(|_| alphabet[(next() % 4) as usize]).collect();
            // Split into up to four chunks at random points, as reads would.
            let mut cuts: Vec<usize> = (0..3).map(|_| (next() as usize) % (len + 1)).collect();
            cuts.sort();
            let (mut t1, mut t2) = ([0u8; 4], [0u8; 4]);
            let (mut v1, mut v2) = (false, false);
            let mut start = 0;
            for end in cuts.into_iter().chain([len]) {
                v1 |= scan_smuggling(&mut t1, &text[start..end]);
                v2 |= reference(&mut t2, &text[start..end]);
                assert_eq!(t1, t2, "{text:?}");
                start = end;
            }
            assert_eq!(v1, v2, "{:?}", String::from_utf8_lossy(&text));
            if v1 { found += 1 } else { clean += 1 }
        }
        assert!(found > 100 && clean > 100, "{found} {clean}");
    }
}
