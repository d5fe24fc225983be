//! JSON text written directly into a buffer, for the request bodies whose size is the raw
//! bounce message: `bounceMessages` items carry whole messages, and escaping them is most
//! of the cost of a bounce body. The output is byte for byte what `serde_json` writes for
//! the same value; only the scan for characters to escape is faster (eight bytes a step).

use serde_json::Value;

/// Appends `s` as a JSON string literal, quotes included, escaped as `serde_json` escapes:
/// `"` and `\` with a backslash, `\b \f \n \r \t` by name, other control characters as
/// `\u00XX`; everything else (non-ASCII included) as it is.
pub fn push_string(out: &mut Vec<u8>, s: &str) {
    let bytes = s.as_bytes();
    out.reserve(bytes.len() + 2);
    out.push(b'"');
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        // Eight bytes a step; the first byte to escape in a step is found exactly, so a
        // step costs the same whether or not it holds one.
        let at = match bytes
            .get(i..i + 8)
            .and_then(|w| <[u8; 8]>::try_from(w).ok())
        {
            Some(word) => match escapes_in(u64::from_le_bytes(word)) {
                0 => {
                    i += 8;
                    continue;
                }
                mask => i + (mask.trailing_zeros() / 8) as usize,
            },
            None if needs_escape(bytes[i]) => i,
            None => {
                i += 1;
                continue;
            }
        };
        out.extend_from_slice(&bytes[start..at]);
        // Mail lines end in CRLF: one step for the pair.
        if bytes[at] == b'\r' && bytes.get(at + 1) == Some(&b'\n') {
            out.extend_from_slice(b"\\r\\n");
            i = at + 2;
        } else {
            push_escape(out, bytes[at]);
            i = at + 1;
        }
        start = i;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

/// `s` as a JSON string literal, quotes included (see [`push_string`]).
pub fn string(s: &str) -> String {
    let mut out = Vec::with_capacity(s.len() + 2);
    push_string(&mut out, s);
    // Escaping adds only ASCII to valid UTF-8, so the conversion cannot fail.
    String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

fn needs_escape(b: u8) -> bool {
    b < 0x20 || b == b'"' || b == b'\\'
}

fn push_escape(out: &mut Vec<u8>, b: u8) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    match b {
        b'"' => out.extend_from_slice(b"\\\""),
        b'\\' => out.extend_from_slice(b"\\\\"),
        b'\n' => out.extend_from_slice(b"\\n"),
        b'\r' => out.extend_from_slice(b"\\r"),
        b'\t' => out.extend_from_slice(b"\\t"),
        0x08 => out.extend_from_slice(b"\\b"),
        0x0c => out.extend_from_slice(b"\\f"),
        _ => {
            out.extend_from_slice(b"\\u00");
            out.push(HEX[usize::from(b >> 4)]);
            out.push(HEX[usize::from(b & 0xf)]);
        }
    }
}

/// A mask whose lowest set bit is the high bit of the first byte (in memory order) that
/// is a control character, `"` or `\`; zero when there is none. Bytes above the first may
/// be flagged falsely (a borrow carries into them), never the first itself.
fn escapes_in(word: u64) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let below = |w: u64, n: u64| w.wrapping_sub(ONES * n) & !w & HIGH;
    below(word, 0x20)
        | below(word ^ (ONES * u64::from(b'"')), 1)
        | below(word ^ (ONES * u64::from(b'\\')), 1)
}

/// Appends `value` as JSON, strings through [`push_string`], numbers, booleans and null as
/// `serde_json` writes them.
pub fn push_value(out: &mut Vec<u8>, value: &Value) {
    match value {
        Value::String(s) => push_string(out, s),
        Value::Array(items) => {
            out.push(b'[');
            for (n, item) in items.iter().enumerate() {
                if n > 0 {
                    out.push(b',');
                }
                push_value(out, item);
            }
            out.push(b']');
        }
        Value::Object(map) => {
            out.push(b'{');
            for (n, (key, item)) in map.iter().enumerate() {
                if n > 0 {
                    out.push(b',');
                }
                push_string(out, key);
                out.push(b':');
                push_value(out, item);
            }
            out.push(b'}');
        }
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Number(n) => out.extend_from_slice(n.to_string().as_bytes()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn strings_are_escaped_as_serde_json_escapes_them() {
        let mut cases: Vec<String> = vec![
            String::new(),
            "plain ascii, longer than one eight-byte step".into(),
            "Subject: x\r\n\r\nStatus: 5.1.1\r\n".into(),
            "quote \" backslash \\ tab \t del \u{7f} é 日本 \u{2028}".into(),
        ];
        // Every ASCII character at every offset within and across a step.
        for b in 0u8..128 {
            for offset in 0..17 {
                let mut s = "a".repeat(offset);
                s.push(char::from(b));
                s.push_str("bcdefghij");
                cases.push(s);
            }
        }
        // Pairs, so that a byte next to one to escape is seen where a borrow reaches it.
        for a in [0u8, 1, b'\r', b'\n', b'"', b'\\', 0x1f, b' ', b'#', b']'] {
            for b in 0u8..128 {
                cases.push(format!("ab{}{}cdefghijk", char::from(a), char::from(b)));
            }
        }
        for s in &cases {
            assert_eq!(string(s), serde_json::to_string(s).unwrap(), "{s:?}");
        }
    }

    #[test]
    fn values_are_written_as_serde_json_writes_them() {
        let v = json!({
            "date": "2024-01-01T00:00:00.000Z",
            "message": "From: a\r\n\r\n\"x\"\u{1}",
            "n": [1, -2, 3.5, 1e300, null, true, false, {}],
            "nested": {"a": [], "b": {"c": "d"}},
        });
        let mut out = Vec::new();
        push_value(&mut out, &v);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            serde_json::to_string(&v).unwrap()
        );
    }
}
