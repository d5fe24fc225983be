//! The message after DATA, checked against a reference reading of RFC 5321 §4.5.2 and
//! docs/behaviour.md §3: the message ends at the first `<CRLF>.<CRLF>` and nowhere else; the delivered
//! message is what came before it with one leading dot removed from each line that starts
//! with one; a lone dot next to a bare CR or LF (SMTP smuggling) gets `550 5.6.0` and
//! nothing is delivered; without a terminator nothing is delivered at all.
#![no_main]

#[path = "../harness/server.rs"]
mod server;

use libfuzzer_sys::fuzz_target;

const PREFIX: &[u8] =
    b"EHLO fuzz.example\r\nMAIL FROM:<>\r\nRCPT TO:<bn-1-a@notify.example>\r\nDATA\r\n";

fuzz_target!(|body: &[u8]| {
    let fixture = server::fixture();
    let mut input = PREFIX.to_vec();
    input.extend_from_slice(body);
    let (replies, messages) = fixture.exchange(&input);
    let codes = server::reply_codes(&replies);
    assert_eq!(
        codes.get(..5),
        Some(&[220, 250, 250, 250, 354][..]),
        "{}",
        String::from_utf8_lossy(&replies)
    );
    let data_reply = codes.get(5).copied();
    match expected(body) {
        Expected::Unterminated => {
            assert_eq!(data_reply, None, "a reply to DATA without a terminator");
            assert!(messages.is_empty(), "a delivery without a terminator");
        }
        Expected::Smuggling => {
            assert_eq!(
                data_reply,
                Some(550),
                "{}",
                String::from_utf8_lossy(&replies)
            );
            // Whatever follows the terminator is read as commands and may be a transaction
            // of its own; the refused message itself is never delivered.
            let later_data = codes.iter().skip(6).filter(|&&c| c == 354).count();
            assert!(
                messages.len() <= later_data,
                "the refused message was delivered"
            );
        }
        Expected::Message(message) => {
            assert_eq!(
                data_reply,
                Some(250),
                "{}",
                String::from_utf8_lossy(&replies)
            );
            assert_eq!(
                messages.first(),
                Some(&message),
                "delivered message differs from the reference"
            );
        }
    }
});

enum Expected {
    Unterminated,
    Smuggling,
    Message(Vec<u8>),
}

/// The reference reading. `stream` is the body preceded by the CRLF that ended DATA.
fn expected(body: &[u8]) -> Expected {
    let mut stream = b"\r\n".to_vec();
    stream.extend_from_slice(body);
    let Some(end) = stream.windows(5).position(|w| w == b"\r\n.\r\n") else {
        return Expected::Unterminated;
    };
    // Everything up to and including the terminator is the message as sent.
    let sent = &stream[..end + 5];
    let is_eol = |b: u8| b == b'\r' || b == b'\n';
    for j in 1..sent.len() - 1 {
        if sent[j] == b'.' && is_eol(sent[j - 1]) && is_eol(sent[j + 1]) {
            let proper =
                j >= 2 && &sent[j - 2..j] == b"\r\n" && sent.get(j + 1..j + 3) == Some(b"\r\n");
            if !proper {
                return Expected::Smuggling;
            }
        }
    }
    // Content: after the leading CRLF, up to and including the CRLF before the final dot.
    let content = &stream[2..end + 2];
    let mut message = Vec::with_capacity(content.len());
    let mut prev = b'\n';
    let mut prev2 = b'\r';
    for &b in content {
        let at_line_start = prev == b'\n' && prev2 == b'\r';
        if !(at_line_start && b == b'.') {
            message.push(b);
        }
        prev2 = prev;
        prev = b;
    }
    Expected::Message(message)
}
