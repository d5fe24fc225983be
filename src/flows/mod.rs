//! Processing of one accepted message (SPEC §4): the `un` and `bn` flows, which call the
//! notification service's API and decide the reply to DATA.
//!
//! The SMTP layer only knows the [`Deliver`] trait, so the session can be tested with a
//! stand-in and the flows without a socket.

use std::net::IpAddr;

use futures::future::BoxFuture;

use crate::address::Recipient;
use crate::reply::Reply;

/// What the SMTP session hands over once DATA is complete.
#[derive(Debug, Clone)]
pub struct Envelope {
    /// The real client address (after PROXY protocol / XCLIENT).
    pub client: IpAddr,
    /// MAIL FROM address without angle brackets; empty for the null sender.
    pub mail_from: String,
    /// The one `un`/`bn` recipient of the transaction.
    pub recipient: Recipient,
}

/// Turns a received message into its effect and the reply to DATA.
pub trait Deliver: Send + Sync + 'static {
    fn deliver<'a>(&'a self, envelope: &'a Envelope, message: &'a [u8]) -> BoxFuture<'a, Reply>;
}
