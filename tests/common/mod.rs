//! Helpers shared by the integration tests: `mod common;` in a test file brings them in.

#![allow(dead_code)]

pub mod corpus;
pub mod dsn;
pub mod fake_api;
