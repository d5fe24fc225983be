//! End-to-end throughput of the SMTP server with the real flows: the server runs
//! in-process (`Server::start` with the real `Processor` and API client), a fast fake
//! NotifyBC API answers over real HTTP on loopback, and N concurrent SMTP clients each send
//! messages over one persistent connection. For `un` and `bn` messages at each concurrency
//! it prints messages per second, p50/p99 transaction latency and the API calls per
//! message, and checks that every effect arrived exactly once (each subscription
//! unsubscribed once; each bounced address holding one record, counted once, with the
//! message stored).
//!
//! `cargo bench --bench smtp_throughput` runs the full set; without `--bench` (as under
//! `cargo test --all-targets`) it does a tiny run of every case. Environment:
//! - `BENCH_CONCURRENCY` (default `1,10,50,200`)
//! - `BENCH_KINDS` (default `un,bn`)
//! - `BENCH_MESSAGES`: messages per case (default 10000; at least 2 per client)
//! - `BENCH_WORKERS`: runtime worker threads (default: available cores)

#[path = "support/fast_api.rs"]
mod fast_api;
#[path = "support/smtp.rs"]
mod smtp;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use fast_api::{CallCounts, FastApi};
use notify_inbound::api::ApiClient;
use notify_inbound::config::{Settings, TlsMode};
use notify_inbound::flows::Processor;
use notify_inbound::metrics::Metrics;
use notify_inbound::server::Server;
use smtp::{Client, bn_message, ms, quantile, un_message};

const DOMAIN: &str = "notify.example";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Un,
    Bn,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Un => "un",
            Kind::Bn => "bn",
        }
    }
}

struct Plan {
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
    let kinds = env_list("BENCH_KINDS", "un,bn")
        .iter()
        .map(|k| match k.as_str() {
            "un" => Kind::Un,
            "bn" => Kind::Bn,
            other => panic!("BENCH_KINDS: un or bn, not {other}"),
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
    Plan {
        concurrency,
        kinds,
        messages,
        workers,
    }
}

fn settings(api: &FastApi) -> Settings {
    let toml = format!(
        "internal_http_host = '{}'\n\
         [inbound_smtp_server]\ndomain = '{DOMAIN}'\nlistening_ip = '127.0.0.1'\nlistening_smtp_port = 0\n\
         [inbound_smtp_server.limits]\nmax_connections = 100000\nmax_connections_per_ip = 100000\n\
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
    api: &FastApi,
) -> Outcome {
    let messages = messages.max(concurrency * 2);
    let per_client = messages.div_ceil(concurrency);
    let messages = per_client * concurrency;
    // Every message has its own subscription, so every effect can be checked.
    let mut jobs: Vec<Vec<Job>> = (0..concurrency).map(|_| Vec::new()).collect();
    for i in 0..messages {
        let id = format!("c{case}n{i}");
        let code = format!("{:05}", i % 100_000);
        let address = format!("s{case}.{i}@subscriber.example");
        api.state.add_subscription(&id, &address, &code);
        let n = (case * 1_000_000 + i) as u64;
        let job = match kind {
            Kind::Un => {
                let to = format!("un-{id}-{code}@{DOMAIN}");
                Job {
                    body: un_message(&address, &to, n),
                    from: address,
                    to,
                }
            }
            Kind::Bn => {
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
    let before = api.state.counts();
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
    let calls = api.state.counts().since(&before);
    verify(kind, case, messages, api, &calls);
    Outcome {
        elapsed,
        latencies,
        calls,
    }
}

/// Every effect arrived, exactly once, and nothing else was called.
fn verify(kind: Kind, case: usize, messages: usize, api: &FastApi, calls: &CallCounts) {
    let n = messages as u64;
    assert_eq!(calls.refused, 0, "the fake refused calls: {calls:?}");
    for i in 0..messages {
        let id = format!("c{case}n{i}");
        let address = format!("s{case}.{i}@subscriber.example");
        let sub = api.state.subscription(&id).expect("seeded subscription");
        match kind {
            Kind::Un => {
                assert_eq!(sub.unsubscribed, 1, "{id} unsubscribed once");
                assert_eq!(sub.state, "deleted");
            }
            Kind::Bn => {
                assert_eq!(sub.unsubscribed, 0, "{id} below the threshold");
                let records = api.state.bounces_of(&address);
                assert_eq!(records.len(), 1, "one bounce record for {address}");
                let r = &records[0];
                assert_eq!(r.hard_bounce_count, 1, "{address} counted once");
                assert_eq!(r.messages.len(), 1, "{address} holds the message once");
                assert_eq!(r.state, "active");
            }
        }
    }
    match kind {
        Kind::Un => assert_eq!(
            *calls,
            CallCounts {
                unsubscribe: n,
                ..CallCounts::default()
            },
            "un: one unsubscribe call per message"
        ),
        Kind::Bn => assert_eq!(
            *calls,
            CallCounts {
                find_subscriptions: n,
                find_bounces: n,
                create_bounce: n,
                ..CallCounts::default()
            },
            "bn: §4.2 steps 3 and 4 (a first bounce: find, find, create)"
        ),
    }
}

async fn bench(plan: Plan) {
    let api = FastApi::start("127.0.0.1:0".parse().expect("addr"), false)
        .await
        .expect("fake API starts");
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
        "smtp_throughput: in-process server, real flows, fast fake API on {} ({} runtime workers, {} cores)",
        api.addr,
        plan.workers,
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0)
    );
    println!(
        "{:<4} {:>5} {:>8} {:>8} {:>10} {:>9} {:>9} {:>10}  effects",
        "kind", "conns", "messages", "secs", "msg/s", "p50 ms", "p99 ms", "calls/msg"
    );
    let mut case = 0;
    for &kind in &plan.kinds {
        for &c in &plan.concurrency {
            case += 1;
            let o = run_case(kind, c, plan.messages, case, smtp, &api).await;
            let n = o.latencies.len();
            println!(
                "{:<4} {:>5} {:>8} {:>8.3} {:>10.0} {:>9} {:>9} {:>10.2}  exactly once",
                kind.as_str(),
                c,
                n,
                o.elapsed.as_secs_f64(),
                n as f64 / o.elapsed.as_secs_f64(),
                ms(quantile(&o.latencies, 0.50)),
                ms(quantile(&o.latencies, 0.99)),
                o.calls.total() as f64 / n as f64,
            );
        }
    }
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
