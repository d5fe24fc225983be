//! Prometheus metrics of the server (the README's Operations section), served as text on the operations endpoint's
//! `/metrics`.
//!
//! [`Metrics`] owns the registry and one method per event the server reports. Every label
//! is a small enum defined here (or, for `listener`, a name taken from the configuration),
//! never text a client sent, so a client cannot grow the number of series.
//!
//! All label combinations are created up front and their counters kept in arrays, so
//! recording an event is one atomic add: no map lookup and no lock on the hot path. The
//! one exception is the API latency histogram, which takes a short per-series lock; it is
//! only touched once per API call, which costs far more.
//!
//! Metric families, all prefixed `notify_inbound_`:
//!
//! | name | type | labels |
//! | --- | --- | --- |
//! | `smtp_connections_total` | counter | `listener` |
//! | `smtp_connections_open` | gauge | `listener` |
//! | `smtp_connections_rejected_total` | counter | `reason` ([`RejectReason`]) |
//! | `smtp_sessions_aborted_total` | counter | `reason` ([`AbortReason`]) |
//! | `smtp_tls_handshakes_total` | counter | `mode` ([`HandshakeMode`]), `result` (`ok`, `failed`) |
//! | `smtp_replies_total` | counter | `command` ([`CommandClass`]), `code` (`2xx`..`5xx`) |
//! | `smtp_messages_total` | counter | `kind` ([`MessageKind`]), `outcome` ([`MessageOutcome`]) |
//! | `smtp_rcpt_rejected_total` | counter | `reason` ([`RcptReason`]) |
//! | `bounces_total` | counter | `outcome` ([`BounceOutcome`]), one per `bn` recipient |
//! | `api_requests_total` | counter | `endpoint` ([`ApiEndpoint`]), `status` ([`ApiStatus`]) |
//! | `api_request_duration_seconds` | histogram | `endpoint` |
//! | `coordination_lock_acquisitions_total` | counter | `result` ([`LockResult`]) |
//! | `coordination_lock_releases_total` | counter | `result` ([`LockRelease`]) |
//! | `coordination_redis_errors_total` | counter | `op` ([`RedisOp`]) |
//! | `api_up` | gauge | 1 when the last periodic API probe succeeded, 0 otherwise |
//! | `build_info` | gauge (always 1) | `version` |
//! | `tls_certificate_expiry_timestamp_seconds` | gauge | `source` (`configured`, `self_signed`); present once a certificate is loaded |
//!
//! and, unprefixed as every Prometheus client library names them, the process metrics of
//! [`process`] (`process_cpu_seconds_total`, `process_resident_memory_bytes`, ...).

pub mod process;

use std::time::Duration;

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

use crate::limiter::LimitExceeded;
pub use crate::outcome::{BounceOutcome, MessageKind, MessageOutcome};

/// Upper bounds of the API latency buckets, in seconds: 1 ms to 10 s.
pub const API_LATENCY_BUCKETS: [f64; 13] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Defines a label enum with its Prometheus spelling, the list of its values (to create
/// every series up front) and a dense index (to find a series without hashing): the
/// outcome words' definition, plus the label encoding.
macro_rules! label_enum {
    ($(#[$meta:meta])* $name:ident $body:tt) => {
        crate::outcome::words! { $(#[$meta])* $name $body }
        label_value!($name);
    };
}

/// Label values: this module's enums and the outcome words of [`crate::outcome`].
macro_rules! label_value {
    ($($name:ident),+) => {
        $(impl EncodeLabelValue for $name {
            fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
                std::fmt::Write::write_str(encoder, self.as_str())
            }
        })+
    };
}

label_enum! {
    /// Why a connection was refused before the SMTP session started.
    RejectReason {
        /// `limits.max_connections` reached.
        TooManyConnections => "too_many_connections",
        /// `limits.max_connections_per_ip` reached for the client.
        TooManyPerIp => "too_many_per_ip",
        /// `limits.max_connections_per_network` reached for the client's network.
        TooManyPerNetwork => "too_many_per_network",
        /// The client is outside `allowed_clients`.
        NotAllowed => "not_allowed",
        /// A PROXY header from a peer outside `trusted_proxies`, or none from inside.
        ProxyUntrusted => "proxy_untrusted",
        /// The PROXY header was malformed or did not arrive in time.
        ProxyHeader => "proxy_header",
        /// The server is shutting down.
        ShuttingDown => "shutting_down",
    }
}

impl From<LimitExceeded> for RejectReason {
    fn from(e: LimitExceeded) -> Self {
        match e {
            LimitExceeded::Global => RejectReason::TooManyConnections,
            LimitExceeded::PerIp => RejectReason::TooManyPerIp,
            LimitExceeded::PerNetwork => RejectReason::TooManyPerNetwork,
        }
    }
}

label_enum! {
    /// Why the server closed a running session itself (with `421`).
    AbortReason {
        CommandTimeout => "command_timeout",
        DataTimeout => "data_timeout",
        SessionTimeout => "session_timeout",
        TooManyCommands => "too_many_commands",
        TooManyErrors => "too_many_errors",
        TooManyTransactions => "too_many_transactions",
        /// `limits.max_noop_commands` commands that do no work.
        TooManyNoops => "too_many_noop_commands",
        /// Under stress, no command doing work within `limits.stress_command_timeout_secs`.
        StressIdle => "stress_idle",
        /// `CONNECT`, `GET` or `POST` sent as a command.
        HttpCommand => "http_command",
        /// Shutdown grace period over.
        Shutdown => "shutdown",
    }
}

label_enum! {
    /// How TLS was started on a connection.
    HandshakeMode {
        /// TLS from the first byte (the "secure" listener).
        Implicit => "implicit",
        /// After the STARTTLS command.
        Starttls => "starttls",
    }
}

label_enum! {
    /// Whether a TLS handshake completed.
    HandshakeResult {
        Ok => "ok",
        Failed => "failed",
    }
}

label_enum! {
    /// What an SMTP reply answered.
    CommandClass {
        /// The greeting (220, or 554 to a refused client).
        Greeting => "greeting",
        /// HELO and EHLO.
        Helo => "helo",
        Mail => "mail",
        Rcpt => "rcpt",
        /// The reply to the DATA command itself (354, or a refusal).
        Data => "data",
        /// The reply after the message's final `.` line.
        Message => "message",
        Rset => "rset",
        Noop => "noop",
        /// VRFY and EXPN.
        Vrfy => "vrfy",
        Help => "help",
        Starttls => "starttls",
        Xclient => "xclient",
        Quit => "quit",
        /// Unrecognised, malformed or over-long command lines.
        Unknown => "unknown",
        /// Not an answer to a command: the `421` on a timeout, a limit or shutdown.
        Session => "session",
    }
}

label_enum! {
    /// First digit of a reply code.
    CodeClass {
        C2xx => "2xx",
        C3xx => "3xx",
        C4xx => "4xx",
        C5xx => "5xx",
    }
}

impl CodeClass {
    /// The class of an SMTP reply code; codes outside 200..=599 fall into the nearest class.
    pub fn of(code: u16) -> CodeClass {
        match code {
            ..300 => CodeClass::C2xx,
            300..400 => CodeClass::C3xx,
            400..500 => CodeClass::C4xx,
            _ => CodeClass::C5xx,
        }
    }
}

label_value!(MessageKind, MessageOutcome, BounceOutcome);

label_enum! {
    /// Why a RCPT TO was refused.
    RcptReason {
        /// Our domain, but not a `un`/`bn`/postmaster address, or an id or code that fails
        /// its pattern (`550 5.1.1`).
        UnknownRecipient => "unknown_recipient",
        /// Not one of our domains (`550 5.7.1`).
        RelayDenied => "relay_denied",
        /// `un` while list-unsubscribe is disabled (`550 5.7.1`).
        Disabled => "disabled",
        /// More `un`/`bn` recipients than the transaction takes (`452 4.5.3`).
        TooManyRecipients => "too_many_recipients",
        /// The client is blocked by the failed-unsubscribe limiter (`450 4.7.1`).
        RateLimited => "rate_limited",
        /// Unparsable address or parameters (`501`).
        Syntax => "syntax",
    }
}

label_enum! {
    /// Which notification service API call was made.
    ApiEndpoint {
        /// `GET subscriptions/{id}/unsubscribe` for a `un` message.
        Unsubscribe => "unsubscribe",
        /// `GET subscriptions/{id}/unsubscribe?additionalServices=_all` past the bounce threshold.
        UnsubscribeAll => "unsubscribe_all",
        /// `GET subscriptions?filter=…`.
        FindSubscription => "find_subscription",
        /// `GET bounces?filter=…`.
        FindBounce => "find_bounce",
        /// `POST bounces`.
        CreateBounce => "create_bounce",
        /// `PATCH bounces/{id}` with the new count and message.
        UpdateBounce => "update_bounce",
        /// `PATCH bounces/{id}` with `state: deleted`.
        DeactivateBounce => "deactivate_bounce",
    }
}

label_enum! {
    /// HTTP status class of an API answer, or `error` when none came (connection failure,
    /// timeout).
    ApiStatus {
        S2xx => "2xx",
        S3xx => "3xx",
        S4xx => "4xx",
        S5xx => "5xx",
        Error => "error",
    }
}

impl ApiStatus {
    /// `Some(status)` when the API answered, `None` when it did not.
    pub fn of(status: Option<u16>) -> ApiStatus {
        match status {
            Some(100..300) => ApiStatus::S2xx,
            Some(300..400) => ApiStatus::S3xx,
            Some(400..500) => ApiStatus::S4xx,
            Some(500..600) => ApiStatus::S5xx,
            _ => ApiStatus::Error,
        }
    }
}

label_enum! {
    /// How a wait for an address's cross-replica lock ended (`[coordination]`).
    LockResult {
        Acquired => "acquired",
        /// Still held elsewhere when `coordination.lock_acquire_timeout_ms` ran out.
        Busy => "busy",
        /// Redis did not answer or failed until the acquire timeout ran out.
        RedisError => "redis_error",
    }
}

label_enum! {
    /// How a cross-replica lock was given back.
    LockRelease {
        Released => "released",
        /// It had expired under its holder (and may have been taken by another replica).
        Expired => "expired",
        /// Redis did not answer; the lock lapses at its expiry.
        RedisError => "redis_error",
    }
}

label_enum! {
    /// Which Redis operation failed.
    RedisOp {
        Acquire => "acquire",
        Release => "release",
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct LockResultLabels {
    result: LockResult,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct LockReleaseLabels {
    result: LockRelease,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RedisOpLabels {
    op: RedisOp,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ListenerLabels {
    listener: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RejectLabels {
    reason: RejectReason,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct AbortLabels {
    reason: AbortReason,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct TlsLabels {
    mode: HandshakeMode,
    result: HandshakeResult,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ReplyLabels {
    command: CommandClass,
    code: CodeClass,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct MessageLabels {
    kind: MessageKind,
    outcome: MessageOutcome,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct BounceLabels {
    outcome: BounceOutcome,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RcptLabels {
    reason: RcptReason,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ApiLabels {
    endpoint: ApiEndpoint,
    status: ApiStatus,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct EndpointLabels {
    endpoint: ApiEndpoint,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct BuildLabels {
    version: &'static str,
}

/// Where the served TLS certificate comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CertificateSource {
    /// `inbound_smtp_server.options.cert`/`.key`.
    Configured,
    /// Made at start because no certificate is configured.
    SelfSigned,
}

impl EncodeLabelValue for CertificateSource {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        std::fmt::Write::write_str(
            encoder,
            match self {
                CertificateSource::Configured => "configured",
                CertificateSource::SelfSigned => "self_signed",
            },
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct CertificateLabels {
    source: CertificateSource,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

fn api_latency_histogram() -> Histogram {
    Histogram::new(API_LATENCY_BUCKETS)
}

/// Creates the series of every label value of a family and keeps handles to them.
fn precreate<L, M, T, C>(
    family: &Family<L, M, C>,
    values: impl IntoIterator<Item = T>,
    label: impl Fn(T) -> L,
) -> Vec<M>
where
    L: Clone + std::hash::Hash + Eq,
    M: Clone,
    C: prometheus_client::metrics::family::MetricConstructor<M>,
{
    values
        .into_iter()
        .map(|v| family.get_or_create(&label(v)).clone())
        .collect()
}

/// The server's metrics. Create one at start, share it as `Arc<Metrics>`.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    connections: Family<ListenerLabels, Counter>,
    connections_open: Family<ListenerLabels, Gauge>,
    rejected: Vec<Counter>,
    aborted: Vec<Counter>,
    tls: Vec<Counter>,
    replies: Vec<Counter>,
    messages: Vec<Counter>,
    rcpt_rejected: Vec<Counter>,
    api_requests: Vec<Counter>,
    api_latency: Vec<Histogram>,
    lock_acquisitions: Vec<Counter>,
    lock_releases: Vec<Counter>,
    redis_errors: Vec<Counter>,
    bounces: Vec<Counter>,
    api_up: Gauge,
    tls_expiry: Family<CertificateLabels, Gauge>,
    /// Unprefixed: the process metrics keep their standard names.
    process: Registry,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("notify_inbound");

        let connections = Family::<ListenerLabels, Counter>::default();
        registry.register(
            "smtp_connections",
            "SMTP connections accepted, by listener",
            connections.clone(),
        );
        let connections_open = Family::<ListenerLabels, Gauge>::default();
        registry.register(
            "smtp_connections_open",
            "SMTP connections open now, by listener",
            connections_open.clone(),
        );

        let f = Family::<RejectLabels, Counter>::default();
        registry.register(
            "smtp_connections_rejected",
            "Connections refused before the SMTP session, by reason",
            f.clone(),
        );
        let rejected = precreate(&f, RejectReason::ALL.iter().copied(), |reason| {
            RejectLabels { reason }
        });

        let f = Family::<AbortLabels, Counter>::default();
        registry.register(
            "smtp_sessions_aborted",
            "SMTP sessions closed by the server with 421, by reason",
            f.clone(),
        );
        let aborted = precreate(&f, AbortReason::ALL.iter().copied(), |reason| AbortLabels {
            reason,
        });

        let f = Family::<TlsLabels, Counter>::default();
        registry.register(
            "smtp_tls_handshakes",
            "TLS handshakes, by mode (implicit or starttls) and result",
            f.clone(),
        );
        let tls = precreate(
            &f,
            pairs(HandshakeMode::ALL, HandshakeResult::ALL),
            |(mode, result)| TlsLabels { mode, result },
        );

        let f = Family::<ReplyLabels, Counter>::default();
        registry.register(
            "smtp_replies",
            "SMTP replies sent, by the command they answer and code class",
            f.clone(),
        );
        let replies = precreate(
            &f,
            pairs(CommandClass::ALL, CodeClass::ALL),
            |(command, code)| ReplyLabels { command, code },
        );

        let f = Family::<MessageLabels, Counter>::default();
        registry.register(
            "smtp_messages",
            "Messages received, by recipient kind and outcome of the reply to DATA",
            f.clone(),
        );
        let messages = precreate(
            &f,
            pairs(MessageKind::ALL, MessageOutcome::ALL),
            |(kind, outcome)| MessageLabels { kind, outcome },
        );

        let f = Family::<RcptLabels, Counter>::default();
        registry.register(
            "smtp_rcpt_rejected",
            "RCPT TO commands refused, by reason",
            f.clone(),
        );
        let rcpt_rejected = precreate(&f, RcptReason::ALL.iter().copied(), |reason| RcptLabels {
            reason,
        });

        let f = Family::<ApiLabels, Counter>::default();
        registry.register(
            "api_requests",
            "Notification service API calls, by endpoint and HTTP status class",
            f.clone(),
        );
        let api_requests = precreate(
            &f,
            pairs(ApiEndpoint::ALL, ApiStatus::ALL),
            |(endpoint, status)| ApiLabels { endpoint, status },
        );

        let f: HistogramFamily<EndpointLabels> =
            Family::new_with_constructor(api_latency_histogram);
        registry.register_with_unit(
            "api_request_duration",
            "Notification service API call latency, by endpoint",
            Unit::Seconds,
            f.clone(),
        );
        let api_latency = precreate(&f, ApiEndpoint::ALL.iter().copied(), |endpoint| {
            EndpointLabels { endpoint }
        });

        let f = Family::<LockResultLabels, Counter>::default();
        registry.register(
            "coordination_lock_acquisitions",
            "Waits for an address's cross-replica lock, by result",
            f.clone(),
        );
        let lock_acquisitions = precreate(&f, LockResult::ALL.iter().copied(), |result| {
            LockResultLabels { result }
        });
        let f = Family::<LockReleaseLabels, Counter>::default();
        registry.register(
            "coordination_lock_releases",
            "Cross-replica locks given back, by result",
            f.clone(),
        );
        let lock_releases = precreate(&f, LockRelease::ALL.iter().copied(), |result| {
            LockReleaseLabels { result }
        });
        let f = Family::<RedisOpLabels, Counter>::default();
        registry.register(
            "coordination_redis_errors",
            "Redis commands that failed or did not answer in time, by operation",
            f.clone(),
        );
        let redis_errors = precreate(&f, RedisOp::ALL.iter().copied(), |op| RedisOpLabels { op });
        let f = Family::<BounceLabels, Counter>::default();
        registry.register(
            "bounces",
            "Bounces received, one per bn recipient, by what became of them",
            f.clone(),
        );
        let bounces = precreate(&f, BounceOutcome::ALL.iter().copied(), |outcome| {
            BounceLabels { outcome }
        });
        let api_up = Gauge::default();
        registry.register(
            "api_up",
            "1 when the last periodic probe of the notification service API succeeded, 0 otherwise",
            api_up.clone(),
        );
        let build = Family::<BuildLabels, Gauge>::default();
        registry.register(
            "build_info",
            "Always 1; the labels say which build is running",
            build.clone(),
        );
        build
            .get_or_create(&BuildLabels {
                version: env!("CARGO_PKG_VERSION"),
            })
            .set(1);
        let tls_expiry = Family::<CertificateLabels, Gauge>::default();
        registry.register_with_unit(
            "tls_certificate_expiry_timestamp",
            "When the served TLS certificate expires (its notAfter), in Unix seconds",
            Unit::Seconds,
            tls_expiry.clone(),
        );
        let mut process = Registry::default();
        process.register_collector(Box::new(process::ProcessCollector));

        Metrics {
            api_up,
            tls_expiry,
            process,
            registry,
            connections,
            connections_open,
            rejected,
            aborted,
            tls,
            replies,
            messages,
            rcpt_rejected,
            api_requests,
            api_latency,
            lock_acquisitions,
            lock_releases,
            redis_errors,
            bounces,
        }
    }

    /// The handle for one listener; get it once when the listener is bound. `name` comes
    /// from the configuration (for example the bound address `0.0.0.0:25`), never from a
    /// client.
    pub fn listener(&self, name: &str) -> ListenerMetrics {
        let labels = ListenerLabels {
            listener: name.to_string(),
        };
        ListenerMetrics {
            connections: self.connections.get_or_create(&labels).clone(),
            open: self.connections_open.get_or_create(&labels).clone(),
        }
    }

    /// A connection was refused before its session started.
    pub fn connection_rejected(&self, reason: RejectReason) {
        self.rejected[reason.index()].inc();
    }

    /// The server closed a session itself.
    pub fn session_aborted(&self, reason: AbortReason) {
        self.aborted[reason.index()].inc();
    }

    /// A TLS handshake completed (`ok`) or failed.
    pub fn tls_handshake(&self, mode: HandshakeMode, ok: bool) {
        let result = if ok {
            HandshakeResult::Ok
        } else {
            HandshakeResult::Failed
        };
        self.tls[mode.index() * HandshakeResult::ALL.len() + result.index()].inc();
    }

    /// An SMTP reply with `code` was sent in answer to `command`.
    pub fn smtp_reply(&self, command: CommandClass, code: u16) {
        self.replies[command.index() * CodeClass::ALL.len() + CodeClass::of(code).index()].inc();
    }

    /// A message for a `kind` recipient got its reply to DATA.
    pub fn message(&self, kind: MessageKind, outcome: MessageOutcome) {
        self.messages[kind.index() * MessageOutcome::ALL.len() + outcome.index()].inc();
    }

    /// A bounce for one `bn` recipient was processed.
    pub fn bounce(&self, outcome: BounceOutcome) {
        self.bounces[outcome.index()].inc();
    }

    /// A RCPT TO was refused.
    pub fn rcpt_rejected(&self, reason: RcptReason) {
        self.rcpt_rejected[reason.index()].inc();
    }

    /// An API call finished: `status` is the HTTP status, `None` when no answer came.
    pub fn api_call(&self, endpoint: ApiEndpoint, status: Option<u16>, elapsed: Duration) {
        let status = ApiStatus::of(status);
        self.api_requests[endpoint.index() * ApiStatus::ALL.len() + status.index()].inc();
        self.api_latency[endpoint.index()].observe(elapsed.as_secs_f64());
    }

    /// A wait for an address's cross-replica lock ended.
    pub fn lock_acquisition(&self, result: LockResult) {
        self.lock_acquisitions[result.index()].inc();
    }

    /// A cross-replica lock was given back (or could not be).
    pub fn lock_release(&self, result: LockRelease) {
        self.lock_releases[result.index()].inc();
    }

    /// A Redis command failed or did not answer in time.
    pub fn redis_error(&self, op: RedisOp) {
        self.redis_errors[op.index()].inc();
    }

    /// The result of a periodic API probe.
    pub fn set_api_up(&self, up: bool) {
        self.api_up.set(i64::from(up));
    }

    /// The series of `tls_certificate_expiry_timestamp_seconds` for a certificate of
    /// `source`; whoever loads the certificate sets it to the notAfter time.
    pub fn tls_certificate_expiry(&self, source: CertificateSource) -> Gauge {
        self.tls_expiry
            .get_or_create(&CertificateLabels { source })
            .clone()
    }

    /// Everything in the Prometheus text exposition format.
    pub fn encode(&self) -> String {
        use prometheus_client::encoding::text;
        let mut out = String::new();
        let encoded = text::encode_registry(&mut out, &self.registry)
            .and_then(|()| text::encode_registry(&mut out, &self.process))
            .and_then(|()| text::encode_eof(&mut out));
        if let Err(e) = encoded {
            // Only a label encoder can fail and ours write fixed strings; report rather
            // than serve a half-written page as if it were whole.
            tracing::error!(error = %e, "encoding metrics failed");
        }
        out
    }
}

fn pairs<A: Copy, B: Copy>(a: &'static [A], b: &'static [B]) -> impl Iterator<Item = (A, B)> {
    a.iter().flat_map(move |x| b.iter().map(move |y| (*x, *y)))
}

/// Metrics of one listener. Cheap to clone.
#[derive(Debug, Clone)]
pub struct ListenerMetrics {
    connections: Counter,
    open: Gauge,
}

impl ListenerMetrics {
    /// A connection was accepted; it counts as open until the returned guard is dropped.
    pub fn connection_opened(&self) -> OpenConnection {
        self.connections.inc();
        self.open.inc();
        OpenConnection {
            open: self.open.clone(),
        }
    }
}

/// Keeps a connection counted in `smtp_connections_open` while it lives.
#[derive(Debug)]
pub struct OpenConnection {
    open: Gauge,
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.open.dec();
    }
}

#[cfg(test)]
mod tests;
