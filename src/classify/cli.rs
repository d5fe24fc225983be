//! The offline `classify` command (README, "Bounce classification"): runs the classifier and the configured
//! filters over `.eml` files, directories of them (recursively, so maildirs too), mbox
//! files and standard input, for an operator tuning the bounce regexes. It owns the only
//! I/O of the classifier module.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::{Assessment, BouncedRecipient, Filters, Reason, assess};
use crate::config::Settings;

/// How `classify` prints its results.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    /// Readable by an operator, with a closing summary.
    Text,
    /// One JSON object per message (docs/classifier.md).
    Jsonl,
}

#[derive(Serialize)]
struct JsonRecipient<'a> {
    address: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    original_recipient: Option<&'a str>,
    hard: bool,
    status: &'a str,
    action: &'a str,
    diagnostic: &'a str,
    reason: Reason,
}

#[derive(Serialize)]
struct JsonLine<'a> {
    source: &'a str,
    kind: super::ReportKind,
    recipients: Vec<JsonRecipient<'a>>,
    counts: bool,
    why: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    subject: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    message_id: Option<&'a str>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    complaint: bool,
}

fn json_recipient(r: &BouncedRecipient) -> JsonRecipient<'_> {
    JsonRecipient {
        address: &r.address,
        original_recipient: r.original_recipient.as_deref(),
        hard: r.hard,
        status: &r.status,
        action: &r.action,
        diagnostic: &r.diagnostic,
        reason: r.reason,
    }
}

/// Running totals for the text summary.
#[derive(Default)]
struct Summary {
    messages: usize,
    counted: usize,
    by_why: BTreeMap<String, usize>,
    by_kind: BTreeMap<&'static str, usize>,
    unreadable: usize,
}

struct Printer<'a> {
    format: OutputFormat,
    explain: bool,
    filters: Filters,
    out: &'a mut dyn Write,
    err: &'a mut dyn Write,
    summary: Summary,
    ok: bool,
    /// The output can no longer be written (a reader such as `head` closed it): nothing
    /// more is read or said.
    closed: bool,
}

impl Printer<'_> {
    fn message(&mut self, source: &str, raw: &[u8]) {
        if self.closed {
            return;
        }
        let a = assess(raw, &self.filters, None);
        self.summary.messages += 1;
        if a.counts {
            self.summary.counted += 1;
        }
        *self.summary.by_why.entry(a.why.clone()).or_default() += 1;
        *self
            .summary
            .by_kind
            .entry(a.verdict.kind.as_str())
            .or_default() += 1;
        let written = match self.format {
            OutputFormat::Jsonl => self.jsonl(source, &a),
            OutputFormat::Text => self.text(source, &a),
        };
        if let Err(e) = written {
            self.output_failed(&e);
        }
    }

    /// A closed pipe is the reader's choice and ends the run quietly; any other write
    /// error is said once.
    fn output_failed(&mut self, e: &std::io::Error) {
        if !self.closed && e.kind() != std::io::ErrorKind::BrokenPipe {
            self.fail(&format!("cannot write output: {e}"));
        }
        self.ok = false;
        self.closed = true;
    }

    fn jsonl(&mut self, source: &str, a: &Assessment) -> std::io::Result<()> {
        let line = JsonLine {
            source,
            kind: a.verdict.kind,
            recipients: a.verdict.recipients.iter().map(json_recipient).collect(),
            counts: a.counts,
            why: &a.why,
            subject: a.verdict.subject.as_deref(),
            message_id: a.verdict.message_id.as_deref(),
            complaint: a.complaint,
        };
        serde_json::to_writer(&mut *self.out, &line)?;
        self.out.write_all(b"\n")
    }

    fn text(&mut self, source: &str, a: &Assessment) -> std::io::Result<()> {
        let v = &a.verdict;
        let decision = if a.counts {
            "counts".to_string()
        } else {
            format!("does not count ({})", a.why)
        };
        writeln!(self.out, "{source}: {} - {decision}", v.kind.as_str())?;
        if let Some(s) = &v.subject {
            writeln!(self.out, "  subject: {}", one_line(s, 100))?;
        }
        for r in &v.recipients {
            writeln!(
                self.out,
                "  {} {} status={} action={} reason={}",
                if r.hard { "HARD" } else { "soft" },
                r.address,
                if r.status.is_empty() { "-" } else { &r.status },
                r.action,
                r.reason.as_str(),
            )?;
            if !r.diagnostic.is_empty() {
                writeln!(self.out, "       {}", one_line(&r.diagnostic, 160))?;
            }
        }
        if let Some(c) = &v.complainant {
            writeln!(
                self.out,
                "  complaint by {c} (feedback type {})",
                v.feedback_type.as_deref().unwrap_or("?")
            )?;
        }
        if !a.bounced_addresses.is_empty() {
            writeln!(
                self.out,
                "  compared with: {}",
                a.bounced_addresses.join(", ")
            )?;
        }
        if self.explain {
            let (outcome, reason) = super::outcome(a);
            match reason {
                Some(r) => writeln!(self.out, "  outcome: {outcome} ({r})")?,
                None => writeln!(self.out, "  outcome: {outcome}")?,
            }
            for line in super::explain(a, &self.filters) {
                writeln!(self.out, "  why: {line}")?;
            }
        }
        Ok(())
    }

    fn fail(&mut self, message: &str) {
        self.ok = false;
        let _ = writeln!(self.err, "notify-inbound classify: {message}");
    }

    fn unreadable(&mut self, what: &str, e: &std::io::Error) {
        self.summary.unreadable += 1;
        self.fail(&format!("cannot read {what}: {e}"));
    }

    fn finish(&mut self) {
        if self.format != OutputFormat::Text {
            return;
        }
        let s = &self.summary;
        let mut text = format!(
            "\n{} message(s): {} would count toward hardBounceCount, {} would not.\n",
            s.messages,
            s.counted,
            s.messages - s.counted
        );
        for (why, n) in &s.by_why {
            text.push_str(&format!("  {n:>6}  {why}\n"));
        }
        let kinds: Vec<String> = s.by_kind.iter().map(|(k, n)| format!("{k} {n}")).collect();
        text.push_str(&format!("kinds: {}\n", kinds.join(", ")));
        if s.unreadable > 0 {
            text.push_str(&format!("{} input(s) could not be read.\n", s.unreadable));
        }
        if self.closed {
            return;
        }
        if let Err(e) = self.out.write_all(text.as_bytes()) {
            self.output_failed(&e);
        }
    }

    fn input(&mut self, input: &str) {
        if self.closed {
            return;
        }
        if input == "-" {
            let mut raw = Vec::new();
            match std::io::stdin().lock().read_to_end(&mut raw) {
                Ok(_) => self.bytes("-", &raw),
                Err(e) => self.unreadable("standard input", &e),
            }
            return;
        }
        let path = Path::new(input);
        match std::fs::metadata(path) {
            Ok(m) if m.is_dir() => self.directory(path),
            Ok(_) => self.file(path),
            Err(e) => self.unreadable(input, &e),
        }
    }

    fn directory(&mut self, dir: &Path) {
        if self.closed {
            return;
        }
        let entries = match std::fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) => return self.unreadable(&dir.display().to_string(), &e),
        };
        let mut paths: Vec<(PathBuf, bool)> = Vec::new();
        for entry in entries {
            match entry {
                Ok(entry) => {
                    let name = entry.file_name();
                    // Dot files are editor and mail-client leftovers, not messages.
                    if name.to_string_lossy().starts_with('.') {
                        continue;
                    }
                    // Symbolic links to directories are not followed (no loops).
                    let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
                    paths.push((entry.path(), is_dir));
                }
                Err(e) => self.unreadable(&dir.display().to_string(), &e),
            }
        }
        paths.sort();
        for (path, is_dir) in paths {
            if is_dir {
                self.directory(&path);
            } else {
                self.file(&path);
            }
        }
    }

    fn file(&mut self, path: &Path) {
        if self.closed {
            return;
        }
        let raw = match std::fs::read(path) {
            Ok(raw) => raw,
            Err(e) => return self.unreadable(&path.display().to_string(), &e),
        };
        // An `.eml` file holds one message by definition; a `From ` line in its body (a
        // quoted original message, unquoted because it is not an mbox) starts nothing.
        let eml = path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("eml"));
        if eml {
            self.message(&path.display().to_string(), without_envelope_line(&raw));
        } else {
            self.bytes(&path.display().to_string(), &raw);
        }
    }

    /// One input's bytes: an mbox of several messages, or one message (with or without
    /// an mbox `From ` line before it).
    fn bytes(&mut self, source: &str, raw: &[u8]) {
        let messages = split_mbox(raw);
        if messages.len() <= 1 {
            let one = messages.into_iter().next().unwrap_or_else(|| raw.to_vec());
            self.message(source, &one);
        } else {
            for (i, m) in messages.iter().enumerate() {
                self.message(&format!("{source}#{}", i + 1), m);
            }
        }
    }
}

fn one_line(s: &str, max: usize) -> String {
    let mut out: String = s.split_whitespace().collect::<Vec<_>>().join(" ");
    if out.chars().count() > max {
        out = out.chars().take(max).collect::<String>() + "...";
    }
    out
}

/// A single message without the mbox `From ` line some tools write before it.
fn without_envelope_line(raw: &[u8]) -> &[u8] {
    if !raw.starts_with(b"From ") {
        return raw;
    }
    match raw.iter().position(|&b| b == b'\n') {
        Some(end) => &raw[end + 1..],
        None => &[],
    }
}

/// Splits an mbox into its messages: a message starts at a `From ` line at the start of
/// the input or after an empty line; the `From ` line itself is dropped and `>From `
/// quoting undone. Input that does not start with `From ` is one message, returned as is.
pub(crate) fn split_mbox(raw: &[u8]) -> Vec<Vec<u8>> {
    if !raw.starts_with(b"From ") {
        return vec![raw.to_vec()];
    }
    let mut messages: Vec<Vec<u8>> = Vec::new();
    let mut current: Option<Vec<u8>> = None;
    let mut previous_blank = true;
    for line in raw.split_inclusive(|&b| b == b'\n') {
        let content = line
            .strip_suffix(b"\n")
            .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
            .unwrap_or(line);
        if previous_blank && line.starts_with(b"From ") {
            if let Some(m) = current.take() {
                messages.push(m);
            }
            current = Some(Vec::new());
            previous_blank = false;
            continue;
        }
        previous_blank = content.is_empty();
        let Some(m) = current.as_mut() else { continue };
        // mboxrd: one `>` is removed from `>From `, `>>From `, ...
        let quoted = line.iter().take_while(|&&b| b == b'>').count();
        if quoted > 0 && line[quoted..].starts_with(b"From ") {
            m.extend_from_slice(&line[1..]);
        } else {
            m.extend_from_slice(line);
        }
    }
    if let Some(m) = current.take() {
        messages.push(m);
    }
    // The empty line that separates messages belongs to the mbox, not the message.
    for m in &mut messages {
        if m.ends_with(b"\r\n\r\n") {
            m.truncate(m.len() - 2);
        } else if m.ends_with(b"\n\n") {
            m.truncate(m.len() - 1);
        }
    }
    messages
}

/// `notify-inbound classify`: classifies every message of `inputs` with the filters of
/// `settings`, prints one result per message to `out` in `format` (and, for text, a
/// closing summary), and reports inputs that cannot be read to `err`. Returns false if
/// any input could not be read (or the output could not be written); the other inputs
/// are still processed.
pub fn run_cli(
    settings: &Settings,
    format: OutputFormat,
    inputs: &[String],
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> bool {
    run_cli_explained(settings, format, false, inputs, out, err)
}

/// [`run_cli`], and with `explain` the text format also prints, per message, the outcome
/// the server would log for a subscriber whose address is the first recipient found and
/// the reasoning that led to it (`classify --explain`).
pub fn run_cli_explained(
    settings: &Settings,
    format: OutputFormat,
    explain: bool,
    inputs: &[String],
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> bool {
    let filters = Filters::new(&settings.bounce);
    let mut p = Printer {
        format,
        explain,
        filters,
        out,
        err,
        summary: Summary::default(),
        ok: true,
        closed: false,
    };
    for input in inputs {
        p.input(input);
    }
    p.finish();
    let _ = p.out.flush();
    p.ok
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mbox_split_and_unquote() {
        let mbox = b"From a@b Mon Jan  1 00:00:00 2024\nSubject: one\n\n>From here\nbody\n\nFrom c@d Mon Jan  1 00:00:00 2024\nSubject: two\n\nbody\nFrom the start of a line, not after a blank\n";
        let m = split_mbox(mbox);
        assert_eq!(m.len(), 2);
        assert_eq!(m[0], b"Subject: one\n\nFrom here\nbody\n");
        assert_eq!(
            m[1],
            b"Subject: two\n\nbody\nFrom the start of a line, not after a blank\n"
        );
        assert_eq!(
            split_mbox(b"Subject: x\n\nhi\n"),
            vec![b"Subject: x\n\nhi\n".to_vec()]
        );
    }
}
