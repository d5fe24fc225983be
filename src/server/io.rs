//! The byte stream under an SMTP session: plain TCP, TLS from the first byte, or TLS after
//! STARTTLS, behind one boxed type so the session code does not care which.

use std::io;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

/// Anything a session can run over.
pub trait IoStream: AsyncRead + AsyncWrite + Unpin + Send + Sync {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + Sync> IoStream for T {}

pub type BoxStream = Box<dyn IoStream>;

/// Writes everything with a deadline, so a client that stops reading cannot hold a slot.
pub async fn write_all_timeout(
    stream: &mut BoxStream,
    bytes: &[u8],
    timeout: Duration,
) -> io::Result<()> {
    match tokio::time::timeout(timeout, async {
        stream.write_all(bytes).await?;
        stream.flush().await
    })
    .await
    {
        Ok(r) => r,
        Err(_) => Err(io::Error::new(io::ErrorKind::TimedOut, "write timed out")),
    }
}
