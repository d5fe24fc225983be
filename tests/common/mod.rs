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
