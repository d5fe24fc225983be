//! Scale-out (docs/behaviour.md §1): two notify-inbound processes, the real binary, behind HAProxy in
//! round-robin. One is killed with SIGKILL while messages are in flight; a client that
//! retries like an MTA still gets every message applied exactly once, as the fake NotifyBC
//! API's state shows. HAProxy is required (scripts/ensure-proxies.sh installs it): without
//! it this test fails, it does not skip.

mod common;
mod mta;

use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::dsn::Dsn;
use common::fake_api::{FakeApi, Fault};
use common::free_port;
use mta::{Job, Outcome};
use tokio::process::{Child, Command};
use tokio::sync::Semaphore;

const DOMAIN: &str = "invalid.local";
const INSTALL: &str = "scripts/ensure-proxies.sh (or: apt-get install -y haproxy)";

fn haproxy_binary() -> String {
    common::installed_binary(
        &["haproxy", "/usr/sbin/haproxy", "/usr/local/sbin/haproxy"],
        "-v",
        INSTALL,
    )
}

/// One replica: the binary on `port`, greeting as `name`, logging to `dir/name.log`.
fn replica(fake: &FakeApi, name: &str, port: u16, dir: &Path) -> Child {
    let log = std::fs::File::create(dir.join(format!("{name}.log"))).unwrap();
    common::serve_command(&fake.host_url(), DOMAIN, port)
        .env("NOTIFY_INBOUND__INBOUND_SMTP_SERVER__HOSTNAME", name)
        .env(
            "NOTIFY_INBOUND__INBOUND_SMTP_SERVER__LIMITS__MAX_CONNECTIONS_PER_IP",
            "200",
        )
        .env("NOTIFY_INBOUND__API__TIMEOUT_MS", "5000")
        .current_dir(dir)
        .stdin(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("the notify-inbound binary starts")
}

/// HAProxy on `listen`, round-robin over the two replicas, checking them every 100 ms and
/// sending a new connection elsewhere when its server refuses it.
fn haproxy(listen: u16, backends: [u16; 2], dir: &Path) -> Child {
    let config = format!(
        "global\n    pidfile {dir}/haproxy.pid\n    maxconn 512\n\
         defaults\n    mode tcp\n    timeout connect 2s\n    timeout client 60s\n    timeout server 60s\n\
         \x20   retries 3\n    option redispatch\n\
         frontend smtp\n    bind 127.0.0.1:{listen}\n    default_backend replicas\n\
         backend replicas\n    balance roundrobin\n\
         \x20   server a 127.0.0.1:{a} check inter 100ms fall 1 rise 2\n\
         \x20   server b 127.0.0.1:{b} check inter 100ms fall 1 rise 2\n",
        dir = dir.display(),
        a = backends[0],
        b = backends[1],
    );
    let path = dir.join("haproxy.cfg");
    std::fs::write(&path, config).unwrap();
    let binary = haproxy_binary();
    let check = std::process::Command::new(&binary)
        .arg("-c")
        .arg("-f")
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "haproxy -c: {}",
        String::from_utf8_lossy(&check.stderr)
    );
    let log = std::fs::File::create(dir.join("haproxy.log")).unwrap();
    Command::new(binary)
        .arg("-db")
        .arg("-f")
        .arg(&path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .expect("haproxy starts")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_behind_haproxy_one_killed_under_load_every_message_applied_once() {
    let dir = tempfile::tempdir().unwrap();
    let fake = Arc::new(FakeApi::start().await);
    let (port_a, port_b, front) = (free_port(), free_port(), free_port());
    let mut a = replica(&fake, "replica-a.invalid.local", port_a, dir.path());
    let _b = replica(&fake, "replica-b.invalid.local", port_b, dir.path());
    mta::wait_greeting_from(port_a, "replica-a").await;
    mta::wait_greeting_from(port_b, "replica-b").await;
    let _proxy = haproxy(front, [port_a, port_b], dir.path());
    mta::wait_greeting_from(front, "replica-").await;
    let front_addr = format!("127.0.0.1:{front}").parse().unwrap();

    // 300 messages: 150 unsubscribes and 150 bounces, each for its own subscriber (the
    // replicas share only the API, so one address's bounces are not sent concurrently).
    let mut jobs = Vec::new();
    let mut un_ids = Vec::new();
    let mut bn_addresses = Vec::new();
    for n in 0..150 {
        let address = format!("u{n}@foo.com");
        let id = fake.add_subscription("un", &address, "12345");
        jobs.push(Job {
            from: address.clone(),
            to: format!("un-{id}-12345@{DOMAIN}"),
            message: format!("From: {address}\r\nSubject: unsubscribe\r\n\r\nplease\r\n"),
        });
        un_ids.push(id);
        let bounced = format!("b{n}@foo.com");
        let id = fake.add_subscription("bn", &bounced, "777");
        jobs.push(Job {
            from: String::new(),
            to: format!("bn-{id}-777@{DOMAIN}"),
            message: Dsn {
                message_id: Some(&format!("<scale-{n}@mta>")),
                final_recipient: &bounced,
                ..Dsn::default()
            }
            .build(),
        });
        bn_addresses.push(bounced);
    }
    // Every API call takes a little while, so transactions are in flight at the kill.
    fake.fail_all(Fault::Slow(Duration::from_millis(40)));

    let done = Arc::new(AtomicUsize::new(0));
    let sending = Arc::new(Semaphore::new(12));
    let mut tasks = Vec::new();
    for job in jobs {
        let (done, sending) = (done.clone(), sending.clone());
        tasks.push(tokio::spawn(async move {
            let mut attempts = Vec::new();
            loop {
                let (outcome, greeting) = {
                    let _slot = sending.acquire().await.unwrap();
                    mta::attempt_from(front_addr, None, &job).await
                };
                let delivered = outcome == Outcome::Delivered;
                assert!(
                    delivered || outcome.is_retryable(),
                    "{job:?} refused: {outcome:?}"
                );
                attempts.push((outcome, greeting));
                if delivered {
                    done.fetch_add(1, Ordering::SeqCst);
                    return attempts;
                }
                assert!(attempts.len() < 30, "{job:?}: {attempts:?}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }));
    }

    // Kill replica A with SIGKILL once a third of the messages are through.
    while done.load(Ordering::SeqCst) < 100 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    a.start_kill().unwrap();
    let status = a.wait().await.unwrap();
    assert!(!status.success(), "replica A was killed: {status:?}");
    let killed_at = done.load(Ordering::SeqCst);

    let mut interrupted = 0;
    let mut served_by = [0usize; 2];
    for t in tasks {
        let attempts = tokio::time::timeout(Duration::from_secs(120), t)
            .await
            .expect("every message delivered within 2 minutes")
            .expect("delivery task");
        interrupted += attempts
            .iter()
            .filter(|(o, _)| matches!(o, Outcome::Dropped(_)))
            .count();
        for (o, greeting) in &attempts {
            if *o == Outcome::Delivered {
                served_by[usize::from(greeting.contains("replica-b"))] += 1;
            }
        }
    }
    assert!(killed_at < 300, "the kill came before the end of the load");
    assert!(
        interrupted > 0,
        "no transaction was cut by the kill; the test proved nothing"
    );
    assert!(
        served_by[0] > 0 && served_by[1] > 0,
        "both replicas served: {served_by:?}"
    );

    fake.clear_faults();
    for id in &un_ids {
        let s = fake.subscription(id).unwrap();
        assert_eq!(
            (s.state.as_str(), s.times_unsubscribed),
            ("deleted", 1),
            "{s:?}"
        );
    }
    for address in &bn_addresses {
        let records = fake.bounces_of(address);
        assert_eq!(records.len(), 1, "{address}: {records:?}");
        assert_eq!(
            (
                records[0].hard_bounce_count,
                records[0].bounce_messages.len()
            ),
            (1, 1),
            "{address}"
        );
    }
    assert_eq!(fake.bounces().len(), 150);
}
