//! RFC 5965 Abuse Reporting Format: the few fields of the `message/feedback-report` part a
//! bounce processor needs (`Feedback-Type`, `Original-Rcpt-To`), read directly rather
//! than through a full ARF library.

use mail_parser::{Message, MimeHeaders, PartType};

use super::text::{addresses, clean_address};

/// What a feedback report says.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Feedback {
    /// `abuse`, `fraud`, `opt-out`, `virus`, `not-spam`, `other`, ... (lower-cased).
    pub feedback_type: String,
    /// Who complained: `Original-Rcpt-To`, else the `To` of the reported message.
    pub complainant: Option<String>,
}

fn is_type(part: &mail_parser::MessagePart<'_>, t: &str, s: &str) -> bool {
    part.is_content_type(t, s)
}

/// Reads the feedback report of an ARF message, if the message is one.
pub(crate) fn read(message: &Message<'_>) -> Option<Feedback> {
    let report = message
        .parts
        .iter()
        .find(|p| is_type(p, "message", "feedback-report"))?;
    let body = String::from_utf8_lossy(report.contents());
    let mut fb = Feedback::default();
    for line in body.lines() {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let name = name.trim();
        let value = value.trim();
        if name.eq_ignore_ascii_case("Feedback-Type") {
            fb.feedback_type = value.to_ascii_lowercase();
        } else if name.eq_ignore_ascii_case("Original-Rcpt-To") && fb.complainant.is_none() {
            let a = clean_address(value);
            if a.contains('@') {
                fb.complainant = Some(a.to_string());
            }
        }
    }
    if fb.complainant.is_none() {
        fb.complainant = reported_recipient(message);
    }
    Some(fb)
}

/// The `To` of the reported message (third part: `message/rfc822` or
/// `text/rfc822-headers`).
fn reported_recipient(message: &Message<'_>) -> Option<String> {
    for part in &message.parts {
        match &part.body {
            PartType::Message(inner) => {
                if let Some(to) = inner.to().and_then(|a| a.first()).and_then(|a| a.address()) {
                    return Some(to.to_string());
                }
            }
            _ if is_type(part, "text", "rfc822-headers") => {
                let text = String::from_utf8_lossy(part.contents());
                for line in text.lines() {
                    if let Some(v) = line
                        .get(..3)
                        .filter(|p| p.eq_ignore_ascii_case("to:"))
                        .map(|_| &line[3..])
                        && let Some(a) = addresses(v).next()
                    {
                        return Some(a.to_string());
                    }
                }
            }
            _ => {}
        }
    }
    None
}
