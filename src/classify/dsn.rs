//! RFC 3464 delivery status notifications: the header-style field blocks inside a
//! `message/delivery-status` (or RFC 6533 `message/global-delivery-status`) part, read per
//! recipient. Real reports bend the format (no blank line between the per-message and
//! per-recipient blocks, several recipients in one block, fields in odd orders, folded
//! values, comments), so the reader groups fields by their `Final-Recipient` rather than
//! trusting blank lines alone.

use super::text::{clean_address, find_status, unfold_into};

/// One per-recipient block of a delivery status notification.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct DsnRecipient {
    pub final_recipient: String,
    pub original_recipient: String,
    pub action: String,
    pub status: String,
    pub diagnostic: String,
    pub remote_mta: String,
    /// The SMTP command refused, when the report names it outside the diagnostic.
    pub command: Option<super::reason::Command>,
}

impl DsnRecipient {
    /// The address the report is about: the final recipient, else the original one
    /// (also when the final "recipient" is a file or program an alias delivered to).
    /// Bounce libraries (and the corpus's reference verdicts) name the final recipient
    /// when an alias or forward rewrote the address, so the original is not preferred.
    pub fn address(&self) -> &str {
        if self.final_recipient.contains('@') || !self.original_recipient.contains('@') {
            if self.final_recipient.is_empty() {
                &self.original_recipient
            } else {
                &self.final_recipient
            }
        } else {
            &self.original_recipient
        }
    }

    fn has_recipient_field(&self) -> bool {
        !self.final_recipient.is_empty()
            || !self.original_recipient.is_empty()
            || !self.action.is_empty()
            || !self.status.is_empty()
            || !self.diagnostic.is_empty()
    }
}

/// Splits the text into logical fields (`name`, unfolded `value`), with `None` at each
/// blank line so the caller can see block ends.
fn fields(body: &str) -> Vec<Option<(&str, String)>> {
    let mut out: Vec<Option<(&str, String)>> = Vec::new();
    for line in body.lines() {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.trim().is_empty() {
            if !matches!(out.last(), Some(None)) {
                out.push(None);
            }
            continue;
        }
        if line.starts_with([' ', '\t']) {
            if let Some(Some((_, value))) = out.last_mut() {
                unfold_into(value, line);
            }
            continue;
        }
        match line.split_once(':') {
            Some((name, value))
                if !name.is_empty()
                    && name
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') =>
            {
                out.push(Some((name, value.trim().to_string())));
            }
            // A line that is not a field (free text some reporters add) ends nothing and
            // belongs to nothing.
            _ => {}
        }
    }
    out
}

/// Strips the `type;` prefix of a typed field (`rfc822; a@b`, `smtp; 550 ...`).
fn typed_value(value: &str) -> &str {
    match value.split_once(';') {
        Some((kind, rest))
            if !kind.is_empty()
                && kind.len() <= 16
                && kind
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') =>
        {
            rest.trim()
        }
        _ => value.trim(),
    }
}

/// Reads every per-recipient block of a delivery-status body.
pub(crate) fn parse(body: &str) -> Vec<DsnRecipient> {
    let mut out: Vec<DsnRecipient> = Vec::new();
    let mut cur = DsnRecipient::default();
    // Whether `cur` has been given a Final-Recipient (a second one starts a new record).
    let flush = |cur: &mut DsnRecipient, out: &mut Vec<DsnRecipient>| {
        if cur.has_recipient_field() {
            out.push(std::mem::take(cur));
        } else {
            *cur = DsnRecipient::default();
        }
    };
    for f in fields(body) {
        let Some((name, value)) = f else {
            // A block ends; only records that named a recipient survive on their own.
            if !cur.final_recipient.is_empty() || !cur.original_recipient.is_empty() {
                flush(&mut cur, &mut out);
            }
            continue;
        };
        if name.eq_ignore_ascii_case("Final-Recipient") {
            if !cur.final_recipient.is_empty() {
                flush(&mut cur, &mut out);
            }
            cur.final_recipient = clean_address(typed_value(&value)).to_string();
        } else if name.eq_ignore_ascii_case("Original-Recipient") {
            // Usually before Final-Recipient; some reporters put it after.
            if !cur.original_recipient.is_empty() {
                flush(&mut cur, &mut out);
            }
            cur.original_recipient = clean_address(typed_value(&value)).to_string();
        } else if name.eq_ignore_ascii_case("Action") {
            cur.action = normalise_action(&value).to_string();
        } else if name.eq_ignore_ascii_case("Status") {
            cur.status = find_status(&value).map(str::to_string).unwrap_or_default();
        } else if name.eq_ignore_ascii_case("Diagnostic-Code") {
            cur.diagnostic = typed_value(&value).to_string();
        } else if name.eq_ignore_ascii_case("Remote-MTA") {
            cur.remote_mta = typed_value(&value).to_string();
        }
    }
    if !cur.final_recipient.is_empty() || !cur.original_recipient.is_empty() {
        out.push(cur);
    }
    out.retain(|r| !r.address().is_empty());
    out
}

/// The RFC 3464 action keyword, lower-cased; common misspellings folded in.
pub(crate) fn normalise_action(value: &str) -> &'static str {
    let word = value
        .trim()
        .split(|c: char| c.is_whitespace() || c == '(' || c == ';')
        .next()
        .unwrap_or("");
    let lower = word.to_ascii_lowercase();
    match lower.as_str() {
        "failed" | "failure" | "fail" | "bounced" | "bounce" | "undeliverable" => "failed",
        "delayed" | "delay" | "deferred" => "delayed",
        "delivered" => "delivered",
        "relayed" => "relayed",
        "expanded" => "expanded",
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_blocks_per_recipient() {
        let body = "Reporting-MTA: dns; mx.example.org\n\
                    Arrival-Date: Mon, 1 Jan 2024 00:00:00 +0000\n\
                    \n\
                    Final-Recipient: rfc822; a@example.com\n\
                    Original-Recipient: rfc822;A@Example.com\n\
                    Action: failed\n\
                    Status: 5.1.1 (user unknown)\n\
                    Remote-MTA: dns; mx.example.com\n\
                    Diagnostic-Code: smtp; 550 5.1.1 <a@example.com>:\n\
                    \x20   Recipient address rejected\n\
                    \n\
                    Final-Recipient: RFC822; <b@example.com>\n\
                    Action: delayed\n\
                    Status: 4.2.2\n";
        let r = parse(body);
        assert_eq!(r.len(), 2);
        assert_eq!(r[0].final_recipient, "a@example.com");
        assert_eq!(r[0].original_recipient, "A@Example.com");
        assert_eq!(r[0].action, "failed");
        assert_eq!(r[0].status, "5.1.1");
        assert_eq!(r[0].remote_mta, "mx.example.com");
        assert_eq!(
            r[0].diagnostic,
            "550 5.1.1 <a@example.com>: Recipient address rejected"
        );
        assert_eq!(r[1].address(), "b@example.com");
        assert_eq!(r[1].action, "delayed");
        assert_eq!(r[1].status, "4.2.2");
    }

    #[test]
    fn several_recipients_in_one_block_without_blank_lines() {
        let body = "Reporting-MTA: dns; x\n\
                    Final-Recipient: rfc822; a@example.com\n\
                    Action: failed\n\
                    Status: 5.0.0\n\
                    Final-Recipient: rfc822; b@example.com\n\
                    Action: failed\n\
                    Status: 5.2.2\n";
        let r = parse(body);
        assert_eq!(r.len(), 2);
        assert_eq!(r[1].address(), "b@example.com");
        assert_eq!(r[1].status, "5.2.2");
    }
}
