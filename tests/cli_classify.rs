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
