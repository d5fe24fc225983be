//! The deployment paths of docs/behaviour.md §1 end to end, with the real proxies in front of the server:
//! (a) nginx `stream` speaking TLS to our implicit-TLS listener, (b) HAProxy routing by SNI
//! with TLS passthrough as the OpenShift router does, (c) HAProxy sending the PROXY protocol
//! v1 and v2, (d) nginx's `mail` module with `auth_http`, with and without XCLIENT.
//!
//! Each test starts the fake NotifyBC API, the server with the real flows processor, and the
//! proxy from its template in `tests/proxies/` (rendered into a per-test temporary directory,
//! on free loopback ports, stopped when the test ends). Then a real `un` message and a real
//! `bn` delivery status notification go through the proxy, and the test asserts the reply to
//! DATA, the API's resulting state and the client address the server recorded. The client
//! connects from 127.0.0.2 so that the proxy's address (127.0.0.1) and the real client's
//! differ.
//!
//! A missing nginx, nginx module or HAProxy fails the test with the line that installs it.

mod common;
mod harness;

use std::fs::File;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::dsn::Dsn;
use common::fake_api::FakeApi;
use common::free_port;
use futures::future::BoxFuture;
use harness::{Client, code, insecure_tls};
use notify_inbound::config::{Settings, TlsMode};
use notify_inbound::flows::{Deliver, Envelope, Processor};
use notify_inbound::metrics::Metrics;
use notify_inbound::reply::Reply;
use notify_inbound::router::RecipientKind;
use notify_inbound::server::Server;
use notify_inbound::tls::generate_self_signed;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

/// What fixes a missing proxy.
const INSTALL: &str = "run scripts/ensure-proxies.sh, or as root: \
    apt-get update && apt-get install -y nginx libnginx-mod-stream libnginx-mod-mail haproxy";

/// The mail domain of the `un`/`bn` addresses.
const DOMAIN: &str = "notify.example.test";
/// The Route host (OpenShift) or upstream name (nginx stream), sent as SNI.
const SNI: &str = "notify-smtp.apps.example.test";
/// The name nginx's `mail` module greets with and sends in its own EHLO.
const NGINX_SERVER_NAME: &str = "relay.example.test";
/// Where the test's SMTP client connects from: not the proxies' address.
const CLIENT_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);
/// The proxies' own address towards the server.
const PROXY_IP: Ipv4Addr = Ipv4Addr::LOCALHOST;

const UN_SUBSCRIBER: &str = "reader@subscriber.example";
const UN_CODE: &str = "12345";
const BN_SUBSCRIBER: &str = "gone@subscriber.example";
const BN_CODE: &str = "67890";
const BN_MESSAGE_ID: &str = "<dsn.4711@mta.subscriber.example>";

/// How long a proxy may take to come up or go down.
const PROXY_TIMEOUT: Duration = Duration::from_secs(10);

// ---- the server behind the proxies ----

/// What the server handed to the flows for one message, and what the flows answered.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Seen {
    client: IpAddr,
    kind: RecipientKind,
    code: u16,
}

/// The real [`Processor`], recording the client address each envelope carries.
struct Recording {
    processor: Processor,
    seen: Mutex<Vec<Seen>>,
}

impl Recording {
    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

impl Deliver for Recording {
    fn deliver<'a>(&'a self, envelope: &'a Envelope, message: &'a [u8]) -> BoxFuture<'a, Reply> {
        Box::pin(async move {
            let reply = self.processor.deliver(envelope, message).await;
            self.seen.lock().unwrap().push(Seen {
                client: envelope.client,
                kind: envelope.recipient.kind,
                code: reply.code,
            });
            reply
        })
    }
}

/// How the one listener behind the proxy is set up.
struct ListenerSetup {
    tls: &'static str,
    proxy_protocol: bool,
    xclient: bool,
    trusted_proxies: &'static str,
}

/// The fake API with one subscription for the `un` message and one for the `bn`, the server
/// in front of it, and the certificate it serves.
struct Backend {
    fake: FakeApi,
    recording: Arc<Recording>,
    metrics: Arc<Metrics>,
    server: Server,
    un_id: String,
    bn_id: String,
    /// DER of the configured certificate.
    cert_der: Vec<u8>,
    _cert_dir: tempfile::TempDir,
}

impl Backend {
    async fn start(listener: ListenerSetup) -> Backend {
        let fake = FakeApi::start().await;
        let un_id = fake.add_subscription("myService", UN_SUBSCRIBER, UN_CODE);
        let bn_id = fake.add_subscription("myService", BN_SUBSCRIBER, BN_CODE);

        let cert_dir = tempfile::tempdir().unwrap();
        let (cert, key) = generate_self_signed(&[SNI.to_string()]).unwrap();
        let (cert_path, key_path) = (
            cert_dir.path().join("tls.crt"),
            cert_dir.path().join("tls.key"),
        );
        std::fs::write(&cert_path, &cert).unwrap();
        std::fs::write(&key_path, &key).unwrap();
        let cert_der = CertificateDer::from_pem_slice(cert.as_bytes())
            .unwrap()
            .to_vec();

        let toml = fake.config_toml(&format!(
            "[inbound_smtp_server]\ndomain = '{DOMAIN}'\ntrusted_proxies = {trusted}\n\
             [inbound_smtp_server.options]\ncert = '{cert}'\nkey = '{key}'\n\
             [[inbound_smtp_server.listeners]]\nip = '127.0.0.1'\nport = 0\ntls = '{tls}'\n\
             proxy_protocol = {pp}\nxclient = {xc}\n\
             [operations]\nlisten = ''\n",
            trusted = listener.trusted_proxies,
            cert = cert_path.display(),
            key = key_path.display(),
            tls = listener.tls,
            pp = listener.proxy_protocol,
            xc = listener.xclient,
        ));
        let settings = Settings::from_toml_str(&toml).expect("test settings");
        let recording = Arc::new(Recording {
            processor: Processor::new(&settings).expect("processor"),
            seen: Mutex::new(Vec::new()),
        });
        let metrics = Arc::new(Metrics::new());
        let server = Server::start(Arc::new(settings), recording.clone(), metrics.clone())
            .await
            .expect("server starts");
        Backend {
            fake,
            recording,
            metrics,
            server,
            un_id,
            bn_id,
            cert_der,
            _cert_dir: cert_dir,
        }
    }

    fn port(&self) -> u16 {
        self.server.listeners[0].addr.port()
    }

    fn un_rcpt(&self) -> String {
        format!("un-{}-{UN_CODE}@{DOMAIN}", self.un_id)
    }

    fn bn_rcpt(&self) -> String {
        format!("bn-{}-{BN_CODE}@{DOMAIN}", self.bn_id)
    }

    /// Sends the `un` message in a transaction of an open session; returns the reply to DATA.
    async fn send_un<S: AsyncRead + AsyncWrite + Unpin>(&self, c: &mut Client<S>) -> String {
        let message = format!(
            "From: <{UN_SUBSCRIBER}>\r\nTo: <{rcpt}>\r\nSubject: unsubscribe\r\n\
             Message-ID: <un.1@subscriber.example>\r\n\r\nPlease unsubscribe me.\r\n",
            rcpt = self.un_rcpt()
        );
        transaction(c, UN_SUBSCRIBER, &self.un_rcpt(), &message).await
    }

    /// Sends the `bn` DSN in a transaction of an open session; returns the reply to DATA.
    async fn send_bn<S: AsyncRead + AsyncWrite + Unpin>(&self, c: &mut Client<S>) -> String {
        let message = Dsn {
            message_id: Some(BN_MESSAGE_ID),
            final_recipient: BN_SUBSCRIBER,
            ..Dsn::default()
        }
        .build();
        transaction(c, "", &self.bn_rcpt(), &message).await
    }

    /// The effects of one `un` and one `bn` message from `client`, each answered with 250:
    /// the subscription deleted by an anonymous unsubscribe call, a bounce record with one
    /// hard bounce holding the DSN.
    #[track_caller]
    fn assert_un_and_bn_applied(&self, client: Ipv4Addr) {
        let client = IpAddr::V4(client);
        assert_eq!(
            self.recording.seen(),
            vec![
                Seen {
                    client,
                    kind: RecipientKind::Unsubscribe,
                    code: 250
                },
                Seen {
                    client,
                    kind: RecipientKind::Bounce,
                    code: 250
                },
            ]
        );

        assert_eq!(
            self.fake.subscription(&self.un_id).unwrap().state,
            "deleted"
        );
        let requests = self.fake.requests();
        let unsubscribe: Vec<_> = requests
            .iter()
            .filter(|r| r.path() == format!("/api/subscriptions/{}/unsubscribe", self.un_id))
            .collect();
        assert_eq!(unsubscribe.len(), 1, "{requests:?}");
        assert_eq!(
            unsubscribe[0].uri,
            format!(
                "/api/subscriptions/{}/unsubscribe?unsubscriptionCode={UN_CODE}\
                 &userChannelId=reader%40subscriber.example",
                self.un_id
            )
        );
        assert_eq!(unsubscribe[0].header("is_anonymous"), Some("true"));

        assert_eq!(
            self.fake.subscription(&self.bn_id).unwrap().state,
            "confirmed"
        );
        let bounces = self.fake.bounces_of(BN_SUBSCRIBER);
        assert_eq!(bounces.len(), 1, "{:?}", self.fake.bounces());
        assert_eq!(bounces[0].hard_bounce_count, 1);
        assert_eq!(bounces[0].state, "active");
        assert_eq!(bounces[0].bounce_messages.len(), 1);
        assert!(
            bounces[0].bounce_messages[0]
                .message
                .contains(&format!("Message-Id: {BN_MESSAGE_ID}")),
            "{}",
            bounces[0].bounce_messages[0].message
        );
    }

    /// The value of one line of the Prometheus text output, e.g.
    /// `notify_inbound_smtp_tls_handshakes_total{mode="implicit",result="ok"}`.
    fn metric(&self, series: &str) -> Option<u64> {
        self.metrics.encode().lines().find_map(|l| {
            l.strip_prefix(series)
                .and_then(|rest| rest.trim().parse().ok())
        })
    }
}

// ---- SMTP client side ----

/// Connects to `port` on 127.0.0.1 from [`CLIENT_IP`].
async fn connect_from_client_ip(port: u16) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket
        .bind(SocketAddr::from((CLIENT_IP, 0)))
        .expect("bind the client to 127.0.0.2");
    socket
        .connect(SocketAddr::from((Ipv4Addr::LOCALHOST, port)))
        .await
        .expect("connect to the proxy")
}

/// Reads the greeting and says EHLO; returns the EHLO reply.
async fn greet<S: AsyncRead + AsyncWrite + Unpin>(c: &mut Client<S>) -> String {
    let greeting = c.reply().await;
    assert_eq!(code(&greeting), 220, "{greeting}");
    let ehlo = c.cmd("EHLO mta.subscriber.example").await;
    assert_eq!(code(&ehlo), 250, "{ehlo}");
    ehlo
}

/// One mail transaction; returns the reply to the end of DATA.
async fn transaction<S: AsyncRead + AsyncWrite + Unpin>(
    c: &mut Client<S>,
    from: &str,
    rcpt: &str,
    message: &str,
) -> String {
    let r = c.cmd(&format!("MAIL FROM:<{from}>")).await;
    assert_eq!(code(&r), 250, "MAIL: {r}");
    let r = c.cmd(&format!("RCPT TO:<{rcpt}>")).await;
    assert_eq!(code(&r), 250, "RCPT: {r}");
    let r = c.cmd("DATA").await;
    assert_eq!(code(&r), 354, "DATA: {r}");
    let mut data = String::new();
    for line in message.split_inclusive("\r\n") {
        if line.starts_with('.') {
            data.push('.');
        }
        data.push_str(line);
    }
    data.push_str(".\r\n");
    c.send(data.as_bytes()).await;
    c.reply().await
}

async fn quit<S: AsyncRead + AsyncWrite + Unpin>(mut c: Client<S>) {
    let r = c.cmd("QUIT").await;
    assert_eq!(code(&r), 221, "QUIT: {r}");
}

#[track_caller]
fn assert_accepted(reply: &str) {
    assert!(reply.starts_with("250 2.0.0"), "reply to DATA: {reply}");
}

/// A `un` and then a `bn` message, each in a plain SMTP session of its own from the
/// client address through `port`; the replies to DATA.
async fn un_and_bn_sessions(backend: &Backend, port: u16) -> [String; 2] {
    let mut c = Client::new(connect_from_client_ip(port).await);
    greet(&mut c).await;
    let un = backend.send_un(&mut c).await;
    quit(c).await;
    let mut c = Client::new(connect_from_client_ip(port).await);
    greet(&mut c).await;
    let bn = backend.send_bn(&mut c).await;
    quit(c).await;
    [un, bn]
}

/// A TLS client session with `sni` over `tcp`; returns it with the certificate it was shown.
async fn tls_connect(
    tcp: TcpStream,
    sni: &str,
) -> std::io::Result<(TlsStream<TcpStream>, Vec<u8>)> {
    let tls = TlsConnector::from(insecure_tls())
        .connect(ServerName::try_from(sni.to_string()).unwrap(), tcp)
        .await?;
    let cert = tls.get_ref().1.peer_certificates().unwrap()[0].to_vec();
    Ok((tls, cert))
}

// ---- the proxies ----

/// A proxy running as a child process with its configuration in a temporary directory;
/// stopped (SIGTERM, then SIGKILL) when dropped.
struct Proxy {
    what: String,
    child: Child,
    dir: tempfile::TempDir,
    /// Where clients connect, on 127.0.0.1.
    port: u16,
}

impl Proxy {
    /// Its stderr and nginx's error log: what to show when something went wrong.
    fn logs(&self) -> String {
        logs(self.dir.path())
    }
}

fn logs(dir: &Path) -> String {
    let mut out = String::new();
    for name in ["stderr.log", "error.log"] {
        if let Ok(text) = std::fs::read_to_string(dir.join(name)) {
            out.push_str(&format!("--- {name}\n{text}"));
        }
    }
    out
}

impl Drop for Proxy {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            // SIGTERM lets nginx's master stop its workers; SIGKILL would orphan them.
            let _ = Command::new("kill")
                .args(["-TERM", &self.child.id().to_string()])
                .status();
            let deadline = Instant::now() + PROXY_TIMEOUT;
            while Instant::now() < deadline {
                if let Ok(Some(_)) = self.child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Fails the test, with the install line, when `binary` is not installed.
fn require_binary(binary: &str) {
    match Command::new(binary).arg("-v").output() {
        Ok(out) if out.status.success() => {}
        Ok(out) => panic!(
            "`{binary} -v` failed ({}): {}{}; {INSTALL}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(e) => panic!("{binary} is not installed ({e}); {INSTALL}"),
    }
}

fn module_dir() -> PathBuf {
    std::env::var_os("NGINX_MODULE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/lib/nginx/modules"))
}

/// Makes sure nginx can use `module` (`stream` or `mail`): Debian's dynamic module file, or
/// built in. Returns whether the template's `load_module` line must be dropped (built in).
fn require_nginx_module(module: &str) -> bool {
    require_binary("nginx");
    let file = module_dir().join(format!("ngx_{module}_module.so"));
    if file.is_file() {
        return false;
    }
    let out = Command::new("nginx").arg("-V").output().unwrap();
    let configure = String::from_utf8_lossy(&out.stderr).to_string();
    let built_in = configure
        .split_whitespace()
        .any(|arg| arg == format!("--with-{module}"));
    assert!(
        built_in,
        "the nginx {module} module is missing ({} does not exist and nginx is not built \
         --with-{module}); {INSTALL}",
        file.display()
    );
    true
}

/// `tests/proxies/{template}` with every `@NAME@` replaced, written to `dir/{out}`.
fn render(
    template: &str,
    values: &[(&str, String)],
    dir: &Path,
    out: &str,
    drop_load_module: bool,
) -> PathBuf {
    let source = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/proxies")
        .join(template);
    let mut text =
        std::fs::read_to_string(&source).unwrap_or_else(|e| panic!("{}: {e}", source.display()));
    for (name, value) in values {
        text = text.replace(&format!("@{name}@"), value);
    }
    if drop_load_module {
        text = text
            .lines()
            .filter(|l| !l.trim_start().starts_with("load_module"))
            .map(|l| format!("{l}\n"))
            .collect();
    }
    let left: Vec<&str> = regex::Regex::new("@[A-Z_]+@")
        .unwrap()
        .find_iter(&text)
        .map(|m| m.as_str())
        .collect();
    assert!(left.is_empty(), "{template}: placeholders left: {left:?}");
    let path = dir.join(out);
    std::fs::write(&path, text).unwrap();
    path
}

#[derive(Clone, Copy)]
enum ProxyKind {
    Nginx { drop_load_module: bool },
    Haproxy,
}

/// Renders `template` with `values` (plus TMP, MODULE_DIR and a fresh LISTEN_PORT) and starts
/// the proxy in the foreground; returns once it accepts connections. Retried with another
/// port when the one picked was taken meanwhile.
async fn start_proxy(kind: ProxyKind, template: &str, values: &[(&str, String)]) -> Proxy {
    let mut last_failure = String::new();
    for _attempt in 0..3 {
        let dir = tempfile::tempdir().unwrap();
        let tmp = dir.path().to_str().unwrap().to_string();
        let port = free_port();
        let mut all: Vec<(&str, String)> = vec![
            ("TMP", tmp.clone()),
            ("MODULE_DIR", module_dir().display().to_string()),
            ("LISTEN_PORT", port.to_string()),
        ];
        all.extend(values.iter().cloned());
        let (out, mut command, what) = match kind {
            ProxyKind::Nginx { drop_load_module } => {
                let conf = render(template, &all, dir.path(), "nginx.conf", drop_load_module);
                let mut c = Command::new("nginx");
                c.arg("-p")
                    .arg(&tmp)
                    .arg("-e")
                    .arg(dir.path().join("error.log"))
                    .arg("-c")
                    .arg(&conf);
                (conf, c, format!("nginx ({template})"))
            }
            ProxyKind::Haproxy => {
                let conf = render(template, &all, dir.path(), "haproxy.cfg", false);
                let mut c = Command::new("haproxy");
                c.arg("-db").arg("-f").arg(&conf);
                (conf, c, format!("haproxy ({template})"))
            }
        };
        let stderr = File::create(dir.path().join("stderr.log")).unwrap();
        let child = command
            .stdin(Stdio::null())
            .stdout(stderr.try_clone().unwrap())
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {what} ({e}); {INSTALL}"));
        let mut proxy = Proxy {
            what,
            child,
            dir,
            port,
        };
        match wait_ready(&mut proxy, kind).await {
            Ok(()) => return proxy,
            Err(why) => {
                let logs = proxy.logs();
                last_failure = format!("{} with {}: {why}\n{logs}", proxy.what, out.display());
                if !logs.contains("in use") {
                    break;
                }
            }
        }
    }
    panic!("{last_failure}");
}

/// nginx: its pid file exists once its sockets are bound. HAProxy in `-db` mode writes none:
/// poll-connect (that connection is passed on to the backend, and closed).
async fn wait_ready(proxy: &mut Proxy, kind: ProxyKind) -> Result<(), String> {
    let deadline = Instant::now() + PROXY_TIMEOUT;
    while Instant::now() < deadline {
        if let Ok(Some(status)) = proxy.child.try_wait() {
            return Err(format!("exited with {status}"));
        }
        let ready = match kind {
            ProxyKind::Nginx { .. } => proxy.dir.path().join("nginx.pid").is_file(),
            ProxyKind::Haproxy => TcpStream::connect((Ipv4Addr::LOCALHOST, proxy.port))
                .await
                .is_ok(),
        };
        if ready {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Err(format!("not ready within {PROXY_TIMEOUT:?}"))
}

/// One HTTP request's headers, names in lower case.
type Headers = Vec<(String, String)>;

/// nginx's `auth_http` endpoint: answers every request with our listener as the server to
/// proxy to, and keeps each request's headers (lower-case names) for the test to inspect.
struct AuthHttp {
    port: u16,
    requests: Arc<Mutex<Vec<Headers>>>,
}

impl AuthHttp {
    async fn start(backend_port: u16) -> AuthHttp {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let log = requests.clone();
        tokio::spawn(async move {
            loop {
                let Ok((mut stream, _)) = listener.accept().await else {
                    return;
                };
                let log = log.clone();
                tokio::spawn(async move {
                    let mut head = Vec::new();
                    let mut chunk = [0u8; 1024];
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                        match stream.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => head.extend_from_slice(&chunk[..n]),
                        }
                    }
                    let headers = String::from_utf8_lossy(&head)
                        .lines()
                        .skip(1)
                        .filter_map(|l| l.split_once(':'))
                        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
                        .collect();
                    log.lock().unwrap().push(headers);
                    let answer = format!(
                        "HTTP/1.0 200 OK\r\nAuth-Status: OK\r\nAuth-Server: 127.0.0.1\r\n\
                         Auth-Port: {backend_port}\r\nContent-Length: 0\r\n\r\n"
                    );
                    let _ = stream.write_all(answer.as_bytes()).await;
                });
            }
        });
        AuthHttp { port, requests }
    }

    /// One header of each request, in order.
    fn header(&self, name: &str) -> Vec<Option<String>> {
        self.requests
            .lock()
            .unwrap()
            .iter()
            .map(|h| h.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()))
            .collect()
    }
}

// ---- (a) nginx stream with proxy_ssl ----

#[tokio::test]
async fn nginx_stream_with_proxy_ssl_to_the_implicit_tls_listener() {
    let drop_load_module = require_nginx_module("stream");
    let backend = Backend::start(ListenerSetup {
        tls: "implicit",
        proxy_protocol: false,
        xclient: false,
        trusted_proxies: "[]",
    })
    .await;
    let nginx = start_proxy(
        ProxyKind::Nginx { drop_load_module },
        "nginx-stream-tls.conf",
        &[
            ("SNI", SNI.into()),
            ("BACKEND_PORT", backend.port().to_string()),
        ],
    )
    .await;

    // The client speaks plain SMTP to nginx, as a sending MTA does on port 25.
    for reply in un_and_bn_sessions(&backend, nginx.port).await {
        assert_accepted(&reply);
    }

    // Every client appears as nginx on this path.
    backend.assert_un_and_bn_applied(PROXY_IP);
    // nginx spoke TLS to us on both connections (the listener speaks nothing else).
    assert_eq!(
        backend.metric(r#"notify_inbound_smtp_tls_handshakes_total{mode="implicit",result="ok"}"#),
        Some(2),
        "{}",
        nginx.logs()
    );
}

// ---- (b) HAProxy routing by SNI with TLS passthrough (the OpenShift router) ----

#[tokio::test]
async fn haproxy_sni_passthrough_to_the_implicit_tls_listener() {
    require_binary("haproxy");
    let backend = Backend::start(ListenerSetup {
        tls: "implicit",
        proxy_protocol: false,
        xclient: false,
        trusted_proxies: "[]",
    })
    .await;
    assert_eq!(
        backend.server.addr(TlsMode::Implicit).map(|a| a.port()),
        Some(backend.port())
    );
    let router = start_proxy(
        ProxyKind::Haproxy,
        "haproxy-sni-passthrough.cfg",
        &[
            ("SNI", SNI.into()),
            ("BACKEND_PORT", backend.port().to_string()),
        ],
    )
    .await;

    // The client does TLS with the Route host as SNI through the router, and sees our
    // certificate: the router does not terminate TLS.
    let (tls, cert) = tls_connect(connect_from_client_ip(router.port).await, SNI)
        .await
        .unwrap_or_else(|e| panic!("TLS through the router: {e}\n{}", router.logs()));
    assert_eq!(cert, backend.cert_der);
    let mut c = Client::new(tls);
    greet(&mut c).await;
    assert_accepted(&backend.send_un(&mut c).await);
    quit(c).await;

    let (tls, cert) = tls_connect(connect_from_client_ip(router.port).await, SNI)
        .await
        .unwrap();
    assert_eq!(cert, backend.cert_der);
    let mut c = Client::new(tls);
    greet(&mut c).await;
    assert_accepted(&backend.send_bn(&mut c).await);
    quit(c).await;

    // Another host name reaches no backend: the router closes the connection.
    let other = tls_connect(
        connect_from_client_ip(router.port).await,
        "other.apps.example.test",
    )
    .await;
    assert!(
        other.is_err(),
        "a ClientHello for another host was routed to us"
    );

    backend.assert_un_and_bn_applied(PROXY_IP);
    assert_eq!(
        backend.metric(r#"notify_inbound_smtp_tls_handshakes_total{mode="implicit",result="ok"}"#),
        Some(2)
    );
}

// ---- (c) HAProxy with the PROXY protocol ----

/// `un` in a plain session, `bn` after STARTTLS, both through HAProxy sending the PROXY
/// protocol from `template`: the server records the client's address, not HAProxy's.
async fn through_haproxy_send_proxy(template: &str) {
    require_binary("haproxy");
    let backend = Backend::start(ListenerSetup {
        tls: "starttls",
        proxy_protocol: true,
        xclient: false,
        trusted_proxies: "['127.0.0.0/8']",
    })
    .await;
    let haproxy = start_proxy(
        ProxyKind::Haproxy,
        template,
        &[("BACKEND_PORT", backend.port().to_string())],
    )
    .await;

    let mut c = Client::new(connect_from_client_ip(haproxy.port).await);
    let ehlo = greet(&mut c).await;
    assert!(ehlo.contains("STARTTLS"), "{ehlo}");
    assert_accepted(&backend.send_un(&mut c).await);
    quit(c).await;

    let mut c = Client::new(connect_from_client_ip(haproxy.port).await);
    greet(&mut c).await;
    let r = c.cmd("STARTTLS").await;
    assert_eq!(code(&r), 220, "{r}");
    let (tls, cert) = tls_connect(c.into_inner(), DOMAIN).await.unwrap();
    assert_eq!(cert, backend.cert_der);
    let mut c = Client::new(tls);
    let ehlo = c.cmd("EHLO mta.subscriber.example").await;
    assert_eq!(code(&ehlo), 250, "{ehlo}");
    assert_accepted(&backend.send_bn(&mut c).await);
    quit(c).await;

    backend.assert_un_and_bn_applied(CLIENT_IP);
    assert_eq!(
        backend.metric(r#"notify_inbound_smtp_tls_handshakes_total{mode="starttls",result="ok"}"#),
        Some(1),
        "{}",
        haproxy.logs()
    );
}

#[tokio::test]
async fn haproxy_send_proxy_v1_passes_the_client_address() {
    through_haproxy_send_proxy("haproxy-send-proxy-v1.cfg").await;
}

#[tokio::test]
async fn haproxy_send_proxy_v2_passes_the_client_address() {
    through_haproxy_send_proxy("haproxy-send-proxy-v2.cfg").await;
}

// ---- (d) nginx mail with auth_http, with and without XCLIENT ----

/// `un` and `bn`, each in its own session, through nginx's `mail` module with `xclient`
/// `on`/`off`, to a listener that accepts XCLIENT from nginx's address; returns the backend
/// and the auth_http endpoint for the caller's assertions.
async fn through_nginx_mail(xclient: &str) -> (Backend, AuthHttp) {
    let drop_load_module = require_nginx_module("mail");
    let backend = Backend::start(ListenerSetup {
        tls: "none",
        proxy_protocol: false,
        xclient: true,
        trusted_proxies: "['127.0.0.1/32']",
    })
    .await;
    let auth = AuthHttp::start(backend.port()).await;
    let nginx = start_proxy(
        ProxyKind::Nginx { drop_load_module },
        "nginx-mail-smtp.conf",
        &[
            ("AUTH_PORT", auth.port.to_string()),
            ("XCLIENT", xclient.into()),
            ("SERVER_NAME", NGINX_SERVER_NAME.into()),
        ],
    )
    .await;

    for reply in un_and_bn_sessions(&backend, nginx.port).await {
        assert!(reply.starts_with("250 2.0.0"), "{reply}\n{}", nginx.logs());
    }

    // nginx asked auth_http once per session, with the envelope and the client's address.
    assert_eq!(
        auth.header("client-ip"),
        vec![Some(CLIENT_IP.to_string()), Some(CLIENT_IP.to_string())]
    );
    assert_eq!(
        auth.header("auth-smtp-to"),
        vec![
            Some(format!("RCPT TO:<{}>", backend.un_rcpt())),
            Some(format!("RCPT TO:<{}>", backend.bn_rcpt()))
        ]
    );
    (backend, auth)
}

#[tokio::test]
async fn nginx_mail_with_xclient_on_passes_the_client_address() {
    let (backend, _auth) = through_nginx_mail("on").await;
    backend.assert_un_and_bn_applied(CLIENT_IP);
}

#[tokio::test]
async fn nginx_mail_with_xclient_off_shows_nginx_as_the_client() {
    let (backend, _auth) = through_nginx_mail("off").await;
    backend.assert_un_and_bn_applied(PROXY_IP);
}
