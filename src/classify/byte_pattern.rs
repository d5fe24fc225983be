//! Patterns for byte-oriented matching: the classifier matches decoded text as bytes
//! (ASCII case-insensitively, no Unicode classes), so a pattern's non-ASCII characters are
//! written as their UTF-8 bytes. Shared with `build.rs`, which checks every wording's
//! pattern exactly as the classifier compiles it.

use std::fmt::Write as _;

/// `p` with each non-ASCII character replaced by its UTF-8 bytes (`\xE3\x81...`), which is
/// how it appears in the decoded text.
pub(crate) fn byte_pattern(p: &str) -> String {
    let mut out = String::with_capacity(p.len());
    for c in p.chars() {
        if c.is_ascii() {
            out.push(c);
        } else {
            let mut buf = [0u8; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                let _ = write!(out, "\\x{b:02X}");
            }
        }
    }
    out
}
