//! Connect-to-greeting latency of an SMTP server, as seen by a sender that opens one
//! connection per message: connect, wait for the `220` greeting, `QUIT`, close; repeated
//! one connection at a time. Prints, in microseconds, the time from the start of
//! `connect()` to the greeting's last byte (the handshake, the server's accept, its checks
//! and the greeting), the part of it after `connect()` returned, the connect itself, and
//! connections per second. On loopback the server usually has greeted before the client's
//! `connect()` has returned.
//!
//! ```text
//! cargo run --release --example connect_latency -- HOST:PORT [COUNT]
//! ```

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

fn quantile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len().saturating_sub(1)) as f64 * p).round() as usize;
    sorted.get(i).copied().unwrap_or_default()
}

fn us(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1e6)
}

/// Reads until a line starting "220 " has ended.
fn read_greeting(stream: &mut TcpStream) -> std::io::Result<()> {
    let mut buf = Vec::with_capacity(256);
    let mut chunk = [0u8; 256];
    loop {
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
        if buf.ends_with(b"\r\n")
            && buf
                .split(|&b| b == b'\n')
                .rev()
                .nth(1)
                .is_some_and(|l| l.starts_with(b"220 "))
        {
            return Ok(());
        }
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let Some(addr) = args.next().and_then(|a| a.parse::<SocketAddr>().ok()) else {
        eprintln!("usage: connect_latency HOST:PORT [COUNT]");
        std::process::exit(2)
    };
    let count: usize = args.next().and_then(|c| c.parse().ok()).unwrap_or(2000);
    let mut greeting = Vec::with_capacity(count);
    let mut connect = Vec::with_capacity(count);
    let mut total = Vec::with_capacity(count);
    let started = Instant::now();
    for i in 0..count {
        let t0 = Instant::now();
        let mut stream = match TcpStream::connect(addr) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("connect_latency: connection {i}: {e}");
                std::process::exit(1)
            }
        };
        let _ = stream.set_nodelay(true);
        let t1 = Instant::now();
        if let Err(e) = read_greeting(&mut stream) {
            eprintln!("connect_latency: greeting {i}: {e}");
            std::process::exit(1)
        }
        let t2 = Instant::now();
        connect.push(t1 - t0);
        greeting.push(t2 - t1);
        total.push(t2 - t0);
        let _ = stream.write_all(b"QUIT\r\n");
        let mut rest = [0u8; 256];
        let _ = stream.read(&mut rest);
    }
    let elapsed = started.elapsed();
    greeting.sort();
    connect.sort();
    total.sort();
    println!(
        "{count} connections, {:.0}/s; connected-to-greeting us p50 {} p99 {}; connect() start-to-greeting us p50 {} p90 {} p99 {} max {}; TCP connect us p50 {}",
        count as f64 / elapsed.as_secs_f64(),
        us(quantile(&greeting, 0.5)),
        us(quantile(&greeting, 0.99)),
        us(quantile(&total, 0.5)),
        us(quantile(&total, 0.9)),
        us(quantile(&total, 0.99)),
        us(total.last().copied().unwrap_or_default()),
        us(quantile(&connect, 0.5)),
    );
}
