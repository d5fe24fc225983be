//! From a status code and a diagnostic text to a [`Reason`], and from there to hard or
//! soft. The diagnostic wording is consulted first where it is precise (a server that says
//! "mailbox full" with `5.1.1` is describing a full mailbox); the RFC 3463 code decides
//! when the wording says nothing recognisable.

use std::sync::LazyLock;

use regex::RegexSet;

use super::Reason;

/// Patterns per reason, tried in this order: the first reason with a matching pattern wins.
/// Wording that names the address's own state (unknown, moved, full) comes before wording
/// about the sender or the message, because the former is what a bounce processor acts on.
const PATTERNS: &[(Reason, &str)] = &[
    (
        Reason::MailboxFull,
        r"mailbox (is )?full|mail ?box.{0,40}(full|quota)|over ?quota|quota (exceeded|full)|exceeded (storage|(the )?quota|.{0,20}storage allocation)|(storage|disk) quota|insufficient (storage|mailbox)|mailfolder is full|user.{0,20}(is )?over.{0,10}(quota|limit)|too much mail|out of storage|account is full|full mailbox",
    ),
    (
        Reason::MesgTooBig,
        r"message (size )?(exceeds|is too (big|large)|too (big|large))|(size|length) (exceeds|limit)|too large|exceeds (the )?(maximum )?(message )?size|message size .{0,30}(exceed|limit)|mail size",
    ),
    (
        Reason::HasMoved,
        r"has (been )?moved|address (has )?changed|no longer (at|with) this|moved to",
    ),
    (
        Reason::Suspend,
        r"(mailbox|account|user|address|recipient)( has been| is)? (temporarily )?(disabled|suspended|deactivated|inactive|locked|frozen|not active|on hold|blocked by the administrator)|is (inactive|disabled|suspended)|suspended (account|mailbox)|account.{0,20}(expired|closed)|inactive (account|user|mailbox)",
    ),
    (
        Reason::HostUnknown,
        r"host (or domain name )?(not found|unknown)|unknown host|(domain|host) name (not found|lookup failed)|domain (does not exist|not found|unknown)|no such domain|(^|\W)nxdomain|unrouteable|name or service not known|no (mx|mail exchanger|dns) |mx (record )?not found|unknown domain|domain.{0,40}(does not|doesn't) exist|illegal host|host does not exist|no route to domain|no valid (mx|host)|bad destination (system|host)",
    ),
    (
        Reason::UserUnknown,
        r"user( is)? unknown|unknown (user|recipient|local.?part|address|mailbox|alias)|no such (user|mailbox|recipient|address|account|person|local user|email)|(user|mailbox|recipient|address|account|e-?mail|alias|addressee)( address)?( name)? (does not|doesn't|did not) exist|(user|mailbox|recipient|address|account|addressee)( address)? (not found|unknown|is unknown|not known|invalid|unavailable)|invalid (recipient|mailbox|address|user|destination)|not a valid (mailbox|user|recipient|address)|bad destination mailbox|(recipient|mailbox|user|address) (rejected|is not valid)|(is not|isn't) a (known|valid) (user|recipient|mailbox)|does not have an? .{0,30}account|unknown or illegal alias|undeliverable address|no mailbox (here|by that name)|mailbox unavailable|recipient address rejected|account (that you tried to reach )?does not exist|does not exist|not listed in|no account|(user|recipient) not (found|local)|not our customer|unknown in (virtual|local|relay)|address lookup failed|no valid recipients|invalid mailbox|was not found|dosya bulunamadi|mailbox not found|unrouteable address",
    ),
    (
        Reason::AuthFailure,
        r"\b(spf|dkim|dmarc)\b|sender policy framework|authentication (failed|required)|not authenticated",
    ),
    (
        Reason::Blocked,
        r"block ?list|black ?list|blocked|(^|\W)(rbl|dnsbl|spamhaus|spamcop|barracuda)|reputation|reverse dns|ptr record|(client|your) (host|ip)|not allowed to send|access denied|connection refused|refused to talk|banned|listed (at|on|in)|deny(ing)? (connection|access)|poor .{0,10}reputation|rejected.{0,20}(ip|host)",
    ),
    (
        Reason::SpamDetected,
        r"spam|junk|bulk mail|content (rejected|filter)|message content|unsolicited|virus|malware|suspicious|phishing",
    ),
    (
        Reason::Rejected,
        r"sender (address |domain )?(rejected|verify|verification|denied|refused|unknown|not)|domain of sender|envelope (sender|from)|from address|sender (is )?(blocked|invalid)|mail from|return.?path|bad sender|sender.{0,30}does not exist",
    ),
    (
        Reason::Filtered,
        r"filter|refused by (the )?recipient|does not accept (mail|e-?mail|messages)|not accept(ing)? (mail|e-?mail|messages)|rule|(recipient|user) (has )?(rejected|refused)|not authori[sz]ed to (receive|send)|restricted|only accepts",
    ),
    (
        Reason::Expired,
        r"retry time(out)? (not reached|exceeded)|too long in (the )?queue|(message |delivery (time |period )?)?expired|gave up|giving up|could not be delivered (within|for)|delivery time|undeliverable for|time limit|no (response|answer) .{0,20}(for|after)|has not been delivered|not (yet )?been delivered|delivery attempts? (will continue|failed for)|timeout|timed out",
    ),
    (
        Reason::NotAccept,
        r"does not accept|null mx|accepts no mail|no mail(box)? (is )?accepted",
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
    RegexSet::new(PATTERNS.iter().map(|(_, p)| format!("(?i){p}")))
        .unwrap_or_else(|_| RegexSet::empty())
});

/// The reason the wording gives, if any.
pub(crate) fn from_text(text: &str) -> Option<Reason> {
    if text.is_empty() {
        return None;
    }
    let m = SET.matches(text);
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
        (2, 1) => Reason::Suspend,
        (2, 2) => Reason::MailboxFull,
        (2, 3) => Reason::MesgTooBig,
        (2, 0) => Reason::Filtered,
        (3, 4) => Reason::MesgTooBig,
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

/// The reason for one recipient, from what the report says about it.
pub(crate) fn decide(status: &str, diagnostic: &str) -> Reason {
    let by_text = from_text(diagnostic);
    let by_code = from_status(status);
    match (by_text, by_code) {
        (Some(t), _) => t,
        (None, Some(c)) => c,
        (None, None) => Reason::Undefined,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_compile() {
        assert_eq!(SET.len(), PATTERNS.len());
    }

    #[test]
    fn wording_and_codes() {
        assert_eq!(decide("5.1.1", ""), Reason::UserUnknown);
        assert_eq!(
            decide("5.0.0", "550 5.2.2 Mailbox full"),
            Reason::MailboxFull
        );
        assert_eq!(
            decide("5.0.0", "550 No such user here"),
            Reason::UserUnknown
        );
        assert_eq!(decide("4.4.7", ""), Reason::Expired);
        assert_eq!(
            decide("", "Host or domain name not found"),
            Reason::HostUnknown
        );
        assert_eq!(decide("", "something odd"), Reason::Undefined);
        assert!(Reason::UserUnknown.is_hard(true));
        assert!(!Reason::MailboxFull.is_hard(true));
        assert!(Reason::NotAccept.is_hard(true));
        assert!(!Reason::NotAccept.is_hard(false));
    }
}
