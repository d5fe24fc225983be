//! The server under fuzzing: one notify-inbound SMTP server on a loopback port, started
//! once per process on a current-thread runtime, with deliveries recorded instead of sent
//! to an API. Each input is one client connection: the bytes are written, the write side
//! is closed, and every reply is read until the server closes.
//!
//! With a current-thread runtime the server's tasks run only inside `block_on`, so one
//! input is processed to its end before the next starts. A panic in a server task aborts
//! the process (libFuzzer's panic hook), so it is reported as a crash.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use futures::future::BoxFuture;
use notify_inbound::config::{Settings, TlsMode};
use notify_inbound::flows::{Deliver, Envelope};
use notify_inbound::metrics::Metrics;
use notify_inbound::reply::Reply;
use notify_inbound::server::Server;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::runtime::Runtime;

/// Largest message the fuzzed server accepts: more than any input, so the size limit never
/// hides the DATA reader's result.
pub const SIZE_LIMIT: usize = 1 << 20;

/// Records what reaches delivery.
#[derive(Default)]
pub struct Recorder {
    pub messages: Mutex<Vec<Vec<u8>>>,
}

impl Deliver for Recorder {
    fn deliver<'a>(&'a self, _envelope: &'a Envelope, message: &'a [u8]) -> BoxFuture<'a, Reply> {
        self.messages
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(message.to_vec());
        Box::pin(async { Reply::ok("message accepted") })
    }
}

pub struct Fixture {
    pub runtime: Runtime,
    pub addr: SocketAddr,
    pub recorder: Arc<Recorder>,
    _server: Server,
}

pub fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let toml = format!(
            "internal_http_host = 'http://127.0.0.1:9'\n\
             [inbound_smtp_server]\ndomain = 'notify.example, other.example'\n\
             listening_ip = '127.0.0.1'\nlistening_smtp_port = 0\n\
             [inbound_smtp_server.options]\nsize = {SIZE_LIMIT}\n\
             [inbound_smtp_server.limits]\nmax_connections_per_ip = 1000\n\
             failed_unsubscribe_threshold = 1000000\n\
             [operations]\nlisten = ''\n"
        );
        let settings = Settings::from_toml_str(&toml).expect("fuzz settings");
        let recorder = Arc::new(Recorder::default());
        let server = runtime
            .block_on(Server::start(
                Arc::new(settings),
                recorder.clone(),
                Arc::new(Metrics::new()),
            ))
            .expect("server starts");
        let addr = server.addr(TlsMode::Starttls).expect("plain listener");
        Fixture {
            runtime,
            addr,
            recorder,
            _server: server,
        }
    })
}

impl Fixture {
    /// Sends `input` on a fresh connection, closes the write side and returns every byte
    /// the server answered, together with the messages delivered meanwhile.
    pub fn exchange(&self, input: &[u8]) -> (Vec<u8>, Vec<Vec<u8>>) {
        self.recorder
            .messages
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
        let replies = self.runtime.block_on(async {
            let stream = tokio::net::TcpStream::connect(self.addr)
                .await
                .expect("connect to the fuzzed server");
            let (mut rd, mut wr) = stream.into_split();
            let writer = async {
                // The server may close first (QUIT, 421): a failed write is expected.
                let _ = wr.write_all(input).await;
                let _ = wr.shutdown().await;
            };
            let reader = async {
                let mut out = Vec::new();
                let _ = rd.read_to_end(&mut out).await;
                out
            };
            let ((), out) = tokio::time::timeout(Duration::from_secs(20), async {
                tokio::join!(writer, reader)
            })
            .await
            .expect("the server answers and closes within 20 s of the input's end");
            out
        });
        let messages = std::mem::take(
            &mut *self
                .recorder
                .messages
                .lock()
                .unwrap_or_else(|e| e.into_inner()),
        );
        (replies, messages)
    }
}

/// The codes of the complete replies in `bytes` (a multi-line reply counts once).
#[allow(dead_code)] // used by data_reader, not by smtp_session
pub fn reply_codes(bytes: &[u8]) -> Vec<u16> {
    let mut codes = Vec::new();
    for line in bytes.split(|&b| b == b'\n') {
        if line.len() >= 4 && line[3] == b' ' || line.len() == 4 && line[3] == b'\r' {
            if let Some(code) = std::str::from_utf8(&line[..3])
                .ok()
                .and_then(|c| c.parse().ok())
            {
                codes.push(code);
            }
        }
    }
    codes
}
