//! The `bn` flow (docs/behaviour.md §4.2): NotifyBC's five steps in their order, made safe to retry.
//!
//! 1–2. The classifier decides whether the message counts (it is pure; it runs once the
//!      subscriber's address is known, since the address filter needs it).
//! 3.   The subscription must be found confirmed with this id and code, else the message is
//!      accepted and dropped.
//! 4.   Under a per-address lock, the active bounce record is read and written back with the
//!      message prepended (and the count raised when it counts), or created.
//! 5.   Past `unsub_threshold` (or on a complaint, when `complaints_unsubscribe` is on) the
//!      subscriber is unsubscribed from everything and the record set to `deleted`.
//!
//! Retry safety comes from the record itself: NotifyBC keeps only `{date, message}` for
//! each item of `bounceMessages` (its schema drops any other field), so a message already
//! there (same stored text, or same `Message-ID`) is recognised as a retry and not counted
//! again; step 5 is then re-attempted if it is still due. A threshold unsubscribe that went
//! through but whose record was not yet marked `deleted` is finished by the retry too.
//!
//! A message that cannot be parsed at all is accepted (250) and recorded as not counting,
//! unlike NotifyBC, which answered 451: a message that cannot be parsed now cannot be
//! parsed on any retry, so 451 only makes the sender retry for days and then bounce to its
//! postmaster, while recording keeps the raw message on the subscriber's record for an
//! operator to see.

use std::borrow::Cow;

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::Value;

use crate::api::{ApiError, Bounce, BounceMessages, NewBounce, UnsubscribeOutcome};

use super::{Envelope, Handled, Processor};
use crate::classify::decide;
use crate::outcome::BounceOutcome;

impl Processor {
    pub(super) async fn bounce(&self, envelope: &Envelope, raw: &[u8]) -> Handled {
        let handled = self.bounce_flow(envelope, raw).await;
        if handled.bounce.is_some() {
            return handled;
        }
        // Every path that did not say what became of the bounce is a temporary failure.
        handled.bounce(BounceOutcome::Temporary, None, None)
    }

    async fn bounce_flow(&self, envelope: &Envelope, raw: &[u8]) -> Handled {
        if !self.bounce.enabled {
            return Handled::ok(
                "bounce_disabled",
                "accepted; bounce handling is disabled here, message discarded",
            )
            .bounce(BounceOutcome::Disabled, None, None);
        }
        let r = &envelope.recipient;
        let found = match self.api.find_confirmed_subscriptions(&r.id, &r.code).await {
            Ok(found) => found,
            Err(e) => return Handled::api_failure(&e),
        };
        let address = match found.as_slice() {
            [one] => one.user_channel_id.clone().filter(|a| !a.is_empty()),
            _ => None,
        };
        let Some(address) = address else {
            let handled = self.no_subscription(envelope, raw).await;
            return match handled.outcome {
                "no_subscription" => {
                    handled.bounce(BounceOutcome::DroppedNoSubscription, None, None)
                }
                "threshold_unsubscribed" => {
                    handled.bounce(BounceOutcome::Unsubscribed, Some("threshold"), None)
                }
                _ => handled,
            };
        };
        let decision = decide(raw, &self.filters, &address);
        let _serialised = match self.locks.lock(&address).await {
            Ok(guard) => guard,
            Err(e) => return Handled::lock_failure(&e),
        };

        let record = match self.api.find_active_bounces(&address).await {
            Ok(records) => records.into_iter().next(),
            Err(e) => return Handled::api_failure(&e),
        };
        let stored = self.stored_text(raw);
        let (record_id, old_count, old_messages) = match record {
            Some(b) => (
                Some(b.id),
                b.hard_bounce_count.unwrap_or(0),
                b.bounce_messages.unwrap_or_default(),
            ),
            None => (None, 0, Vec::new()),
        };
        let duplicate = !old_messages.is_empty() && {
            let message_id = header_value(raw, "message-id");
            old_messages
                .iter()
                .any(|m| same_message(m, &stored, message_id.as_deref()))
        };

        let (bounce_id, count, mut outcome) = if duplicate {
            let Some(id) = record_id else {
                // A duplicate implies a record; keep the compiler and the reader sure of it.
                return Handled::ok("duplicate", "bounce already recorded").bounce(
                    BounceOutcome::Duplicate,
                    None,
                    Some(old_count),
                );
            };
            (id, old_count, "duplicate")
        } else {
            let mut counts = decision.counts;
            let mut outcome = if counts {
                "counted"
            } else if decision.unparsable {
                "unparsable_recorded"
            } else {
                "not_counted"
            };
            if counts && self.counted_within_window(&old_messages, &address) {
                counts = false;
                outcome = "not_counted_window";
            }
            let count = old_count + u64::from(counts);
            let date = now_iso();
            let messages = BounceMessages {
                date: &date,
                message: &stored,
                older: &old_messages,
            };
            let written = match record_id {
                Some(id) => self
                    .api
                    .update_bounce(&id, count, messages)
                    .await
                    .map(|()| id),
                None => self
                    .api
                    .create_bounce(&NewBounce {
                        channel: "email",
                        user_channel_id: &address,
                        hard_bounce_count: count,
                        bounce_messages: messages,
                    })
                    .await
                    .map(|b| b.id),
            };
            match written {
                Ok(id) => (id, count, outcome),
                Err(e) => return Handled::api_failure(&e),
            }
        };

        let complaint = decision.complaint && self.bounce.complaints_unsubscribe;
        if count > u64::from(self.bounce.unsub_threshold) || complaint {
            if let Err(e) = self.unsubscribe_all(envelope, &address, &bounce_id).await {
                return Handled::api_failure(&e)
                    .with_detail(format!("bounce recorded, unsubscribe pending: {e}"));
            }
            outcome = if complaint {
                "complaint_unsubscribed"
            } else {
                "threshold_unsubscribed"
            };
        }
        let text = match outcome {
            "duplicate" => "bounce already recorded",
            "not_counted" | "not_counted_window" | "unparsable_recorded" => {
                "bounce recorded, not counted"
            }
            "counted" => "bounce recorded",
            _ => "bounce recorded, subscriber unsubscribed",
        };
        let (reported, reason) = match outcome {
            "duplicate" => (BounceOutcome::Duplicate, None),
            "counted" => (BounceOutcome::Counted, None),
            "not_counted" => (BounceOutcome::NotCounted, Some(decision.why.as_str())),
            "not_counted_window" => (BounceOutcome::NotCounted, Some("count_window_secs")),
            "unparsable_recorded" => (BounceOutcome::NotCounted, Some("unparsable")),
            "complaint_unsubscribed" => (BounceOutcome::Unsubscribed, Some("complaint")),
            _ => (BounceOutcome::Unsubscribed, Some("threshold")),
        };
        Handled::ok(outcome, text)
            .bounce(reported, reason, Some(count))
            .with_detail(decision.why)
    }

    /// Step 5: unsubscribe from all services, then retire the bounce record. A refusal means
    /// the subscription is no longer confirmed (the code and address are its own), so there
    /// is nothing left to unsubscribe and the record is retired all the same.
    async fn unsubscribe_all(
        &self,
        envelope: &Envelope,
        address: &str,
        bounce_id: &str,
    ) -> Result<(), ApiError> {
        let r = &envelope.recipient;
        match self.api.unsubscribe(&r.id, &r.code, address, true).await? {
            UnsubscribeOutcome::Done | UnsubscribeOutcome::Redirected { .. } => {}
            refused => tracing::info!(
                id = r.id.as_str(),
                ?refused,
                "threshold unsubscribe refused; the subscription is no longer confirmed"
            ),
        }
        self.api.retire_bounce(bounce_id).await
    }

    /// Step 3 found no confirmed subscription: accept and drop. One case is finished first:
    /// an earlier attempt of this very message unsubscribed the subscriber (threshold or
    /// complaint) but failed to retire the bounce record, which still holds this message.
    async fn no_subscription(&self, envelope: &Envelope, raw: &[u8]) -> Handled {
        let dropped = Handled::ok(
            "no_subscription",
            "accepted; no confirmed subscription matches this bounce, message discarded",
        );
        let r = &envelope.recipient;
        let subscription = match self.api.get_subscription(&r.id).await {
            Ok(Some(s)) => s,
            Ok(None) | Err(ApiError::InvalidId { .. }) => return dropped,
            Err(e) => return Handled::api_failure(&e),
        };
        let code_matches = subscription.unsubscription_code.as_deref().unwrap_or("") == r.code;
        // The id exists: a different code is a failed guess, the same one is not (the
        // subscription is merely no longer confirmed).
        let dropped = dropped.with_code(code_matches);
        let Some(address) = subscription.user_channel_id.filter(|a| !a.is_empty()) else {
            return dropped;
        };
        if subscription.state.as_deref() != Some("deleted") || !code_matches {
            return dropped;
        }
        let _serialised = match self.locks.lock(&address).await {
            Ok(guard) => guard,
            Err(e) => return Handled::lock_failure(&e),
        };
        let record = match self.api.find_active_bounces(&address).await {
            Ok(records) => records.into_iter().next(),
            Err(e) => return Handled::api_failure(&e),
        };
        let Some(record) = record else {
            return dropped;
        };
        if !self.holds_this_unsubscribing_message(&record, raw, &address) {
            return dropped;
        }
        match self.api.retire_bounce(&record.id).await {
            Ok(()) => Handled::ok(
                "threshold_unsubscribed",
                "bounce already recorded, subscriber unsubscribed",
            ),
            Err(e) => Handled::api_failure(&e),
        }
    }

    fn holds_this_unsubscribing_message(&self, record: &Bounce, raw: &[u8], address: &str) -> bool {
        let stored = self.stored_text(raw);
        let message_id = header_value(raw, "message-id");
        let holds = record
            .bounce_messages
            .as_deref()
            .unwrap_or_default()
            .iter()
            .any(|m| same_message(m, &stored, message_id.as_deref()));
        let over = record.hard_bounce_count.unwrap_or(0) > u64::from(self.bounce.unsub_threshold);
        let complaint =
            self.bounce.complaints_unsubscribe && decide(raw, &self.filters, address).complaint;
        holds && (over || complaint)
    }

    /// The message as stored in `bounceMessages`: the raw text, cut at
    /// `max_stored_message_bytes` (on a character boundary) when that is set.
    fn stored_text<'a>(&self, raw: &'a [u8]) -> Cow<'a, str> {
        // Mail is nearly always valid UTF-8 (mostly ASCII): one fast validating pass and no
        // copy, and the replacing conversion only for the rare message that is not.
        let mut text = match std::str::from_utf8(raw) {
            Ok(valid) => Cow::Borrowed(valid),
            Err(_) => Cow::Owned(String::from_utf8_lossy(raw).into_owned()),
        };
        let cap = self.bounce.max_stored_message_bytes;
        if cap > 0 && text.len() > cap {
            let mut end = cap;
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            match &mut text {
                Cow::Borrowed(t) => *t = &t[..end],
                Cow::Owned(t) => t.truncate(end),
            }
        }
        text
    }

    /// `count_window_secs`: whether a stored message dated within the window counted. The
    /// record does not say which messages counted, so the recent ones are assessed again
    /// (only when the option is on; a cut stored message may assess differently).
    fn counted_within_window(&self, messages: &[Value], address: &str) -> bool {
        let window = self.bounce.count_window;
        if window.is_zero() {
            return false;
        }
        // A window too large to subtract from now reaches back to the beginning of time.
        let since = chrono::Duration::from_std(window)
            .ok()
            .and_then(|w| Utc::now().checked_sub_signed(w))
            .unwrap_or(DateTime::<Utc>::MIN_UTC);
        messages.iter().any(|m| {
            let recent = m
                .get("date")
                .and_then(Value::as_str)
                .and_then(|d| DateTime::parse_from_rfc3339(d).ok())
                .is_some_and(|d| d.with_timezone(&Utc) >= since);
            recent
                && m.get("message")
                    .and_then(Value::as_str)
                    .is_some_and(|text| decide(text.as_bytes(), &self.filters, address).counts)
        })
    }
}

/// JavaScript's `new Date().toISOString()`, which NotifyBC stores.
fn now_iso() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Whether a `bounceMessages` item is this message: the same stored text, or the same
/// `Message-ID` when both have one.
fn same_message(item: &Value, stored: &str, message_id: Option<&str>) -> bool {
    let Some(text) = item.get("message").and_then(Value::as_str) else {
        return false;
    };
    if text == stored {
        return true;
    }
    match message_id {
        Some(id) => header_value(text.as_bytes(), "message-id").as_deref() == Some(id),
        None => false,
    }
}

/// The unfolded, trimmed value of the first header `name` (lower case) of a raw message.
/// Reads only the header section.
fn header_value(raw: &[u8], name: &str) -> Option<String> {
    let mut found: Option<String> = None;
    for line in raw.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            break;
        }
        if line[0] == b' ' || line[0] == b'\t' {
            if let Some(v) = found.as_mut() {
                if !v.is_empty() {
                    v.push(' ');
                }
                v.push_str(String::from_utf8_lossy(line).trim());
            }
            continue;
        }
        if found.is_some() {
            break;
        }
        if let Some(colon) = line.iter().position(|&b| b == b':')
            && line[..colon]
                .trim_ascii()
                .eq_ignore_ascii_case(name.as_bytes())
        {
            found = Some(
                String::from_utf8_lossy(&line[colon + 1..])
                    .trim()
                    .to_string(),
            );
        }
    }
    found.filter(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn header_value_unfolds_and_stops_at_body() {
        let raw = b"Subject: a\r\nMessage-Id:\r\n <x@y>\r\nTo: b\r\n\r\nMessage-ID: <body@z>\r\n";
        assert_eq!(header_value(raw, "message-id").as_deref(), Some("<x@y>"));
        assert_eq!(header_value(raw, "subject").as_deref(), Some("a"));
        assert_eq!(
            header_value(b"To: a\n\nMessage-ID: <b>\n", "message-id"),
            None
        );
    }

    #[tokio::test]
    async fn a_huge_count_window_does_not_overflow() {
        let settings = crate::config::Settings::from_toml_str(&format!(
            "[bounce]\ncount_window_secs = {}\n",
            i64::MAX
        ))
        .unwrap();
        let p = Processor::new(&settings).unwrap();
        let old = json!({"date": "1970-01-02T00:00:00.000Z",
            "message": "Subject: x\r\n\r\nStatus: 5.1.1\r\nFinal-Recipient: rfc822; a@b.example\r\n"});
        assert!(p.counted_within_window(&[old], "a@b.example"));
        let p = Processor::new(
            &crate::config::Settings::from_toml_str("[bounce]\ncount_window_secs = 60\n").unwrap(),
        )
        .unwrap();
        let old = json!({"date": "1970-01-02T00:00:00.000Z", "message": "Status: 5.1.1"});
        assert!(!p.counted_within_window(&[old], "a@b.example"));
    }

    #[test]
    fn same_message_by_text_or_message_id() {
        let item =
            json!({"date": "2024-01-01T00:00:00.000Z", "message": "Message-ID: <a@b>\r\n\r\nx"});
        assert!(same_message(&item, "Message-ID: <a@b>\r\n\r\nx", None));
        assert!(same_message(
            &item,
            "Message-ID: <a@b>\r\n\r\ny",
            Some("<a@b>")
        ));
        assert!(!same_message(&item, "other", Some("<c@d>")));
        assert!(!same_message(&item, "other", None));
        assert!(!same_message(&json!({"date": "x"}), "", None));
    }
}
