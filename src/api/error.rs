//! [`ApiError`]: what can go wrong with a call to the notification service, or with setting
//! up the client, each message saying what to check.
//!
//! No message carries the access token or a request's query string (which holds an
//! unsubscription code): they name the method, the path and what to check.

use http::{Method, StatusCode};

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

    pub(super) fn status_of(method: Method, path: &str, status: StatusCode) -> ApiError {
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

    /// The error of a call that got no (complete) answer: a timeout, or the service out of
    /// reach. reqwest's error names the URL, which may hold a code: it is dropped first.
    pub(super) fn transport(
        method: Method,
        path: &str,
        timeout_ms: u64,
        e: reqwest::Error,
    ) -> ApiError {
        if e.is_timeout() {
            return ApiError::Timeout {
                method,
                path: path.to_string(),
                timeout_ms,
            };
        }
        ApiError::Unreachable {
            method,
            path: path.to_string(),
            detail: error_chain(&e.without_url()),
        }
    }
}

/// An error and its causes on one line (the URL, which may hold a code, is already gone).
pub(super) fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
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
