//! `notify-inbound classify` as an operator runs it, through the real binary: every kind of
//! input (an .eml file, a directory tree such as a maildir, an mbox, standard input, an
//! unreadable path), both output formats, the configured filters, and the summary over the
//! whole bounce corpus.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

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

/// A message saved with an mbox `From ` line before it, quoting the original message with
/// its own `From ` line after an empty line, as `rb-issue-368-bug.eml` of the corpus does.
fn quoting_original() -> String {
    format!(
        "From MAILER-DAEMON  Sat Oct  4 08:00:09 2025\n{}\n\
         From sender@example.org  Sat Oct  4 08:00:07 2025\n\
         Subject: the original\n\nhello\n",
        dsn("quoted@example.com", "5.1.1", "550 5.1.1 user unknown")
    )
}

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

fn corpus(name: &str) -> String {
    format!("{}/tests/corpus/bounces/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// Runs `notify-inbound classify ARGS` in an empty directory (no `config.local.toml`) with
/// `stdin` as standard input; returns the exit code, standard output and standard error.
fn classify(args: &[&str], stdin: &[u8]) -> (Option<i32>, String, String) {
    let cwd = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_notify-inbound"))
        .arg("classify")
        .args(args)
        .current_dir(cwd.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin).unwrap();
    drop(input);
    let out = child.wait_with_output().unwrap();
    (
        out.status.code(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

fn json_lines(out: &str) -> Vec<serde_json::Value> {
    out.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

fn find<'a>(lines: &'a [serde_json::Value], suffix: &str) -> &'a serde_json::Value {
    lines
        .iter()
        .find(|l| l["source"].as_str().unwrap().ends_with(suffix))
        .unwrap_or_else(|| panic!("no result for {suffix}: {lines:?}"))
}

#[test]
fn jsonl_over_files_maildirs_mboxes_and_an_unreadable_path() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let eml = root.join("one.eml");
    write(
        &eml,
        &dsn("gone@example.com", "5.1.1", "550 5.1.1 user unknown"),
    );
    let quoting = root.join("quoting.eml");
    write(&quoting, &quoting_original());
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
    // The same bytes as `quoting.eml`, but not an .eml: read as an mbox of two messages.
    let quoting_mbox = root.join("quoting.mbox");
    write(&quoting_mbox, &quoting_original());
    let missing = root.join("no-such-file.eml");
    let postfix = corpus("emails/lhost-postfix-13.eml");
    let arf = corpus("emails/arf-01.eml");
    let paths: Vec<String> = [&eml, &quoting, &maildir, &missing, &mbox, &quoting_mbox]
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    let mut args = vec!["--format", "jsonl", postfix.as_str()];
    args.extend(paths.iter().map(String::as_str));
    args.push(arf.as_str());

    let (code, out, err) = classify(&args, b"");
    assert_eq!(code, Some(1), "an unreadable input fails the run: {err}");
    assert!(
        err.contains("no-such-file.eml") && err.contains("cannot read"),
        "{err}"
    );
    let lines = json_lines(&out);
    assert_eq!(lines.len(), 10, "{out}");

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
    assert_eq!(lines[9]["kind"], "complaint");
    assert!(lines[9]["source"].as_str().unwrap().ends_with("arf-01.eml"));

    let one = find(&lines, "one.eml");
    assert_eq!(one["kind"], "bounce");
    assert_eq!(one["recipients"][0]["address"], "gone@example.com");
    assert_eq!(one["recipients"][0]["hard"], true);
    assert_eq!(one["recipients"][0]["status"], "5.1.1");
    assert_eq!(one["recipients"][0]["action"], "failed");
    assert_eq!(one["recipients"][0]["reason"], "user_unknown");
    assert_eq!(one["recipients"][0]["diagnostic"], "550 5.1.1 user unknown");
    assert_eq!(one["counts"], true);
    assert_eq!(one["why"], "counted");

    // An .eml is one message whatever `From ` lines it holds.
    let quoted = find(&lines, "quoting.eml");
    assert_eq!(quoted["kind"], "bounce");
    assert_eq!(quoted["recipients"][0]["address"], "quoted@example.com");
    let split: Vec<&str> = lines
        .iter()
        .filter_map(|l| l["source"].as_str())
        .filter(|s| s.contains("quoting.mbox#"))
        .collect();
    assert_eq!(split.len(), 2, "{out}");
    assert!(!out.contains("quoting.eml#"), "{out}");

    let full = find(&lines, "1.host:2,S");
    assert_eq!(full["recipients"][0]["hard"], false);
    assert_eq!(full["recipients"][0]["reason"], "mailbox_full");
    // A full mailbox is soft: it does not count (NotifyBC's rule would count it).
    assert_eq!(full["counts"], false);
    assert_eq!(full["why"], "soft");

    let away = find(&lines, "2.host");
    assert_eq!(away["kind"], "auto_reply");
    assert_eq!(away["recipients"].as_array().unwrap().len(), 0);
    assert_eq!(away["counts"], false);
    assert_eq!(away["why"], "auto_reply");

    let first = find(&lines, "bounces.mbox#1");
    assert_eq!(first["recipients"][0]["address"], "first@example.com");
    let second = find(&lines, "bounces.mbox#2");
    assert_eq!(second["kind"], "auto_reply");
}

#[test]
fn standard_input_is_read_like_a_file() {
    let one = dsn("stdin@example.com", "5.1.1", "550 5.1.1 user unknown");
    let (code, out, err) = classify(&["--format", "jsonl", "-"], one.as_bytes());
    assert_eq!(code, Some(0), "{err}");
    let lines = json_lines(&out);
    assert_eq!(lines.len(), 1, "{out}");
    assert_eq!(lines[0]["source"], "-");
    assert_eq!(lines[0]["kind"], "bounce");
    assert_eq!(lines[0]["recipients"][0]["address"], "stdin@example.com");
    assert_eq!(lines[0]["counts"], true);

    // An mbox on standard input is split like an mbox file.
    let mbox = format!(
        "From a Thu Apr 29 23:34:45 2024\n{one}\nFrom b Thu Apr 29 23:34:46 2024\n{VACATION}"
    );
    let (code, out, err) = classify(&["-"], mbox.as_bytes());
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("-#1: bounce - counts"), "{out}");
    assert!(
        out.contains("-#2: auto_reply - does not count (auto_reply)"),
        "{out}"
    );
    assert!(
        out.contains("\n2 message(s): 1 would count toward hardBounceCount, 1 would not.\n"),
        "{out}"
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
    let (a, b) = (a.display().to_string(), b.display().to_string());
    let (code, out, err) = classify(&[&a, &b], b"");
    assert_eq!(code, Some(0), "{err}");
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
    let config = dir.path().join("config.toml");
    write(&config, "[bounce]\nsubject_regex = '^Undeliverable'\n");
    let (config, a) = (config.display().to_string(), a.display().to_string());
    let (code, out, err) = classify(&["--config", &config, "--format", "jsonl", &a], b"");
    assert_eq!(code, Some(0), "{err}");
    let lines = json_lines(&out);
    assert_eq!(lines.len(), 1, "{out}");
    assert_eq!(lines[0]["counts"], false);
    assert_eq!(lines[0]["why"], "subject_regex");
}

/// The corpus directory holds 432 `.eml` files, so 432 messages: `rb-issue-368-bug.eml`
/// starts with an mbox `From ` line and quotes its original with another one, and is still
/// one message.
#[test]
fn the_corpus_summary_counts_one_message_per_eml_file() {
    let emails = corpus("emails");
    let files = std::fs::read_dir(&emails).unwrap().count();
    assert_eq!(files, 432);
    let (code, out, err) = classify(&[&emails], b"");
    assert_eq!(code, Some(0), "{err}");
    assert!(
        out.contains(
            "\n\n432 message(s): 132 would count toward hardBounceCount, 300 would not.\n"
        ),
        "summary:\n{}",
        &out[out.len().saturating_sub(800)..]
    );
    assert!(out.contains("rb-issue-368-bug.eml: "), "{out}");
    assert!(!out.contains(".eml#"), "an .eml file was split");
}

/// A reader that closes the output early (`classify ... | head -1`) ends the run: no error
/// line for each message still to come, and an exit status that says the output is
/// incomplete.
#[test]
fn a_closed_output_ends_the_run_quietly() {
    use std::io::BufRead;
    let mut child = Command::new(env!("CARGO_BIN_EXE_notify-inbound"))
        .args(["classify", "--format", "jsonl", &corpus("emails")])
        .current_dir(tempfile::tempdir().unwrap().path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert!(first.starts_with("{\"source\""), "{first}");
    // The reader is dropped here: the pipe is closed with hundreds of messages to go.
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(stderr, "", "nothing is said about a closed pipe");
    assert_eq!(out.status.code(), Some(1));
}
