//! Processing of one accepted message (docs/behaviour.md §4): the `un` and `bn` flows, which call the
//! notification service's API and decide the reply to DATA.
//!
//! The SMTP layer only knows the [`Deliver`] trait, so the session can be tested with a
//! stand-in and the flows without a socket. [`Processor`] is the real implementation: built
//! once from the settings (regexes compiled, API client set up), then shared by every
//! session. It keeps no state that matters across messages: what was already applied is
//! recognised from the service's own records, so a retry reaching another replica is
//! handled the same way.

mod bounce;
mod locks;
mod transaction;
mod unsubscribe;

use std::net::IpAddr;
use std::sync::Arc;

use futures::future::BoxFuture;

use crate::api::{ApiClient, ApiError};
use crate::config::{BounceSettings, ConfigError, Settings};
use crate::coordination::{LockError, RedisLocks};
use crate::metrics::Metrics;
use crate::outcome::BounceOutcome;
use crate::reply::Reply;
use crate::router::{Recipient, RecipientKind};

use crate::classify;
pub use locks::{AddressLocks, KeyedLocks};
pub use transaction::{Transaction, TransactionOutcome, deliver_transaction};

/// What the SMTP session hands over once DATA is complete.
#[derive(Debug, Clone)]
pub struct Envelope {
    /// The real client address (after PROXY protocol / XCLIENT).
    pub client: IpAddr,
    /// MAIL FROM address without angle brackets; empty for the null sender.
    pub mail_from: String,
    /// One `un`/`bn` recipient of the transaction; a message to several is delivered once
    /// for each.
    pub recipient: Recipient,
}

/// What became of a bounce for one `bn` recipient, for the transaction log line and the
/// metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BounceReport {
    pub outcome: BounceOutcome,
    /// Why it did not count (the decision's reason, such as `soft`), or why it
    /// unsubscribed (`threshold`, `complaint`).
    pub reason: Option<String>,
    /// The record's `hardBounceCount` after this message.
    pub count: Option<u64>,
}

/// The reply to DATA for one recipient, with what became of a bounce.
#[derive(Debug, Clone)]
pub struct Delivered {
    pub reply: Reply,
    pub bounce: Option<BounceReport>,
    /// What was learnt about the code in the recipient address (against guessing).
    pub code: CodeCheck,
}

/// What processing a message showed about the unsubscription code in its recipient
/// address, for the limiter against code guessing (see `docs/reliability.md`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum CodeCheck {
    /// Not learnt (no such id, the service unreachable, or not asked).
    #[default]
    Unknown,
    /// The code is the subscription's, whatever its state.
    Right,
    /// The subscription id exists and the code differs: a failed attempt.
    Wrong,
}

/// Turns a received message into its effect and the reply to DATA.
pub trait Deliver: Send + Sync + 'static {
    fn deliver<'a>(&'a self, envelope: &'a Envelope, message: &'a [u8]) -> BoxFuture<'a, Reply>;

    /// [`Deliver::deliver`] with what became of a bounce, when the implementation knows.
    fn deliver_reported<'a>(
        &'a self,
        envelope: &'a Envelope,
        message: &'a [u8],
    ) -> BoxFuture<'a, Delivered> {
        Box::pin(async move {
            Delivered {
                reply: self.deliver(envelope, message).await,
                bounce: None,
                code: CodeCheck::Unknown,
            }
        })
    }
}

/// The one reply to DATA for every accepted bounce, whether or not it matched a
/// subscription and whatever it did: a different text would tell a code guesser that a
/// guess was right.
pub const BOUNCE_ACCEPTED: &str = "bounce accepted";

/// Why the processor could not be built.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Api(#[from] ApiError),
}

/// The `un` and `bn` flows against the notification service.
#[derive(Debug)]
pub struct Processor {
    api: ApiClient,
    filters: classify::Filters,
    bounce: BounceSettings,
    unsubscribe_enabled: bool,
    locks: AddressLocks,
}

impl Processor {
    pub fn new(settings: &Settings) -> Result<Processor, SetupError> {
        Ok(Processor::with_client(settings, ApiClient::new(settings)?)?)
    }

    /// Builds the processor around an existing client (shared with a readiness check).
    pub fn with_client(settings: &Settings, api: ApiClient) -> Result<Processor, ConfigError> {
        Ok(Processor {
            api,
            filters: classify::Filters::new(&settings.bounce),
            bounce: settings.bounce.clone(),
            unsubscribe_enabled: settings.list_unsubscribe_by_email.enabled,
            locks: AddressLocks::new(RedisLocks::from_settings(settings)?),
        })
    }

    /// Counts the cross-replica lock's events in `metrics` (the API client counts its own).
    pub fn with_metrics(self, metrics: Arc<Metrics>) -> Processor {
        if let Some(redis) = self.locks.redis() {
            redis.set_metrics(metrics);
        }
        self
    }

    pub fn api(&self) -> &ApiClient {
        &self.api
    }

    /// Processes one message for one recipient: the reply to DATA, with what became of a
    /// bounce.
    pub async fn process_reported(&self, envelope: &Envelope, message: &[u8]) -> Delivered {
        let handled = match envelope.recipient.kind {
            RecipientKind::Unsubscribe => self.unsubscribe(envelope).await,
            RecipientKind::Bounce => self.bounce(envelope, message).await,
        };
        handled.log(envelope, message.len());
        let mut reply = handled.reply;
        if envelope.recipient.kind == RecipientKind::Bounce && reply.code == 250 {
            reply = Reply::ok(BOUNCE_ACCEPTED);
        }
        Delivered {
            reply,
            bounce: handled.bounce,
            code: handled.code,
        }
    }
}

impl Deliver for Processor {
    fn deliver<'a>(&'a self, envelope: &'a Envelope, message: &'a [u8]) -> BoxFuture<'a, Reply> {
        Box::pin(async move { self.process_reported(envelope, message).await.reply })
    }

    fn deliver_reported<'a>(
        &'a self,
        envelope: &'a Envelope,
        message: &'a [u8],
    ) -> BoxFuture<'a, Delivered> {
        Box::pin(self.process_reported(envelope, message))
    }
}

/// The result of one flow: the reply, a short outcome label for the log and, for a
/// temporary failure, what went wrong.
struct Handled {
    outcome: &'static str,
    reply: Reply,
    detail: Option<String>,
    bounce: Option<BounceReport>,
    code: CodeCheck,
}

impl Handled {
    fn new(outcome: &'static str, reply: Reply) -> Handled {
        Handled {
            outcome,
            reply,
            detail: None,
            bounce: None,
            code: CodeCheck::Unknown,
        }
    }

    /// Says what became of the bounce (`bn` flow).
    fn bounce(
        mut self,
        outcome: BounceOutcome,
        reason: Option<&str>,
        count: Option<u64>,
    ) -> Handled {
        self.bounce = Some(BounceReport {
            outcome,
            reason: reason.map(str::to_string),
            count,
        });
        self
    }

    fn ok(outcome: &'static str, text: &str) -> Handled {
        Handled::new(outcome, Reply::ok(text))
    }

    /// 451 4.3.0: the service could not confirm the effect; the sender keeps the message.
    fn api_failure(error: &ApiError) -> Handled {
        Handled {
            outcome: "api_unavailable",
            reply: Reply::temporary(
                "the notification service is unavailable, please try again later",
            ),
            detail: Some(error.to_string()),
            bounce: None,
            code: CodeCheck::Unknown,
        }
    }

    /// 451 4.3.0: the address's cross-replica lock could not be had, so the bounce record
    /// was not touched; the sender retries.
    fn lock_failure(error: &LockError) -> Handled {
        Handled {
            outcome: "lock_unavailable",
            reply: Reply::temporary(
                "this bounce cannot be recorded safely right now, please try again later",
            ),
            detail: Some(error.to_string()),
            bounce: None,
            code: CodeCheck::Unknown,
        }
    }

    /// Whether the recipient's code was the subscription's (`right`) or not.
    fn with_code(mut self, right: bool) -> Handled {
        self.code = if right {
            CodeCheck::Right
        } else {
            CodeCheck::Wrong
        };
        self
    }

    fn with_detail(mut self, detail: impl Into<String>) -> Handled {
        self.detail = Some(detail.into());
        self
    }

    /// One line per message; never the body, the code or a secret.
    fn log(&self, envelope: &Envelope, size: usize) {
        let kind = envelope.recipient.kind.as_str();
        let id = envelope.recipient.id.as_str();
        let client = envelope.client;
        let code = self.reply.code;
        let detail = self.detail.as_deref().unwrap_or("");
        if self.reply.code >= 400 && self.reply.code < 500 {
            tracing::warn!(%client, kind, id, size, outcome = self.outcome, code, detail, "message not processed");
        } else {
            // The server logs the one info line per transaction; this adds the flow's detail.
            tracing::debug!(%client, kind, id, size, outcome = self.outcome, code, detail, "message processed");
        }
    }
}
