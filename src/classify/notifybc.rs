//! The counting decision: whether a bounce increments the subscriber's `hardBounceCount`
//! (README, "Bounce classification"; docs/classifier.md).
//!
//! By default (`decision = "classifier"`) the classifier's verdict decides: the bounce
//! counts when the subscriber's own entry in the report failed permanently and is hard.
//! NotifyBC's filters apply only where set, as extra conditions.
//!
//! With `decision = "notifybc"`, NotifyBC's rule as NotifyBC runs it: the filters read the
//! whole text of the message (prose, delivery-status fields and the text of an attached
//! original, in document order). A bounce counts only if `subject_regex` (empty = off)
//! matches the Subject, and `smtp_status_code_regex` matches the text, and the bounced
//! address equals the subscriber's address. The bounced address is the
//! `X-Failed-Recipients` header if present, else the first match of
//! `failed_recipient_regex` in the text (empty = off); when none is found the address
//! check does not apply.

use std::sync::LazyLock;

use mail_parser::{HeaderName, Message, MessageParser, MimeHeaders, PartType};
use regex::Regex;

use super::{ReportKind, Verdict, classify_parsed, parse};
use crate::config::{BounceDecision, BounceSettings};

/// The bounce filters and options, as the validated settings give them.
#[derive(Debug, Clone)]
pub struct Filters {
    decision: BounceDecision,
    subject: Option<Regex>,
    status: Option<Regex>,
    failed_recipient: Option<Regex>,
    case_insensitive_domain: bool,
    case_insensitive_local_part: bool,
    multiple_failed_recipients: bool,
    per_recipient_status: bool,
    ignore_auto_replies: bool,
    ignore_delays: bool,
    complaints_unsubscribe: bool,
}

impl Filters {
    pub fn new(b: &BounceSettings) -> Filters {
        Filters {
            decision: b.decision,
            subject: b.subject_regex.clone(),
            status: b.smtp_status_code_regex.clone(),
            failed_recipient: b.failed_recipient_regex.clone(),
            case_insensitive_domain: b.case_insensitive_domain,
            case_insensitive_local_part: b.case_insensitive_local_part,
            multiple_failed_recipients: b.multiple_failed_recipients,
            per_recipient_status: b.per_recipient_status,
            ignore_auto_replies: b.ignore_auto_replies,
            ignore_delays: b.ignore_delays,
            complaints_unsubscribe: b.complaints_unsubscribe,
        }
    }

    /// Whether the decision reads the classifier's verdict. NotifyBC's own rule reads only
    /// the Subject, the text and the failed-recipient header or pattern, so under it, and
    /// without these options, the message need not be classified.
    fn needs_verdict(&self) -> bool {
        self.decision == BounceDecision::Classifier
            || self.ignore_auto_replies
            || self.ignore_delays
            || self.complaints_unsubscribe
            || self.per_recipient_status
    }

    /// Which rule decides.
    pub fn decision(&self) -> BounceDecision {
        self.decision
    }

    /// Whether two addresses are the same under the configured comparison (exact by
    /// default, like NotifyBC).
    /// The subscriber's own entry in the report: the recipient whose reported or original
    /// address is the subscriber's; without a subscriber (the offline command), the first.
    fn entry_of(&self, verdict: &Verdict, subscriber: Option<&str>) -> Option<usize> {
        match subscriber {
            Some(s) => verdict
                .recipients
                .iter()
                .position(|r| r.is_about(s, |a, b| self.same_address(a, b))),
            None => (!verdict.recipients.is_empty()).then_some(0),
        }
    }

    pub fn same_address(&self, a: &str, b: &str) -> bool {
        if !self.case_insensitive_domain && !self.case_insensitive_local_part {
            return a == b;
        }
        let (la, da) = a.rsplit_once('@').unwrap_or((a, ""));
        let (lb, db) = b.rsplit_once('@').unwrap_or((b, ""));
        let local = if self.case_insensitive_local_part {
            la.eq_ignore_ascii_case(lb) || la.to_lowercase() == lb.to_lowercase()
        } else {
            la == lb
        };
        let domain = if self.case_insensitive_domain {
            da.eq_ignore_ascii_case(db)
        } else {
            da == db
        };
        local && domain && a.contains('@') == b.contains('@')
    }
}

/// The decision on one bounce message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assessment {
    pub verdict: Verdict,
    /// Whether the message increments the subscriber's `hardBounceCount`.
    pub counts: bool,
    /// Why: `counted`, or the reason it does not count: under the classifier `soft`,
    /// `delayed`, `auto_reply`, `not_bounce`, `complaint`, `not_our_recipient`, or the
    /// filter that refused it (`subject_regex`, `smtp_status_code_regex`,
    /// `failed_recipient_regex`); under NotifyBC's rule the filter
    /// (`failed_recipient mismatch` for the address) or an option's name; `unparsable`.
    pub why: String,
    /// The bounced address(es) the decision compared with the subscriber's.
    pub bounced_addresses: Vec<String>,
    /// The message is a complaint and `complaints_unsubscribe` is on: unsubscribe.
    pub complaint: bool,
}

/// NotifyBC's decision for `raw`, delivered for `subscriber` (the subscription's address).
/// With `subscriber` `None` (the offline `classify` command) the question is whether it
/// would count for a subscriber whose address is the first recipient found.
pub fn assess(raw: &[u8], filters: &Filters, subscriber: Option<&str>) -> Assessment {
    let Some(message) = parse(raw) else {
        return Assessment {
            verdict: super::Verdict::unparsable(),
            counts: false,
            why: "unparsable".into(),
            bounced_addresses: Vec::new(),
            complaint: false,
        };
    };
    let verdict = classify_parsed(&message);
    assess_parsed(&message, verdict, filters, subscriber)
}

/// What the `bn` flow acts on: [`assess`] for a known subscriber, without the verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// Whether the message increments the subscriber's `hardBounceCount`.
    pub counts: bool,
    /// The filter that decided, as in [`Assessment::why`].
    pub why: String,
    /// A complaint to act on (`complaints_unsubscribe`).
    pub complaint: bool,
    /// Not a message at all: no header could be parsed.
    pub unparsable: bool,
}

/// The parser for NotifyBC's filters alone. They read the Subject, the MIME structure and
/// `X-Failed-Recipients` (from the raw text), so every other header (the trace, address
/// and date headers are most of a bounce's header section) is skipped rather than parsed
/// into structures nothing reads.
static FILTER_PARSER: LazyLock<MessageParser> = LazyLock::new(|| {
    MessageParser::new()
        .with_mime_headers()
        .header_text(HeaderName::Subject)
        .default_header_ignore()
});

/// The same decision as [`assess`] for `subscriber`, at less cost: the message is
/// classified, and its headers all parsed, only when an option needs the verdict.
pub fn decide(raw: &[u8], filters: &Filters, subscriber: &str) -> Decision {
    let parsed = if filters.needs_verdict() {
        parse(raw)
    } else {
        FILTER_PARSER.parse(raw)
    };
    let Some(message) = parsed else {
        return Decision {
            counts: false,
            why: "unparsable".into(),
            complaint: false,
            unparsable: true,
        };
    };
    let verdict = if filters.needs_verdict() {
        classify_parsed(&message)
    } else {
        // Never read: with a subscriber given and no option on, `assess_parsed` decides
        // from the message alone.
        Verdict {
            kind: ReportKind::NotBounce,
            recipients: Vec::new(),
            message_id: None,
            subject: None,
            feedback_type: None,
            complainant: None,
        }
    };
    let a = assess_parsed(&message, verdict, filters, Some(subscriber));
    Decision {
        counts: a.counts,
        why: a.why,
        complaint: a.complaint,
        unparsable: false,
    }
}

/// The outcome the `bn` flow logs for this assessment, as far as the message alone tells
/// (the threshold and retries depend on the subscriber's record): `counted`,
/// `unsubscribed` (a complaint) or `not_counted`, with the reason.
pub fn outcome(a: &Assessment) -> (&'static str, Option<&str>) {
    if a.counts {
        ("counted", None)
    } else if a.complaint {
        ("unsubscribed", Some("complaint"))
    } else {
        ("not_counted", Some(a.why.as_str()))
    }
}

/// The reasoning behind an assessment, in sentences (`classify --explain`).
pub fn explain(a: &Assessment, f: &Filters) -> Vec<String> {
    let mut lines = Vec::new();
    let classifier = f.decision == BounceDecision::Classifier;
    lines.push(if classifier {
        "decision = \"classifier\": it counts when the subscriber's own entry in the report \
         failed permanently and is hard; NotifyBC's filters only where set"
            .to_string()
    } else {
        "decision = \"notifybc\": NotifyBC's filters over the whole text of the message".to_string()
    });
    let first = a.verdict.recipients.first();
    match first {
        Some(r) => lines.push(format!(
            "subscriber taken to be the first recipient found: {}",
            r.address
        )),
        None => lines.push("the report names no recipient".to_string()),
    }
    let entry = |r: &super::BouncedRecipient| {
        format!(
            "{} {} with status {} ({})",
            r.address,
            r.action,
            if r.status.is_empty() { "-" } else { &r.status },
            r.reason.as_str()
        )
    };
    let line = match a.why.as_str() {
        "counted" if classifier => match first {
            Some(r) => format!("{}: a permanent, hard failure", entry(r)),
            None => "counted".to_string(),
        },
        "counted" => "every NotifyBC filter passed".to_string(),
        "soft" => match first {
            Some(r) if r.status.starts_with('4') => {
                format!("{}: a temporary failure, not permanent", entry(r))
            }
            Some(r) => format!("{}: soft, the mailbox itself is not gone", entry(r)),
            None => "soft".to_string(),
        },
        "delayed" => "a delay notice: delivery is still being tried".to_string(),
        "auto_reply" | "ignore_auto_replies" => "an automatic reply, not a bounce".to_string(),
        "not_bounce" => "not a delivery failure report".to_string(),
        "complaint" => {
            "a complaint (ARF); complaints_unsubscribe is off, so it is only recorded".to_string()
        }
        "complaints_unsubscribe" => {
            "a complaint (ARF): complaints_unsubscribe unsubscribes the subscriber".to_string()
        }
        "ignore_delays" => "a delay notice; ignore_delays is on".to_string(),
        "not_our_recipient" | "failed_recipient mismatch" if a.bounced_addresses.is_empty() => {
            "no failed recipient found".to_string()
        }
        "not_our_recipient" => format!(
            "the subscriber is not among the failed recipients ({})",
            a.bounced_addresses.join(", ")
        ),
        "failed_recipient mismatch" | "failed_recipient_regex" => format!(
            "the bounced address NotifyBC's rule finds ({}) is not the subscriber's",
            a.bounced_addresses.join(", ")
        ),
        "subject_regex" => "subject_regex is set and the Subject does not match it".to_string(),
        "smtp_status_code_regex" if classifier => {
            "smtp_status_code_regex is set and the recipient's status does not match it".to_string()
        }
        "smtp_status_code_regex" => {
            "smtp_status_code_regex does not match the text of the message".to_string()
        }
        "per_recipient_status: soft" => "per_recipient_status: the entry is soft".to_string(),
        "per_recipient_status: not failed" => {
            "per_recipient_status: the entry did not fail".to_string()
        }
        "unparsable" => "not a message: no header could be parsed".to_string(),
        other => other.to_string(),
    };
    lines.push(line);
    lines
}

fn not_counted(verdict: Verdict, why: &str, bounced: Vec<String>, complaint: bool) -> Assessment {
    Assessment {
        verdict,
        counts: false,
        why: why.to_string(),
        bounced_addresses: bounced,
        complaint,
    }
}

pub(crate) fn assess_parsed(
    message: &Message<'_>,
    verdict: Verdict,
    f: &Filters,
    subscriber: Option<&str>,
) -> Assessment {
    match f.decision {
        BounceDecision::Classifier => by_classifier(message, verdict, f, subscriber),
        BounceDecision::Notifybc => by_notifybc_rule(message, verdict, f, subscriber),
    }
}

/// The default decision: the subscriber's own entry in the report decides; NotifyBC's
/// filters, where set, are extra conditions (the status pattern then reads that entry's
/// status, the address pattern NotifyBC's bounced address).
fn by_classifier(
    message: &Message<'_>,
    verdict: Verdict,
    f: &Filters,
    subscriber: Option<&str>,
) -> Assessment {
    let bounced: Vec<String> = verdict
        .recipients
        .iter()
        .map(|r| r.address.clone())
        .collect();
    let why = match verdict.kind {
        ReportKind::Bounce => None,
        ReportKind::Delay => Some("delayed"),
        ReportKind::AutoReply => Some("auto_reply"),
        ReportKind::NotBounce => Some("not_bounce"),
        ReportKind::Unparsable => Some("unparsable"),
        ReportKind::Complaint => {
            let complaint =
                f.complaints_unsubscribe && verdict.feedback_type.as_deref() != Some("not-spam");
            let why = if f.complaints_unsubscribe {
                "complaints_unsubscribe"
            } else {
                "complaint"
            };
            return not_counted(verdict, why, bounced, complaint);
        }
    };
    if let Some(why) = why {
        return not_counted(verdict, why, bounced, false);
    }
    if let Some(re) = &f.subject
        && !message.subject().is_some_and(|s| re.is_match(s))
    {
        return not_counted(verdict, "subject_regex", bounced, false);
    }
    let Some(i) = f.entry_of(&verdict, subscriber) else {
        return not_counted(verdict, "not_our_recipient", bounced, false);
    };
    let r = &verdict.recipients[i];
    if r.action != "failed" {
        return not_counted(verdict, "delayed", bounced, false);
    }
    if let Some(re) = &f.status
        && !re.is_match(&r.status)
    {
        return not_counted(verdict, "smtp_status_code_regex", bounced, false);
    }
    if f.failed_recipient.is_some() {
        let text = whole_text(message);
        let found = bounced_addresses_in(message, text.as_deref(), f);
        let address = subscriber.unwrap_or(&r.address);
        if !found.is_empty() && !found.iter().any(|b| f.same_address(address, b)) {
            return not_counted(verdict, "failed_recipient_regex", bounced, false);
        }
    }
    // A temporary failure reported as final (a full mailbox that expired in the queue) is
    // still about a mailbox that exists.
    let permanent = !r.status.starts_with('4');
    if !r.hard || !permanent {
        return not_counted(verdict, "soft", bounced, false);
    }
    Assessment {
        verdict,
        counts: true,
        why: "counted".into(),
        bounced_addresses: bounced,
        complaint: false,
    }
}

/// `decision = "notifybc"`: NotifyBC's rule, with the options beyond it.
fn by_notifybc_rule(
    message: &Message<'_>,
    verdict: Verdict,
    f: &Filters,
    subscriber: Option<&str>,
) -> Assessment {
    if f.ignore_auto_replies && verdict.kind == ReportKind::AutoReply {
        return not_counted(verdict, "ignore_auto_replies", Vec::new(), false);
    }
    if f.ignore_delays && verdict.kind == ReportKind::Delay {
        return not_counted(verdict, "ignore_delays", Vec::new(), false);
    }
    if f.complaints_unsubscribe && verdict.kind == ReportKind::Complaint {
        let complaint = verdict.feedback_type.as_deref() != Some("not-spam");
        return not_counted(verdict, "complaints_unsubscribe", Vec::new(), complaint);
    }

    if let Some(re) = &f.subject
        && !message.subject().is_some_and(|s| re.is_match(s))
    {
        let bounced = bounced_addresses(message, f);
        return not_counted(verdict, "subject_regex", bounced, false);
    }

    if f.per_recipient_status && !verdict.recipients.is_empty() {
        return per_recipient(verdict, f, subscriber);
    }

    let body = whole_text(message);
    let status_ok = match (&body, &f.status) {
        (None, _) => false,
        (Some(_), None) => true,
        (Some(b), Some(re)) => re.is_match(b),
    };
    let bounced = bounced_addresses_in(message, body.as_deref(), f);
    if !status_ok {
        return not_counted(verdict, "smtp_status_code_regex", bounced, false);
    }
    if !bounced.is_empty() {
        let subscriber = subscriber
            .map(str::to_string)
            .or_else(|| verdict.recipients.first().map(|r| r.address.clone()))
            .unwrap_or_else(|| bounced[0].clone());
        if !bounced.iter().any(|b| f.same_address(&subscriber, b)) {
            return not_counted(verdict, "failed_recipient mismatch", bounced, false);
        }
    }
    Assessment {
        verdict,
        counts: true,
        why: "counted".into(),
        bounced_addresses: bounced,
        complaint: false,
    }
}

/// `per_recipient_status`: the subscriber's own entry in the report decides. It counts
/// only if that recipient failed (not delayed), its status matches
/// `smtp_status_code_regex`, and the classifier judges it hard.
fn per_recipient(verdict: Verdict, f: &Filters, subscriber: Option<&str>) -> Assessment {
    let bounced: Vec<String> = verdict
        .recipients
        .iter()
        .map(|r| r.address.clone())
        .collect();
    let Some(i) = f.entry_of(&verdict, subscriber) else {
        return not_counted(verdict, "failed_recipient mismatch", bounced, false);
    };
    let r = &verdict.recipients[i];
    if r.action != "failed" {
        return not_counted(verdict, "per_recipient_status: not failed", bounced, false);
    }
    if let Some(re) = &f.status
        && !re.is_match(&r.status)
    {
        return not_counted(verdict, "smtp_status_code_regex", bounced, false);
    }
    if !r.hard {
        return not_counted(verdict, "per_recipient_status: soft", bounced, false);
    }
    Assessment {
        verdict,
        counts: true,
        why: "counted".into(),
        bounced_addresses: bounced,
        complaint: false,
    }
}

/// The text NotifyBC's filters read, as NotifyBC's parser (mailparser) gives it today: the
/// text of every part in document order (the prose, the delivery-status fields, the
/// returned headers and the text of an attached original), HTML only for a message with no
/// plain text; `None` when there is no text at all.
pub(crate) fn whole_text(message: &Message<'_>) -> Option<String> {
    let mut out = String::new();
    let found = push_text(message, &mut out, 0);
    found.then_some(out)
}

/// Appends the text of `message`'s parts to `out`; whether any text was found. Nesting is
/// bounded, so a crafted message cannot recurse without end.
fn push_text(message: &Message<'_>, out: &mut String, depth: usize) -> bool {
    if depth > 8 {
        return false;
    }
    // NotifyBC reads `html || text`: where there is an HTML body, the plain-text prose is
    // not read (the report parts still are).
    let has_html = message
        .parts
        .iter()
        .any(|p| matches!(p.body, PartType::Html(_)));
    let mut found = false;
    let mut push = |out: &mut String, text: &str| {
        if found {
            out.push('\n');
        }
        out.push_str(text);
        found = true;
    };
    for part in &message.parts {
        match &part.body {
            PartType::Text(t) if !(has_html && is_plain(part)) => push(out, t),
            PartType::Html(t) => push(out, t),
            PartType::Binary(b) | PartType::InlineBinary(b) if is_report_part(part) => {
                push(out, &String::from_utf8_lossy(b))
            }
            PartType::Message(m) => {
                let mut inner = String::new();
                if push_text(m, &mut inner, depth + 1) {
                    push(out, &inner);
                }
            }
            _ => {}
        }
    }
    found
}

fn is_plain(part: &mail_parser::MessagePart<'_>) -> bool {
    part.content_type().is_none_or(|ct| {
        ct.ctype().eq_ignore_ascii_case("text")
            && ct.subtype().is_none_or(|s| s.eq_ignore_ascii_case("plain"))
    })
}

/// The textual report parts a mail parser reads as text: `message/delivery-status` (and
/// its RFC 6533 form) and `text/rfc822-headers`.
fn is_report_part(part: &mail_parser::MessagePart<'_>) -> bool {
    part.content_type().is_some_and(|ct| {
        let sub = ct.subtype().unwrap_or("");
        (ct.ctype().eq_ignore_ascii_case("message")
            && (sub.eq_ignore_ascii_case("delivery-status")
                || sub.eq_ignore_ascii_case("global-delivery-status")))
            || (ct.ctype().eq_ignore_ascii_case("text")
                && sub.eq_ignore_ascii_case("rfc822-headers"))
    })
}

fn bounced_addresses(message: &Message<'_>, f: &Filters) -> Vec<String> {
    let body = whole_text(message);
    bounced_addresses_in(message, body.as_deref(), f)
}

/// The bounced address(es): `X-Failed-Recipients` if present and not empty, else the
/// first match of `failed_recipient_regex` in the body.
fn bounced_addresses_in(message: &Message<'_>, body: Option<&str>, f: &Filters) -> Vec<String> {
    let headers: Vec<String> = message
        .headers()
        .iter()
        .filter(|h| h.name.as_str().eq_ignore_ascii_case("X-Failed-Recipients"))
        .filter_map(|h| {
            let raw = message
                .raw_message()
                .get(h.offset_start as usize..h.offset_end as usize)?;
            Some(unfold(&String::from_utf8_lossy(raw)))
        })
        .filter(|v| !v.is_empty())
        .collect();
    if !headers.is_empty() {
        if f.multiple_failed_recipients {
            return headers
                .iter()
                .flat_map(|v| v.split(','))
                .map(|a| super::text::clean_address(a).to_string())
                .filter(|a| !a.is_empty())
                .collect();
        }
        // NotifyBC compares the header's value as one string; repeated headers become a
        // list that never equals an address, which the joined value reproduces.
        return vec![headers.join(",")];
    }
    if let (Some(re), Some(body)) = (&f.failed_recipient, body)
        && let Some(m) = re.find(body)
        && !m.as_str().is_empty()
    {
        return vec![m.as_str().to_string()];
    }
    Vec::new()
}

fn unfold(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    for (i, line) in raw.split('\n').enumerate() {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if i > 0 && !line.is_empty() {
            out.push(' ');
            out.push_str(line.trim_start());
        } else {
            out.push_str(line);
        }
    }
    out.trim().to_string()
}
