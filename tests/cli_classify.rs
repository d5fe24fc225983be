//! `notify-inbound classify` as an operator runs it: JSON lines as SPEC §7 specifies, and an
//! unreadable input reported while the others are still classified.

use std::process::Command;

#[test]
fn classify_prints_spec_jsonl_and_survives_unreadable_inputs() {
    let out = Command::new(env!("CARGO_BIN_EXE_notify-inbound"))
        .args([
            "classify",
            "--format",
            "jsonl",
            "tests/corpus/bounces/emails/lhost-postfix-13.eml",
            "/nonexistent/bounce.eml",
            "tests/corpus/bounces/emails/arf-01.eml",
        ])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "an unreadable input fails the run"
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("/nonexistent/bounce.eml"), "{err}");
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    let postfix = &lines[0];
    assert!(
        postfix["source"]
            .as_str()
            .unwrap()
            .ends_with("lhost-postfix-13.eml")
    );
    assert_eq!(postfix["kind"], "bounce");
    let recipients = postfix["recipients"].as_array().unwrap();
    assert!(!recipients.is_empty());
    for key in ["address", "hard", "status", "action", "diagnostic"] {
        assert!(
            recipients[0].get(key).is_some(),
            "recipient lacks {key}: {postfix}"
        );
    }
    assert!(postfix["counts"].is_boolean() && postfix["why"].is_string());
    assert_eq!(lines[1]["kind"], "complaint");

    let text = Command::new(env!("CARGO_BIN_EXE_notify-inbound"))
        .args(["classify", "tests/corpus/bounces/emails"])
        .output()
        .unwrap();
    assert!(text.status.success());
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains("432"),
        "summary names the message count:\n{}",
        &text[text.len().saturating_sub(800)..]
    );
}

/// A Postfix report of a full mailbox for `bar@foo.com`.
const FULL_MAILBOX: &str = "From: MAILER-DAEMON@mx.sender.example (Mail Delivery System)\r\n\
Subject: Undelivered Mail Returned to Sender\r\n\
To: bn-42-abc@notify.example\r\n\
MIME-Version: 1.0\r\n\
Content-Type: multipart/report; report-type=delivery-status; boundary=\"b\"\r\n\
\r\n\
--b\r\n\
Content-Type: text/plain\r\n\
\r\n\
<bar@foo.com>: host mail.foo.com[192.0.2.25] said: 552 5.2.2 <bar@foo.com>:\r\n\
    Mailbox full (in reply to RCPT TO command)\r\n\
\r\n\
--b\r\n\
Content-Type: message/delivery-status\r\n\
\r\n\
Reporting-MTA: dns; mx.sender.example\r\n\
X-Postfix-Sender: rfc822; bn-42-abc@notify.example\r\n\
\r\n\
Final-Recipient: rfc822; bar@foo.com\r\n\
Action: failed\r\n\
Status: 5.2.2\r\n\
Diagnostic-Code: smtp; 552 5.2.2 <bar@foo.com>: Mailbox full\r\n\
\r\n\
--b--\r\n";

#[test]
fn explain_prints_the_outcome_the_server_logs_and_why() {
    let dir = tempfile::tempdir().unwrap();
    let full = dir.path().join("full.eml");
    std::fs::write(&full, FULL_MAILBOX).unwrap();
    let run = |decision: Option<&str>| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_notify-inbound"));
        cmd.args(["classify", "--explain"])
            .arg(&full)
            .arg("tests/corpus/bounces/emails/lhost-postfix-13.eml")
            .env_remove("NOTIFY_INBOUND__BOUNCE__DECISION");
        if let Some(d) = decision {
            cmd.env("NOTIFY_INBOUND__BOUNCE__DECISION", d);
        }
        let out = cmd.output().unwrap();
        assert!(out.status.success());
        String::from_utf8(out.stdout).unwrap()
    };
    let text = run(None);
    assert!(
        text.contains("full.eml: bounce - does not count (soft)"),
        "{text}"
    );
    assert!(text.contains("  outcome: not_counted (soft)\n"), "{text}");
    assert!(
        text.contains(
            "  why: bar@foo.com failed with status 5.2.2 (mailbox_full): soft, the mailbox itself is not gone\n"
        ),
        "{text}"
    );
    assert!(
        text.contains("lhost-postfix-13.eml: bounce - counts"),
        "{text}"
    );
    assert!(text.contains("  outcome: counted\n"), "{text}");
    assert!(
        text.contains(
            "  why: kijitora@example.jp failed with status 5.2.1 (user_unknown): a permanent, hard failure\n"
        ),
        "{text}"
    );
    // NotifyBC's rule counts the full mailbox: its filters pass.
    let text = run(Some("notifybc"));
    assert!(text.contains("full.eml: bounce - counts"), "{text}");
    assert!(
        text.contains("  why: decision = \"notifybc\": NotifyBC's filters over the whole text"),
        "{text}"
    );
    assert!(
        text.contains("  why: every NotifyBC filter passed\n"),
        "{text}"
    );
    // Without --explain, no reasoning is printed.
    let out = Command::new(env!("CARGO_BIN_EXE_notify-inbound"))
        .arg("classify")
        .arg(&full)
        .output()
        .unwrap();
    assert!(!String::from_utf8_lossy(&out.stdout).contains("outcome:"));
}
