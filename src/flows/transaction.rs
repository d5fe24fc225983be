//! One whole mail transaction: every recipient of a message through its flow, and the one
//! reply to DATA for all of them (`docs/behaviour.md` §2).
//!
//! The rules live here rather than in the connection, which only reads the message:
//! postmaster mail is logged and discarded, each `un`/`bn` recipient goes through
//! [`Deliver`] once, the replies fold into one, and a wrong unsubscription code is counted
//! against the client and the subscription id.

use std::net::IpAddr;

use super::{BounceReport, CodeCheck, Deliver, Envelope};
use crate::limiter::FailedUnsubscribeLimiter;
use crate::outcome::MessageKind;
use crate::reply::{Reply, printable};
use crate::router::Recipient;

/// One mail transaction, from MAIL FROM to the end of DATA.
#[derive(Debug, Clone, Default)]
pub struct Transaction {
    /// Reverse path without brackets; empty for the null sender.
    pub mail_from: String,
    pub recipients: Vec<Recipient>,
    pub postmaster: bool,
}

impl Transaction {
    pub fn has_recipient(&self) -> bool {
        self.postmaster || !self.recipients.is_empty()
    }

    /// The kind the transaction is counted and logged under: its first recipient's.
    pub fn kind(&self) -> MessageKind {
        self.recipients
            .first()
            .map(|r| MessageKind::from(r.kind))
            .unwrap_or(MessageKind::Postmaster)
    }
}

/// The reply to DATA for a whole transaction, and what the transaction log line and the
/// metrics need.
#[derive(Debug, Clone)]
pub struct TransactionOutcome {
    pub reply: Reply,
    pub kind: MessageKind,
    /// What became of each `bn` recipient's bounce.
    pub bounces: Vec<BounceReport>,
}

/// Delivers `message` to every recipient of `tx` from `client`, counting wrong codes in
/// `attempts`.
pub async fn deliver_transaction(
    deliver: &dyn Deliver,
    attempts: &FailedUnsubscribeLimiter,
    client: IpAddr,
    tx: Transaction,
    message: &[u8],
) -> TransactionOutcome {
    let kind = tx.kind();
    if tx.recipients.is_empty() {
        return TransactionOutcome {
            reply: postmaster(client, &tx, message),
            kind,
            bounces: Vec::new(),
        };
    }
    // Every recipient is processed, one after the other (each flow serialises per
    // address). One temporary failure answers for the whole message: the sender retries
    // it for all recipients, and a retry is recognised where it was already applied.
    let total = tx.recipients.len();
    let mut bounces = Vec::new();
    let mut temporary: Option<Reply> = None;
    let mut refused: Vec<(Recipient, Reply)> = Vec::new();
    let mut accepted: Option<Reply> = None;
    for recipient in tx.recipients {
        let envelope = Envelope {
            client,
            mail_from: tx.mail_from.clone(),
            recipient,
        };
        let d = deliver.deliver_reported(&envelope, message).await;
        note_code_check(attempts, client, &envelope.recipient, d.code);
        bounces.extend(d.bounce);
        let r = d.reply;
        if r.is_positive() {
            accepted.get_or_insert(r);
        } else if r.is_permanent_failure() {
            refused.push((envelope.recipient, r));
        } else {
            temporary.get_or_insert(r);
        }
    }
    let reply = fold_replies(client, total, temporary, accepted, refused);
    TransactionOutcome {
        reply,
        kind,
        bounces,
    }
}

/// Mail to postmaster only: RFC 5321 §4.5.1 wants it accepted; a record is kept, not the
/// mail.
fn postmaster(client: IpAddr, tx: &Transaction, message: &[u8]) -> Reply {
    let parsed = mail_parser::MessageParser::new().parse_headers(message);
    let (message_id, subject) = parsed
        .as_ref()
        .map(|m| {
            (
                m.message_id().unwrap_or("").to_string(),
                m.subject().unwrap_or("").to_string(),
            )
        })
        .unwrap_or_default();
    tracing::info!(
        %client,
        kind = "postmaster",
        outcome = "discarded",
        code = 250,
        sender = %printable(&tx.mail_from),
        message_id = %printable(&message_id),
        subject = %printable(&subject),
        size = message.len(),
        "postmaster message logged and discarded"
    );
    Reply::ok("message received by postmaster")
}

/// One reply for all recipients: any temporary failure wins (451), then all refused (the
/// first refusal), else 250 (saying how many were refused when some were).
fn fold_replies(
    client: IpAddr,
    total: usize,
    temporary: Option<Reply>,
    accepted: Option<Reply>,
    refused: Vec<(Recipient, Reply)>,
) -> Reply {
    if let Some(r) = temporary {
        return r;
    }
    let Some(ok) = accepted else {
        // Every recipient refused for good: the first refusal speaks for the message.
        return refused
            .into_iter()
            .next()
            .map(|(_, r)| r)
            .unwrap_or_else(|| Reply::new(550, "5.1.1", "no recipient accepted"));
    };
    if refused.is_empty() {
        return ok;
    }
    for (recipient, r) in &refused {
        tracing::info!(
            %client,
            kind = recipient.kind.as_str(),
            id = recipient.id.as_str(),
            code = r.code,
            enhanced = r.enhanced,
            "recipient refused; the message was accepted for the others"
        );
    }
    // Counts only: the ids are in the log, and a reply line stays short whatever they are.
    Reply::ok(format!(
        "message accepted for {} of {total} recipients; {} refused",
        total - refused.len(),
        refused.len()
    ))
}

/// Counts a wrong code for one recipient against its client and its subscription id
/// (`docs/reliability.md`); called once per recipient with what its processing learnt.
fn note_code_check(
    attempts: &FailedUnsubscribeLimiter,
    client: IpAddr,
    recipient: &Recipient,
    check: CodeCheck,
) {
    if check != CodeCheck::Wrong {
        return;
    }
    let id = recipient.id.as_str();
    let blocks = attempts.record_wrong_code(client, id);
    tracing::info!(%client, kind = recipient.kind.as_str(), id, "wrong unsubscription code");
    if blocks.client {
        tracing::warn!(%client, "client blocked: too many wrong unsubscription codes");
    }
    if blocks.id {
        tracing::warn!(
            id,
            "subscription id blocked: too many wrong unsubscription codes"
        );
    }
}
