//! Logging set-up (the README's Operations section) and the field names every log line of the project uses.
//!
//! Logs go to standard error, human-readable by default and one JSON object per line with
//! `log.format = "json"`. Standard output stays free for what the commands print
//! (`check-config`, `classify --format jsonl`). The level comes from `log.level`, or from
//! `RUST_LOG` when that is set, in `tracing_subscriber::EnvFilter` syntax.
//!
//! # One line per transaction
//!
//! Each mail transaction that reaches the reply to DATA is logged once, by [`transaction`],
//! at `info` with the target [`TRANSACTION_TARGET`] and the message `transaction`. Its
//! fields, and the names to use for the same things anywhere else in the project:
//!
//! | field | value |
//! | --- | --- |
//! | `client` | the real client address (after the PROXY header or XCLIENT) |
//! | `kind` | `un`, `bn` or `postmaster` ([`MessageKind`]) |
//! | `outcome` | `accepted`, `refused` or `temporary` ([`MessageOutcome`]) |
//! | `code` | the reply code to DATA, e.g. `250` |
//! | `enhanced` | the enhanced status code of that reply, e.g. `2.0.0` |
//! | `size` | message size in bytes |
//! | `duration_ms` | milliseconds from the end of DATA to the reply |
//! | `bounce` | for `bn` recipients: `counted`, `not_counted`, `unsubscribed`, `dropped_no_subscription`, `duplicate`, `disabled` or `temporary` ([`crate::outcome::BounceOutcome`]) |
//! | `bounce_reason` | why it did not count (`soft`, `delayed`, `auto_reply`, `not_bounce`, `complaint`, `not_our_recipient`, a filter's key such as `subject_regex`, ...) or why it unsubscribed (`threshold`, `complaint`) |
//! | `bounce_count` | the subscriber's `hardBounceCount` after the message |
//!
//! A message to several `bn` recipients gives each of the three `bounce` fields one value
//! per recipient, in the order of the RCPT commands, separated by `,` (an empty value where
//! there is nothing to say).
//!
//! Other fields in use: `listener` (a configured listener's bound address), `error` (an
//! error's message), `recipient` (only through [`redact_recipient`]).
//!
//! Never logged: the API access token or any other secret, a message body, a reply's text
//! (it can echo the recipient address, which carries the unsubscription code), an
//! unsubscription code.

use std::io::IsTerminal;
use std::net::IpAddr;
use std::time::Duration;

use tracing::Subscriber;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::util::SubscriberInitExt;

use crate::config::{LogFormat, LogLevel, LogSettings};

use crate::outcome::{MessageKind, MessageOutcome};
use crate::reply::Reply;

/// `tracing` target of the per-transaction lines, for filtering (e.g.
/// `RUST_LOG=warn,notify_inbound::transaction=info`).
pub const TRANSACTION_TARGET: &str = "notify_inbound::transaction";

/// A log filter that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error(
        "invalid log filter {value:?} in {source_name}: {reason}; expected a level such as info, debug or warn, or tracing filter directives such as info,notify_inbound=debug"
    )]
    InvalidFilter {
        /// Where the filter was read (`RUST_LOG`; `log.level` is checked with the
        /// configuration).
        source_name: &'static str,
        value: String,
        reason: String,
    },
}

/// The filter for `level` (`log.level`, checked with the configuration), overridden by
/// `rust_log` (the `RUST_LOG` environment variable) when that is set and not blank.
pub fn filter(level: &LogLevel, rust_log: Option<&str>) -> Result<EnvFilter, LogError> {
    match rust_log.map(str::trim) {
        Some(value) if !value.is_empty() => {
            LogLevel::parse(value)
                .map(|l| l.env_filter())
                .map_err(|reason| LogError::InvalidFilter {
                    source_name: "RUST_LOG",
                    value: value.to_string(),
                    reason,
                })
        }
        _ => Ok(level.env_filter()),
    }
}

/// Library log lines any client can trigger at will (rustls writes a warning for every TLS
/// handshake that names an IP address as SNI, for every alert a client sends, ...) would let
/// a client fill the log: below debug they are dropped unless the filter names `rustls`
/// itself. The handshake's outcome is still counted in the metrics.
fn quiet_client_triggered(filter: EnvFilter) -> EnvFilter {
    let verbose = filter
        .max_level_hint()
        .is_some_and(|l| l >= tracing::level_filters::LevelFilter::DEBUG);
    if verbose || filter.to_string().contains("rustls") {
        return filter;
    }
    match "rustls=error".parse() {
        Ok(directive) => filter.add_directive(directive),
        Err(_) => filter,
    }
}

/// A subscriber in the configured format writing to `writer`. [`init`] uses standard
/// error; tests pass a buffer.
pub fn subscriber<W>(
    format: LogFormat,
    filter: EnvFilter,
    writer: W,
    ansi: bool,
) -> Box<dyn Subscriber + Send + Sync>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let builder = tracing_subscriber::fmt()
        .with_env_filter(quiet_client_triggered(filter))
        .with_writer(writer);
    match format {
        LogFormat::Text => Box::new(builder.with_ansi(ansi).finish()),
        LogFormat::Json => Box::new(builder.json().flatten_event(true).finish()),
    }
}

/// Installs the process-wide subscriber from `log.format` and `log.level` (or `RUST_LOG`).
/// Calling it again, or after another subscriber was installed, changes nothing and is
/// not an error, so tests and embedders can call it freely.
///
/// Lines go to standard error through `tracing-appender`'s non-blocking writer: the
/// threads that log only queue the line, and a thread of its own writes the lines out in
/// order, all that are queued in one `write` (through a buffer flushed whenever the queue
/// is empty), so a busy server does not make a system call per line. When the queue is
/// full a line waits for room rather than being dropped. Keep the returned guard until
/// exit; dropping it writes out what is still waiting.
pub fn init(settings: &LogSettings) -> Result<LogGuard, LogError> {
    let rust_log = std::env::var("RUST_LOG").ok();
    let filter = filter(&settings.level, rust_log.as_deref())?;
    let ansi = std::io::stderr().is_terminal();
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(false)
        .thread_name("notify-inbound-log")
        .finish(std::io::BufWriter::with_capacity(
            LOG_BUFFER,
            std::io::stderr(),
        ));
    // An error here only means a subscriber is already installed.
    let _ = subscriber(settings.format, filter, writer, ansi).try_init();
    Ok(guard)
}

/// How many bytes of log lines the writer thread gathers before a `write`, at most.
const LOG_BUFFER: usize = 64 * 1024;

/// Writes out the waiting log lines when dropped; see [`init`].
pub type LogGuard = tracing_appender::non_blocking::WorkerGuard;

/// One mail transaction, as logged by [`transaction`].
#[derive(Debug, Clone, Copy)]
pub struct Transaction<'a> {
    pub client: IpAddr,
    pub kind: MessageKind,
    pub reply: &'a Reply,
    pub size: usize,
    pub elapsed: Duration,
}

/// Logs the one line of a transaction (fields in the module documentation). The reply's
/// text is left out on purpose: it may name the recipient, unsubscription code included.
pub fn transaction(t: &Transaction<'_>) {
    tracing::info!(
        target: TRANSACTION_TARGET,
        client = %t.client,
        kind = %t.kind.as_str(),
        outcome = %MessageOutcome::from_code(t.reply.code).as_str(),
        code = t.reply.code,
        enhanced = %t.reply.enhanced,
        size = t.size,
        duration_ms = t.elapsed.as_millis() as u64,
        "transaction"
    );
}

/// The `bounce` fields of a transaction line, one value per `bn` recipient.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BounceFields {
    pub outcome: String,
    pub reason: String,
    pub count: String,
}

impl BounceFields {
    /// The fields for these reports; `None` when there is none (no `bn` recipient).
    pub fn of(reports: &[crate::flows::BounceReport]) -> Option<BounceFields> {
        if reports.is_empty() {
            return None;
        }
        let join = |f: &dyn Fn(&crate::flows::BounceReport) -> String| {
            reports.iter().map(f).collect::<Vec<_>>().join(",")
        };
        Some(BounceFields {
            outcome: join(&|r| r.outcome.as_str().to_string()),
            reason: join(&|r| r.reason.clone().unwrap_or_default()),
            count: join(&|r| r.count.map(|c| c.to_string()).unwrap_or_default()),
        })
    }
}

/// [`transaction`] for a message with `bn` recipients: the same line with the `bounce`
/// fields.
pub fn bounce_transaction(t: &Transaction<'_>, b: &BounceFields) {
    tracing::info!(
        target: TRANSACTION_TARGET,
        client = %t.client,
        kind = %t.kind.as_str(),
        outcome = %MessageOutcome::from_code(t.reply.code).as_str(),
        code = t.reply.code,
        enhanced = %t.reply.enhanced,
        size = t.size,
        duration_ms = t.elapsed.as_millis() as u64,
        bounce = %b.outcome,
        bounce_reason = %b.reason,
        bounce_count = %b.count,
        "transaction"
    );
}

/// A secret as it may appear in a log or printed configuration: nothing when empty (so
/// "not set" stays visible), `<redacted>` otherwise.
pub fn redact(secret: &str) -> String {
    if secret.is_empty() {
        String::new()
    } else {
        "<redacted>".to_string()
    }
}

/// A recipient address fit for a log: the unsubscription code of a `un-`/`bn-` address is
/// masked (`bn-42-***@example.org`), anything else is returned as is. The code is a
/// credential: with the id it unsubscribes the subscriber.
pub fn redact_recipient(address: &str) -> String {
    let (local, domain) = match address.rsplit_once('@') {
        Some((l, d)) => (l, Some(d)),
        None => (address, None),
    };
    // `get` rather than indexing: a UTF-8 local part (SMTPUTF8) may have no char boundary
    // at 3.
    let Some((prefix, rest)) = local
        .get(..3)
        .filter(|p| p.eq_ignore_ascii_case("un-") || p.eq_ignore_ascii_case("bn-"))
        .zip(local.get(3..))
    else {
        return address.to_string();
    };
    let masked = match rest.split_once('-') {
        Some((id, _code)) => format!("{prefix}{id}-***"),
        None => format!("{prefix}***"),
    };
    match domain {
        Some(d) => format!("{masked}@{d}"),
        None => masked,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl Write for Buffer {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Buffer {
        fn text(&self) -> String {
            String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
        }
    }

    fn log_one(format: LogFormat, level: &str) -> String {
        let buf = Buffer::default();
        let w = buf.clone();
        let sub = subscriber(
            format,
            filter(&lvl(level), None).unwrap(),
            move || w.clone(),
            false,
        );
        let reply = Reply::new(550, "5.7.1", "<un-12-34567@example.org>: refused");
        tracing::subscriber::with_default(sub, || {
            transaction(&Transaction {
                client: "192.0.2.7".parse().unwrap(),
                kind: MessageKind::Un,
                reply: &reply,
                size: 1234,
                elapsed: Duration::from_millis(42),
            })
        });
        buf.text()
    }

    fn rustls_warning(level: &str) -> String {
        let buf = Buffer::default();
        let w = buf.clone();
        let sub = subscriber(
            LogFormat::Text,
            filter(&lvl(level), None).unwrap(),
            move || w.clone(),
            false,
        );
        tracing::subscriber::with_default(sub, || {
            tracing::warn!(target: "rustls::msgs::handshake", "Illegal SNI hostname received");
        });
        buf.text()
    }

    #[test]
    fn client_triggered_library_warnings_show_only_at_debug() {
        assert_eq!(rustls_warning("info"), "");
        assert_eq!(rustls_warning("warn"), "");
        assert!(rustls_warning("debug").contains("Illegal SNI"));
        assert!(rustls_warning("info,rustls=warn").contains("Illegal SNI"));
    }

    #[test]
    fn json_transaction_line_has_the_documented_fields() {
        let out = log_one(LogFormat::Json, "info");
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 1, "{out}");
        let v: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
        assert_eq!(v["client"], "192.0.2.7");
        assert_eq!(v["kind"], "un");
        assert_eq!(v["outcome"], "refused");
        assert_eq!(v["code"], 550);
        assert_eq!(v["enhanced"], "5.7.1");
        assert_eq!(v["size"], 1234);
        assert_eq!(v["duration_ms"], 42);
        assert_eq!(v["message"], "transaction");
        assert_eq!(v["target"], TRANSACTION_TARGET);
        assert!(
            !out.contains("34567"),
            "the unsubscription code leaked: {out}"
        );
    }

    #[test]
    fn text_transaction_line_is_human_readable() {
        let out = log_one(LogFormat::Text, "info");
        assert!(!out.trim_start().starts_with('{'), "{out}");
        for field in ["client=192.0.2.7", "kind=un", "outcome=refused", "code=550"] {
            assert!(out.contains(field), "{field} missing in {out}");
        }
        assert!(
            !out.contains("34567"),
            "the unsubscription code leaked: {out}"
        );
    }

    #[test]
    fn level_filters_transaction_lines() {
        assert_eq!(log_one(LogFormat::Json, "warn"), "");
        assert_eq!(
            log_one(LogFormat::Json, "warn,notify_inbound=info")
                .lines()
                .count(),
            1
        );
    }

    fn lvl(text: &str) -> LogLevel {
        LogLevel::parse(text).unwrap()
    }

    #[test]
    fn rust_log_overrides_the_configured_level() {
        let f = filter(&lvl("info"), Some("debug")).unwrap();
        assert_eq!(f.to_string(), "debug");
        let f = filter(&lvl("warn"), Some("  ")).unwrap();
        assert_eq!(f.to_string(), "warn");
        let f = filter(&lvl("warn"), None).unwrap();
        assert_eq!(f.to_string(), "warn");
    }

    #[test]
    fn invalid_filters_name_their_source() {
        assert!(LogLevel::parse("verbose").is_err());
        assert!(LogLevel::parse("WARN").is_ok());
        assert!(LogLevel::parse("notify_inbound::transaction").is_ok());
        let e = filter(&lvl("info"), Some("x=notalevel"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("RUST_LOG"), "{e}");
        let e = filter(&lvl("info"), Some("verbose"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("RUST_LOG") && e.contains("verbose"), "{e}");
    }

    #[test]
    fn init_twice_is_harmless() {
        let s = LogSettings {
            format: LogFormat::Text,
            level: lvl("info"),
        };
        let _first = init(&s).unwrap();
        let _second = init(&s).unwrap();
    }

    #[test]
    fn redaction() {
        assert_eq!(redact(""), "");
        assert_eq!(redact("Bearer abc"), "<redacted>");
        assert_eq!(
            redact_recipient("bn-42-abc.def@example.org"),
            "bn-42-***@example.org"
        );
        assert_eq!(
            redact_recipient("UN-42-12345@Example.org"),
            "UN-42-***@Example.org"
        );
        assert_eq!(redact_recipient("un-42@example.org"), "un-***@example.org");
        assert_eq!(
            redact_recipient("postmaster@example.org"),
            "postmaster@example.org"
        );
        assert_eq!(redact_recipient("bn-42-1234"), "bn-42-***");
        assert_eq!(redact_recipient("bé-1-2@example.org"), "bé-1-2@example.org");
        assert_eq!(redact_recipient("ü@x"), "ü@x");
    }
}
