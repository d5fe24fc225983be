//! The client against raw HTTP/1.1 servers on loopback, and the JSON it writes.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http::StatusCode;
use serde_json::Value;

use super::client::ApiClient;
use super::encode::{path_segment, query_component};
use super::model::{ActiveBounces, BounceCount, BounceState, ById, ConfirmedSubscription, Filter};
use super::{ApiError, BounceMessages, NewBounce, UnsubscribeOutcome};
use crate::config::Settings;

/// Each call's URL is what parsing `{api_base}{path}?{query}` as a URL gives, less the
/// user info (sent as `Authorization` instead).
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
            let built = client.url(&path, query.as_deref()).unwrap();
            assert_eq!(built.as_str(), expected.as_str(), "{text}");
        }
    }
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
    // A PEM block that is neither a certificate nor a key is refused.
    let both = dir.path().join("both.pem");
    let csr = "-----BEGIN CERTIFICATE REQUEST-----\nMAA=\n-----END CERTIFICATE REQUEST-----\n";
    std::fs::write(&both, format!("{}{}{csr}", cert.pem(), key.serialize_pem())).unwrap();
    let b = both.to_string_lossy().replace('\\', "/");
    let s = settings_with(&format!("client_cert = '{b}'\nclient_key = '{b}'"));
    let e = ApiClient::new(&s).unwrap_err().to_string();
    assert!(e.contains("neither a certificate nor a private key"), "{e}");
}

#[test]
fn token_is_not_in_debug_output() {
    let s = settings_with("access_token = 'Bearer s3cret'");
    let client = ApiClient::new(&s).unwrap();
    assert!(!format!("{client:?}").contains("s3cret"));
    let s = settings_with("access_token = \"bad\\ntoken\"");
    assert!(matches!(ApiClient::new(&s), Err(ApiError::BadToken)));
}

/// A raw HTTP/1.1 server on loopback that answers every request on a connection with
/// `answer`, counting the connections it accepts and keeping each request as received
/// (head and `Content-Length` body).
struct RawServer {
    host: String,
    accepted: Arc<AtomicUsize>,
    requests: Arc<Mutex<Vec<String>>>,
}

impl RawServer {
    async fn start(answer: &'static [u8]) -> RawServer {
        RawServer::start_closing(answer, false).await
    }

    /// Closes each connection after its first answer when `close_after_one` (as a
    /// keep-alive timeout would).
    async fn start_closing(answer: &'static [u8], close_after_one: bool) -> RawServer {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let host = format!("http://{}", listener.local_addr().unwrap());
        let accepted = Arc::new(AtomicUsize::new(0));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let (count, seen_requests) = (accepted.clone(), requests.clone());
        tokio::spawn(async move {
            loop {
                let (mut stream, _) = listener.accept().await.unwrap();
                count.fetch_add(1, Ordering::SeqCst);
                let seen_requests = seen_requests.clone();
                tokio::spawn(async move {
                    let mut seen = Vec::new();
                    let mut buf = [0u8; 4096];
                    loop {
                        match stream.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => seen.extend_from_slice(&buf[..n]),
                        }
                        while let Some(end) = seen.windows(4).position(|w| w == b"\r\n\r\n") {
                            let head = String::from_utf8_lossy(&seen[..end + 4]).into_owned();
                            let length = head
                                .lines()
                                .find_map(|l| {
                                    let (name, value) = l.split_once(':')?;
                                    name.eq_ignore_ascii_case("content-length")
                                        .then(|| value.trim().parse::<usize>().ok())?
                                })
                                .unwrap_or(0);
                            if seen.len() < end + 4 + length {
                                break;
                            }
                            let request: Vec<u8> = seen.drain(..end + 4 + length).collect();
                            seen_requests
                                .lock()
                                .unwrap()
                                .push(String::from_utf8_lossy(&request).into_owned());
                            if stream.write_all(answer).await.is_err() || close_after_one {
                                return;
                            }
                        }
                    }
                });
            }
        });
        RawServer {
            host,
            accepted,
            requests,
        }
    }

    fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }
}

fn client_for(host: &str, api: &str) -> ApiClient {
    let s =
        Settings::from_toml_str(&format!("internal_http_host = '{host}'\n[api]\n{api}\n")).unwrap();
    ApiClient::new(&s).unwrap()
}

/// The head's header lines, names lowercased, in a form easy to search.
fn headers_of(request: &str) -> Vec<String> {
    let head = request.split("\r\n\r\n").next().unwrap_or("");
    head.lines()
        .skip(1)
        .map(|l| match l.split_once(':') {
            Some((name, value)) => format!("{}: {}", name.to_ascii_lowercase(), value.trim()),
            None => l.to_string(),
        })
        .collect()
}

#[tokio::test]
async fn requests_carry_the_configured_headers() {
    let server =
        RawServer::start(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\n{\"id\":\"1\"}").await;
    let client = client_for(&server.host, "access_token = 'Bearer s3cret'");
    let messages = BounceMessages {
        date: "2024-02-02T00:00:00.000Z",
        message: "m",
        older: &[],
    };
    client
        .create_bounce(&NewBounce {
            channel: "email",
            user_channel_id: "a@b.example",
            hard_bounce_count: 1,
            bounce_messages: messages,
        })
        .await
        .unwrap();
    client
        .unsubscribe("1", "c", "a@b.example", false)
        .await
        .unwrap();
    let requests = server.requests();
    assert_eq!(requests.len(), 2, "{requests:?}");

    assert!(
        requests[0].starts_with("POST /api/bounces HTTP/1.1\r\n"),
        "{}",
        requests[0]
    );
    let h = headers_of(&requests[0]);
    for want in [
        "authorization: Bearer s3cret",
        "content-type: application/json",
        "accept: */*",
    ] {
        assert!(h.iter().any(|l| l == want), "{want} missing in {h:?}");
    }
    assert!(h.iter().any(|l| l.starts_with("host: 127.0.0.1:")), "{h:?}");
    assert!(!h.iter().any(|l| l.starts_with("is_anonymous")), "{h:?}");

    assert!(
        requests[1].starts_with(
            "GET /api/subscriptions/1/unsubscribe?unsubscriptionCode=c&userChannelId=a%40b.example HTTP/1.1\r\n"
        ),
        "{}",
        requests[1]
    );
    let h = headers_of(&requests[1]);
    assert!(h.iter().any(|l| l == "is_anonymous: true"), "{h:?}");
    assert!(
        h.iter().any(|l| l == "authorization: Bearer s3cret"),
        "{h:?}"
    );
    assert!(!h.iter().any(|l| l.starts_with("content-type")), "{h:?}");

    // User info in the URL is sent as Basic credentials, in place of the token, and never
    // in the URL.
    let host = server.host.replace("http://", "http://user:p%40ss@");
    let client = client_for(&host, "access_token = 'Bearer s3cret'");
    assert_eq!(client.base(), format!("{}/api", server.host));
    client
        .unsubscribe("1", "c", "a@b.example", false)
        .await
        .unwrap();
    let requests = server.requests();
    let last = &requests[requests.len() - 1];
    assert!(last.starts_with("GET /api/subscriptions/1/"), "{last}");
    // base64("user:p@ss")
    let h = headers_of(last);
    assert!(
        h.iter().any(|l| l == "authorization: Basic dXNlcjpwQHNz"),
        "{h:?}"
    );
}

#[tokio::test]
async fn connections_are_kept_alive_and_reused() {
    let server = RawServer::start(
        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n[]",
    )
    .await;
    let client = client_for(&server.host, "");
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
    // The unsubscribe call, whose body tells nothing, keeps it too.
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
    assert_eq!(server.accepted(), 1);
    assert_eq!(server.requests().len(), 6);
}

#[tokio::test]
async fn redirects_are_answers_not_followed() {
    let server = RawServer::start(
        b"HTTP/1.1 302 Found\r\nlocation: /api/bounces?err=Forbidden\r\ncontent-length: 0\r\n\r\n",
    )
    .await;
    let client = client_for(&server.host, "");
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
    assert_eq!(server.accepted(), 1);
    // Two calls, two requests: the Location was never requested.
    assert_eq!(server.requests().len(), 2);
}

#[tokio::test]
async fn the_timeout_covers_reading_the_body() {
    // The head arrives at once; the body never completes.
    let server = RawServer::start(
        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n[",
    )
    .await;
    let client = client_for(&server.host, "timeout_ms = 300");
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
    for secret in ["c0de", "s3cret", "b.example", "?", "127.0.0.1"] {
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
    let server =
        RawServer::start_closing(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n[]", true).await;
    let client = client_for(&server.host, "");
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
        assert_eq!(server.accepted(), n);
    }
}

#[test]
fn bounce_bodies_are_the_json_of_their_fields() {
    let older = vec![serde_json::json!({"date": "2024-01-01T00:00:00.000Z", "message": "old\r\n"})];
    let messages = BounceMessages {
        date: "2024-02-02T00:00:00.000Z",
        message: "From: \"a\" <a@b>\r\n\r\nbody",
        older: &older,
    };
    let items = serde_json::json!([
        {"date": messages.date, "message": messages.message},
        older[0],
    ]);
    let created = serde_json::to_vec(&NewBounce {
        channel: "email",
        user_channel_id: "a@b.example",
        hard_bounce_count: 2,
        bounce_messages: messages,
    })
    .unwrap();
    assert_eq!(
        serde_json::from_slice::<Value>(&created).unwrap(),
        serde_json::json!({"channel": "email", "userChannelId": "a@b.example",
            "hardBounceCount": 2, "bounceMessages": items})
    );
    let counted = serde_json::to_vec(&BounceCount {
        hard_bounce_count: 3,
        bounce_messages: messages,
    })
    .unwrap();
    assert_eq!(
        serde_json::from_slice::<Value>(&counted).unwrap(),
        serde_json::json!({"hardBounceCount": 3, "bounceMessages": items})
    );
}

/// The bodies and filters, byte for byte, as the hand-written JSON writer this client used
/// before serde wrote them (the expected texts were produced by that writer): key order,
/// escapes (CRLF, quotes, backslashes, other control characters as `\u00XX`, non-ASCII as
/// it is) and the stored items written back as read.
#[test]
fn bodies_and_filters_are_byte_identical_to_the_former_writer() {
    let older: Vec<Value> = serde_json::from_str(
        r#"[{"date":"2024-01-01T00:00:00.000Z","message":"old\r\n\"q\" \\ \u0001\t"},{"message":"é 日本 \u2028\u007f","date":"x","extra":[1,-2,3.5,1e300,null,true,false,{}],"nested":{"b":{"c":"d"},"a":[]}}]"#,
    )
    .unwrap();
    let message =
        "From: \"a\" <a@b>\r\nSubject: x\u{8}\u{c}\r\n\r\nbody\\ \u{0}\u{1f} é/</script>\r";
    let messages = BounceMessages {
        date: "2024-02-02T00:00:00.000Z",
        message,
        older: &older,
    };
    let created = serde_json::to_string(&NewBounce {
        channel: "email",
        user_channel_id: "a\"b@é.example",
        hard_bounce_count: 2,
        bounce_messages: messages,
    })
    .unwrap();
    let counted = serde_json::to_string(&BounceCount {
        hard_bounce_count: 3,
        bounce_messages: messages,
    })
    .unwrap();
    let retired = serde_json::to_string(&BounceState { state: "deleted" }).unwrap();
    let (id, code, address) = ("5f3e\"x\\y", "1 2\u{1}", "a\"b@é.example");
    let confirmed = serde_json::to_string(&Filter {
        condition: ConfirmedSubscription {
            id,
            channel: "email",
            state: "confirmed",
            unsubscription_code: code,
        },
    })
    .unwrap();
    let by_id = serde_json::to_string(&Filter {
        condition: ById { id },
    })
    .unwrap();
    let active = serde_json::to_string(&Filter {
        condition: ActiveBounces {
            channel: "email",
            state: "active",
            user_channel_id: address,
        },
    })
    .unwrap();
    let items = "[{\"date\":\"2024-02-02T00:00:00.000Z\",\"message\":\"From: \\\"a\\\" <a@b>\\r\\nSubject: x\\b\\f\\r\\n\\r\\nbody\\\\ \\u0000\\u001f é/</script>\\r\"},{\"date\":\"2024-01-01T00:00:00.000Z\",\"message\":\"old\\r\\n\\\"q\\\" \\\\ \\u0001\\t\"},{\"date\":\"x\",\"extra\":[1,-2,3.5,1e+300,null,true,false,{}],\"message\":\"é 日本 \u{2028}\u{7f}\",\"nested\":{\"a\":[],\"b\":{\"c\":\"d\"}}}]";
    assert_eq!(
        created,
        format!(
            "{{\"channel\":\"email\",\"userChannelId\":\"a\\\"b@é.example\",\"hardBounceCount\":2,\"bounceMessages\":{items}}}"
        )
    );
    assert_eq!(
        counted,
        format!("{{\"hardBounceCount\":3,\"bounceMessages\":{items}}}")
    );
    assert_eq!(retired, "{\"state\":\"deleted\"}");
    assert_eq!(
        confirmed,
        "{\"where\":{\"id\":\"5f3e\\\"x\\\\y\",\"channel\":\"email\",\"state\":\"confirmed\",\"unsubscriptionCode\":\"1 2\\u0001\"}}"
    );
    assert_eq!(by_id, "{\"where\":{\"id\":\"5f3e\\\"x\\\\y\"}}");
    assert_eq!(
        active,
        "{\"where\":{\"channel\":\"email\",\"state\":\"active\",\"userChannelId\":\"a\\\"b@é.example\"}}"
    );
}
