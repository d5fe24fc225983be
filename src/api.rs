//! The client of the notification service's HTTP API (SPEC §5): exactly the calls the `un`
//! and `bn` flows make (§4.1, §4.2), nothing else.
//!
//! One [`ApiClient`] is built at start and shared. It sends over hyper's HTTP/1.1
//! connections, plain or over rustls, from a pool of its own (module `pool`: there is one
//! host and no proxy). It keeps connections alive and pooled (idle ones closed after 60 s,
//! at most `api.max_in_flight` idle, TCP keepalive and `TCP_NODELAY`), bounds the calls in
//! flight with a semaphore, puts `api.connect_timeout_ms` on each connect (TCP and TLS
//! handshake) and `api.timeout_ms` on each call, body included, and never follows a
//! redirect (a 3xx from the unsubscribe call is an answer, not a detour). https trusts the
//! webpki roots plus `api.ca_bundle`, with TLS 1.2 and 1.3 (ring), and presents
//! `api.client_cert` when set.
//!
//! Every id, code and address placed into a URL is percent-encoded with the character set of
//! JavaScript's `encodeURIComponent`, the one NotifyBC itself uses, so the requests are the
//! ones NotifyBC's own inbound server sent, and a crafted value can never add a path
//! segment, a query parameter or a fragment. Ids that the URL standard would resolve as a
//! dot segment (`.`, `..`) are refused before any request is made. The API base is parsed
//! once, at start, by the URL parser; each call's URI is that base with the encoded path and
//! query appended, which is already in the parser's normal form, so no call parses a URL
//! again.
//!
//! Errors never carry the access token or a request's query string (which holds an
//! unsubscription code): they name the method, the path and what to check.
//!
//! With [`ApiClient::with_metrics`] every call is counted by endpoint and status class, and
//! its latency observed (`api_requests_total`, `api_request_duration_seconds`).

mod pool;

use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use bytes::Bytes;
use http::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderName, HeaderValue, LOCATION};
use http::{Method, Request, Response, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;
use tokio::sync::Semaphore;

use crate::config::{ApiSettings, Settings};
use crate::json;
use crate::metrics::{ApiEndpoint, Metrics};

/// What JavaScript's `encodeURIComponent` leaves alone: letters, digits and `-_.!~*'()`.
/// Used for path segments and query components alike; `/`, `?`, `#`, `%`, `&`, `=` and
/// everything non-ASCII are always escaped.
const URI_COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'!')
    .remove(b'~')
    .remove(b'*')
    .remove(b'\'')
    .remove(b'(')
    .remove(b')');

/// Encodes one path segment. `.` and `..` are refused: the URL parser would resolve them
/// (escaped or not) and the request would reach another path.
fn path_segment(value: &str) -> Result<String, ApiError> {
    if value.is_empty() || value.trim_matches('.').is_empty() {
        return Err(ApiError::InvalidId {
            value: value.to_string(),
        });
    }
    Ok(utf8_percent_encode(value, URI_COMPONENT).collect())
}

/// Encodes one query component (a value after `=`).
fn query_component(value: &str) -> String {
    // Collected piece by piece: `to_string` would go through the formatting machinery
    // once per escaped character, and a filter is mostly escaped characters.
    utf8_percent_encode(value, URI_COMPONENT).collect()
}

/// A JSON string literal for `value` (quotes and escapes included).
fn json_string(value: &str) -> String {
    json::string(value)
}

/// What went wrong with a call; each message says what to check.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error(
        "cannot reach the notification service for {method} {path}: {detail}; check \
         internal_http_host / rest_api_root and that the service is up"
    )]
    Unreachable {
        method: Method,
        path: String,
        detail: String,
    },
    #[error(
        "the notification service did not answer {method} {path} within {timeout_ms} ms \
         (api.timeout_ms / api.connect_timeout_ms)"
    )]
    Timeout {
        method: Method,
        path: String,
        timeout_ms: u64,
    },
    #[error(
        "too many calls to the notification service in flight: waited {timeout_ms} ms for \
         one of api.max_in_flight = {max_in_flight} to finish"
    )]
    Busy {
        timeout_ms: u64,
        max_in_flight: usize,
    },
    #[error("the notification service answered {method} {path} with HTTP {status}{hint}")]
    Status {
        method: Method,
        path: String,
        status: u16,
        hint: &'static str,
    },
    #[error(
        "the notification service answered {method} {path} with a body that is not the \
         expected JSON: {detail}"
    )]
    BadJson {
        method: Method,
        path: String,
        detail: String,
    },
    #[error("cannot read {key} file {path}: {source}")]
    File {
        key: &'static str,
        path: String,
        source: std::io::Error,
    },
    #[error("{key} file {path} is not usable: {detail}")]
    Tls {
        key: &'static str,
        path: String,
        detail: String,
    },
    #[error("api.access_token cannot be sent as an HTTP header: it holds a control character")]
    BadToken,
    #[error("cannot set up the HTTP client for the notification service: {0}")]
    Client(String),
    #[error("the subscription id {value:?} cannot be placed in a URL path")]
    InvalidId { value: String },
}

impl ApiError {
    /// The HTTP status the service answered, if that was the failure.
    pub fn status(&self) -> Option<u16> {
        match self {
            ApiError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    fn status_of(method: Method, path: &str, status: StatusCode) -> ApiError {
        let hint = match status.as_u16() {
            401 => {
                ": not authenticated; check api.access_token or api.client_cert, or add \
                   this server's address to NotifyBC's adminIps"
            }
            403 => {
                ": not allowed; this call needs NotifyBC admin rights (adminIps, access \
                   token or client certificate)"
            }
            404 => ": not found; check internal_http_host and rest_api_root",
            429 => ": rate limited; the sender will retry",
            500..=599 => ": the service failed; the sender will retry",
            _ => "",
        };
        ApiError::Status {
            method,
            path: path.to_string(),
            status: status.as_u16(),
            hint,
        }
    }
}

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

/// The body of `POST /bounces` (§4.2 step 4).
#[derive(Debug, Clone, Copy)]
pub struct NewBounce<'a> {
    pub channel: &'a str,
    pub user_channel_id: &'a str,
    pub hard_bounce_count: u64,
    pub bounce_messages: BounceMessages<'a>,
}

impl NewBounce<'_> {
    fn to_json(self) -> Vec<u8> {
        bounce_body(
            &[
                ("channel", self.channel),
                ("userChannelId", self.user_channel_id),
            ],
            self.hard_bounce_count,
            self.bounce_messages,
        )
    }
}

/// `{"k":"v",...,"hardBounceCount":n,"bounceMessages":[...]}`: the body of `POST /bounces`
/// (with `channel` and `userChannelId`) and of the `PATCH` that counts a bounce (without).
fn bounce_body(
    fields: &[(&str, &str)],
    hard_bounce_count: u64,
    messages: BounceMessages<'_>,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(messages.size_hint() + 128);
    out.push(b'{');
    for (key, value) in fields {
        json::push_string(&mut out, key);
        out.push(b':');
        json::push_string(&mut out, value);
        out.push(b',');
    }
    out.extend_from_slice(format!("\"hardBounceCount\":{hard_bounce_count}").as_bytes());
    out.extend_from_slice(b",\"bounceMessages\":");
    messages.push_json(&mut out);
    out.push(b'}');
    out
}

/// `bounceMessages` as written: the new item `{date, message}` first, then the items the
/// record already held, as the service sent them (§4.2 step 4). Written as JSON directly,
/// since the raw messages in it are most of the body.
#[derive(Debug, Clone, Copy)]
pub struct BounceMessages<'a> {
    /// ISO-8601, as JavaScript's `toISOString()` writes it.
    pub date: &'a str,
    pub message: &'a str,
    pub older: &'a [Value],
}

impl BounceMessages<'_> {
    fn size_hint(&self) -> usize {
        // The stored messages dominate; escaping adds a little to each.
        (self.message.len() + 64) * (self.older.len() + 1) * 11 / 10
    }

    fn push_json(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"[{\"date\":");
        json::push_string(out, self.date);
        out.extend_from_slice(b",\"message\":");
        json::push_string(out, self.message);
        out.push(b'}');
        for item in self.older {
            out.push(b',');
            json::push_value(out, item);
        }
        out.push(b']');
    }
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

/// How the service answered `GET /subscriptions/{id}/unsubscribe` (§4.1).
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

/// The header that asks NotifyBC for its anonymous checks (§4.1).
const IS_ANONYMOUS: HeaderName = HeaderName::from_static("is_anonymous");

/// An answer whose body may still be read, with the connection it came on (back to the
/// pool once the answer is dropped, so declared after it), the permit that counts it as in
/// flight and the instant by which the body must have been read (`api.timeout_ms` after the
/// call started).
struct Call<'a> {
    response: Response<Incoming>,
    connection: pool::Pooled<'a>,
    deadline: tokio::time::Instant,
    _permit: tokio::sync::OwnedSemaphorePermit,
}

/// The shared API client. Cheap to clone.
#[derive(Clone)]
pub struct ApiClient {
    pool: Arc<pool::Pool>,
    /// `internal_http_host` + `rest_api_root` as the URL parser writes it, without user
    /// info, query, fragment or a trailing `/`. A call's URI is this with its path (and
    /// query) appended.
    base: String,
    /// `api.access_token`, or `Basic` credentials from user info in `internal_http_host`,
    /// which take precedence. Marked sensitive.
    authorization: Option<HeaderValue>,
    permits: Arc<Semaphore>,
    max_in_flight: usize,
    timeout_ms: u64,
    metrics: Option<Arc<Metrics>>,
}

impl std::fmt::Debug for ApiClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiClient")
            .field("base", &self.base)
            .field("max_in_flight", &self.max_in_flight)
            .field("timeout_ms", &self.timeout_ms)
            .finish_non_exhaustive()
    }
}

impl ApiClient {
    /// Builds the client from `internal_http_host`, `rest_api_root` and the `api` section.
    /// Certificate and key files are read here, so a bad file stops the start.
    pub fn new(settings: &Settings) -> Result<ApiClient, ApiError> {
        let api = &settings.api;
        let mut authorization = None;
        if !api.access_token.is_empty() {
            let mut value =
                HeaderValue::from_str(&api.access_token).map_err(|_| ApiError::BadToken)?;
            value.set_sensitive(true);
            authorization = Some(value);
        }
        let tls = tls_config(api)?;
        let (base, basic) = base_and_credentials(&settings.api_base())?;
        if basic.is_some() {
            authorization = basic;
        }
        let pool = pool::Pool::new(
            &base,
            tls,
            api.max_in_flight,
            Duration::from_millis(api.connect_timeout_ms),
        )
        .map_err(|e| {
            ApiError::Client(format!(
                "internal_http_host + rest_api_root = {:?} is not a URL ({e})",
                settings.api_base()
            ))
        })?;
        Ok(ApiClient {
            pool,
            base,
            authorization,
            permits: Arc::new(Semaphore::new(api.max_in_flight)),
            max_in_flight: api.max_in_flight,
            timeout_ms: api.timeout_ms,
            metrics: None,
        })
    }

    /// Counts every call and observes its latency in `metrics`.
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> ApiClient {
        self.metrics = Some(metrics);
        self
    }

    /// The base URL every path is appended to (without user info: it is safe to show).
    pub fn base(&self) -> &str {
        &self.base
    }

    /// `GET {base}{path}?{query}` (`path` and `query` already encoded) for a readiness
    /// probe: the same connections, TLS set-up and `Authorization` header as the calls, and
    /// `api.timeout_ms`, but not bounded by `api.max_in_flight` nor counted in the metrics.
    /// `Ok` is the status the service answered (the body is not read); `Err` says why there
    /// was none, without the URL.
    pub async fn probe(&self, path: &str, query: &str) -> Result<StatusCode, String> {
        let uri = self
            .uri(path, Some(query))
            .map_err(|e| format!("cannot make the request URI: {e}"))?;
        let request = self.request(Method::GET, uri, None, false);
        let timeout = Duration::from_millis(self.timeout_ms);
        match tokio::time::timeout(timeout, self.pool.send(request)).await {
            Ok(Ok((response, _connection))) => Ok(response.status()),
            Ok(Err(e)) => Err(format!("error sending request: {}", error_chain(&e))),
            Err(_) => Err("error sending request: operation timed out".to_string()),
        }
    }

    /// `GET /subscriptions/{id}/unsubscribe?unsubscriptionCode=..&userChannelId=..`
    /// (`&additionalServices=_all` when `all_services`), with `is_anonymous: true` so the
    /// service applies its anonymous checks of code and address.
    pub async fn unsubscribe(
        &self,
        id: &str,
        code: &str,
        user_channel_id: &str,
        all_services: bool,
    ) -> Result<UnsubscribeOutcome, ApiError> {
        let path = format!("/subscriptions/{}/unsubscribe", path_segment(id)?);
        let mut query = format!(
            "unsubscriptionCode={}&userChannelId={}",
            query_component(code),
            query_component(user_channel_id)
        );
        if all_services {
            query.push_str("&additionalServices=_all");
        }
        let endpoint = if all_services {
            ApiEndpoint::UnsubscribeAll
        } else {
            ApiEndpoint::Unsubscribe
        };
        let call = self
            .send(endpoint, Method::GET, &path, Some(&query), None, true)
            .await?;
        let response = &call.response;
        let status = response.status();
        if status.is_success() {
            return Ok(UnsubscribeOutcome::Done);
        }
        if status.is_redirection() {
            let location = response
                .headers()
                .get(LOCATION)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string();
            return Ok(match redirect_err(&self.base, &location) {
                Some(err) => UnsubscribeOutcome::RefusedByRedirect { err },
                None => UnsubscribeOutcome::Redirected { location },
            });
        }
        match status {
            StatusCode::FORBIDDEN => Ok(UnsubscribeOutcome::Forbidden),
            StatusCode::NOT_FOUND => Ok(UnsubscribeOutcome::NotFound),
            other => Err(ApiError::status_of(Method::GET, &path, other)),
        }
    }

    /// `GET /subscriptions?filter={"where":{"id":..,"channel":"email","state":"confirmed","unsubscriptionCode":..}}`
    /// (§4.2 step 3).
    pub async fn find_confirmed_subscriptions(
        &self,
        id: &str,
        code: &str,
    ) -> Result<Vec<Subscription>, ApiError> {
        let filter = format!(
            r#"{{"where":{{"id":{},"channel":"email","state":"confirmed","unsubscriptionCode":{}}}}}"#,
            json_string(id),
            json_string(code)
        );
        self.get_json(ApiEndpoint::FindSubscription, "/subscriptions", &filter)
            .await
    }

    /// The subscription with this id in any state, or `None`:
    /// `GET /subscriptions?filter={"where":{"id":..}}`. Used to recognise an unsubscribe
    /// that was already applied. The filter form is the listing call NotifyBC documents and
    /// that §4.2 already relies on, so no further endpoint is needed.
    pub async fn get_subscription(&self, id: &str) -> Result<Option<Subscription>, ApiError> {
        let filter = format!(r#"{{"where":{{"id":{}}}}}"#, json_string(id));
        let found: Vec<Subscription> = self
            .get_json(ApiEndpoint::FindSubscription, "/subscriptions", &filter)
            .await?;
        Ok(found.into_iter().find(|s| s.id == id))
    }

    /// `GET /bounces?filter={"where":{"channel":"email","state":"active","userChannelId":..}}`
    /// (§4.2 step 4).
    pub async fn find_active_bounces(
        &self,
        user_channel_id: &str,
    ) -> Result<Vec<Bounce>, ApiError> {
        let filter = format!(
            r#"{{"where":{{"channel":"email","state":"active","userChannelId":{}}}}}"#,
            json_string(user_channel_id)
        );
        self.get_json(ApiEndpoint::FindBounce, "/bounces", &filter)
            .await
    }

    /// `POST /bounces`; returns the created record (with its id).
    pub async fn create_bounce(&self, bounce: &NewBounce<'_>) -> Result<Bounce, ApiError> {
        let body = bounce.to_json();
        let call = self
            .send(
                ApiEndpoint::CreateBounce,
                Method::POST,
                "/bounces",
                None,
                Some(body),
                false,
            )
            .await?;
        let status = call.response.status();
        if !status.is_success() {
            return Err(ApiError::status_of(Method::POST, "/bounces", status));
        }
        self.read_json(Method::POST, "/bounces", call).await
    }

    /// `PATCH /bounces/{id}` with `{hardBounceCount, bounceMessages}` (§4.2 step 4).
    pub async fn update_bounce(
        &self,
        id: &str,
        hard_bounce_count: u64,
        bounce_messages: BounceMessages<'_>,
    ) -> Result<(), ApiError> {
        let body = bounce_body(&[], hard_bounce_count, bounce_messages);
        self.patch_bounce(ApiEndpoint::UpdateBounce, id, body).await
    }

    /// `PATCH /bounces/{id}` with `{"state":"deleted"}` (§4.2 step 5).
    pub async fn retire_bounce(&self, id: &str) -> Result<(), ApiError> {
        let body = br#"{"state":"deleted"}"#.to_vec();
        self.patch_bounce(ApiEndpoint::DeactivateBounce, id, body)
            .await
    }

    async fn patch_bounce(
        &self,
        endpoint: ApiEndpoint,
        id: &str,
        body: Vec<u8>,
    ) -> Result<(), ApiError> {
        let path = format!("/bounces/{}", path_segment(id)?);
        let call = self
            .send(endpoint, Method::PATCH, &path, None, Some(body), false)
            .await?;
        let status = call.response.status();
        if !status.is_success() {
            return Err(ApiError::status_of(Method::PATCH, &path, status));
        }
        Ok(())
    }

    async fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        endpoint: ApiEndpoint,
        path: &str,
        filter: &str,
    ) -> Result<T, ApiError> {
        let query = format!("filter={}", query_component(filter));
        let call = self
            .send(endpoint, Method::GET, path, Some(&query), None, false)
            .await?;
        let status = call.response.status();
        if !status.is_success() {
            return Err(ApiError::status_of(Method::GET, path, status));
        }
        self.read_json(Method::GET, path, call).await
    }

    /// Sends one request under a permit, held until the answer is read. `path` and `query`
    /// are already encoded; `json_body` goes with `Content-Type: application/json`;
    /// `anonymous` adds `is_anonymous: true`. The answer is returned once its head has
    /// arrived; its body must then be read by the call's deadline.
    async fn send(
        &self,
        endpoint: ApiEndpoint,
        method: Method,
        path: &str,
        query: Option<&str>,
        json_body: Option<Vec<u8>>,
        anonymous: bool,
    ) -> Result<Call<'_>, ApiError> {
        let timeout = Duration::from_millis(self.timeout_ms);
        let permit = match tokio::time::timeout(timeout, self.permits.clone().acquire_owned()).await
        {
            Ok(Ok(permit)) => permit,
            // The semaphore is never closed; treat it like a full one.
            Ok(Err(_)) | Err(_) => {
                return Err(ApiError::Busy {
                    timeout_ms: self.timeout_ms,
                    max_in_flight: self.max_in_flight,
                });
            }
        };
        let uri = self.uri(path, query).map_err(|e| {
            ApiError::Client(format!("cannot make the URI of {method} {path}: {e}"))
        })?;
        let request = self.request(method.clone(), uri, json_body, anonymous);
        let started = Instant::now();
        let deadline = tokio::time::Instant::now() + timeout;
        let sent = tokio::time::timeout_at(deadline, self.pool.send(request)).await;
        if let Some(m) = &self.metrics {
            let status = match &sent {
                Ok(Ok((response, _))) => Some(response.status().as_u16()),
                _ => None,
            };
            m.api_call(endpoint, status, started.elapsed());
        }
        let (response, connection) = match sent {
            Ok(Ok(answer)) => answer,
            Ok(Err(e)) => {
                return Err(self.transport_error(method, path, "error sending request", &e));
            }
            Err(_) => return Err(self.timeout_error(method, path)),
        };
        Ok(Call {
            response,
            connection,
            deadline,
            _permit: permit,
        })
    }

    /// `{base}{path}?{query}` (`path` and `query` already encoded). The base is in the URL
    /// parser's normal form and the encoded parts hold only characters that it leaves as
    /// they are, so this is the URI that parsing the whole string as a URL would give.
    fn uri(&self, path: &str, query: Option<&str>) -> Result<Uri, http::uri::InvalidUri> {
        let mut text =
            String::with_capacity(self.base.len() + path.len() + query.map_or(0, |q| q.len() + 1));
        text.push_str(&self.base);
        text.push_str(path);
        if let Some(query) = query {
            text.push('?');
            text.push_str(query);
        }
        Uri::try_from(text)
    }

    /// A request with the headers every call carries (`Accept: */*`, `Authorization` when
    /// configured; the pool adds `Host`), plus those of this call.
    fn request(
        &self,
        method: Method,
        uri: Uri,
        json_body: Option<Vec<u8>>,
        anonymous: bool,
    ) -> Request<Full<Bytes>> {
        let has_body = json_body.is_some();
        let mut request = Request::new(Full::new(json_body.map(Bytes::from).unwrap_or_default()));
        *request.method_mut() = method;
        *request.uri_mut() = uri;
        let headers = request.headers_mut();
        if anonymous {
            headers.insert(IS_ANONYMOUS, HeaderValue::from_static("true"));
        }
        if has_body {
            headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        }
        headers.insert(ACCEPT, HeaderValue::from_static("*/*"));
        if let Some(authorization) = &self.authorization {
            headers.insert(AUTHORIZATION, authorization.clone());
        }
        request
    }

    async fn read_json<T: serde::de::DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        call: Call<'_>,
    ) -> Result<T, ApiError> {
        let Call {
            response,
            connection,
            deadline,
            _permit: permit,
        } = call;
        let bytes = match tokio::time::timeout_at(deadline, response.into_body().collect()).await {
            Ok(Ok(collected)) => collected.to_bytes(),
            Ok(Err(e)) => {
                connection.discard();
                return Err(self.transport_error(
                    method,
                    path,
                    "request or response body error",
                    &e,
                ));
            }
            Err(_) => {
                connection.discard();
                return Err(self.timeout_error(method, path));
            }
        };
        drop(connection);
        drop(permit);
        serde_json::from_slice(&bytes).map_err(|e| ApiError::BadJson {
            method,
            path: path.to_string(),
            detail: e.to_string(),
        })
    }

    fn timeout_error(&self, method: Method, path: &str) -> ApiError {
        ApiError::Timeout {
            method,
            path: path.to_string(),
            timeout_ms: self.timeout_ms,
        }
    }

    /// `context` says what failed ("error sending request"); the causes follow it. None of
    /// them holds the URL.
    fn transport_error(
        &self,
        method: Method,
        path: &str,
        context: &str,
        e: &(dyn std::error::Error + 'static),
    ) -> ApiError {
        if is_timeout(e) {
            return self.timeout_error(method, path);
        }
        ApiError::Unreachable {
            method,
            path: path.to_string(),
            detail: format!("{context}: {}", error_chain(e)),
        }
    }
}

/// The API base in the URL parser's normal form, without user info, query, fragment or a
/// trailing `/`, and the `Basic` credentials of its user info, if any (sent in place of
/// `api.access_token`, as the URL asks).
fn base_and_credentials(text: &str) -> Result<(String, Option<HeaderValue>), ApiError> {
    let not_a_url = |e: &dyn std::fmt::Display| {
        ApiError::Client(format!(
            "internal_http_host + rest_api_root = {text:?} is not a URL ({e})"
        ))
    };
    let mut url = url::Url::parse(text).map_err(|e| not_a_url(&e))?;
    let mut basic = None;
    if !url.username().is_empty() || url.password().is_some() {
        let user = percent_decode_str(url.username()).decode_utf8_lossy();
        let password = url
            .password()
            .map(|p| percent_decode_str(p).decode_utf8_lossy());
        let credentials = match password {
            Some(password) => format!("{user}:{password}"),
            None => format!("{user}:"),
        };
        let encoded = base64::engine::general_purpose::STANDARD.encode(credentials);
        let mut value =
            HeaderValue::try_from(format!("Basic {encoded}")).map_err(|e| not_a_url(&e))?;
        value.set_sensitive(true);
        basic = Some(value);
        // Only fails for URLs that cannot carry user info, which then have none.
        let _ = url.set_username("");
        let _ = url.set_password(None);
    }
    url.set_query(None);
    url.set_fragment(None);
    let base = url.as_str().trim_end_matches('/').to_string();
    // Every call's URI starts like this one: check it once here.
    Uri::try_from(format!("{base}/")).map_err(|e| not_a_url(&e))?;
    Ok((base, basic))
}

/// rustls with ring, TLS 1.2 and 1.3, trusting `api.ca_bundle` and the webpki roots, with
/// the client certificate of `api.client_cert` / `api.client_key` when set, offering
/// HTTP/1.1 by ALPN.
fn tls_config(api: &ApiSettings) -> Result<rustls::ClientConfig, ApiError> {
    let client_identity = if api.client_cert.is_empty() {
        None
    } else {
        let mut pem = read_file("api.client_cert", &api.client_cert)?;
        if api.client_key != api.client_cert {
            pem.push(b'\n');
            pem.extend(read_file("api.client_key", &api.client_key)?);
        }
        check_identity_pem(&pem, &api.client_cert, &api.client_key)?;
        Some(identity(&pem).map_err(|e| ApiError::Tls {
            key: "api.client_cert",
            path: api.client_cert.clone(),
            detail: format!("not a PEM certificate chain and private key ({e})"),
        })?)
    };
    let mut roots = rustls::RootCertStore::empty();
    if !api.ca_bundle.is_empty() {
        let pem = read_file("api.ca_bundle", &api.ca_bundle)?;
        let bad_bundle = |e: &dyn std::fmt::Display| ApiError::Tls {
            key: "api.ca_bundle",
            path: api.ca_bundle.clone(),
            detail: format!("not a PEM bundle of CA certificates ({e})"),
        };
        let certs = rustls_pemfile::certs(&mut pem.as_slice())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| bad_bundle(&e))?;
        if certs.is_empty() {
            return Err(ApiError::Tls {
                key: "api.ca_bundle",
                path: api.ca_bundle.clone(),
                detail: "holds no PEM CERTIFICATE block".to_string(),
            });
        }
        for cert in certs {
            roots.add(cert).map_err(|e| bad_bundle(&e))?;
        }
    }
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());

    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(rustls::ALL_VERSIONS)
        .map_err(|e| ApiError::Client(e.to_string()))?
        .with_root_certificates(roots);
    let mut config = match client_identity {
        None => builder.with_no_client_auth(),
        Some((certs, key)) => {
            builder
                .with_client_auth_cert(certs, key)
                .map_err(|e| ApiError::Tls {
                    key: "api.client_key",
                    path: api.client_key.clone(),
                    detail: format!(
                        "does not hold a usable private key for the certificate in {} ({e})",
                        api.client_cert
                    ),
                })?
        }
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// The certificate chain and the private key of a client identity PEM: every certificate,
/// the last private key (PKCS#8, RSA or EC); any other PEM section is refused.
fn identity(pem: &[u8]) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), String> {
    let mut certs = Vec::new();
    let mut keys = Vec::new();
    for item in rustls_pemfile::read_all(&mut &pem[..]) {
        match item.map_err(|e| format!("invalid PEM: {e}"))? {
            rustls_pemfile::Item::X509Certificate(cert) => certs.push(cert),
            rustls_pemfile::Item::Pkcs1Key(key) => keys.push(PrivateKeyDer::Pkcs1(key)),
            rustls_pemfile::Item::Pkcs8Key(key) => keys.push(PrivateKeyDer::Pkcs8(key)),
            rustls_pemfile::Item::Sec1Key(key) => keys.push(PrivateKeyDer::Sec1(key)),
            _ => {
                return Err(
                    "holds a PEM block that is neither a certificate nor a private key".into(),
                );
            }
        }
    }
    match (keys.pop(), certs.is_empty()) {
        (Some(key), false) => Ok((certs, key)),
        _ => Err("private key or certificate not found".to_string()),
    }
}

/// Whether `e` or one of its causes is a timeout.
fn is_timeout(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut source = Some(e);
    while let Some(e) = source {
        if e.is::<pool::ConnectTimeout>()
            || e.downcast_ref::<std::io::Error>()
                .is_some_and(|e| e.kind() == std::io::ErrorKind::TimedOut)
            || e.downcast_ref::<hyper::Error>()
                .is_some_and(hyper::Error::is_timeout)
        {
            return true;
        }
        source = e.source();
    }
    false
}

/// The `err` query parameter of a redirect target, if any. A relative `Location` is
/// resolved against the API base.
fn redirect_err(base: &str, location: &str) -> Option<String> {
    let url = url::Url::parse(location)
        .or_else(|_| url::Url::parse(base).and_then(|b| b.join(location)))
        .ok()?;
    url.query_pairs()
        .find(|(k, _)| k == "err")
        .map(|(_, v)| v.into_owned())
}

fn read_file(key: &'static str, path: &str) -> Result<Vec<u8>, ApiError> {
    std::fs::read(path).map_err(|source| ApiError::File {
        key,
        path: path.to_string(),
        source,
    })
}

/// Says which of the two files lacks its part before the PEM parser gives a vaguer error.
fn check_identity_pem(pem: &[u8], cert_path: &str, key_path: &str) -> Result<(), ApiError> {
    let text = String::from_utf8_lossy(pem);
    if !text.contains("-----BEGIN CERTIFICATE-----") {
        return Err(ApiError::Tls {
            key: "api.client_cert",
            path: cert_path.to_string(),
            detail: "holds no PEM CERTIFICATE block".to_string(),
        });
    }
    if !text.contains("PRIVATE KEY-----") {
        return Err(ApiError::Tls {
            key: "api.client_key",
            path: key_path.to_string(),
            detail: "holds no PEM PRIVATE KEY block (PKCS#8, RSA or EC)".to_string(),
        });
    }
    Ok(())
}

/// An error and its causes on one line (the URL, which may hold a code, is already gone).
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_like_encode_uri_component() {
        assert_eq!(query_component("bar@foo.com"), "bar%40foo.com");
        assert_eq!(
            query_component("a b/c?d#e%f&g=h+i"),
            "a%20b%2Fc%3Fd%23e%25f%26g%3Dh%2Bi"
        );
        assert_eq!(query_component("-_.!~*'()"), "-_.!~*'()");
        assert_eq!(query_component("é"), "%C3%A9");
        assert_eq!(path_segment("5f3e_a.b~c").unwrap(), "5f3e_a.b~c");
        assert_eq!(path_segment("a/../b").unwrap(), "a%2F..%2Fb");
        for bad in ["", ".", "..", "..."] {
            assert!(matches!(path_segment(bad), Err(ApiError::InvalidId { .. })));
        }
    }

    /// Each call's URI is what parsing `{api_base}{path}?{query}` as a URL gives, as
    /// reqwest sent it, less the user info (sent as `Authorization` instead).
    #[test]
    fn call_urls_are_the_urls_the_strings_parse_to() {
        for (host, root) in [
            ("http://localhost:3000", "/api"),
            ("http://127.0.0.1:3000/", "api/"),
            ("https://notify.example", ""),
            ("http://[::1]:8080", "/rest/v1"),
            ("http://user:p%40ss@NotifyBC.Example:80", "/a b/"),
            ("https://xn--mnchen-3ya.example:443/", "/api//"),
        ] {
            let s = Settings::from_toml_str(&format!(
                "internal_http_host = '{host}'\nrest_api_root = '{root}'\n"
            ))
            .unwrap();
            let client = ApiClient::new(&s).unwrap();
            let id = path_segment("5f3e_a.b~c").unwrap();
            let filter = query_component(r#"{"where":{"id":"a b/c?d#e%f&g=h+i","x":"é"}}"#);
            for (path, query) in [
                (
                    format!("/subscriptions/{id}/unsubscribe"),
                    Some(format!(
                        "unsubscriptionCode=1%202&userChannelId={}",
                        query_component("bar@foo.com")
                    )),
                ),
                (
                    "/subscriptions".to_string(),
                    Some(format!("filter={filter}")),
                ),
                (
                    format!("/bounces/{}", path_segment("a/../b").unwrap()),
                    None,
                ),
            ] {
                let text = match &query {
                    Some(q) => format!("{}{path}?{q}", s.api_base()),
                    None => format!("{}{path}", s.api_base()),
                };
                let mut expected = url::Url::parse(&text).unwrap();
                expected.set_username("").unwrap();
                expected.set_password(None).unwrap();
                let built = client.uri(&path, query.as_deref()).unwrap();
                assert_eq!(built.to_string(), expected.as_str(), "{text}");
            }
        }
    }

    #[test]
    fn redirect_err_is_found() {
        let base = "http://localhost:3000/api";
        assert_eq!(
            redirect_err(
                base,
                "https://x.example/unsub?channel=email&err=Forbidden%21"
            ),
            Some("Forbidden!".to_string())
        );
        assert_eq!(
            redirect_err(base, "https://x.example/unsub?channel=email"),
            None
        );
        assert_eq!(
            redirect_err(base, "/done?channel=email&err=HttpException"),
            Some("HttpException".to_string())
        );
        assert_eq!(redirect_err(base, ""), None);
    }

    fn settings_with(api: &str) -> Settings {
        Settings::from_toml_str(&format!("[api]\n{api}\n")).unwrap()
    }

    #[test]
    fn bad_tls_files_name_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let junk = dir.path().join("junk.pem");
        std::fs::write(&junk, "not a pem").unwrap();
        let junk = junk.to_string_lossy().replace('\\', "/");
        let s = settings_with(&format!("client_cert = '{junk}'\nclient_key = '{junk}'"));
        let e = ApiClient::new(&s).unwrap_err().to_string();
        assert!(
            e.contains("api.client_cert") && e.contains("CERTIFICATE"),
            "{e}"
        );
        let s = settings_with(&format!("ca_bundle = '{junk}'"));
        let e = ApiClient::new(&s).unwrap_err().to_string();
        assert!(e.contains("api.ca_bundle"), "{e}");
    }

    #[test]
    fn client_certificate_and_ca_bundle_load() {
        let dir = tempfile::tempdir().unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["client.example".to_string()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let cert_path = dir.path().join("cert.pem");
        let key_path = dir.path().join("key.pem");
        std::fs::write(&cert_path, cert.pem()).unwrap();
        std::fs::write(&key_path, key.serialize_pem()).unwrap();
        let c = cert_path.to_string_lossy().replace('\\', "/");
        let k = key_path.to_string_lossy().replace('\\', "/");
        let s = settings_with(&format!(
            "client_cert = '{c}'\nclient_key = '{k}'\nca_bundle = '{c}'"
        ));
        ApiClient::new(&s).unwrap();
        // The key file alone lacks the certificate.
        let s = settings_with(&format!("client_cert = '{k}'\nclient_key = '{k}'"));
        let e = ApiClient::new(&s).unwrap_err().to_string();
        assert!(e.contains("api.client_cert"), "{e}");
    }

    #[test]
    fn token_is_not_in_debug_output() {
        let s = settings_with("access_token = 'Bearer s3cret'");
        let client = ApiClient::new(&s).unwrap();
        assert!(!format!("{client:?}").contains("s3cret"));
        let s = settings_with("access_token = \"bad\\ntoken\"");
        assert!(matches!(ApiClient::new(&s), Err(ApiError::BadToken)));
    }

    #[test]
    fn requests_carry_the_configured_headers() {
        let s = settings_with("access_token = 'Bearer s3cret'");
        let client = ApiClient::new(&s).unwrap();
        let uri = client.uri("/bounces", None).unwrap();
        let r = client.request(Method::POST, uri, Some(b"{}".to_vec()), false);
        assert_eq!(r.uri().to_string(), "http://localhost:3000/api/bounces");
        let h = r.headers();
        assert_eq!(h[AUTHORIZATION], "Bearer s3cret");
        assert!(h[AUTHORIZATION].is_sensitive());
        assert_eq!(h[CONTENT_TYPE], "application/json");
        assert_eq!(h[ACCEPT], "*/*");
        assert!(h.get(&IS_ANONYMOUS).is_none());

        let uri = client
            .uri("/subscriptions/1/unsubscribe", Some("a=b"))
            .unwrap();
        let r = client.request(Method::GET, uri, None, true);
        assert_eq!(r.headers()[&IS_ANONYMOUS], "true");
        assert!(r.headers().get(CONTENT_TYPE).is_none());

        // User info in the URL is sent as Basic credentials (as reqwest did), in place of
        // the token, and never in the URI.
        let s = Settings::from_toml_str(
            "internal_http_host = 'http://user:p%40ss@localhost:3000'\n\
             [api]\naccess_token = 'Bearer s3cret'\n",
        )
        .unwrap();
        let client = ApiClient::new(&s).unwrap();
        assert_eq!(client.base(), "http://localhost:3000/api");
        let uri = client.uri("/bounces", None).unwrap();
        let r = client.request(Method::GET, uri, None, false);
        assert_eq!(r.uri().to_string(), "http://localhost:3000/api/bounces");
        // base64("user:p@ss")
        assert_eq!(r.headers()[AUTHORIZATION], "Basic dXNlcjpwQHNz");
        assert!(r.headers()[AUTHORIZATION].is_sensitive());
    }

    /// A raw HTTP/1.1 server on loopback that answers every request on a connection with
    /// `answer`, counting the connections it accepts. Requests must have no body.
    async fn raw_server(answer: &'static [u8]) -> (String, Arc<std::sync::atomic::AtomicUsize>) {
        raw_server_closing(answer, false).await
    }

    /// [`raw_server`], closing each connection after its first answer when `close_after_one`
    /// (as a keep-alive timeout would).
    async fn raw_server_closing(
        answer: &'static [u8],
        close_after_one: bool,
    ) -> (String, Arc<std::sync::atomic::AtomicUsize>) {
        use std::sync::atomic::{AtomicUsize, Ordering};
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let host = format!("http://{}", listener.local_addr().unwrap());
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        tokio::spawn(async move {
            loop {
                let (mut stream, _) = listener.accept().await.unwrap();
                count.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let mut seen = Vec::new();
                    let mut buf = [0u8; 4096];
                    loop {
                        match stream.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => seen.extend_from_slice(&buf[..n]),
                        }
                        while let Some(end) = seen.windows(4).position(|w| w == b"\r\n\r\n") {
                            seen.drain(..end + 4);
                            if stream.write_all(answer).await.is_err() || close_after_one {
                                return;
                            }
                        }
                    }
                });
            }
        });
        (host, accepted)
    }

    #[test]
    fn bounce_bodies_are_the_json_of_their_fields() {
        let older =
            vec![serde_json::json!({"date": "2024-01-01T00:00:00.000Z", "message": "old\r\n"})];
        let messages = BounceMessages {
            date: "2024-02-02T00:00:00.000Z",
            message: "From: \"a\" <a@b>\r\n\r\nbody",
            older: &older,
        };
        let items = serde_json::json!([
            {"date": messages.date, "message": messages.message},
            older[0],
        ]);
        let created = NewBounce {
            channel: "email",
            user_channel_id: "a@b.example",
            hard_bounce_count: 2,
            bounce_messages: messages,
        }
        .to_json();
        assert_eq!(
            serde_json::from_slice::<Value>(&created).unwrap(),
            serde_json::json!({"channel": "email", "userChannelId": "a@b.example",
                "hardBounceCount": 2, "bounceMessages": items})
        );
        let counted = bounce_body(&[], 3, messages);
        assert_eq!(
            serde_json::from_slice::<Value>(&counted).unwrap(),
            serde_json::json!({"hardBounceCount": 3, "bounceMessages": items})
        );
    }

    fn client_for(host: &str, api: &str) -> ApiClient {
        let s = Settings::from_toml_str(&format!("internal_http_host = '{host}'\n[api]\n{api}\n"))
            .unwrap();
        ApiClient::new(&s).unwrap()
    }

    #[tokio::test]
    async fn connections_are_kept_alive_and_reused() {
        let (host, accepted) = raw_server(
            b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n[]",
        )
        .await;
        let client = client_for(&host, "");
        for _ in 0..3 {
            assert!(
                client
                    .find_active_bounces("a@b.example")
                    .await
                    .unwrap()
                    .is_empty()
            );
        }
        assert_eq!(
            client.probe("/subscriptions", "x=1").await,
            Ok(StatusCode::OK)
        );
        // An answer whose body is not read (the unsubscribe call's) keeps it too.
        assert_eq!(
            client
                .unsubscribe("1", "c", "a@b.example", false)
                .await
                .unwrap(),
            UnsubscribeOutcome::Done
        );
        assert!(
            client
                .find_active_bounces("a@b.example")
                .await
                .unwrap()
                .is_empty()
        );
        assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn redirects_are_answers_not_followed() {
        let (host, accepted) = raw_server(
            b"HTTP/1.1 302 Found\r\nlocation: /api/bounces?err=Forbidden\r\ncontent-length: 0\r\n\r\n",
        )
        .await;
        let client = client_for(&host, "");
        assert_eq!(
            client
                .unsubscribe("1", "c", "a@b.example", true)
                .await
                .unwrap(),
            UnsubscribeOutcome::RefusedByRedirect {
                err: "Forbidden".to_string()
            }
        );
        let e = client.find_active_bounces("a@b.example").await.unwrap_err();
        assert_eq!(e.status(), Some(302), "{e}");
        assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn the_timeout_covers_reading_the_body() {
        // The head arrives at once; the body never completes.
        let (host, _) = raw_server(
            b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n[",
        )
        .await;
        let client = client_for(&host, "timeout_ms = 300");
        let started = Instant::now();
        let e = client.find_active_bounces("a@b.example").await.unwrap_err();
        assert!(
            matches!(
                e,
                ApiError::Timeout {
                    timeout_ms: 300,
                    ..
                }
            ),
            "{e}"
        );
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[tokio::test]
    async fn errors_hold_neither_the_query_nor_the_token() {
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let host = format!("http://{}", closed.local_addr().unwrap());
        drop(closed);
        let client = client_for(&host, "access_token = 'Bearer s3cret'");
        let e = client
            .unsubscribe("1", "c0de", "a@b.example", false)
            .await
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("cannot reach") && e.contains("/subscriptions/1/unsubscribe"),
            "{e}"
        );
        for secret in ["c0de", "s3cret", "b.example", "?"] {
            assert!(!e.contains(secret), "{secret} in {e}");
        }
        let e = client
            .probe("/subscriptions", "filter=c0de")
            .await
            .unwrap_err();
        assert!(!e.contains("c0de") && !e.contains("s3cret"), "{e}");
    }

    /// A server that closes each connection after its first answer, as a keep-alive timeout
    /// would: the closed connection is not used again.
    #[tokio::test]
    async fn connections_closed_by_the_server_are_not_reused() {
        use std::sync::atomic::Ordering;
        let (host, accepted) =
            raw_server_closing(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n[]", true).await;
        let client = client_for(&host, "");
        for n in 1..=3 {
            assert!(
                client
                    .find_active_bounces("a@b.example")
                    .await
                    .unwrap()
                    .is_empty()
            );
            // Time for the close to arrive.
            tokio::time::sleep(Duration::from_millis(50)).await;
            assert_eq!(accepted.load(Ordering::SeqCst), n);
        }
    }
}
