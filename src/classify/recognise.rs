//! The recogniser table: each entry reads one family of report formats and either claims
//! the message (returning what it found) or passes. Entries are tried in order, standard
//! formats first, so a structured report is always preferred to wording in free text.

use mail_parser::{Message, MimeHeaders};

use super::dsn::{self, DsnRecipient};
use super::reason;
use super::text::find_status;
use super::{BouncedRecipient, MessageKind, Verdict, arf};

/// What a recogniser found.
pub(crate) enum Found {
    /// Per-recipient results of a delivery report.
    Report(Vec<DsnRecipient>),
    Complaint(arf::Feedback),
    AutoReply,
}

type Recogniser = fn(&Message<'_>) -> Option<Found>;

/// The table, in the order the entries are tried.
const TABLE: &[(&str, Recogniser)] = &[
    ("rfc5965-arf", recognise_arf),
    ("rfc3464-dsn", recognise_rfc3464),
    ("rfc3834-auto-reply", recognise_auto_reply),
];

pub(crate) fn run(message: &Message<'_>) -> Verdict {
    for (_, recogniser) in TABLE {
        if let Some(found) = recogniser(message) {
            return verdict(found);
        }
    }
    empty(MessageKind::NotBounce)
}

fn empty(kind: MessageKind) -> Verdict {
    Verdict {
        kind,
        recipients: Vec::new(),
        message_id: None,
        subject: None,
        feedback_type: None,
        complainant: None,
    }
}

fn verdict(found: Found) -> Verdict {
    match found {
        Found::Complaint(fb) => Verdict {
            feedback_type: Some(fb.feedback_type),
            complainant: fb.complainant,
            ..empty(MessageKind::Complaint)
        },
        Found::AutoReply => empty(MessageKind::AutoReply),
        Found::Report(list) => report_verdict(list),
    }
}

/// Turns per-recipient report entries into a verdict: failed recipients make a bounce,
/// only delayed ones a delay, only successes (delivered, relayed, expanded) no bounce.
fn report_verdict(list: Vec<DsnRecipient>) -> Verdict {
    let mut recipients = Vec::with_capacity(list.len());
    let mut failed = false;
    let mut delayed = false;
    for r in list {
        let mut status = r.status.clone();
        // A generic code (x.0.0) or none: the diagnostic often carries the precise one.
        if (status.is_empty() || status.ends_with(".0.0"))
            && let Some(s) = find_status(&r.diagnostic)
            && (status.is_empty() || s.as_bytes()[0] == status.as_bytes()[0])
        {
            status = s.to_string();
        }
        let action = match r.action.as_str() {
            "" => match status.as_bytes().first() {
                Some(b'2') => "delivered",
                Some(b'4') => "delayed",
                _ => "failed",
            },
            a => a,
        };
        match action {
            "failed" => failed = true,
            "delayed" => delayed = true,
            _ => continue,
        }
        let permanent = action == "failed" && !status.starts_with('4');
        let reason = reason::decide(&status, &r.diagnostic);
        recipients.push(BouncedRecipient {
            address: r.address().to_string(),
            hard: permanent && reason.is_hard(permanent),
            status,
            action: action.to_string(),
            diagnostic: r.diagnostic,
            reason,
        });
    }
    let kind = if failed {
        MessageKind::Bounce
    } else if delayed {
        MessageKind::Delay
    } else {
        MessageKind::NotBounce
    };
    Verdict {
        recipients,
        ..empty(kind)
    }
}

fn recognise_arf(message: &Message<'_>) -> Option<Found> {
    arf::read(message).map(Found::Complaint)
}

/// RFC 3464: a `message/delivery-status` part (RFC 6533: `message/global-delivery-status`)
/// of the report itself, never one inside an attached original message.
fn recognise_rfc3464(message: &Message<'_>) -> Option<Found> {
    let part = message.parts.iter().find(|p| {
        p.is_content_type("message", "delivery-status")
            || p.is_content_type("message", "global-delivery-status")
    })?;
    let body = String::from_utf8_lossy(part.contents());
    let list = dsn::parse(&body);
    if list.is_empty() {
        return None;
    }
    Some(Found::Report(list))
}

/// RFC 3834 automatic replies and the common vacation-notice markers.
fn recognise_auto_reply(message: &Message<'_>) -> Option<Found> {
    let header = |name: &'static str| message.header_raw(name).map(str::trim);
    if let Some(v) = header("Auto-Submitted")
        && v.to_ascii_lowercase().starts_with("auto-replied")
    {
        return Some(Found::AutoReply);
    }
    if header("X-Autoreply").is_some()
        || header("X-Autorespond").is_some()
        || header("X-Autoresponder").is_some()
        || header("X-Vacation").is_some()
        || header("Precedence").is_some_and(|v| v.eq_ignore_ascii_case("auto_reply"))
    {
        return Some(Found::AutoReply);
    }
    let subject = message.subject().unwrap_or("");
    let lower = subject.to_ascii_lowercase();
    if [
        "out of office",
        "out of the office",
        "automatic reply",
        "auto reply",
        "autoreply",
        "vacation",
    ]
    .iter()
    .any(|p| lower.contains(p))
        || lower.starts_with("auto:")
    {
        return Some(Found::AutoReply);
    }
    None
}
