//! Test harness for the SMTP server: start it in-process on loopback with a configuration
//! snippet, a recording [`Deliver`], and a raw-socket SMTP client for protocol edges.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use notify_inbound::config::Settings;
use notify_inbound::flows::{CodeCheck, Deliver, Delivered, Envelope};
use notify_inbound::metrics::Metrics;
use notify_inbound::reply::Reply;
use notify_inbound::server::Server;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

// One reader for every test client; a test using both the harness and the mta loads it
// twice, a private copy each.
#[allow(clippy::duplicate_mod)]
#[path = "../common/replies.rs"]
mod replies;
use replies::Replies;

/// Records every delivered message and answers with a settable reply.
pub struct Recorder {
    pub messages: Mutex<Vec<(Envelope, Vec<u8>)>>,
    pub reply: Mutex<Reply>,
    /// Delay before answering, to hold a transaction in flight.
    pub delay: Mutex<Duration>,
    /// What each delivery says it learnt about the recipient's code.
    pub code_check: Mutex<CodeCheck>,
}

impl Recorder {
    pub fn new() -> Arc<Recorder> {
        Arc::new(Recorder {
            messages: Mutex::new(Vec::new()),
            reply: Mutex::new(Reply::ok("message accepted")),
            delay: Mutex::new(Duration::ZERO),
            code_check: Mutex::new(CodeCheck::Unknown),
        })
    }

    pub fn count(&self) -> usize {
        self.messages.lock().unwrap().len()
    }

    pub fn bodies(&self) -> Vec<Vec<u8>> {
        self.messages
            .lock()
            .unwrap()
            .iter()
            .map(|(_, b)| b.clone())
            .collect()
    }
}

impl Deliver for Recorder {
    fn deliver<'a>(&'a self, envelope: &'a Envelope, message: &'a [u8]) -> BoxFuture<'a, Reply> {
        Box::pin(async move {
            let delay = *self.delay.lock().unwrap();
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            self.messages
                .lock()
                .unwrap()
                .push((envelope.clone(), message.to_vec()));
            self.reply.lock().unwrap().clone()
        })
    }

    fn deliver_reported<'a>(
        &'a self,
        envelope: &'a Envelope,
        message: &'a [u8],
    ) -> BoxFuture<'a, Delivered> {
        Box::pin(async move {
            let reply = self.deliver(envelope, message).await;
            Delivered {
                reply,
                bounce: None,
                code: *self.code_check.lock().unwrap(),
            }
        })
    }
}

pub const DOMAIN: &str = "notify.example";

/// Settings for tests: our domain, plain+STARTTLS and implicit-TLS listeners on random
/// loopback ports, then `extra` TOML merged over the top-level.
pub fn settings(extra: &str) -> Settings {
    let toml = format!(
        "internal_http_host = 'http://127.0.0.1:9'\n{extra}\n\
         [inbound_smtp_server]\ndomain = '{DOMAIN}'\nlistening_ip = '127.0.0.1'\n\
         [[inbound_smtp_server.listeners]]\nip = '127.0.0.1'\nport = 0\ntls = 'starttls'\n\
         [[inbound_smtp_server.listeners]]\nip = '127.0.0.1'\nport = 0\ntls = 'implicit'\n\
         [operations]\nlisten = ''\n"
    );
    Settings::from_toml_str(&toml).expect("test settings")
}

pub async fn start(settings: Settings, deliver: Arc<dyn Deliver>) -> Server {
    Server::start(Arc::new(settings), deliver, Arc::new(Metrics::new()))
        .await
        .expect("server starts")
}

/// A raw SMTP client that reads whole (multi-line) replies.
pub struct Client<S> {
    pub stream: S,
    replies: Replies,
}

impl Client<TcpStream> {
    /// Connects to 127.0.0.1:`port` once something listens there (a binary just started),
    /// trying for 10 s.
    pub async fn connect_when_listening(port: u16) -> Client<TcpStream> {
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        for _ in 0..200 {
            if let Ok(s) = TcpStream::connect(addr).await {
                return Client::new(s);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("server not listening on {addr}");
    }

    pub async fn connect(addr: SocketAddr) -> Client<TcpStream> {
        let stream = TcpStream::connect(addr).await.expect("connect");
        Client {
            stream,
            replies: Replies::new(),
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Client<S> {
    pub fn new(stream: S) -> Client<S> {
        Client {
            stream,
            replies: Replies::new(),
        }
    }

    pub fn into_inner(self) -> S {
        self.stream
    }

    pub async fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.expect("write");
    }

    /// Sends one command line and reads its reply.
    pub async fn cmd(&mut self, line: &str) -> String {
        self.send(format!("{line}\r\n").as_bytes()).await;
        self.reply().await
    }

    /// Reads one complete reply (all its lines); panics after 10 s.
    pub async fn reply(&mut self) -> String {
        tokio::time::timeout(Duration::from_secs(10), self.reply_inner())
            .await
            .expect("reply within 10 s")
    }

    /// Reads one reply or returns None when the server closed the connection (or stayed
    /// silent for 20 s).
    pub async fn try_reply(&mut self) -> Option<String> {
        self.replies.next(&mut self.stream).await
    }

    async fn reply_inner(&mut self) -> String {
        self.try_reply()
            .await
            .expect("server closed the connection")
    }

    /// True once the server has closed the connection (reads EOF within 10 s).
    pub async fn closed(&mut self) -> bool {
        let fut = async {
            let mut chunk = [0u8; 1024];
            loop {
                match self.stream.read(&mut chunk).await {
                    Ok(0) | Err(_) => return true,
                    Ok(_) => continue,
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(10), fut)
            .await
            .unwrap_or(false)
    }
}

/// The reply code of a reply text.
pub fn code(reply: &str) -> u16 {
    reply.get(..3).and_then(|c| c.parse().ok()).unwrap_or(0)
}

/// A rustls client config that accepts any server certificate (tests use self-signed ones).
pub fn insecure_tls() -> Arc<rustls::ClientConfig> {
    insecure_tls_versions(rustls::DEFAULT_VERSIONS)
}

/// [`insecure_tls`] limited to the given protocol versions.
pub fn insecure_tls_versions(
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> Arc<rustls::ClientConfig> {
    use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
    use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
    use rustls::{DigitallySignedStruct, SignatureScheme};

    #[derive(Debug)]
    struct AcceptAll;
    impl ServerCertVerifier for AcceptAll {
        fn verify_server_cert(
            &self,
            _: &CertificateDer<'_>,
            _: &[CertificateDer<'_>],
            _: &ServerName<'_>,
            _: &[u8],
            _: UnixTime,
        ) -> Result<ServerCertVerified, rustls::Error> {
            Ok(ServerCertVerified::assertion())
        }
        fn verify_tls12_signature(
            &self,
            _: &[u8],
            _: &CertificateDer<'_>,
            _: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            Ok(HandshakeSignatureValid::assertion())
        }
        fn verify_tls13_signature(
            &self,
            _: &[u8],
            _: &CertificateDer<'_>,
            _: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            Ok(HandshakeSignatureValid::assertion())
        }
        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            rustls::crypto::ring::default_provider()
                .signature_verification_algorithms
                .supported_schemes()
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AcceptAll))
        .with_no_client_auth();
    Arc::new(config)
}
