//! A stand-in for `crate::classify` with the same interface, holding only NotifyBC's three
//! filters; it goes away when the classifier module is merged.

#![allow(dead_code)]

use mail_parser::{MessageParser, MimeHeaders};
use regex::Regex;

use crate::config::{BounceSettings, ConfigError, compile_regex};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Bounce,
    NotBounce,
    Unparsable,
}

#[derive(Debug, Clone)]
pub struct Assessment {
    pub verdict: Verdict,
    pub counts: bool,
    pub why: String,
    pub bounced_addresses: Vec<String>,
    pub complaint: bool,
}

#[derive(Debug, Clone)]
pub struct Filters {
    subject: Option<Regex>,
    status: Option<Regex>,
    failed_recipient: Option<Regex>,
}

impl Filters {
    pub fn new(s: &BounceSettings) -> Result<Filters, ConfigError> {
        Ok(Filters {
            subject: compile_regex("bounce.subject_regex", &s.subject_regex)?,
            status: compile_regex("bounce.smtp_status_code_regex", &s.smtp_status_code_regex)?,
            failed_recipient: compile_regex(
                "bounce.failed_recipient_regex",
                &s.failed_recipient_regex,
            )?,
        })
    }
}

pub fn assess(raw: &[u8], filters: &Filters, subscriber: Option<&str>) -> Assessment {
    let Some(message) = MessageParser::default().parse(raw) else {
        return Assessment {
            verdict: Verdict::Unparsable,
            counts: false,
            why: "no headers".into(),
            bounced_addresses: vec![],
            complaint: false,
        };
    };
    let body = message
        .parts
        .iter()
        .find(|p| {
            p.content_type().is_some_and(|ct| {
                ct.ctype().eq_ignore_ascii_case("message")
                    && ct
                        .subtype()
                        .is_some_and(|s| s.eq_ignore_ascii_case("delivery-status"))
            })
        })
        .map(|p| String::from_utf8_lossy(p.contents()).into_owned())
        .or_else(|| message.body_html(0).map(|b| b.into_owned()))
        .or_else(|| message.body_text(0).map(|b| b.into_owned()))
        .unwrap_or_default();
    let complaint = message.parts.iter().any(|p| {
        p.content_type().is_some_and(|ct| {
            ct.ctype().eq_ignore_ascii_case("message")
                && ct
                    .subtype()
                    .is_some_and(|s| s.eq_ignore_ascii_case("feedback-report"))
        })
    });
    let mut bounced = filters
        .failed_recipient
        .as_ref()
        .and_then(|r| r.find(&body))
        .map(|m| m.as_str().to_string());
    if let Some(x) = message.header_raw("X-Failed-Recipients") {
        bounced = Some(x.trim().to_string());
    }
    let (counts, why) = if filters
        .subject
        .as_ref()
        .is_some_and(|r| !r.is_match(message.subject().unwrap_or("")))
    {
        (false, "subject_regex does not match")
    } else if filters.status.as_ref().is_some_and(|r| !r.is_match(&body)) {
        (false, "smtp_status_code_regex does not match")
    } else if let (Some(b), Some(s)) = (&bounced, subscriber)
        && b != s
    {
        (false, "bounced address differs from the subscriber's")
    } else {
        (true, "all filters match")
    };
    Assessment {
        verdict: if counts {
            Verdict::Bounce
        } else {
            Verdict::NotBounce
        },
        counts,
        why: why.to_string(),
        bounced_addresses: bounced.into_iter().collect(),
        complaint,
    }
}
