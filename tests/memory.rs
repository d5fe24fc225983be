//! The memory bound per message, on the real binary in a child process: what a sender sends
//! beyond the size limit is read and discarded, so a message in flight costs memory bounded
//! by the limit, not by what the client sends. `cargo bench --bench idle_connections`
//! measures the same at full scale; this checks the bound holds.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The size limit the server runs with.
const LIMIT: usize = 1_000_000;
/// Concurrent messages, each this many times the limit.
const MESSAGES: usize = 10;
const FACTOR: usize = 5;
/// What one message in flight may cost: the limit, once more for the read buffer, the
/// allocator's rounding and the session (the benchmark measures 1.09x the limit).
const PER_MESSAGE: u64 = 2 * LIMIT as u64;

struct Server {
    child: Child,
    addr: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_server() -> Server {
    let dir = tempfile::tempdir().unwrap();
    let port = common::free_port();
    let (p, s) = ("NOTIFY_INBOUND__", "NOTIFY_INBOUND__INBOUND_SMTP_SERVER__");
    let child = Command::new(env!("CARGO_BIN_EXE_notify-inbound"))
        .current_dir(dir.path())
        .env(format!("{p}INTERNAL_HTTP_HOST"), "http://127.0.0.1:9")
        .env(format!("{s}DOMAIN"), "notify.example")
        .env(format!("{s}LISTENING_IP"), "127.0.0.1")
        .env(format!("{s}LISTENING_SMTP_PORT"), port.to_string())
        .env(format!("{s}OPTIONS__SIZE"), LIMIT.to_string())
        .env(format!("{s}LIMITS__MAX_CONNECTIONS_PER_IP"), "100")
        .env(format!("{s}LIMITS__COMMAND_TIMEOUT_SECS"), "300")
        .env(format!("{s}LIMITS__DATA_TIMEOUT_SECS"), "300")
        .env(format!("{s}LIMITS__SESSION_TIMEOUT_SECS"), "600")
        .env(format!("{p}OPERATIONS__LISTEN"), "")
        .env(format!("{p}LOG__LEVEL"), "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the notify-inbound binary");
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while TcpStream::connect(addr).is_err() {
        assert!(Instant::now() < deadline, "server did not start listening");
        std::thread::sleep(Duration::from_millis(50));
    }
    Server {
        child,
        addr,
        _dir: dir,
    }
}

/// (VmRSS, VmHWM) of a process, in bytes.
fn memory(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| -> u64 {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in /proc/{pid}/status"))
    };
    (field("VmRSS:") * 1024, field("VmHWM:") * 1024)
}

struct Session {
    stream: TcpStream,
    reader: BufReader<TcpStream>,
}

impl Session {
    fn open(addr: SocketAddr) -> Session {
        let stream = TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(120)))
            .unwrap();
        let reader = BufReader::new(stream.try_clone().unwrap());
        let mut s = Session { stream, reader };
        s.expect(220);
        s.send(b"EHLO client.example\r\n");
        s.expect(250);
        s
    }

    fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).unwrap();
    }

    /// Reads one (multi-line) reply and checks its code; returns its last line.
    fn expect(&mut self, code: u16) -> String {
        loop {
            let mut line = String::new();
            self.reader.read_line(&mut line).unwrap();
            assert!(
                line.starts_with(&code.to_string()),
                "expected {code}, got {line:?}"
            );
            if line.as_bytes().get(3) != Some(&b'-') {
                return line;
            }
        }
    }
}

#[test]
fn over_size_messages_in_flight_cost_memory_bounded_by_the_size_limit() {
    let server = start_server();
    let pid = server.child.id();
    let mut sessions: Vec<Session> = (0..MESSAGES).map(|_| Session::open(server.addr)).collect();
    for s in &mut sessions {
        // To postmaster: no API call; no SIZE= so the server learns the size while reading.
        s.send(b"MAIL FROM:<sender@client.example>\r\n");
        s.expect(250);
        s.send(b"RCPT TO:<postmaster@notify.example>\r\n");
        s.expect(250);
        s.send(b"DATA\r\n");
        s.expect(354);
    }
    let (before, _) = memory(pid);

    // Every body is sent whole before any message is ended, so all are in flight together.
    let mut line = vec![b'x'; 998];
    line.extend_from_slice(b"\r\n");
    let body: Vec<u8> = line.iter().copied().cycle().take(LIMIT * FACTOR).collect();
    let senders: Vec<_> = sessions
        .into_iter()
        .map(|mut s| {
            let body = body.clone();
            std::thread::spawn(move || {
                s.send(&body);
                s
            })
        })
        .collect();
    let mut sessions: Vec<Session> = senders.into_iter().map(|t| t.join().unwrap()).collect();
    let (during, _) = memory(pid);
    // The 552 proves the server read each message to its end.
    for s in &mut sessions {
        s.send(b"\r\n.\r\n");
        let reply = s.expect(552);
        assert!(reply.contains("5.3.4"), "{reply}");
    }
    // VmHWM is the kernel's high-water mark of VmRSS, which it may record late: take both.
    let (_, peak) = memory(pid);
    let peak = peak.max(during);

    let bound = before + MESSAGES as u64 * PER_MESSAGE;
    let mib = |b: u64| format!("{:.1} MiB", b as f64 / (1024.0 * 1024.0));
    println!(
        "sessions open {}, while sending {}, peak {}: {:.2}x the limit per message (bound {})",
        mib(before),
        mib(during),
        mib(peak),
        peak.saturating_sub(before) as f64 / (MESSAGES * LIMIT) as f64,
        mib(bound)
    );
    assert!(
        peak <= bound,
        "{MESSAGES} messages of {} bytes ({FACTOR}x the limit of {LIMIT}) in flight: peak \
         resident memory {} (with the sessions open {}, while sending {}), over the bound {} \
         ({} per message)",
        body.len(),
        mib(peak),
        mib(before),
        mib(during),
        mib(bound),
        mib(PER_MESSAGE)
    );
}
