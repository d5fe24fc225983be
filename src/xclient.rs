//! The XCLIENT command (Postfix's SMTP extension) as sent by a trusted front end such as
//! nginx's `mail` module with `xclient on`: it tells us who the real client is, so that the
//! address we log and rate-limit is the client's, not the proxy's.
//!
//! This module parses the command's arguments into an [`XclientUpdate`] and knows the replies
//! that go with it. The session decides whether the peer may send XCLIENT at all (only from
//! `inbound_smtp_server.trusted_proxies` on a listener with `xclient = true`, judged by the TCP
//! or PROXY-protocol peer, never by an address an earlier XCLIENT set) and, after a successful
//! one, does what Postfix does: resets the session to its initial state (the client must send
//! EHLO again) and answers with a fresh `220` greeting.
//!
//! The syntax, from Postfix's XCLIENT_README:
//!
//! ```text
//! xclient-command = XCLIENT 1*( SP attribute-name"="attribute-value )
//! attribute-name  = ( NAME | ADDR | PORT | PROTO | HELO | LOGIN | DESTADDR | DESTPORT )
//! attribute-value = xtext
//! ```
//!
//! Values are xtext (RFC 3461: `+XX` stands for the byte 0xXX). `[UNAVAILABLE]` means the
//! front end does not know the value, `[TEMPUNAVAIL]` that a name lookup failed for now;
//! an IPv6 address is written `IPV6:2001:db8::1`. Those markers are case-insensitive.
//! nginx sends, depending on its version,
//! `XCLIENT ADDR=192.0.2.1 LOGIN=user NAME=[UNAVAILABLE]` and then either the client's
//! `EHLO` or `XCLIENT PROTO=ESMTP HELO=client.example`.

use std::net::{IpAddr, Ipv6Addr};

use crate::reply::Reply;

/// The keyword line to add to the EHLO reply for a client allowed to send XCLIENT.
pub const EHLO_KEYWORD: &str = "XCLIENT ADDR NAME PORT PROTO HELO LOGIN DESTADDR DESTPORT";

/// Longest NAME, HELO or LOGIN value accepted (Postfix's limit for names).
pub const MAX_VALUE_LEN: usize = 255;

/// One attribute's value: known, or one of the two "don't know" markers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value<T> {
    Known(T),
    /// `[UNAVAILABLE]`: the front end has no such information.
    Unavailable,
    /// `[TEMPUNAVAIL]`: the front end could not find out for now (a DNS lookup failed).
    TempUnavailable,
}

impl<T> Value<T> {
    /// The value if it is known.
    pub fn known(&self) -> Option<&T> {
        match self {
            Value::Known(v) => Some(v),
            Value::Unavailable | Value::TempUnavailable => None,
        }
    }
}

/// `PROTO=`: whether the real client greeted with HELO or EHLO.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    Smtp,
    Esmtp,
}

/// The attributes one XCLIENT command sets. `None`: the command did not mention it, so the
/// session keeps what it had. When an attribute appears twice, the last one counts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct XclientUpdate {
    /// `ADDR=`: the real client's IP address.
    pub addr: Option<Value<IpAddr>>,
    /// `PORT=`: the real client's TCP port.
    pub port: Option<Value<u16>>,
    /// `NAME=`: the real client's host name (from reverse DNS).
    pub name: Option<Value<String>>,
    /// `HELO=`: what the real client said in HELO/EHLO.
    pub helo: Option<Value<String>>,
    /// `PROTO=`: SMTP or ESMTP.
    pub proto: Option<Value<Proto>>,
    /// `LOGIN=`: the name the client authenticated as at the front end (recorded, never used
    /// to grant anything: we offer no AUTH).
    pub login: Option<Value<String>>,
    /// `DESTADDR=`: the address the client connected to at the front end.
    pub dest_addr: Option<Value<IpAddr>>,
    /// `DESTPORT=`: the port the client connected to at the front end.
    pub dest_port: Option<Value<u16>>,
}

impl XclientUpdate {
    /// The client address the command sets, if it sets a known one.
    pub fn client_addr(&self) -> Option<IpAddr> {
        self.addr.as_ref().and_then(|v| v.known().copied())
    }

    /// Applies the update to what a session knows about its client. A known value replaces
    /// the old one; `[UNAVAILABLE]`/`[TEMPUNAVAIL]` clears it, except the address, which falls
    /// back to the connection's own peer (something must be rate-limited).
    pub fn apply_to(&self, client: &mut ClientInfo) {
        if let Some(addr) = &self.addr {
            client.addr = addr.known().copied().unwrap_or(client.peer);
        }
        fn set<T: Clone>(slot: &mut Option<T>, update: &Option<Value<T>>) {
            if let Some(v) = update {
                *slot = v.known().cloned();
            }
        }
        set(&mut client.port, &self.port);
        set(&mut client.name, &self.name);
        set(&mut client.helo, &self.helo);
        set(&mut client.proto, &self.proto);
        set(&mut client.login, &self.login);
    }
}

/// What a session knows about its client, as XCLIENT can change it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientInfo {
    /// The address the connection came from (after the PROXY protocol, if any).
    pub peer: IpAddr,
    /// The address to log and rate-limit.
    pub addr: IpAddr,
    pub port: Option<u16>,
    pub name: Option<String>,
    pub helo: Option<String>,
    pub proto: Option<Proto>,
    pub login: Option<String>,
}

impl ClientInfo {
    /// A client known only by its connection's peer address.
    pub fn new(peer: IpAddr) -> ClientInfo {
        ClientInfo {
            peer,
            addr: peer,
            port: None,
            name: None,
            helo: None,
            proto: None,
            login: None,
        }
    }
}

/// Why an XCLIENT command was refused; every one is a `501 5.5.4` syntax error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum XclientError {
    #[error("Syntax: XCLIENT attribute=value [attribute=value ...]")]
    Empty,
    #[error("Bad XCLIENT attribute syntax: {0:?} (expected NAME=value)")]
    NotAttribute(String),
    #[error(
        "Bad XCLIENT attribute name: {0:?} (expected NAME, ADDR, PORT, PROTO, HELO, LOGIN, DESTADDR or DESTPORT)"
    )]
    UnknownAttribute(String),
    #[error("Bad XCLIENT {attribute} value: invalid xtext {value:?}")]
    Xtext {
        attribute: &'static str,
        value: String,
    },
    #[error("Bad XCLIENT {attribute} syntax: {value:?} (expected {expected})")]
    BadValue {
        attribute: &'static str,
        value: String,
        expected: &'static str,
    },
}

impl XclientError {
    /// The reply to send for this error.
    pub fn reply(&self) -> Reply {
        Reply::new(501, "5.5.4", self.to_string())
    }
}

/// The reply to XCLIENT from a client that may not send it (not in `trusted_proxies`, or the
/// listener has `xclient = false`).
pub fn not_authorized() -> Reply {
    Reply::new(
        550,
        "5.7.0",
        "Error: insufficient authorization for XCLIENT",
    )
}

/// The reply to XCLIENT between MAIL and the end of DATA (or RSET).
pub fn in_transaction() -> Reply {
    Reply::new(503, "5.5.1", "Error: MAIL transaction in progress")
}

const UNAVAILABLE: &str = "[UNAVAILABLE]";
const TEMPUNAVAIL: &str = "[TEMPUNAVAIL]";

/// Parses the arguments of an XCLIENT command (everything after `XCLIENT `).
pub fn parse(args: &str) -> Result<XclientUpdate, XclientError> {
    let mut update = XclientUpdate::default();
    let mut any = false;
    for token in args.split([' ', '\t']).filter(|t| !t.is_empty()) {
        any = true;
        let Some((name, raw)) = token.split_once('=') else {
            return Err(XclientError::NotAttribute(token.to_string()));
        };
        let attribute = attribute_name(name)?;
        let value = decode_xtext(raw).ok_or_else(|| XclientError::Xtext {
            attribute,
            value: raw.to_string(),
        })?;
        match attribute {
            "ADDR" => update.addr = Some(marker_or(attribute, &value, parse_addr)?),
            "DESTADDR" => update.dest_addr = Some(marker_or(attribute, &value, parse_addr)?),
            "PORT" => update.port = Some(marker_or(attribute, &value, parse_port)?),
            "DESTPORT" => update.dest_port = Some(marker_or(attribute, &value, parse_port)?),
            "NAME" => update.name = Some(marker_or(attribute, &value, parse_hostname)?),
            "HELO" => update.helo = Some(marker_or(attribute, &value, parse_helo)?),
            "PROTO" => update.proto = Some(marker_or(attribute, &value, parse_proto)?),
            _ => update.login = Some(marker_or(attribute, &value, parse_login)?),
        }
    }
    if !any {
        return Err(XclientError::Empty);
    }
    Ok(update)
}

fn attribute_name(name: &str) -> Result<&'static str, XclientError> {
    const NAMES: [&str; 8] = [
        "NAME", "ADDR", "PORT", "PROTO", "HELO", "LOGIN", "DESTADDR", "DESTPORT",
    ];
    NAMES
        .into_iter()
        .find(|n| n.eq_ignore_ascii_case(name))
        .ok_or_else(|| XclientError::UnknownAttribute(name.to_string()))
}

/// Decodes RFC 3461 xtext: printable ASCII except `+` and `=`, and `+XX` hex escapes. Returns
/// `None` when the text is not xtext or does not decode to UTF-8.
pub fn decode_xtext(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => {
                let hex = bytes.get(i + 1..i + 3)?;
                let hex = std::str::from_utf8(hex).ok()?;
                // RFC 3461 asks for upper-case hex digits; lower case is taken too, as
                // front ends differ and nothing is ambiguous about it.
                if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return None;
                }
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'!'..=b'~' if bytes[i] != b'=' => {
                out.push(bytes[i]);
                i += 1;
            }
            _ => return None,
        }
    }
    String::from_utf8(out).ok()
}

fn marker_or<T>(
    attribute: &'static str,
    value: &str,
    parse: fn(&str) -> Result<T, &'static str>,
) -> Result<Value<T>, XclientError> {
    if value.eq_ignore_ascii_case(UNAVAILABLE) {
        return Ok(Value::Unavailable);
    }
    if value.eq_ignore_ascii_case(TEMPUNAVAIL) {
        return Ok(Value::TempUnavailable);
    }
    parse(value)
        .map(Value::Known)
        .map_err(|expected| XclientError::BadValue {
            attribute,
            value: value.to_string(),
            expected,
        })
}

fn parse_addr(value: &str) -> Result<IpAddr, &'static str> {
    const EXPECTED: &str = "an IPv4 address or IPV6: followed by an IPv6 address";
    let v6 = value
        .get(..5)
        .filter(|p| p.eq_ignore_ascii_case("IPV6:"))
        .map(|_| &value[5..]);
    match v6 {
        Some(rest) => rest
            .parse::<Ipv6Addr>()
            .map(IpAddr::V6)
            .map_err(|_| EXPECTED),
        // Bare IPv6 is not Postfix's syntax, but unambiguous; refusing it would only turn
        // away the IPv6 clients of a front end that forgets the prefix.
        None => value.parse::<IpAddr>().map_err(|_| EXPECTED),
    }
}

fn parse_port(value: &str) -> Result<u16, &'static str> {
    const EXPECTED: &str = "a port number from 0 to 65535";
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(EXPECTED);
    }
    value.parse::<u16>().map_err(|_| EXPECTED)
}

fn parse_hostname(value: &str) -> Result<String, &'static str> {
    const EXPECTED: &str = "a host name of letters, digits, '-', '_' and '.', at most 255 long";
    let ok = !value.is_empty()
        && value.len() <= MAX_VALUE_LEN
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && !value.starts_with('.')
        && !value.contains("..");
    if ok {
        Ok(value.to_string())
    } else {
        Err(EXPECTED)
    }
}

/// HELO is whatever the client said (a name, an address literal, sometimes junk), so only
/// what would be unsafe to log or to put in a header is refused: controls and spaces, which
/// xtext could otherwise smuggle in as `+0D+0A`.
fn parse_helo(value: &str) -> Result<String, &'static str> {
    const EXPECTED: &str = "a HELO name without spaces or control characters, at most 255 long";
    printable_token(value, EXPECTED)
}

fn parse_login(value: &str) -> Result<String, &'static str> {
    const EXPECTED: &str = "a login name without spaces or control characters, at most 255 long";
    printable_token(value, EXPECTED)
}

fn printable_token(value: &str, expected: &'static str) -> Result<String, &'static str> {
    let ok = !value.is_empty()
        && value.len() <= MAX_VALUE_LEN
        && !value.chars().any(|c| c.is_control() || c.is_whitespace());
    if ok {
        Ok(value.to_string())
    } else {
        Err(expected)
    }
}

fn parse_proto(value: &str) -> Result<Proto, &'static str> {
    if value.eq_ignore_ascii_case("ESMTP") {
        Ok(Proto::Esmtp)
    } else if value.eq_ignore_ascii_case("SMTP") {
        Ok(Proto::Smtp)
    } else {
        Err("SMTP or ESMTP")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn nginx_first_command() {
        let u = parse("ADDR=203.0.113.5 LOGIN=someone NAME=[UNAVAILABLE]").unwrap();
        assert_eq!(u.addr, Some(Value::Known(ip("203.0.113.5"))));
        assert_eq!(u.client_addr(), Some(ip("203.0.113.5")));
        assert_eq!(u.login, Some(Value::Known("someone".to_string())));
        assert_eq!(u.name, Some(Value::Unavailable));
        assert_eq!(u.helo, None);
        assert_eq!(u.proto, None);
    }

    #[test]
    fn nginx_1_22_line_as_sent() {
        // What nginx 1.22 (`xclient on; smtp_auth none;`, no resolver) sent to a backend, seen
        // by scripts/proxy_smoke.py; the client's own EHLO follows it.
        let line = "XCLIENT ADDR=127.0.0.1 NAME=[UNAVAILABLE]";
        let args = line.strip_prefix("XCLIENT ").unwrap();
        let u = parse(args).unwrap();
        assert_eq!(u.client_addr(), Some(ip("127.0.0.1")));
        assert_eq!(u.name, Some(Value::Unavailable));
        assert_eq!((u.login, u.helo, u.proto), (None, None, None));
    }

    #[test]
    fn nginx_without_login_and_with_resolved_name() {
        let u = parse("ADDR=198.51.100.7 NAME=mx.example.org").unwrap();
        assert_eq!(u.client_addr(), Some(ip("198.51.100.7")));
        assert_eq!(u.login, None);
        assert_eq!(u.name, Some(Value::Known("mx.example.org".into())));
    }

    #[test]
    fn nginx_second_command() {
        let u = parse("PROTO=ESMTP HELO=client.example.org").unwrap();
        assert_eq!(u.proto, Some(Value::Known(Proto::Esmtp)));
        assert_eq!(u.helo, Some(Value::Known("client.example.org".into())));
        assert_eq!(u.addr, None);
        let u = parse("PROTO=SMTP HELO=[192.0.2.1]").unwrap();
        assert_eq!(u.proto, Some(Value::Known(Proto::Smtp)));
        assert_eq!(u.helo, Some(Value::Known("[192.0.2.1]".into())));
    }

    #[test]
    fn nginx_ipv6_and_xtext_login() {
        // nginx xtext-escapes the login; '+' and '=' must be escaped.
        let u = parse("ADDR=IPV6:2001:db8::25 LOGIN=a+2Bb+3Dc NAME=[TEMPUNAVAIL]").unwrap();
        assert_eq!(u.client_addr(), Some(ip("2001:db8::25")));
        assert_eq!(u.login, Some(Value::Known("a+b=c".into())));
        assert_eq!(u.name, Some(Value::TempUnavailable));
    }

    #[test]
    fn markers_and_prefix_are_case_insensitive() {
        let u = parse("addr=ipv6:::1 name=[unavailable] Helo=[TempUnavail]").unwrap();
        assert_eq!(u.client_addr(), Some(ip("::1")));
        assert_eq!(u.name, Some(Value::Unavailable));
        assert_eq!(u.helo, Some(Value::TempUnavailable));
    }

    #[test]
    fn every_attribute() {
        let u = parse(
            "NAME=a.example ADDR=192.0.2.9 PORT=40000 PROTO=esmtp HELO=h LOGIN=l \
             DESTADDR=IPV6:2001:db8::1 DESTPORT=25",
        )
        .unwrap();
        assert_eq!(u.port, Some(Value::Known(40000)));
        assert_eq!(u.dest_addr, Some(Value::Known(ip("2001:db8::1"))));
        assert_eq!(u.dest_port, Some(Value::Known(25)));
        assert_eq!(u.addr, Some(Value::Known(ip("192.0.2.9"))));
    }

    #[test]
    fn last_duplicate_wins() {
        let u = parse("ADDR=192.0.2.1 ADDR=192.0.2.2").unwrap();
        assert_eq!(u.client_addr(), Some(ip("192.0.2.2")));
    }

    #[test]
    fn bare_ipv6_is_accepted() {
        assert_eq!(
            parse("ADDR=2001:db8::7").unwrap().client_addr(),
            Some(ip("2001:db8::7"))
        );
    }

    #[test]
    fn errors() {
        assert_eq!(parse(""), Err(XclientError::Empty));
        assert_eq!(parse("   "), Err(XclientError::Empty));
        assert!(matches!(parse("ADDR"), Err(XclientError::NotAttribute(_))));
        assert!(matches!(
            parse("FOO=1"),
            Err(XclientError::UnknownAttribute(n)) if n == "FOO"
        ));
        for bad in [
            "ADDR=999.1.1.1",
            "ADDR=IPV6:1.2.3.4",
            "ADDR=",
            "ADDR=host.example",
            "PORT=65536",
            "PORT=-1",
            "PORT=1x",
            "PROTO=LMTP",
            "NAME=bad..name",
            "NAME=has_a space",
            "NAME=",
        ] {
            assert!(parse(bad).is_err(), "{bad} was accepted");
        }
    }

    #[test]
    fn xtext_cannot_smuggle_line_ends_or_spaces() {
        for bad in ["HELO=a+0D+0AMAIL", "HELO=a+20b", "LOGIN=x+00", "NAME=a+0Ab"] {
            let e = parse(bad).unwrap_err();
            assert!(matches!(e, XclientError::BadValue { .. }), "{bad}: {e:?}");
        }
    }

    #[test]
    fn xtext_decoding() {
        assert_eq!(decode_xtext("plain").as_deref(), Some("plain"));
        assert_eq!(decode_xtext("a+2Bb").as_deref(), Some("a+b"));
        assert_eq!(decode_xtext("a+2bb").as_deref(), Some("a+b"));
        assert_eq!(decode_xtext("caf+C3+A9").as_deref(), Some("café"));
        assert_eq!(decode_xtext(""), Some(String::new()));
        assert_eq!(decode_xtext("a+2"), None);
        assert_eq!(decode_xtext("a+ZZ"), None);
        assert_eq!(decode_xtext("a=b"), None);
        assert_eq!(decode_xtext("a\u{7f}"), None);
        assert_eq!(decode_xtext("+FF"), None, "not UTF-8");
        assert!(matches!(
            parse("LOGIN=a+2"),
            Err(XclientError::Xtext {
                attribute: "LOGIN",
                ..
            })
        ));
    }

    #[test]
    fn too_long_names_are_refused() {
        let long = "a".repeat(MAX_VALUE_LEN + 1);
        assert!(parse(&format!("HELO={long}")).is_err());
        assert!(parse(&format!("NAME={long}")).is_err());
        let ok = "a".repeat(MAX_VALUE_LEN);
        assert!(parse(&format!("HELO={ok}")).is_ok());
    }

    #[test]
    fn errors_reply_501_5_5_4() {
        let r = parse("FOO=1").unwrap_err().reply();
        assert_eq!((r.code, r.enhanced), (501, "5.5.4"));
        assert!(r.text.contains("FOO"));
        assert_eq!(not_authorized().code, 550);
        assert_eq!(in_transaction().code, 503);
    }

    #[test]
    fn apply_to_client_info() {
        let proxy = ip("10.0.0.2");
        let mut c = ClientInfo::new(proxy);
        parse("ADDR=203.0.113.5 LOGIN=u NAME=[UNAVAILABLE]")
            .unwrap()
            .apply_to(&mut c);
        assert_eq!(c.addr, ip("203.0.113.5"));
        assert_eq!(c.peer, proxy);
        assert_eq!(c.name, None);
        assert_eq!(c.login.as_deref(), Some("u"));
        parse("PROTO=ESMTP HELO=client.example")
            .unwrap()
            .apply_to(&mut c);
        // Attributes not mentioned are kept.
        assert_eq!(c.addr, ip("203.0.113.5"));
        assert_eq!(c.login.as_deref(), Some("u"));
        assert_eq!(c.helo.as_deref(), Some("client.example"));
        assert_eq!(c.proto, Some(Proto::Esmtp));
        // An unavailable address falls back to the connection's peer.
        parse("ADDR=[UNAVAILABLE] LOGIN=[UNAVAILABLE]")
            .unwrap()
            .apply_to(&mut c);
        assert_eq!(c.addr, proxy);
        assert_eq!(c.login, None);
    }
}
