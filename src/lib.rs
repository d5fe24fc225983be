//! notify-inbound: a receive-only SMTP server that turns list-unsubscribe emails and
//! bounces into calls on a NotifyBC-style notification service API.
//!
//! # Layout, in the order a message travels
//!
//! - [`server`]: the listeners and their limits, then one [`server::connection`] per
//!   client: the socket, TLS ([`tls`]), the PROXY header ([`proxy`]) and XCLIENT
//!   ([`xclient`]), reading command lines and DATA;
//! - the SMTP state machine of one session ([`server::session`]), with [`reply`]'s
//!   reply texts;
//! - [`router`]: which recipients are `un`/`bn` addresses (or postmaster) and which are
//!   refused;
//! - [`flows`]: the whole transaction: postmaster mail, each recipient's `un` or `bn`
//!   flow, the one reply to DATA, wrong-code counting; [`coordination`] locks an address
//!   across replicas;
//! - [`api`]: the notification service's HTTP API client.
//!
//! Beside the path: [`classify`] (the bounce classifier, pure); [`config`] (layered
//! configuration, validated once); observability and protection: [`logging`],
//! [`outcome`] (the words for what became of a message), [`metrics`], [`ops`] (health and metrics endpoints), [`limiter`] and [`access`]
//! (connection limits, address ranges).

pub mod access;
pub mod api;
pub mod classify;
pub mod config;
pub mod coordination;
pub mod flows;
pub mod limiter;
pub mod logging;
pub mod metrics;
pub mod ops;
pub mod outcome;
pub mod proxy;
pub mod reply;
pub mod router;
pub mod server;
pub mod tls;
pub mod xclient;
