//! Unit tests of NotifyBC's decision (`decision = "notifybc"`) and of each option beyond
//! it; the default decision is tested on MTA-shaped reports in `tests/bounce_decision.rs`.

use super::*;
use crate::config::{BounceDecision, RawBounce, RawSettings};

fn settings() -> RawBounce {
    let mut b = RawSettings::defaults().unwrap().bounce;
    b.decision = BounceDecision::Notifybc;
    b
}

fn filters(edit: impl FnOnce(&mut RawBounce)) -> Filters {
    let mut b = settings();
    edit(&mut b);
    Filters::new(&b.validate().unwrap())
}

/// A multipart/report DSN as Postfix sends it.
fn dsn(final_recipient: &str, action: &str, status: &str, diagnostic: &str) -> Vec<u8> {
    format!(
        "From: MAILER-DAEMON@mx.example.org\r\n\
         To: bn-1-abc@notify.example\r\n\
         Subject: Undelivered Mail Returned to Sender\r\n\
         Message-ID: <dsn-1@mx.example.org>\r\n\
         MIME-Version: 1.0\r\n\
         Content-Type: multipart/report; report-type=delivery-status; boundary=\"b1\"\r\n\
         \r\n\
         --b1\r\n\
         Content-Type: text/plain\r\n\
         \r\n\
         I'm sorry to have to inform you that your message could not be delivered.\r\n\
         \r\n\
         --b1\r\n\
         Content-Type: message/delivery-status\r\n\
         \r\n\
         Reporting-MTA: dns; mx.example.org\r\n\
         \r\n\
         Final-Recipient: rfc822; {final_recipient}\r\n\
         Action: {action}\r\n\
         Status: {status}\r\n\
         Diagnostic-Code: smtp; {diagnostic}\r\n\
         \r\n\
         --b1\r\n\
         Content-Type: message/rfc822\r\n\
         \r\n\
         From: news@notify.example\r\n\
         To: {final_recipient}\r\n\
         Subject: Your notification\r\n\
         \r\n\
         Status 5.9.9 mentioned by other@elsewhere.example in the quoted text.\r\n\
         --b1--\r\n"
    )
    .into_bytes()
}

fn plain(headers: &str, body: &str) -> Vec<u8> {
    format!("From: someone@example.org\r\n{headers}Subject: Hello\r\n\r\n{body}\r\n").into_bytes()
}

const SUB: &str = "bar@foo.com";

#[test]
fn dsn_with_5xx_for_the_subscriber_counts() {
    let raw = dsn(SUB, "failed", "5.1.1", "550 5.1.1 user unknown");
    let a = assess(&raw, &filters(|_| {}), Some(SUB));
    assert!(a.counts, "{a:?}");
    assert_eq!(a.why, "counted");
    assert_eq!(a.bounced_addresses, vec![SUB.to_string()]);
    assert_eq!(a.verdict.kind, ReportKind::Bounce);
    assert_eq!(a.verdict.recipients[0].address, SUB);
    assert!(a.verdict.recipients[0].hard);
    assert_eq!(a.verdict.recipients[0].reason, Reason::UserUnknown);
    assert_eq!(
        a.verdict.message_id.as_deref(),
        Some("dsn-1@mx.example.org")
    );
}

#[test]
fn status_regex_reads_the_whole_text_returned_original_included() {
    // 4.x.x in the DSN, but the returned original mentions 5.9.9: NotifyBC, reading the
    // whole text, counts it.
    let raw = dsn(SUB, "failed", "4.1.1", "450 4.1.1 try later");
    let a = assess(&raw, &filters(|_| {}), Some(SUB));
    assert!(a.counts, "{a:?}");
    assert_eq!(a.bounced_addresses, vec![SUB.to_string()]);
    // Without that mention nothing in the text matches.
    let quiet = String::from_utf8(raw)
        .unwrap()
        .replace("Status 5.9.9", "Status");
    let a = assess(quiet.as_bytes(), &filters(|_| {}), Some(SUB));
    assert!(!a.counts);
    assert_eq!(a.why, "smtp_status_code_regex");
    // Under the classifier's decision the subscriber's own 4.1.1 decides.
    let mut b = RawSettings::defaults().unwrap().bounce;
    b.decision = BounceDecision::Classifier;
    let a = assess(
        &raw_of(SUB, "4.1.1"),
        &Filters::new(&b.validate().unwrap()),
        Some(SUB),
    );
    assert!(!a.counts);
}

fn raw_of(recipient: &str, status: &str) -> Vec<u8> {
    dsn(recipient, "failed", status, "450 4.1.1 try later")
}

#[test]
fn status_regex_reads_html_then_text_without_a_delivery_status_part() {
    let raw = plain("", "Delivery failed: 550 5.1.1 bar@foo.com unknown");
    let a = assess(&raw, &filters(|_| {}), Some(SUB));
    assert!(a.counts, "{a:?}");
    let raw = format!(
        "From: a@example.org\r\nSubject: x\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/alternative; boundary=\"b\"\r\n\r\n\
         --b\r\nContent-Type: text/plain\r\n\r\nfailed 5.1.1 for {SUB}\r\n\
         --b\r\nContent-Type: text/html\r\n\r\n<p>failed for {SUB}</p>\r\n--b--\r\n"
    );
    // The HTML body is the one NotifyBC reads, and it has no status code.
    let a = assess(raw.as_bytes(), &filters(|_| {}), Some(SUB));
    assert!(!a.counts);
    assert_eq!(a.why, "smtp_status_code_regex");
}

#[test]
fn a_message_without_any_body_does_not_count() {
    let raw = b"From: a@example.org\r\nSubject: x\r\nContent-Type: application/octet-stream\r\n\r\nAAAA\r\n";
    let a = assess(raw, &filters(|_| {}), Some(SUB));
    assert!(!a.counts);
    assert_eq!(a.why, "smtp_status_code_regex");
}

#[test]
fn different_final_recipient_does_not_count() {
    let raw = dsn("other@foo.com", "failed", "5.1.1", "550 5.1.1 user unknown");
    let a = assess(&raw, &filters(|_| {}), Some(SUB));
    assert!(!a.counts);
    assert_eq!(a.why, "failed_recipient mismatch");
    assert_eq!(a.bounced_addresses, vec!["other@foo.com".to_string()]);
}

#[test]
fn address_comparison_is_exact_by_default() {
    let raw = plain("X-Failed-Recipients: bar@FOO.com\r\n", "550 5.1.1 unknown");
    let a = assess(&raw, &filters(|_| {}), Some(SUB));
    assert!(!a.counts);
    assert_eq!(a.why, "failed_recipient mismatch");
}

#[test]
fn default_failed_recipient_regex_is_lower_case_only() {
    // NotifyBC's pattern has no `i` flag: an upper-case domain is not found at all, so
    // the address check does not apply; an upper-case local part is cut short.
    // (The returned original's mention of another address is taken out: NotifyBC's
    // pattern would find that one.)
    let raw = String::from_utf8(dsn(
        "bar@FOO.com",
        "failed",
        "5.1.1",
        "550 5.1.1 user unknown",
    ))
    .unwrap()
    .replace("other@elsewhere.example", "someone else");
    let a = assess(raw.as_bytes(), &filters(|_| {}), Some(SUB));
    assert!(a.bounced_addresses.is_empty(), "{a:?}");
    assert!(a.counts);
    let raw = dsn("Bar@foo.com", "failed", "5.1.1", "550 5.1.1 user unknown");
    let a = assess(&raw, &filters(|_| {}), Some(SUB));
    assert_eq!(a.bounced_addresses, vec!["ar@foo.com".to_string()]);
    assert!(!a.counts);
}

#[test]
fn failed_recipient_regex_takes_the_first_match_in_the_body() {
    // The Postfix sender field comes first in the delivery-status part: NotifyBC takes it.
    let raw = String::from_utf8(dsn(SUB, "failed", "5.1.1", "550 x"))
        .unwrap()
        .replace(
            "Reporting-MTA: dns; mx.example.org\r\n",
            "Reporting-MTA: dns; mx.example.org\r\nX-Postfix-Sender: rfc822; bn-1-abc@notify.example\r\n",
        );
    let a = assess(raw.as_bytes(), &filters(|_| {}), Some(SUB));
    assert!(!a.counts);
    assert_eq!(
        a.bounced_addresses,
        vec!["bn-1-abc@notify.example".to_string()]
    );
}

#[test]
fn x_failed_recipients_overrides_the_body() {
    let raw = plain(
        &format!("X-Failed-Recipients: {SUB}\r\n"),
        "550 5.1.1 other@elsewhere.example: no such user",
    );
    let a = assess(&raw, &filters(|_| {}), Some(SUB));
    assert!(a.counts, "{a:?}");
    assert_eq!(a.bounced_addresses, vec![SUB.to_string()]);
    // An empty header does not override.
    let raw = plain(
        "X-Failed-Recipients: \r\n",
        "550 5.1.1 other@elsewhere.example: no such user",
    );
    let a = assess(&raw, &filters(|_| {}), Some(SUB));
    assert!(!a.counts);
    assert_eq!(
        a.bounced_addresses,
        vec!["other@elsewhere.example".to_string()]
    );
}

#[test]
fn no_bounced_address_means_no_address_check() {
    let raw = plain("", "Delivery failed permanently: 5.0.0");
    let a = assess(&raw, &filters(|_| {}), Some(SUB));
    assert!(a.counts);
    assert!(a.bounced_addresses.is_empty());
    // Nor when the regex is switched off.
    let raw = dsn("other@foo.com", "failed", "5.1.1", "550 x");
    let a = assess(
        &raw,
        &filters(|b| b.failed_recipient_regex = Some(String::new())),
        Some(SUB),
    );
    assert!(a.counts);
}

#[test]
fn subject_regex_when_set() {
    let raw = dsn(SUB, "failed", "5.1.1", "550 x");
    let f = filters(|b| b.subject_regex = Some("^Undeliverable".into()));
    let a = assess(&raw, &f, Some(SUB));
    assert!(!a.counts);
    assert_eq!(a.why, "subject_regex");
    let f = filters(|b| b.subject_regex = Some("Undelivered Mail".into()));
    assert!(assess(&raw, &f, Some(SUB)).counts);
    // No subject at all: does not match.
    let raw = b"From: a@example.org\r\n\r\n5.1.1 failed\r\n";
    let f = filters(|b| b.subject_regex = Some(".*".into()));
    assert_eq!(assess(raw, &f, Some(SUB)).why, "subject_regex");
}

#[test]
fn status_regex_is_javascript_ascii_digits() {
    // U+0665 ARABIC-INDIC DIGIT FIVE is a digit for Unicode \d, not for JavaScript's.
    let raw = "From: a@example.org\r\nSubject: x\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n5.\u{0661}.\u{0661} failed\r\n";
    let a = assess(raw.as_bytes(), &filters(|_| {}), Some(SUB));
    assert!(!a.counts);
    assert_eq!(
        js_compat_for_tests(r"5\.\d{1,3}\b[\d\w-]"),
        r"5\.[0-9]{1,3}(?-u:\b)[0-90-9A-Za-z_-]"
    );
}

fn js_compat_for_tests(p: &str) -> String {
    crate::config::js_compat(p)
}

#[test]
fn offline_compares_against_the_first_recipient_found() {
    let raw = dsn(SUB, "failed", "5.1.1", "550 x");
    let a = assess(&raw, &filters(|_| {}), None);
    assert!(a.counts);
    // The first address in the body is the sender, not the recipient found: no count.
    let raw = String::from_utf8(raw)
        .unwrap()
        .replace(
            "Reporting-MTA: dns; mx.example.org\r\n",
            "Reporting-MTA: dns; mx.example.org\r\nX-Postfix-Sender: rfc822; bn-1-abc@notify.example\r\n",
        );
    let a = assess(raw.as_bytes(), &filters(|_| {}), None);
    assert!(!a.counts);
    assert_eq!(a.why, "failed_recipient mismatch");
}

#[test]
fn unparsable_message() {
    let a = assess(b"", &filters(|_| {}), Some(SUB));
    assert!(!a.counts);
    assert_eq!(a.why, "unparsable");
    assert_eq!(a.verdict.kind, ReportKind::Unparsable);
    assert_eq!(classify(b"").kind, ReportKind::Unparsable);
}

#[test]
fn option_case_insensitive_domain_and_local_part() {
    let f = filters(|b| b.case_insensitive_domain = true);
    let raw = plain("X-Failed-Recipients: Bar@FOO.com\r\n", "550 5.1.1 unknown");
    let a = assess(&raw, &f, Some(SUB));
    assert!(!a.counts, "local part still exact");
    let raw = plain("X-Failed-Recipients: bar@FOO.com\r\n", "550 5.1.1 unknown");
    assert!(assess(&raw, &f, Some(SUB)).counts);
    let f = filters(|b| {
        b.case_insensitive_domain = true;
        b.case_insensitive_local_part = true;
    });
    let raw = plain("X-Failed-Recipients: Bar@FOO.com\r\n", "550 5.1.1 unknown");
    assert!(assess(&raw, &f, Some(SUB)).counts);
    // With either option on, the failed-recipient pattern matches case-insensitively, so
    // the whole address is found and then compared.
    let raw = dsn("Bar@FOO.com", "failed", "5.1.1", "550 x");
    let a = assess(&raw, &f, Some(SUB));
    assert_eq!(a.bounced_addresses, vec!["Bar@FOO.com".to_string()]);
    assert!(a.counts);
    let a = assess(&raw, &f, Some("other@foo.com"));
    assert!(!a.counts);
}

#[test]
fn option_multiple_failed_recipients() {
    let raw = plain(
        &format!("X-Failed-Recipients: first@example.org,\r\n {SUB}\r\n"),
        "550 5.1.1 unknown",
    );
    let a = assess(&raw, &filters(|_| {}), Some(SUB));
    assert!(!a.counts, "NotifyBC compares the whole header value");
    let f = filters(|b| b.multiple_failed_recipients = true);
    let a = assess(&raw, &f, Some(SUB));
    assert!(a.counts, "{a:?}");
    assert_eq!(
        a.bounced_addresses,
        vec!["first@example.org".to_string(), SUB.to_string()]
    );
    // Two header fields.
    let raw = plain(
        &format!("X-Failed-Recipients: first@example.org\r\nX-Failed-Recipients: {SUB}\r\n"),
        "550 5.1.1 unknown",
    );
    assert!(!assess(&raw, &filters(|_| {}), Some(SUB)).counts);
    assert!(assess(&raw, &f, Some(SUB)).counts);
}

#[test]
fn option_per_recipient_status() {
    let f = filters(|b| b.per_recipient_status = true);
    // Mailbox full with a 5.x.x code: NotifyBC counts it, the per-recipient verdict not.
    let raw = dsn(SUB, "failed", "5.2.2", "552 5.2.2 mailbox full");
    assert!(assess(&raw, &filters(|_| {}), Some(SUB)).counts);
    let a = assess(&raw, &f, Some(SUB));
    assert!(!a.counts);
    assert_eq!(a.why, "per_recipient_status: soft");
    // User unknown: counts.
    let raw = dsn(SUB, "failed", "5.1.1", "550 5.1.1 user unknown");
    assert!(assess(&raw, &f, Some(SUB)).counts);
    // Delayed: not a bounce.
    let raw = dsn(SUB, "delayed", "4.4.1", "connection timed out");
    let a = assess(&raw, &f, Some(SUB));
    assert!(!a.counts);
    assert_eq!(a.verdict.kind, ReportKind::Delay);
    assert_eq!(a.why, "per_recipient_status: not failed");
    // Someone else's entry.
    let raw = dsn("other@foo.com", "failed", "5.1.1", "550 user unknown");
    assert_eq!(assess(&raw, &f, Some(SUB)).why, "failed_recipient mismatch");
    // A success DSN has no failed recipient: it falls back to NotifyBC's filters, which
    // read the whole text: a 5.x.x in the returned original is enough for them.
    let raw = dsn(SUB, "delivered", "2.0.0", "250 ok");
    let a = assess(&raw, &f, Some(SUB));
    assert_eq!(a.verdict.kind, ReportKind::NotBounce);
    assert!(a.counts);
    let quiet = String::from_utf8(raw)
        .unwrap()
        .replace("Status 5.9.9", "Status");
    let a = assess(quiet.as_bytes(), &f, Some(SUB));
    assert!(!a.counts);
    assert_eq!(a.why, "smtp_status_code_regex");
}

#[test]
fn option_ignore_delays() {
    // A delay whose diagnostic mentions a 5.x.x code: NotifyBC counts it.
    let raw = dsn(
        SUB,
        "delayed",
        "4.4.1",
        "451 4.4.1 remote said 5.0.0 earlier",
    );
    assert!(assess(&raw, &filters(|_| {}), Some(SUB)).counts);
    let a = assess(&raw, &filters(|b| b.ignore_delays = true), Some(SUB));
    assert!(!a.counts);
    assert_eq!(a.why, "ignore_delays");
}

#[test]
fn option_ignore_auto_replies() {
    let raw = plain(
        "Auto-Submitted: auto-replied\r\n",
        &format!("I am away until 5.1.2025; write to {SUB}"),
    );
    let a = assess(&raw, &filters(|_| {}), Some(SUB));
    assert_eq!(a.verdict.kind, ReportKind::AutoReply);
    // NotifyBC's status regex finds `5.1.202` in the date.
    assert!(a.counts);
    let a = assess(&raw, &filters(|b| b.ignore_auto_replies = true), Some(SUB));
    assert!(!a.counts);
    assert_eq!(a.why, "ignore_auto_replies");
}

fn arf(feedback_type: &str) -> Vec<u8> {
    format!(
        "From: feedback@isp.example\r\nTo: bn-1-abc@notify.example\r\nSubject: complaint\r\n\
         MIME-Version: 1.0\r\n\
         Content-Type: multipart/report; report-type=feedback-report; boundary=\"b\"\r\n\r\n\
         --b\r\nContent-Type: text/plain\r\n\r\nThis is an abuse report 5.7.1\r\n\
         --b\r\nContent-Type: message/feedback-report\r\n\r\n\
         Feedback-Type: {feedback_type}\r\nUser-Agent: x/1.0\r\nVersion: 1\r\n\
         Original-Rcpt-To: {SUB}\r\n\r\n\
         --b\r\nContent-Type: message/rfc822\r\n\r\nFrom: news@notify.example\r\nTo: {SUB}\r\nSubject: n\r\n\r\nhi\r\n\
         --b--\r\n"
    )
    .into_bytes()
}

#[test]
fn option_complaints_unsubscribe() {
    let raw = arf("abuse");
    let v = classify(&raw);
    assert_eq!(v.kind, ReportKind::Complaint);
    assert_eq!(v.complainant.as_deref(), Some(SUB));
    assert_eq!(v.feedback_type.as_deref(), Some("abuse"));
    assert!(v.recipients.is_empty());
    let a = assess(&raw, &filters(|_| {}), Some(SUB));
    assert!(!a.complaint);
    let a = assess(
        &raw,
        &filters(|b| b.complaints_unsubscribe = true),
        Some(SUB),
    );
    assert!(a.complaint);
    assert!(!a.counts);
    assert_eq!(a.why, "complaints_unsubscribe");
    let a = assess(
        &arf("not-spam"),
        &filters(|b| b.complaints_unsubscribe = true),
        Some(SUB),
    );
    assert!(!a.complaint);
}

#[test]
fn verdict_serialises_in_snake_case() {
    let v = classify(&dsn(SUB, "failed", "5.2.2", "552 mailbox full"));
    let j = serde_json::to_value(&v).unwrap();
    assert_eq!(j["kind"], "bounce");
    assert_eq!(j["recipients"][0]["reason"], "mailbox_full");
    assert_eq!(j["recipients"][0]["hard"], false);
    assert_eq!(j["recipients"][0]["status"], "5.2.2");
    assert_eq!(j["recipients"][0]["action"], "failed");
    assert_eq!(
        serde_json::to_value(ReportKind::AutoReply).unwrap(),
        "auto_reply"
    );
}

#[test]
fn bad_pattern_is_a_config_error_naming_the_key() {
    let mut b = settings();
    b.failed_recipient_regex = Some("(a".into());
    let e = b.validate().unwrap_err().to_string();
    assert!(e.contains("bounce.failed_recipient_regex"), "{e}");
}

/// `decide` (what the bn flow uses, classifying only when an option needs it) gives the
/// same decision as `assess` for every message of the corpus, under every option, for the
/// first bounced address and for an address that is not in the message.
#[test]
fn decide_agrees_with_assess_on_the_corpus() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus/bounces/emails");
    let mut messages: Vec<Vec<u8>> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| std::fs::read(e.unwrap().path()).unwrap())
        .collect();
    assert!(messages.len() > 100, "corpus in {}", dir.display());
    messages.push(b"\x00\x01 not a message".to_vec());
    messages.push(dsn(SUB, "failed", "5.1.1", "550 5.1.1 user unknown"));
    let configs: Vec<Filters> = vec![
        filters(|_| {}),
        filters(|b| {
            b.ignore_auto_replies = true;
            b.ignore_delays = true;
            b.complaints_unsubscribe = true;
        }),
        filters(|b| b.per_recipient_status = true),
        filters(|b| {
            b.case_insensitive_domain = true;
            b.multiple_failed_recipients = true;
            b.subject_regex = Some("(?i)undeliver|failure|returned".into());
        }),
    ];
    let mut counted = 0;
    for raw in &messages {
        let first = classify(raw)
            .recipients
            .first()
            .map(|r| r.address.clone())
            .unwrap_or_else(|| SUB.to_string());
        for f in &configs {
            for sub in [first.as_str(), "nobody@nowhere.example"] {
                let a = assess(raw, f, Some(sub));
                let d = decide(raw, f, sub);
                let expected = Decision {
                    counts: a.counts,
                    why: a.why.clone(),
                    complaint: a.complaint,
                    unparsable: a.verdict.kind == ReportKind::Unparsable,
                };
                assert_eq!(
                    d,
                    expected,
                    "{}",
                    String::from_utf8_lossy(&raw[..raw.len().min(200)])
                );
                counted += usize::from(d.counts);
            }
        }
    }
    // The comparison covered both outcomes.
    assert!(counted > 0);
}
