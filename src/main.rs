//! The `notify-inbound` command: `serve` (the default), `check-config` and `classify`
//! (the README's Bounce classification and Configuration sections).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use mimalloc::MiMalloc;
use notify_inbound::api::ApiClient;
use notify_inbound::classify::OutputFormat;
use notify_inbound::config::{RawSettings, Settings, Sources};
use notify_inbound::flows::Processor;
use notify_inbound::metrics::Metrics;
use notify_inbound::ops::{self, ApiMonitor, HttpApiProbe, OpsState, Readiness};
use notify_inbound::server::Server;

/// Most of the work per message is short-lived allocations spread over the runtime's
/// threads (MIME parts, HTTP buffers, request bodies), where mimalloc's thread-local free
/// lists cost a fraction of the system allocator's locked arenas.
#[global_allocator]
static GLOBAL: MiMalloc = MiMalloc;

/// mimalloc's defaults favour speed over a small footprint: it places its arenas where
/// the kernel can back them with transparent huge pages, so a little use of a region
/// makes 2 MiB of it resident, and it returns freed memory to the system only after a
/// delay. A mail server mostly holds idle connections and sees bursts: here memory is
/// backed page by page and returned at once (measured: a few `madvise` calls per thousand
/// messages, and 10,000 idle sessions in 45 MiB instead of 52).
fn tune_allocator() {
    // What mimalloc itself does for `MIMALLOC_ALLOW_THP=0`, which it reads only at
    // process start, before `main`; the arenas it reserves later get normal pages.
    // SAFETY: prctl with PR_SET_THP_DISABLE takes no pointers; it only sets a flag on
    // this process.
    unsafe {
        libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
    }
    // The option number is `mi_option_purge_delay` in mimalloc.h's `mi_option_e` (the
    // same in mimalloc 2 and 3); it is read whenever memory is freed.
    const PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;
    // SAFETY: setting an option is a plain store into mimalloc's option table.
    unsafe {
        libmimalloc_sys::mi_option_set(PURGE_DELAY, 0);
    }
}

#[derive(Parser)]
#[command(
    name = "notify-inbound",
    version,
    about = "Receive-only SMTP server for NotifyBC: list-unsubscribe by email and bounces"
)]
struct Cli {
    /// Configuration file layered over the defaults (instead of ./config.local.toml).
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the SMTP server(s) (the default).
    Serve,
    /// Validate and print the effective configuration, secrets redacted.
    CheckConfig,
    /// Run the bounce classifier offline on .eml files, directories, maildirs, mbox files or - (stdin).
    Classify {
        #[arg(long, value_enum, default_value = "text")]
        format: OutputFormat,
        /// Print the reasoning of the decision for each message (text format).
        #[arg(long)]
        explain: bool,
        #[arg(required = true, value_name = "PATH")]
        paths: Vec<String>,
    },
}

fn main() -> ExitCode {
    tune_allocator();
    let cli = Cli::parse();
    let sources = Sources {
        file: cli.config.clone(),
        env: true,
    };
    let (raw, settings) = match RawSettings::load(&sources).and_then(|raw| {
        let settings = raw.validate()?;
        Ok((raw, settings))
    }) {
        Ok(loaded) => loaded,
        Err(e) => {
            eprintln!("notify-inbound: {e}");
            return ExitCode::from(2);
        }
    };
    match cli.command.unwrap_or(Command::Serve) {
        Command::CheckConfig => match toml::to_string_pretty(&raw.redacted()) {
            Ok(text) => {
                println!("# configuration is valid\n{text}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("notify-inbound: cannot print the configuration: {e}");
                ExitCode::FAILURE
            }
        },
        Command::Classify {
            format,
            explain,
            paths,
        } => {
            let ok = notify_inbound::classify::run_cli_explained(
                &settings,
                format,
                explain,
                &paths,
                &mut std::io::stdout().lock(),
                &mut std::io::stderr().lock(),
            );
            if ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Command::Serve => serve(settings),
    }
}

fn serve(settings: Settings) -> ExitCode {
    let _log = match notify_inbound::logging::init(&settings.log) {
        Ok(guard) => guard,
        Err(e) => {
            eprintln!("notify-inbound: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("notify-inbound: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(settings)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("notify-inbound: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(settings: Settings) -> Result<(), Box<dyn std::error::Error>> {
    let settings = Arc::new(settings);
    if !settings.inbound_smtp_server.enabled {
        tracing::warn!("inbound_smtp_server.enabled is false: nothing to do");
        return Ok(());
    }
    let metrics = Arc::new(Metrics::new());
    let api = ApiClient::new(&settings)?.with_metrics(metrics.clone());
    let probe = HttpApiProbe::from_settings(&settings, api.clone());
    let readiness = Arc::new(Readiness::new());
    let api_monitor =
        Arc::new(ApiMonitor::new(probe, metrics.clone())).spawn(ApiMonitor::DEFAULT_INTERVAL);
    // Bound before the SMTP listeners so a port clash is reported before mail is accepted.
    let ops_listener = ops::bind(&settings.operations).await?;
    let processor = Arc::new(Processor::with_client(&settings, api)?.with_metrics(metrics.clone()));
    let server = Server::start(settings.clone(), processor, metrics.clone()).await?;
    // Handlers in place before anything reports ready, so that a signal sent as soon as
    // `/readyz` answers 200 is handled rather than killing the process.
    let mut signals = Signals::new();
    readiness.set_listeners_ready(true);
    let ops_done = Arc::new(tokio::sync::Notify::new());
    let ops_task = match ops_listener {
        Some(listener) => {
            let addr = listener.local_addr()?;
            tracing::info!(%addr, "operations endpoint: /healthz /readyz /metrics");
            let state = OpsState {
                metrics: metrics.clone(),
                readiness: readiness.clone(),
            };
            let done = ops_done.clone();
            Some(tokio::spawn(ops::serve(listener, state, async move {
                done.notified().await
            })))
        }
        None => None,
    };
    let signal = signals.recv().await;
    readiness.start_draining();
    // Only SIGTERM, what orchestrators send, waits: the endpoint removal is still on its way
    // to the load balancers, whose new connections keep arriving meanwhile. A second signal
    // cuts the wait short.
    let drain = settings.inbound_smtp_server.limits.drain_delay;
    if signal == StopSignal::Terminate && !drain.is_zero() {
        tracing::info!(
            drain_delay_secs = drain.as_secs(),
            "SIGTERM: /readyz answers 503; still accepting connections until the drain delay is over"
        );
        tokio::select! {
            _ = tokio::time::sleep(drain) => {}
            _ = signals.recv() => tracing::info!("second signal: drain delay cut short"),
        }
    }
    readiness.set_listeners_ready(false);
    api_monitor.abort();
    let grace = settings.inbound_smtp_server.limits.shutdown_grace;
    tracing::info!(
        grace_secs = grace.as_secs(),
        "shutting down: no new connections, finishing transactions in flight"
    );
    server.shutdown(grace).await;
    if let Some(task) = ops_task {
        ops_done.notify_one();
        let _ = task.await;
    }
    tracing::info!("stopped");
    Ok(())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StopSignal {
    Terminate,
    Interrupt,
}

/// SIGTERM and SIGINT handlers, installed when created.
struct Signals {
    handlers: Option<(tokio::signal::unix::Signal, tokio::signal::unix::Signal)>,
}

impl Signals {
    fn new() -> Signals {
        use tokio::signal::unix::{SignalKind, signal};
        let handlers = match (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) {
            (Ok(term), Ok(int)) => Some((term, int)),
            _ => None,
        };
        Signals { handlers }
    }

    async fn recv(&mut self) -> StopSignal {
        let Some((term, int)) = self.handlers.as_mut() else {
            // Without signal handlers only Ctrl-C via tokio's portable handler remains.
            let _ = tokio::signal::ctrl_c().await;
            return StopSignal::Interrupt;
        };
        tokio::select! {
            _ = term.recv() => StopSignal::Terminate,
            _ = int.recv() => StopSignal::Interrupt,
        }
    }
}
