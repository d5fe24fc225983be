//! The counting decision on delivery reports shaped exactly like those Postfix 3.7 and Exim
//! 4.96 write, under the default (`decision = "classifier"`) and under
//! `decision = "notifybc"`.
//!
//! The two cases that matter most on real mail servers: Postfix's report part begins with
//! `X-Postfix-Sender: rfc822; bn-...`, which must not be taken for the failed recipient;
//! and Exim reports a full mailbox that expired in its queue (`452 4.2.2`) with
//! `Status: 5.0.0`, which must not count as hard.

use notify_inbound::classify::{Assessment, Filters, assess, explain, outcome};
use notify_inbound::config::{RawSettings, Settings};

const SUB: &str = "bar@foo.com";

/// A Postfix non-delivery report: `diagnostic` is the remote server's reply as Postfix
/// words it in the prose part, `status` and `code` the report's fields.
fn postfix(status: &str, prose: &str, diagnostic: &str) -> String {
    format!(
        "Return-Path: <>\r\n\
Received: by mx.sender.example (Postfix)\r\n\tid 4Q5ZxN1wW0z9vCF; Mon,  7 Dec 2026 01:10:50 +0000 (UTC)\r\n\
Date: Mon,  7 Dec 2026 01:10:50 +0000 (UTC)\r\n\
From: MAILER-DAEMON@mx.sender.example (Mail Delivery System)\r\n\
Subject: Undelivered Mail Returned to Sender\r\n\
To: bn-42-abc123@notify.example\r\n\
Auto-Submitted: auto-replied\r\n\
MIME-Version: 1.0\r\n\
Content-Type: multipart/report; report-type=delivery-status;\r\n\tboundary=\"4Q5ZxN1wW0z9vCF.1796605850/mx.sender.example\"\r\n\
Content-Transfer-Encoding: 8bit\r\n\
Message-Id: <4Q5ZxP0m3Wz9vCG@mx.sender.example>\r\n\
\r\n\
This is a MIME-encapsulated message.\r\n\
\r\n\
--4Q5ZxN1wW0z9vCF.1796605850/mx.sender.example\r\n\
Content-Description: Notification\r\n\
Content-Type: text/plain; charset=utf-8\r\n\
Content-Transfer-Encoding: 8bit\r\n\
\r\n\
This is the mail system at host mx.sender.example.\r\n\
\r\n\
I'm sorry to have to inform you that your message could not\r\n\
be delivered to one or more recipients. It's attached below.\r\n\
\r\n\
For further assistance, please send mail to postmaster.\r\n\
\r\n\
If you do so, please include this problem report. You can\r\n\
delete your own text from the attached returned message.\r\n\
\r\n\
                   The mail system\r\n\
\r\n\
<{SUB}>: {prose}\r\n\
\r\n\
--4Q5ZxN1wW0z9vCF.1796605850/mx.sender.example\r\n\
Content-Description: Delivery report\r\n\
Content-Type: message/delivery-status\r\n\
\r\n\
Reporting-MTA: dns; mx.sender.example\r\n\
X-Postfix-Queue-ID: 4Q5ZxN1wW0z9vCF\r\n\
X-Postfix-Sender: rfc822; bn-42-abc123@notify.example\r\n\
Arrival-Date: Mon,  7 Dec 2026 01:10:49 +0000 (UTC)\r\n\
\r\n\
Final-Recipient: rfc822; {SUB}\r\n\
Original-Recipient: rfc822;{SUB}\r\n\
Action: failed\r\n\
Status: {status}\r\n\
{diagnostic}\
\r\n\
--4Q5ZxN1wW0z9vCF.1796605850/mx.sender.example\r\n\
Content-Description: Undelivered Message\r\n\
Content-Type: message/rfc822\r\n\
Content-Transfer-Encoding: 8bit\r\n\
\r\n\
Return-Path: <bn-42-abc123@notify.example>\r\n\
Received: from notify.example (notify.example [192.0.2.10])\r\n\tby mx.sender.example (Postfix) with ESMTP id 4Q5ZxN1wW0z9vCF\r\n\tfor <{SUB}>; Mon,  7 Dec 2026 01:10:49 +0000 (UTC)\r\n\
From: Notifications <notify@notify.example>\r\n\
To: {SUB}\r\n\
Subject: Your weekly notice\r\n\
Message-ID: <n-1@notify.example>\r\n\
\r\n\
Hello, this is your weekly notice.\r\n\
\r\n\
--4Q5ZxN1wW0z9vCF.1796605850/mx.sender.example--\r\n"
    )
}

fn postfix_user_unknown_local() -> String {
    postfix(
        "5.1.1",
        "unknown user: \"bar\"",
        "Diagnostic-Code: X-Postfix; unknown user: \"bar\"\r\n",
    )
}

fn postfix_user_unknown_remote() -> String {
    postfix(
        "5.1.1",
        "host mail.foo.com[192.0.2.25] said: 550 5.1.1 <bar@foo.com>:\r\n    Recipient address rejected: User unknown in virtual mailbox table (in reply\r\n    to RCPT TO command)",
        "Remote-MTA: dns; mail.foo.com\r\nDiagnostic-Code: smtp; 550 5.1.1 <bar@foo.com>: Recipient address rejected:\r\n    User unknown in virtual mailbox table\r\n",
    )
}

/// The `error:` transport (`foo.com error:5.1.1 user unknown` in a transport map).
fn postfix_error_transport() -> String {
    postfix(
        "5.1.1",
        "user unknown",
        "Diagnostic-Code: X-Postfix; user unknown\r\n",
    )
}

fn postfix_mailbox_full() -> String {
    postfix(
        "5.2.2",
        "host mail.foo.com[192.0.2.25] said: 552 5.2.2 <bar@foo.com>: Mailbox full\r\n    (in reply to RCPT TO command)",
        "Remote-MTA: dns; mail.foo.com\r\nDiagnostic-Code: smtp; 552 5.2.2 <bar@foo.com>: Mailbox full\r\n",
    )
}

/// Postfix's delay warning: the same report with `Action: delayed`.
fn postfix_delayed() -> String {
    postfix(
        "4.2.2",
        "host mail.foo.com[192.0.2.25] said: 452 4.2.2 <bar@foo.com>: Mailbox full\r\n    (in reply to RCPT TO command)",
        "Remote-MTA: dns; mail.foo.com\r\nDiagnostic-Code: smtp; 452 4.2.2 <bar@foo.com>: Mailbox full\r\nWill-Retry-Until: Mon, 14 Dec 2026 01:10:49 +0000 (UTC)\r\n",
    )
    .replace("Action: failed", "Action: delayed")
    .replace(
        "Subject: Undelivered Mail Returned to Sender",
        "Subject: Delayed Mail (still being retried)",
    )
}

/// An Exim non-delivery report: `lines` are the prose lines under the failed address,
/// `status` and `diagnostic` the report's fields.
fn exim(lines: &str, status: &str, diagnostic: &str) -> String {
    format!(
        "Return-path: <>\r\n\
Received: from Debian-exim by mx.sender.example with local (Exim 4.96)\r\n\tid 1t9Xyz-000ABC-2Q\r\n\tfor bn-42-abc123@notify.example;\r\n\tMon, 07 Dec 2026 01:20:00 +0000\r\n\
X-Failed-Recipients: {SUB}\r\n\
Auto-Submitted: auto-replied\r\n\
From: Mail Delivery System <Mailer-Daemon@mx.sender.example>\r\n\
To: bn-42-abc123@notify.example\r\n\
Content-Type: multipart/report; report-type=delivery-status; boundary=1796606400-eximdsn-1804289383\r\n\
MIME-Version: 1.0\r\n\
Subject: Mail delivery failed: returning message to sender\r\n\
Message-Id: <E1t9Xyz-000ABC-2Q@mx.sender.example>\r\n\
Date: Mon, 07 Dec 2026 01:20:00 +0000\r\n\
\r\n\
--1796606400-eximdsn-1804289383\r\n\
Content-type: text/plain; charset=us-ascii\r\n\
\r\n\
This message was created automatically by mail delivery software.\r\n\
\r\n\
A message that you sent could not be delivered to one or more of its\r\n\
recipients. This is a permanent error. The following address(es) failed:\r\n\
\r\n\
  {SUB}\r\n\
{lines}\
\r\n\
--1796606400-eximdsn-1804289383\r\n\
Content-type: message/delivery-status\r\n\
\r\n\
Reporting-MTA: dns; mx.sender.example\r\n\
\r\n\
Action: failed\r\n\
Final-Recipient: rfc822;{SUB}\r\n\
Status: {status}\r\n\
{diagnostic}\
\r\n\
--1796606400-eximdsn-1804289383\r\n\
Content-type: message/rfc822\r\n\
\r\n\
Return-path: <bn-42-abc123@notify.example>\r\n\
Received: from [192.0.2.10] (helo=notify.example)\r\n\tby mx.sender.example with esmtp (Exim 4.96)\r\n\tid 1t9Xab-000XYZ-0A\r\n\tfor {SUB};\r\n\tSun, 06 Dec 2026 01:19:00 +0000\r\n\
From: Notifications <notify@notify.example>\r\n\
To: {SUB}\r\n\
Subject: Your weekly notice\r\n\
Message-ID: <n-2@notify.example>\r\n\
\r\n\
Hello, this is your weekly notice.\r\n\
\r\n\
--1796606400-eximdsn-1804289383--\r\n"
    )
}

fn exim_mailbox_full_expired() -> String {
    exim(
        "    host mail.foo.com [192.0.2.25]\r\n    SMTP error from remote mail server after RCPT TO:<bar@foo.com>:\r\n    452 4.2.2 Mailbox full\r\n    retry timeout exceeded\r\n",
        "5.0.0",
        "Remote-MTA: dns; mail.foo.com\r\nDiagnostic-Code: smtp; 452 4.2.2 Mailbox full\r\n",
    )
}

fn exim_user_unknown() -> String {
    exim(
        "    host mail.foo.com [192.0.2.25]\r\n    SMTP error from remote mail server after RCPT TO:<bar@foo.com>:\r\n    550 5.1.1 <bar@foo.com>: Recipient address rejected: User unknown\r\n",
        "5.0.0",
        "Remote-MTA: dns; mail.foo.com\r\nDiagnostic-Code: smtp; 550 5.1.1 <bar@foo.com>: Recipient address rejected: User unknown\r\n",
    )
}

fn exim_unrouteable() -> String {
    exim("    Unrouteable address\r\n", "5.0.0", "")
}

fn decide(toml: &str, raw: &str) -> Assessment {
    let settings = Settings::from_toml_str(toml).unwrap();
    let f = Filters::new(&settings.bounce);
    assess(raw.as_bytes(), &f, Some(SUB))
}

fn classifier(raw: &str) -> Assessment {
    decide("", raw)
}

fn notifybc(raw: &str) -> Assessment {
    decide("[bounce]\ndecision = 'notifybc'\n", raw)
}

#[test]
fn postfix_hard_bounces_count_by_default() {
    for (name, raw) in [
        ("local unknown user", postfix_user_unknown_local()),
        ("remote 550 5.1.1", postfix_user_unknown_remote()),
        ("error transport", postfix_error_transport()),
    ] {
        let a = classifier(&raw);
        assert!(a.counts, "{name}: {a:?}");
        assert_eq!(a.why, "counted", "{name}");
        assert_eq!(outcome(&a), ("counted", None), "{name}");
        // The VERP sender at the top of the report is not taken for the recipient.
        assert!(
            a.verdict
                .recipients
                .iter()
                .all(|r| !r.address.starts_with("bn-")),
            "{name}: {:?}",
            a.verdict.recipients
        );
    }
}

#[test]
fn postfix_soft_bounces_and_delays_do_not_count() {
    let a = classifier(&postfix_mailbox_full());
    assert!(!a.counts, "{a:?}");
    assert_eq!(outcome(&a), ("not_counted", Some("soft")));
    let a = classifier(&postfix_delayed());
    assert!(!a.counts, "{a:?}");
    assert_eq!(outcome(&a), ("not_counted", Some("delayed")));
}

#[test]
fn exim_expired_full_mailbox_reported_as_5_0_0_does_not_count() {
    let a = classifier(&exim_mailbox_full_expired());
    assert!(!a.counts, "{a:?}");
    assert_eq!(a.why, "soft");
    let why = explain(&a, &Filters::new(&Settings::defaults().unwrap().bounce));
    assert!(why.iter().any(|l| l.contains("bar@foo.com")), "{why:?}");
    // NotifyBC's rule counts it: `5.0.0` matches its status pattern.
    let n = notifybc(&exim_mailbox_full_expired());
    assert!(n.counts, "{n:?}");
}

#[test]
fn exim_hard_bounces_count_by_default() {
    for (name, raw) in [
        ("550 5.1.1", exim_user_unknown()),
        ("unrouteable address", exim_unrouteable()),
    ] {
        let a = classifier(&raw);
        assert!(a.counts, "{name}: {a:?}");
    }
}

#[test]
fn someone_elses_bounce_is_not_our_recipient() {
    let raw = postfix_user_unknown_remote().replace(SUB, "other@foo.com");
    let a = classifier(&raw);
    assert!(!a.counts);
    assert_eq!(outcome(&a), ("not_counted", Some("not_our_recipient")));
}

#[test]
fn notifybc_rule_reads_the_whole_text_in_document_order() {
    // The prose names the recipient before the report's `X-Postfix-Sender`, so under
    // NotifyBC's rule, as NotifyBC runs it, Postfix's hard bounce counts too...
    let a = notifybc(&postfix_user_unknown_remote());
    assert!(a.counts, "{a:?}");
    assert_eq!(a.bounced_addresses, vec![SUB.to_string()]);
    // ... and so does its full mailbox: the rule does not tell soft from hard.
    assert!(notifybc(&postfix_mailbox_full()).counts);
    // A status code only in the attached original is read too.
    let raw = postfix_delayed().replace(
        "Hello, this is your weekly notice.",
        "Quoted: 550 5.7.1 mentioned in the text.",
    );
    assert!(notifybc(&raw).counts);
}

#[test]
fn filters_set_by_the_operator_are_extra_conditions() {
    let raw = postfix_user_unknown_remote();
    let a = decide("[bounce]\nsubject_regex = '^Returned mail'\n", &raw);
    assert_eq!(outcome(&a), ("not_counted", Some("subject_regex")));
    let a = decide("[bounce]\nsubject_regex = '^Undelivered Mail'\n", &raw);
    assert!(a.counts, "{a:?}");
    // The status pattern reads the subscriber's own status under the classifier.
    let a = decide("[bounce]\nsmtp_status_code_regex = '5\\.1\\.2'\n", &raw);
    assert_eq!(outcome(&a), ("not_counted", Some("smtp_status_code_regex")));
    let a = decide("[bounce]\nsmtp_status_code_regex = '5\\.1\\.1'\n", &raw);
    assert!(a.counts, "{a:?}");
    // NotifyBC's address pattern, set explicitly: its first match must be the subscriber.
    let raw_other_first = raw.replace(
        "This is the mail system at host mx.sender.example.",
        "This is the mail system at host mx.sender.example (help: help@sender.example).",
    );
    let re = format!(
        "[bounce]\nfailed_recipient_regex = '''{}'''\n",
        notify_inbound::config::NOTIFYBC_FAILED_RECIPIENT_REGEX
    );
    let a = decide(&re, &raw_other_first);
    assert_eq!(outcome(&a), ("not_counted", Some("failed_recipient_regex")));
    assert!(decide(&re, &raw).counts);
}

#[test]
fn notifybc_decision_takes_notifybc_defaults_and_explicit_empty_turns_a_filter_off() {
    let s = RawSettings::from_toml_str("[bounce]\ndecision = 'notifybc'\n").unwrap();
    assert_eq!(s.bounce.status_code_pattern(), r"5\.\d{1,3}\.\d{1,3}");
    assert_eq!(
        s.bounce.failed_recipient_pattern(),
        notify_inbound::config::NOTIFYBC_FAILED_RECIPIENT_REGEX
    );
    let s = RawSettings::defaults().unwrap();
    assert_eq!(s.bounce.status_code_pattern(), "");
    assert_eq!(s.bounce.failed_recipient_pattern(), "");
    let s = RawSettings::from_toml_str(
        "[bounce]\ndecision = 'notifybc'\nsmtp_status_code_regex = ''\n",
    )
    .unwrap();
    assert_eq!(s.bounce.status_code_pattern(), "");
    let typed = s.validate().unwrap();
    assert!(typed.bounce.smtp_status_code_regex.is_none());
    assert!(typed.bounce.failed_recipient_regex.is_some());
    // With the status filter off, NotifyBC's rule counts a delay notice for the subscriber.
    let a = decide(
        "[bounce]\ndecision = 'notifybc'\nsmtp_status_code_regex = ''\n",
        &postfix_delayed(),
    );
    assert!(a.counts, "{a:?}");
    // NotifyBC's camelCase key, as in a NotifyBC configuration, is an explicit setting.
    let s =
        RawSettings::from_toml_str("[email.bounce]\nsmtpStatusCodeRegex = '5\\.1\\.1'\n").unwrap();
    assert_eq!(s.bounce.status_code_pattern(), r"5\.1\.1");
}
