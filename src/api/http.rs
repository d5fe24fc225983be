//! The reqwest client under [`super::ApiClient`], and what it is built from: the API base
//! and its credentials, TLS (roots, `api.ca_bundle`, the client certificate), timeouts and
//! the connection pool.
//!
//! reqwest keeps the connections alive and pooled (HTTP/1.1; idle ones closed after 60 s,
//! at most `api.max_in_flight` idle, TCP keepalive and `TCP_NODELAY`), puts
//! `api.connect_timeout_ms` on each connect (TCP and TLS handshake) and `api.timeout_ms`
//! on each call, body included, never follows a redirect (a 3xx from the unsubscribe call
//! is an answer, not a detour) and uses no proxy. https trusts the webpki roots plus
//! `api.ca_bundle`, with TLS 1.2 and 1.3 (ring), and presents `api.client_cert` when set.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use http::HeaderValue;
use percent_encoding::percent_decode_str;
use rustls::pki_types::pem::{PemObject, SectionKind};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use super::ApiError;
use crate::config::ApiSettings;

/// How long a connection may stay idle in the pool.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Idle time after which TCP keepalive probes start.
const TCP_KEEPALIVE: Duration = Duration::from_secs(30);

/// The HTTP client for the API, from the `api` section. Certificate and key files are read
/// here, so a bad file stops the start.
pub(super) fn client(api: &ApiSettings) -> Result<reqwest::Client, ApiError> {
    reqwest::Client::builder()
        .use_preconfigured_tls(tls_config(api)?)
        .http1_only()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(api.connect_timeout)
        .timeout(api.timeout)
        .pool_idle_timeout(IDLE_TIMEOUT)
        .pool_max_idle_per_host(api.max_in_flight)
        .tcp_keepalive(TCP_KEEPALIVE)
        .tcp_nodelay(true)
        .build()
        .map_err(|e| ApiError::Client(super::error::error_chain(&e)))
}

/// The API base in the URL parser's normal form, without user info, query, fragment or a
/// trailing `/`, and the `Basic` credentials of its user info, if any (sent in place of
/// `api.access_token`, as the URL asks).
pub(super) fn base_and_credentials(text: &str) -> Result<(String, Option<HeaderValue>), ApiError> {
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
    // Every call's URL starts like this one: check it once here.
    http::Uri::try_from(format!("{base}/")).map_err(|e| not_a_url(&e))?;
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
        let certs = CertificateDer::pem_slice_iter(&pem)
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
    for section in <(SectionKind, Vec<u8>)>::pem_slice_iter(pem) {
        let (kind, der) = section.map_err(|e| format!("invalid PEM: {e}"))?;
        if kind == SectionKind::Certificate {
            certs.push(CertificateDer::from(der));
        } else if let Some(key) = PrivateKeyDer::from_pem(kind, der) {
            keys.push(key);
        } else {
            return Err("holds a PEM block that is neither a certificate nor a private key".into());
        }
    }
    match (keys.pop(), certs.is_empty()) {
        (Some(key), false) => Ok((certs, key)),
        _ => Err("private key or certificate not found".to_string()),
    }
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
