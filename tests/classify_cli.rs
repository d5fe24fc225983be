//! The `classify` command's engine, `run_cli`: every kind of input (an .eml file, a
//! directory tree such as a maildir, an mbox, an unreadable path) and both output
//! formats.

use std::path::Path;

use notify_inbound::classify::{OutputFormat, run_cli};
use notify_inbound::config::Settings;

fn dsn(recipient: &str, status: &str, diagnostic: &str) -> String {
    format!(
        "From: MAILER-DAEMON@mx.example.org\n\
         To: bn-1-abc@notify.example\n\
         Subject: Undelivered Mail Returned to Sender\n\
         MIME-Version: 1.0\n\
         Content-Type: multipart/report; report-type=delivery-status; boundary=\"b\"\n\
         \n\
         --b\n\
         Content-Type: text/plain\n\
         \n\
         Your message could not be delivered.\n\
         >From here on, nothing matters.\n\
         \n\
         --b\n\
         Content-Type: message/delivery-status\n\
         \n\
         Reporting-MTA: dns; mx.example.org\n\
         \n\
         Final-Recipient: rfc822; {recipient}\n\
         Action: failed\n\
         Status: {status}\n\
         Diagnostic-Code: smtp; {diagnostic}\n\
         \n\
         --b--\n"
    )
}

const VACATION: &str = "From: someone@example.org\n\
                        To: bn-1-abc@notify.example\n\
                        Subject: Out of office\n\
                        Auto-Submitted: auto-replied\n\
                        \n\
                        I am away until Monday.\n";

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

fn run(format: OutputFormat, inputs: &[String]) -> (bool, String, String) {
    let settings = Settings::defaults().unwrap();
    let mut out = Vec::new();
    let mut err = Vec::new();
    let ok = run_cli(&settings, format, inputs, &mut out, &mut err);
    (
        ok,
        String::from_utf8(out).unwrap(),
        String::from_utf8(err).unwrap(),
    )
}

#[test]
fn jsonl_over_files_maildirs_mboxes_and_a_missing_path() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let eml = root.join("one.eml");
    write(
        &eml,
        &dsn("gone@example.com", "5.1.1", "550 5.1.1 user unknown"),
    );
    let maildir = root.join("maildir");
    write(
        &maildir.join("cur/1.host:2,S"),
        &dsn("full@example.com", "5.2.2", "552 5.2.2 mailbox full"),
    );
    write(&maildir.join("new/2.host"), VACATION);
    std::fs::create_dir_all(maildir.join("tmp")).unwrap();
    let mbox = root.join("bounces.mbox");
    write(
        &mbox,
        &format!(
            "From MAILER-DAEMON Thu Apr 29 23:34:45 2024\n{}\nFrom someone Thu Apr 29 23:34:46 2024\n{}",
            dsn("first@example.com", "5.1.1", "550 5.1.1 no such user")
                .replace(">From here on", ">>From here on"),
            VACATION
        ),
    );
    let missing = root.join("no-such-file.eml");
    let inputs: Vec<String> = [&eml, &maildir, &missing, &mbox]
        .iter()
        .map(|p| p.display().to_string())
        .collect();

    let (ok, out, err) = run(OutputFormat::Jsonl, &inputs);
    assert!(!ok, "an unreadable input makes the run fail");
    assert!(
        err.contains("no-such-file.eml") && err.contains("cannot read"),
        "{err}"
    );
    let lines: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 5, "{out}");

    let find = |suffix: &str| {
        lines
            .iter()
            .find(|l| l["source"].as_str().unwrap().ends_with(suffix))
            .unwrap_or_else(|| panic!("no result for {suffix}: {out}"))
    };
    let one = find("one.eml");
    assert_eq!(one["kind"], "bounce");
    assert_eq!(one["recipients"][0]["address"], "gone@example.com");
    assert_eq!(one["recipients"][0]["hard"], true);
    assert_eq!(one["recipients"][0]["status"], "5.1.1");
    assert_eq!(one["recipients"][0]["action"], "failed");
    assert_eq!(one["recipients"][0]["reason"], "user_unknown");
    assert_eq!(one["recipients"][0]["diagnostic"], "550 5.1.1 user unknown");
    assert_eq!(one["counts"], true);
    assert_eq!(one["why"], "counted");

    let full = find("1.host:2,S");
    assert_eq!(full["recipients"][0]["hard"], false);
    assert_eq!(full["recipients"][0]["reason"], "mailbox_full");
    // A full mailbox is soft: it does not count (NotifyBC's rule would count it).
    assert_eq!(full["counts"], false);
    assert_eq!(full["why"], "soft");

    let away = find("2.host");
    assert_eq!(away["kind"], "auto_reply");
    assert_eq!(away["recipients"].as_array().unwrap().len(), 0);
    assert_eq!(away["counts"], false);
    assert_eq!(away["why"], "auto_reply");

    let first = find("bounces.mbox#1");
    assert_eq!(first["recipients"][0]["address"], "first@example.com");
    let second = find("bounces.mbox#2");
    assert_eq!(second["kind"], "auto_reply");
}

#[test]
fn text_output_ends_with_a_summary_by_filter() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.eml");
    let b = dir.path().join("b.eml");
    write(
        &a,
        &dsn("gone@example.com", "5.1.1", "550 5.1.1 user unknown"),
    );
    write(
        &b,
        &dsn("later@example.com", "4.2.2", "452 4.2.2 over quota"),
    );
    let inputs = vec![a.display().to_string(), b.display().to_string()];
    let (ok, out, err) = run(OutputFormat::Text, &inputs);
    assert!(ok, "{err}");
    assert!(err.is_empty(), "{err}");
    assert!(out.contains("a.eml: bounce - counts"), "{out}");
    assert!(
        out.contains("HARD gone@example.com status=5.1.1 action=failed reason=user_unknown"),
        "{out}"
    );
    assert!(
        out.contains("b.eml: bounce - does not count (soft)"),
        "{out}"
    );
    assert!(
        out.contains("2 message(s): 1 would count toward hardBounceCount, 1 would not."),
        "{out}"
    );
    assert!(out.contains("1  counted"), "{out}");
    assert!(out.contains("1  soft"), "{out}");
}

#[test]
fn configured_filters_apply() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.eml");
    write(
        &a,
        &dsn("gone@example.com", "5.1.1", "550 5.1.1 user unknown"),
    );
    let settings = Settings::from_toml_str("[bounce]\nsubject_regex = '^Undeliverable'\n").unwrap();
    let mut out = Vec::new();
    let mut err = Vec::new();
    assert!(run_cli(
        &settings,
        OutputFormat::Jsonl,
        &[a.display().to_string()],
        &mut out,
        &mut err
    ));
    let line: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(line["counts"], false);
    assert_eq!(line["why"], "subject_regex");
}
