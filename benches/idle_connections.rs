//! Resident memory of the release binary, measured alone in a child process:
//!
//! 1. with 10,000 concurrent idle SMTP sessions (greeted, EHLO answered, then silent);
//!    every one is checked to be alive afterwards (`NOOP` answered);
//! 2. in a fresh process, with messages in flight: many sessions each part-way through a message just under
//!    the size limit (memory per message in flight, compared with the limit);
//! 3. with the same number of sessions each streaming a message several times the size
//!    limit (what is over the limit is read and discarded, so memory stays bounded by the
//!    limit, not by what the client sends).
//!
//! The file-descriptor limit is raised here, in the benchmark (the child inherits it), not
//! in the server's defaults. Connection limits and the command timeout are raised for the
//! child through `NOTIFY_INBOUND__...` variables.
//!
//! `cargo bench --bench idle_connections` runs the full sizes; without `--bench` (as under
//! `cargo test --all-targets`) a tiny run. Environment: `IDLE_CONNECTIONS` (default
//! 10000), `INFLIGHT_MESSAGES` (default 100), `OVERSIZE_FACTOR` (default 5).

#[path = "support/smtp.rs"]
mod smtp;

use std::net::{SocketAddr, TcpListener};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use smtp::Client;
use tokio::sync::Semaphore;

const SIZE_LIMIT: usize = 1_000_000;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .map(|v| v.parse().unwrap_or_else(|_| panic!("{name}: a number")))
        .unwrap_or(default)
}

/// Raises the soft RLIMIT_NOFILE to `want` (or the hard limit, if lower); returns it.
fn raise_nofile(want: u64) -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct we pass.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            panic!("getrlimit: {}", std::io::Error::last_os_error());
        }
        let target = want.min(lim.rlim_max);
        if lim.rlim_cur < target {
            lim.rlim_cur = target;
            if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                panic!("setrlimit: {}", std::io::Error::last_os_error());
            }
        }
        lim.rlim_cur
    }
}

/// (VmRSS, VmHWM) of a process in KiB.
fn rss_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

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

fn start_server(max_connections: usize) -> Server {
    let dir = tempfile::tempdir().expect("temp dir");
    let port = free_port();
    let log = std::fs::File::create(dir.path().join("server.log")).expect("log file");
    let p = "NOTIFY_INBOUND__";
    let s = "NOTIFY_INBOUND__INBOUND_SMTP_SERVER__";
    let child = Command::new(env!("CARGO_BIN_EXE_notify-inbound"))
        .current_dir(dir.path())
        .env(format!("{p}INTERNAL_HTTP_HOST"), "http://127.0.0.1:9")
        .env(format!("{s}DOMAIN"), "notify.example")
        .env(format!("{s}LISTENING_IP"), "127.0.0.1")
        .env(format!("{s}LISTENING_SMTP_PORT"), port.to_string())
        .env(
            format!("{s}LIMITS__MAX_CONNECTIONS"),
            max_connections.to_string(),
        )
        .env(
            format!("{s}LIMITS__MAX_CONNECTIONS_PER_IP"),
            max_connections.to_string(),
        )
        .env(
            format!("{s}LIMITS__MAX_CONNECTIONS_PER_NETWORK"),
            max_connections.to_string(),
        )
        // Every session here is idle on purpose: stress mode would close them.
        .env(format!("{s}LIMITS__STRESS_THRESHOLD_PERCENT"), "0")
        .env(format!("{s}LIMITS__COMMAND_TIMEOUT_SECS"), "900")
        .env(format!("{s}LIMITS__DATA_TIMEOUT_SECS"), "900")
        .env(format!("{p}OPERATIONS__LISTEN"), "")
        .env(format!("{p}LOG__LEVEL"), "warn")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start the notify-inbound binary");
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(addr).is_err() {
        assert!(Instant::now() < deadline, "server did not start listening");
        std::thread::sleep(Duration::from_millis(50));
    }
    Server {
        child,
        addr,
        _dir: dir,
    }
}

/// Opens `n` sessions (greeting read, EHLO answered), at most `parallel` connecting at once.
async fn open_idle(addr: SocketAddr, n: usize, parallel: usize) -> Vec<Client> {
    let gate = Arc::new(Semaphore::new(parallel));
    let mut tasks = Vec::with_capacity(n);
    for i in 0..n {
        let gate = gate.clone();
        tasks.push(tokio::spawn(async move {
            let _permit = gate.acquire_owned().await.expect("semaphore");
            // Spread the sources over 127.0.0.1-127.0.0.8 so no source runs short of ports.
            let local: SocketAddr = format!("127.0.0.{}:0", 1 + i % 8).parse().expect("addr");
            let mut c = Client::connect_from(local, addr)
                .await
                .unwrap_or_else(|e| panic!("connection {i}: {e}"));
            c.hello()
                .await
                .unwrap_or_else(|e| panic!("connection {i}: {e}"));
            c
        }));
    }
    let mut clients = Vec::with_capacity(n);
    for t in tasks {
        clients.push(t.await.expect("connect task"));
    }
    clients
}

/// Every session still answers.
async fn check_alive(clients: &mut [Client]) {
    for (i, c) in clients.iter_mut().enumerate() {
        c.send(b"NOOP\r\n").await.expect("NOOP sent");
        c.expect("NOOP", 250)
            .await
            .unwrap_or_else(|e| panic!("session {i} no longer answers: {e}"));
    }
}

/// Starts a message on each client (to postmaster: no API involved) and sends `bytes` of
/// body without ending it, all clients at once, so the server holds every message in
/// flight.
async fn start_messages(clients: Vec<Client>, bytes: usize) -> Vec<Client> {
    let mut line = vec![b'x'; 998];
    line.extend_from_slice(b"\r\n");
    let chunk: Arc<Vec<u8>> = Arc::new(line.iter().copied().cycle().take(64 * 1000).collect());
    let tasks: Vec<_> = clients
        .into_iter()
        .map(|mut c| {
            let chunk = chunk.clone();
            tokio::spawn(async move {
                c.send(b"MAIL FROM:<sender@client.example>\r\nRCPT TO:<postmaster@notify.example>\r\nDATA\r\n")
                    .await
                    .expect("envelope sent");
                c.expect("MAIL", 250).await.expect("MAIL");
                c.expect("RCPT", 250).await.expect("RCPT");
                c.expect("DATA", 354).await.expect("DATA");
                let mut sent = 0;
                while sent < bytes {
                    let n = chunk.len().min(bytes - sent);
                    c.send(&chunk[..n]).await.expect("body sent");
                    sent += n;
                }
                c
            })
        })
        .collect();
    let mut out = Vec::with_capacity(tasks.len());
    for t in tasks {
        out.push(t.await.expect("message task"));
    }
    out
}

/// Ends the message on each client and expects `code`.
async fn finish_messages(clients: &mut [Client], code: u16) {
    for c in clients.iter_mut() {
        c.send(b"\r\n.\r\n").await.expect("end of data sent");
        c.expect("end of data", code)
            .await
            .expect("reply to the message");
    }
}

async fn settle(pid: u32) -> (u64, u64) {
    tokio::time::sleep(Duration::from_millis(500)).await;
    rss_kib(pid)
}

async fn bench(full: bool) {
    let idle = env_usize("IDLE_CONNECTIONS", if full { 10_000 } else { 200 });
    let inflight = env_usize("INFLIGHT_MESSAGES", if full { 100 } else { 5 });
    let factor = env_usize("OVERSIZE_FACTOR", 5);
    let nofile = raise_nofile((idle as u64 + 1000).max(4096));
    assert!(
        nofile as usize > idle + 200,
        "RLIMIT_NOFILE {nofile} is too low for {idle} connections"
    );
    let server = start_server(idle + inflight * 2 + 100);
    let pid = server.child.id();
    println!(
        "idle_connections: {} (pid {pid}), RLIMIT_NOFILE {nofile}, size limit {SIZE_LIMIT} bytes",
        env!("CARGO_BIN_EXE_notify-inbound")
    );
    let (base, _) = settle(pid).await;
    println!("started, no connections:        VmRSS {}", mib(base));

    let started = Instant::now();
    let mut clients = open_idle(server.addr, idle, 256).await;
    let opened = started.elapsed();
    let (with_idle, hwm) = settle(pid).await;
    let per_conn = (with_idle.saturating_sub(base)) as f64 * 1024.0 / idle as f64;
    let target = if idle >= 10_000 {
        let met = if with_idle < 60 * 1024 {
            "met"
        } else {
            "NOT met"
        };
        format!("; target for 10,000 sessions < 60 MiB: {met}")
    } else {
        String::new()
    };
    println!(
        "{idle} idle sessions (opened in {:.1} s): VmRSS {} (peak {}), {:.0} bytes per session{target}",
        opened.as_secs_f64(),
        mib(with_idle),
        mib(hwm),
        per_conn,
    );
    check_alive(&mut clients).await;
    let (after_noop, _) = settle(pid).await;
    println!(
        "all {idle} sessions answered NOOP:  VmRSS {}",
        mib(after_noop)
    );
    drop(clients);
    drop(server);

    // Messages in flight, in a fresh process so the heap left by the idle sessions does
    // not hide what the messages take.
    let server = start_server(idle + inflight * 2 + 100);
    let pid = server.child.id();
    let mut busy = open_idle(server.addr, inflight, 256).await;
    let (before_big, _) = settle(pid).await;
    println!(
        "fresh server, {} sessions open:  VmRSS {}",
        busy.len(),
        mib(before_big)
    );

    // Over-size messages first, on a fresh heap: what is over the limit is discarded.
    let oversize = SIZE_LIMIT * factor;
    busy = start_messages(busy, oversize).await;
    let (with_over, _) = settle(pid).await;
    let per_over = (with_over.saturating_sub(before_big)) as f64 * 1024.0 / busy.len() as f64;
    println!(
        "{} messages of {} bytes ({factor}x the limit) in flight: VmRSS {}, {:.0} bytes per message ({:.2}x the limit)",
        busy.len(),
        oversize,
        mib(with_over),
        per_over,
        per_over / SIZE_LIMIT as f64
    );
    finish_messages(&mut busy, 552).await;

    let under = SIZE_LIMIT * 9 / 10;
    let (before_under, _) = settle(pid).await;
    busy = start_messages(busy, under).await;
    let (with_under, _) = settle(pid).await;
    let per_under = (with_under.saturating_sub(before_under)) as f64 * 1024.0 / busy.len() as f64;
    println!(
        "{} messages of {} bytes (0.9x the limit) in flight: VmRSS {}, {:.0} bytes per message ({:.2}x the limit)",
        busy.len(),
        under,
        mib(with_under),
        per_under,
        per_under / SIZE_LIMIT as f64
    );
    finish_messages(&mut busy, 250).await;
    let (end, hwm) = settle(pid).await;
    println!(
        "messages done:                   VmRSS {} (peak over the run {})",
        mib(end),
        mib(hwm)
    );
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(bench(full));
}
