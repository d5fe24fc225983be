//! Amazon SES notifications delivered by mail (an SNS topic's e-mail subscription, or a
//! relay that pastes the event): not a DSN but a JSON document — sometimes escaped inside
//! the SNS envelope's `Message` string, sometimes re-printed loosely (`key => value`) — with
//! `notificationType` (or `eventType`) `Bounce`, `Complaint` or `Delivery`, and per bounced
//! recipient `emailAddress`, `action`, `status` and `diagnosticCode`. The fields are read
//! by scanning rather than by parsing, so every one of those shapes reads the same way.

use std::sync::LazyLock;

use regex::Regex;

use super::arf::Feedback;
use super::dsn::DsnRecipient;
use super::text::clean_address;

/// What a notification says.
pub(crate) enum Notification {
    Bounce(Vec<DsnRecipient>),
    Complaint(Feedback),
    Delivery(Vec<DsnRecipient>),
}

static FIELD: LazyLock<Option<Regex>> =
    LazyLock::new(|| Regex::new(r#""?([A-Za-z]+)"?\s*(?::|=>|=)\s*"((?:[^"\\]|\\.)*)""#).ok());

/// The `"name": "value"` pairs of the text, in order.
fn fields(text: &str) -> Vec<(&str, &str, usize)> {
    let Some(re) = FIELD.as_ref() else {
        return Vec::new();
    };
    re.captures_iter(text)
        .filter_map(|c| Some((c.get(1)?.as_str(), c.get(2)?.as_str(), c.get(0)?.start())))
        .collect()
}

/// Reads the notification in `text`, if it is one.
pub(crate) fn read(text: &str) -> Option<Notification> {
    if !text.contains("notificationType") && !text.contains("eventType") {
        return None;
    }
    // The SNS envelope escapes the notification's quotes.
    let text = text.replace("\\\"", "\"");
    let fields = fields(&text);
    let kind = fields
        .iter()
        .find(|(n, _, _)| *n == "notificationType" || *n == "eventType")?
        .1;
    let value = |name: &str| {
        fields
            .iter()
            .find(|(n, _, _)| *n == name)
            .map(|(_, v, _)| *v)
            .unwrap_or("")
    };
    match kind {
        "Bounce" => {
            let bounce_type = value("bounceType");
            let sub_type = value("bounceSubType");
            let list = recipients(&fields, &text, "bouncedRecipients")
                .into_iter()
                .map(|(address, action, status, diagnostic)| {
                    let permanent = bounce_type.eq_ignore_ascii_case("Permanent");
                    let status = if status.is_empty() {
                        implied_status(permanent, sub_type).to_string()
                    } else {
                        status
                    };
                    let diagnostic = if diagnostic.is_empty() {
                        format!("Amazon SES {bounce_type} bounce ({sub_type})")
                    } else {
                        diagnostic
                    };
                    DsnRecipient {
                        final_recipient: address,
                        action: if action.is_empty() {
                            "failed".to_string()
                        } else {
                            action
                        },
                        status,
                        diagnostic,
                        ..DsnRecipient::default()
                    }
                })
                .collect::<Vec<_>>();
            (!list.is_empty()).then_some(Notification::Bounce(list))
        }
        "Complaint" => Some(Notification::Complaint(Feedback {
            feedback_type: {
                let t = value("complaintFeedbackType");
                if t.is_empty() { "abuse" } else { t }.to_ascii_lowercase()
            },
            complainant: recipients(&fields, &text, "complainedRecipients")
                .into_iter()
                .next()
                .map(|r| r.0),
        })),
        "Delivery" => Some(Notification::Delivery(
            recipients(&fields, &text, "recipients")
                .into_iter()
                .map(|(address, ..)| DsnRecipient {
                    final_recipient: address,
                    action: "delivered".to_string(),
                    status: "2.0.0".to_string(),
                    ..DsnRecipient::default()
                })
                .collect(),
        )),
        _ => None,
    }
}

/// The status SES's bounce types imply when the recipient entry carries none.
fn implied_status(permanent: bool, sub_type: &str) -> &'static str {
    match (permanent, sub_type) {
        (true, "NoEmail") => "5.1.1",
        (_, "MailboxFull") => "5.2.2",
        (_, "MessageTooLarge") => "5.3.4",
        (_, "ContentRejected" | "AttachmentRejected") => "5.6.0",
        (true, _) => "5.0.0",
        (false, _) => "4.0.0",
    }
}

/// Per recipient of the list named `key`: address, action, status and diagnostic code,
/// read from each `{...}` entry whatever the order of its fields.
fn recipients(
    fields: &[(&str, &str, usize)],
    text: &str,
    key: &str,
) -> Vec<(String, String, String, String)> {
    let Some(start) = text.find(key) else {
        return Vec::new();
    };
    // The list ends at its closing bracket.
    let end = text[start..].find(']').map_or(text.len(), |e| start + e);
    let mut out: Vec<(String, String, String, String)> = Vec::new();
    let mut from = start;
    while let Some(open) = text[from..end].find('{').map(|o| from + o) {
        let close = text[open..end].find('}').map_or(end, |c| open + c);
        let mut entry = (String::new(), String::new(), String::new(), String::new());
        for (name, value, _) in fields.iter().filter(|f| f.2 > open && f.2 < close) {
            match *name {
                "emailAddress" => entry.0 = clean_address(value).to_string(),
                "action" => entry.1 = value.to_ascii_lowercase(),
                "status" => entry.2 = value.to_string(),
                "diagnosticCode" => entry.3 = value.replace("\\n", " "),
                _ => {}
            }
        }
        if entry.0.contains('@') {
            out.push(entry);
        }
        from = close;
        if from >= end {
            break;
        }
    }
    // A list of plain strings (`"recipients": ["a@b.example"]`).
    if out.is_empty() {
        for a in super::text::addresses(&text[start..end]) {
            out.push((a.to_string(), String::new(), String::new(), String::new()));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_in_any_order_and_event_publishing() {
        let text = r#"{"eventType":"Bounce","bounce":{"bouncedRecipients":[
            {"status":"5.2.2","emailAddress":"a@example.org","diagnosticCode":"smtp; 552 full"},
            {"emailAddress":"b@example.org"}],"bounceType":"Permanent","bounceSubType":"NoEmail"}}"#;
        let Some(Notification::Bounce(list)) = read(text) else {
            panic!("not read as a bounce");
        };
        assert_eq!(list.len(), 2);
        assert_eq!(list[0].final_recipient, "a@example.org");
        assert_eq!(list[0].status, "5.2.2");
        assert_eq!(list[0].diagnostic, "smtp; 552 full");
        assert_eq!(list[1].final_recipient, "b@example.org");
        assert_eq!(list[1].status, "5.1.1");
        assert_eq!(list[1].action, "failed");
    }

    #[test]
    fn deliveries_and_other_text() {
        let text = r#"{"notificationType":"Delivery","delivery":{"recipients":["c@example.org"]}}"#;
        let Some(Notification::Delivery(list)) = read(text) else {
            panic!("not read as a delivery");
        };
        assert_eq!(list[0].final_recipient, "c@example.org");
        assert_eq!(list[0].action, "delivered");
        assert!(read("An ordinary message about a bounceType.").is_none());
    }
}
