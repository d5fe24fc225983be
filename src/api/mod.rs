//! The client of the notification service's HTTP API: exactly the calls the `un` and `bn`
//! flows make (README, "What is accepted, and the replies"), nothing else.
//!
//! One [`ApiClient`] is built at start and shared. Its parts:
//!
//! - `client`: [`ApiClient`], one method per call; bounds the calls in flight with a
//!   semaphore of `api.max_in_flight` permits, each held until the answer is read;
//! - `http`: the reqwest client under it (pooling, timeouts, TLS and client certificate,
//!   no redirects followed, no proxy) and the API base with its credentials;
//! - `model`: the records read and the bodies and filters written, through serde;
//! - `encode`: how values are placed into a URL (`encodeURIComponent`'s character set);
//! - `error`: [`ApiError`].
//!
//! Errors never carry the access token or a request's query string (which holds an
//! unsubscription code): they name the method, the path and what to check.
//!
//! With [`ApiClient::with_metrics`] every call is counted by endpoint and status class, and
//! its latency observed (`api_requests_total`, `api_request_duration_seconds`).

mod client;
mod encode;
mod error;
mod http;
mod model;
#[cfg(test)]
mod tests;

pub use client::ApiClient;
pub use error::ApiError;
pub use model::{Bounce, BounceMessages, NewBounce, Subscription, UnsubscribeOutcome};
