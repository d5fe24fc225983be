//! The one SMTP reply reader of the tests, shared by the raw-socket client
//! (`tests/harness`) and the sending MTA (`tests/mta`): whole multi-line replies, and what
//! follows a reply kept for the next one (pipelined replies arrive together).

use std::time::Duration;

use tokio::io::AsyncReadExt;

/// How long a server may stay silent before a reply counts as missing.
const QUIET: Duration = Duration::from_secs(20);

/// Reads replies off a stream; keeps what follows a reply for the next one.
pub struct Replies {
    buf: Vec<u8>,
}

impl Replies {
    pub fn new() -> Replies {
        Replies { buf: Vec::new() }
    }

    /// One complete reply (all lines), or `None` when the peer closed or went quiet.
    pub async fn next<S: AsyncReadExt + Unpin>(&mut self, stream: &mut S) -> Option<String> {
        let mut text = String::new();
        loop {
            let line = self.line(stream).await?;
            let last = line.len() < 4 || line.as_bytes()[3] == b' ';
            text.push_str(&line);
            text.push('\n');
            if last {
                return Some(text);
            }
        }
    }

    async fn line<S: AsyncReadExt + Unpin>(&mut self, stream: &mut S) -> Option<String> {
        loop {
            if let Some(pos) = self.buf.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=pos).collect();
                return Some(String::from_utf8_lossy(&line).trim_end().to_string());
            }
            let mut chunk = [0u8; 4096];
            let n = tokio::time::timeout(QUIET, stream.read(&mut chunk))
                .await
                .ok()?
                .ok()?;
            if n == 0 {
                return None;
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }
}
