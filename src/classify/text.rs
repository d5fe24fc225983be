//! Small text helpers shared by the recognisers: status codes, addresses, folded lines.
//! Hand-written scanners rather than regexes where they run on every line.

/// Appends a folded continuation line to a field value.
pub(crate) fn unfold_into(value: &mut String, continuation: &str) {
    let t = continuation.trim();
    if t.is_empty() {
        return;
    }
    if !value.is_empty() {
        value.push(' ');
    }
    value.push_str(t);
}

fn is_status_at(b: &[u8], i: usize) -> Option<usize> {
    // class "." subject "." detail, class in 2/4/5, subject and detail 1-3 digits.
    let class = *b.get(i)?;
    if !matches!(class, b'2' | b'4' | b'5') || b.get(i + 1) != Some(&b'.') {
        return None;
    }
    if i > 0 && (b[i - 1].is_ascii_digit() || b[i - 1] == b'.') {
        return None;
    }
    let mut j = i + 2;
    let start = j;
    while j < b.len() && b[j].is_ascii_digit() && j - start < 3 {
        j += 1;
    }
    if j == start || b.get(j) != Some(&b'.') {
        return None;
    }
    j += 1;
    let start = j;
    while j < b.len() && b[j].is_ascii_digit() && j - start < 3 {
        j += 1;
    }
    if j == start {
        return None;
    }
    if j < b.len()
        && (b[j].is_ascii_digit() || (b[j] == b'.' && b.get(j + 1).is_some_and(u8::is_ascii_digit)))
    {
        return None;
    }
    Some(j)
}

/// The first RFC 3463 status code (`5.1.1`) in the text.
pub(crate) fn find_status(s: &str) -> Option<&str> {
    let b = s.as_bytes();
    let mut from = 0;
    while let Some(off) = memchr_dot(&b[from..]) {
        let dot = from + off;
        if dot > 0
            && let Some(end) = is_status_at(b, dot - 1)
        {
            return Some(&s[dot - 1..end]);
        }
        from = dot + 1;
    }
    None
}

fn memchr_dot(b: &[u8]) -> Option<usize> {
    b.iter().position(|&c| c == b'.')
}

/// The first three-digit SMTP reply code (`550`) standing alone at the start of a word.
pub(crate) fn find_reply_code(s: &str) -> Option<&str> {
    let b = s.as_bytes();
    let mut i = 0;
    while i + 3 <= b.len() {
        if matches!(b[i], b'2' | b'4' | b'5')
            && b[i + 1].is_ascii_digit()
            && b[i + 2].is_ascii_digit()
            && (i == 0 || !b[i - 1].is_ascii_alphanumeric() && b[i - 1] != b'.')
            && (i + 3 == b.len() || matches!(b[i + 3], b' ' | b'-' | b'\t' | b'\r' | b'\n'))
        {
            return Some(&s[i..i + 3]);
        }
        i += 1;
    }
    None
}

/// Whether `s` starts with `prefix`, ASCII case-insensitively (never slices inside a
/// character).
pub(crate) fn starts_with_ci(s: &str, prefix: &str) -> bool {
    s.as_bytes()
        .get(..prefix.len())
        .is_some_and(|b| b.eq_ignore_ascii_case(prefix.as_bytes()))
}

/// ASCII case-insensitive substring search; `needle` must be lower-case.
pub(crate) fn contains_ci(haystack: &str, needle: &str) -> bool {
    find_ci(haystack, needle).is_some()
}

/// Position of the first ASCII case-insensitive occurrence; `needle` must be lower-case.
pub(crate) fn find_ci(haystack: &str, needle: &str) -> Option<usize> {
    let h = haystack.as_bytes();
    let n = needle.as_bytes();
    if n.is_empty() {
        return Some(0);
    }
    if h.len() < n.len() {
        return None;
    }
    let first = n[0];
    let upper = first.to_ascii_uppercase();
    let mut i = 0;
    while i + n.len() <= h.len() {
        let c = h[i];
        if (c == first || c == upper) && h[i..i + n.len()].eq_ignore_ascii_case(n) {
            return Some(i);
        }
        i += 1;
    }
    None
}

/// Removes what surrounds an address in reports: `<>`, quotes, `mailto:`, trailing
/// punctuation and comments.
pub(crate) fn clean_address(s: &str) -> &str {
    let mut t = s.trim();
    // "Name <a@b>" or "a@b (comment)": keep the part that holds the address.
    if let (Some(l), Some(r)) = (t.find('<'), t.rfind('>'))
        && l < r
        && t[l + 1..r].contains('@')
    {
        t = &t[l + 1..r];
    } else if let Some(token) = t
        .split(|c: char| c.is_whitespace())
        .find(|w| w.contains('@'))
    {
        t = token;
    }
    // Typed or tagged values: `rfc822;a@b`, `RFC822:a@b`, Exchange's `SMTP=a@b;` and
    // `SMTP:a@b`.
    for tag in ["rfc822;", "rfc822:", "smtp=", "smtp:", "smtp;"] {
        if starts_with_ci(t, tag) {
            t = &t[tag.len()..];
            break;
        }
    }
    let t = t.trim_matches(|c: char| {
        matches!(
            c,
            '<' | '>' | '\'' | '`' | '(' | ')' | '[' | ']' | ',' | ';' | ':' | '.'
        ) || c.is_whitespace()
    });
    // Quotes go, unless they quote the local part (`"john..doe"@example.org`).
    let t = if t.starts_with('"') && t.contains("\"@") {
        t.trim_end_matches('"')
    } else {
        t.trim_matches('"')
    };
    t.strip_prefix("mailto:")
        .or_else(|| t.strip_prefix("MAILTO:"))
        .unwrap_or(t)
}

fn is_local_byte(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b"!#$%&'*+-/=?^_`{|}~.".contains(&c) || c >= 0x80
}

fn is_domain_byte(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'-' || c == b'.' || c >= 0x80
}

/// Every address-looking token `local@domain.tld` in the text, in order of appearance.
/// The domain must contain a dot, or be a bracketed address literal.
pub(crate) fn addresses(s: &str) -> impl Iterator<Item = &str> {
    let b = s.as_bytes();
    let mut from = 0;
    std::iter::from_fn(move || {
        while let Some(off) = b[from..].iter().position(|&c| c == b'@') {
            let at = from + off;
            from = at + 1;
            let mut l = at;
            if at > 0 && b[at - 1] == b'"' {
                // A quoted local part: `"john..doe"@example.org`.
                match b[..at - 1].iter().rposition(|&c| c == b'"') {
                    Some(q)
                        if at - 1 - q > 1 && !b[q..at].iter().any(|c| b"<> \t\r\n".contains(c)) =>
                    {
                        l = q;
                    }
                    _ => continue,
                }
            } else {
                while l > 0 && is_local_byte(b[l - 1]) {
                    l -= 1;
                }
                // Quotes, apostrophes and a `SMTP=` tag around an address in prose are not
                // part of it.
                while l < at && matches!(b[l], b'.' | b'\'' | b'`') {
                    l += 1;
                }
                if b[l..at].len() > 5 && b[l..l + 5].eq_ignore_ascii_case(b"smtp=") {
                    l += 5;
                }
                if l == at {
                    continue;
                }
            }
            let mut r = at + 1;
            if b.get(r) == Some(&b'[') {
                while r < b.len() && b[r] != b']' && r - at < 64 {
                    r += 1;
                }
                if b.get(r) == Some(&b']') {
                    from = r + 1;
                    return s.get(l..r + 1);
                }
                continue;
            }
            while r < b.len() && is_domain_byte(b[r]) {
                r += 1;
            }
            while r > at + 1 && matches!(b[r - 1], b'.' | b'-') {
                r -= 1;
            }
            let domain = &b[at + 1..r];
            if domain.len() < 3 || !domain.contains(&b'.') || domain[0] == b'.' {
                continue;
            }
            from = r;
            // Not char-boundary safe only for non-ASCII bytes, which `get` guards.
            if let Some(a) = s.get(l..r) {
                return Some(a);
            }
        }
        None
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_codes() {
        assert_eq!(find_status("smtp; 550 5.1.1 user unknown"), Some("5.1.1"));
        assert_eq!(find_status("#5.2.2 mailbox full"), Some("5.2.2"));
        assert_eq!(find_status("version 1.5.1.1 and 4.7.650."), Some("4.7.650"));
        assert_eq!(find_status("ip 10.5.1.1"), None);
        assert_eq!(find_status("no code"), None);
        assert_eq!(find_status("5.1.10"), Some("5.1.10"));
    }

    #[test]
    fn addresses_in_text() {
        let v: Vec<_> =
            addresses("<a.b@example.com>: mailbox; x@y, c@[192.0.2.1] and d@host.").collect();
        assert_eq!(v, vec!["a.b@example.com", "c@[192.0.2.1]"]);
        let v: Vec<_> = addresses("<\"john..doe\"@example.org> and \"a b\"@example.org").collect();
        assert_eq!(v, vec!["\"john..doe\"@example.org"]);
        let v: Vec<_> = addresses("SMTP=a@b.example; 'c@d.example' `e@f.example`").collect();
        assert_eq!(v, vec!["a@b.example", "c@d.example", "e@f.example"]);
        assert_eq!(clean_address(" <A@B.example> "), "A@B.example");
        assert_eq!(clean_address("\"Name\" <a@b.example>"), "a@b.example");
        assert_eq!(clean_address("a@b.example (comment)"), "a@b.example");
        assert_eq!(
            clean_address("rfc822-ish \"j..d\"@b.example"),
            "\"j..d\"@b.example"
        );
        assert_eq!(clean_address("\"a@b.example\""), "a@b.example");
        assert_eq!(clean_address("SMTP=a@b.example;"), "a@b.example");
        assert_eq!(clean_address("RFC822:<a@b.example>"), "a@b.example");
        assert_eq!(clean_address("rfc822;'a@b.example'"), "a@b.example");
        assert_eq!(clean_address("'a@b.example'"), "a@b.example");
        assert_eq!(clean_address("smtp:a@b.example"), "a@b.example");
    }
    #[test]
    fn reply_codes() {
        assert_eq!(find_reply_code("host said: 550-Mailbox"), Some("550"));
        assert_eq!(find_reply_code("id 12550 x"), None);
    }

    #[test]
    fn case_insensitive_find() {
        assert!(contains_ci("User Unknown here", "user unknown"));
        assert_eq!(find_ci("xxABC", "abc"), Some(2));
        assert!(!contains_ci("ab", "abc"));
    }
}
