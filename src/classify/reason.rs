//! From a status code and a diagnostic text to a [`Reason`], and from there to hard or
//! soft. The diagnostic wording is consulted first where it is precise (a server that says
//! "mailbox full" with `5.1.1` is describing a full mailbox); the RFC 3463 code decides
//! when the wording says nothing recognisable.

use std::sync::LazyLock;

// Byte-oriented, ASCII case-insensitive matching: the wordings are ASCII, and without
// Unicode classes the automata stay small and fast.
use regex::bytes::{Regex, RegexSet, RegexSetBuilder};

use super::Reason;

/// Patterns per reason, tried in this order: the first reason with a matching pattern wins.
/// Wording that names the address's own state (unknown, moved, full) comes before wording
/// about the sender or the message, because the former is what a bounce processor acts on.
const PATTERNS: &[(Reason, &str)] = &[
    (
        Reason::MailboxFull,
        r"mailbox (is )?full|mail ?box[^.]*(full|quota)|over ?quota|quota (exceeded|full)|exceeded (storage|(the )?quota|[^.]*storage allocation)|(storage|disk) quota|insufficient (storage|mailbox)|mailfolder is full|user[^.]*(is )?over[^.]*(quota|limit)|too much mail|out of storage|account is full|full mailbox",
    ),
    (
        Reason::MesgTooBig,
        r"message (size )?(exceeds|is too (big|large)|too (big|large))|(size|length) (exceeds|limit)|too large|exceeds (the )?(maximum )?(message )?size|message size [^.]*(exceed|limit)|mail size",
    ),
    (
        Reason::NotAccept,
        r"(host|domain)( or domain| name)?(/(host|domain))? does not accept (any )?mail|null mx|accepts no mail|indicated no smtp service|not accepting (network )?messages|couldn't find a mail exchanger|no mx (record )?found|does not accept e-?mail for this domain",
    ),
    (
        Reason::Rejected,
        r"sender address rejected|sender rejected|domain of sender|sender verif(y|ication) failed|unroutable sender|sender (domain|address) (is )?(invalid|unknown|does not exist|not allowed|rejected|denied)|envelope sender|invalid sender|valid from|from address|sender[^.]*(does not|doesn't) exist|bad sender",
    ),
    (
        Reason::Filtered,
        r"recipient preferences|refused due to recipient|badrcptto|recipient has (rejected|refused)|refused by (the )?recipient",
    ),
    (
        Reason::NetworkError,
        r"host not found, try again|temporary (dns|lookup) failure",
    ),
    (
        Reason::HasMoved,
        r"has (been )?moved|address (has )?changed|no longer (at|with) this|moved to",
    ),
    (
        Reason::Suspend,
        r"(mailbox|account|user|address|recipient)( has been| is)? (temporarily )?(disabled|suspended|deactivated|inactive|locked|frozen|not active|on hold|blocked by the administrator)|is (inactive|disabled|suspended)|suspended (account|mailbox)|account[^.]*(expired|closed)|inactive (account|user|mailbox)|disabled (recipient|mailbox|account|user)|temporar\w* locked|account[^.]*locked",
    ),
    (
        Reason::HostUnknown,
        r"host (or domain name )?(not found|unknown)|host [a-z0-9.-]+ not found|invalid domain|domain may not exist|domain is not reachable|unknown host|(domain|host) name (not found|lookup failed)|domain (does not exist|not found|unknown)|no such domain|(^|\W)nxdomain|unrouteable|name or service not known|no (mx|mail exchanger|dns) |mx (record )?not found|unknown domain|domain[^.]*(does not|doesn't) exist|illegal host|host does not exist|no route to domain|no valid (mx|host)|bad destination (system|host)",
    ),
    (
        Reason::UserUnknown,
        r"user( is)? unknown|unknown (user|recipient|local.?part|address|mailbox|alias)|no such (user|mailbox|recipient|address|account|person|local user|email)|(user|mailbox|recipient|address|account|e-?mail|alias|addressee)( address)?( name)? (does not|doesn't|did not) exist|(user|mailbox|recipient|address|account|addressee)( address)? (not found|unknown|is unknown|not known|invalid|unavailable)|invalid (recipient|mailbox|address|user|destination)|not a valid (mailbox|user|recipient|address)|bad destination mailbox|(recipient|mailbox|user|address) is not valid|recipient address rejected: access denied|(is not|isn't) a (known|valid) (user|recipient|mailbox)|(does not|doesn't) have an? [^.]*account|recipient name is not recognized|invalid [^.]*userid|unknown or illegal alias|undeliverable address|no mailbox (here|by that name)|mailbox unavailable|account (that you tried to reach )?does not exist|does not exist|not listed in [^.]*directory|no account|(user|recipient) not (found|local)|unknown in (virtual|local|relay)|address lookup failed|no valid recipients|invalid mailbox|was not found|dosya bulunamadi|mailbox not found|unrouteable address",
    ),
    (
        Reason::AuthFailure,
        r"\b(spf|dkim|dmarc)\b|sender policy framework|authentication (checks? )?(failed|required)|not authenticated",
    ),
    (
        Reason::Blocked,
        r"block ?list|black ?list|blocked|(^|\W)(rbl|dnsbl|spamhaus|spamcop|barracuda)|reputation|reverse dns|ptr record|(client|your) (host|ip)|not allowed to send|access denied|connection refused|refused to talk|banned|listed (at|on|in)|deny(ing)? (connection|access)|poor [^.]*reputation|rejected[^.]*(ip|host)",
    ),
    (
        Reason::SpamDetected,
        r"spam|junk|bulk mail|content (rejected|filter)|message content|unsolicited|virus|malware|suspicious|phishing",
    ),
    (
        Reason::Filtered,
        r"filter|refused by (the )?recipient|does not accept (mail|e-?mail|messages)|not accept(ing)? (mail|e-?mail|messages)|rule|(recipient|user) (has )?(rejected|refused)|not authori[sz]ed to (receive|send)|restricted|only accepts",
    ),
    (
        Reason::Expired,
        r"retry time(out)? (not reached|exceeded)|too long in (the )?queue|(message |delivery (time |period )?)?expired|gave up|giving up|could not be delivered (within|for)|delivery time|undeliverable for|time limit|no (response|answer) [^.]*(for|after)|has not been delivered|not (yet )?been delivered|delivery attempts? (will continue|failed for)|timeout|timed out",
    ),
    (
        Reason::TooManyConn,
        r"too many (connections|messages|recipients|sessions|concurrent)|rate limit|throttl|try (again )?later|temporarily deferred",
    ),
    (
        Reason::PolicyViolation,
        r"policy|not permitted|prohibited|not allowed|relay(ing)? (denied|not permitted|access denied)",
    ),
    (
        Reason::NetworkError,
        r"mail loop|loops back|too many hops|hop count|network|connection (lost|reset|timed out)|no route|could not connect|unable to connect|lost connection|dns (error|failure)|temporary (lookup )?failure",
    ),
    (
        Reason::SystemError,
        r"system (error|failure|config)|internal (server )?error|configuration error|local error|server error|disk (full|space)|insufficient system storage|out of memory|i/o error|service (not available|unavailable)|resources? (temporarily )?unavailable",
    ),
];

static SET: LazyLock<RegexSet> = LazyLock::new(|| {
    RegexSetBuilder::new(PATTERNS.iter().map(|(_, p)| format!("(?i-u){p}")))
        // Room for the lazy DFA of the whole set, so it is built once and not thrown
        // away and rebuilt on every long diagnostic.
        .dfa_size_limit(16 << 20)
        .build()
        .unwrap_or_else(|_| RegexSet::empty())
});

/// Wordings that say the recipient's mailbox does not exist so plainly that no SMTP
/// context is needed to believe them (they are not the generic "user unknown" that
/// content filters also use).
static PLAINLY_UNKNOWN: LazyLock<Option<Regex>> = LazyLock::new(|| {
    Regex::new(
        r"(?i-u)recipient ?not ?found|mailbox unavailable|not listed in [^.]*directory|recipient name is not recognized|invalid final delivery|invalid recipient|address (couldn't|could not) be found|address not found|unknown user:|no mailbox|unknown recipient|recipient address rejected: access denied",
    )
    .ok()
});

/// The reason the wording gives, if any.
pub(crate) fn from_text(text: &str) -> Option<Reason> {
    if text.is_empty() {
        return None;
    }
    let m = SET.matches(text.as_bytes());
    m.iter().next().map(|i| PATTERNS[i].0)
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

/// The first SMTP command a report names as the one refused (`in reply to RCPT TO
/// command`, `after end of data`, `>>> DATA`, `[RCPT_TO]`, ...).
pub(crate) fn find_command(text: &str) -> Option<Command> {
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
    let reason = match (by_text, by_code) {
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
        assert_eq!(SET.len(), PATTERNS.len());
        assert!(COMMAND.is_some());
        assert!(PLAINLY_UNKNOWN.is_some());
    }

    #[test]
    fn wording_and_codes() {
        assert_eq!(decide("5.1.1", "", None), Reason::UserUnknown);
        assert_eq!(
            decide("5.0.0", "550 5.2.2 Mailbox full", None),
            Reason::MailboxFull
        );
        assert_eq!(
            decide("5.0.0", "550 No such user here", None),
            Reason::Filtered
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
