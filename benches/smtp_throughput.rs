//! End-to-end throughput of the SMTP server with the real flows: the server runs
//! in-process (`Server::start` with the real `Processor` and API client), a fast fake
//! NotifyBC API answers over real HTTP on loopback, and N concurrent SMTP clients each send
//! messages over one persistent connection. For `un` messages, `bn` messages (one DSN per
//! subscriber) and `bn-threshold` (six DSNs per subscriber, the sixth past the default
//! threshold) at each concurrency it prints messages per second, p50/p99 transaction
//! latency, the API calls per message and the HTTP connections the API client opened (and
//! the most open at once), and checks that every effect arrived exactly once: each
//! subscription unsubscribed once; each bounced address holding one record with every
//! message stored and counted once; past the threshold, one unsubscribe from all services
//! and the record retired; and no API call beyond those §4.1 and §4.2 need. A last case
//! makes the fake API answer in 5 ms and checks that the calls in flight stay within
//! `api.max_in_flight` with every session waiting.
//!
//! `cargo bench --bench smtp_throughput` runs the full set; without `--bench` (as under
//! `cargo test --all-targets`) it does a tiny run of every case. Environment:
//! - `BENCH_CONCURRENCY` (default `1,10,50,200`)
//! - `BENCH_KINDS` (default `un,bn,bn-threshold`)
//! - `BENCH_MESSAGES`: messages per case (default 10000; at least one subscription per
//!   client)
//! - `BENCH_WORKERS`: runtime worker threads (default: available cores)
//! - `BENCH_FAKE`: the fake API's transport, `fast` (default: `fake_notifybc::fast`) or
//!   `axum` (the tests' `FakeApi`); both serve the same rules and records

#[path = "support/smtp.rs"]
mod smtp;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use fake_notifybc::fast::FastApi;
use fake_notifybc::state::ApiState;
use fake_notifybc::{CallCounts, FakeApi};
use notify_inbound::api::ApiClient;
use notify_inbound::config::{Settings, TlsMode};
use notify_inbound::flows::Processor;
use notify_inbound::metrics::Metrics;
use notify_inbound::server::Server;
use smtp::{Client, bn_message, ms, quantile, un_message};

const DOMAIN: &str = "notify.example";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// One unsubscribe per subscription.
    Un,
    /// One bounce per subscriber: the record is created (§4.2 steps 3 and 4).
    Bn,
    /// `unsub_threshold + 1` (6) bounces per subscriber, in order: the record is created,
    /// updated, and past the threshold the subscriber is unsubscribed from everything and
    /// the record retired (§4.2 step 5).
    BnThreshold,
}

/// Bounces per subscriber in [`Kind::BnThreshold`]: one past the default threshold of 5.
const THRESHOLD_BOUNCES: usize = 6;

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Un => "un",
            Kind::Bn => "bn",
            Kind::BnThreshold => "bn-threshold",
        }
    }

    /// Messages per subscription.
    fn per_subscription(self) -> usize {
        match self {
            Kind::Un | Kind::Bn => 1,
            Kind::BnThreshold => THRESHOLD_BOUNCES,
        }
    }
}

struct Plan {
    fake: FakeKind,
    concurrency: Vec<usize>,
    kinds: Vec<Kind>,
    messages: usize,
    workers: usize,
}

fn env_list(name: &str, default: &str) -> Vec<String> {
    std::env::var(name)
        .unwrap_or_else(|_| default.to_string())
        .split(',')
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

fn plan() -> Plan {
    let full = std::env::args().any(|a| a == "--bench");
    let concurrency = env_list("BENCH_CONCURRENCY", "1,10,50,200")
        .iter()
        .map(|c| c.parse().expect("BENCH_CONCURRENCY: numbers"))
        .collect();
    let kinds = env_list("BENCH_KINDS", "un,bn,bn-threshold")
        .iter()
        .map(|k| match k.as_str() {
            "un" => Kind::Un,
            "bn" => Kind::Bn,
            "bn-threshold" => Kind::BnThreshold,
            other => panic!("BENCH_KINDS: un, bn or bn-threshold, not {other}"),
        })
        .collect();
    let default_messages = if full { 10_000 } else { 20 };
    let messages = std::env::var("BENCH_MESSAGES")
        .ok()
        .map(|m| m.parse().expect("BENCH_MESSAGES: a number"))
        .unwrap_or(default_messages);
    let workers = std::env::var("BENCH_WORKERS")
        .ok()
        .map(|w| w.parse().expect("BENCH_WORKERS: a number"))
        .unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2)
        });
    let fake = match std::env::var("BENCH_FAKE").as_deref() {
        Err(_) | Ok("fast") => FakeKind::Fast,
        Ok("axum") => FakeKind::Axum,
        Ok(other) => panic!("BENCH_FAKE: fast or axum, not {other}"),
    };
    Plan {
        fake,
        concurrency,
        kinds,
        messages,
        workers,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FakeKind {
    Fast,
    Axum,
}

/// The fake API the server calls, on either transport.
enum Fake {
    Fast(FastApi),
    Axum(FakeApi),
}

impl Fake {
    async fn start(kind: FakeKind) -> Fake {
        match kind {
            FakeKind::Fast => Fake::Fast(
                FastApi::start("127.0.0.1:0".parse().expect("addr"), false)
                    .await
                    .expect("fake API starts"),
            ),
            FakeKind::Axum => Fake::Axum(FakeApi::start().await),
        }
    }

    fn state(&self) -> &ApiState {
        match self {
            Fake::Fast(api) => &api.state,
            Fake::Axum(api) => api.state(),
        }
    }

    fn host_url(&self) -> String {
        match self {
            Fake::Fast(api) => api.host_url(),
            Fake::Axum(api) => api.host_url(),
        }
    }

    fn describe(&self) -> String {
        match self {
            Fake::Fast(api) => format!("fast fake API on {}", api.addr),
            Fake::Axum(api) => format!("axum fake API on {}", api.addr()),
        }
    }
}

fn settings(api: &Fake) -> Settings {
    let toml = format!(
        "internal_http_host = '{}'\n\
         [inbound_smtp_server]\ndomain = '{DOMAIN}'\nlistening_ip = '127.0.0.1'\nlistening_smtp_port = 0\n\
         [inbound_smtp_server.limits]\nmax_connections = 100000\nmax_connections_per_ip = 100000\n\
         max_connections_per_network = 100000\nstress_threshold_percent = 0\n\
         max_transactions = 100000000\nmax_commands = 100000000\n\
         [operations]\nlisten = ''\n",
        api.host_url()
    );
    Settings::from_toml_str(&toml).expect("bench settings")
}

/// One message to send and what it must do.
struct Job {
    from: String,
    to: String,
    body: Vec<u8>,
}

struct Outcome {
    elapsed: Duration,
    latencies: Vec<Duration>,
    calls: CallCounts,
}

async fn run_case(
    kind: Kind,
    concurrency: usize,
    messages: usize,
    case: usize,
    smtp: SocketAddr,
    api: &Fake,
) -> Outcome {
    let per_sub = kind.per_subscription();
    let subscriptions = (messages / per_sub).max(concurrency).div_ceil(concurrency) * concurrency;
    let messages = subscriptions * per_sub;
    // Every subscription gets its own messages, all from one client in order, so every
    // effect can be checked and bounces for one address never race.
    let mut jobs: Vec<Vec<Job>> = (0..concurrency).map(|_| Vec::new()).collect();
    for i in 0..subscriptions {
        let id = format!("c{case}n{i}");
        let code = format!("{:05}", i % 100_000);
        let address = format!("s{case}.{i}@subscriber.example");
        api.state().add_subscription(&id, &address, &code);
        for k in 0..per_sub {
            let n = (case * 10_000_000 + i * per_sub + k) as u64;
            let job = match kind {
                Kind::Un => {
                    let to = format!("un-{id}-{code}@{DOMAIN}");
                    Job {
                        body: un_message(&address, &to, n),
                        from: address.clone(),
                        to,
                    }
                }
                Kind::Bn | Kind::BnThreshold => {
                    let to = format!("bn-{id}-{code}@{DOMAIN}");
                    Job {
                        body: bn_message(&address, &to, n),
                        from: String::new(),
                        to,
                    }
                }
            };
            jobs[i % concurrency].push(job);
        }
    }
    api.state().reset_max();
    let before = api.state().counts();
    let barrier = Arc::new(tokio::sync::Barrier::new(concurrency + 1));
    let mut tasks = Vec::new();
    for client_jobs in jobs {
        let barrier = barrier.clone();
        tasks.push(tokio::spawn(async move {
            let mut client = Client::connect(smtp).await.expect("connect");
            client.hello().await.expect("greeting and EHLO");
            barrier.wait().await;
            let mut latencies = Vec::with_capacity(client_jobs.len());
            for job in &client_jobs {
                let took = client
                    .transaction(&job.from, &job.to, &job.body)
                    .await
                    .unwrap_or_else(|e| panic!("transaction to {}: {e}", job.to));
                latencies.push(took);
            }
            client.quit().await;
            latencies
        }));
    }
    barrier.wait().await;
    let started = Instant::now();
    let mut latencies = Vec::with_capacity(messages);
    for t in tasks {
        latencies.extend(t.await.expect("client task"));
    }
    let elapsed = started.elapsed();
    latencies.sort();
    let calls = api.state().counts().since(&before);
    verify(kind, case, subscriptions, api, &calls);
    Outcome {
        elapsed,
        latencies,
        calls,
    }
}

/// Every effect arrived, exactly once, and nothing else was called.
fn verify(kind: Kind, case: usize, subscriptions: usize, api: &Fake, calls: &CallCounts) {
    let n = subscriptions as u64;
    assert_eq!(calls.refused, 0, "the fake refused calls: {calls:?}");
    for i in 0..subscriptions {
        let id = format!("c{case}n{i}");
        let address = format!("s{case}.{i}@subscriber.example");
        let sub = api.state().subscription(&id).expect("seeded subscription");
        let records = api.state().bounces_of(&address);
        match kind {
            Kind::Un => {
                assert_eq!(sub.times_unsubscribed, 1, "{id} unsubscribed once");
                assert_eq!(sub.state, "deleted");
                assert!(records.is_empty());
            }
            Kind::Bn | Kind::BnThreshold => {
                let bounces = kind.per_subscription();
                assert_eq!(records.len(), 1, "one bounce record for {address}");
                let r = &records[0];
                assert_eq!(
                    r.hard_bounce_count, bounces as u64,
                    "{address} counted once each"
                );
                assert_eq!(
                    r.bounce_messages.len(),
                    bounces,
                    "{address} holds each message once"
                );
                if kind == Kind::Bn {
                    assert_eq!(sub.times_unsubscribed, 0, "{id} below the threshold");
                    assert_eq!(r.state, "active");
                } else {
                    assert_eq!(
                        sub.times_unsubscribed, 1,
                        "{id} unsubscribed once at the threshold"
                    );
                    assert_eq!(sub.state, "deleted");
                    assert_eq!(r.state, "deleted", "{address}'s record retired");
                }
            }
        }
    }
    let calls_only = CallCounts {
        connections: 0,
        max_open: 0,
        max_in_flight: 0,
        ..*calls
    };
    let expected = match kind {
        Kind::Un => CallCounts {
            unsubscribe: n,
            ..CallCounts::default()
        },
        // §4.2 steps 3 and 4 for a first bounce: find the subscription, find no record,
        // create it.
        Kind::Bn => CallCounts {
            find_subscriptions: n,
            find_bounces: n,
            create_bounce: n,
            ..CallCounts::default()
        },
        // Six times steps 3 and 4 (one create, five updates), then step 5 once: the
        // unsubscribe from all services and the PATCH that retires the record.
        Kind::BnThreshold => CallCounts {
            find_subscriptions: 6 * n,
            find_bounces: 6 * n,
            create_bounce: n,
            patch_bounce: 5 * n + n,
            unsubscribe_all: n,
            ..CallCounts::default()
        },
    };
    assert_eq!(
        calls_only,
        expected,
        "{}: the API calls §4 needs, no more",
        kind.as_str()
    );
}

async fn bench(plan: Plan) {
    let api = Fake::start(plan.fake).await;
    let settings = Arc::new(settings(&api));
    let metrics = Arc::new(Metrics::new());
    let client = ApiClient::new(&settings)
        .expect("API client")
        .with_metrics(metrics.clone());
    let processor = Arc::new(Processor::with_client(&settings, client).expect("processor"));
    let server = Server::start(settings.clone(), processor, metrics)
        .await
        .expect("server starts");
    let smtp = server.addr(TlsMode::Starttls).expect("plain listener");

    println!(
        "smtp_throughput: in-process server, real flows, {} ({} runtime workers, {} cores)",
        api.describe(),
        plan.workers,
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0)
    );
    println!(
        "(api conns: HTTP connections the API client opened during the case / most open at once; api.max_in_flight = {})",
        settings.api.max_in_flight
    );
    println!(
        "{:<12} {:>5} {:>8} {:>7} {:>8} {:>8} {:>8} {:>9} {:>10}  effects",
        "kind", "conns", "messages", "secs", "msg/s", "p50 ms", "p99 ms", "calls/msg", "api conns"
    );
    let mut case = 0;
    for &kind in &plan.kinds {
        for &c in &plan.concurrency {
            case += 1;
            let o = run_case(kind, c, plan.messages, case, smtp, &api).await;
            let n = o.latencies.len();
            println!(
                "{:<12} {:>5} {:>8} {:>7.3} {:>8.0} {:>8} {:>8} {:>9.2} {:>10}  exactly once",
                kind.as_str(),
                c,
                n,
                o.elapsed.as_secs_f64(),
                n as f64 / o.elapsed.as_secs_f64(),
                ms(quantile(&o.latencies, 0.50)),
                ms(quantile(&o.latencies, 0.99)),
                o.calls.total() as f64 / n as f64,
                format!("{}/{}", o.calls.connections, o.calls.max_open),
            );
        }
    }
    // A slow service: the calls in flight stay within api.max_in_flight however many
    // sessions wait for it.
    let delay = Duration::from_millis(5);
    let c = plan.concurrency.iter().copied().max().unwrap_or(1);
    api.state().set_delay(delay);
    let o = run_case(Kind::Un, c, plan.messages / 5, case + 1, smtp, &api).await;
    api.state().set_delay(Duration::ZERO);
    let n = o.latencies.len();
    println!(
        "un, API answering in {} ms, {c} sessions: {n} messages, {:.0} msg/s, p50 {} ms, p99 {} ms; calls in flight at the API at most {} (api.max_in_flight = {})",
        delay.as_millis(),
        n as f64 / o.elapsed.as_secs_f64(),
        ms(quantile(&o.latencies, 0.50)),
        ms(quantile(&o.latencies, 0.99)),
        o.calls.max_in_flight,
        settings.api.max_in_flight,
    );
    assert!(
        o.calls.max_in_flight <= settings.api.max_in_flight as u64,
        "more calls in flight than api.max_in_flight"
    );
    server.shutdown(Duration::from_secs(5)).await;
}

fn main() {
    let plan = plan();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(plan.workers)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(bench(plan));
}
