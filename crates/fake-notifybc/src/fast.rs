//! A fast transport for the fake NotifyBC API, for benchmarks and load runs: real HTTP/1.1
//! on loopback, so the API client's whole cost is counted, serving the same rules and
//! records as [`crate::FakeApi`] ([`crate::rules`], [`crate::state`]) without axum's
//! routing and extractors, so the fake stays cheap next to the server it feeds (in a load
//! run it shares the cores with it). It has no request log, token check or faults; a
//! delay before every answer is [`ApiState::set_delay`].
//!
//! The transport is a minimal HTTP/1.1 server of its own on tokio, with `httparse` for the
//! request heads: keep-alive connections whose requests are answered in turn, request
//! bodies by `Content-Length` only (a `Transfer-Encoding` or a malformed head is answered
//! 400 and the connection closed), answers with `Content-Length`, and the connection closed
//! after answering an HTTP/1.0 request or one with `Connection: close`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::rules::{self, Method, Reply, Request};
pub use crate::state::ApiState;
pub use crate::state::CallCounts;
use crate::state::Connection;

/// The running fake.
pub struct FastApi {
    pub addr: SocketAddr,
    pub state: Arc<ApiState>,
    task: tokio::task::JoinHandle<()>,
}

impl FastApi {
    /// Serves on `addr` (port 0 for a free one) until dropped.
    pub async fn start(addr: SocketAddr, forgetful: bool) -> std::io::Result<FastApi> {
        let tcp = TcpListener::bind(addr).await?;
        let addr = tcp.local_addr()?;
        let state = ApiState::new(forgetful);
        let task = tokio::spawn(accept(tcp, state.clone()));
        Ok(FastApi { addr, state, task })
    }

    /// `internal_http_host` for the server under test.
    pub fn host_url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for FastApi {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Accepts connections, counting them and those open at once, each served by a task of
/// its own.
async fn accept(listener: TcpListener, state: Arc<ApiState>) {
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            // Out of descriptors and the like: let the other side finish something.
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let _ = tcp.set_nodelay(true);
        tokio::spawn(serve(tcp, state.clone(), state.connection()));
    }
}

/// Room made in the read buffer before each read.
const READ_SIZE: usize = 8 * 1024;
/// The largest request head, request body and number of header fields accepted.
const MAX_HEAD: usize = 64 * 1024;
const MAX_BODY: usize = 16 * 1024 * 1024;
const MAX_HEADERS: usize = 32;

/// What a connection keeps of a request head once it is parsed (the target is copied out,
/// so that the buffer can take the body).
#[derive(Debug)]
struct Head {
    /// Bytes of the head, up to and with the empty line.
    len: usize,
    method: Method,
    content_length: usize,
    /// HTTP/1.0 or `Connection: close`: the connection is closed after the answer.
    close: bool,
    /// The first `is_anonymous` field asks for the anonymous checks.
    anonymous: bool,
    expect_continue: bool,
}

/// Parses the request head at the start of `buf` and copies its target into `target`:
/// `Ok(None)` while it is incomplete, `Err` for a head that is malformed, has too many
/// fields, a `Transfer-Encoding`, or a missing-digit, conflicting or too large
/// `Content-Length`.
fn parse_head(buf: &[u8], target: &mut String) -> Result<Option<Head>, ()> {
    let mut fields = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut fields);
    let len = match request.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(_) => return Err(()),
    };
    let method = Method::from_name(request.method.unwrap_or_default());
    let mut head = Head {
        len,
        method,
        content_length: 0,
        close: request.version != Some(1),
        anonymous: false,
        expect_continue: false,
    };
    let mut length = None;
    let mut anonymous = None;
    for field in request.headers.iter() {
        let name = field.name;
        if name.eq_ignore_ascii_case("content-length") {
            let n = decimal(field.value).ok_or(())?;
            if length.is_some_and(|m| m != n) {
                return Err(());
            }
            length = Some(n);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            return Err(());
        } else if name.eq_ignore_ascii_case("connection") {
            head.close |= field
                .value
                .split(|&b| b == b',')
                .any(|t| t.trim_ascii().eq_ignore_ascii_case(b"close"));
        } else if name.eq_ignore_ascii_case("is_anonymous") {
            anonymous.get_or_insert(rules::is_anonymous(field.value));
        } else if name.eq_ignore_ascii_case("expect") {
            head.expect_continue = field.value.eq_ignore_ascii_case(b"100-continue");
        }
    }
    head.content_length = length.unwrap_or(0);
    if head.content_length > MAX_BODY {
        return Err(());
    }
    head.anonymous = anonymous.unwrap_or(false);
    target.clear();
    target.push_str(request.path.unwrap_or_default());
    Ok(Some(head))
}

/// A `Content-Length` value: decimal digits only.
fn decimal(value: &[u8]) -> Option<usize> {
    if value.is_empty() {
        return None;
    }
    value.iter().try_fold(0usize, |n, &b| {
        if b.is_ascii_digit() {
            n.checked_mul(10)?.checked_add(usize::from(b - b'0'))
        } else {
            None
        }
    })
}

/// Reads more of the connection into `buf`; false at its end or on an error.
async fn read_more(tcp: &mut TcpStream, buf: &mut Vec<u8>) -> bool {
    if buf.capacity() - buf.len() < READ_SIZE / 2 {
        buf.reserve(READ_SIZE);
    }
    matches!(tcp.read_buf(buf).await, Ok(n) if n > 0)
}

/// Serves the requests of one connection in turn until it closes, one asks for the close,
/// or one cannot be read (400, then the close).
async fn serve(mut tcp: TcpStream, state: Arc<ApiState>, _open: Connection) {
    let state = &state;
    let mut buf: Vec<u8> = Vec::with_capacity(READ_SIZE);
    let mut out: Vec<u8> = Vec::with_capacity(1024);
    let mut target = String::new();
    loop {
        let head = loop {
            if !buf.is_empty() {
                match parse_head(&buf, &mut target) {
                    Ok(Some(head)) => break head,
                    Ok(None) if buf.len() <= MAX_HEAD => {}
                    _ => return refuse_connection(tcp, state, &mut out).await,
                }
            }
            if !read_more(&mut tcp, &mut buf).await {
                return;
            }
        };
        let end = head.len + head.content_length;
        if buf.len() < end {
            if head.expect_continue && tcp.write_all(CONTINUE).await.is_err() {
                return;
            }
            buf.reserve(end - buf.len());
            while buf.len() < end {
                if !read_more(&mut tcp, &mut buf).await {
                    return;
                }
            }
        }
        let (path, query) = match target.split_once('?') {
            Some((path, query)) => (path, Some(query)),
            None => (target.as_str(), None),
        };
        let request = Request {
            method: head.method,
            path,
            query,
            anonymous: head.anonymous,
            body: &buf[head.len..end],
        };
        let reply = state.answer(&request).await;
        respond(&mut out, &reply, head.close);
        if tcp.write_all(&out).await.is_err() {
            return;
        }
        if head.close {
            let _ = tcp.shutdown().await;
            return;
        }
        if buf.len() == end {
            buf.clear();
        } else {
            buf.drain(..end);
        }
    }
}

const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

/// Answers a request that cannot be read with 400 and closes the connection.
async fn refuse_connection(mut tcp: TcpStream, state: &ApiState, out: &mut Vec<u8>) {
    state.store().count_refused();
    respond(out, &Reply::status(400), true);
    if tcp.write_all(out).await.is_ok() && tcp.shutdown().await.is_ok() {
        // Take what the client still sends for a moment, so that closing with unread
        // input does not reset the connection before the client has read the answer.
        let mut sink = [0u8; 4096];
        let drain = async { while matches!(tcp.read(&mut sink).await, Ok(n) if n > 0) {} };
        let _ = tokio::time::timeout(Duration::from_secs(1), drain).await;
    }
}

/// Writes the whole answer into `out`: the head, with `Content-Type` for a body,
/// `Location` for a redirect and `Content-Length` (not for 204), then the body.
fn respond(out: &mut Vec<u8>, reply: &Reply, close: bool) {
    let body = reply.body_bytes();
    debug_assert!(reply.status != 204 || body.is_empty());
    let reason = axum::http::StatusCode::from_u16(reply.status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("");
    out.clear();
    out.extend_from_slice(b"HTTP/1.1 ");
    push_u64(out, u64::from(reply.status));
    out.push(b' ');
    out.extend_from_slice(reason.as_bytes());
    out.extend_from_slice(b"\r\n");
    if let Some(kind) = reply.content_type() {
        out.extend_from_slice(b"Content-Type: ");
        out.extend_from_slice(kind.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    if let Some(location) = &reply.location {
        out.extend_from_slice(b"Location: ");
        out.extend_from_slice(location.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    if reply.status != 204 {
        out.extend_from_slice(b"Content-Length: ");
        push_u64(out, body.len() as u64);
        out.extend_from_slice(b"\r\n");
    }
    if close {
        out.extend_from_slice(b"Connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
}

/// Appends `n` in decimal.
fn push_u64(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}
