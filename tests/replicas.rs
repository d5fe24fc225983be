//! Several replicas (README, "Several replicas"): two notify-inbound processes, the real
//! binary, share one fake NotifyBC API slowed to 20 ms a call and one real redis-server
//! (`[coordination] redis_url`, with a password given through the environment as a
//! deployment passes it from a Secret). Bounces for one address sent to both at once must
//! be counted exactly once each; with Redis stopped mid-run nothing is counted without the
//! lock (451s while it is down) and the senders' retries bring the count to exactly the
//! number of distinct bounces once it is back, whether it was killed (locks forgotten) or
//! frozen with SIGSTOP (connections hang, locks kept).
//!
//! The tests start their own redis-server on a free loopback port, without persistence, in
//! a temporary directory; without redis-server installed they fail with the install line.

mod common;
mod mta;

use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use common::dsn::Dsn;
use common::fake_api::{FakeApi, Fault};
use common::free_port;
use mta::{Job, Outcome};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};
use tokio::time::Instant;

const DOMAIN: &str = "invalid.local";
const INSTALL: &str = "scripts/ensure-redis.sh (or: apt-get install -y redis-server)";
const PASSWORD: &str = "s3cret-redis-pw";
const BOUNCED: &str = "bounced@foo.com";

fn redis_binary() -> String {
    common::installed_binary(
        &[
            "redis-server",
            "/usr/bin/redis-server",
            "/usr/local/bin/redis-server",
        ],
        "--version",
        INSTALL,
    )
}

/// A redis-server of the test's own: loopback, a password, no persistence.
struct Redis {
    port: u16,
    dir: std::path::PathBuf,
    child: Option<Child>,
}

impl Redis {
    async fn start(dir: &Path) -> Redis {
        let mut redis = Redis {
            port: free_port(),
            dir: dir.to_path_buf(),
            child: None,
        };
        redis.spawn().await;
        redis
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    async fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("redis.log"))
            .unwrap();
        let child = Command::new(redis_binary())
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1"])
            .args(["--save", ""])
            .args(["--appendonly", "no"])
            .args(["--requirepass", PASSWORD])
            .arg("--dir")
            .arg(&self.dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .expect("redis-server starts");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if self.ping().await {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!(
            "redis-server did not answer on port {} within 20 s; its log:\n{}",
            self.port,
            std::fs::read_to_string(self.dir.join("redis.log")).unwrap_or_default()
        );
    }

    /// AUTH and PING over a raw socket: true on `+OK` and `+PONG`.
    async fn ping(&self) -> bool {
        let talk = async {
            let mut s = TcpStream::connect(("127.0.0.1", self.port)).await.ok()?;
            s.write_all(format!("AUTH {PASSWORD}\r\nPING\r\n").as_bytes())
                .await
                .ok()?;
            let mut got = Vec::new();
            let mut buf = [0u8; 64];
            while !got.ends_with(b"+PONG\r\n") {
                let n = s.read(&mut buf).await.ok()?;
                if n == 0 {
                    return None;
                }
                got.extend_from_slice(&buf[..n]);
            }
            Some(got.starts_with(b"+OK\r\n"))
        };
        tokio::time::timeout(Duration::from_secs(1), talk)
            .await
            .ok()
            .flatten()
            .unwrap_or(false)
    }

    /// Sends a signal (`STOP`, `CONT`) to the server.
    fn signal(&self, name: &str) {
        let pid = self
            .child
            .as_ref()
            .and_then(Child::id)
            .expect("redis-server runs");
        let status = std::process::Command::new("kill")
            .arg(format!("-{name}"))
            .arg(pid.to_string())
            .status()
            .unwrap();
        assert!(status.success(), "kill -{name} {pid}");
    }

    /// SIGKILL: the harshest stop, every lock forgotten.
    async fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.start_kill().unwrap();
            let _ = tokio::time::timeout(Duration::from_secs(10), child.wait())
                .await
                .expect("redis-server ends within 10 s after SIGKILL");
        }
        assert!(!self.ping().await, "redis-server is down");
    }
}

/// How a replica is set up for Redis: the server, and how long a message may wait for its
/// address's lock.
#[derive(Clone, Copy)]
struct Coordination<'a> {
    redis: &'a Redis,
    acquire_timeout_ms: u64,
}

/// One replica: the binary on `port`, greeting as `name`, logging to `dir/name.log`.
fn replica(
    fake: &FakeApi,
    name: &str,
    port: u16,
    dir: &Path,
    coordination: Option<Coordination<'_>>,
) -> Child {
    let log = std::fs::File::create(dir.join(format!("{name}.log"))).unwrap();
    let mut command = common::serve_command(&fake.host_url(), DOMAIN, port);
    command
        .env("NOTIFY_INBOUND__INBOUND_SMTP_SERVER__HOSTNAME", name)
        .env(
            "NOTIFY_INBOUND__INBOUND_SMTP_SERVER__LIMITS__MAX_CONNECTIONS_PER_IP",
            "200",
        )
        // The count must be free to reach every bounce sent: no threshold unsubscribe.
        .env("NOTIFY_INBOUND__BOUNCE__UNSUB_THRESHOLD", "1000")
        // 1 s: the lock expiry derived from it is 13 s, so a lock left behind by an outage
        // lapses within the test's time.
        .env("NOTIFY_INBOUND__API__TIMEOUT_MS", "1000")
        .env("NOTIFY_INBOUND__LOG__LEVEL", "info")
        .current_dir(dir)
        .stdin(Stdio::null())
        .stderr(log);
    if let Some(c) = coordination {
        command
            .env("NOTIFY_INBOUND__COORDINATION__REDIS_URL", c.redis.url())
            .env("NOTIFY_INBOUND__COORDINATION__REDIS_PASSWORD", PASSWORD)
            .env(
                "NOTIFY_INBOUND__COORDINATION__LOCK_ACQUIRE_TIMEOUT_MS",
                c.acquire_timeout_ms.to_string(),
            )
            .env("NOTIFY_INBOUND__COORDINATION__REDIS_TIMEOUT_MS", "500");
    }
    command.spawn().expect("the notify-inbound binary starts")
}

/// Two replicas sharing `fake` (and Redis when given); their SMTP addresses.
async fn two_replicas(
    fake: &FakeApi,
    dir: &Path,
    coordination: Option<Coordination<'_>>,
) -> ([SocketAddr; 2], [Child; 2]) {
    let (port_a, port_b) = (free_port(), free_port());
    let a = replica(fake, "replica-a.invalid.local", port_a, dir, coordination);
    let b = replica(fake, "replica-b.invalid.local", port_b, dir, coordination);
    mta::wait_greeting_from(port_a, "replica-a").await;
    mta::wait_greeting_from(port_b, "replica-b").await;
    let addr = |p: u16| format!("127.0.0.1:{p}").parse().unwrap();
    ([addr(port_a), addr(port_b)], [a, b])
}

/// `n` distinct hard bounces (each its own Message-ID) for one subscription's address.
fn bounces(fake: &FakeApi, n: usize, tag: &str) -> Vec<Job> {
    let id = fake.add_subscription("bn", BOUNCED, "777");
    (0..n)
        .map(|i| Job {
            from: String::new(),
            to: format!("bn-{id}-777@{DOMAIN}"),
            message: Dsn {
                message_id: Some(&format!("<{tag}-{i}@mta.invalid.local>")),
                final_recipient: BOUNCED,
                ..Dsn::default()
            }
            .build(),
        })
        .collect()
}

/// One attempt as the sender saw it.
#[derive(Debug, Clone)]
struct Attempt {
    started: Instant,
    ended: Instant,
    outcome: Outcome,
}

/// Sends every job at once, half to each replica, each retried like an MTA (a 4xx or a
/// dropped connection: try again after `backoff`) until delivered; panics on a 5xx or
/// when a job is not through in `within`.
async fn send_all(
    jobs: Vec<Job>,
    servers: [SocketAddr; 2],
    backoff: Duration,
    within: Duration,
) -> Vec<Vec<Attempt>> {
    let mut tasks = Vec::new();
    for (i, job) in jobs.into_iter().enumerate() {
        let server = servers[i % 2];
        tasks.push(tokio::spawn(async move {
            let mut attempts = Vec::new();
            loop {
                let started = Instant::now();
                let (outcome, _) = mta::attempt_from(server, None, &job).await;
                let delivered = outcome == Outcome::Delivered;
                assert!(
                    delivered || outcome.is_retryable(),
                    "job {i} refused: {outcome:?}"
                );
                attempts.push(Attempt {
                    started,
                    ended: Instant::now(),
                    outcome,
                });
                if delivered {
                    return attempts;
                }
                tokio::time::sleep(backoff).await;
            }
        }));
    }
    let mut all = Vec::new();
    for (i, task) in tasks.into_iter().enumerate() {
        let attempts = tokio::time::timeout(within, task)
            .await
            .unwrap_or_else(|_| panic!("job {i} not delivered within {within:?}"))
            .expect("sender task");
        all.push(attempts);
    }
    all
}

fn logs(dir: &Path) -> String {
    let mut out = String::new();
    for name in [
        "replica-a.invalid.local.log",
        "replica-b.invalid.local.log",
        "redis.log",
    ] {
        let text = std::fs::read_to_string(dir.join(name)).unwrap_or_default();
        out.push_str(&format!("--- {name}\n{text}\n"));
    }
    out
}

/// The active records of the bounced address and their counts, for the report.
fn figures(fake: &FakeApi) -> String {
    let records = fake.bounces_of(BOUNCED);
    let counts: Vec<(String, u64, usize)> = records
        .iter()
        .map(|b| {
            (
                b.state.clone(),
                b.hard_bounce_count,
                b.bounce_messages.len(),
            )
        })
        .collect();
    format!(
        "{} bounce record(s) (state, hardBounceCount, bounceMessages): {counts:?}",
        records.len()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_with_redis_count_ten_concurrent_bounces_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let redis = Redis::start(dir.path()).await;
    let fake = FakeApi::start().await;
    let coordination = Coordination {
        redis: &redis,
        // The default: a message waits up to 10 s behind the others for its address.
        acquire_timeout_ms: 10_000,
    };
    let (servers, _replicas) = two_replicas(&fake, dir.path(), Some(coordination)).await;
    fake.fail_all(Fault::Slow(Duration::from_millis(20)));

    let jobs = bounces(&fake, 10, "together");
    let attempts = send_all(
        jobs,
        servers,
        Duration::from_millis(200),
        Duration::from_secs(60),
    )
    .await;
    fake.clear_faults();

    let report = figures(&fake);
    eprintln!("with coordination: {report}");
    let records = fake.bounces_of(BOUNCED);
    assert_eq!(records.len(), 1, "{report}\n{}", logs(dir.path()));
    assert_eq!(
        (
            records[0].state.as_str(),
            records[0].hard_bounce_count,
            records[0].bounce_messages.len()
        ),
        ("active", 10, 10),
        "{report}\n{}",
        logs(dir.path())
    );
    // Nothing needed a retry: the lock queues the messages rather than refusing them.
    let retried: Vec<_> = attempts.iter().filter(|a| a.len() > 1).collect();
    assert!(retried.is_empty(), "{retried:?}\n{}", logs(dir.path()));
    let logged = logs(dir.path());
    assert!(
        logged.contains("serialised across replicas through Redis"),
        "{logged}"
    );
    assert!(!logged.contains(PASSWORD), "the Redis password was logged");
}

#[test]
fn check_config_shows_coordination_with_the_password_redacted() {
    let run = |env: &[(&str, &str)]| {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_notify-inbound"));
        command.arg("check-config").env_remove("RUST_LOG");
        for (k, v) in env {
            command.env(k, v);
        }
        let dir = tempfile::tempdir().unwrap();
        command.current_dir(dir.path()).output().unwrap()
    };
    let out = run(&[
        (
            "NOTIFY_INBOUND__COORDINATION__REDIS_URL",
            "redis://:in-the-url@notify-bc-redis-master:6379/0",
        ),
        ("NOTIFY_INBOUND__COORDINATION__REDIS_PASSWORD", PASSWORD),
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("[coordination]")
            && stdout.contains("redis_password = \"<redacted>\"")
            && stdout.contains("redis://:redacted@notify-bc-redis-master:6379/0"),
        "{stdout}"
    );
    assert!(
        !stdout.contains(PASSWORD) && !stdout.contains("in-the-url"),
        "{stdout}"
    );

    // An expiry shorter than the work under the lock is refused at start, by name.
    let out = run(&[
        (
            "NOTIFY_INBOUND__COORDINATION__REDIS_URL",
            "redis://127.0.0.1:6379/0",
        ),
        ("NOTIFY_INBOUND__API__TIMEOUT_MS", "10000"),
        ("NOTIFY_INBOUND__COORDINATION__LOCK_EXPIRY_MS", "30000"),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("coordination.lock_expiry_ms") && stderr.contains("80000"),
        "{stderr}"
    );
}

/// How Redis goes away in the middle of a run.
#[derive(Debug, Clone, Copy)]
enum Outage {
    /// SIGKILL, then a new server: every lock forgotten.
    Killed,
    /// SIGSTOP, then SIGCONT: connections hang, and the locks are still there after.
    Frozen,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_killed_mid_run_gives_451s_and_the_retries_count_each_bounce_once() {
    redis_outage_mid_run(Outage::Killed).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_frozen_mid_run_gives_451s_and_the_retries_count_each_bounce_once() {
    redis_outage_mid_run(Outage::Frozen).await;
}

async fn redis_outage_mid_run(how: Outage) {
    let dir = tempfile::tempdir().unwrap();
    let mut redis = Redis::start(dir.path()).await;
    let fake = Arc::new(FakeApi::start().await);
    let coordination = Coordination {
        redis: &redis,
        // Short, so that the 451s come back while Redis is down.
        acquire_timeout_ms: 1_000,
    };
    let (servers, _replicas) = two_replicas(&fake, dir.path(), Some(coordination)).await;
    fake.fail_all(Fault::Slow(Duration::from_millis(20)));

    const N: usize = 30;
    let jobs = bounces(&fake, N, "outage");
    let sending = tokio::spawn(send_all(
        jobs,
        servers,
        Duration::from_millis(150),
        Duration::from_secs(120),
    ));

    // Take Redis away once some bounces are counted, for 3 s, then bring it back.
    let deadline = Instant::now() + Duration::from_secs(30);
    while fake
        .bounces_of(BOUNCED)
        .first()
        .is_none_or(|b| b.hard_bounce_count < 5)
    {
        assert!(
            Instant::now() < deadline,
            "no 5 bounces counted in 30 s: {}\n{}",
            figures(&fake),
            logs(dir.path())
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    match how {
        Outage::Killed => redis.kill().await,
        Outage::Frozen => redis.signal("STOP"),
    }
    let down_from = Instant::now();
    let counted_at_kill = fake.bounces_of(BOUNCED)[0].hard_bounce_count;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let counted_while_down = fake.bounces_of(BOUNCED)[0].hard_bounce_count;
    let down_until = Instant::now();
    match how {
        Outage::Killed => redis.spawn().await,
        Outage::Frozen => redis.signal("CONT"),
    }

    let attempts = tokio::time::timeout(Duration::from_secs(150), sending)
        .await
        .expect("the senders finish")
        .expect("sender task");
    fake.clear_faults();

    let report = figures(&fake);
    let all: Vec<&Attempt> = attempts.iter().flatten().collect();
    // An attempt wholly inside the outage could not take the lock: 451, never 250.
    let inside: Vec<&&Attempt> = all
        .iter()
        .filter(|a| a.started >= down_from && a.ended <= down_until)
        .collect();
    eprintln!(
        "Redis {how:?}: counted {counted_at_kill} when it went, {counted_while_down} after 3 s \
         away; {} attempts wholly inside the outage; {} attempts in all for {N} bounces; \
         {report}",
        inside.len(),
        all.len()
    );
    assert!(
        inside.len() >= 4,
        "the senders kept trying during the outage: {inside:?}"
    );
    for a in &inside {
        match &a.outcome {
            Outcome::Temporary(reply) => assert!(reply.starts_with("451 4.3.0"), "{reply}"),
            other => panic!(
                "an attempt during the outage got {other:?}\n{}",
                logs(dir.path())
            ),
        }
    }
    // Bounces whose lock was taken before the kill finish (at most one per replica is
    // that far along); nothing is counted after that until Redis is back.
    assert!(
        counted_while_down <= counted_at_kill + 2,
        "counted while Redis was down: {counted_at_kill} -> {counted_while_down}"
    );
    let records = fake.bounces_of(BOUNCED);
    assert_eq!(records.len(), 1, "{report}\n{}", logs(dir.path()));
    assert_eq!(
        (
            records[0].state.as_str(),
            records[0].hard_bounce_count,
            records[0].bounce_messages.len()
        ),
        ("active", N as u64, N),
        "{report}\n{}",
        logs(dir.path())
    );
    let retried = attempts.iter().filter(|a| a.len() > 1).count();
    assert!(retried > 0, "some bounces were retried after a 451");
}

/// The lock itself against a real Redis, as two replicas would use it: a held lock makes
/// the other wait and give up at its deadline; a lock whose holder outlives the expiry
/// passes to the other, and the late holder's release neither deletes the new holding nor
/// goes unnoticed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lock_is_exclusive_until_it_expires_and_only_its_holder_deletes_it() {
    use notify_inbound::config::Settings;
    use notify_inbound::coordination::{LockError, RedisLocks};
    use notify_inbound::metrics::Metrics;

    let dir = tempfile::tempdir().unwrap();
    let redis = Redis::start(dir.path()).await;
    // api.timeout_ms = 50 allows an expiry as short as 400 ms.
    let settings = Settings::from_toml_str(&format!(
        "[api]\ntimeout_ms = 50\n[coordination]\nredis_url = '{}'\nredis_password = '{PASSWORD}'\n\
         lock_expiry_ms = 400\nredis_timeout_ms = 1000\n",
        redis.url()
    ))
    .unwrap();
    let replica = |metrics: &Arc<Metrics>| {
        let locks = Arc::new(RedisLocks::from_settings(&settings).unwrap().unwrap());
        locks.set_metrics(metrics.clone());
        locks
    };
    let (metrics_a, metrics_b) = (Arc::new(Metrics::new()), Arc::new(Metrics::new()));
    let (a, b) = (replica(&metrics_a), replica(&metrics_b));
    let soon = || Instant::now() + Duration::from_millis(150);

    let held_by_a = a.acquire(BOUNCED, soon()).await.expect("a takes the lock");
    match b.acquire(BOUNCED, soon()).await {
        // It retries until shortly before the deadline.
        Err(LockError::Busy { waited_ms }) => assert!(waited_ms >= 50, "{waited_ms}"),
        other => panic!("b must wait and give up: {other:?}"),
    }
    // Another address is not blocked.
    let other = b
        .acquire("other@foo.com", soon())
        .await
        .expect("another address");
    b.release(other).await;

    // A outlives the expiry: B gets the lock, and A's late release leaves it to B.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let held_by_b = b
        .acquire(BOUNCED, soon())
        .await
        .expect("b takes the expired lock");
    a.release(held_by_a).await;
    match a.acquire(BOUNCED, soon()).await {
        Err(LockError::Busy { .. }) => {}
        other => panic!("b still holds the lock after a's late release: {other:?}"),
    }
    b.release(held_by_b).await;
    let again = a
        .acquire(BOUNCED, soon())
        .await
        .expect("free once b released it");
    a.release(again).await;

    let has = |m: &Metrics, line: &str| m.encode().lines().any(|l| l == line);
    for line in [
        r#"notify_inbound_coordination_lock_acquisitions_total{result="acquired"} 2"#,
        r#"notify_inbound_coordination_lock_acquisitions_total{result="busy"} 1"#,
        r#"notify_inbound_coordination_lock_releases_total{result="expired"} 1"#,
        r#"notify_inbound_coordination_lock_releases_total{result="released"} 1"#,
        r#"notify_inbound_coordination_redis_errors_total{op="acquire"} 0"#,
    ] {
        assert!(has(&metrics_a, line), "a: {line}\n{}", metrics_a.encode());
    }
    for line in [
        r#"notify_inbound_coordination_lock_acquisitions_total{result="acquired"} 2"#,
        r#"notify_inbound_coordination_lock_acquisitions_total{result="busy"} 1"#,
        r#"notify_inbound_coordination_lock_releases_total{result="released"} 2"#,
    ] {
        assert!(has(&metrics_b, line), "b: {line}\n{}", metrics_b.encode());
    }
}
