//! A fast fake NotifyBC API for load runs against the release binary
//! (`scripts/load-test.sh`): the benchmarks' fake (`fake_notifybc::fast`, in `crates/fake-notifybc`) in a
//! process of its own, with the same rules as the tests' fake.
//!
//! ```text
//! cargo run --release --example fake_notifybc -- [--listen 127.0.0.1:3000] [--forgetful]
//!     [--subscription ID,ADDRESS,CODE]... [--subscriptions N]
//! ```
//!
//! `--subscriptions N` adds confirmed subscriptions `1`..`N` for `load{i}@subscriber.example`
//! with the code `12345`.
//!
//! `--forgetful` counts effects without keeping them, so a load client that sends every
//! message to one recipient takes the path of a first message each time (one unsubscribe
//! call per `un` message; find, find and create per `bn` message). `GET /_stats` answers
//! the calls received, by endpoint.

use fake_notifybc::fast;
use std::net::SocketAddr;

/// The fake shares the cores with the server it feeds in a load run: the same allocator
/// keeps its share small.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn usage() -> ! {
    eprintln!(
        "usage: fake_notifybc [--listen ADDR:PORT] [--forgetful] [--workers N] [--subscription ID,ADDRESS,CODE]... [--subscriptions N]"
    );
    std::process::exit(2)
}

fn main() {
    let mut listen: SocketAddr = "127.0.0.1:3000".parse().unwrap_or_else(|_| usage());
    let mut forgetful = false;
    let mut workers = 1;
    let mut subscriptions = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--listen" => {
                listen = args
                    .next()
                    .and_then(|a| a.parse().ok())
                    .unwrap_or_else(|| usage())
            }
            "--forgetful" => forgetful = true,
            "--workers" => {
                workers = args
                    .next()
                    .and_then(|a| a.parse().ok())
                    .unwrap_or_else(|| usage())
            }
            "--subscription" => {
                let spec = args.next().unwrap_or_else(|| usage());
                let parts: Vec<&str> = spec.splitn(3, ',').collect();
                let [id, address, code] = parts[..] else {
                    usage()
                };
                subscriptions.push((id.to_string(), address.to_string(), code.to_string()));
            }
            "--subscriptions" => {
                let n: usize = args
                    .next()
                    .and_then(|a| a.parse().ok())
                    .unwrap_or_else(|| usage());
                for i in 1..=n {
                    subscriptions.push((
                        i.to_string(),
                        format!("load{i}@subscriber.example"),
                        "12345".to_string(),
                    ));
                }
            }
            _ => usage(),
        }
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
        .unwrap_or_else(|e| {
            eprintln!("fake_notifybc: cannot start the runtime: {e}");
            std::process::exit(1)
        });
    runtime.block_on(async {
        let api = match fast::FastApi::start(listen, forgetful).await {
            Ok(api) => api,
            Err(e) => {
                eprintln!("fake_notifybc: cannot listen on {listen}: {e}");
                std::process::exit(1)
            }
        };
        for (id, address, code) in &subscriptions {
            api.state.add_subscription(id, address, code);
        }
        println!("fake NotifyBC API listening on {}", api.addr);
        let _ = tokio::signal::ctrl_c().await;
    });
}
