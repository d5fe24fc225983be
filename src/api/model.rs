//! The JSON the API client reads and writes: the records the service returns
//! ([`Subscription`], [`Bounce`]), the outcome of the unsubscribe call, and the request
//! bodies and `filter` parameters, all through serde.
//!
//! The bodies borrow what they carry (the raw bounce message is most of a bounce body), so
//! writing one copies the message once, into the JSON text.

use serde::ser::SerializeSeq;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

/// A subscription as the service returns it. Only the fields the flows use are read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Subscription {
    #[serde(deserialize_with = "id_string")]
    pub id: String,
    #[serde(default)]
    pub service_name: Option<String>,
    #[serde(default)]
    pub channel: Option<String>,
    #[serde(default)]
    pub user_channel_id: Option<String>,
    #[serde(default)]
    pub state: Option<String>,
    #[serde(default)]
    pub unsubscription_code: Option<String>,
}

/// A bounce record. `bounce_messages` items are kept as the service sent them so that a
/// PATCH writes back exactly what was read, plus the new item.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Bounce {
    #[serde(deserialize_with = "id_string")]
    pub id: String,
    #[serde(default)]
    pub channel: Option<String>,
    #[serde(default)]
    pub user_channel_id: Option<String>,
    #[serde(default)]
    pub state: Option<String>,
    #[serde(default)]
    pub hard_bounce_count: Option<u64>,
    #[serde(default)]
    pub bounce_messages: Option<Vec<Value>>,
}

/// The body of `POST /bounces`: `{channel, userChannelId, hardBounceCount, bounceMessages}`.
#[derive(Debug, Clone, Copy, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NewBounce<'a> {
    pub channel: &'a str,
    pub user_channel_id: &'a str,
    pub hard_bounce_count: u64,
    pub bounce_messages: BounceMessages<'a>,
}

/// `bounceMessages` as written: the new item `{date, message}` first, then the items the
/// record already held, as the service sent them.
#[derive(Debug, Clone, Copy)]
pub struct BounceMessages<'a> {
    /// ISO-8601, as JavaScript's `toISOString()` writes it.
    pub date: &'a str,
    pub message: &'a str,
    pub older: &'a [Value],
}

impl BounceMessages<'_> {
    /// About how long the JSON text is, to size its buffer once.
    pub(super) fn size_hint(&self) -> usize {
        // The stored messages dominate; escaping adds a little to each.
        (self.message.len() + 64) * (self.older.len() + 1) * 11 / 10
    }
}

/// The new item of `bounceMessages`.
#[derive(Serialize)]
struct BounceMessage<'a> {
    date: &'a str,
    message: &'a str,
}

impl Serialize for BounceMessages<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut items = serializer.serialize_seq(Some(self.older.len() + 1))?;
        items.serialize_element(&BounceMessage {
            date: self.date,
            message: self.message,
        })?;
        for item in self.older {
            items.serialize_element(item)?;
        }
        items.end()
    }
}

/// The body of the `PATCH /bounces/{id}` that counts a bounce.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct BounceCount<'a> {
    pub hard_bounce_count: u64,
    pub bounce_messages: BounceMessages<'a>,
}

/// The body of the `PATCH /bounces/{id}` that retires a record: `{"state":"deleted"}`.
#[derive(Serialize)]
pub(super) struct BounceState {
    pub state: &'static str,
}

/// A LoopBack `filter` query parameter: `{"where":{...}}`.
#[derive(Serialize)]
pub(super) struct Filter<W> {
    #[serde(rename = "where")]
    pub condition: W,
}

/// `{"id":..,"channel":"email","state":"confirmed","unsubscriptionCode":..}`
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct ConfirmedSubscription<'a> {
    pub id: &'a str,
    pub channel: &'static str,
    pub state: &'static str,
    pub unsubscription_code: &'a str,
}

/// `{"id":..}`
#[derive(Serialize)]
pub(super) struct ById<'a> {
    pub id: &'a str,
}

/// `{"channel":"email","state":"active","userChannelId":..}`
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct ActiveBounces<'a> {
    pub channel: &'static str,
    pub state: &'static str,
    pub user_channel_id: &'a str,
}

/// Ids are strings in NotifyBC (MongoDB ObjectIds); a service that uses numbers works too.
fn id_string<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    match Value::deserialize(d)? {
        Value::String(s) => Ok(s),
        Value::Number(n) => Ok(n.to_string()),
        other => Err(serde::de::Error::custom(format!(
            "expected a string or number id, got {other}"
        ))),
    }
}

/// How the service answered `GET /subscriptions/{id}/unsubscribe`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UnsubscribeOutcome {
    /// 2xx: unsubscribed.
    Done,
    /// 3xx whose `Location` has no `err` parameter: NotifyBC's success redirect.
    Redirected { location: String },
    /// 3xx whose `Location` carries `err`: NotifyBC's failure redirect, a refusal.
    RefusedByRedirect { err: String },
    /// 403: wrong code or address, or the subscription is not confirmed (any more).
    Forbidden,
    /// 404: no such subscription.
    NotFound,
}

impl UnsubscribeOutcome {
    pub fn is_success(&self) -> bool {
        matches!(
            self,
            UnsubscribeOutcome::Done | UnsubscribeOutcome::Redirected { .. }
        )
    }
}
