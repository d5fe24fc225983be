//! The SMTP session state machine (RFC 5321 with PIPELINING, SIZE, 8BITMIME,
//! ENHANCEDSTATUSCODES, SMTPUTF8 and STARTTLS). It turns one command line into a reply and
//! tells the connection what to do next; it does no I/O itself, so every protocol rule can
//! be tested without a socket.

use std::net::IpAddr;

use smtp_proto::{Error as ProtoError, MAIL_BODY_BINARYMIME, MAIL_REQUIRETLS, Request};

use crate::flows::Transaction;
use crate::metrics::{AbortReason, RcptReason};
use crate::reply::{Reply, printable};
use crate::router::{Recipient, RecipientKind, Refusal, Route, Router};

/// Command lines longer than this (CRLF included) get `500 5.5.2` (RFC 5321 §4.5.3.1.4).
pub const MAX_COMMAND_LINE: usize = 512;

/// What the session's owner must know to answer commands.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    pub hostname: String,
    pub size_limit: usize,
    pub max_recipients: usize,
    pub max_errors: usize,
    pub max_commands: usize,
    pub max_transactions: usize,
    /// Commands that do no work (NOOP, RSET, VRFY, HELP, a repeated EHLO) allowed between
    /// two completed transactions.
    pub max_noops: usize,
}

/// What the connection does after sending the reply.
#[derive(Debug, PartialEq, Eq)]
pub enum Action {
    /// Send the reply and read the next command.
    Reply(Reply),
    /// Send the reply, then close the connection.
    Close(Reply),
    /// Send the reply (220), drop anything pipelined after STARTTLS, then handshake.
    StartTls(Reply),
    /// Send the reply (354) and read the message.
    Data(Reply),
    /// XCLIENT from a trusted proxy: the arguments to apply, then greet again.
    Xclient(String),
}

/// Where a connection stands with TLS when its session starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsAtStart {
    /// Implicit TLS: the handshake is done before the greeting.
    Active,
    /// Plain text, with STARTTLS offered.
    Offered,
    /// Plain text, no TLS on this listener.
    Unavailable,
}

/// A hook asked before accepting a `un` or `bn` recipient, so a client or an id that keeps
/// getting wrong codes can be slowed down (`docs/reliability.md`). Returns the refusal to
/// give, if any.
pub trait RcptGuard: Send + Sync {
    fn check(&self, client: IpAddr, recipient: &Recipient) -> Option<Reply>;
}

/// Per-connection protocol state.
#[derive(Debug)]
pub struct Session {
    pub client: IpAddr,
    pub helo: Option<String>,
    pub tls_active: bool,
    pub starttls_available: bool,
    pub xclient_allowed: bool,
    pub transaction: Option<Transaction>,
    /// Why the last RCPT was refused, for the metrics; taken by the connection.
    pub rcpt_refusal: Option<RcptReason>,
    /// Why the session decided to close, for the metrics.
    pub abort: Option<AbortReason>,
    /// Whether the last command did no work (NOOP, RSET, VRFY, HELP, a repeated EHLO):
    /// under stress such commands earn a session no more time.
    pub last_was_noop: bool,
    noops: usize,
    commands: usize,
    errors: usize,
    transactions: usize,
}

impl Session {
    pub fn new(client: IpAddr, tls: TlsAtStart) -> Session {
        Session {
            client,
            helo: None,
            tls_active: tls == TlsAtStart::Active,
            starttls_available: tls == TlsAtStart::Offered,
            xclient_allowed: false,
            transaction: None,
            rcpt_refusal: None,
            abort: None,
            last_was_noop: false,
            noops: 0,
            commands: 0,
            errors: 0,
            transactions: 0,
        }
    }

    /// Forgets everything learnt before TLS started (RFC 3207 §4.2).
    pub fn tls_started(&mut self) {
        self.tls_active = true;
        self.helo = None;
        self.transaction = None;
    }

    /// Ends the transaction after DATA, whatever its outcome.
    pub fn finish_transaction(&mut self) -> Option<Transaction> {
        self.transactions += 1;
        // A client that gets mail through has earned its next few no-op commands.
        self.noops = 0;
        self.transaction.take()
    }

    /// A reply for an over-long command line, counted as an error.
    pub fn line_too_long(&mut self, cfg: &SessionConfig) -> Action {
        self.error(
            cfg,
            Reply::new(
                500,
                "5.5.2",
                format!("line too long (limit {MAX_COMMAND_LINE} octets)"),
            ),
        )
    }

    /// Handles one command line (without its line ending).
    pub fn handle(
        &mut self,
        line: &[u8],
        cfg: &SessionConfig,
        router: &Router,
        guard: Option<&dyn RcptGuard>,
    ) -> Action {
        self.commands += 1;
        if self.commands > cfg.max_commands {
            self.abort = Some(AbortReason::TooManyCommands);
            return Action::Close(Reply::new(421, "4.7.0", "too many commands, closing"));
        }
        self.last_was_noop = false;
        if let Some(action) = self.special(line, cfg) {
            return action;
        }
        let mut with_lf = Vec::with_capacity(line.len() + 2);
        with_lf.extend_from_slice(line);
        with_lf.extend_from_slice(b"\r\n");
        let request = match Request::parse(&mut with_lf.iter()) {
            Ok(r) => r,
            Err(e) => return self.parse_error(cfg, line, e),
        };
        let repeated_hello =
            self.helo.is_some() && matches!(request, Request::Ehlo { .. } | Request::Helo { .. });
        if repeated_hello
            || matches!(
                request,
                Request::Noop { .. } | Request::Rset | Request::Vrfy { .. } | Request::Help { .. }
            )
        {
            self.last_was_noop = true;
            self.noops += 1;
            if self.noops > cfg.max_noops {
                self.abort = Some(AbortReason::TooManyNoops);
                return Action::Close(Reply::new(
                    421,
                    "4.7.0",
                    "too many commands that do nothing, closing",
                ));
            }
        }
        match request {
            Request::Ehlo { host } => self.hello(cfg, host.as_ref(), true),
            Request::Helo { host } => self.hello(cfg, host.as_ref(), false),
            Request::Lhlo { .. } => {
                self.error(cfg, Reply::new(500, "5.5.1", "LHLO is for LMTP; use EHLO"))
            }
            Request::Mail { from } => {
                // smtp-proto wraps an overflowing SIZE= round to a small number.
                if declared_size(line).is_some_and(|n| n > cfg.size_limit as u128) {
                    return self.error(
                        cfg,
                        Reply::new(
                            552,
                            "5.3.4",
                            format!("message too big (limit {} bytes)", cfg.size_limit),
                        ),
                    );
                }
                self.mail(cfg, from)
            }
            Request::Rcpt { to } => {
                if to.orcpt.is_some() || to.flags & RCPT_DSN_FLAGS != 0 {
                    return self.error(
                        cfg,
                        Reply::new(
                            555,
                            "5.5.4",
                            "NOTIFY and ORCPT are not supported (DSN is not offered)",
                        ),
                    );
                }
                // The parser hands over a quoted local part unquoted; our addresses never
                // have one, and a quoted one is not the un/bn pattern (docs/behaviour.md §2).
                let quoted = line.contains(&b'"');
                // The parser hands over `<postmaster>` without a domain as an empty path.
                let address = if to.address.is_empty() && is_bare_postmaster(line) {
                    "postmaster"
                } else {
                    to.address.as_ref()
                };
                self.rcpt(cfg, router, guard, address, quoted)
            }
            Request::Data => self.data(cfg),
            Request::Rset => {
                self.transaction = None;
                Action::Reply(Reply::new(250, "2.0.0", "OK"))
            }
            Request::Noop { .. } => Action::Reply(Reply::new(250, "2.0.0", "OK")),
            Request::Quit => Action::Close(Reply::new(221, "2.0.0", "bye")),
            Request::Vrfy { .. } => Action::Reply(Reply::new(
                252,
                "2.5.0",
                "cannot verify addresses; send a message and it will be tried",
            )),
            Request::Expn { .. } => self.error(cfg, Reply::new(502, "5.5.1", "EXPN not available")),
            Request::Help { .. } => Action::Reply(Reply::new(
                214,
                "2.0.0",
                "receive-only server for list-unsubscribe and bounce messages; see RFC 5321",
            )),
            Request::StartTls => self.starttls(cfg, line),
            Request::Auth { .. } => self.error(
                cfg,
                Reply::new(
                    502,
                    "5.5.1",
                    "AUTH not available: this server only receives mail",
                ),
            ),
            Request::Bdat { .. }
            | Request::Etrn { .. }
            | Request::Atrn { .. }
            | Request::Burl { .. } => {
                self.error(cfg, Reply::new(502, "5.5.1", "command not implemented"))
            }
        }
    }

    /// Commands outside smtp-proto's grammar: HTTP verbs (closed at once) and XCLIENT.
    fn special(&mut self, line: &[u8], cfg: &SessionConfig) -> Option<Action> {
        let word_end = line.iter().position(|&b| b == b' ').unwrap_or(line.len());
        let word = &line[..word_end];
        for verb in [&b"CONNECT"[..], b"GET", b"POST", b"HEAD", b"PUT"] {
            if word.eq_ignore_ascii_case(verb) {
                self.abort = Some(AbortReason::HttpCommand);
                return Some(Action::Close(Reply::new(
                    421,
                    "4.7.0",
                    "this is an SMTP server, not a web server or proxy",
                )));
            }
        }
        if word.eq_ignore_ascii_case(b"XCLIENT") {
            if !self.xclient_allowed {
                // Only an address in trusted_proxies may be replaced: neither a client
                // named by a PROXY header nor one named by an earlier XCLIENT.
                return Some(self.error(
                    cfg,
                    Reply::new(550, "5.7.0", "XCLIENT not permitted from your address"),
                ));
            }
            let args = String::from_utf8_lossy(&line[word_end..])
                .trim()
                .to_string();
            return Some(Action::Xclient(args));
        }
        None
    }

    fn error(&mut self, cfg: &SessionConfig, reply: Reply) -> Action {
        self.errors += 1;
        if self.errors >= cfg.max_errors {
            self.abort = Some(AbortReason::TooManyErrors);
            return Action::Close(Reply::new(
                421,
                "4.7.0",
                format!("{}; too many errors, closing", reply.text),
            ));
        }
        Action::Reply(reply)
    }

    fn parse_error(&mut self, cfg: &SessionConfig, line: &[u8], e: ProtoError) -> Action {
        let verb = line
            .iter()
            .take_while(|b| b.is_ascii_alphabetic())
            .map(|b| b.to_ascii_uppercase())
            .collect::<Vec<u8>>();
        let reply = match e {
            ProtoError::UnknownCommand => Reply::new(500, "5.5.2", "command not recognized"),
            ProtoError::InvalidSenderAddress => {
                Reply::new(501, "5.1.7", "bad sender address syntax")
            }
            ProtoError::InvalidRecipientAddress => {
                Reply::new(501, "5.1.3", "bad recipient address syntax")
            }
            ProtoError::SyntaxError { syntax } => {
                if verb == b"EHLO" || verb == b"HELO" {
                    Reply::new(
                        501,
                        "5.5.4",
                        format!("syntax: {syntax} (a domain is required)"),
                    )
                } else {
                    Reply::new(501, "5.5.4", format!("syntax: {syntax}"))
                }
            }
            ProtoError::InvalidParameter { param } => {
                Reply::new(501, "5.5.4", format!("invalid parameter {param}"))
            }
            ProtoError::UnsupportedParameter { param } => Reply::new(
                555,
                "5.5.4",
                format!("unsupported parameter {}", printable(&param)),
            ),
            ProtoError::ResponseTooLong => Reply::new(500, "5.5.2", "line too long"),
            ProtoError::NeedsMoreData { .. } | ProtoError::InvalidResponse { .. } => {
                Reply::new(500, "5.5.2", "command not recognized")
            }
        };
        self.error(cfg, reply)
    }

    fn hello(&mut self, cfg: &SessionConfig, host: &str, extended: bool) -> Action {
        if host.trim().is_empty() {
            return self.error(
                cfg,
                Reply::new(501, "5.5.4", "a domain or address literal is required"),
            );
        }
        self.helo = Some(host.to_string());
        self.transaction = None;
        if !extended {
            return Action::Reply(Reply::new(250, "", cfg.hostname.clone()));
        }
        let mut lines = vec![
            format!("{} greets {}", cfg.hostname, printable(host)),
            "PIPELINING".to_string(),
            format!("SIZE {}", cfg.size_limit),
            "8BITMIME".to_string(),
            "ENHANCEDSTATUSCODES".to_string(),
            "SMTPUTF8".to_string(),
        ];
        if self.starttls_available && !self.tls_active {
            lines.push("STARTTLS".to_string());
        }
        if self.xclient_allowed {
            lines.push(crate::xclient::EHLO_KEYWORD.to_string());
        }
        Action::Reply(Reply::new(250, "", lines.join("\n")))
    }

    fn mail(
        &mut self,
        cfg: &SessionConfig,
        from: smtp_proto::MailFrom<std::borrow::Cow<'_, str>>,
    ) -> Action {
        if self.helo.is_none() {
            return self.error(cfg, Reply::new(503, "5.5.1", "send EHLO or HELO first"));
        }
        if self.transaction.is_some() {
            return self.error(
                cfg,
                Reply::new(
                    503,
                    "5.5.1",
                    "a transaction is already open; send RSET first",
                ),
            );
        }
        if self.transactions >= cfg.max_transactions {
            self.abort = Some(AbortReason::TooManyTransactions);
            return Action::Close(Reply::new(
                421,
                "4.7.0",
                "too many transactions in one session, closing",
            ));
        }
        if from.flags & (MAIL_BODY_BINARYMIME | MAIL_REQUIRETLS) != 0 {
            return self.error(
                cfg,
                Reply::new(
                    555,
                    "5.5.4",
                    "BODY=BINARYMIME and REQUIRETLS are not supported",
                ),
            );
        }
        if from.size > cfg.size_limit {
            return self.error(
                cfg,
                Reply::new(
                    552,
                    "5.3.4",
                    format!("message too big (limit {} bytes)", cfg.size_limit),
                ),
            );
        }
        self.transaction = Some(Transaction {
            mail_from: from.address.to_string(),
            ..Transaction::default()
        });
        Action::Reply(Reply::new(250, "2.1.0", "sender OK"))
    }

    fn rcpt(
        &mut self,
        cfg: &SessionConfig,
        router: &Router,
        guard: Option<&dyn RcptGuard>,
        address: &str,
        quoted: bool,
    ) -> Action {
        let Some(tx) = &self.transaction else {
            return self.error(cfg, Reply::new(503, "5.5.1", "send MAIL FROM first"));
        };
        // RFC 5321 §4.1.1.3: a bare "postmaster" is to be accepted without a domain.
        let route = if address.eq_ignore_ascii_case("postmaster") && !quoted {
            Ok(Route::Postmaster)
        } else {
            router.route(address)
        };
        let route = match route {
            Ok(Route::Notify(_)) if quoted => {
                self.rcpt_refusal = Some(RcptReason::UnknownRecipient);
                return self.error(cfg, Refusal::Unknown.reply(address));
            }
            Ok(route) => route,
            Err(refusal) => {
                self.rcpt_refusal = Some(match refusal {
                    Refusal::Unknown => RcptReason::UnknownRecipient,
                    Refusal::NotOurDomain => RcptReason::RelayDenied,
                    Refusal::Disabled => RcptReason::Disabled,
                });
                return self.error(cfg, refusal.reply(address));
            }
        };
        match route {
            Route::Postmaster => {
                if let Some(tx) = &mut self.transaction {
                    tx.postmaster = true;
                }
                Action::Reply(Reply::new(250, "2.1.5", "recipient OK"))
            }
            Route::Notify(recipient) => {
                if tx.recipients.len() >= cfg.max_recipients {
                    self.rcpt_refusal = Some(RcptReason::TooManyRecipients);
                    return Action::Reply(Reply::new(
                        452,
                        "4.5.3",
                        format!(
                            "too many recipients: at most {} per transaction; send this one in a new transaction",
                            cfg.max_recipients
                        ),
                    ));
                }
                if recipient.kind == RecipientKind::Unsubscribe && tx.mail_from.is_empty() {
                    self.rcpt_refusal = Some(RcptReason::UnknownRecipient);
                    return self.error(
                        cfg,
                        Reply::new(
                            550,
                            "5.7.1",
                            "an unsubscribe request needs a sender: MAIL FROM:<> is for \
                             bounces; send from the subscribed address",
                        ),
                    );
                }
                if let Some(refusal) = guard.and_then(|g| g.check(self.client, &recipient)) {
                    self.rcpt_refusal = Some(RcptReason::RateLimited);
                    return Action::Reply(refusal);
                }
                if let Some(tx) = &mut self.transaction {
                    tx.recipients.push(recipient);
                }
                Action::Reply(Reply::new(250, "2.1.5", "recipient OK"))
            }
        }
    }

    fn data(&mut self, cfg: &SessionConfig) -> Action {
        match &self.transaction {
            None => self.error(
                cfg,
                Reply::new(503, "5.5.1", "send MAIL FROM and RCPT TO first"),
            ),
            Some(tx) if !tx.has_recipient() => {
                self.error(cfg, Reply::new(554, "5.5.1", "no valid recipients"))
            }
            Some(_) => Action::Data(Reply::new(354, "", "end data with <CR><LF>.<CR><LF>")),
        }
    }

    fn starttls(&mut self, cfg: &SessionConfig, line: &[u8]) -> Action {
        if self.tls_active {
            return self.error(cfg, Reply::new(503, "5.5.1", "TLS already active"));
        }
        if !self.starttls_available {
            return self.error(cfg, Reply::new(502, "5.5.1", "STARTTLS not available here"));
        }
        if line.len() > "STARTTLS".len() && !line[8..].iter().all(|b| b.is_ascii_whitespace()) {
            return self.error(
                cfg,
                Reply::new(501, "5.5.4", "STARTTLS takes no parameters"),
            );
        }
        Action::StartTls(Reply::new(220, "2.0.0", "ready to start TLS"))
    }
}

/// DSN parameters of RCPT (RFC 3461), refused because DSN is not advertised.
const RCPT_DSN_FLAGS: u64 = smtp_proto::RCPT_NOTIFY_SUCCESS
    | smtp_proto::RCPT_NOTIFY_FAILURE
    | smtp_proto::RCPT_NOTIFY_DELAY
    | smtp_proto::RCPT_NOTIFY_NEVER;

/// The value of a `SIZE=` parameter of a MAIL command line, saturating at `u128::MAX` so an
/// absurd number stays absurd (None: no SIZE, or not a number, which the parser refuses).
fn declared_size(line: &[u8]) -> Option<u128> {
    let text = std::str::from_utf8(line).ok()?;
    let params = &text[text.rfind('>')? + 1..];
    params.split_ascii_whitespace().find_map(|p| {
        let (key, value) = p.split_once('=')?;
        if !key.eq_ignore_ascii_case("SIZE")
            || value.is_empty()
            || !value.bytes().all(|b| b.is_ascii_digit())
        {
            return None;
        }
        Some(value.bytes().fold(0u128, |n, d| {
            n.saturating_mul(10).saturating_add(u128::from(d - b'0'))
        }))
    })
}

/// `RCPT TO:<postmaster>`, any case, parameters or not.
fn is_bare_postmaster(line: &[u8]) -> bool {
    let Some(open) = line.iter().position(|&b| b == b'<') else {
        return false;
    };
    let rest = &line[open + 1..];
    rest.iter()
        .position(|&b| b == b'>')
        .is_some_and(|close| rest[..close].eq_ignore_ascii_case(b"postmaster"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Settings;

    fn setup() -> (Session, SessionConfig, Router) {
        let s =
            Settings::from_toml_str("[inbound_smtp_server]\ndomain = 'notify.example'\n").unwrap();
        let cfg = SessionConfig {
            hostname: "mx.notify.example".into(),
            size_limit: 1000,
            max_recipients: 1,
            max_errors: 5,
            max_commands: 100,
            max_transactions: 2,
            max_noops: 3,
        };
        (
            Session::new("192.0.2.1".parse().unwrap(), TlsAtStart::Offered),
            cfg,
            Router::new(&s),
        )
    }

    fn code(a: &Action) -> (u16, &'static str) {
        match a {
            Action::Reply(r) | Action::Close(r) | Action::StartTls(r) | Action::Data(r) => {
                (r.code, r.enhanced)
            }
            Action::Xclient(_) => (0, ""),
        }
    }

    #[test]
    fn transaction_flow() {
        let (mut s, cfg, r) = setup();
        assert_eq!(
            code(&s.handle(b"MAIL FROM:<a@b.example>", &cfg, &r, None)),
            (503, "5.5.1")
        );
        let ehlo = s.handle(b"EHLO client.example", &cfg, &r, None);
        let Action::Reply(reply) = ehlo else { panic!() };
        for ext in [
            "PIPELINING",
            "SIZE 1000",
            "8BITMIME",
            "ENHANCEDSTATUSCODES",
            "SMTPUTF8",
            "STARTTLS",
        ] {
            assert!(
                reply.text.lines().any(|l| l == ext),
                "{ext} missing in {}",
                reply.text
            );
        }
        assert!(!reply.text.contains("AUTH"));
        assert_eq!(
            code(&s.handle(b"MAIL FROM:<> SIZE=1001", &cfg, &r, None)),
            (552, "5.3.4")
        );
        assert_eq!(
            code(&s.handle(b"MAIL FROM:<> SIZE=1000 BODY=8BITMIME", &cfg, &r, None)),
            (250, "2.1.0")
        );
        assert_eq!(code(&s.handle(b"DATA", &cfg, &r, None)), (554, "5.5.1"));
        assert_eq!(
            code(&s.handle(b"RCPT TO:<x@other.example>", &cfg, &r, None)),
            (550, "5.7.1")
        );
        assert_eq!(
            code(&s.handle(b"RCPT TO:<bn-1-2@notify.example>", &cfg, &r, None)),
            (250, "2.1.5")
        );
        assert_eq!(
            code(&s.handle(b"RCPT TO:<un-1-2@notify.example>", &cfg, &r, None)),
            (452, "4.5.3")
        );
        assert_eq!(code(&s.handle(b"DATA", &cfg, &r, None)), (354, ""));
        let tx = s.finish_transaction().unwrap();
        assert_eq!(tx.mail_from, "");
        assert_eq!(tx.recipients[0].id, "1");
    }

    #[test]
    fn refusals_and_limits() {
        let (mut s, cfg, r) = setup();
        assert_eq!(code(&s.handle(b"EHLO", &cfg, &r, None)), (501, "5.5.4"));
        assert_eq!(
            code(&s.handle(b"AUTH PLAIN AGE=", &cfg, &r, None)),
            (502, "5.5.1")
        );
        assert_eq!(
            code(&s.handle(b"VRFY root", &cfg, &r, None)),
            (252, "2.5.0")
        );
        assert_eq!(code(&s.handle(b"FOO bar", &cfg, &r, None)), (500, "5.5.2"));
        assert!(matches!(
            s.handle(b"GET / HTTP/1.1", &cfg, &r, None),
            Action::Close(_)
        ));
        let (mut s, cfg, r) = setup();
        for _ in 0..4 {
            assert!(matches!(
                s.handle(b"BOGUS", &cfg, &r, None),
                Action::Reply(_)
            ));
        }
        assert!(matches!(
            s.handle(b"BOGUS", &cfg, &r, None),
            Action::Close(_)
        ));
    }

    #[test]
    fn quoted_local_parts_are_not_the_pattern() {
        let (mut s, cfg, r) = setup();
        s.handle(b"EHLO c.example", &cfg, &r, None);
        s.handle(b"MAIL FROM:<>", &cfg, &r, None);
        for rcpt in [
            &b"RCPT TO:<\"bn-1-a\"@notify.example>"[..],
            b"RCPT TO:<\"bn-1\"-a@notify.example>",
            b"RCPT TO:<bn-\"1-a\"@notify.example>",
        ] {
            assert_eq!(code(&s.handle(rcpt, &cfg, &r, None)), (550, "5.1.1"));
        }
        assert_eq!(
            code(&s.handle(b"RCPT TO:<bn-1-a@notify.example>", &cfg, &r, None)),
            (250, "2.1.5")
        );
    }

    #[test]
    fn starttls_resets_state() {
        let (mut s, cfg, r) = setup();
        s.handle(b"EHLO c.example", &cfg, &r, None);
        s.handle(b"MAIL FROM:<>", &cfg, &r, None);
        assert!(matches!(
            s.handle(b"STARTTLS", &cfg, &r, None),
            Action::StartTls(_)
        ));
        s.tls_started();
        assert!(s.helo.is_none() && s.transaction.is_none());
        assert_eq!(
            code(&s.handle(b"MAIL FROM:<>", &cfg, &r, None)),
            (503, "5.5.1")
        );
        let Action::Reply(reply) = s.handle(b"EHLO c.example", &cfg, &r, None) else {
            panic!()
        };
        assert!(!reply.text.contains("STARTTLS"));
        assert_eq!(code(&s.handle(b"STARTTLS", &cfg, &r, None)), (503, "5.5.1"));
    }

    #[test]
    fn transactions_per_session_limited() {
        let (mut s, cfg, r) = setup();
        s.handle(b"HELO c.example", &cfg, &r, None);
        for _ in 0..2 {
            s.handle(b"MAIL FROM:<>", &cfg, &r, None);
            s.finish_transaction();
        }
        assert!(matches!(
            s.handle(b"MAIL FROM:<>", &cfg, &r, None),
            Action::Close(_)
        ));
    }
}
