//! Helpers shared by the integration tests: `mod common;` in a test file brings them in.

#![allow(dead_code)]

pub mod corpus;
pub mod dsn;
pub mod fake_api;

/// A free TCP port on 127.0.0.1 (free when asked; whoever binds it later may lose a race).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// JavaScript's `encodeURIComponent`, written out here (not the crate's encoder) as the
/// oracle for request lines the fake API receives.
pub fn encode_uri_component(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.!~*'()".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
