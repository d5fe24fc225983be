//! SMTP replies: a code, an RFC 3463 enhanced status code and a text a person can act on.

use std::fmt;

/// One SMTP reply. `enhanced` is empty for the greeting and EHLO, which carry none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub code: u16,
    pub enhanced: &'static str,
    pub text: String,
}

impl Reply {
    pub fn new(code: u16, enhanced: &'static str, text: impl Into<String>) -> Reply {
        Reply {
            code,
            enhanced,
            text: text.into(),
        }
    }

    /// 250 2.0.0 with the given text.
    pub fn ok(text: impl Into<String>) -> Reply {
        Reply::new(250, "2.0.0", text)
    }

    /// 451 4.3.0: a temporary failure; the sender keeps the message and retries.
    pub fn temporary(text: impl Into<String>) -> Reply {
        Reply::new(451, "4.3.0", text)
    }

    pub fn is_positive(&self) -> bool {
        (200..400).contains(&self.code)
    }

    pub fn is_permanent_failure(&self) -> bool {
        self.code >= 500
    }

    /// The reply as it goes on the wire, every line ending in CRLF.
    pub fn to_wire(&self) -> String {
        let mut out = Vec::new();
        self.write_wire(&mut out);
        // Only whole `str`s and ASCII were written, so this is always valid UTF-8.
        String::from_utf8(out)
            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
    }

    /// Appends the reply as it goes on the wire to `out`. Written piece by piece rather
    /// than with `format!`: every reply of every session passes through here.
    pub fn write_wire(&self, out: &mut Vec<u8>) {
        if (100..1000).contains(&self.code) {
            let c = self.code;
            let digits = [
                b'0' + (c / 100) as u8,
                b'0' + (c / 10 % 10) as u8,
                b'0' + (c % 10) as u8,
            ];
            self.write_lines(&digits, out);
        } else {
            self.write_lines(self.code.to_string().as_bytes(), out);
        }
    }

    fn write_lines(&self, code: &[u8], out: &mut Vec<u8>) {
        let mut lines = self.text.split('\n').peekable();
        while let Some(line) = lines.next() {
            out.extend_from_slice(code);
            out.push(if lines.peek().is_some() { b'-' } else { b' ' });
            if !self.enhanced.is_empty() {
                out.extend_from_slice(self.enhanced.as_bytes());
                out.push(b' ');
            }
            out.extend_from_slice(line.trim_end_matches('\r').as_bytes());
            out.extend_from_slice(b"\r\n");
        }
    }
}

/// Client text as it may appear in a reply: RFC 5321 §4.2 allows only printable ASCII in
/// reply text, and a reply line must stay within 512 octets, so anything else becomes `?`
/// and the text is cut at 100 characters.
pub fn printable(s: &str) -> String {
    s.chars()
        .take(100)
        .map(|c| {
            if c == ' ' || c.is_ascii_graphic() {
                c
            } else {
                '?'
            }
        })
        .collect()
}

impl fmt::Display for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.enhanced.is_empty() {
            write!(f, "{} {}", self.code, self.text)
        } else {
            write!(f, "{} {} {}", self.code, self.enhanced, self.text)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printable_keeps_replies_ascii_and_short() {
        assert_eq!(printable("bn-1-\u{e9}\0@x\r"), "bn-1-??@x?");
        assert_eq!(printable(&"a".repeat(500)).len(), 100);
    }

    #[test]
    fn multiline_wire_format() {
        let r = Reply::new(250, "", "mx.example\nPIPELINING\nSIZE 100");
        assert_eq!(
            r.to_wire(),
            "250-mx.example\r\n250-PIPELINING\r\n250 SIZE 100\r\n"
        );
        let r = Reply::new(550, "5.1.1", "no such user");
        assert_eq!(r.to_wire(), "550 5.1.1 no such user\r\n");
        let r = Reply::new(451, "4.3.0", "first\r\nsecond\n");
        assert_eq!(
            r.to_wire(),
            "451-4.3.0 first\r\n451-4.3.0 second\r\n451 4.3.0 \r\n"
        );
        let mut out = b"354 go\r\n".to_vec();
        Reply::new(221, "2.0.0", "bye").write_wire(&mut out);
        assert_eq!(out, b"354 go\r\n221 2.0.0 bye\r\n");
        assert_eq!(Reply::new(42, "", "odd").to_wire(), "42 odd\r\n");
    }
}
