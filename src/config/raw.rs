//! The configuration as written: the serde shape of the files and environment variables
//! (key names, defaults, unknown-key errors), loaded through figment and not yet
//! validated. [`RawSettings::validate`] turns it into the typed
//! [`Settings`](super::Settings); `check-config` prints it back through
//! [`RawSettings::redacted`].

use std::path::PathBuf;

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use super::keys::{describe_figment_error, normalize, read_toml};
use super::{ConfigError, DEFAULT_TOML, ENV_PREFIX, Secret, Sources, redact_url_password};

/// The whole configuration, as the layers merged it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSettings {
    pub internal_http_host: String,
    pub rest_api_root: String,
    pub inbound_smtp_server: RawSmtpServer,
    pub list_unsubscribe_by_email: ListUnsubscribeSettings,
    pub bounce: RawBounce,
    pub api: RawApi,
    pub operations: RawOperations,
    pub log: RawLog,
    #[serde(default)]
    pub coordination: RawCoordination,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSmtpServer {
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
    pub limits: RawLimits,
    /// Extra listeners; when empty, the NotifyBC form above defines the one listener.
    #[serde(default)]
    pub listeners: Vec<RawListener>,
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

/// `inbound_smtp_server.limits`; the typed form is [`SmtpLimits`](super::SmtpLimits), which
/// documents each limit.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLimits {
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
    pub drain_delay_secs: u64,
    pub failed_unsubscribe_threshold: usize,
    pub failed_unsubscribe_window_secs: u64,
    pub failed_code_per_id_threshold: usize,
    pub failed_code_per_id_window_secs: u64,
    pub max_connections_per_network: usize,
    pub stress_threshold_percent: usize,
    pub stress_command_timeout_secs: u64,
    pub max_noop_commands: usize,
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
pub struct RawListener {
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

/// `bounce`; the typed form is [`BounceSettings`](super::BounceSettings).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBounce {
    pub enabled: bool,
    pub unsub_threshold: u32,
    /// Who decides whether a bounce counts (README, "Bounce classification").
    pub decision: BounceDecision,
    /// NotifyBC's filters. Absent: off under the classifier's decision, NotifyBC's default
    /// under `decision = "notifybc"` (see [`RawBounce::subject_pattern`]); set (even
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

impl RawBounce {
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

/// `api`; the typed form is [`ApiSettings`](super::ApiSettings).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawApi {
    pub access_token: Secret,
    pub client_cert: String,
    pub client_key: String,
    pub ca_bundle: String,
    pub timeout_ms: u64,
    pub connect_timeout_ms: u64,
    pub max_in_flight: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawOperations {
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
pub struct RawLog {
    pub format: LogFormat,
    pub level: String,
}

/// `coordination`; the typed form is [`CoordinationSettings`](super::CoordinationSettings).
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCoordination {
    pub redis_url: String,
    pub redis_password: Secret,
    pub key_prefix: String,
    /// 0 = derived from `api.timeout_ms`.
    pub lock_expiry_ms: u64,
    pub lock_acquire_timeout_ms: u64,
    pub redis_timeout_ms: u64,
}

impl Default for RawCoordination {
    fn default() -> Self {
        RawCoordination {
            redis_url: String::new(),
            redis_password: Secret::default(),
            key_prefix: "notify-inbound:lock:".to_string(),
            lock_expiry_ms: 0,
            lock_acquire_timeout_ms: 10_000,
            redis_timeout_ms: 2_000,
        }
    }
}

impl std::fmt::Debug for RawCoordination {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawCoordination")
            .field("redis_url", &redact_url_password(&self.redis_url))
            .field("redis_password", &self.redis_password)
            .field("key_prefix", &self.key_prefix)
            .field("lock_expiry_ms", &self.lock_expiry_ms)
            .field("lock_acquire_timeout_ms", &self.lock_acquire_timeout_ms)
            .field("redis_timeout_ms", &self.redis_timeout_ms)
            .finish()
    }
}

impl RawCoordination {
    pub fn enabled(&self) -> bool {
        !self.redis_url.trim().is_empty()
    }
}

impl RawSettings {
    /// Loads the configuration from the defaults, the file and the environment, without
    /// validating it.
    pub fn load(sources: &Sources) -> Result<RawSettings, ConfigError> {
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
        figment
            .extract()
            .map_err(|e| ConfigError::Figment(describe_figment_error(e, written.as_ref())))
    }

    /// The defaults alone (and `config.local.toml` when present), not validated.
    pub fn defaults() -> Result<RawSettings, ConfigError> {
        Self::load(&Sources {
            file: None,
            env: false,
        })
    }

    /// TOML text layered over the defaults, not validated.
    pub fn from_toml_str(text: &str) -> Result<RawSettings, ConfigError> {
        let value: toml::Value = toml::from_str(text).map_err(|e| ConfigError::Syntax {
            path: PathBuf::from("<string>"),
            message: e.to_string(),
        })?;
        Figment::new()
            .merge(Toml::string(DEFAULT_TOML))
            .merge(Serialized::defaults(normalize(value.clone())))
            .extract()
            .map_err(|e| ConfigError::Figment(describe_figment_error(e, Some(&value))))
    }

    /// A copy safe to print: secrets replaced.
    pub fn redacted(&self) -> RawSettings {
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
}
