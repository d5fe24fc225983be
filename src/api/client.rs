//! [`ApiClient`]: one method per call the `un` and `bn` flows make, plus the readiness
//! probe. Each call is bounded in flight, timed, counted in the metrics and turned into
//! an outcome or an [`ApiError`] here; the transport is reqwest's (module `http`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use http::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderName, HeaderValue, LOCATION};
use http::{Method, StatusCode};
use serde::Serialize;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::encode::{path_segment, query_component, redirect_err};
use super::model::{ActiveBounces, BounceCount, BounceState, ById, ConfirmedSubscription, Filter};
use super::{ApiError, Bounce, BounceMessages, NewBounce, Subscription, UnsubscribeOutcome};
use crate::config::Settings;
use crate::metrics::{ApiEndpoint, Metrics};

/// The header that asks NotifyBC for its anonymous checks of code and address.
const IS_ANONYMOUS: HeaderName = HeaderName::from_static("is_anonymous");

/// The shared API client. Cheap to clone.
#[derive(Clone)]
pub struct ApiClient {
    http: reqwest::Client,
    /// `internal_http_host` + `rest_api_root` as the URL parser writes it, without user
    /// info, query, fragment or a trailing `/`. A call's URL is this with its path (and
    /// query) appended.
    base: String,
    /// `api.access_token`, or `Basic` credentials from user info in `internal_http_host`,
    /// which take precedence. Marked sensitive.
    authorization: Option<HeaderValue>,
    permits: Arc<Semaphore>,
    max_in_flight: usize,
    timeout: Duration,
    metrics: Option<Arc<Metrics>>,
}

impl std::fmt::Debug for ApiClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiClient")
            .field("base", &self.base)
            .field("max_in_flight", &self.max_in_flight)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// An answer whose head has arrived, with the permit that counts its call as in flight
/// until the body is read.
struct Answer {
    response: reqwest::Response,
    _permit: OwnedSemaphorePermit,
}

impl ApiClient {
    /// Builds the client from `internal_http_host`, `rest_api_root` and the `api` section.
    /// Certificate and key files are read here, so a bad file stops the start.
    pub fn new(settings: &Settings) -> Result<ApiClient, ApiError> {
        let api = &settings.api;
        let mut authorization = None;
        if !api.access_token.is_empty() {
            let mut value =
                HeaderValue::from_str(api.access_token.expose()).map_err(|_| ApiError::BadToken)?;
            value.set_sensitive(true);
            authorization = Some(value);
        }
        let http = super::http::client(api)?;
        let (base, basic) = super::http::base_and_credentials(settings.api_base())?;
        if basic.is_some() {
            authorization = basic;
        }
        Ok(ApiClient {
            http,
            base,
            authorization,
            permits: Arc::new(Semaphore::new(api.max_in_flight)),
            max_in_flight: api.max_in_flight,
            timeout: api.timeout,
            metrics: None,
        })
    }

    /// `api.timeout_ms`, as the errors name it.
    fn timeout_ms(&self) -> u64 {
        u64::try_from(self.timeout.as_millis()).unwrap_or(u64::MAX)
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
    /// `Ok` is the status the service answered; `Err` says why there was none, without the
    /// URL.
    pub async fn probe(&self, path: &str, query: &str) -> Result<StatusCode, String> {
        let request = self
            .request(Method::GET, path, Some(query))
            .map_err(|e| format!("cannot make the request URI: {e}"))?;
        match request.send().await {
            Ok(response) => {
                let status = response.status();
                // Read to the end so that the connection can serve the next call.
                let _ = response.bytes().await;
                Ok(status)
            }
            Err(e) => Err(super::error::error_chain(&e.without_url())),
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
        let request = self
            .request(Method::GET, &path, Some(&query))?
            .header(IS_ANONYMOUS, HeaderValue::from_static("true"));
        let answer = self.send(endpoint, Method::GET, &path, request).await?;
        let response = &answer.response;
        let status = response.status();
        let outcome = if status.is_success() {
            UnsubscribeOutcome::Done
        } else if status.is_redirection() {
            let location = response
                .headers()
                .get(LOCATION)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string();
            match redirect_err(&self.base, &location) {
                Some(err) => UnsubscribeOutcome::RefusedByRedirect { err },
                None => UnsubscribeOutcome::Redirected { location },
            }
        } else {
            match status {
                StatusCode::FORBIDDEN => UnsubscribeOutcome::Forbidden,
                StatusCode::NOT_FOUND => UnsubscribeOutcome::NotFound,
                other => return Err(ApiError::status_of(Method::GET, &path, other)),
            }
        };
        // The body says nothing the status does not; it is read (within the call's
        // timeout) so that the connection can serve the next call, and a failure to read
        // it changes nothing about the answer.
        let _ = answer.response.bytes().await;
        Ok(outcome)
    }

    /// `GET /subscriptions?filter={"where":{"id":..,"channel":"email","state":"confirmed","unsubscriptionCode":..}}`:
    /// the subscription a bounce address names, if its code matches.
    pub async fn find_confirmed_subscriptions(
        &self,
        id: &str,
        code: &str,
    ) -> Result<Vec<Subscription>, ApiError> {
        let filter = ConfirmedSubscription {
            id,
            channel: "email",
            state: "confirmed",
            unsubscription_code: code,
        };
        self.get_filtered(ApiEndpoint::FindSubscription, "/subscriptions", &filter)
            .await
    }

    /// The subscription with this id in any state, or `None`:
    /// `GET /subscriptions?filter={"where":{"id":..}}`. Used to recognise an unsubscribe
    /// that was already applied. The filter form is the listing call NotifyBC documents and
    /// that the bounce flow already relies on, so no further endpoint is needed.
    pub async fn get_subscription(&self, id: &str) -> Result<Option<Subscription>, ApiError> {
        let found: Vec<Subscription> = self
            .get_filtered(
                ApiEndpoint::FindSubscription,
                "/subscriptions",
                &ById { id },
            )
            .await?;
        Ok(found.into_iter().find(|s| s.id == id))
    }

    /// `GET /bounces?filter={"where":{"channel":"email","state":"active","userChannelId":..}}`.
    pub async fn find_active_bounces(
        &self,
        user_channel_id: &str,
    ) -> Result<Vec<Bounce>, ApiError> {
        let filter = ActiveBounces {
            channel: "email",
            state: "active",
            user_channel_id,
        };
        self.get_filtered(ApiEndpoint::FindBounce, "/bounces", &filter)
            .await
    }

    /// `POST /bounces`; returns the created record (with its id).
    pub async fn create_bounce(&self, bounce: &NewBounce<'_>) -> Result<Bounce, ApiError> {
        let (method, path) = (Method::POST, "/bounces");
        let body = json_body(bounce, bounce.bounce_messages.size_hint(), &method, path)?;
        let request = self.request_with_body(method.clone(), path, body)?;
        let answer = self
            .send(ApiEndpoint::CreateBounce, method.clone(), path, request)
            .await?;
        let status = answer.response.status();
        if !status.is_success() {
            return Err(ApiError::status_of(method, path, status));
        }
        self.read_json(method, path, answer).await
    }

    /// `PATCH /bounces/{id}` with `{hardBounceCount, bounceMessages}`: one more bounce
    /// counted on the record.
    pub async fn update_bounce(
        &self,
        id: &str,
        hard_bounce_count: u64,
        bounce_messages: BounceMessages<'_>,
    ) -> Result<(), ApiError> {
        let body = BounceCount {
            hard_bounce_count,
            bounce_messages,
        };
        self.patch_bounce(
            ApiEndpoint::UpdateBounce,
            id,
            &body,
            bounce_messages.size_hint(),
        )
        .await
    }

    /// `PATCH /bounces/{id}` with `{"state":"deleted"}`: the record retired once the
    /// subscriber is unsubscribed.
    pub async fn retire_bounce(&self, id: &str) -> Result<(), ApiError> {
        let body = BounceState { state: "deleted" };
        self.patch_bounce(ApiEndpoint::DeactivateBounce, id, &body, 32)
            .await
    }

    async fn patch_bounce(
        &self,
        endpoint: ApiEndpoint,
        id: &str,
        body: &impl Serialize,
        size_hint: usize,
    ) -> Result<(), ApiError> {
        let method = Method::PATCH;
        let path = format!("/bounces/{}", path_segment(id)?);
        let body = json_body(body, size_hint, &method, &path)?;
        let request = self.request_with_body(method.clone(), &path, body)?;
        let answer = self.send(endpoint, method.clone(), &path, request).await?;
        let status = answer.response.status();
        if !status.is_success() {
            return Err(ApiError::status_of(method, &path, status));
        }
        // Read to the end so that the connection can serve the next call.
        let _ = answer.response.bytes().await;
        Ok(())
    }

    /// `GET {path}?filter={"where":condition}`, the answer read as JSON.
    async fn get_filtered<T: serde::de::DeserializeOwned>(
        &self,
        endpoint: ApiEndpoint,
        path: &str,
        condition: &impl Serialize,
    ) -> Result<T, ApiError> {
        let method = Method::GET;
        let filter = serde_json::to_string(&Filter { condition }).map_err(|e| {
            ApiError::Client(format!("cannot write the filter of {method} {path}: {e}"))
        })?;
        let query = format!("filter={}", query_component(&filter));
        let request = self.request(method.clone(), path, Some(&query))?;
        let answer = self.send(endpoint, method.clone(), path, request).await?;
        let status = answer.response.status();
        if !status.is_success() {
            return Err(ApiError::status_of(method, path, status));
        }
        self.read_json(method, path, answer).await
    }

    /// A request to `{base}{path}?{query}` (`path` and `query` already encoded) with the
    /// headers every call carries: `Accept: */*`, and `Authorization` when configured.
    fn request(
        &self,
        method: Method,
        path: &str,
        query: Option<&str>,
    ) -> Result<reqwest::RequestBuilder, ApiError> {
        let url = self.url(path, query).map_err(|e| {
            ApiError::Client(format!("cannot make the URL of {method} {path}: {e}"))
        })?;
        let mut request = self
            .http
            .request(method, url)
            .header(ACCEPT, HeaderValue::from_static("*/*"));
        if let Some(authorization) = &self.authorization {
            request = request.header(AUTHORIZATION, authorization.clone());
        }
        Ok(request)
    }

    /// [`ApiClient::request`] with a JSON body.
    fn request_with_body(
        &self,
        method: Method,
        path: &str,
        body: Vec<u8>,
    ) -> Result<reqwest::RequestBuilder, ApiError> {
        Ok(self
            .request(method, path, None)?
            .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
            .body(body))
    }

    /// `{base}{path}?{query}` (`path` and `query` already encoded) as a URL: the base is in
    /// the URL parser's normal form and the encoded parts hold only characters that it
    /// leaves as they are, so this is what parsing `{api_base}{path}?{query}` would give.
    pub(super) fn url(
        &self,
        path: &str,
        query: Option<&str>,
    ) -> Result<reqwest::Url, url::ParseError> {
        let mut text =
            String::with_capacity(self.base.len() + path.len() + query.map_or(0, |q| q.len() + 1));
        text.push_str(&self.base);
        text.push_str(path);
        if let Some(query) = query {
            text.push('?');
            text.push_str(query);
        }
        reqwest::Url::parse(&text)
    }

    /// Sends `request` under a permit of `api.max_in_flight`, waiting at most
    /// `api.timeout_ms` for one. Returns once the answer's head has arrived; its body must
    /// then be read within what is left of the call's `api.timeout_ms`.
    async fn send(
        &self,
        endpoint: ApiEndpoint,
        method: Method,
        path: &str,
        request: reqwest::RequestBuilder,
    ) -> Result<Answer, ApiError> {
        let timeout = self.timeout;
        let permit = match tokio::time::timeout(timeout, self.permits.clone().acquire_owned()).await
        {
            Ok(Ok(permit)) => permit,
            // The semaphore is never closed; treat it like a full one.
            Ok(Err(_)) | Err(_) => {
                return Err(ApiError::Busy {
                    timeout_ms: self.timeout_ms(),
                    max_in_flight: self.max_in_flight,
                });
            }
        };
        let started = Instant::now();
        let sent = request.send().await;
        if let Some(m) = &self.metrics {
            let status = sent.as_ref().ok().map(|r| r.status().as_u16());
            m.api_call(endpoint, status, started.elapsed());
        }
        match sent {
            Ok(response) => Ok(Answer {
                response,
                _permit: permit,
            }),
            Err(e) => Err(ApiError::transport(method, path, self.timeout_ms(), e)),
        }
    }

    async fn read_json<T: serde::de::DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        answer: Answer,
    ) -> Result<T, ApiError> {
        let Answer {
            response,
            _permit: permit,
        } = answer;
        let bytes = match response.bytes().await {
            Ok(bytes) => bytes,
            Err(e) => return Err(ApiError::transport(method, path, self.timeout_ms(), e)),
        };
        drop(permit);
        serde_json::from_slice(&bytes).map_err(|e| ApiError::BadJson {
            method,
            path: path.to_string(),
            detail: e.to_string(),
        })
    }
}

/// `value` as JSON text, in a buffer of about `size_hint` bytes.
fn json_body(
    value: &impl Serialize,
    size_hint: usize,
    method: &Method,
    path: &str,
) -> Result<Vec<u8>, ApiError> {
    let mut out = Vec::with_capacity(size_hint + 128);
    serde_json::to_writer(&mut out, value)
        .map_err(|e| ApiError::Client(format!("cannot write the body of {method} {path}: {e}")))?;
    Ok(out)
}
