//! notify-inbound: a receive-only SMTP server that turns list-unsubscribe emails and
//! bounces into calls on a NotifyBC-style notification service API.

pub mod address;
pub mod api;
pub mod classify;
pub mod config;
pub mod flows;
pub mod reply;
