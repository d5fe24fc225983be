//! The `un` flow (docs/behaviour.md §4.1): one anonymous unsubscribe call, and the recognition of an
//! unsubscribe that an earlier attempt of the same transaction already applied.

use crate::api::{ApiError, Subscription, UnsubscribeOutcome};
use crate::reply::Reply;

use super::{Envelope, Handled, Processor};

impl Processor {
    pub(super) async fn unsubscribe(&self, envelope: &Envelope) -> Handled {
        if !self.unsubscribe_enabled {
            return Handled::new(
                "disabled",
                Reply::new(
                    550,
                    "5.7.1",
                    "unsubscribing by email is not enabled here; use the unsubscribe link in \
                     the notification",
                ),
            );
        }
        let r = &envelope.recipient;
        let outcome = match self
            .api
            .unsubscribe(&r.id, &r.code, &envelope.mail_from, false)
            .await
        {
            Ok(outcome) => outcome,
            Err(ApiError::InvalidId { .. }) => return not_found(),
            Err(e) => return Handled::api_failure(&e),
        };
        match outcome {
            UnsubscribeOutcome::Done | UnsubscribeOutcome::Redirected { .. } => {
                Handled::ok("unsubscribed", "unsubscribed")
            }
            UnsubscribeOutcome::NotFound => not_found(),
            UnsubscribeOutcome::Forbidden => self.refused_or_applied(envelope, "HTTP 403").await,
            UnsubscribeOutcome::RefusedByRedirect { err } => {
                self.refused_or_applied(envelope, &format!("redirect with err={err}"))
                    .await
            }
        }
    }

    /// NotifyBC refuses a second unsubscribe of the same subscription (its state is no
    /// longer `confirmed`). If the subscription is deleted and the code and address of this
    /// message are the ones that would have been accepted, this is the retry of a
    /// transaction whose effect was applied but whose 250 was lost: it gets 250.
    async fn refused_or_applied(&self, envelope: &Envelope, why: &str) -> Handled {
        let r = &envelope.recipient;
        match self.api.get_subscription(&r.id).await {
            Ok(Some(s)) if already_unsubscribed(&s, &r.code, &envelope.mail_from) => {
                Handled::ok("already_unsubscribed", "already unsubscribed").with_code(true)
            }
            Ok(found) => Handled::new(
                "refused",
                Reply::new(
                    550,
                    "5.7.1",
                    "unsubscribe refused: the code does not match this subscription, the \
                     sender is not the subscribed address, or the subscription is not active; \
                     send from the address that receives the notifications, or use the \
                     unsubscribe link in the notification",
                ),
            )
            .with_detail(why)
            .with_code(found.as_ref().is_none_or(|s| code_is_right(s, &r.code))),
            Err(e) => Handled::api_failure(&e),
        }
    }
}

fn not_found() -> Handled {
    Handled::new(
        "not_found",
        Reply::new(
            550,
            "5.1.1",
            "no such subscription: it may have been removed already; nothing more to do",
        ),
    )
}

/// The checks NotifyBC applies to an anonymous unsubscribe (the code, address
/// case-insensitively when one is given), on a subscription now deleted: the person's wish
/// holds, so the answer is 250 (a refusal would bounce back to them).
fn already_unsubscribed(s: &Subscription, code: &str, address: &str) -> bool {
    let address_ok = address.is_empty()
        || s.user_channel_id
            .as_deref()
            .is_some_and(|a| a.to_lowercase() == address.to_lowercase());
    s.state.as_deref() == Some("deleted") && code_is_right(s, code) && address_ok
}

/// Whether `code` is the subscription's (any code is, when it has none).
fn code_is_right(s: &Subscription, code: &str) -> bool {
    match s.unsubscription_code.as_deref() {
        None | Some("") => true,
        Some(c) => c == code,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sub(state: &str, code: Option<&str>, addr: &str) -> Subscription {
        Subscription {
            id: "1".into(),
            service_name: None,
            channel: Some("email".into()),
            user_channel_id: Some(addr.into()),
            state: Some(state.into()),
            unsubscription_code: code.map(Into::into),
        }
    }

    #[test]
    fn recognises_only_the_same_unsubscribe() {
        let s = sub("deleted", Some("12345"), "Bar@Foo.com");
        assert!(already_unsubscribed(&s, "12345", "bar@foo.com"));
        assert!(!already_unsubscribed(&s, "12346", "bar@foo.com"));
        assert!(!already_unsubscribed(&s, "12345", "other@foo.com"));
        assert!(!already_unsubscribed(
            &sub("confirmed", Some("12345"), "bar@foo.com"),
            "12345",
            "bar@foo.com"
        ));
        assert!(!already_unsubscribed(
            &sub("unconfirmed", Some("12345"), "bar@foo.com"),
            "12345",
            "bar@foo.com"
        ));
        assert!(code_is_right(&sub("unconfirmed", None, "a@b"), "x"));
        assert!(!code_is_right(&sub("confirmed", Some("1"), "a@b"), "2"));
    }
}
