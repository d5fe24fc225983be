//! Configuration (the README's Configuration section): the compiled-in `config.default.toml`, overlaid by
//! `config.local.toml` (or `--config FILE`), overlaid by `NOTIFY_INBOUND__SECTION__KEY`
//! environment variables. NotifyBC's camelCase key names (and its `email.` nesting) are
//! accepted and folded into our snake_case names before the layers are merged, so the two
//! spellings of one key can never both end up in the merged result.
//!
//! Everything that can be wrong with a setting is found here, at start: a bad value stops
//! the process with the key, the value and what was expected.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use ipnet::IpNet;
use serde::{Deserialize, Serialize};

/// The defaults, compiled into the binary.
pub const DEFAULT_TOML: &str = include_str!("../config.default.toml");

/// The environment variable prefix; sections and keys are separated by `__`.
pub const ENV_PREFIX: &str = "NOTIFY_INBOUND__";

/// What went wrong while loading the configuration; every variant names the key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read configuration file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("configuration file {path} is not valid TOML: {message}")]
    Syntax { path: PathBuf, message: String },
    #[error("invalid configuration: {0}")]
    Figment(String),
    #[error("invalid configuration: key `{key}` = {value:?}: expected {expected}")]
    Invalid {
        key: String,
        value: String,
        expected: String,
    },
}

impl ConfigError {
    pub fn invalid(key: &str, value: impl ToString, expected: impl ToString) -> Self {
        ConfigError::Invalid {
            key: key.to_string(),
            value: value.to_string(),
            expected: expected.to_string(),
        }
    }
}

/// The whole effective configuration.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub internal_http_host: String,
    pub rest_api_root: String,
    pub inbound_smtp_server: SmtpServerSettings,
    pub list_unsubscribe_by_email: ListUnsubscribeSettings,
    pub bounce: BounceSettings,
    pub api: ApiSettings,
    pub operations: OperationsSettings,
    pub log: LogSettings,
    #[serde(default)]
    pub coordination: CoordinationSettings,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmtpServerSettings {
    pub enabled: bool,
    /// Comma-separated list of the domains we receive for.
    pub domain: String,
    pub listening_ip: String,
    /// Absent: a random free port.
    #[serde(default)]
    pub listening_smtp_port: Option<u16>,
    /// Name used in the greeting and EHLO reply; empty = the first configured domain.
    pub hostname: String,
    pub trusted_proxies: Vec<IpNet>,
    pub allowed_clients: Vec<IpNet>,
    pub max_recipients_per_transaction: usize,
    pub id_regex: String,
    pub code_regex: String,
    /// How often the certificate and key files are checked for changes.
    pub tls_reload_interval_secs: u64,
    pub options: SmtpOptions,
    pub limits: SmtpLimits,
    /// Extra listeners; when empty, the NotifyBC form above defines the one listener.
    #[serde(default)]
    pub listeners: Vec<ListenerSettings>,
}

/// NotifyBC's `inboundSmtpServer.options` (the Nodemailer SMTPServer options we honour).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SmtpOptions {
    /// true: the NotifyBC-form listener speaks TLS from the first byte.
    pub secure: bool,
    /// PEM private key: the PEM text itself or a file path.
    pub key: String,
    /// PEM certificate chain: the PEM text itself or a file path.
    pub cert: String,
    /// Largest message accepted, in bytes.
    pub size: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmtpLimits {
    pub max_connections: usize,
    pub max_connections_per_ip: usize,
    pub command_timeout_secs: u64,
    pub data_timeout_secs: u64,
    pub session_timeout_secs: u64,
    pub proxy_header_timeout_secs: u64,
    pub max_commands: usize,
    pub max_errors: usize,
    pub max_transactions: usize,
    pub shutdown_grace_secs: u64,
    /// On SIGTERM: seconds the listeners keep accepting, with `/readyz` already 503, before
    /// they close (see the README's Operations section).
    pub drain_delay_secs: u64,
    pub failed_unsubscribe_threshold: usize,
    pub failed_unsubscribe_window_secs: u64,
    /// Wrong codes for one subscription id before that id gets 450 4.7.1 (0 = off).
    pub failed_code_per_id_threshold: usize,
    pub failed_code_per_id_window_secs: u64,
    /// Connections from one IPv4 /24 or IPv6 /64 (0 = no limit).
    pub max_connections_per_network: usize,
    /// Percentage of `max_connections` open from which the server sheds idle sessions
    /// (0 = never).
    pub stress_threshold_percent: usize,
    /// Under stress: seconds a session may go without a command that does work.
    pub stress_command_timeout_secs: u64,
    /// Commands that do no work (NOOP, RSET, VRFY, HELP, a repeated EHLO) per session.
    pub max_noop_commands: usize,
    /// Message bytes held in memory by all sessions together.
    pub max_inflight_bytes: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TlsMode {
    /// STARTTLS offered (when a certificate is available).
    Starttls,
    /// TLS from the first byte.
    Implicit,
    /// Plain text only.
    None,
}

/// The configuration spelling (`starttls`, `implicit`, `none`), as logged.
impl std::fmt::Display for TlsMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            TlsMode::Starttls => "starttls",
            TlsMode::Implicit => "implicit",
            TlsMode::None => "none",
        })
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenerSettings {
    #[serde(default)]
    pub port: u16,
    #[serde(default = "default_listen_ip")]
    pub ip: String,
    #[serde(default = "default_tls_mode")]
    pub tls: TlsMode,
    #[serde(default)]
    pub proxy_protocol: bool,
    #[serde(default)]
    pub xclient: bool,
}

fn default_listen_ip() -> String {
    "0.0.0.0".to_string()
}

fn default_tls_mode() -> TlsMode {
    TlsMode::Starttls
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListUnsubscribeSettings {
    pub enabled: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BounceSettings {
    pub enabled: bool,
    pub unsub_threshold: u32,
    /// Who decides whether a bounce counts (README, "Bounce classification").
    pub decision: BounceDecision,
    /// NotifyBC's filters. Absent: off under the classifier's decision, NotifyBC's default
    /// under `decision = "notifybc"` (see [`BounceSettings::subject_pattern`]); set (even
    /// to `""`, which is off) they apply as configured in both.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject_regex: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub smtp_status_code_regex: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_recipient_regex: Option<String>,
    pub case_insensitive_domain: bool,
    pub case_insensitive_local_part: bool,
    pub multiple_failed_recipients: bool,
    pub per_recipient_status: bool,
    pub ignore_auto_replies: bool,
    pub ignore_delays: bool,
    pub complaints_unsubscribe: bool,
    /// 0 = store the whole message (NotifyBC's behaviour).
    pub max_stored_message_bytes: usize,
    /// 0 = off; otherwise at most one counted hard bounce per address per window.
    pub count_window_secs: u64,
}

/// `bounce.decision`: which rule decides whether a bounce counts toward the threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BounceDecision {
    /// The subscriber's own entry in the report must be a permanent, hard failure;
    /// NotifyBC's filters are extra conditions where they are set.
    Classifier,
    /// NotifyBC's rule: its filters over the whole text of the message.
    Notifybc,
}

/// NotifyBC's default `smtpStatusCodeRegex`.
pub const NOTIFYBC_STATUS_CODE_REGEX: &str = r"5\.\d{1,3}\.\d{1,3}";

/// NotifyBC's default `failedRecipientRegex` (an RFC 5322 address, lower case only).
pub const NOTIFYBC_FAILED_RECIPIENT_REGEX: &str = r#"(?:[a-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[a-z0-9!#$%&'*+/=?^_`{|}~-]+)*|"(?:[\x01-\x08\x0b\x0c\x0e-\x1f\x21\x23-\x5b\x5d-\x7f]|\\[\x01-\x09\x0b\x0c\x0e-\x7f])*")@(?:(?:[a-z0-9](?:[a-z0-9-]*[a-z0-9])?\.)+[a-z0-9](?:[a-z0-9-]*[a-z0-9])?|\[(?:(?:(2(5[0-5]|[0-4][0-9])|1[0-9][0-9]|[1-9]?[0-9]))\.){3}(?:(2(5[0-5]|[0-4][0-9])|1[0-9][0-9]|[1-9]?[0-9])|[a-z0-9-]*[a-z0-9]:(?:[\x01-\x08\x0b\x0c\x0e-\x1f\x21-\x5a\x53-\x7f]|\\[\x01-\x09\x0b\x0c\x0e-\x7f])+)\])"#;

impl BounceSettings {
    /// The effective `subject_regex` (empty = off): off unless set, in both modes.
    pub fn subject_pattern(&self) -> &str {
        self.subject_regex.as_deref().unwrap_or("")
    }

    /// The effective `smtp_status_code_regex` (empty = off).
    pub fn status_code_pattern(&self) -> &str {
        match (&self.smtp_status_code_regex, self.decision) {
            (Some(p), _) => p,
            (None, BounceDecision::Notifybc) => NOTIFYBC_STATUS_CODE_REGEX,
            (None, BounceDecision::Classifier) => "",
        }
    }

    /// The effective `failed_recipient_regex` (empty = off).
    pub fn failed_recipient_pattern(&self) -> &str {
        match (&self.failed_recipient_regex, self.decision) {
            (Some(p), _) => p,
            (None, BounceDecision::Notifybc) => NOTIFYBC_FAILED_RECIPIENT_REGEX,
            (None, BounceDecision::Classifier) => "",
        }
    }
}

#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiSettings {
    /// Sent verbatim as the `Authorization` header when not empty.
    pub access_token: String,
    /// PEM client certificate (mutual TLS) file.
    pub client_cert: String,
    /// PEM client key file (may be the same file as `client_cert`).
    pub client_key: String,
    /// PEM CA bundle file trusted for the API's server certificate.
    pub ca_bundle: String,
    pub timeout_ms: u64,
    pub connect_timeout_ms: u64,
    pub max_in_flight: usize,
}

impl std::fmt::Debug for ApiSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiSettings")
            .field("access_token", &redact(&self.access_token))
            .field("client_cert", &self.client_cert)
            .field("client_key", &self.client_key)
            .field("ca_bundle", &self.ca_bundle)
            .field("timeout_ms", &self.timeout_ms)
            .field("connect_timeout_ms", &self.connect_timeout_ms)
            .field("max_in_flight", &self.max_in_flight)
            .finish()
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OperationsSettings {
    /// `host:port` of the operations HTTP endpoint; empty = off.
    pub listen: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSettings {
    pub format: LogFormat,
    pub level: String,
}

/// Serialisation of bounce updates across replicas through a Redis lock (README,
/// "Several replicas").
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CoordinationSettings {
    /// `redis://[user:password@]host:port/db` or `rediss://…` (TLS); empty = off.
    pub redis_url: String,
    /// Overrides a password in `redis_url`; empty = the URL's, if any.
    pub redis_password: String,
    /// Prepended to every lock key.
    pub key_prefix: String,
    /// How long a lock lives unless its holder releases it; 0 = derived from `api.timeout_ms`.
    pub lock_expiry_ms: u64,
    /// How long a message waits for its address's lock before it is answered 451.
    pub lock_acquire_timeout_ms: u64,
    /// Bound on connecting to Redis and on each command.
    pub redis_timeout_ms: u64,
}

impl Default for CoordinationSettings {
    fn default() -> Self {
        CoordinationSettings {
            redis_url: String::new(),
            redis_password: String::new(),
            key_prefix: "notify-inbound:lock:".to_string(),
            lock_expiry_ms: 0,
            lock_acquire_timeout_ms: 10_000,
            redis_timeout_ms: 2_000,
        }
    }
}

impl std::fmt::Debug for CoordinationSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CoordinationSettings")
            .field("redis_url", &redact_url_password(&self.redis_url))
            .field("redis_password", &redact(&self.redis_password))
            .field("key_prefix", &self.key_prefix)
            .field("lock_expiry_ms", &self.lock_expiry_ms)
            .field("lock_acquire_timeout_ms", &self.lock_acquire_timeout_ms)
            .field("redis_timeout_ms", &self.redis_timeout_ms)
            .finish()
    }
}

/// API calls made while one address's lock is held, at most: read the bounce record, write
/// it, unsubscribe, retire the record.
pub const API_CALLS_UNDER_LOCK: u64 = 4;

impl CoordinationSettings {
    pub fn enabled(&self) -> bool {
        !self.redis_url.trim().is_empty()
    }

    /// The shortest lock expiry that outlasts the work done under the lock: each API call
    /// may wait `api.timeout_ms` for a slot among `api.max_in_flight` and then take
    /// `api.timeout_ms` itself.
    pub fn min_lock_expiry_ms(api: &ApiSettings) -> u64 {
        API_CALLS_UNDER_LOCK
            .saturating_mul(2)
            .saturating_mul(api.timeout_ms)
    }

    /// `lock_expiry_ms`, or when 0 the minimum plus a margin for the Redis round trips.
    pub fn effective_lock_expiry_ms(&self, api: &ApiSettings) -> u64 {
        if self.lock_expiry_ms > 0 {
            self.lock_expiry_ms
        } else {
            Self::min_lock_expiry_ms(api).saturating_add(5_000)
        }
    }
}

/// A URL with the password of its user information replaced, for logs and error messages.
pub fn redact_url_password(text: &str) -> String {
    match url::Url::parse(text) {
        Ok(mut u) if u.password().is_some() => {
            if u.set_password(Some("redacted")).is_err() {
                return "<redacted URL>".to_string();
            }
            u.to_string()
        }
        Ok(_) => text.to_string(),
        // Not a URL: it may still hold a secret; show nothing of what follows an `@`.
        Err(_) if text.contains('@') => "<redacted URL>".to_string(),
        Err(_) => text.to_string(),
    }
}

fn redact(secret: &str) -> &'static str {
    if secret.is_empty() { "" } else { "<redacted>" }
}

/// Where the configuration comes from, besides the compiled-in defaults.
#[derive(Debug, Clone, Default)]
pub struct Sources {
    /// `--config FILE`; when `None`, `config.local.toml` in the working directory if present.
    pub file: Option<PathBuf>,
    /// Read `NOTIFY_INBOUND__*` environment variables.
    pub env: bool,
}

impl Settings {
    /// Loads and validates the configuration from the defaults, the file and the environment.
    pub fn load(sources: &Sources) -> Result<Settings, ConfigError> {
        let mut figment = Figment::new().merge(Toml::string(DEFAULT_TOML));
        let local = match &sources.file {
            Some(path) => Some(path.clone()),
            None => {
                let p = PathBuf::from("config.local.toml");
                p.exists().then_some(p)
            }
        };
        let mut written = None;
        if let Some(path) = local {
            let value = read_toml(&path)?;
            figment = figment.merge(Serialized::defaults(normalize(value.clone())));
            written = Some(value);
        }
        if sources.env {
            figment = figment.merge(Env::prefixed(ENV_PREFIX).split("__"));
        }
        let settings: Settings = figment
            .extract()
            .map_err(|e| ConfigError::Figment(describe_figment_error(e, written.as_ref())))?;
        settings.validate()?;
        Ok(settings)
    }

    /// The defaults alone, validated: what `notify-inbound` runs with out of the box.
    pub fn defaults() -> Result<Settings, ConfigError> {
        Self::load(&Sources {
            file: None,
            env: false,
        })
    }

    /// Parses a configuration from TOML text layered over the defaults (tests, tools).
    pub fn from_toml_str(text: &str) -> Result<Settings, ConfigError> {
        let value: toml::Value = toml::from_str(text).map_err(|e| ConfigError::Syntax {
            path: PathBuf::from("<string>"),
            message: e.to_string(),
        })?;
        let settings: Settings = Figment::new()
            .merge(Toml::string(DEFAULT_TOML))
            .merge(Serialized::defaults(normalize(value.clone())))
            .extract()
            .map_err(|e| ConfigError::Figment(describe_figment_error(e, Some(&value))))?;
        settings.validate()?;
        Ok(settings)
    }

    /// The configured domains, trimmed and lower-cased.
    pub fn domains(&self) -> Vec<String> {
        self.inbound_smtp_server
            .domain
            .split(',')
            .map(|d| d.trim().to_ascii_lowercase())
            .filter(|d| !d.is_empty())
            .collect()
    }

    /// The API base URL: `internal_http_host` + `rest_api_root`, without a trailing slash.
    pub fn api_base(&self) -> String {
        let host = self.internal_http_host.trim_end_matches('/');
        let root = self.rest_api_root.trim_end_matches('/');
        if root.is_empty() || root.starts_with('/') {
            format!("{host}{root}")
        } else {
            format!("{host}/{root}")
        }
    }

    /// Host name used in the greeting and the EHLO reply.
    pub fn hostname(&self) -> String {
        let h = self.inbound_smtp_server.hostname.trim();
        if !h.is_empty() {
            return h.to_string();
        }
        self.domains()
            .into_iter()
            .next()
            .unwrap_or_else(|| "localhost".to_string())
    }

    /// The listeners to open: the `listeners` array, or the one NotifyBC-form listener.
    pub fn listeners(&self) -> Vec<ListenerSettings> {
        let s = &self.inbound_smtp_server;
        if !s.listeners.is_empty() {
            return s.listeners.clone();
        }
        vec![ListenerSettings {
            port: s.listening_smtp_port.unwrap_or(0),
            ip: s.listening_ip.clone(),
            tls: if s.options.secure {
                TlsMode::Implicit
            } else {
                TlsMode::Starttls
            },
            proxy_protocol: false,
            xclient: false,
        }]
    }

    /// A copy safe to print: secrets replaced.
    pub fn redacted(&self) -> Settings {
        let mut s = self.clone();
        // The filters as they apply under the chosen decision: an unset filter means the
        // same as the value printed, so the printed configuration reads back the same.
        let b = &mut s.bounce;
        b.subject_regex = Some(b.subject_pattern().to_string());
        b.smtp_status_code_regex = Some(b.status_code_pattern().to_string());
        b.failed_recipient_regex = Some(b.failed_recipient_pattern().to_string());
        if !s.api.access_token.is_empty() {
            s.api.access_token = "<redacted>".into();
        }
        if s.inbound_smtp_server.options.key.contains("-----BEGIN") {
            s.inbound_smtp_server.options.key = "<redacted PEM>".into();
        }
        if !s.coordination.redis_password.is_empty() {
            s.coordination.redis_password = "<redacted>".into();
        }
        s.coordination.redis_url = redact_url_password(&s.coordination.redis_url);
        s
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let s = &self.inbound_smtp_server;
        if self.domains().is_empty() {
            return Err(ConfigError::invalid(
                "inbound_smtp_server.domain",
                &s.domain,
                "a comma-separated list of one or more domain names",
            ));
        }
        for d in self.domains() {
            if !d
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
            {
                return Err(ConfigError::invalid(
                    "inbound_smtp_server.domain",
                    &s.domain,
                    "domain names of letters, digits, '-' and '.'",
                ));
            }
        }
        if s.listening_ip.parse::<IpAddr>().is_err() {
            return Err(ConfigError::invalid(
                "inbound_smtp_server.listening_ip",
                &s.listening_ip,
                "an IP address such as 0.0.0.0 or ::",
            ));
        }
        // Both would leave one of them unheard: refuse rather than drop the port silently.
        if let (Some(port), false) = (s.listening_smtp_port, s.listeners.is_empty()) {
            return Err(ConfigError::invalid(
                "inbound_smtp_server.listening_smtp_port",
                port,
                "no port when [[inbound_smtp_server.listeners]] are given: \
                 add it as one more listener, or remove one of the two keys",
            ));
        }
        for (i, l) in s.listeners.iter().enumerate() {
            if l.ip.parse::<IpAddr>().is_err() {
                return Err(ConfigError::invalid(
                    &format!("inbound_smtp_server.listeners[{i}].ip"),
                    &l.ip,
                    "an IP address such as 0.0.0.0 or ::",
                ));
            }
            if l.proxy_protocol && s.trusted_proxies.is_empty() {
                return Err(ConfigError::invalid(
                    &format!("inbound_smtp_server.listeners[{i}].proxy_protocol"),
                    "true",
                    "inbound_smtp_server.trusted_proxies to list the proxies' address ranges",
                ));
            }
        }
        for (key, pattern) in [
            ("inbound_smtp_server.id_regex", s.id_regex.as_str()),
            ("inbound_smtp_server.code_regex", s.code_regex.as_str()),
            ("bounce.subject_regex", self.bounce.subject_pattern()),
            (
                "bounce.smtp_status_code_regex",
                self.bounce.status_code_pattern(),
            ),
            (
                "bounce.failed_recipient_regex",
                self.bounce.failed_recipient_pattern(),
            ),
        ] {
            compile_regex(key, pattern)?;
        }
        if s.options.size == 0 {
            return Err(ConfigError::invalid(
                "inbound_smtp_server.options.size",
                0,
                "a message size limit in bytes, greater than 0",
            ));
        }
        if s.max_recipients_per_transaction == 0 {
            return Err(ConfigError::invalid(
                "inbound_smtp_server.max_recipients_per_transaction",
                0,
                "at least 1",
            ));
        }
        let l = &s.limits;
        for (key, v) in [
            ("max_connections", l.max_connections as u64),
            ("max_connections_per_ip", l.max_connections_per_ip as u64),
            ("command_timeout_secs", l.command_timeout_secs),
            ("data_timeout_secs", l.data_timeout_secs),
            ("session_timeout_secs", l.session_timeout_secs),
            ("proxy_header_timeout_secs", l.proxy_header_timeout_secs),
            ("max_commands", l.max_commands as u64),
            ("max_errors", l.max_errors as u64),
            ("max_transactions", l.max_transactions as u64),
            ("stress_command_timeout_secs", l.stress_command_timeout_secs),
            ("max_noop_commands", l.max_noop_commands as u64),
            ("max_inflight_bytes", l.max_inflight_bytes as u64),
        ] {
            if v == 0 {
                return Err(ConfigError::invalid(
                    &format!("inbound_smtp_server.limits.{key}"),
                    0,
                    "a number greater than 0",
                ));
            }
        }
        if s.tls_reload_interval_secs == 0 {
            return Err(ConfigError::invalid(
                "inbound_smtp_server.tls_reload_interval_secs",
                0,
                "a number of seconds greater than 0",
            ));
        }
        for (key, v) in [
            ("options.key", &s.options.key),
            ("options.cert", &s.options.cert),
        ] {
            if !v.is_empty() && !v.contains("-----BEGIN") && !Path::new(v).exists() {
                return Err(ConfigError::invalid(
                    &format!("inbound_smtp_server.{key}"),
                    v,
                    "PEM text or the path of an existing PEM file",
                ));
            }
        }
        if s.options.key.is_empty() != s.options.cert.is_empty() {
            return Err(ConfigError::invalid(
                "inbound_smtp_server.options.cert",
                &s.options.cert,
                "both options.key and options.cert, or neither (a self-signed certificate is made)",
            ));
        }
        let host = &self.internal_http_host;
        if !(host.starts_with("http://") || host.starts_with("https://"))
            || url::Url::parse(host).is_err()
        {
            return Err(ConfigError::invalid(
                "internal_http_host",
                host,
                "an http:// or https:// URL such as http://notifybc:3000",
            ));
        }
        let a = &self.api;
        if a.client_cert.is_empty() != a.client_key.is_empty() {
            return Err(ConfigError::invalid(
                "api.client_key",
                &a.client_key,
                "both api.client_cert and api.client_key, or neither",
            ));
        }
        for (key, v) in [
            ("api.client_cert", &a.client_cert),
            ("api.client_key", &a.client_key),
            ("api.ca_bundle", &a.ca_bundle),
        ] {
            if !v.is_empty() && !Path::new(v).exists() {
                return Err(ConfigError::invalid(
                    key,
                    v,
                    "the path of an existing PEM file",
                ));
            }
        }
        if a.timeout_ms == 0 || a.connect_timeout_ms == 0 || a.max_in_flight == 0 {
            return Err(ConfigError::invalid(
                "api.timeout_ms / api.connect_timeout_ms / api.max_in_flight",
                format!(
                    "{} / {} / {}",
                    a.timeout_ms, a.connect_timeout_ms, a.max_in_flight
                ),
                "numbers greater than 0",
            ));
        }
        let ops = self.operations.listen.trim();
        if !ops.is_empty() && ops.parse::<SocketAddr>().is_err() {
            return Err(ConfigError::invalid(
                "operations.listen",
                ops,
                "host:port such as 127.0.0.1:9025, or empty to turn it off",
            ));
        }
        self.validate_coordination()?;
        if crate::logging::filter(&self.log.level, None).is_err() {
            return Err(ConfigError::invalid(
                "log.level",
                &self.log.level,
                "a level such as info, debug or warn (or a tracing filter directive)",
            ));
        }
        Ok(())
    }
}

impl Settings {
    fn validate_coordination(&self) -> Result<(), ConfigError> {
        let c = &self.coordination;
        if c.enabled() {
            let url = c.redis_url.trim();
            let scheme_ok = url.starts_with("redis://") || url.starts_with("rediss://");
            if !scheme_ok || redis::IntoConnectionInfo::into_connection_info(url).is_err() {
                return Err(ConfigError::invalid(
                    "coordination.redis_url",
                    redact_url_password(url),
                    "redis://host:6379/0 or rediss://host:6379/0 (TLS), optionally with \
                     user:password@ before the host, or empty to turn coordination off",
                ));
            }
        }
        for (key, v) in [
            ("lock_acquire_timeout_ms", c.lock_acquire_timeout_ms),
            ("redis_timeout_ms", c.redis_timeout_ms),
        ] {
            if v == 0 {
                return Err(ConfigError::invalid(
                    &format!("coordination.{key}"),
                    0,
                    "a number of milliseconds greater than 0",
                ));
            }
        }
        let min = CoordinationSettings::min_lock_expiry_ms(&self.api);
        if c.lock_expiry_ms != 0 && c.lock_expiry_ms < min {
            return Err(ConfigError::invalid(
                "coordination.lock_expiry_ms",
                c.lock_expiry_ms,
                format!(
                    "0 (derived) or at least {min} ms: {API_CALLS_UNDER_LOCK} API calls are \
                     made under the lock, each up to 2 × api.timeout_ms ({} ms) with the wait \
                     for a slot, and a lock must not expire under its holder",
                    self.api.timeout_ms
                ),
            ));
        }
        Ok(())
    }
}

mod keys;
mod patterns;

pub use patterns::compile_regex;

use keys::{describe_figment_error, read_toml};
pub use keys::{normalize, snake_case};

#[cfg(test)]
mod tests;
