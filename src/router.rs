//! The recipient router (docs/behaviour.md §2): which RCPT TO addresses we accept and what they mean.
//!
//! `un-{id}-{code}@{domain}` is a list-unsubscribe request, `bn-{id}-{code}@{domain}` a
//! bounce; `postmaster@{domain}` is accepted and discarded; everything else is refused so
//! the server can never be a relay. Ids and codes are checked against the configured
//! patterns here, so nothing that reaches the API client can change the request path.

use regex::Regex;

use crate::config::Settings;
use crate::reply::{Reply, printable};

/// What a `un`/`bn` recipient asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecipientKind {
    Unsubscribe,
    Bounce,
}

impl RecipientKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RecipientKind::Unsubscribe => "un",
            RecipientKind::Bounce => "bn",
        }
    }
}

impl From<RecipientKind> for crate::outcome::MessageKind {
    fn from(kind: RecipientKind) -> Self {
        match kind {
            RecipientKind::Unsubscribe => crate::outcome::MessageKind::Un,
            RecipientKind::Bounce => crate::outcome::MessageKind::Bn,
        }
    }
}

/// An accepted `un`/`bn` recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recipient {
    pub kind: RecipientKind,
    pub id: String,
    pub code: String,
    /// The address as the client gave it.
    pub address: String,
}

/// Where an accepted recipient goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    Notify(Recipient),
    /// `postmaster@` one of our domains: logged and discarded.
    Postmaster,
}

/// Why a recipient was refused; the reply says it to the client, the reason counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Our domain, but no such local part (or a malformed id or code).
    Unknown,
    /// Not one of our domains: we are not a relay.
    NotOurDomain,
    /// `un-` while list-unsubscribe by email is disabled.
    Disabled,
}

impl Refusal {
    pub fn reply(self, address: &str) -> Reply {
        let address = printable(address);
        match self {
            Refusal::Unknown => {
                Reply::new(550, "5.1.1", format!("<{address}>: no such recipient here"))
            }
            Refusal::NotOurDomain => Reply::new(
                550,
                "5.7.1",
                format!(
                    "<{address}>: relay access denied, we only receive mail for our own domains"
                ),
            ),
            Refusal::Disabled => Reply::new(
                550,
                "5.7.1",
                format!("<{address}>: unsubscribing by email is not enabled here"),
            ),
        }
    }
}

/// Decides RCPT TO; built once from the settings.
#[derive(Debug, Clone)]
pub struct Router {
    domains: Vec<String>,
    id_regex: Option<Regex>,
    code_regex: Option<Regex>,
    unsubscribe_enabled: bool,
}

impl Router {
    pub fn new(settings: &Settings) -> Router {
        let s = &settings.inbound_smtp_server;
        Router {
            domains: s.domains.clone(),
            id_regex: s.id_regex.clone(),
            code_regex: s.code_regex.clone(),
            unsubscribe_enabled: settings.list_unsubscribe_by_email.enabled,
        }
    }

    /// Routes one RCPT TO address (without angle brackets) or gives the refusal.
    pub fn route(&self, address: &str) -> Result<Route, Refusal> {
        let unknown = || Refusal::Unknown;
        let Some((local, domain)) = address.rsplit_once('@') else {
            return Err(unknown());
        };
        let domain = domain.to_ascii_lowercase();
        if !self.domains.contains(&domain) {
            return Err(Refusal::NotOurDomain);
        }
        if local.eq_ignore_ascii_case("postmaster") {
            return Ok(Route::Postmaster);
        }
        let (kind, rest) = if let Some(rest) = local.strip_prefix("un-") {
            (RecipientKind::Unsubscribe, rest)
        } else if let Some(rest) = local.strip_prefix("bn-") {
            (RecipientKind::Bounce, rest)
        } else {
            return Err(unknown());
        };
        // The id stops at the first '-' after the prefix and must not be empty; the code
        // is the rest (docs/behaviour.md §2: `^(un|bn)-(.+?)-(.*)$`).
        let Some((id, code)) = rest.split_once('-') else {
            return Err(unknown());
        };
        // "." and ".." would be resolved away by any URL parser, even percent-encoded.
        if id.is_empty()
            || id == "."
            || id == ".."
            || !self.id_regex.as_ref().is_none_or(|r| r.is_match(id))
            || !self.code_regex.as_ref().is_none_or(|r| r.is_match(code))
        {
            return Err(unknown());
        }
        if kind == RecipientKind::Unsubscribe && !self.unsubscribe_enabled {
            return Err(Refusal::Disabled);
        }
        Ok(Route::Notify(Recipient {
            kind,
            id: id.to_string(),
            code: code.to_string(),
            address: address.to_string(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn router() -> Router {
        let s = Settings::from_toml_str(
            "[inbound_smtp_server]\ndomain = 'notify.example, Other.Example'\n",
        )
        .unwrap();
        Router::new(&s)
    }

    #[test]
    fn un_and_bn() {
        let r = router();
        assert_eq!(
            r.route("un-5f3e-12345@notify.example"),
            Ok(Route::Notify(Recipient {
                kind: RecipientKind::Unsubscribe,
                id: "5f3e".into(),
                code: "12345".into(),
                address: "un-5f3e-12345@notify.example".into()
            }))
        );
        match r.route("bn-1-abc-def@OTHER.example") {
            Ok(Route::Notify(rc)) => {
                assert_eq!(
                    (rc.kind, rc.id.as_str(), rc.code.as_str()),
                    (RecipientKind::Bounce, "1", "abc-def")
                )
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(r.route("bn-1-@notify.example").map(|_| ()), Ok(()));
        assert_eq!(r.route("PostMaster@notify.example"), Ok(Route::Postmaster));
    }

    #[test]
    fn refusals() {
        let r = router();
        for a in [
            "undo-1-12345@notify.example",
            "un-1-12345@elsewhere.example",
            "postmaster@elsewhere.example",
            "un--12345@notify.example",
            "un-1@notify.example",
            "un-..-1@notify.example",
            "bn-.-1@notify.example",
            "un-a/b-1@notify.example",
            "un-..%2F-1@notify.example",
            "un-1-12?45@notify.example",
            "un-1-1#2@notify.example",
            "\"un-1-1\"@notify.example",
            "nobody@notify.example",
            "un-1-1@notify.example@evil.example",
        ] {
            let e = r.route(a).expect_err(a).reply(a);
            assert!(e.code == 550, "{a}: {e}");
        }
    }

    #[test]
    fn refusals_echo_the_address_as_short_printable_ascii() {
        let r = router();
        let long = format!("{}\u{e9}@elsewhere.example", "x".repeat(480));
        let reply = r.route(&long).expect_err("foreign").reply(&long);
        let wire = reply.to_wire();
        assert!(wire.len() <= 512, "{wire}");
        assert!(
            wire.trim_end().bytes().all(|b| (0x20..0x7f).contains(&b)),
            "{wire}"
        );
    }
}
