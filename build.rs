//! Turns the classifier's wording tables (`data/wordings.toml`) into Rust consts in
//! `$OUT_DIR/wordings.rs`, which `src/classify/wordings.rs` includes: the tables are
//! checked here, so a wrong entry fails the build naming itself, and nothing is parsed
//! or compiled from text that could be wrong at run time. `docs/classifier.md` describes
//! the file.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use serde::Deserialize;
use toml::Spanned;

// The classifier's own conversion, so a pattern is checked exactly as it is compiled.
#[path = "src/classify/byte_pattern.rs"]
mod byte_pattern;
use byte_pattern::byte_pattern;

const SOURCE: &str = "data/wordings.toml";

/// The reasons a wording may give: the name the classifier reports (and the data file
/// uses) and the `Reason` variant. A test in `src/classify/wordings.rs` checks the names
/// against `Reason::as_str`.
const REASONS: &[(&str, &str)] = &[
    ("user_unknown", "UserUnknown"),
    ("host_unknown", "HostUnknown"),
    ("has_moved", "HasMoved"),
    ("not_accept", "NotAccept"),
    ("mailbox_full", "MailboxFull"),
    ("suspend", "Suspend"),
    ("filtered", "Filtered"),
    ("blocked", "Blocked"),
    ("rejected", "Rejected"),
    ("policy_violation", "PolicyViolation"),
    ("spam_detected", "SpamDetected"),
    ("expired", "Expired"),
    ("mesg_too_big", "MesgTooBig"),
    ("network_error", "NetworkError"),
    ("system_error", "SystemError"),
    ("too_many_conn", "TooManyConn"),
    ("auth_failure", "AuthFailure"),
];

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Tables {
    #[serde(default)]
    wording: Vec<Entry>,
    #[serde(default)]
    plainly_unknown: Vec<Entry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    reason: Spanned<String>,
    lang: Spanned<String>,
    pattern: Spanned<String>,
    example: Spanned<String>,
}

fn main() -> ExitCode {
    println!("cargo:rerun-if-changed={SOURCE}");
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=src/classify/byte_pattern.rs");
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(errors) => {
            for e in &errors {
                let mut lines = e.lines();
                eprintln!("error: {}", lines.next().unwrap_or_default());
                for line in lines {
                    eprintln!("       {line}");
                }
            }
            eprintln!(
                "error: {SOURCE}: {} wrong; see the head of the file and docs/classifier.md",
                if errors.len() == 1 {
                    "1 thing is".to_string()
                } else {
                    format!("{} things are", errors.len())
                }
            );
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), Vec<String>> {
    let dir = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .ok_or_else(|| vec!["CARGO_MANIFEST_DIR is not set".to_string()])?;
    let out_dir = std::env::var_os("OUT_DIR")
        .map(PathBuf::from)
        .ok_or_else(|| vec!["OUT_DIR is not set".to_string()])?;
    let path = dir.join(SOURCE);
    let text = std::fs::read_to_string(&path)
        .map_err(|e| vec![format!("cannot read {}: {e}", path.display())])?;
    let tables: Tables =
        toml::from_str(&text).map_err(|e| vec![format!("{SOURCE} is not valid: {e}")])?;

    let mut errors = Vec::new();
    for (table, entries) in [
        ("wording", &tables.wording),
        ("plainly_unknown", &tables.plainly_unknown),
    ] {
        for (i, e) in entries.iter().enumerate() {
            for problem in check(table, e) {
                errors.push(format!(
                    "{SOURCE}:{}: [[{table}]] #{} (reason {:?}, lang {:?}, pattern {:?}, example {:?}): {problem}",
                    line_of(&text, e.pattern.span().start),
                    i + 1,
                    e.reason.get_ref(),
                    e.lang.get_ref(),
                    e.pattern.get_ref(),
                    e.example.get_ref(),
                ));
            }
        }
    }
    if tables.wording.is_empty() {
        errors.push(format!("{SOURCE}: no [[wording]] entries"));
    }
    if !errors.is_empty() {
        return Err(errors);
    }

    let code = generate(&tables);
    let out = out_dir.join("wordings.rs");
    std::fs::write(&out, code).map_err(|e| vec![format!("cannot write {}: {e}", out.display())])
}

/// Everything wrong with one entry.
fn check(table: &str, e: &Entry) -> Vec<String> {
    let mut problems = Vec::new();
    let reason = e.reason.get_ref();
    if variant(reason).is_none() {
        let names: Vec<&str> = REASONS.iter().map(|(n, _)| *n).collect();
        problems.push(format!(
            "unknown reason {reason:?}; a wording gives one of {}",
            names.join(", ")
        ));
    } else if table == "plainly_unknown" && reason != "user_unknown" {
        problems.push("a plain wording gives user_unknown".to_string());
    }
    let lang = e.lang.get_ref();
    if lang.len() != 2 || !lang.bytes().all(|b| b.is_ascii_lowercase()) {
        problems.push(format!(
            "lang {lang:?} is not a two-letter ISO 639-1 code (en, de, ja, ...)"
        ));
    }
    let example = e.example.get_ref();
    if example.trim().is_empty() {
        problems.push("the example is empty; give a diagnostic that says this wording".into());
    }
    let pattern = e.pattern.get_ref();
    if pattern.trim().is_empty() {
        problems.push("the pattern is empty".to_string());
    } else {
        // Compiled as the classifier compiles it (src/classify/reason.rs).
        match regex::bytes::Regex::new(&format!("(?i-u){}", byte_pattern(pattern))) {
            Err(err) => problems.push(format!("the pattern does not compile: {err}")),
            Ok(re) if !example.trim().is_empty() && !re.is_match(example.as_bytes()) => {
                problems.push("the pattern does not match its own example".to_string())
            }
            Ok(_) => {}
        }
    }
    problems
}

fn variant(name: &str) -> Option<&'static str> {
    REASONS.iter().find(|(n, _)| *n == name).map(|(_, v)| *v)
}

fn line_of(text: &str, offset: usize) -> usize {
    text.get(..offset).map_or(0, |t| t.matches('\n').count()) + 1
}

fn generate(tables: &Tables) -> String {
    let mut code =
        String::from("// Generated by build.rs from data/wordings.toml; edit that file.\n\n");
    code.push_str("/// Every wording, in the order they are tried.\n");
    table(&mut code, "WORDINGS", &tables.wording);
    code.push_str(
        "\n/// \"User unknown\" wordings so plain that no SMTP context is needed to believe them:\n\
         /// a content filter that disguises a refusal says \"user unknown\", never these. They\n\
         /// win over a `5.7.x` status and over a refusal after `DATA`. Each must also be read\n\
         /// as user unknown by [`WORDINGS`].\n",
    );
    table(&mut code, "PLAINLY_UNKNOWN", &tables.plainly_unknown);
    code.push_str(
        "\n/// The reason names the data file uses, as `Reason::as_str` spells them.\n\
         #[cfg(test)]\npub(crate) const REASON_NAMES: &[(&str, Reason)] = &[\n",
    );
    for (name, v) in REASONS {
        let _ = writeln!(code, "    ({name:?}, Reason::{v}),");
    }
    code.push_str("];\n");
    code
}

fn table(code: &mut String, name: &str, entries: &[Entry]) {
    let _ = writeln!(code, "pub(crate) const {name}: &[Wording] = &[");
    for e in entries {
        let _ = writeln!(
            code,
            "    Wording {{ reason: Reason::{}, lang: {:?}, pattern: {:?}, example: {:?} }},",
            variant(e.reason.get_ref()).unwrap_or("Undefined"),
            e.lang.get_ref(),
            e.pattern.get_ref(),
            e.example.get_ref(),
        );
    }
    code.push_str("];\n");
}
