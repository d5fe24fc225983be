//! The recogniser table: each entry reads one family of report formats and either claims
//! the message (returning what it found) or passes. Entries are tried in order: the
//! structured standards first (ARF, RFC 3464), then structure that a reporting system
//! states in a header (`X-Failed-Recipients`), then prose reports, and last automatic
//! replies, so a report is always read from its most reliable form.

use std::cell::OnceCell;

use mail_parser::{Message, MimeHeaders, PartType};

use super::dsn::{self, DsnRecipient};
use super::prose::{self, Entry};
use super::reason;
use super::text::{clean_address, contains_ci, find_reply_code, find_status, starts_with_ci};
use super::{BouncedRecipient, Reason, ReportKind, Verdict, arf, ses};

/// What a recogniser found.
pub(crate) enum Found {
    /// Per-recipient results of a delivery report.
    Report(Vec<DsnRecipient>),
    Complaint(arf::Feedback),
    AutoReply,
    /// The verdict on a report forwarded as an attached message.
    Forwarded(Verdict),
}

/// What the recognisers share: the message and its human-readable report, computed once.
pub(crate) struct Context<'a, 'm> {
    pub message: &'a Message<'m>,
    /// The first text body without the returned original message.
    pub report: String,
    /// What followed the report in that text body (a pasted original, if any).
    pub pasted: String,
    /// The recipients the prose names, read once when first needed.
    entries: OnceCell<(Vec<Entry>, String)>,
}

impl Context<'_, '_> {
    /// The prose report's recipient entries and the text before the first of them.
    fn entries(&self) -> &(Vec<Entry>, String) {
        self.entries
            .get_or_init(|| prose::entries(self.message, &self.report))
    }
}

type Recogniser = fn(&Context<'_, '_>) -> Option<Found>;

/// The table, in the order the entries are tried.
const TABLE: &[(&str, Recogniser)] = &[
    ("rfc5965-arf", recognise_arf),
    ("rfc3464-dsn", recognise_rfc3464),
    ("rfc3464-fields-in-text", recognise_inline_dsn),
    ("amazon-ses-notification", recognise_ses),
    ("x-failed-recipients", recognise_x_failed_recipients),
    ("prose-report", recognise_prose),
    ("forwarded-report", recognise_forwarded),
    ("rfc3834-auto-reply", recognise_auto_reply),
];

pub(crate) fn run(message: &Message<'_>) -> Verdict {
    let (mut report, cut) = prose::report_text(message).unwrap_or_default();
    let pasted = report.split_off(cut.min(report.len()));
    let cx = Context {
        message,
        report,
        pasted,
        entries: OnceCell::new(),
    };
    for (_, recogniser) in TABLE {
        if let Some(found) = recogniser(&cx) {
            return verdict(found);
        }
    }
    empty(ReportKind::NotBounce)
}

fn empty(kind: ReportKind) -> Verdict {
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
            ..empty(ReportKind::Complaint)
        },
        Found::AutoReply => empty(ReportKind::AutoReply),
        Found::Forwarded(v) => v,
        Found::Report(list) => report_verdict(list),
    }
}

/// A status for a recipient whose report gives none, from its reason, so that every
/// failed recipient carries one (the `per_recipient_status` option matches on it).
fn status_for(reason: Reason, permanent: bool) -> String {
    let (subject, detail) = match reason {
        Reason::UserUnknown => (1, 1),
        Reason::HostUnknown => (1, 2),
        Reason::HasMoved => (1, 6),
        Reason::NotAccept => (1, 10),
        Reason::MailboxFull => (2, 2),
        Reason::Suspend => (2, 1),
        Reason::MesgTooBig => (3, 4),
        Reason::Expired => (4, 7),
        Reason::NetworkError => (4, 0),
        Reason::SystemError => (3, 0),
        Reason::Blocked | Reason::SpamDetected | Reason::PolicyViolation => (7, 1),
        Reason::AuthFailure => (7, 26),
        Reason::Rejected => (1, 8),
        Reason::TooManyConn => (4, 5),
        _ => (0, 0),
    };
    format!("{}.{subject}.{detail}", if permanent { 5 } else { 4 })
}

/// Turns per-recipient report entries into a verdict: failed recipients make a bounce,
/// only delayed ones a delay, only successes (delivered, relayed, expanded) no bounce.
fn report_verdict(list: Vec<DsnRecipient>) -> Verdict {
    let mut recipients: Vec<BouncedRecipient> = Vec::with_capacity(list.len());
    let mut failed = false;
    let mut delayed = false;
    for r in list {
        // Files and programs an alias delivered to are not addresses anyone can act on.
        if !r.address().contains('@') {
            continue;
        }
        let mut status = r.status.clone();
        // A generic code (x.0.0) or none: the diagnostic often carries the precise one,
        // also where it is of another class: an MTA that gave up retrying a 4.x.x reports
        // 5.0.0, while the cause (a full mailbox, say) stays the temporary one it quoted.
        if (status.is_empty() || status.ends_with(".0.0"))
            && let Some(s) = find_status(&r.diagnostic)
        {
            status = s.to_string();
        }
        let reply = find_reply_code(&r.diagnostic);
        // OpenSMTPD reports the envelope it dropped at the end of its queue lifetime as
        // `delayed`; the message will never be delivered.
        let expired = r.action == "delayed"
            && status.ends_with(".4.7")
            && contains_ci(&r.diagnostic, "envelope expired");
        let action = match r.action.as_str() {
            _ if expired => "failed",
            "" => match status
                .as_bytes()
                .first()
                .or(reply.and_then(|c| c.as_bytes().first()))
            {
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
        let temporary = status.starts_with('4')
            || (status.is_empty() && reply.is_some_and(|c| c.starts_with('4')));
        let permanent = action == "failed" && !temporary;
        let command = reason::find_command(&r.diagnostic).or(r.command);
        let reason = reason::decide(&status, &r.diagnostic, command);
        if status.is_empty() {
            status = status_for(reason, permanent);
        }
        let address = r.address().to_string();
        let original_recipient = Some(r.original_recipient.as_str())
            .filter(|o| o.contains('@') && !o.eq_ignore_ascii_case(&address))
            .map(str::to_string);
        if recipients
            .iter()
            .any(|x| x.address.eq_ignore_ascii_case(&address))
        {
            continue;
        }
        recipients.push(BouncedRecipient {
            address,
            original_recipient,
            hard: action == "failed" && reason.is_hard(permanent),
            status,
            action: action.to_string(),
            diagnostic: r.diagnostic,
            reason,
        });
    }
    let kind = if failed {
        ReportKind::Bounce
    } else if delayed {
        ReportKind::Delay
    } else {
        ReportKind::NotBounce
    };
    Verdict {
        recipients,
        ..empty(kind)
    }
}

fn recognise_arf(cx: &Context<'_, '_>) -> Option<Found> {
    arf::read(cx.message).map(Found::Complaint)
}

/// RFC 3464: a `message/delivery-status` part (RFC 6533: `message/global-delivery-status`)
/// of the report itself, never one inside an attached original message.
fn recognise_rfc3464(cx: &Context<'_, '_>) -> Option<Found> {
    let part = cx.message.parts.iter().find(|p| {
        p.is_content_type("message", "delivery-status")
            || p.is_content_type("message", "global-delivery-status")
    })?;
    let body = String::from_utf8_lossy(part.contents());
    let mut list = dsn::parse(&body);
    // A recipient that is a file or a program (an alias's target) is reported under the
    // address that expanded to it, when the reporter names that address in
    // X-Failed-Recipients.
    let failed = x_failed_recipients(cx.message);
    if list.len() == 1 && failed.len() == 1 && !list[0].address().contains('@') {
        list[0].final_recipient = failed[0].clone();
    }
    list.retain(|r| r.address().contains('@'));
    if list.is_empty() {
        return None;
    }
    fill_diagnostics(&mut list, cx);
    Some(Found::Report(list))
}

/// DSN fields pasted into the text of the report (reporters that build the
/// multipart/report structure wrongly, or not at all).
fn recognise_inline_dsn(cx: &Context<'_, '_>) -> Option<Found> {
    let mut list = inline_fields(&cx.report);
    if list.is_empty() {
        // DSN fields sent as a text part of their own (a `multipart/mixed` report, or a
        // second text part of a broken `multipart/report`).
        list = cx
            .message
            .parts
            .iter()
            .filter(|p| !p.is_content_type("text", "rfc822-headers"))
            .filter_map(|p| match &p.body {
                PartType::Text(t) => Some(inline_fields(t)),
                _ => None,
            })
            .find(|l| !l.is_empty())?;
    }
    fill_diagnostics(&mut list, cx);
    Some(Found::Report(list))
}

/// The per-recipient DSN fields in a text, from the first `Final-Recipient` (or
/// `Original-Recipient`) line on.
fn inline_fields(text: &str) -> Vec<DsnRecipient> {
    let Some(start) = line_starting_with(text, "final-recipient:")
        .or_else(|| line_starting_with(text, "original-recipient:"))
    else {
        return Vec::new();
    };
    // Fields before the first recipient (Action, Status) may belong to it.
    let from = text[..start].rfind("\n\n").map_or(0, |i| i + 2);
    dsn::parse(&text[from..])
}

/// Amazon SES notifications (JSON, escaped in an SNS envelope, or re-printed loosely).
fn recognise_ses(cx: &Context<'_, '_>) -> Option<Found> {
    let named = |t: &str| t.contains("notificationType") || t.contains("eventType");
    if !named(&cx.report) && !named(&cx.pasted) {
        return None;
    }
    let text = if cx.pasted.is_empty() {
        std::borrow::Cow::Borrowed(cx.report.as_str())
    } else {
        std::borrow::Cow::Owned(format!("{}{}", cx.report, cx.pasted))
    };
    match ses::read(&text)? {
        ses::Notification::Bounce(list) | ses::Notification::Delivery(list) => {
            Some(Found::Report(list))
        }
        ses::Notification::Complaint(fb) => Some(Found::Complaint(fb)),
    }
}

/// A report forwarded as an attached message (a relay or a person passed the bounce
/// on): the attached message is read as a report of its own. Only a report counts;
/// an ordinary attached original says nothing.
fn recognise_forwarded(cx: &Context<'_, '_>) -> Option<Found> {
    cx.message.parts.iter().find_map(|p| match &p.body {
        PartType::Message(inner) => {
            let v = super::classify_parsed(inner);
            matches!(
                v.kind,
                ReportKind::Bounce | ReportKind::Delay | ReportKind::Complaint
            )
            .then_some(Found::Forwarded(v))
        }
        _ => None,
    })
}

/// Byte offset of the first line starting (case-insensitively) with `prefix`.
fn line_starting_with(text: &str, prefix: &str) -> Option<usize> {
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        if starts_with_ci(line, prefix) {
            return Some(offset);
        }
        offset += line.len();
    }
    None
}

/// A DSN without a Diagnostic-Code often says why in its prose part, and the prose often
/// names the SMTP command the Diagnostic-Code leaves out.
fn fill_diagnostics(list: &mut [DsnRecipient], cx: &Context<'_, '_>) {
    if cx.report.is_empty() {
        return;
    }
    let (entries, _) = cx.entries();
    let single = list.len() == 1;
    for r in list.iter_mut() {
        let address = r.address().to_string();
        let entry = entries
            .iter()
            .find(|e| e.address.eq_ignore_ascii_case(&address));
        r.command = entry
            .and_then(|e| reason::find_command(&e.diagnostic))
            .or_else(|| single.then(|| reason::find_command(&cx.report)).flatten());
    }
    for r in list.iter_mut().filter(|r| r.diagnostic.is_empty()) {
        let address = r.address().to_string();
        if let Some(e) = entries
            .iter()
            .find(|e| e.address.eq_ignore_ascii_case(&address))
            .filter(|e| prose::has_signal(&e.diagnostic))
        {
            r.diagnostic = e.diagnostic.clone();
        } else if single && prose::has_signal(&cx.report) {
            r.diagnostic = collapse(&cx.report);
        }
    }
}

fn collapse(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The addresses of every `X-Failed-Recipients` header, in order, without repeats.
fn x_failed_recipients(m: &Message<'_>) -> Vec<String> {
    let mut listed: Vec<String> = Vec::new();
    for h in m
        .headers()
        .iter()
        .filter(|h| h.name.as_str().eq_ignore_ascii_case("X-Failed-Recipients"))
    {
        let Some(raw) = m
            .raw_message()
            .get(h.offset_start as usize..h.offset_end as usize)
        else {
            continue;
        };
        let raw = String::from_utf8_lossy(raw);
        for a in raw.split(',') {
            let a = clean_address(a);
            if a.contains('@') && !listed.iter().any(|x| x.eq_ignore_ascii_case(a)) {
                listed.push(a.to_string());
            }
        }
    }
    listed
}

/// `X-Failed-Recipients` (Exim, Gmail, Google Groups, Mail.ru, ...): the reporting system
/// lists the failed recipients itself; the prose says why.
fn recognise_x_failed_recipients(cx: &Context<'_, '_>) -> Option<Found> {
    let m = cx.message;
    let listed = x_failed_recipients(m);
    if listed.is_empty() {
        return None;
    }
    let (entries, preamble) = cx.entries();
    let delay = prose::is_delay_notice(m, &cx.report);
    let single = listed.len() == 1;
    let list = listed
        .into_iter()
        .map(|address| {
            let diagnostic = entries
                .iter()
                .find(|e| e.address.eq_ignore_ascii_case(&address))
                .map(|e| e.diagnostic.clone())
                .filter(|d| prose::has_signal(d))
                .or_else(|| {
                    single.then(|| {
                        let mut d = preamble.clone();
                        for e in entries {
                            d.push(' ');
                            d.push_str(&e.diagnostic);
                        }
                        d
                    })
                })
                .unwrap_or_default();
            prose_recipient(
                address,
                diagnostic,
                delay,
                single.then_some(cx.report.as_str()),
            )
        })
        .collect();
    Some(Found::Report(list))
}

fn prose_recipient(
    address: String,
    diagnostic: String,
    delay: bool,
    report: Option<&str>,
) -> DsnRecipient {
    let command =
        reason::find_command(&diagnostic).or_else(|| report.and_then(reason::find_command));
    let status = find_status(&diagnostic).unwrap_or("").to_string();
    let five = status.starts_with('5')
        || (status.is_empty() && find_reply_code(&diagnostic).is_some_and(|c| c.starts_with('5')));
    DsnRecipient {
        final_recipient: address,
        action: if delay && !five { "delayed" } else { "failed" }.to_string(),
        status,
        diagnostic,
        command,
        ..DsnRecipient::default()
    }
}

/// Prose reports: the recipients named on lines of their own, each with the text that
/// follows it.
fn recognise_prose(cx: &Context<'_, '_>) -> Option<Found> {
    if cx.report.is_empty() || !prose::looks_like_bounce(cx.message, &cx.report) {
        return None;
    }
    // An automatic reply that mentions a failed delivery in its text is still an automatic
    // reply; a report *about* an automatic reply says so in a bounce subject.
    let subject = cx.message.subject().unwrap_or("");
    if vacation_subject(subject) && !prose::bounce_subject(subject) {
        return None;
    }
    let (entries, preamble) = cx.entries();
    let mut entries: Vec<Entry> = entries.clone();
    if entries.is_empty() {
        // A report that says why but not for whom: the returned original says whom.
        if !prose::has_signal(&cx.report) {
            return None;
        }
        let address = prose::original_recipient(cx.message, &cx.pasted)?;
        if prose::own_addresses(cx.message, &cx.report)
            .iter()
            .any(|o| o.eq_ignore_ascii_case(&address))
        {
            return None;
        }
        entries.push(Entry {
            address,
            diagnostic: String::new(),
        });
    }
    let delay = prose::is_delay_notice(cx.message, &cx.report);
    let single = entries.len() == 1;
    let shared = shared_diagnostic(&entries);
    let list = entries
        .into_iter()
        .map(
            |Entry {
                 address,
                 diagnostic,
             }| {
                let diagnostic = if prose::has_signal(&diagnostic) {
                    diagnostic
                } else if let Some(s) = shared.as_ref().filter(|s| prose::has_signal(s)) {
                    s.clone()
                } else {
                    format!("{preamble} {diagnostic}")
                };
                prose_recipient(
                    address,
                    diagnostic,
                    delay,
                    single.then_some(cx.report.as_str()),
                )
            },
        )
        .collect();
    Some(Found::Report(list))
}

/// Sendmail-style reports list the addresses first and explain them all afterwards: the
/// last entry's text then holds the explanation for every one of them.
fn shared_diagnostic(entries: &[Entry]) -> Option<String> {
    if entries.len() < 2 {
        return None;
    }
    entries.last().map(|e| e.diagnostic.clone())
}

/// RFC 3834 automatic replies and the common vacation-notice markers, on messages that
/// are not delivery reports.
fn recognise_auto_reply(cx: &Context<'_, '_>) -> Option<Found> {
    let m = cx.message;
    let header = |name: &'static str| m.header_raw(name).map(str::trim);
    if header("Auto-Submitted").is_some_and(|v| starts_with_ci(v, "auto-replied")) {
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
    if vacation_subject(m.subject().unwrap_or("")) {
        return Some(Found::AutoReply);
    }
    None
}

/// A subject an automatic reply gives itself.
fn vacation_subject(subject: &str) -> bool {
    [
        "out of office",
        "out of the office",
        "automatic reply",
        "auto reply",
        "autoreply",
        "auto-reply",
        "vacation",
        "away from",
    ]
    .iter()
    .any(|p| contains_ci(subject, p))
        || starts_with_ci(subject, "auto:")
}
