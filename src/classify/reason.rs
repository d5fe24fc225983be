//! From a status code and a diagnostic text to a [`Reason`], and from there to hard or
//! soft. The diagnostic wording is consulted first where it is precise (a server that says
//! "mailbox full" with `5.1.1` is describing a full mailbox); the RFC 3463 code decides
//! when the wording says nothing recognisable.

use std::sync::LazyLock;

// Byte-oriented, ASCII case-insensitive matching: the wordings are ASCII, and without
// Unicode classes the automata stay small and fast.
use regex::bytes::{Regex, RegexSet, RegexSetBuilder};

use super::byte_pattern::byte_pattern;
use super::text::contains_ci;
use super::{Reason, wordings};

/// The wordings of [`wordings::WORDINGS`], one alternation per run of entries with the
/// same reason, so the set stays as small as the reasons are many.
static GROUPS: LazyLock<Vec<(Reason, String)>> = LazyLock::new(|| {
    let mut groups: Vec<(Reason, String)> = Vec::new();
    for e in wordings::WORDINGS {
        match groups.last_mut() {
            Some((r, p)) if *r == e.reason => {
                p.push('|');
                p.push_str(&byte_pattern(e.pattern));
            }
            _ => groups.push((e.reason, byte_pattern(e.pattern))),
        }
    }
    groups
});

static SET: LazyLock<RegexSet> = LazyLock::new(|| {
    RegexSetBuilder::new(GROUPS.iter().map(|(_, p)| format!("(?i-u){p}")))
        // Room for the lazy DFA of the whole set, so it is built once and not thrown
        // away and rebuilt on every long diagnostic.
        .dfa_size_limit(16 << 20)
        .build()
        .unwrap_or_else(|_| RegexSet::empty())
});

/// The plain user-unknown wordings: the English ones listed as such, and every
/// user-unknown wording in another language (a provider's own report in its own
/// language, never a content filter's disguise, which speaks SMTP English).
static PLAINLY_UNKNOWN: LazyLock<Option<Regex>> = LazyLock::new(|| {
    let alternation: Vec<String> = wordings::PLAINLY_UNKNOWN
        .iter()
        .chain(
            wordings::WORDINGS
                .iter()
                .filter(|e| e.reason == Reason::UserUnknown && e.lang != "en"),
        )
        .map(|e| byte_pattern(e.pattern))
        .collect();
    Regex::new(&format!("(?i-u){}", alternation.join("|"))).ok()
});

/// The reason the wording gives, if any.
pub(crate) fn from_text(text: &str) -> Option<Reason> {
    if text.is_empty() {
        return None;
    }
    let m = SET.matches(text.as_bytes());
    m.iter().next().map(|i| GROUPS[i].0)
}

/// The reason an RFC 3463 code gives on its own (`5.1.1` → user unknown), if it is precise.
pub(crate) fn from_status(status: &str) -> Option<Reason> {
    let mut it = status.split('.');
    let class = it.next()?;
    let subject: u16 = it.next()?.parse().ok()?;
    let detail: u16 = it.next()?.parse().ok()?;
    if class == "2" {
        return Some(Reason::Delivered);
    }
    Some(match (subject, detail) {
        (1, 1) | (1, 3) => Reason::UserUnknown,
        (1, 2) => Reason::HostUnknown,
        (1, 6) => Reason::HasMoved,
        (1, 7) | (1, 8) => Reason::Rejected,
        (1, 10) => Reason::NotAccept,
        // Other address statuses (x.1.0, and vendors' extended x.1.nnn) are about the
        // recipient address.
        (1, 0) | (1, 4) | (1, 11..) => Reason::UserUnknown,
        (2, 1) => Reason::Suspend,
        (2, 2) => Reason::MailboxFull,
        (2, 3) => Reason::MesgTooBig,
        (2, 0) => Reason::Filtered,
        (3, 4) => Reason::MesgTooBig,
        (3, 2) => Reason::NotAccept,
        (3, _) | (2, 4) => Reason::SystemError,
        (4, 7) => Reason::Expired,
        (4, _) => Reason::NetworkError,
        (5, 3) => Reason::TooManyConn,
        (6, _) => Reason::SpamDetected,
        (7, 1) => Reason::Blocked,
        (7, 23..=27) => Reason::AuthFailure,
        (7, _) => Reason::PolicyViolation,
        _ => return None,
    })
}

/// The SMTP command the remote server was answering when it refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Command {
    Connect,
    Mail,
    Rcpt,
    Data,
}

static COMMAND: LazyLock<Option<Regex>> = LazyLock::new(|| {
    Regex::new(
        r"(?i-u)(?:in reply to|after|did not like our|following|smtp command:?|step:|>>>)\s*(?:the\s+)?(rcpt|mail|end of data|final data|data|initial connection|connect|helo|ehlo)\b|\[(rcpt_to|mail_from|data)\]|smtp:(rcpt|mail|data)\b|\b(rcpt to|mail from) response|does not like (recipient)",
    )
    .ok()
});

/// A refusal that names a block list the sending host is on: about the sender, whatever it
/// says about the mailbox ("Mailbox unavailable. Your IP address ... is blacklisted").
static SENDER_LISTED: LazyLock<Option<Regex>> = LazyLock::new(|| {
    Regex::new(r"(?i-u)black ?list|block ?list|\b(rbl|dnsbl|spamhaus|spamcop|barracuda)\b").ok()
});

/// A reply that echoes the refused command: `550 RCPT TO:<a@b> User unknown`.
static ECHOED_RCPT: LazyLock<Option<Regex>> = LazyLock::new(|| {
    Regex::new(r"(?i-u)\b[45][0-9][0-9][ -](?:[45]\.[0-9]{1,3}\.[0-9]{1,3} )?rcpt to:").ok()
});

static TRANSCRIPT_GATE: LazyLock<Option<Regex>> =
    LazyLock::new(|| Regex::new(r"(?i-u)rcpt to:|mail from:").ok());

static TRANSCRIPT: LazyLock<Option<Regex>> = LazyLock::new(|| {
    Regex::new(r"(?i-u)(rcpt to:|mail from:|(?:>>>|-->)\s*data\b)|(?:^|[\s:])([45][0-9][0-9])[\s-]")
        .ok()
});

/// In an SMTP transcript (`>>> RCPT To:<a@b>` then `<<< 550 ...`, MDaemon's `-->`/`<--`,
/// or `RCPT TO:<a@b> ... 550 ...` on one line) the refused command is the last one sent
/// before the first 4xx/5xx reply.
fn transcript_command(text: &str) -> Option<Command> {
    let re = TRANSCRIPT.as_ref()?;
    let mut last = None;
    for m in re.find_iter(text.as_bytes()) {
        let t = m.as_bytes();
        let first = t.iter().find(|b| !b.is_ascii_whitespace() && **b != b':');
        match first.map(u8::to_ascii_lowercase) {
            Some(b'r') => last = Some(Command::Rcpt),
            Some(b'm') => last = Some(Command::Mail),
            Some(b'>' | b'-') => last = Some(Command::Data),
            _ if last.is_some() => return last,
            _ => {}
        }
    }
    None
}

/// The first SMTP command a report names as the one refused (`in reply to RCPT TO
/// command`, `after end of data`, `>>> DATA`, `[RCPT_TO]`, ...).
pub(crate) fn find_command(text: &str) -> Option<Command> {
    // Most diagnostics name no command: a cheap test keeps the transcript scans off them.
    if TRANSCRIPT_GATE
        .as_ref()
        .is_some_and(|g| g.is_match(text.as_bytes()))
    {
        if let Some(c) = transcript_command(text) {
            return Some(c);
        }
        if ECHOED_RCPT
            .as_ref()
            .is_some_and(|re| re.is_match(text.as_bytes()))
        {
            return Some(Command::Rcpt);
        }
    }
    let re = COMMAND.as_ref()?;
    let caps = re.captures(text.as_bytes())?;
    let verb = caps
        .iter()
        .skip(1)
        .flatten()
        .next()?
        .as_bytes()
        .to_ascii_lowercase();
    Some(match verb.as_slice() {
        b"rcpt" | b"rcpt_to" | b"rcpt to" | b"recipient" => Command::Rcpt,
        b"mail" | b"mail_from" | b"mail from" => Command::Mail,
        b"initial connection" | b"connect" | b"helo" | b"ehlo" => Command::Connect,
        _ => Command::Data,
    })
}

/// The reason for one recipient, from what the report says about it: its status code,
/// the diagnostic wording and the SMTP command that was refused.
///
/// "User unknown" is believed only when the status says so (`x.1.1`) or when it was the
/// answer to `RCPT TO`; said later (after `DATA`) or with neither a command nor an
/// address status to support it, it is how content filters disguise a refusal, and
/// counts as filtered (Sisimai reads it the same way). A refusal of `MAIL FROM` is about the sender, never the recipient.
pub(crate) fn decide(status: &str, diagnostic: &str, command: Option<Command>) -> Reason {
    let by_text = from_text(diagnostic);
    let by_code = from_status(status);
    if command == Some(Command::Mail) {
        return match by_text {
            Some(
                t @ (Reason::Blocked
                | Reason::SpamDetected
                | Reason::PolicyViolation
                | Reason::AuthFailure
                | Reason::TooManyConn
                | Reason::SystemError
                | Reason::NetworkError
                | Reason::Expired),
            ) => t,
            _ => Reason::Rejected,
        };
    }
    if by_code == Some(Reason::Rejected) {
        return Reason::Rejected;
    }
    // Unless the status itself says the address is unknown, a refusal naming a block list
    // is about the sending host.
    if by_text == Some(Reason::UserUnknown)
        && by_code != Some(Reason::UserUnknown)
        && SENDER_LISTED
            .as_ref()
            .is_some_and(|re| re.is_match(diagnostic.as_bytes()))
    {
        return Reason::Blocked;
    }
    let reason = match (by_text, by_code) {
        // "Access denied" is how Microsoft's edge refuses an unknown recipient (5.4.1),
        // but under a 5.7.x status it is the policy refusal it says.
        (
            Some(Reason::UserUnknown),
            Some(c @ (Reason::Blocked | Reason::PolicyViolation | Reason::SpamDetected)),
        ) if contains_ci(diagnostic, "access denied") => c,
        (Some(Reason::UserUnknown), Some(Reason::UserUnknown)) => Reason::UserUnknown,
        (Some(Reason::UserUnknown), _) if command == Some(Command::Rcpt) => Reason::UserUnknown,
        (
            Some(Reason::UserUnknown),
            Some(Reason::HostUnknown | Reason::NotAccept | Reason::HasMoved),
        ) => Reason::UserUnknown,
        (Some(Reason::UserUnknown), _)
            if PLAINLY_UNKNOWN
                .as_ref()
                .is_some_and(|re| re.is_match(diagnostic.as_bytes())) =>
        {
            Reason::UserUnknown
        }
        (Some(Reason::UserUnknown), _) => Reason::Filtered,
        (Some(t), _) => t,
        (None, Some(c)) => c,
        (None, None) => Reason::Undefined,
    };
    // A name that could not be resolved *for now* is a network problem, not an unknown
    // host.
    if reason == Reason::HostUnknown && status.starts_with('4') {
        return Reason::NetworkError;
    }
    reason
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_compile() {
        assert_eq!(SET.len(), GROUPS.len());
        assert!(COMMAND.is_some());
        assert!(TRANSCRIPT.is_some() && TRANSCRIPT_GATE.is_some());
        assert!(PLAINLY_UNKNOWN.is_some());
        assert!(SENDER_LISTED.is_some() && ECHOED_RCPT.is_some());
    }

    #[test]
    fn transcripts_name_the_refused_command() {
        let t = ">>> MAIL From:<a@example.org> SIZE=10 <<< 250 ok >>> RCPT To:<b@example.net> <<< 550 5.1.1 unknown";
        assert_eq!(find_command(t), Some(Command::Rcpt));
        let t = "--> MAIL From:<a@example.org> <-- 553 sender rejected";
        assert_eq!(find_command(t), Some(Command::Mail));
        let t = "RCPT TO:<b@example.net> 250 ok --> DATA <-- 354 go --> . <-- 554 spam";
        assert_eq!(find_command(t), Some(Command::Data));
        assert_eq!(
            find_command("host x said: 550 no (in reply to RCPT TO command)"),
            Some(Command::Rcpt)
        );
        // A reply that echoes the command it refuses.
        assert_eq!(
            find_command("550 RCPT TO:<b@example.net> User unknown"),
            Some(Command::Rcpt)
        );
    }

    #[test]
    fn wording_and_codes() {
        assert_eq!(decide("5.1.1", "", None), Reason::UserUnknown);
        assert_eq!(
            decide("5.0.0", "550 5.2.2 Mailbox full", None),
            Reason::MailboxFull
        );
        // A generic status and a vague wording with nothing to place it at RCPT TO: how
        // content filters disguise a refusal (Sisimai reads it the same way).
        assert_eq!(
            decide("5.0.0", "550 No such user here", None),
            Reason::Filtered
        );
        // A generic status and a plain wording: the wording decides.
        assert_eq!(
            decide("5.0.910", "550 Invalid user address", None),
            Reason::UserUnknown
        );
        assert_eq!(
            decide(
                "",
                "550 Requested action not taken: mailbox unavailable",
                None
            ),
            Reason::UserUnknown
        );
        assert_eq!(
            decide("5.0.0", "550 user unknown", Some(Command::Rcpt)),
            Reason::UserUnknown
        );
        assert_eq!(
            decide("5.0.0", "550 user unknown", Some(Command::Data)),
            Reason::Filtered
        );
        // A specific wording beats a policy status; a vague one does not.
        assert_eq!(
            decide("5.7.1", "550 5.7.1 Invalid recipient", None),
            Reason::UserUnknown
        );
        // Full mailboxes and policy blocks worded "rejected" stay soft.
        assert_eq!(
            decide(
                "5.0.0",
                "550 Recipient address rejected: mailbox full",
                None
            ),
            Reason::MailboxFull
        );
        assert_eq!(
            decide("5.0.0", "550 Recipient address rejected: Greylisted", None),
            Reason::TooManyConn
        );
        assert_eq!(
            decide(
                "5.7.1",
                "550 5.7.1 Recipient address rejected: policy",
                None
            ),
            Reason::PolicyViolation
        );
        // A block list named beside mailbox wording: the sending host is refused.
        assert_eq!(
            decide(
                "5.0.0",
                "550 5.2.1 Mailbox unavailable. Your IP address 192.0.2.1 is blacklisted using RBL",
                None
            ),
            Reason::Blocked
        );
        assert_eq!(
            decide("5.1.1", "550 5.1.1 user unknown (spamhaus checked)", None),
            Reason::UserUnknown
        );
        assert_eq!(decide("4.4.7", "", None), Reason::Expired);
        assert_eq!(
            decide("", "Host or domain name not found", None),
            Reason::HostUnknown
        );
        assert_eq!(decide("", "something odd", None), Reason::Undefined);
        assert!(Reason::UserUnknown.is_hard(true));
        assert!(!Reason::MailboxFull.is_hard(true));
        assert!(Reason::NotAccept.is_hard(true));
        assert!(!Reason::NotAccept.is_hard(false));
    }
}
