//! The wordings the classifier reads a reason from: one table for every reason and
//! language, so that a wording is added, reviewed and tested in one place. The tables live
//! in `data/wordings.toml` (its head and docs/classifier.md describe an entry); the build
//! turns them into the consts below, so nothing is parsed at run time. Each entry is a
//! pattern (matched ASCII case-insensitively, on bytes) and an example diagnostic it must
//! give its reason for (`wordings_give_their_reason` below checks every entry).
//!
//! Order matters: the first reason with a matching pattern wins.

use super::Reason;

/// One wording: what it means, its pattern, and an example diagnostic that says it.
pub(crate) struct Wording {
    pub reason: Reason,
    /// The language, `en` unless another (ISO 639-1).
    pub lang: &'static str,
    pub pattern: &'static str,
    #[cfg_attr(not(test), allow(dead_code))]
    pub example: &'static str,
}

// `WORDINGS` and `PLAINLY_UNKNOWN`, built from `data/wordings.toml` by `build.rs`, which
// refuses an entry with an unknown reason, a pattern that does not compile or match its
// example, or no example.
include!(concat!(env!("OUT_DIR"), "/wordings.rs"));

#[cfg(test)]
mod tests {
    use super::super::reason::{decide, from_text};
    use super::*;

    /// Each wording, in a small synthetic diagnostic, gives its reason; a plain wording
    /// is read as user unknown by the main table too. Entries are numbered as in
    /// `data/wordings.toml`, from 1 within their table.
    #[test]
    fn wordings_give_their_reason() {
        let mut wrong = Vec::new();
        for (table, entries) in [("wording", WORDINGS), ("plainly_unknown", PLAINLY_UNKNOWN)] {
            for (i, e) in entries.iter().enumerate() {
                let diagnostic = format!("smtp; 550 <neko@example.org>... {}", e.example);
                let got = from_text(&diagnostic);
                if got != Some(e.reason) {
                    wrong.push(format!(
                        "[[{table}]] #{} ({}, lang {}, pattern {:?}): example {:?} gives {:?}",
                        i + 1,
                        e.reason.as_str(),
                        e.lang,
                        e.pattern,
                        e.example,
                        got.map(Reason::as_str)
                    ));
                }
            }
        }
        assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    }

    /// The reason names of the data file are the names the classifier reports.
    #[test]
    fn reason_names_are_the_reported_names() {
        for (name, reason) in REASON_NAMES {
            assert_eq!(reason.as_str(), *name);
        }
    }

    /// Each plain wording (and every user-unknown wording in another language) is read as
    /// user unknown under a generic status and under a 5.7.1 one — except "access denied",
    /// which a 5.7.x status makes the policy refusal it says.
    #[test]
    fn plain_wordings_beat_a_generic_or_policy_status() {
        let other_languages = WORDINGS
            .iter()
            .filter(|e| e.reason == Reason::UserUnknown && e.lang != "en");
        for e in PLAINLY_UNKNOWN.iter().chain(other_languages) {
            for status in ["5.0.0", "5.0.910", "", "5.7.1"] {
                if status == "5.7.1" && e.pattern.contains("access denied") {
                    continue;
                }
                let diagnostic = format!("smtp; 550 {status} {}", e.example);
                assert_eq!(
                    decide(status, &diagnostic, None),
                    Reason::UserUnknown,
                    "{status} {}",
                    e.pattern
                );
            }
        }
    }

    /// Every pattern compiles on its own, so a broken entry names itself.
    #[test]
    fn every_pattern_compiles() {
        for e in WORDINGS.iter().chain(PLAINLY_UNKNOWN) {
            assert!(
                regex::bytes::Regex::new(&super::super::byte_pattern::byte_pattern(e.pattern))
                    .is_ok(),
                "{}",
                e.pattern
            );
        }
    }
}
