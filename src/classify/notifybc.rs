//! NotifyBC's counting decision (SPEC §4.2), reproduced exactly in the default
//! configuration, and the options beyond it, each driven by the classifier's verdict.
//!
//! NotifyBC's rule: the body for the filters is the content of a `message/delivery-status`
//! part if there is one, else the HTML body, else the text body. A bounce counts toward the
//! threshold only if `subject_regex` (empty = off) matches the Subject, and
//! `smtp_status_code_regex` matches the body, and the bounced address equals the
//! subscriber's address. The bounced address is the `X-Failed-Recipients` header if
//! present, else the first match of `failed_recipient_regex` in the body (empty = off);
//! when none is found the address check does not apply.

use std::sync::LazyLock;

use mail_parser::{HeaderName, Message, MessageParser, MimeHeaders, PartType};
use regex::Regex;

use super::{MessageKind, Verdict, classify_parsed, parse};
use crate::config::{BounceSettings, ConfigError, compile_regex};

/// The bounce filters, compiled once from the settings.
#[derive(Debug, Clone)]
pub struct Filters {
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
    pub fn new(b: &BounceSettings) -> Result<Filters, ConfigError> {
        Ok(Filters {
            subject: compile_js("bounce.subject_regex", &b.subject_regex)?,
            status: compile_js("bounce.smtp_status_code_regex", &b.smtp_status_code_regex)?,
            failed_recipient: compile_js_with(
                "bounce.failed_recipient_regex",
                &b.failed_recipient_regex,
                b.case_insensitive_domain || b.case_insensitive_local_part,
            )?,
            case_insensitive_domain: b.case_insensitive_domain,
            case_insensitive_local_part: b.case_insensitive_local_part,
            multiple_failed_recipients: b.multiple_failed_recipients,
            per_recipient_status: b.per_recipient_status,
            ignore_auto_replies: b.ignore_auto_replies,
            ignore_delays: b.ignore_delays,
            complaints_unsubscribe: b.complaints_unsubscribe,
        })
    }

    /// Whether an option beyond NotifyBC reads the classifier's verdict. NotifyBC's own
    /// decision reads only the Subject, the filter body and the failed-recipient header or
    /// pattern, so without these options the message need not be classified.
    fn needs_verdict(&self) -> bool {
        self.ignore_auto_replies
            || self.ignore_delays
            || self.complaints_unsubscribe
            || self.per_recipient_status
    }

    /// Whether two addresses are the same under the configured comparison (exact by
    /// default, like NotifyBC).
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
    /// The filter that decided (`subject_regex`, `smtp_status_code_regex`,
    /// `failed_recipient mismatch`, an option's name, `unparsable`), or `counted`.
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
            kind: MessageKind::NotBounce,
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
    if f.ignore_auto_replies && verdict.kind == MessageKind::AutoReply {
        return not_counted(verdict, "ignore_auto_replies", Vec::new(), false);
    }
    if f.ignore_delays && verdict.kind == MessageKind::Delay {
        return not_counted(verdict, "ignore_delays", Vec::new(), false);
    }
    if f.complaints_unsubscribe && verdict.kind == MessageKind::Complaint {
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

    let body = filter_body(message);
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
    let entry = match subscriber {
        Some(s) => verdict
            .recipients
            .iter()
            .position(|r| f.same_address(s, &r.address)),
        None => Some(0),
    };
    let Some(i) = entry else {
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

/// The body NotifyBC's filters read: a `message/delivery-status` part's content, else the
/// HTML body, else the text body; `None` when the message has none of them.
pub(crate) fn filter_body(message: &Message<'_>) -> Option<String> {
    if let Some(part) = message.parts.iter().find(|p| {
        p.content_type().is_some_and(|ct| {
            ct.ctype().eq_ignore_ascii_case("message")
                && ct
                    .subtype()
                    .is_some_and(|s| s.eq_ignore_ascii_case("delivery-status"))
        })
    }) {
        return Some(String::from_utf8_lossy(part.contents()).into_owned());
    }
    let join = |ids: &[u32], html: bool, sep: &str| -> Option<String> {
        let mut out: Option<String> = None;
        for id in ids {
            let text = match (message.parts.get(*id as usize).map(|p| &p.body), html) {
                (Some(PartType::Html(t)), true) | (Some(PartType::Text(t)), false) => t,
                _ => continue,
            };
            match &mut out {
                Some(o) => {
                    o.push_str(sep);
                    o.push_str(text);
                }
                None => out = Some(text.to_string()),
            }
        }
        out
    };
    join(&message.html_body, true, "<br/>\n").or_else(|| join(&message.text_body, false, "\n"))
}

fn bounced_addresses(message: &Message<'_>, f: &Filters) -> Vec<String> {
    let body = filter_body(message);
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

/// NotifyBC's patterns are JavaScript regular expressions, in which `\d`, `\w` and `\b`
/// are ASCII-only; in the `regex` crate they are Unicode-aware. Rewrite them to their
/// ASCII meaning, and escape the characters that are literal in a JavaScript character
/// class but operators in a `regex` class (`[`, `&&`, `~~`, `--`).
pub(crate) fn js_compat(pattern: &str) -> String {
    let mut out = String::with_capacity(pattern.len() + 16);
    let mut in_class = false;
    let mut chars = pattern.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                let Some(n) = chars.next() else {
                    out.push('\\');
                    break;
                };
                let rewrite = match (n, in_class) {
                    ('d', false) => "[0-9]",
                    ('D', false) => "[^0-9]",
                    ('w', false) => "[0-9A-Za-z_]",
                    ('W', false) => "[^0-9A-Za-z_]",
                    ('b', false) => "(?-u:\\b)",
                    ('B', false) => "(?-u:\\B)",
                    ('d', true) => "0-9",
                    ('w', true) => "0-9A-Za-z_",
                    _ => "",
                };
                if rewrite.is_empty() {
                    out.push('\\');
                    out.push(n);
                } else {
                    out.push_str(rewrite);
                }
            }
            '[' if !in_class => {
                in_class = true;
                out.push('[');
                if chars.peek() == Some(&'^') {
                    out.push('^');
                    chars.next();
                }
                // A `]` first in a JavaScript class closes an empty class; keep it literal
                // only in the `regex` sense it already has.
            }
            '[' => out.push_str("\\["),
            ']' if in_class => {
                in_class = false;
                out.push(']');
            }
            '&' | '~' if in_class => {
                out.push('\\');
                out.push(c);
            }
            '-' if in_class && chars.peek() == Some(&'-') => out.push_str("\\-"),
            _ => out.push(c),
        }
    }
    out
}

fn compile_js(key: &str, pattern: &str) -> Result<Option<Regex>, ConfigError> {
    compile_js_with(key, pattern, false)
}

/// Compiles a configured JavaScript pattern; `case_insensitive` adds the `i` flag, which
/// the case-insensitive address options need so that the whole address is found.
fn compile_js_with(
    key: &str,
    pattern: &str,
    case_insensitive: bool,
) -> Result<Option<Regex>, ConfigError> {
    if pattern.is_empty() {
        return Ok(None);
    }
    // Report errors against the pattern as configured, not the rewritten one.
    compile_regex(key, pattern)?;
    let rewritten = js_compat(pattern);
    if case_insensitive {
        compile_regex(key, &format!("(?i:{rewritten})"))
    } else {
        compile_regex(key, &rewritten)
    }
}
