//! The bounce classifier: a pure function of the message bytes (and, for [`assess`], the
//! bounce settings). No I/O happens here, apart from the offline `classify` command in
//! [`cli`], which reads files and prints verdicts.
//!
//! Two layers:
//! - [`classify`] reads a message the way a bounce library does and returns a [`Verdict`]:
//!   what kind of message it is and, per bounced recipient, the address, hard or soft, the
//!   status, the action, the diagnostic and a [`Reason`].
//! - [`assess`] decides whether the message counts toward the subscriber's
//!   `hardBounceCount`: by default from the verdict (the subscriber's own entry must be a
//!   permanent, hard failure), with NotifyBC's filters as extra conditions where they are
//!   set; with `decision = "notifybc"` by NotifyBC's own rule, its filters over the whole
//!   text, with the options beyond NotifyBC (`[bounce]` in the configuration).

mod arf;
mod byte_pattern;
pub mod cli;
mod dsn;
mod notifybc;
mod prose;
mod reason;
mod recognise;
mod ses;
mod text;
mod wordings;

use serde::{Deserialize, Serialize};

pub use cli::{OutputFormat, run_cli, run_cli_explained};
pub use notifybc::{Assessment, Decision, Filters, assess, decide, explain, outcome};

/// What kind of report a message sent to a bounce address is: a non-delivery report, a
/// delay notice, an automatic reply, a complaint, or none of these. Not to be confused with
/// [`crate::outcome::MessageKind`], which says which address (`un`, `bn`, postmaster) a
/// message was sent to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReportKind {
    /// A non-delivery report: at least one recipient failed.
    Bounce,
    /// A delay notice (RFC 3464 `Action: delayed`, "still trying"): not a failure yet.
    Delay,
    /// An automatic reply (RFC 3834 `Auto-Submitted: auto-replied`, vacation notices).
    AutoReply,
    /// An abuse report (RFC 5965 ARF `Feedback-Type`): the recipient complained.
    Complaint,
    /// Anything else, including success DSNs (`delivered`, `relayed`, `expanded`).
    NotBounce,
    /// Not a message at all (no header could be parsed).
    Unparsable,
}

impl ReportKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ReportKind::Bounce => "bounce",
            ReportKind::Delay => "delay",
            ReportKind::AutoReply => "auto_reply",
            ReportKind::Complaint => "complaint",
            ReportKind::NotBounce => "not_bounce",
            ReportKind::Unparsable => "unparsable",
        }
    }
}

/// Why a recipient bounced. A small taxonomy after Sisimai's reasons; only the first four
/// can make a bounce hard (see [`Reason::is_hard`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// The mailbox does not exist (5.1.1, "user unknown", "no such user").
    UserUnknown,
    /// The domain does not exist or has no mail server (5.1.2, "host not found").
    HostUnknown,
    /// The address moved and mail is no longer forwarded (5.1.6).
    HasMoved,
    /// The domain accepts no mail at all (null MX, RFC 7505, 5.1.10).
    NotAccept,
    /// The mailbox is full or over quota (5.2.2, 4.2.2).
    MailboxFull,
    /// The mailbox is disabled or suspended (5.2.1 worded as "disabled", "inactive").
    Suspend,
    /// Refused by a filter of the recipient's own (rules, allow lists; 5.2.0, 5.2.1).
    Filtered,
    /// The sending host or address is blocked (blocklists, reputation, rDNS; 5.7.1 on the
    /// client).
    Blocked,
    /// The envelope sender was refused (5.1.7, 5.1.8, sender domain checks).
    Rejected,
    /// Refused by the receiving site's policy (5.7.x without a more precise reason).
    PolicyViolation,
    /// Refused as spam or for its content (5.7.1 with "spam", 5.6.x content).
    SpamDetected,
    /// Delivery was retried until the queue lifetime ran out (4.4.7, 5.4.7).
    Expired,
    /// The message is larger than the recipient accepts (5.3.4, 5.2.3).
    MesgTooBig,
    /// Routing or connection failed (5.4.x: no answer, loops, DNS failure).
    NetworkError,
    /// The receiving system failed (5.3.x, 4.3.x: disk full, configuration error).
    SystemError,
    /// Too many messages or connections (4.7.x rate limits, 4.2.1 "too many").
    TooManyConn,
    /// Message authentication failed (SPF, DKIM, DMARC).
    AuthFailure,
    /// The message was delivered, relayed or expanded (success DSN).
    Delivered,
    /// An automatic reply (vacation notice).
    Vacation,
    /// An abuse report.
    Feedback,
    /// A failure whose cause could not be determined.
    Undefined,
}

impl Reason {
    /// Hard means the address itself is permanently undeliverable: unknown user, unknown
    /// host, moved, or a domain that accepts no mail, and only with a permanent (5xx /
    /// 5.x.x) failure. Everything else is soft, even with a 5.x.x status.
    pub fn is_hard(self, permanent: bool) -> bool {
        match self {
            Reason::UserUnknown | Reason::HostUnknown | Reason::HasMoved => true,
            Reason::NotAccept => permanent,
            _ => false,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Reason::UserUnknown => "user_unknown",
            Reason::HostUnknown => "host_unknown",
            Reason::HasMoved => "has_moved",
            Reason::NotAccept => "not_accept",
            Reason::MailboxFull => "mailbox_full",
            Reason::Suspend => "suspend",
            Reason::Filtered => "filtered",
            Reason::Blocked => "blocked",
            Reason::Rejected => "rejected",
            Reason::PolicyViolation => "policy_violation",
            Reason::SpamDetected => "spam_detected",
            Reason::Expired => "expired",
            Reason::MesgTooBig => "mesg_too_big",
            Reason::NetworkError => "network_error",
            Reason::SystemError => "system_error",
            Reason::TooManyConn => "too_many_conn",
            Reason::AuthFailure => "auth_failure",
            Reason::Delivered => "delivered",
            Reason::Vacation => "vacation",
            Reason::Feedback => "feedback",
            Reason::Undefined => "undefined",
        }
    }
}

/// One recipient of the original message that the report says something about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BouncedRecipient {
    /// The recipient's address, as the report gives it (no angle brackets): a DSN's
    /// `Final-Recipient`.
    pub address: String,
    /// A DSN's `Original-Recipient`, when it names another address: the address the
    /// sender used, before an alias or forward rewrote it into [`Self::address`]. The
    /// subscriber is matched against both (docs/classifier.md, "Which address").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub original_recipient: Option<String>,
    /// The address itself is permanently undeliverable ([`Reason::is_hard`]).
    pub hard: bool,
    /// RFC 3463 status code such as `5.1.1`; empty when the report gives none.
    pub status: String,
    /// RFC 3464 action: `failed`, `delayed`, `delivered`, `relayed` or `expanded`.
    pub action: String,
    /// The remote server's reply or the reporting system's explanation.
    pub diagnostic: String,
    pub reason: Reason,
}

/// What [`classify`] found in one message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verdict {
    pub kind: ReportKind,
    /// For a bounce or delay: the recipients the report names. For a complaint: the
    /// complaining recipient when the report names one.
    pub recipients: Vec<BouncedRecipient>,
    pub message_id: Option<String>,
    pub subject: Option<String>,
    /// For a complaint: the ARF `Feedback-Type` (`abuse`, `opt-out`, ...), lower-cased.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub feedback_type: Option<String>,
    /// For a complaint: who complained (`Original-Rcpt-To`, else the reported message's
    /// `To`). Kept apart from `recipients`, which lists only bounced recipients.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub complainant: Option<String>,
}

impl BouncedRecipient {
    /// Whether this entry is about `address`: its reported address or the original one.
    pub fn is_about(&self, address: &str, same: impl Fn(&str, &str) -> bool) -> bool {
        same(address, &self.address)
            || self
                .original_recipient
                .as_deref()
                .is_some_and(|o| same(address, o))
    }
}

impl Verdict {
    fn unparsable() -> Verdict {
        Verdict {
            kind: ReportKind::Unparsable,
            recipients: Vec::new(),
            message_id: None,
            subject: None,
            feedback_type: None,
            complainant: None,
        }
    }
}

/// Classifies one raw message. Pure: no I/O, no global state beyond compiled patterns.
pub fn classify(raw: &[u8]) -> Verdict {
    match parse(raw) {
        Some(message) => classify_parsed(&message),
        None => Verdict::unparsable(),
    }
}

/// The headers the classifier reads, parsed; all others are kept raw (parsing every
/// `Received` line of a bounce costs more than classifying it).
static PARSER: std::sync::LazyLock<mail_parser::MessageParser> = std::sync::LazyLock::new(|| {
    use mail_parser::HeaderName;
    mail_parser::MessageParser::new()
        .with_mime_headers()
        .header_text(HeaderName::Subject)
        .header_address(HeaderName::From)
        .header_address(HeaderName::To)
        .header_address(HeaderName::Cc)
        .header_address(HeaderName::ReplyTo)
        .header_address(HeaderName::Sender)
        .header_id(HeaderName::MessageId)
});

pub(crate) fn parse(raw: &[u8]) -> Option<mail_parser::Message<'_>> {
    PARSER.parse(raw)
}

pub(crate) fn classify_parsed(message: &mail_parser::Message<'_>) -> Verdict {
    let mut verdict = recognise::run(message);
    verdict.message_id = message.message_id().map(str::to_string);
    verdict.subject = message.subject().map(str::to_string);
    verdict
}

#[cfg(test)]
mod tests;
