//! The validated configuration the service runs on: addresses parsed, regular expressions
//! compiled, durations as [`Duration`], effective values resolved. Only
//! [`RawSettings::validate`](super::RawSettings::validate) builds it, so holding one means
//! every value was checked; nothing downstream parses a configured string again.

use std::net::SocketAddr;
use std::time::Duration;

use ipnet::IpNet;
use regex::Regex;

use super::Secret;
use super::log_level::LogLevel;
use super::raw::{BounceDecision, ListUnsubscribeSettings, LogFormat, SmtpOptions, TlsMode};

/// The whole effective configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `internal_http_host` + `rest_api_root`, without a trailing slash. Private, so that
    /// only validation builds a `Settings`.
    pub(super) api_base: String,
    pub inbound_smtp_server: SmtpServerSettings,
    pub list_unsubscribe_by_email: ListUnsubscribeSettings,
    pub bounce: BounceSettings,
    pub api: ApiSettings,
    pub operations: OperationsSettings,
    pub log: LogSettings,
    pub coordination: CoordinationSettings,
}

#[derive(Debug, Clone)]
pub struct SmtpServerSettings {
    pub enabled: bool,
    /// The domains we receive for, trimmed and lower-cased; at least one.
    pub domains: Vec<String>,
    /// Name used in the greeting and EHLO reply: `hostname`, or the first domain.
    pub hostname: String,
    /// The listeners to open: the `listeners` array, or the one NotifyBC-form listener.
    pub listeners: Vec<ListenerSettings>,
    pub trusted_proxies: Vec<IpNet>,
    pub allowed_clients: Vec<IpNet>,
    pub max_recipients_per_transaction: usize,
    /// `None`: any id (the pattern is empty).
    pub id_regex: Option<Regex>,
    /// `None`: any code (the pattern is empty).
    pub code_regex: Option<Regex>,
    /// How often the certificate and key files are checked for changes.
    pub tls_reload_interval: Duration,
    pub options: SmtpOptions,
    pub limits: SmtpLimits,
}

/// One SMTP listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerSettings {
    /// Port 0: a random free port.
    pub addr: SocketAddr,
    pub tls: TlsMode,
    pub proxy_protocol: bool,
    pub xclient: bool,
}

/// `inbound_smtp_server.limits`. Counts and timeouts that must be positive are.
#[derive(Debug, Clone)]
pub struct SmtpLimits {
    pub max_connections: usize,
    pub max_connections_per_ip: usize,
    pub command_timeout: Duration,
    pub data_timeout: Duration,
    pub session_timeout: Duration,
    pub proxy_header_timeout: Duration,
    pub max_commands: usize,
    pub max_errors: usize,
    pub max_transactions: usize,
    pub shutdown_grace: Duration,
    /// On SIGTERM: how long the listeners keep accepting, with `/readyz` already 503,
    /// before they close (see the README's Operations section).
    pub drain_delay: Duration,
    pub failed_unsubscribe_threshold: usize,
    pub failed_unsubscribe_window: Duration,
    /// Wrong codes for one subscription id before that id gets 450 4.7.1 (0 = off).
    pub failed_code_per_id_threshold: usize,
    pub failed_code_per_id_window: Duration,
    /// Connections from one IPv4 /24 or IPv6 /64 (0 = no limit).
    pub max_connections_per_network: usize,
    /// Percentage of `max_connections` open from which the server sheds idle sessions
    /// (0 = never).
    pub stress_threshold_percent: usize,
    /// Under stress: how long a session may go without a command that does work.
    pub stress_command_timeout: Duration,
    /// Commands that do no work (NOOP, RSET, VRFY, HELP, a repeated EHLO) per session.
    pub max_noop_commands: usize,
    /// Message bytes held in memory by all sessions together.
    pub max_inflight_bytes: usize,
}

/// `bounce`, with NotifyBC's filters as they apply under the chosen decision.
#[derive(Debug, Clone)]
pub struct BounceSettings {
    pub enabled: bool,
    pub unsub_threshold: u32,
    /// Who decides whether a bounce counts (README, "Bounce classification").
    pub decision: BounceDecision,
    /// NotifyBC's filters, compiled with JavaScript's meaning of `\d`, `\w` and `\b`;
    /// `None` = off. `failed_recipient_regex` ignores case when either case-insensitive
    /// comparison is on, so that the whole address is found.
    pub subject_regex: Option<Regex>,
    pub smtp_status_code_regex: Option<Regex>,
    pub failed_recipient_regex: Option<Regex>,
    pub case_insensitive_domain: bool,
    pub case_insensitive_local_part: bool,
    pub multiple_failed_recipients: bool,
    pub per_recipient_status: bool,
    pub ignore_auto_replies: bool,
    pub ignore_delays: bool,
    pub complaints_unsubscribe: bool,
    /// 0 = store the whole message (NotifyBC's behaviour).
    pub max_stored_message_bytes: usize,
    /// Zero = off; otherwise at most one counted hard bounce per address per window.
    pub count_window: Duration,
}

#[derive(Debug, Clone)]
pub struct ApiSettings {
    /// Sent verbatim as the `Authorization` header when not empty.
    pub access_token: Secret,
    /// PEM client certificate (mutual TLS) file; empty = none.
    pub client_cert: String,
    /// PEM client key file (may be the same file as `client_cert`).
    pub client_key: String,
    /// PEM CA bundle file trusted for the API's server certificate; empty = none.
    pub ca_bundle: String,
    pub timeout: Duration,
    pub connect_timeout: Duration,
    pub max_in_flight: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperationsSettings {
    /// Where the operations HTTP endpoint listens; `None` = off.
    pub listen: Option<SocketAddr>,
}

#[derive(Debug, Clone)]
pub struct LogSettings {
    pub format: LogFormat,
    pub level: LogLevel,
}

/// Serialisation of bounce updates across replicas through a Redis lock (README,
/// "Several replicas").
#[derive(Clone)]
pub struct CoordinationSettings {
    /// The Redis server, with `redis_password` applied; `None` = coordination off.
    pub redis: Option<redis::ConnectionInfo>,
    /// `redis_url` with its password replaced, for logs and errors.
    pub shown_url: String,
    /// Prepended to every lock key.
    pub key_prefix: String,
    /// How long a lock lives unless its holder releases it (derived when configured as 0).
    pub lock_expiry: Duration,
    /// How long a message waits for its address's lock before it is answered 451.
    pub lock_acquire_timeout: Duration,
    /// Bound on connecting to Redis and on each command.
    pub redis_timeout: Duration,
}

impl std::fmt::Debug for CoordinationSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // `redis` holds the password: only the redacted URL is shown.
        f.debug_struct("CoordinationSettings")
            .field("enabled", &self.enabled())
            .field("redis_url", &self.shown_url)
            .field("key_prefix", &self.key_prefix)
            .field("lock_expiry", &self.lock_expiry)
            .field("lock_acquire_timeout", &self.lock_acquire_timeout)
            .field("redis_timeout", &self.redis_timeout)
            .finish()
    }
}

impl CoordinationSettings {
    pub fn enabled(&self) -> bool {
        self.redis.is_some()
    }
}

impl Settings {
    /// The configured domains, trimmed and lower-cased.
    pub fn domains(&self) -> &[String] {
        &self.inbound_smtp_server.domains
    }

    /// The API base URL: `internal_http_host` + `rest_api_root`, without a trailing slash.
    pub fn api_base(&self) -> &str {
        &self.api_base
    }

    /// Host name used in the greeting and the EHLO reply.
    pub fn hostname(&self) -> &str {
        &self.inbound_smtp_server.hostname
    }

    /// The listeners to open.
    pub fn listeners(&self) -> &[ListenerSettings] {
        &self.inbound_smtp_server.listeners
    }
}
