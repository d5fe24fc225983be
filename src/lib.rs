//! notify-inbound: a receive-only SMTP server that turns list-unsubscribe emails and
//! bounces into calls on a NotifyBC-style notification service API.

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
pub mod proxy;
pub mod reply;
pub mod router;
pub mod server;
pub mod tls;
pub mod xclient;
