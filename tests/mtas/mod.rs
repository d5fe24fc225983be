//! Real Postfix and Exim instances for the MTA tests, each in a temporary directory of its own
//! with its own configuration, queue and log, listening on a loopback port, never the system
//! service. Postfix is Debian's package (`postfix -c DIR`); Exim is the binary unpacked from
//! Debian's .debs by `scripts/ensure-mtas.sh`, run with `-C` (the two conflict as packages).
//!
//! Each instance routes three kinds of domain:
//! - [`NOTIFY_DOMAIN`] to notify-inbound on its port, TLS required (STARTTLS);
//! - [`REMOTE_DOMAIN`] to a [`FakeMx`] on its port;
//! - [`LOCAL_DOMAIN`] locally (Postfix's local(8), Exim's `check_local_user`): an address there
//!   with no system user is a local "user unknown".
//!
//! Anything else (an unknown domain) is unrouteable. Nothing resolves names through DNS.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::mta::{Replies, code, data_payload};

/// The domain notify-inbound serves in these tests.
pub const NOTIFY_DOMAIN: &str = "inbound.example";
/// Mail for it goes to the [`FakeMx`].
pub const REMOTE_DOMAIN: &str = "remote.example";
/// Delivered locally by the MTA.
pub const LOCAL_DOMAIN: &str = "local.example";

const INSTALL: &str = "run scripts/ensure-mtas.sh as root (it installs postfix and unpacks exim4-daemon-light under target/mta/exim4)";

/// Which MTA.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Postfix,
    Exim,
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Kind::Postfix => "Postfix",
            Kind::Exim => "Exim",
        })
    }
}

/// How an instance is set up.
#[derive(Debug, Clone, Copy)]
pub struct Setup {
    /// notify-inbound's plain (STARTTLS) port.
    pub notify_port: u16,
    /// The fake MX's port.
    pub mx_port: u16,
    /// Retry quickly and give up on a temporary failure after a few seconds (Postfix: one
    /// attempt; Exim: a 3 s retry rule), so an undeliverable message bounces.
    pub give_up_fast: bool,
    /// Retry every second and send a delay warning after a second or two.
    pub warn_delays: bool,
}

impl Setup {
    pub fn new(notify_port: u16, mx_port: u16) -> Setup {
        Setup {
            notify_port,
            mx_port,
            give_up_fast: false,
            warn_delays: false,
        }
    }
}

/// A running MTA instance; dropping it stops it.
pub struct Mta {
    pub kind: Kind,
    dir: tempfile::TempDir,
    port: u16,
    exim_pid: Option<u32>,
}

fn run(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}; {INSTALL}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{cmd:?} failed: {text}");
    text
}

fn chown_tree(path: &Path, owner: &str) {
    run(Command::new("chown").arg("-R").arg(owner).arg(path));
}

/// Exim's binary: `EXIM_BIN`, else where scripts/ensure-mtas.sh unpacks it.
pub fn exim_bin() -> PathBuf {
    std::env::var_os("EXIM_BIN").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("target/mta/exim4/usr/sbin/exim4"),
        PathBuf::from,
    )
}

fn require_tools(kind: Kind) {
    let uid = run(Command::new("id").arg("-u"));
    assert_eq!(
        uid.trim(),
        "0",
        "the MTA tests start their own Postfix and Exim instances, which needs root"
    );
    match kind {
        Kind::Postfix => {
            for tool in [
                "/usr/sbin/postfix",
                "/usr/sbin/postqueue",
                "/usr/sbin/postconf",
            ] {
                assert!(Path::new(tool).exists(), "{tool} is missing: {INSTALL}");
            }
        }
        Kind::Exim => {
            let bin = exim_bin();
            assert!(bin.exists(), "{} is missing: {INSTALL}", bin.display());
        }
    }
}

impl Mta {
    /// Starts an instance and waits (bounded) until it accepts connections.
    pub async fn start(kind: Kind, setup: Setup) -> Mta {
        require_tools(kind);
        let dir = tempfile::tempdir().unwrap();
        // The MTAs' unprivileged users (postfix, Debian-exim) must reach their files in here.
        std::fs::set_permissions(
            dir.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .unwrap();
        let port = crate::common::free_port();
        let mut mta = Mta {
            kind,
            dir,
            port,
            exim_pid: None,
        };
        match kind {
            Kind::Postfix => mta.start_postfix(setup),
            Kind::Exim => mta.start_exim(setup),
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)).await {
                let mut replies = Replies::new();
                if let Some(g) = replies.next(&mut s).await
                    && code(&g) == 220
                {
                    let _ = s.write_all(b"QUIT\r\n").await;
                    break;
                }
            }
            assert!(
                Instant::now() < deadline,
                "{kind} did not listen on 127.0.0.1:{port} within 30 s; its log:\n{}",
                mta.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        mta
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The port it accepts mail on.
    pub fn port(&self) -> u16 {
        self.port
    }

    fn start_postfix(&mut self, s: Setup) {
        let d = self.dir.path().display().to_string();
        for sub in ["conf", "queue", "data"] {
            std::fs::create_dir(self.path(sub)).unwrap();
        }
        chown_tree(&self.path("data"), "postfix:postfix");
        std::fs::write(
            self.path("conf/transport"),
            format!(
                "{NOTIFY_DOMAIN} smtp:[127.0.0.1]:{}\n{REMOTE_DOMAIN} smtp:[127.0.0.1]:{}\n",
                s.notify_port, s.mx_port
            ),
        )
        .unwrap();
        // TLS is required towards notify-inbound (without verifying its certificate: the
        // shipped server makes a self-signed one) and optional elsewhere.
        std::fs::write(
            self.path("conf/tls_policy"),
            format!("[127.0.0.1]:{} encrypt\n", s.notify_port),
        )
        .unwrap();
        let (lifetime, backoff, warn) = if s.give_up_fast {
            ("0", "1s", "0")
        } else if s.warn_delays {
            ("1h", "1s", "1s")
        } else {
            // Retries only when the test flushes the queue.
            ("1h", "1h", "0")
        };
        let main_cf = format!(
            "compatibility_level = 3.6\n\
             queue_directory = {d}/queue\n\
             data_directory = {d}/data\n\
             mail_owner = postfix\n\
             setgid_group = postdrop\n\
             myhostname = mta-postfix.example\n\
             mydomain = mta-postfix.example\n\
             myorigin = $myhostname\n\
             mydestination = {LOCAL_DOMAIN}\n\
             inet_interfaces = 127.0.0.1\n\
             inet_protocols = ipv4\n\
             mynetworks = 127.0.0.0/8\n\
             smtpd_relay_restrictions = permit_mynetworks, reject\n\
             local_recipient_maps =\n\
             alias_maps =\n\
             alias_database =\n\
             relayhost =\n\
             smtp_dns_support_level = disabled\n\
             transport_maps = texthash:{d}/conf/transport\n\
             smtp_tls_security_level = may\n\
             smtp_tls_policy_maps = texthash:{d}/conf/tls_policy\n\
             smtp_tls_loglevel = 1\n\
             maillog_file = {d}/maillog\n\
             maillog_file_prefixes = {d}\n\
             queue_run_delay = 1s\n\
             minimal_backoff_time = {backoff}\n\
             maximal_backoff_time = {backoff}\n\
             maximal_queue_lifetime = {lifetime}\n\
             bounce_queue_lifetime = {lifetime}\n\
             delay_warning_time = {warn}\n\
             biff = no\n"
        );
        std::fs::write(self.path("conf/main.cf"), main_cf).unwrap();
        let services = [
            "pickup    unix  n - n 60 1 pickup",
            "cleanup   unix  n - n - 0 cleanup",
            "qmgr      unix  n - n 300 1 qmgr",
            "tlsmgr    unix  - - n 1000? 1 tlsmgr",
            "rewrite   unix  - - n - - trivial-rewrite",
            "bounce    unix  - - n - 0 bounce",
            "defer     unix  - - n - 0 bounce",
            "trace     unix  - - n - 0 bounce",
            "verify    unix  - - n - 1 verify",
            "flush     unix  n - n 1000? 0 flush",
            "proxymap  unix  - - n - - proxymap",
            "smtp      unix  - - n - - smtp",
            "relay     unix  - - n - - smtp",
            "showq     unix  n - n - - showq",
            "error     unix  - - n - - error",
            "retry     unix  - - n - - error",
            "discard   unix  - - n - - discard",
            "local     unix  - n n - - local",
            "anvil     unix  - - n - 1 anvil",
            "scache    unix  - - n - 1 scache",
            "postlog   unix-dgram n - n - 1 postlogd",
        ];
        let master_cf = format!(
            "127.0.0.1:{} inet n - n - - smtpd\n{}\n",
            self.port,
            services.join("\n")
        );
        std::fs::write(self.path("conf/master.cf"), master_cf).unwrap();
        let out = Command::new("/usr/sbin/postfix")
            .arg("-c")
            .arg(self.path("conf"))
            .arg("start")
            .output()
            .unwrap_or_else(|e| panic!("cannot run postfix: {e}; {INSTALL}"));
        assert!(
            out.status.success(),
            "postfix -c {d}/conf start failed: {}{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            self.log()
        );
    }

    fn start_exim(&mut self, s: Setup) {
        let d = self.dir.path().display().to_string();
        for sub in ["spool", "log"] {
            std::fs::create_dir(self.path(sub)).unwrap();
            chown_tree(&self.path(sub), "Debian-exim:Debian-exim");
        }
        let (retry, warn, queue_runs) = if s.give_up_fast {
            ("F,3s,1s", "", true)
        } else if s.warn_delays {
            ("F,1h,1s", "delay_warning = 2s\n", true)
        } else {
            // Retries only when the test flushes the queue.
            ("F,1h,1h", "", false)
        };
        let config = format!(
            "exim_path = {exim}\n\
             keep_environment =\n\
             primary_hostname = mta-exim.example\n\
             qualify_domain = mta-exim.example\n\
             domainlist local_domains = {LOCAL_DOMAIN}\n\
             spool_directory = {d}/spool\n\
             log_file_path = {d}/log/%slog\n\
             pid_file_path = {d}/exim.pid\n\
             local_interfaces = 127.0.0.1\n\
             daemon_smtp_ports = {port}\n\
             host_lookup =\n\
             rfc1413_hosts =\n\
             acl_smtp_rcpt = accept\n\
             tls_advertise_hosts =\n\
             log_selector = +smtp_confirmation +received_recipients\n\
             {warn}\
             timeout_frozen_after = 10m\n\
             ignore_bounce_errors_after = 10m\n\
             \n\
             begin routers\n\
             notify:\n  driver = manualroute\n  domains = {NOTIFY_DOMAIN}\n  route_list = * 127.0.0.1\n  self = send\n  transport = to_notify\n\
             remote:\n  driver = manualroute\n  domains = {REMOTE_DOMAIN}\n  route_list = * 127.0.0.1\n  self = send\n  transport = to_mx\n\
             localuser:\n  driver = accept\n  domains = +local_domains\n  check_local_user\n  transport = local_delivery\n\
             \n\
             begin transports\n\
             to_notify:\n  driver = smtp\n  port = {notify}\n  allow_localhost\n  hosts_require_tls = *\n\
             to_mx:\n  driver = smtp\n  port = {mx}\n  allow_localhost\n\
             local_delivery:\n  driver = appendfile\n  file = /dev/null\n\
             \n\
             begin retry\n\
             * * {retry}\n",
            exim = exim_bin().display(),
            port = self.port,
            notify = s.notify_port,
            mx = s.mx_port,
        );
        std::fs::write(self.path("exim.conf"), config).unwrap();
        let mut cmd = Command::new(exim_bin());
        cmd.arg("-C").arg(self.path("exim.conf")).arg("-bd");
        if queue_runs {
            cmd.arg("-q1s");
        }
        let out = cmd
            .output()
            .unwrap_or_else(|e| panic!("cannot run exim: {e}; {INSTALL}"));
        assert!(
            out.status.success(),
            "exim -bd failed: {}{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            self.log()
        );
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.exim_pid.is_none() {
            self.exim_pid = std::fs::read_to_string(self.path("exim.pid"))
                .ok()
                .and_then(|p| p.trim().parse().ok());
            assert!(
                Instant::now() < deadline,
                "exim wrote no pid file; its log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The MTA's own log so far.
    pub fn log(&self) -> String {
        let file = match self.kind {
            Kind::Postfix => self.path("maillog"),
            Kind::Exim => self.path("log/mainlog"),
        };
        let mut text = std::fs::read_to_string(file).unwrap_or_default();
        if self.kind == Kind::Exim
            && let Ok(panic) = std::fs::read_to_string(self.path("log/paniclog"))
        {
            text.push_str(&panic);
        }
        text
    }

    /// Attempts every queued message now, retry times notwithstanding (`postqueue -f`,
    /// `exim -qff`).
    pub async fn flush(&self) {
        let mut cmd = match self.kind {
            Kind::Postfix => {
                let mut c = Command::new("/usr/sbin/postqueue");
                c.arg("-c").arg(self.path("conf")).arg("-f");
                c
            }
            Kind::Exim => {
                let mut c = Command::new(exim_bin());
                c.arg("-C").arg(self.path("exim.conf")).arg("-qff");
                c
            }
        };
        // `exim -qff` delivers in the foreground: the runtime must keep serving meanwhile.
        tokio::task::spawn_blocking(move || run(&mut cmd))
            .await
            .unwrap();
    }

    /// Waits (at most `limit`) for the log to hold `n` delivery results for `rcpt`, and
    /// returns them in order. A result is a final line for that recipient: delivered, deferred
    /// or bounced.
    pub async fn wait_results(&self, rcpt: &str, n: usize, limit: Duration) -> Vec<Delivery> {
        let deadline = Instant::now() + limit;
        loop {
            let results = self.results(rcpt);
            if results.len() >= n {
                return results;
            }
            assert!(
                Instant::now() < deadline,
                "{}: {n} delivery results for {rcpt} not logged within {limit:?}; got {results:?}; log:\n{}",
                self.kind,
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Every logged delivery result for `rcpt`.
    pub fn results(&self, rcpt: &str) -> Vec<Delivery> {
        let log = self.log();
        let mut out = Vec::new();
        for line in log.lines() {
            let d = match self.kind {
                Kind::Postfix => {
                    if !line.contains(&format!(" to=<{rcpt}>,")) {
                        continue;
                    }
                    if line.contains("status=sent") {
                        Fate::Delivered
                    } else if line.contains("status=deferred") {
                        Fate::Deferred
                    } else if line.contains("status=bounced") {
                        Fate::Bounced
                    } else {
                        continue;
                    }
                }
                Kind::Exim => {
                    // "=>" first delivery, "->" a further recipient of the same delivery,
                    // "==" deferred, "**" failed.
                    let marks = [
                        ("=>", Fate::Delivered),
                        ("->", Fate::Delivered),
                        ("==", Fate::Deferred),
                        ("**", Fate::Bounced),
                    ];
                    let Some(r) = marks.iter().find_map(|(m, r)| {
                        (line.contains(&format!(" {m} {rcpt} "))
                            || line.contains(&format!(" {m} {rcpt}:"))
                            || line.ends_with(&format!(" {m} {rcpt}")))
                        .then_some(*r)
                    }) else {
                        continue;
                    };
                    r
                }
            };
            out.push(Delivery {
                fate: d,
                line: line.to_string(),
            });
        }
        out
    }

    /// Waits (at most `limit`) for a log line containing every one of `needles`.
    pub async fn wait_line(&self, needles: &[&str], limit: Duration) -> String {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(line) = self
                .log()
                .lines()
                .find(|l| needles.iter().all(|n| l.contains(n)))
            {
                return line.to_string();
            }
            assert!(
                Instant::now() < deadline,
                "{}: no log line with {needles:?} within {limit:?}; log:\n{}",
                self.kind,
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Whether its delivery to notify-inbound's port used TLS, as the log shows it.
    pub fn used_tls_to(&self, notify_port: u16, delivery: &Delivery) -> bool {
        match self.kind {
            Kind::Postfix => self.log().lines().any(|l| {
                l.contains("TLS connection established to 127.0.0.1[127.0.0.1]:")
                    && l.contains(&format!(":{notify_port}:"))
            }),
            Kind::Exim => delivery.line.contains(" X=TLS"),
        }
    }

    /// Submits a message over SMTP (sender `from`, empty for the null sender); `Ok` once the
    /// MTA has queued it.
    pub async fn submit(&self, from: &str, rcpts: &[&str], message: &str) -> Result<(), String> {
        let mut s = TcpStream::connect(("127.0.0.1", self.port))
            .await
            .map_err(|e| format!("connect: {e}"))?;
        let mut replies = Replies::new();
        expect(&mut replies, &mut s, 220, "connect").await?;
        let mut commands = vec![
            ("EHLO sender.example".to_string(), 250),
            (format!("MAIL FROM:<{from}>"), 250),
        ];
        for r in rcpts {
            commands.push((format!("RCPT TO:<{r}>"), 250));
        }
        commands.push(("DATA".to_string(), 354));
        for (command, want) in commands {
            s.write_all(format!("{command}\r\n").as_bytes())
                .await
                .map_err(|e| e.to_string())?;
            expect(&mut replies, &mut s, want, &command).await?;
        }
        s.write_all(&data_payload(message))
            .await
            .map_err(|e| e.to_string())?;
        expect(&mut replies, &mut s, 250, "the message").await?;
        let _ = s.write_all(b"QUIT\r\n").await;
        Ok(())
    }
}

async fn expect(
    replies: &mut Replies,
    s: &mut TcpStream,
    want: u16,
    what: &str,
) -> Result<(), String> {
    let r = replies
        .next(s)
        .await
        .ok_or_else(|| format!("no reply to {what}"))?;
    if code(&r) == want {
        Ok(())
    } else {
        Err(format!("{what}: {}", r.trim_end()))
    }
}

impl Drop for Mta {
    fn drop(&mut self) {
        match self.kind {
            Kind::Postfix => {
                let _ = Command::new("/usr/sbin/postfix")
                    .arg("-c")
                    .arg(self.path("conf"))
                    .arg("stop")
                    .output();
                // Bounded wait for the master to go, so the queue is not removed under it.
                let pid = self.path("queue/pid/master.pid");
                let deadline = Instant::now() + Duration::from_secs(5);
                while pid.exists() && Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
            Kind::Exim => {
                if let Some(pid) = self.exim_pid {
                    let _ = Command::new("kill").arg(pid.to_string()).output();
                }
            }
        }
    }
}

/// What a delivery attempt came to, as the MTA logged it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    Delivered,
    Deferred,
    Bounced,
}

/// One logged delivery result and its log line (which holds the reply the MTA got).
#[derive(Debug, Clone)]
pub struct Delivery {
    pub fate: Fate,
    pub line: String,
}

/// A small MX on loopback standing in for a remote domain's server. It answers RCPT by the
/// recipient's local part: `nouser*` gets `550 5.1.1` (no such user), `full*` gets
/// `452 4.2.2` (mailbox full); anything else is accepted and kept.
pub struct FakeMx {
    port: u16,
    accepted: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl FakeMx {
    pub async fn start() -> FakeMx {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let accepted = Arc::new(Mutex::new(Vec::new()));
        let kept = accepted.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let kept = kept.clone();
                tokio::spawn(async move {
                    let _ = tokio::time::timeout(Duration::from_secs(60), mx_session(stream, kept))
                        .await;
                });
            }
        });
        FakeMx {
            port,
            accepted,
            task,
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The messages it accepted.
    pub fn accepted(&self) -> Vec<String> {
        self.accepted.lock().unwrap().clone()
    }
}

impl Drop for FakeMx {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn mx_session(mut s: TcpStream, kept: Arc<Mutex<Vec<String>>>) {
    async fn say(s: &mut TcpStream, line: &str) -> bool {
        s.write_all(format!("{line}\r\n").as_bytes()).await.is_ok()
    }
    let mut buf = Vec::new();
    if !say(&mut s, "220 mx.remote.example ESMTP").await {
        return;
    }
    let mut in_data = false;
    let mut data = String::new();
    let mut rcpts = 0;
    loop {
        let line = loop {
            if let Some(pos) = buf.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = buf.drain(..=pos).collect();
                break String::from_utf8_lossy(&line).trim_end().to_string();
            }
            let mut chunk = [0u8; 4096];
            match s.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        if in_data {
            if line == "." {
                in_data = false;
                kept.lock().unwrap().push(std::mem::take(&mut data));
                if !say(&mut s, "250 2.0.0 Ok: queued").await {
                    return;
                }
            } else {
                data.push_str(line.strip_prefix('.').unwrap_or(&line));
                data.push_str("\r\n");
            }
            continue;
        }
        let upper = line.to_ascii_uppercase();
        let reply = if upper.starts_with("EHLO") {
            "250-mx.remote.example\r\n250-PIPELINING\r\n250 ENHANCEDSTATUSCODES".to_string()
        } else if upper.starts_with("HELO") {
            "250 mx.remote.example".to_string()
        } else if upper.starts_with("MAIL") {
            rcpts = 0;
            "250 2.1.0 Ok".to_string()
        } else if upper.starts_with("RCPT") {
            let addr = line
                .split_once(':')
                .map(|(_, a)| a.trim().trim_start_matches('<'))
                .and_then(|a| a.split('>').next())
                .unwrap_or("")
                .to_string();
            let local = addr.split('@').next().unwrap_or("").to_ascii_lowercase();
            if local.starts_with("nouser") {
                format!(
                    "550 5.1.1 <{addr}>: Recipient address rejected: User unknown in virtual mailbox table"
                )
            } else if local.starts_with("full") {
                format!("452 4.2.2 <{addr}>: Mailbox full")
            } else {
                rcpts += 1;
                "250 2.1.5 Ok".to_string()
            }
        } else if upper == "DATA" {
            if rcpts == 0 {
                "554 5.5.1 Error: no valid recipients".to_string()
            } else {
                in_data = true;
                "354 End data with <CR><LF>.<CR><LF>".to_string()
            }
        } else if upper == "QUIT" {
            let _ = say(&mut s, "221 2.0.0 Bye").await;
            return;
        } else {
            "250 2.0.0 Ok".to_string()
        };
        if !say(&mut s, &reply).await {
            return;
        }
    }
}
