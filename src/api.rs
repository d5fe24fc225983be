//! The client of the notification service's HTTP API (SPEC §5): exactly the calls the `un`
//! and `bn` flows make (§4.1, §4.2), nothing else.
//!
//! One [`ApiClient`] is built at start and shared: it keeps connections alive and pooled,
//! bounds the calls in flight with a semaphore, puts a timeout on every call and never
//! follows a redirect (a 3xx from the unsubscribe call is an answer, not a detour).
//!
//! Every id, code and address placed into a URL is percent-encoded with the character set of
//! JavaScript's `encodeURIComponent`, the one NotifyBC itself uses, so the requests are the
//! ones NotifyBC's own inbound server sent, and a crafted value can never add a path
//! segment, a query parameter or a fragment. Ids that the URL standard would resolve as a
//! dot segment (`.`, `..`) are refused before any request is made.
//!
//! Errors never carry the access token or a request's query string (which holds an
//! unsubscription code): they name the method, the path and what to check.
//!
//! With [`ApiClient::with_metrics`] every call is counted by endpoint and status class, and
//! its latency observed (`api_requests_total`, `api_request_duration_seconds`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderValue, LOCATION};
use reqwest::{Method, StatusCode};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;
use tokio::sync::Semaphore;

use crate::config::Settings;
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
    Ok(utf8_percent_encode(value, URI_COMPONENT).to_string())
}

/// Encodes one query component (a value after `=`).
fn query_component(value: &str) -> String {
    utf8_percent_encode(value, URI_COMPONENT).to_string()
}

/// A JSON string literal for `value` (quotes and escapes included).
fn json_string(value: &str) -> String {
    Value::String(value.to_string()).to_string()
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
        let mut out = Vec::with_capacity(self.bounce_messages.size_hint() + 128);
        out.extend_from_slice(b"{\"channel\":");
        json::push_string(&mut out, self.channel);
        out.extend_from_slice(b",\"userChannelId\":");
        json::push_string(&mut out, self.user_channel_id);
        out.extend_from_slice(
            format!(",\"hardBounceCount\":{}", self.hard_bounce_count).as_bytes(),
        );
        out.extend_from_slice(b",\"bounceMessages\":");
        self.bounce_messages.push_json(&mut out);
        out.push(b'}');
        out
    }
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

/// An answer whose body may still be read, with the permit that counts it as in flight.
struct Call {
    response: reqwest::Response,
    _permit: tokio::sync::OwnedSemaphorePermit,
}

/// The shared API client. Cheap to clone.
#[derive(Clone)]
pub struct ApiClient {
    http: reqwest::Client,
    base: String,
    /// `base` parsed once: each call's URL is this with its path and query set, so the
    /// scheme, host and port are not parsed again for every call.
    base_url: reqwest::Url,
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
        let mut headers = HeaderMap::new();
        if !api.access_token.is_empty() {
            let mut value =
                HeaderValue::from_str(&api.access_token).map_err(|_| ApiError::BadToken)?;
            value.set_sensitive(true);
            headers.insert(AUTHORIZATION, value);
        }
        let mut builder = reqwest::Client::builder()
            .use_rustls_tls()
            .default_headers(headers)
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_millis(api.timeout_ms))
            .connect_timeout(Duration::from_millis(api.connect_timeout_ms))
            .pool_idle_timeout(Duration::from_secs(60))
            .pool_max_idle_per_host(api.max_in_flight)
            .tcp_keepalive(Duration::from_secs(30))
            .tcp_nodelay(true);
        if !api.client_cert.is_empty() {
            let mut pem = read_file("api.client_cert", &api.client_cert)?;
            if api.client_key != api.client_cert {
                pem.push(b'\n');
                pem.extend(read_file("api.client_key", &api.client_key)?);
            }
            check_identity_pem(&pem, &api.client_cert, &api.client_key)?;
            let identity = reqwest::Identity::from_pem(&pem).map_err(|e| ApiError::Tls {
                key: "api.client_cert",
                path: api.client_cert.clone(),
                detail: format!("not a PEM certificate chain and private key ({e})"),
            })?;
            builder = builder.identity(identity);
        }
        if !api.ca_bundle.is_empty() {
            let pem = read_file("api.ca_bundle", &api.ca_bundle)?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| ApiError::Tls {
                key: "api.ca_bundle",
                path: api.ca_bundle.clone(),
                detail: format!("not a PEM bundle of CA certificates ({e})"),
            })?;
            if certs.is_empty() {
                return Err(ApiError::Tls {
                    key: "api.ca_bundle",
                    path: api.ca_bundle.clone(),
                    detail: "holds no PEM CERTIFICATE block".to_string(),
                });
            }
            for cert in certs {
                builder = builder.add_root_certificate(cert);
            }
        }
        let http = builder
            .build()
            .map_err(|e| ApiError::Client(error_chain(&e.without_url())))?;
        let base = settings.api_base();
        let base_url = reqwest::Url::parse(&base).map_err(|e| {
            ApiError::Client(format!(
                "internal_http_host + rest_api_root = {base:?} is not a URL ({e})"
            ))
        })?;
        Ok(ApiClient {
            http,
            base,
            base_url,
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

    /// The underlying HTTP client (same TLS set-up, pool and timeouts), for a readiness
    /// probe. Its requests already carry the configured `Authorization` header.
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// The base URL every path is appended to.
    pub fn base(&self) -> &str {
        &self.base
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
            .send(endpoint, Method::GET, &path, Some(&query), None, |r| {
                r.header("is_anonymous", "true")
            })
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
                |r| r,
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
        let mut body = Vec::with_capacity(bounce_messages.size_hint() + 64);
        body.extend_from_slice(format!("{{\"hardBounceCount\":{hard_bounce_count}").as_bytes());
        body.extend_from_slice(b",\"bounceMessages\":");
        bounce_messages.push_json(&mut body);
        body.push(b'}');
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
            .send(endpoint, Method::PATCH, &path, None, Some(body), |r| r)
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
            .send(endpoint, Method::GET, path, Some(&query), None, |r| r)
            .await?;
        let status = call.response.status();
        if !status.is_success() {
            return Err(ApiError::status_of(Method::GET, path, status));
        }
        self.read_json(Method::GET, path, call).await
    }

    /// Sends one request under a permit, held until the answer is read. `path` and `query`
    /// are already encoded.
    async fn send(
        &self,
        endpoint: ApiEndpoint,
        method: Method,
        path: &str,
        query: Option<&str>,
        json_body: Option<Vec<u8>>,
        extra: impl FnOnce(reqwest::RequestBuilder) -> reqwest::RequestBuilder,
    ) -> Result<Call, ApiError> {
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
        let url = self.url(path, query);
        let mut request = extra(self.http.request(method.clone(), url));
        if let Some(body) = json_body {
            request = request
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body);
        }
        let started = Instant::now();
        let sent = request.send().await;
        if let Some(m) = &self.metrics {
            let status = sent.as_ref().ok().map(|r| r.status().as_u16());
            m.api_call(endpoint, status, started.elapsed());
        }
        let response = sent.map_err(|e| self.transport_error(method, path, e))?;
        Ok(Call {
            response,
            _permit: permit,
        })
    }

    /// `{base}{path}?{query}` (`path` and `query` already encoded): the same URL as parsing
    /// that string, since the path and the query go through the same parser steps.
    fn url(&self, path: &str, query: Option<&str>) -> reqwest::Url {
        let mut url = self.base_url.clone();
        let root = self.base_url.path().trim_end_matches('/');
        url.set_path(&format!("{root}{path}"));
        url.set_query(query);
        url
    }

    async fn read_json<T: serde::de::DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        call: Call,
    ) -> Result<T, ApiError> {
        let bytes = call.response.bytes().await.map_err(|e| {
            if e.is_timeout() {
                ApiError::Timeout {
                    method: method.clone(),
                    path: path.to_string(),
                    timeout_ms: self.timeout_ms,
                }
            } else {
                ApiError::Unreachable {
                    method: method.clone(),
                    path: path.to_string(),
                    detail: error_chain(&e.without_url()),
                }
            }
        })?;
        serde_json::from_slice(&bytes).map_err(|e| ApiError::BadJson {
            method,
            path: path.to_string(),
            detail: e.to_string(),
        })
    }

    fn transport_error(&self, method: Method, path: &str, e: reqwest::Error) -> ApiError {
        if e.is_timeout() {
            return ApiError::Timeout {
                method,
                path: path.to_string(),
                timeout_ms: self.timeout_ms,
            };
        }
        ApiError::Unreachable {
            method,
            path: path.to_string(),
            detail: error_chain(&e.without_url()),
        }
    }
}

/// The `err` query parameter of a redirect target, if any. A relative `Location` is
/// resolved against the API base.
fn redirect_err(base: &str, location: &str) -> Option<String> {
    let url = reqwest::Url::parse(location)
        .or_else(|_| reqwest::Url::parse(base).and_then(|b| b.join(location)))
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

/// Says which of the two files lacks its part before reqwest gives a vaguer error.
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

    #[test]
    fn call_urls_are_the_urls_the_strings_parse_to() {
        for (host, root) in [
            ("http://localhost:3000", "/api"),
            ("http://127.0.0.1:3000/", "api/"),
            ("https://notify.example", ""),
            ("http://[::1]:8080", "/rest/v1"),
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
                    Some(q) => format!("{}{path}?{q}", client.base()),
                    None => format!("{}{path}", client.base()),
                };
                let built = client.url(&path, query.as_deref());
                assert_eq!(built, reqwest::Url::parse(&text).unwrap(), "{text}");
                assert_eq!(built.as_str(), reqwest::Url::parse(&text).unwrap().as_str());
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
}
