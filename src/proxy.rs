//! The PROXY protocol (HAProxy's, versions 1 and 2) on the receiving side: reading the header a
//! trusted proxy sends before anything else, so that the real client address is the one we log
//! and rate-limit.
//!
//! [`read_header`] reads exactly the bytes of the header and not one more. That matters because
//! whatever follows belongs to the next layer: on an implicit-TLS listener the client's TLS
//! ClientHello usually arrives in the same TCP segment as the header, and an SMTP client that
//! talks early sends its command right behind it. Those bytes stay in the stream, untouched, for
//! the TLS acceptor or the SMTP session to read.
//!
//! Whether a header is required, allowed or refused from a peer is the caller's decision (see
//! [`crate::access`] for the trusted ranges); this module only reads and validates one.
//!
//! ```no_run
//! # async fn demo(mut stream: tokio::net::TcpStream) -> Result<(), Box<dyn std::error::Error>> {
//! use std::time::Duration;
//! let peer = stream.peer_addr()?;
//! let header = notify_inbound::proxy::read_header(&mut stream, Duration::from_secs(10)).await?;
//! let client = header.client_addr(peer);
//! // `stream` is positioned at the first byte after the header: greet, or start TLS.
//! # let _ = client; Ok(()) }
//! ```

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};

/// The 12-byte signature that starts every version 2 header.
const V2_SIGNATURE: &[u8; 12] = b"\r\n\r\n\0\r\nQUIT\n";
/// Version 2: signature, version/command, family/protocol, 2-byte length.
const V2_FIXED_LEN: usize = 16;
/// Largest version 2 payload (addresses + TLVs) we accept. The protocol allows 65535; real
/// proxies send the 12 or 36 address bytes plus a few TLVs (SSL information, unique id, AWS
/// or Azure endpoint ids), well under this. Refusing more bounds what a peer makes us buffer.
pub const V2_MAX_PAYLOAD: usize = 1024;
/// Version 1: "PROXY" ... CRLF is at most 107 bytes (the protocol's own limit).
pub const V1_MAX_LEN: usize = 107;
/// The shortest header of either version: `PROXY UNKNOWN\r\n` (v1 headers are never shorter;
/// v2 headers are at least 16 bytes). Reading this many bytes first can never over-read.
const MIN_HEADER_LEN: usize = 15;

/// The addresses a PROXY header carried.
///
/// `source` and `destination` are `None` when the proxy said it has no client to speak for
/// (v1 `UNKNOWN`, v2 `LOCAL` such as a health check, or an address family other than IPv4 and
/// IPv6): the connection's own peer address is then the client, see [`ProxyHeader::client_addr`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProxyHeader {
    /// The real client: the address the proxy accepted the connection from.
    pub source: Option<SocketAddr>,
    /// The address the client connected to on the proxy.
    pub destination: Option<SocketAddr>,
}

impl ProxyHeader {
    /// The client address to log and rate-limit: the header's source, else the TCP peer.
    pub fn client_addr(&self, peer: SocketAddr) -> SocketAddr {
        self.source.unwrap_or(peer)
    }
}

/// Why no PROXY header could be read. Every variant means the connection should be closed
/// without a greeting: once a header is required, nothing else on the stream can be trusted.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("no PROXY protocol header within {0:?}")]
    Timeout(Duration),
    #[error(
        "the peer did not send a PROXY protocol header (first bytes {0:?}); \
         is the proxy configured to send one (HAProxy send-proxy / send-proxy-v2)?"
    )]
    NotProxy(String),
    #[error("malformed PROXY protocol header: {0}")]
    Malformed(String),
    #[error("PROXY protocol header too long: {0}")]
    TooLong(String),
    #[error("connection closed after {0} bytes, before the PROXY protocol header was complete")]
    Closed(usize),
    #[error("reading the PROXY protocol header: {0}")]
    Io(#[from] std::io::Error),
}

/// Reads one PROXY protocol header (v1 or v2) from the start of `stream`, within `timeout`.
///
/// Exactly the header's bytes are consumed; the stream is left at the first byte after it.
/// v1 `TCP4`, `TCP6` and `UNKNOWN` and v2 `PROXY` and `LOCAL` are accepted; v2 TLVs are
/// skipped. v1 headers are bounded by [`V1_MAX_LEN`], v2 payloads by [`V2_MAX_PAYLOAD`].
pub async fn read_header<S: AsyncRead + Unpin>(
    stream: &mut S,
    timeout: Duration,
) -> Result<ProxyHeader, ProxyError> {
    match tokio::time::timeout(timeout, read_header_inner(stream)).await {
        Ok(result) => result,
        Err(_) => Err(ProxyError::Timeout(timeout)),
    }
}

async fn read_header_inner<S: AsyncRead + Unpin>(
    stream: &mut S,
) -> Result<ProxyHeader, ProxyError> {
    let mut buf: Vec<u8> = Vec::with_capacity(64);
    // Read the common minimum, but look at the prefix after every read so that a peer that is
    // not a proxy (an SMTP client talking first, a TLS ClientHello) is refused at once.
    while buf.len() < MIN_HEADER_LEN {
        let want = MIN_HEADER_LEN - buf.len();
        read_some(stream, &mut buf, want).await?;
        check_prefix(&buf)?;
    }
    if buf.starts_with(b"PROXY") {
        read_v1(stream, buf).await
    } else {
        read_v2(stream, buf).await
    }
}

/// Appends at most `max` bytes (at least one) from `stream` to `buf`.
async fn read_some<S: AsyncRead + Unpin>(
    stream: &mut S,
    buf: &mut Vec<u8>,
    max: usize,
) -> Result<(), ProxyError> {
    let start = buf.len();
    buf.resize(start + max, 0);
    let n = stream.read(&mut buf[start..]).await;
    let n = match n {
        Ok(n) => n,
        Err(e) => {
            buf.truncate(start);
            return Err(ProxyError::Io(e));
        }
    };
    buf.truncate(start + n);
    if n == 0 {
        return Err(ProxyError::Closed(start));
    }
    Ok(())
}

/// Refuses a buffer that can no longer become either header's signature.
fn check_prefix(buf: &[u8]) -> Result<(), ProxyError> {
    let v1 = b"PROXY ";
    let fits = |sig: &[u8]| {
        let n = buf.len().min(sig.len());
        buf[..n] == sig[..n]
    };
    if fits(v1) || fits(V2_SIGNATURE) {
        Ok(())
    } else {
        Err(ProxyError::NotProxy(printable(buf)))
    }
}

/// Version 1 is a text line of at most 107 bytes ending in CRLF. Its length is not announced,
/// so each read asks only for as many bytes as the line must still have at least: a byte for
/// every separator and field still to come plus the CRLF. That keeps the read from ever
/// crossing the line end while needing a handful of reads, not one per byte.
async fn read_v1<S: AsyncRead + Unpin>(
    stream: &mut S,
    mut buf: Vec<u8>,
) -> Result<ProxyHeader, ProxyError> {
    loop {
        if let Some(pos) = buf.iter().position(|&b| b == b'\n') {
            // Never past the end: each read was bounded by what the line still needed.
            debug_assert_eq!(pos + 1, buf.len());
            return parse_v1(&buf);
        }
        if buf.len() >= V1_MAX_LEN {
            return Err(ProxyError::TooLong(format!(
                "version 1 line longer than {V1_MAX_LEN} bytes without CRLF"
            )));
        }
        let need = v1_min_remaining(&buf).min(V1_MAX_LEN - buf.len());
        read_some(stream, &mut buf, need).await?;
    }
}

/// The fewest bytes that can still follow `buf` (a v1 line without its LF yet).
fn v1_min_remaining(buf: &[u8]) -> usize {
    if buf.last() == Some(&b'\r') {
        return 1;
    }
    // "PROXY TCP4 src dst sport dport\r\n" has 5 spaces; "PROXY UNKNOWN ...\r\n" may end
    // right after UNKNOWN, so only the CRLF is certain there.
    let is_tcp = buf.starts_with(b"PROXY TCP4 ") || buf.starts_with(b"PROXY TCP6 ");
    if !is_tcp {
        return 2;
    }
    let spaces = buf.iter().filter(|&&b| b == b' ').count();
    let fields_to_come = 5usize.saturating_sub(spaces);
    // Each missing separator is followed by a field of at least one byte; then CRLF.
    fields_to_come * 2 + 2
}

fn parse_v1(line: &[u8]) -> Result<ProxyHeader, ProxyError> {
    use ppp::v1::{Addresses, Header};
    let header = Header::try_from(line)
        .map_err(|e| ProxyError::Malformed(format!("version 1 {:?}: {e}", printable(line))))?;
    Ok(match header.addresses {
        Addresses::Tcp4(a) => ProxyHeader {
            source: Some(SocketAddr::from((a.source_address, a.source_port))),
            destination: Some(SocketAddr::from((
                a.destination_address,
                a.destination_port,
            ))),
        },
        Addresses::Tcp6(a) => ProxyHeader {
            source: Some(SocketAddr::from((a.source_address, a.source_port))),
            destination: Some(SocketAddr::from((
                a.destination_address,
                a.destination_port,
            ))),
        },
        Addresses::Unknown => ProxyHeader {
            source: None,
            destination: None,
        },
    })
}

/// Version 2 announces its length in bytes 14..16, so after the fixed part exactly that many
/// bytes are read.
async fn read_v2<S: AsyncRead + Unpin>(
    stream: &mut S,
    mut buf: Vec<u8>,
) -> Result<ProxyHeader, ProxyError> {
    while buf.len() < V2_FIXED_LEN {
        let want = V2_FIXED_LEN - buf.len();
        read_some(stream, &mut buf, want).await?;
    }
    if &buf[..V2_SIGNATURE.len()] != V2_SIGNATURE {
        return Err(ProxyError::NotProxy(printable(&buf)));
    }
    let payload = usize::from(u16::from_be_bytes([buf[14], buf[15]]));
    if payload > V2_MAX_PAYLOAD {
        return Err(ProxyError::TooLong(format!(
            "version 2 announces {payload} bytes of addresses and TLVs, at most {V2_MAX_PAYLOAD} accepted"
        )));
    }
    let total = V2_FIXED_LEN + payload;
    while buf.len() < total {
        let want = total - buf.len();
        read_some(stream, &mut buf, want).await?;
    }
    parse_v2(&buf)
}

fn parse_v2(bytes: &[u8]) -> Result<ProxyHeader, ProxyError> {
    use ppp::v2::{Addresses, Command, Header, Protocol};
    let header =
        Header::try_from(bytes).map_err(|e| ProxyError::Malformed(format!("version 2: {e}")))?;
    let none = ProxyHeader {
        source: None,
        destination: None,
    };
    // LOCAL: the proxy's own connection (health check); the peer is the client.
    if header.command == Command::Local {
        return Ok(none);
    }
    // Only TCP addresses describe our client; a datagram or unspecified transport, or a
    // UNIX socket, leaves the peer address as the best we know (what the protocol advises).
    if header.protocol != Protocol::Stream {
        return Ok(none);
    }
    Ok(match header.addresses {
        Addresses::IPv4(a) => ProxyHeader {
            source: Some(SocketAddr::from((a.source_address, a.source_port))),
            destination: Some(SocketAddr::from((
                a.destination_address,
                a.destination_port,
            ))),
        },
        Addresses::IPv6(a) => ProxyHeader {
            source: Some(SocketAddr::from((a.source_address, a.source_port))),
            destination: Some(SocketAddr::from((
                a.destination_address,
                a.destination_port,
            ))),
        },
        Addresses::Unspecified | Addresses::Unix(_) => none,
    })
}

/// The first bytes of something that is not a header, made safe for a log line.
fn printable(bytes: &[u8]) -> String {
    let head = &bytes[..bytes.len().min(32)];
    crate::reply::printable(&String::from_utf8_lossy(head))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncWriteExt, duplex};

    const SECS: Duration = Duration::from_secs(5);

    fn v2_header(command: u8, family_proto: u8, addrs: &[u8], tlvs: &[u8]) -> Vec<u8> {
        let mut h = V2_SIGNATURE.to_vec();
        h.push(0x20 | command);
        h.push(family_proto);
        let len = (addrs.len() + tlvs.len()) as u16;
        h.extend_from_slice(&len.to_be_bytes());
        h.extend_from_slice(addrs);
        h.extend_from_slice(tlvs);
        h
    }

    fn v2_tcp4(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16, tlvs: &[u8]) -> Vec<u8> {
        let mut a = Vec::new();
        a.extend_from_slice(&src);
        a.extend_from_slice(&dst);
        a.extend_from_slice(&sport.to_be_bytes());
        a.extend_from_slice(&dport.to_be_bytes());
        v2_header(0x1, 0x11, &a, tlvs)
    }

    /// Writes `input` to a fresh stream (then keeps it open) and reads a header from it;
    /// returns the result and every byte left in the stream after it.
    async fn read_from(input: &[u8]) -> (Result<ProxyHeader, ProxyError>, Vec<u8>) {
        let (mut client, mut server) = duplex(4096);
        client.write_all(input).await.unwrap();
        let result = read_header(&mut server, SECS).await;
        drop(client);
        let mut rest = Vec::new();
        server.read_to_end(&mut rest).await.unwrap();
        (result, rest)
    }

    #[tokio::test]
    async fn v1_tcp4() {
        let (h, rest) = read_from(b"PROXY TCP4 192.0.2.7 198.51.100.1 56324 25\r\n").await;
        let h = h.unwrap();
        assert_eq!(h.source, Some("192.0.2.7:56324".parse().unwrap()));
        assert_eq!(h.destination, Some("198.51.100.1:25".parse().unwrap()));
        assert!(rest.is_empty());
    }

    #[tokio::test]
    async fn v1_tcp6() {
        let (h, _) =
            read_from(b"PROXY TCP6 2001:db8::7 2001:db8::1 40000 8465\r\nEHLO x\r\n").await;
        let h = h.unwrap();
        assert_eq!(h.source, Some("[2001:db8::7]:40000".parse().unwrap()));
        assert_eq!(h.destination, Some("[2001:db8::1]:8465".parse().unwrap()));
    }

    #[tokio::test]
    async fn v1_unknown_uses_the_peer() {
        let (h, rest) = read_from(b"PROXY UNKNOWN\r\nEHLO a\r\n").await;
        let h = h.unwrap();
        assert_eq!(h.source, None);
        assert_eq!(h.destination, None);
        let peer: SocketAddr = "10.1.1.1:1000".parse().unwrap();
        assert_eq!(h.client_addr(peer), peer);
        assert_eq!(rest, b"EHLO a\r\n");
    }

    #[tokio::test]
    async fn v1_unknown_with_ignored_addresses() {
        let (h, rest) = read_from(b"PROXY UNKNOWN ffff:f...f:ffff 1 2\r\nQUIT\r\n").await;
        assert_eq!(h.unwrap().source, None);
        assert_eq!(rest, b"QUIT\r\n");
    }

    #[tokio::test]
    async fn v1_leftover_smtp_bytes_are_preserved() {
        let (h, rest) = read_from(
            b"PROXY TCP4 203.0.113.9 10.0.0.1 1234 25\r\nEHLO client.example\r\nMAIL FROM:<>\r\n",
        )
        .await;
        let peer: SocketAddr = "10.0.0.2:5555".parse().unwrap();
        assert_eq!(
            h.unwrap().client_addr(peer),
            "203.0.113.9:1234".parse::<SocketAddr>().unwrap()
        );
        assert_eq!(rest, b"EHLO client.example\r\nMAIL FROM:<>\r\n");
    }

    #[tokio::test]
    async fn v1_longest_valid_header() {
        let line = b"PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n";
        assert!(line.len() <= V1_MAX_LEN);
        let (h, rest) = read_from(&[&line[..], b"X"].concat()).await;
        assert_eq!(
            h.unwrap().source,
            Some(
                "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535"
                    .parse()
                    .unwrap()
            )
        );
        assert_eq!(rest, b"X");
    }

    #[tokio::test]
    async fn v1_too_long_is_refused() {
        let mut line = b"PROXY UNKNOWN ".to_vec();
        line.extend(std::iter::repeat_n(b'a', 200));
        line.extend_from_slice(b"\r\n");
        let (h, rest) = read_from(&line).await;
        assert!(matches!(h, Err(ProxyError::TooLong(_))), "{h:?}");
        // Never read beyond the limit.
        assert_eq!(rest.len(), line.len() - V1_MAX_LEN);
    }

    #[tokio::test]
    async fn v1_malformed_address() {
        let (h, _) = read_from(b"PROXY TCP4 999.0.0.1 10.0.0.1 1 2\r\n").await;
        assert!(matches!(h, Err(ProxyError::Malformed(_))), "{h:?}");
        let (h, _) = read_from(b"PROXY TCP4 10.0.0.1 10.0.0.2 1 2 3\r\n").await;
        assert!(matches!(h, Err(ProxyError::Malformed(_))), "{h:?}");
        let (h, _) = read_from(b"PROXY TCP5 10.0.0.1 10.0.0.2 1 2\r\n").await;
        assert!(matches!(h, Err(ProxyError::Malformed(_))), "{h:?}");
        let (h, _) = read_from(b"PROXY TCP4 2001:db8::1 10.0.0.2 1 2\r\n").await;
        assert!(matches!(h, Err(ProxyError::Malformed(_))), "{h:?}");
    }

    #[tokio::test]
    async fn v2_proxy_tcp4_with_tlvs_ignored() {
        // A NOOP TLV and an AUTHORITY TLV, as HAProxy may send them.
        let tlvs = [&[0x04, 0x00, 0x01, 0x00][..], &[0x02, 0x00, 0x03], b"a.b"].concat();
        let mut input = v2_tcp4([192, 0, 2, 44], [10, 0, 0, 5], 61000, 8465, &tlvs);
        input.extend_from_slice(b"\x16\x03\x01rest");
        let (h, rest) = read_from(&input).await;
        let h = h.unwrap();
        assert_eq!(h.source, Some("192.0.2.44:61000".parse().unwrap()));
        assert_eq!(h.destination, Some("10.0.0.5:8465".parse().unwrap()));
        // The TLS ClientHello behind the header stays for the TLS acceptor.
        assert_eq!(rest, b"\x16\x03\x01rest");
    }

    #[tokio::test]
    async fn headers_captured_from_haproxy_2_6() {
        // Bytes HAProxy 2.6 sent with `send-proxy` and `send-proxy-v2` (scripts/proxy_smoke.py).
        let v1 = b"PROXY TCP4 127.0.0.1 127.0.0.1 54354 57479\r\n";
        let v2: &[u8] = &[
            0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a, 0x21, 0x11,
            0x00, 0x0c, 0x7f, 0x00, 0x00, 0x01, 0x7f, 0x00, 0x00, 0x01, 0xba, 0xe6, 0xa3, 0xdb,
        ];
        let (h, rest) = read_from(v1).await;
        assert_eq!(h.unwrap().source, Some("127.0.0.1:54354".parse().unwrap()));
        assert!(rest.is_empty());
        let (h, rest) = read_from(v2).await;
        let h = h.unwrap();
        assert_eq!(h.source, Some("127.0.0.1:47846".parse().unwrap()));
        assert_eq!(h.destination, Some("127.0.0.1:41947".parse().unwrap()));
        assert!(rest.is_empty());
    }

    #[tokio::test]
    async fn v2_proxy_tcp6() {
        let mut a = Vec::new();
        a.extend_from_slice(
            &"2001:db8::99"
                .parse::<std::net::Ipv6Addr>()
                .unwrap()
                .octets(),
        );
        a.extend_from_slice(
            &"2001:db8::1"
                .parse::<std::net::Ipv6Addr>()
                .unwrap()
                .octets(),
        );
        a.extend_from_slice(&443u16.to_be_bytes());
        a.extend_from_slice(&25u16.to_be_bytes());
        let (h, rest) = read_from(&v2_header(0x1, 0x21, &a, &[])).await;
        let h = h.unwrap();
        assert_eq!(h.source, Some("[2001:db8::99]:443".parse().unwrap()));
        assert_eq!(h.destination, Some("[2001:db8::1]:25".parse().unwrap()));
        assert!(rest.is_empty());
    }

    #[tokio::test]
    async fn v2_local_uses_the_peer() {
        let mut input = v2_header(0x0, 0x00, &[], &[]);
        input.extend_from_slice(b"QUIT\r\n");
        let (h, rest) = read_from(&input).await;
        let h = h.unwrap();
        assert_eq!(h.source, None);
        let peer: SocketAddr = "10.9.9.9:9".parse().unwrap();
        assert_eq!(h.client_addr(peer), peer);
        assert_eq!(rest, b"QUIT\r\n");
    }

    #[tokio::test]
    async fn v2_local_with_addresses_still_uses_the_peer() {
        let input = v2_header(0x0, 0x11, &[1, 2, 3, 4, 5, 6, 7, 8, 0, 1, 0, 2], &[]);
        let (h, _) = read_from(&input).await;
        assert_eq!(h.unwrap().source, None);
    }

    #[tokio::test]
    async fn v2_unspecified_family_uses_the_peer() {
        let (h, _) = read_from(&v2_header(0x1, 0x00, &[], &[])).await;
        assert_eq!(h.unwrap().source, None);
    }

    #[tokio::test]
    async fn v2_bad_version_and_command_are_malformed() {
        let mut input = v2_tcp4([1, 1, 1, 1], [2, 2, 2, 2], 1, 2, &[]);
        input[12] = 0x11; // version 1 in the binary form does not exist
        let (h, _) = read_from(&input).await;
        assert!(matches!(h, Err(ProxyError::Malformed(_))), "{h:?}");
        let mut input = v2_tcp4([1, 1, 1, 1], [2, 2, 2, 2], 1, 2, &[]);
        input[12] = 0x2F;
        let (h, _) = read_from(&input).await;
        assert!(matches!(h, Err(ProxyError::Malformed(_))), "{h:?}");
    }

    #[tokio::test]
    async fn v2_length_too_short_for_addresses_is_malformed() {
        // Claims IPv4 but carries 4 bytes instead of 12.
        let (h, _) = read_from(&v2_header(0x1, 0x11, &[1, 2, 3, 4], &[])).await;
        assert!(matches!(h, Err(ProxyError::Malformed(_))), "{h:?}");
    }

    #[tokio::test]
    async fn v2_too_long_is_refused_before_reading_it() {
        let mut h = V2_SIGNATURE.to_vec();
        h.extend_from_slice(&[0x21, 0x11, 0xFF, 0xFF]);
        let (result, rest) = read_from(&[&h[..], b"payload"].concat()).await;
        assert!(matches!(result, Err(ProxyError::TooLong(_))), "{result:?}");
        assert_eq!(rest, b"payload");
    }

    #[tokio::test]
    async fn split_across_many_small_writes() {
        let v1 = b"PROXY TCP4 198.51.100.20 10.0.0.1 40123 25\r\nEHLO split\r\n".to_vec();
        let v2 = [
            v2_tcp4(
                [198, 51, 100, 21],
                [10, 0, 0, 1],
                40124,
                25,
                &[4, 0, 2, 0, 0],
            ),
            b"EHLO split\r\n".to_vec(),
        ]
        .concat();
        for (input, expected) in [(v1, "198.51.100.20:40123"), (v2, "198.51.100.21:40124")] {
            for chunk in [1usize, 2, 3, 7] {
                let (mut client, mut server) = duplex(4096);
                let data = input.clone();
                let writer = tokio::spawn(async move {
                    for piece in data.chunks(chunk) {
                        client.write_all(piece).await.unwrap();
                        client.flush().await.unwrap();
                        tokio::task::yield_now().await;
                    }
                    client
                });
                let h = read_header(&mut server, SECS).await.unwrap();
                assert_eq!(h.source, Some(expected.parse().unwrap()), "chunk {chunk}");
                drop(writer.await.unwrap());
                let mut rest = Vec::new();
                server.read_to_end(&mut rest).await.unwrap();
                assert_eq!(rest, b"EHLO split\r\n", "chunk {chunk}");
            }
        }
    }

    #[tokio::test]
    async fn smtp_client_talking_first_is_not_proxy() {
        let (h, _) = read_from(b"EHLO mail.example.org\r\n").await;
        match h {
            Err(ProxyError::NotProxy(first)) => assert!(first.starts_with("EHLO")),
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn tls_client_hello_is_not_proxy() {
        let (h, _) = read_from(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03").await;
        assert!(matches!(h, Err(ProxyError::NotProxy(_))), "{h:?}");
    }

    #[tokio::test]
    async fn garbage_is_refused_without_waiting_for_more() {
        // Only 3 bytes, then the peer waits: refused at once, not after the timeout.
        let (mut client, mut server) = duplex(64);
        client.write_all(b"GET").await.unwrap();
        let h = read_header(&mut server, Duration::from_secs(3600)).await;
        assert!(matches!(h, Err(ProxyError::NotProxy(_))), "{h:?}");
    }

    #[tokio::test]
    async fn v2_signature_mismatch_late_is_not_proxy() {
        let mut input = V2_SIGNATURE.to_vec();
        input[10] = b'X';
        input.extend_from_slice(&[0x21, 0x11, 0, 0]);
        let (h, _) = read_from(&input).await;
        assert!(matches!(h, Err(ProxyError::NotProxy(_))), "{h:?}");
    }

    #[tokio::test]
    async fn silent_peer_times_out() {
        let (_client, mut server) = duplex(64);
        let limit = Duration::from_millis(100);
        let h = read_header(&mut server, limit).await;
        assert!(
            matches!(h, Err(ProxyError::Timeout(d)) if d == limit),
            "{h:?}"
        );
    }

    #[tokio::test]
    async fn partial_header_then_silence_times_out() {
        let (mut client, mut server) = duplex(64);
        client.write_all(b"PROXY TCP4 1.2.3.4 ").await.unwrap();
        let h = read_header(&mut server, Duration::from_millis(100)).await;
        assert!(matches!(h, Err(ProxyError::Timeout(_))), "{h:?}");
    }

    #[tokio::test]
    async fn closed_before_complete() {
        for (input, read) in [
            (&b"PROXY TCP4 1.2.3.4 5.6.7.8 1"[..], 28),
            (&V2_SIGNATURE[..], 12),
        ] {
            let (mut client, mut server) = duplex(64);
            client.write_all(input).await.unwrap();
            drop(client);
            let h = read_header(&mut server, SECS).await;
            assert!(
                matches!(h, Err(ProxyError::Closed(n)) if n == read),
                "{h:?}"
            );
        }
    }

    #[test]
    fn min_remaining_never_crosses_the_line_end() {
        // For every prefix of real headers, the lower bound must not exceed what is left.
        let lines: [&[u8]; 4] = [
            b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n",
            b"PROXY TCP6 :: :: 0 0\r\n",
            b"PROXY UNKNOWN\r\n",
            b"PROXY TCP4 255.255.255.255 255.255.255.255 65535 65535\r\n",
        ];
        for line in lines {
            for cut in MIN_HEADER_LEN.min(line.len() - 1)..line.len() {
                let prefix = &line[..cut];
                assert!(
                    v1_min_remaining(prefix) <= line.len() - cut,
                    "{:?}",
                    prefix.escape_ascii().to_string()
                );
            }
        }
    }
}
