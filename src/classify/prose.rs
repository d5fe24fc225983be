//! Reports written as prose for people rather than as RFC 3464 fields: the formats of
//! Exim, qmail, Sendmail transcripts, older Postfix, Exchange 2003, Domino, Gmail, Yahoo,
//! and most of the rest. Whatever their wording, they share a structure: an introduction,
//! then each failed recipient on a line of its own (bare, in angle brackets, after a
//! label such as `Recipient:` or `Unknown user:`, or echoed in an SMTP transcript),
//! followed by the remote server's answer; then a marker line before the returned
//! original message. This module finds that structure.
//!
//! The returned original is cut off before anything else is read, so its headers and
//! body can never be mistaken for the report.

use mail_parser::{Message, MimeHeaders, PartType};

use super::text::{addresses, contains_ci, find_ci, find_reply_code, find_status, starts_with_ci};

/// The human-readable report: the first text body of the message (HTML turned into
/// text) and the offset where the returned original message starts in it.
pub(crate) fn report_text(message: &Message<'_>) -> Option<(String, usize)> {
    let body = message
        .text_body
        .first()
        .or(message.html_body.first())
        .and_then(|id| message.parts.get(*id as usize));
    let text = match body.map(|p| &p.body) {
        Some(PartType::Text(t)) => t.to_string(),
        Some(PartType::Html(h)) => mail_parser::decoders::html::html_to_text(h),
        // A report whose MIME structure is broken (a boundary that cannot be found) is
        // left as a part outside the body lists; its text is still the report.
        _ => message.parts.iter().find_map(|p| match &p.body {
            PartType::Text(t) => Some(t.to_string()),
            PartType::Binary(b) | PartType::InlineBinary(b)
                if p.content_type().is_none_or(|c| {
                    c.ctype().eq_ignore_ascii_case("text")
                        || c.ctype().eq_ignore_ascii_case("multipart")
                }) =>
            {
                Some(String::from_utf8_lossy(b).into_owned())
            }
            _ => None,
        })?,
    };
    let cut = original_start(&text);
    Some((text, cut))
}

/// The recipient of the returned original message when it had exactly one (`To` of an
/// attached `message/rfc822` or `text/rfc822-headers` part, or of the header block pasted
/// after the report): the last resort of a report that names no recipient itself.
pub(crate) fn original_recipient(message: &Message<'_>, pasted: &str) -> Option<String> {
    let one = |list: Vec<&str>| (list.len() == 1).then(|| list[0].to_string());
    for part in &message.parts {
        match &part.body {
            PartType::Message(inner) => {
                let to: Vec<&str> = inner
                    .to()
                    .map(|a| a.iter().filter_map(|a| a.address()).collect())
                    .unwrap_or_default();
                return one(to);
            }
            PartType::Text(t) if part.is_content_type("text", "rfc822-headers") => {
                return to_header(t).and_then(|v| one(addresses(v).collect()));
            }
            _ => {}
        }
    }
    to_header(pasted).and_then(|v| one(addresses(v).collect()))
}

/// The value of the first `To:` header line of a pasted header block.
fn to_header(text: &str) -> Option<&str> {
    text.lines()
        .take_while(|l| !l.trim().is_empty() || l.is_empty())
        .find(|l| starts_with_ci(l, "to:"))
        .and_then(|l| l.get(3..))
}

/// Phrases of the marker lines that introduce the returned original message.
const ORIGINAL_MARKERS: &[&str] = &[
    "original message",
    "copy of the message",
    "copy of your message",
    "copy of the original",
    "original mail",
    "returned message",
    "unsent message",
    "message header",
    "header of the original",
    "headers of the original",
    "original headers",
    "message text follows",
    "below this line",
    "headers follow",
    "undelivered message",
    "rejected message",
    "original text",
    "message content follows",
];

/// Header fields that start the returned original's header block when it is pasted into
/// the report without a marker line.
const HEADER_STARTS: &[&str] = &[
    "received:",
    "return-path:",
    "dkim-signature:",
    "x-received:",
    "arc-seal:",
    "delivered-to:",
    "received-spf:",
    "authentication-results:",
    "x-google-smtp-source:",
    "content-type: message/rfc822",
];

fn is_marker_line(line: &str) -> bool {
    let t = line.trim();
    if t.len() < 8 || t.len() > 120 {
        return false;
    }
    let decorated = t.starts_with(['-', '=', '*', '|', '#', '<', '[', '_'])
        || t.ends_with(['-', ':', '=', '*', '|', '#'])
        || t.ends_with("follows.");
    // The cheap shape test first: most lines fail it, and the phrases are many.
    if !(decorated || contains_ci(t, "follow") || contains_ci(t, "below")) {
        return false;
    }
    // "The original message was received at ..." opens Sendmail's report.
    ORIGINAL_MARKERS.iter().any(|m| contains_ci(t, m)) && !contains_ci(t, "message was received")
}

/// Byte offset where the returned original message starts (or the text's length).
pub(crate) fn original_start(text: &str) -> usize {
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let bare = line.trim_end_matches(['\r', '\n']);
        let starts_header =
            !bare.starts_with([' ', '\t']) && HEADER_STARTS.iter().any(|h| starts_with_ci(bare, h));
        if starts_header || is_marker_line(bare) || bare.starts_with("From ") && offset > 0 {
            return offset;
        }
        offset += line.len();
    }
    text.len()
}

/// Whether the message presents itself as a delivery report at all. Prose recognisers
/// run only on such messages, so an ordinary message that mentions addresses is never
/// read as a bounce.
pub(crate) fn looks_like_bounce(message: &Message<'_>, report: &str) -> bool {
    if message.header_raw("X-Failed-Recipients").is_some()
        || message.content_type().is_some_and(|c| {
            c.ctype().eq_ignore_ascii_case("multipart")
                && c.subtype()
                    .is_some_and(|s| s.eq_ignore_ascii_case("report"))
        })
    {
        return true;
    }
    let from = message.header_raw("From").unwrap_or("");
    if [
        "mailer-daemon",
        "mailer_daemon",
        "mail-daemon",
        "maildaemon",
        "mailerdaemon",
        "postmaster",
        "post_master",
        "mail delivery",
        "mail.delivery",
        "mail deliver",
        "delivery subsystem",
        "mail system",
        "system administrator",
        "mdaemon",
    ]
    .iter()
    .any(|p| contains_ci(from, p))
        || from.trim() == "<>"
    {
        return true;
    }
    if bounce_subject(message.subject().unwrap_or("")) {
        return true;
    }
    BODY.as_ref()
        .is_some_and(|re| re.is_match(report.as_bytes()))
}

/// The body phrases as one automaton: a message that reaches this test is read once, not
/// once per phrase.
static BODY: std::sync::LazyLock<Option<regex::bytes::Regex>> = std::sync::LazyLock::new(|| {
    let alternation: Vec<String> = BODY_PHRASES
        .iter()
        .map(|p| super::byte_pattern::byte_pattern(&regex::escape(p)))
        .collect();
    regex::bytes::Regex::new(&format!("(?i-u){}", alternation.join("|"))).ok()
});

/// Whether a subject is one delivery reports give themselves.
pub(crate) fn bounce_subject(subject: &str) -> bool {
    SUBJECT_WORDS.iter().any(|w| contains_ci(subject, w))
}

const SUBJECT_WORDS: &[&str] = &[
    "undeliver",
    "undelivered",
    "delivery fail",
    "delivery status",
    "returned mail",
    "returned to sender",
    "failure notice",
    "delivery failure",
    "mail delivery failed",
    "non-delivery",
    "nondeliver",
    "not delivered",
    "could not be delivered",
    "delivery notification",
    "failed delivery",
    "failure delivery",
    "delivery problem",
    "mail system error",
    "error sending",
    "delivery has failed",
    "returning message",
    "could not send",
    "delayed mail",
    "delivery delayed",
    "mail failure",
    "permanent delivery",
    // German, French, Spanish, Portuguese, Italian, Dutch, Polish, Russian, Japanese,
    // Chinese, Korean: the subjects of their large providers' reports.
    "unzustellbar",
    "nicht zustellbar",
    "non remis",
    "échec de la remise",
    "echec de la remise",
    "message non délivré",
    "no se puede entregar",
    "no entregado",
    "mensaje devuelto",
    "não entregue",
    "falha na entrega",
    "mensagem devolvida",
    "mancato recapito",
    "impossibile recapitare",
    "messaggio non recapitato",
    "onbestelbaar",
    "niet afgeleverd",
    "niedostarczon",
    "nie można dostarczyć",
    "недоставленное сообщение",
    "не доставлено",
    "не удалось доставить",
    "配信不能",
    "配送エラー",
    "送信エラー",
    "未達",
    "退信",
    "退回",
    "无法投递",
    "投递失败",
    "發送失敗",
    "전송 실패",
    "반송",
    "전달되지 않",
];

const BODY_PHRASES: &[&str] = &[
    "could not be delivered",
    "could not deliver",
    "couldn't be delivered",
    "was not delivered",
    "not be delivered",
    "undeliverable",
    "delivery failed",
    "delivery has failed",
    "did not reach",
    "failed permanently",
    "permanent error",
    "permanent failure",
    "unable to deliver",
    "error delivering",
    "trouble delivering",
    "not yet been delivered",
    "has been delayed",
    "delivery to the following",
    "following address",
    "following recipient",
    // Report structures whose wording is the reporting software's own.
    "this is the mail system at host",
    "this is the qmail-send program",
    "mail delivery software",
    "delivery status notification",
    "smtp error from remote",
    "remote host said:",
    "permanent fatal errors",
    "permanent fatal delivery errors",
    "was not delivered to:",
    "transcript of session follows",
    "non-delivery report",
    "delivery has failed to these recipients",
    "message you sent could not",
    "your message wasn't delivered",
    "your message couldn't be delivered",
    "address not found",
    // Other languages.
    "konnte nicht zugestellt werden",
    "nicht zugestellt werden",
    "n'a pas pu être remis",
    "n'a pas pu être distribué",
    "impossible de remettre",
    "no se pudo entregar",
    "no ha podido ser entregado",
    "não pôde ser entregue",
    "não foi possível entregar",
    "non è stato possibile recapitare",
    "non è stato recapitato",
    "kon niet worden afgeleverd",
    "niet worden bezorgd",
    "nie mogła zostać dostarczona",
    "nie może zostać dostarczona",
    "не может быть доставлено",
    "не удалось доставить",
    "не было доставлено",
    "配信できませんでした",
    "送信できませんでした",
    "届きませんでした",
    "无法送达",
    "无法投递",
    "未能送达",
    "投递失败",
    "無法傳遞",
    "전달할 수 없",
    "전송하지 못했",
];

/// One recipient found in a prose report and what the report says about it.
#[derive(Debug, Default, Clone)]
pub(crate) struct Entry {
    pub address: String,
    pub diagnostic: String,
}

/// Words in a label before an address that name someone other than a failed recipient.
const DENIED_WORDS: &[&str] = &[
    "from",
    "sender",
    "reply",
    "contact",
    "assistance",
    "question",
    "message-id",
    "received",
    "return-path",
    "envelope-from",
    "hello",
    "dear",
    "cc",
    "by",
    "for",
];

/// Phrases of a line that offers help ("contact mike@example.org for help").
const HELP_PHRASES: &[&str] = &[
    "contact ",
    "for help",
    "for assistance",
    "for more information",
    "for further information",
    "if you have questions",
    "if you have any questions",
    "questions?",
    "helpdesk",
    "help desk",
    "support team",
];

const HEADER_LABELS: &[&str] = &[
    "to",
    "cc",
    "bcc",
    "from",
    "sender",
    "reply-to",
    "delivered-to",
    "envelope-to",
    "date",
    "subject",
];

/// If `line` names a recipient, its address: the address leads the line (after list
/// decorations, an SMTP reply code or transcript arrows), or follows a label ending in
/// `:` or `to` that is not a header field of the original message.
fn recipient_on_line(line: &str) -> Option<&str> {
    let t = line.trim();
    let address = addresses(t).next()?;
    // Help text names whom to ask, never who failed.
    if HELP_PHRASES.iter().any(|p| contains_ci(t, p)) {
        return None;
    }
    let pos = t.find(address)?;
    let before = t[..pos].trim_end_matches(['<', '"', '\'', '(', '[', ' ', '\t']);
    let lead = before.trim_start_matches(|c: char| {
        c.is_whitespace() || matches!(c, '>' | '-' | '*' | '#' | '|' | '=' | '.' | '\u{2022}')
    });
    if lead.is_empty() {
        return Some(address);
    }
    // `554 <a@b>... Remote protocol error`, `<<< 550 <a@b>: User unknown`
    let code = lead.trim_start_matches(['<', '>', ' ']);
    if code.len() <= 12
        && find_reply_code(code).is_some_and(|c| code.starts_with(c))
        && code[3..]
            .chars()
            .all(|c| c.is_ascii_digit() || c == '.' || c == ' ' || c == '-')
    {
        return Some(address);
    }
    let label = lead.trim_end();
    if label.len() > 80 {
        return None;
    }
    let lower = label.to_ascii_lowercase();
    let bare = lower.trim_end_matches(':').trim();
    if HEADER_LABELS.contains(&bare) {
        return None;
    }
    if lower.contains("mail from")
        || lower.contains("write to")
        || lower.contains("send mail to")
        || bare.starts_with("x-")
        || bare
            .split(|c: char| !c.is_ascii_alphanumeric() && c != '-')
            .any(|w| DENIED_WORDS.contains(&w))
    {
        return None;
    }
    if lower.ends_with(':')
        || lower.ends_with('\u{ff1a}')
        || lower.ends_with(" to")
        || lower.ends_with(" to:")
        || lower.ends_with(" recipient")
    {
        return Some(address);
    }
    None
}

/// Addresses the report itself is addressed from or to (the original sender and the
/// reporting system), which are never failed recipients, plus envelope senders named in
/// the transcript (`MAIL FROM:<...>`).
pub(crate) fn own_addresses(message: &Message<'_>, report: &str) -> Vec<String> {
    let mut own = Vec::new();
    for name in ["From", "To", "Return-Path", "Reply-To", "Sender"] {
        for h in message
            .headers()
            .iter()
            .filter(|h| h.name.as_str().eq_ignore_ascii_case(name))
        {
            if let Some(raw) = message
                .raw_message()
                .get(h.offset_start as usize..h.offset_end as usize)
            {
                let raw = String::from_utf8_lossy(raw);
                own.extend(addresses(&raw).map(str::to_ascii_lowercase));
            }
        }
    }
    let mut from = 0;
    while let Some(i) = find_ci(&report[from..], "mail from") {
        let start = from + i;
        let line_end = report[start..]
            .find('\n')
            .map_or(report.len(), |e| start + e);
        if let Some(a) = addresses(&report[start..line_end]).next() {
            own.push(a.to_ascii_lowercase());
        }
        from = line_end.min(report.len());
        if from >= report.len() {
            break;
        }
    }
    own
}

/// Reads the recipients of a prose report and, for each, the lines that follow it up to
/// the next recipient. `preamble` is the text before the first recipient.
pub(crate) fn entries(message: &Message<'_>, report: &str) -> (Vec<Entry>, String) {
    let own = own_addresses(message, report);
    let mut entries: Vec<Entry> = Vec::new();
    let mut preamble = String::new();
    let mut current: Option<usize> = None;
    let mut previous = "";
    for line in report.lines() {
        // Exim names a recipient it may not disclose by the address it came from:
        // "an undisclosed address" then "(generated from a@b.example)".
        let undisclosed = previous.eq_ignore_ascii_case("an undisclosed address")
            && contains_ci(line, "generated from");
        if !line.trim().is_empty() {
            previous = line.trim();
        }
        let found = if undisclosed {
            addresses(line).next()
        } else {
            recipient_on_line(line)
        }
        .filter(|a| !own.iter().any(|o| o.eq_ignore_ascii_case(a)));
        if let Some(a) = found {
            let same = current.is_some_and(|i| entries[i].address.eq_ignore_ascii_case(a));
            if !same {
                current = Some(
                    match entries
                        .iter()
                        .position(|e| e.address.eq_ignore_ascii_case(a))
                    {
                        Some(i) => i,
                        None => {
                            entries.push(Entry {
                                address: a.to_string(),
                                diagnostic: String::new(),
                            });
                            entries.len() - 1
                        }
                    },
                );
            }
        }
        let target = match current {
            Some(i) => &mut entries[i].diagnostic,
            None => &mut preamble,
        };
        let t = line.trim();
        if !t.is_empty() {
            if !target.is_empty() {
                target.push(' ');
            }
            target.push_str(t);
        }
    }
    (entries, preamble)
}

/// Whether a diagnostic says anything a reason can be read from.
pub(crate) fn has_signal(diagnostic: &str) -> bool {
    find_status(diagnostic).is_some()
        || find_reply_code(diagnostic).is_some_and(|c| !c.starts_with('2'))
        || super::reason::from_text(diagnostic).is_some()
}

/// Whether the report is a warning that delivery is still being tried.
pub(crate) fn is_delay_notice(message: &Message<'_>, report: &str) -> bool {
    let subject = message.subject().unwrap_or("");
    [
        "delay",
        "warning",
        "still being retried",
        "not yet delivered",
    ]
    .iter()
    .any(|w| contains_ci(subject, w))
        || [
            "warning message only",
            "warning only",
            "has been delayed",
            "not yet been delivered",
            "will be retried",
            "will continue to try",
            "temporary failure report",
            "delivery attempts will continue",
            "no action is required on your part",
            "you do not need to resend",
        ]
        .iter()
        .any(|p| contains_ci(report, p))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_phrases_compile_and_match() {
        assert!(BODY.is_some());
        for p in BODY_PHRASES {
            assert!(
                BODY.as_ref()
                    .is_some_and(|re| re.is_match(format!("x {p} y").as_bytes())),
                "{p}"
            );
        }
        assert!(
            BODY.as_ref()
                .is_some_and(|re| re.is_match("YOUR MESSAGE COULD NOT BE DELIVERED".as_bytes()))
        );
    }

    #[test]
    fn recipient_lines() {
        for (line, want) in [
            ("  kijitora@example.jp", Some("kijitora@example.jp")),
            ("<a@example.org>:", Some("a@example.org")),
            (">>> a@example.org <a@example.org>", Some("a@example.org")),
            ("a@example.org on Thu, 29 Apr 2010", Some("a@example.org")),
            ("    Recipient: <a@example.org>", Some("a@example.org")),
            ("Unknown user: a@example.org", Some("a@example.org")),
            (
                "There was an error delivering your mail to <a@example.org>.",
                Some("a@example.org"),
            ),
            (
                "554 <a@example.org>... Remote protocol error",
                Some("a@example.org"),
            ),
            (
                "<<< 550 <a@example.org>... User unknown",
                Some("a@example.org"),
            ),
            ("   * a@example.org", Some("a@example.org")),
            ("  To:      a@example.org", None),
            ("Original Sender:    <a@example.org>", None),
            (">>> MAIL From:<a@example.org>", None),
            (
                "For further assistance, please contact <a@example.org>",
                None,
            ),
            ("Hello a@example.org,", None),
            ("Duplicated Message-ID in <a@example.org>.", None),
            ("no address here", None),
            ("Please contact <help@example.org> for help.", None),
            ("Questions? Send mail to: help@example.org", None),
        ] {
            assert_eq!(recipient_on_line(line), want, "{line}");
        }
    }

    #[test]
    fn the_original_is_cut_off() {
        let text = "The original message was received at Thu\n\
                    <a@example.org>: 550 unknown\n\
                    \n\
                    ------ This is a copy of the message, including all the headers. ------\n\
                    To: b@example.org\n";
        assert_eq!(
            &text[..original_start(text)],
            "The original message was received at Thu\n<a@example.org>: 550 unknown\n\n"
        );
        let text = "Please delete your own text from the attached returned message.\n\
                    x@example.org\n  user unknown\n\nReceived: from a by b\nTo: c@example.org\n";
        assert_eq!(
            &text[..original_start(text)],
            "Please delete your own text from the attached returned message.\n\
             x@example.org\n  user unknown\n\n"
        );
    }
}
