//! NotifyBC's rules for the calls notify-inbound makes, written once for both transports
//! ([`crate::FakeApi`] on axum and [`crate::fast::FastApi`] on `httparse`): the records, the
//! routing of a method and path to a call, and one function per call that reads or changes
//! the records and returns a transport-neutral [`Reply`]. A transport only parses HTTP into
//! a [`Request`] and writes the reply out.
//!
//! - `GET /api/subscriptions/{id}/unsubscribe`: unknown id → 404; with header
//!   `is_anonymous: true` the anonymous checks apply (the code must equal the subscription's
//!   when it has one, `userChannelId` when given must equal the subscription's
//!   case-insensitively) and in every case the subscription must be `confirmed`, else 403.
//!   `additionalServices=_all` also deletes the user's other confirmed subscriptions on the
//!   channel, a list of names those services'. In redirect mode ([`Store::set_redirect`])
//!   success is a 302 to `{url}?channel=email` and a refusal a 302 to
//!   `{url}?channel=email&err=...`, as NotifyBC does when
//!   `anonymousUnsubscription.acknowledgements.onScreen.redirectUrl` is set.
//! - `GET /api/subscriptions?filter=<json>` and `GET /api/bounces?filter=<json>`: records
//!   whose fields equal every entry of `where`; `GET /api/subscriptions/{id}`,
//!   `GET /api/bounces/{id}`.
//! - `POST /api/bounces` → 200 with the record and its id (state `active` by default);
//!   `PATCH /api/bounces/{id}` → 204. Like NotifyBC's schema, `bounceMessages` items keep
//!   only `date` and `message`.
//!
//! In *forgetful* mode ([`Store::set_forgetful`], for a load client that sends every
//! message to one recipient) effects are counted but not kept: an unsubscribe leaves the
//! subscription confirmed and bounce records are never stored, so every message takes the
//! path of a first message.
//!
//! Ids given by the fake are `"1"`, `"2"`, ... per collection, like the records of
//! NotifyBC's own tests. Look-ups by id and by address go through indexes, so the fake
//! stays cheap next to the server it feeds in a benchmark.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::state::CallCounts;

/// A subscription record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Subscription {
    pub id: String,
    pub service_name: String,
    pub channel: String,
    pub user_channel_id: String,
    pub state: String,
    pub unsubscription_code: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unsubscribed_additional_services: Option<Value>,
    /// How many times the unsubscribe endpoint moved this record from confirmed to deleted
    /// (in forgetful mode: how many times it would have).
    #[serde(skip)]
    pub times_unsubscribed: u32,
}

/// One item of a bounce record's `bounceMessages`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BounceMessage {
    pub date: String,
    pub message: String,
}

/// A bounce record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Bounce {
    pub id: String,
    pub channel: String,
    pub user_channel_id: String,
    pub state: String,
    pub hard_bounce_count: u64,
    pub bounce_messages: Vec<BounceMessage>,
}

/// The request methods the API knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Post,
    Patch,
    Other,
}

impl Method {
    pub fn from_name(name: &str) -> Method {
        match name {
            "GET" => Method::Get,
            "POST" => Method::Post,
            "PATCH" => Method::Patch,
            _ => Method::Other,
        }
    }
}

/// One call, as a transport parsed it.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    pub method: Method,
    /// The path, still percent-encoded.
    pub path: &'a str,
    /// The query after `?`, still percent-encoded.
    pub query: Option<&'a str>,
    /// The call carries `is_anonymous: true` ([`is_anonymous`] of its first such field).
    pub anonymous: bool,
    pub body: &'a [u8],
}

/// Whether an `is_anonymous` header field's value asks for the anonymous checks.
pub fn is_anonymous(value: &[u8]) -> bool {
    value.eq_ignore_ascii_case(b"true")
}

/// The body of a [`Reply`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    Empty,
    Text(String),
    Json(Vec<u8>),
}

/// An answer, for the transport to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub status: u16,
    /// The `Location` of a redirect.
    pub location: Option<String>,
    pub body: Body,
}

impl Reply {
    pub fn status(status: u16) -> Reply {
        Reply {
            status,
            location: None,
            body: Body::Empty,
        }
    }

    fn text(status: u16, text: impl Into<String>) -> Reply {
        Reply {
            body: Body::Text(text.into()),
            ..Reply::status(status)
        }
    }

    pub fn json(value: &impl Serialize) -> Reply {
        // The records and counters always serialise.
        let body = serde_json::to_vec(value).unwrap_or_default();
        Reply {
            body: Body::Json(body),
            ..Reply::status(200)
        }
    }

    fn found(location: String) -> Reply {
        Reply {
            location: Some(location),
            ..Reply::status(302)
        }
    }

    /// The `Content-Type` of the body, if there is one.
    pub fn content_type(&self) -> Option<&'static str> {
        match self.body {
            Body::Empty => None,
            Body::Text(_) => Some("text/plain; charset=utf-8"),
            Body::Json(_) => Some("application/json"),
        }
    }

    pub fn body_bytes(&self) -> &[u8] {
        match &self.body {
            Body::Empty => b"",
            Body::Text(t) => t.as_bytes(),
            Body::Json(j) => j,
        }
    }
}

/// The calls the API answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route<'a> {
    FindSubscriptions,
    GetSubscription(&'a str),
    Unsubscribe(&'a str),
    FindBounces,
    CreateBounce,
    GetBounce(&'a str),
    PatchBounce(&'a str),
}

/// The route of a method and path: 404 for an unknown path, 405 for a method the path
/// does not take.
fn route(method: Method, path: &str) -> Result<Route<'_>, Reply> {
    let segment = |s: &&str| !s.is_empty() && !s.contains('/');
    let route = match (method, path) {
        (Method::Get, "/api/subscriptions") => Route::FindSubscriptions,
        (Method::Get, "/api/bounces") => Route::FindBounces,
        (Method::Post, "/api/bounces") => Route::CreateBounce,
        (_, "/api/subscriptions" | "/api/bounces") => return Err(Reply::status(405)),
        _ => {
            if let Some(id) = path
                .strip_prefix("/api/subscriptions/")
                .and_then(|rest| rest.strip_suffix("/unsubscribe"))
                .filter(segment)
            {
                match method {
                    Method::Get => Route::Unsubscribe(id),
                    _ => return Err(Reply::status(405)),
                }
            } else if let Some(id) = path.strip_prefix("/api/subscriptions/").filter(segment) {
                match method {
                    Method::Get => Route::GetSubscription(id),
                    _ => return Err(Reply::status(405)),
                }
            } else if let Some(id) = path.strip_prefix("/api/bounces/").filter(segment) {
                match method {
                    Method::Get => Route::GetBounce(id),
                    Method::Patch => Route::PatchBounce(id),
                    _ => return Err(Reply::status(405)),
                }
            } else {
                return Err(Reply::status(404));
            }
        }
    };
    Ok(route)
}

/// A path parameter, percent-decoded; `None` unless UTF-8.
fn path_segment(raw: &str) -> Option<std::borrow::Cow<'_, str>> {
    percent_encoding::percent_decode_str(raw).decode_utf8().ok()
}

/// The query parameters, percent-decoded (`+` is a space, as in a form); the last of a
/// repeated name wins.
fn params(raw: Option<&str>) -> HashMap<String, String> {
    let decode = |s: &str| {
        percent_encoding::percent_decode_str(&s.replace('+', " "))
            .decode_utf8_lossy()
            .into_owned()
    };
    raw.unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(k), decode(v))
        })
        .collect()
}

/// The `where` object of a `filter` query parameter (every record without one); `Err` is
/// the text of a 400.
fn where_of(query: Option<&str>) -> Result<Map<String, Value>, String> {
    let Some(filter) = params(query).remove("filter") else {
        return Ok(Map::new());
    };
    let filter: Value =
        serde_json::from_str(&filter).map_err(|_| "filter is not JSON".to_string())?;
    match filter.get("where") {
        None => Ok(Map::new()),
        Some(Value::Object(w)) => Ok(w.clone()),
        Some(_) => Err("where is not an object".to_string()),
    }
}

/// Whether the record's field `key` equals `want`, as NotifyBC's `where` compares.
fn has(record: &impl Serialize, text: Option<&str>, key: &str, want: &Value) -> bool {
    match text {
        Some(text) => want.as_str() == Some(text),
        // Fields without a fast path: compare the record as NotifyBC returns it.
        None => serde_json::to_value(record).is_ok_and(|v| v.get(key) == Some(want)),
    }
}

fn subscription_matches(s: &Subscription, filter: &Map<String, Value>) -> bool {
    filter.iter().all(|(key, want)| {
        let text = match key.as_str() {
            "id" => Some(&s.id),
            "serviceName" => Some(&s.service_name),
            "channel" => Some(&s.channel),
            "userChannelId" => Some(&s.user_channel_id),
            "state" => Some(&s.state),
            "unsubscriptionCode" => Some(&s.unsubscription_code),
            _ => None,
        };
        has(s, text.map(String::as_str), key, want)
    })
}

fn bounce_matches(b: &Bounce, filter: &Map<String, Value>) -> bool {
    filter.iter().all(|(key, want)| {
        let text = match key.as_str() {
            "id" => Some(&b.id),
            "channel" => Some(&b.channel),
            "userChannelId" => Some(&b.user_channel_id),
            "state" => Some(&b.state),
            _ => None,
        };
        has(b, text.map(String::as_str), key, want)
    })
}

/// `bounceMessages` as NotifyBC's schema keeps them: `date` and `message` only.
fn bounce_messages(value: &Value) -> Result<Vec<BounceMessage>, String> {
    Vec::<BounceMessage>::deserialize(value).map_err(|e| format!("bounceMessages: {e}"))
}

/// Adds `i` to the list of `key` in an index by address, keeping creation order.
fn index_add(index: &mut HashMap<String, Vec<usize>>, key: &str, i: usize) {
    let list = index.entry(key.to_string()).or_default();
    if let Err(at) = list.binary_search(&i) {
        list.insert(at, i);
    }
}

fn index_remove(index: &mut HashMap<String, Vec<usize>>, key: &str, i: usize) {
    if let Some(list) = index.get_mut(key) {
        list.retain(|&x| x != i);
    }
}

/// The subscriptions and bounce records, and the calls received.
#[derive(Debug, Default)]
pub struct Store {
    subscriptions: Vec<Subscription>,
    subscription_at: HashMap<String, usize>,
    subscriptions_of: HashMap<String, Vec<usize>>,
    bounces: Vec<Bounce>,
    bounce_at: HashMap<String, usize>,
    bounces_of: HashMap<String, Vec<usize>>,
    next_subscription: u64,
    next_bounce: u64,
    redirect: Option<String>,
    forgetful: bool,
    calls: CallCounts,
}

impl Store {
    // ---- seeding and inspecting ----

    /// Adds an email subscription for `service` in `state` under `id`, or under the next
    /// free number when `id` is `None`, replacing any subscription with that id; returns
    /// its id.
    pub fn insert_subscription(
        &mut self,
        id: Option<&str>,
        service: &str,
        user_channel_id: &str,
        code: &str,
        state: &str,
    ) -> String {
        let id = match id {
            Some(id) => id.to_string(),
            None => loop {
                self.next_subscription += 1;
                let id = self.next_subscription.to_string();
                if !self.subscription_at.contains_key(&id) {
                    break id;
                }
            },
        };
        let record = Subscription {
            id: id.clone(),
            service_name: service.to_string(),
            channel: "email".to_string(),
            user_channel_id: user_channel_id.to_string(),
            state: state.to_string(),
            unsubscription_code: code.to_string(),
            unsubscribed_additional_services: None,
            times_unsubscribed: 0,
        };
        let i = match self.subscription_at.get(&id) {
            Some(&i) => {
                let old = std::mem::replace(&mut self.subscriptions[i], record);
                index_remove(&mut self.subscriptions_of, &old.user_channel_id, i);
                i
            }
            None => {
                self.subscriptions.push(record);
                self.subscription_at
                    .insert(id.clone(), self.subscriptions.len() - 1);
                self.subscriptions.len() - 1
            }
        };
        index_add(&mut self.subscriptions_of, user_channel_id, i);
        id
    }

    pub fn subscription(&self, id: &str) -> Option<&Subscription> {
        self.subscription_at
            .get(id)
            .map(|&i| &self.subscriptions[i])
    }

    /// Every subscription, in creation order.
    pub fn subscriptions(&self) -> &[Subscription] {
        &self.subscriptions
    }

    /// Adds an active email bounce record with this count and no messages; returns its id.
    pub fn add_bounce(&mut self, user_channel_id: &str, hard_bounce_count: u64) -> String {
        self.next_bounce += 1;
        let record = Bounce {
            id: self.next_bounce.to_string(),
            channel: "email".to_string(),
            user_channel_id: user_channel_id.to_string(),
            state: "active".to_string(),
            hard_bounce_count,
            bounce_messages: Vec::new(),
        };
        let id = record.id.clone();
        self.keep_bounce(record);
        id
    }

    fn keep_bounce(&mut self, record: Bounce) {
        let i = self.bounces.len();
        self.bounce_at.insert(record.id.clone(), i);
        index_add(&mut self.bounces_of, &record.user_channel_id, i);
        self.bounces.push(record);
    }

    pub fn bounce(&self, id: &str) -> Option<&Bounce> {
        self.bounce_at.get(id).map(|&i| &self.bounces[i])
    }

    /// Every bounce record, in creation order.
    pub fn bounces(&self) -> &[Bounce] {
        &self.bounces
    }

    /// The bounce records of an address, in creation order.
    pub fn bounces_of(&self, user_channel_id: &str) -> Vec<Bounce> {
        self.bounces_of
            .get(user_channel_id)
            .into_iter()
            .flatten()
            .map(|&i| self.bounces[i].clone())
            .collect()
    }

    /// Redirect mode for the unsubscribe endpoint; `None` answers 200 / 403 instead.
    pub fn set_redirect(&mut self, url: Option<&str>) {
        self.redirect = url.map(str::to_string);
    }

    /// Forgetful mode: effects are counted but not kept.
    pub fn set_forgetful(&mut self, forgetful: bool) {
        self.forgetful = forgetful;
    }

    /// Counts a request the transport could not read as refused.
    pub fn count_refused(&mut self) {
        self.calls.refused += 1;
    }

    /// The calls received, by endpoint (the connection fields are the transport's).
    pub fn calls(&self) -> CallCounts {
        self.calls
    }

    // ---- the calls ----

    /// Answers one call: routes it, counts it and applies NotifyBC's rules.
    pub fn answer(&mut self, request: &Request<'_>) -> Reply {
        let route = match route(request.method, request.path) {
            Ok(route) => route,
            Err(reply) => return reply,
        };
        let query = request.query;
        let reply = match route {
            Route::FindSubscriptions => {
                self.calls.find_subscriptions += 1;
                self.find_subscriptions(query)
            }
            Route::GetSubscription(id) => {
                self.calls.get_subscription += 1;
                match path_segment(id) {
                    Some(id) => self.get_subscription(&id),
                    None => Reply::status(400),
                }
            }
            Route::Unsubscribe(id) => match path_segment(id) {
                Some(id) => self.unsubscribe(&id, &params(query), request.anonymous),
                None => {
                    self.calls.unsubscribe += 1;
                    Reply::status(400)
                }
            },
            Route::FindBounces => {
                self.calls.find_bounces += 1;
                self.find_bounces(query)
            }
            Route::CreateBounce => {
                self.calls.create_bounce += 1;
                self.create_bounce(request.body)
            }
            Route::GetBounce(id) => {
                self.calls.get_bounce += 1;
                match path_segment(id) {
                    Some(id) => self.get_bounce(&id),
                    None => Reply::status(400),
                }
            }
            Route::PatchBounce(id) => {
                self.calls.patch_bounce += 1;
                match path_segment(id) {
                    Some(id) => self.patch_bounce(&id, request.body),
                    None => Reply::status(400),
                }
            }
        };
        if matches!(reply.status, 400 | 403 | 404)
            || reply.location.as_ref().is_some_and(|l| l.contains("&err="))
        {
            self.calls.refused += 1;
        }
        reply
    }

    /// `GET /api/subscriptions?filter=...`
    pub fn find_subscriptions(&self, query: Option<&str>) -> Reply {
        let filter = match where_of(query) {
            Ok(f) => f,
            Err(why) => return Reply::text(400, why),
        };
        let candidates: Box<dyn Iterator<Item = &Subscription>> =
            match (filter.get("id"), filter.get("userChannelId")) {
                (Some(Value::String(id)), _) => Box::new(self.subscription(id).into_iter()),
                (_, Some(Value::String(address))) => Box::new(
                    self.subscriptions_of
                        .get(address)
                        .into_iter()
                        .flatten()
                        .map(|&i| &self.subscriptions[i]),
                ),
                _ => Box::new(self.subscriptions.iter()),
            };
        let found: Vec<&Subscription> = candidates
            .filter(|s| subscription_matches(s, &filter))
            .collect();
        Reply::json(&found)
    }

    /// `GET /api/subscriptions/{id}`
    pub fn get_subscription(&self, id: &str) -> Reply {
        match self.subscription(id) {
            Some(s) => Reply::json(s),
            None => Reply::status(404),
        }
    }

    /// `GET /api/subscriptions/{id}/unsubscribe?...`, its parameters decoded.
    pub fn unsubscribe(
        &mut self,
        id: &str,
        query: &HashMap<String, String>,
        anonymous: bool,
    ) -> Reply {
        let additional: Vec<&str> = query
            .get("additionalServices")
            .map(|v| v.split(',').collect())
            .unwrap_or_default();
        let all = additional == ["_all"];
        if all {
            self.calls.unsubscribe_all += 1;
        } else {
            self.calls.unsubscribe += 1;
        }
        let Some(&index) = self.subscription_at.get(id) else {
            // NotifyBC answers 404 before its redirect handling.
            return Reply::status(404);
        };
        let target = &self.subscriptions[index];
        let mut forbidden = target.state != "confirmed";
        if anonymous {
            let code = query.get("unsubscriptionCode").map(String::as_str);
            if !target.unsubscription_code.is_empty()
                && code != Some(target.unsubscription_code.as_str())
            {
                forbidden = true;
            }
            if let Some(address) = query.get("userChannelId").filter(|a| !a.is_empty())
                && address.to_lowercase() != target.user_channel_id.to_lowercase()
            {
                forbidden = true;
            }
        }
        let channel = target.channel.clone();
        if forbidden {
            return match &self.redirect {
                Some(url) => Reply::found(format!(
                    "{url}?channel={channel}&err=HttpException%3A%20Forbidden"
                )),
                None => Reply::status(403),
            };
        }
        let others: Vec<usize> = if additional.is_empty() {
            Vec::new()
        } else {
            self.subscriptions_of
                .get(&target.user_channel_id)
                .into_iter()
                .flatten()
                .copied()
                .filter(|&i| {
                    let x = &self.subscriptions[i];
                    i != index
                        && x.channel == channel
                        && if all {
                            x.state == "confirmed"
                        } else {
                            additional.contains(&x.service_name.as_str())
                        }
                })
                .collect()
        };
        for &i in others.iter().chain(std::iter::once(&index)) {
            let x = &mut self.subscriptions[i];
            if x.state != "deleted" {
                x.times_unsubscribed += 1;
            }
            if !self.forgetful {
                x.state = "deleted".to_string();
            }
        }
        if !additional.is_empty() && !self.forgetful {
            let names: Vec<&str> = others
                .iter()
                .map(|&i| self.subscriptions[i].service_name.as_str())
                .collect();
            let ids: Vec<&str> = others
                .iter()
                .map(|&i| self.subscriptions[i].id.as_str())
                .collect();
            let done = json!({ "names": names, "ids": ids });
            self.subscriptions[index].unsubscribed_additional_services = Some(done);
        }
        match &self.redirect {
            Some(url) => Reply::found(format!("{url}?channel={channel}")),
            None => Reply::text(200, "You have been un-subscribed."),
        }
    }

    /// `GET /api/bounces?filter=...`
    pub fn find_bounces(&self, query: Option<&str>) -> Reply {
        let filter = match where_of(query) {
            Ok(f) => f,
            Err(why) => return Reply::text(400, why),
        };
        let candidates: Box<dyn Iterator<Item = &Bounce>> = match filter.get("userChannelId") {
            Some(Value::String(address)) => Box::new(
                self.bounces_of
                    .get(address)
                    .into_iter()
                    .flatten()
                    .map(|&i| &self.bounces[i]),
            ),
            _ => Box::new(self.bounces.iter()),
        };
        let found: Vec<&Bounce> = candidates.filter(|b| bounce_matches(b, &filter)).collect();
        Reply::json(&found)
    }

    /// `GET /api/bounces/{id}`
    pub fn get_bounce(&self, id: &str) -> Reply {
        match self.bounce(id) {
            Some(b) => Reply::json(b),
            None => Reply::status(404),
        }
    }

    /// `POST /api/bounces`
    pub fn create_bounce(&mut self, body: &[u8]) -> Reply {
        let Ok(body) = serde_json::from_slice::<Value>(body) else {
            return Reply::status(400);
        };
        let messages = match body.get("bounceMessages") {
            Some(v) => match bounce_messages(v) {
                Ok(m) => m,
                Err(why) => return Reply::text(400, why),
            },
            None => Vec::new(),
        };
        let text = |k: &str| body.get(k).and_then(Value::as_str).map(str::to_string);
        self.next_bounce += 1;
        let record = Bounce {
            id: self.next_bounce.to_string(),
            channel: text("channel").unwrap_or_default(),
            user_channel_id: text("userChannelId").unwrap_or_default(),
            state: text("state").unwrap_or_else(|| "active".to_string()),
            hard_bounce_count: body
                .get("hardBounceCount")
                .and_then(Value::as_u64)
                .unwrap_or(0),
            bounce_messages: messages,
        };
        let reply = Reply::json(&record);
        if !self.forgetful {
            self.keep_bounce(record);
        }
        reply
    }

    /// `PATCH /api/bounces/{id}`
    pub fn patch_bounce(&mut self, id: &str, body: &[u8]) -> Reply {
        let Ok(body) = serde_json::from_slice::<Value>(body) else {
            return Reply::status(400);
        };
        let messages = match body.get("bounceMessages") {
            Some(v) => match bounce_messages(v) {
                Ok(m) => Some(m),
                Err(why) => return Reply::text(400, why),
            },
            None => None,
        };
        if self.forgetful {
            return Reply::status(204);
        }
        let Some(&i) = self.bounce_at.get(id) else {
            return Reply::status(404);
        };
        let record = &mut self.bounces[i];
        let address = record.user_channel_id.clone();
        if let Some(m) = messages {
            record.bounce_messages = m;
        }
        if let Some(n) = body.get("hardBounceCount").and_then(Value::as_u64) {
            record.hard_bounce_count = n;
        }
        for (key, field) in [
            ("state", &mut record.state),
            ("channel", &mut record.channel),
            ("userChannelId", &mut record.user_channel_id),
        ] {
            if let Some(v) = body.get(key).and_then(Value::as_str) {
                *field = v.to_string();
            }
        }
        if record.user_channel_id != address {
            let moved = record.user_channel_id.clone();
            index_remove(&mut self.bounces_of, &address, i);
            index_add(&mut self.bounces_of, &moved, i);
        }
        Reply::status(204)
    }
}
