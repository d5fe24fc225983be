//! Raw bytes from a client, as one SMTP connection to the real server (connection, session
//! state machine, DATA reader, STARTTLS and limits). Beyond not crashing or hanging, every
//! byte the server sends must be a well-formed reply: lines of at most 512 octets ending in
//! CRLF, each `ddd ` or `ddd-` with no bare CR or LF, so client text echoed in a reply can
//! never forge a reply line.
#![no_main]

#[path = "../harness/server.rs"]
mod server;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &[u8]| {
    let fixture = server::fixture();
    let (replies, _messages) = fixture.exchange(input);
    // After STARTTLS the server speaks TLS: only the plain-text part is checked.
    let plain = match find(&replies, b"220 2.0.0 ready to start TLS\r\n") {
        Some(end) => &replies[..end],
        None => &replies[..],
    };
    check_replies(plain);
});

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|p| p + needle.len())
}

fn check_replies(bytes: &[u8]) {
    assert!(
        bytes.is_empty() || bytes.ends_with(b"\r\n"),
        "replies end mid-line: {:?}",
        String::from_utf8_lossy(bytes)
    );
    let mut rest = bytes;
    while !rest.is_empty() {
        let end = rest
            .windows(2)
            .position(|w| w == b"\r\n")
            .expect("every reply line ends in CRLF");
        let line = &rest[..end];
        rest = &rest[end + 2..];
        let shown = String::from_utf8_lossy(line);
        assert!(
            line.len() + 2 <= 512,
            "reply line over 512 octets: {shown:?}"
        );
        assert!(
            !line.contains(&b'\r') && !line.contains(&b'\n'),
            "bare CR or LF in a reply line: {shown:?}"
        );
        assert!(
            line.len() >= 4
                && line[..3].iter().all(u8::is_ascii_digit)
                && (line[3] == b' ' || line[3] == b'-'),
            "malformed reply line: {shown:?}"
        );
    }
}
