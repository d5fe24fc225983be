//! Validation: everything that can be wrong with a setting is found here, at start, and a
//! bad value stops the process with the key, the value and what was expected. What passes
//! comes out typed ([`Settings`]): validating a value and parsing it are one step.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use super::log_level::LogLevel;
use super::patterns::{compile_js, compile_regex};
use super::raw::{RawApi, RawBounce, RawCoordination, RawSettings, RawSmtpServer, TlsMode};
use super::typed::{
    ApiSettings, BounceSettings, CoordinationSettings, ListenerSettings, LogSettings,
    OperationsSettings, Settings, SmtpLimits, SmtpServerSettings,
};
use super::{API_CALLS_UNDER_LOCK, ConfigError, redact_url_password};

impl RawSettings {
    /// Checks every value and gives the typed configuration, or the first bad value.
    pub fn validate(&self) -> Result<Settings, ConfigError> {
        let inbound_smtp_server = self.inbound_smtp_server.validate()?;
        let bounce = self.bounce.validate()?;
        let api_base = self.api_base()?;
        let api = self.api.validate()?;
        let listen = self.operations.listen.trim();
        let operations = OperationsSettings {
            listen: match listen {
                "" => None,
                text => Some(text.parse::<SocketAddr>().map_err(|_| {
                    ConfigError::invalid(
                        "operations.listen",
                        text,
                        "host:port such as 127.0.0.1:9025, or empty to turn it off",
                    )
                })?),
            },
        };
        let coordination = self.coordination.validate(&api)?;
        let level = LogLevel::parse(&self.log.level).map_err(|_| {
            ConfigError::invalid(
                "log.level",
                &self.log.level,
                "a level such as info, debug or warn (or a tracing filter directive)",
            )
        })?;
        Ok(Settings {
            api_base,
            inbound_smtp_server,
            list_unsubscribe_by_email: self.list_unsubscribe_by_email.clone(),
            bounce,
            api,
            operations,
            log: LogSettings {
                format: self.log.format,
                level,
            },
            coordination,
        })
    }

    /// `internal_http_host` + `rest_api_root`, without a trailing slash.
    fn api_base(&self) -> Result<String, ConfigError> {
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
        let host = host.trim_end_matches('/');
        let root = self.rest_api_root.trim_end_matches('/');
        Ok(if root.is_empty() || root.starts_with('/') {
            format!("{host}{root}")
        } else {
            format!("{host}/{root}")
        })
    }
}

/// Parses a configured IP address.
fn ip(key: &str, text: &str) -> Result<IpAddr, ConfigError> {
    text.parse()
        .map_err(|_| ConfigError::invalid(key, text, "an IP address such as 0.0.0.0 or ::"))
}

impl RawSmtpServer {
    fn validate(&self) -> Result<SmtpServerSettings, ConfigError> {
        let domains: Vec<String> = self
            .domain
            .split(',')
            .map(|d| d.trim().to_ascii_lowercase())
            .filter(|d| !d.is_empty())
            .collect();
        if domains.is_empty() {
            return Err(ConfigError::invalid(
                "inbound_smtp_server.domain",
                &self.domain,
                "a comma-separated list of one or more domain names",
            ));
        }
        for d in &domains {
            if !d
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
            {
                return Err(ConfigError::invalid(
                    "inbound_smtp_server.domain",
                    &self.domain,
                    "domain names of letters, digits, '-' and '.'",
                ));
            }
        }
        let listening_ip = ip("inbound_smtp_server.listening_ip", &self.listening_ip)?;
        // Both would leave one of them unheard: refuse rather than drop the port silently.
        if let (Some(port), false) = (self.listening_smtp_port, self.listeners.is_empty()) {
            return Err(ConfigError::invalid(
                "inbound_smtp_server.listening_smtp_port",
                port,
                "no port when [[inbound_smtp_server.listeners]] are given: \
                 add it as one more listener, or remove one of the two keys",
            ));
        }
        let mut listeners = Vec::with_capacity(self.listeners.len().max(1));
        for (i, l) in self.listeners.iter().enumerate() {
            let ip = ip(&format!("inbound_smtp_server.listeners[{i}].ip"), &l.ip)?;
            if l.proxy_protocol && self.trusted_proxies.is_empty() {
                return Err(ConfigError::invalid(
                    &format!("inbound_smtp_server.listeners[{i}].proxy_protocol"),
                    "true",
                    "inbound_smtp_server.trusted_proxies to list the proxies' address ranges",
                ));
            }
            listeners.push(ListenerSettings {
                addr: SocketAddr::new(ip, l.port),
                tls: l.tls,
                proxy_protocol: l.proxy_protocol,
                xclient: l.xclient,
            });
        }
        if listeners.is_empty() {
            listeners.push(ListenerSettings {
                addr: SocketAddr::new(listening_ip, self.listening_smtp_port.unwrap_or(0)),
                tls: if self.options.secure {
                    TlsMode::Implicit
                } else {
                    TlsMode::Starttls
                },
                proxy_protocol: false,
                xclient: false,
            });
        }
        let id_regex = compile_regex("inbound_smtp_server.id_regex", &self.id_regex)?;
        let code_regex = compile_regex("inbound_smtp_server.code_regex", &self.code_regex)?;
        let hostname = match self.hostname.trim() {
            "" => domains[0].clone(),
            h => h.to_string(),
        };
        let limits = self.validate_limits()?;
        self.validate_tls_files()?;
        Ok(SmtpServerSettings {
            enabled: self.enabled,
            domains,
            hostname,
            listeners,
            trusted_proxies: self.trusted_proxies.clone(),
            allowed_clients: self.allowed_clients.clone(),
            max_recipients_per_transaction: self.max_recipients_per_transaction,
            id_regex,
            code_regex,
            tls_reload_interval: Duration::from_secs(self.tls_reload_interval_secs),
            options: self.options.clone(),
            limits,
        })
    }

    fn validate_limits(&self) -> Result<SmtpLimits, ConfigError> {
        if self.options.size == 0 {
            return Err(ConfigError::invalid(
                "inbound_smtp_server.options.size",
                0,
                "a message size limit in bytes, greater than 0",
            ));
        }
        if self.max_recipients_per_transaction == 0 {
            return Err(ConfigError::invalid(
                "inbound_smtp_server.max_recipients_per_transaction",
                0,
                "at least 1",
            ));
        }
        let l = &self.limits;
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
        if self.tls_reload_interval_secs == 0 {
            return Err(ConfigError::invalid(
                "inbound_smtp_server.tls_reload_interval_secs",
                0,
                "a number of seconds greater than 0",
            ));
        }
        let secs = Duration::from_secs;
        Ok(SmtpLimits {
            max_connections: l.max_connections,
            max_connections_per_ip: l.max_connections_per_ip,
            command_timeout: secs(l.command_timeout_secs),
            data_timeout: secs(l.data_timeout_secs),
            session_timeout: secs(l.session_timeout_secs),
            proxy_header_timeout: secs(l.proxy_header_timeout_secs),
            max_commands: l.max_commands,
            max_errors: l.max_errors,
            max_transactions: l.max_transactions,
            shutdown_grace: secs(l.shutdown_grace_secs),
            drain_delay: secs(l.drain_delay_secs),
            failed_unsubscribe_threshold: l.failed_unsubscribe_threshold,
            failed_unsubscribe_window: secs(l.failed_unsubscribe_window_secs),
            failed_code_per_id_threshold: l.failed_code_per_id_threshold,
            failed_code_per_id_window: secs(l.failed_code_per_id_window_secs),
            max_connections_per_network: l.max_connections_per_network,
            stress_threshold_percent: l.stress_threshold_percent,
            stress_command_timeout: secs(l.stress_command_timeout_secs),
            max_noop_commands: l.max_noop_commands,
            max_inflight_bytes: l.max_inflight_bytes,
        })
    }

    fn validate_tls_files(&self) -> Result<(), ConfigError> {
        let o = &self.options;
        for (key, v) in [("options.key", &o.key), ("options.cert", &o.cert)] {
            if !v.is_empty() && !v.contains("-----BEGIN") && !Path::new(v).exists() {
                return Err(ConfigError::invalid(
                    &format!("inbound_smtp_server.{key}"),
                    v,
                    "PEM text or the path of an existing PEM file",
                ));
            }
        }
        if o.key.is_empty() != o.cert.is_empty() {
            return Err(ConfigError::invalid(
                "inbound_smtp_server.options.cert",
                &o.cert,
                "both options.key and options.cert, or neither (a self-signed certificate is made)",
            ));
        }
        Ok(())
    }
}

impl RawBounce {
    /// The `bounce` section with its filters compiled as they apply under `decision`.
    pub fn validate(&self) -> Result<BounceSettings, ConfigError> {
        let any_case = self.case_insensitive_domain || self.case_insensitive_local_part;
        Ok(BounceSettings {
            enabled: self.enabled,
            unsub_threshold: self.unsub_threshold,
            decision: self.decision,
            subject_regex: compile_js("bounce.subject_regex", self.subject_pattern(), false)?,
            smtp_status_code_regex: compile_js(
                "bounce.smtp_status_code_regex",
                self.status_code_pattern(),
                false,
            )?,
            failed_recipient_regex: compile_js(
                "bounce.failed_recipient_regex",
                self.failed_recipient_pattern(),
                any_case,
            )?,
            case_insensitive_domain: self.case_insensitive_domain,
            case_insensitive_local_part: self.case_insensitive_local_part,
            multiple_failed_recipients: self.multiple_failed_recipients,
            per_recipient_status: self.per_recipient_status,
            ignore_auto_replies: self.ignore_auto_replies,
            ignore_delays: self.ignore_delays,
            complaints_unsubscribe: self.complaints_unsubscribe,
            max_stored_message_bytes: self.max_stored_message_bytes,
            count_window: Duration::from_secs(self.count_window_secs),
        })
    }
}

impl RawApi {
    fn validate(&self) -> Result<ApiSettings, ConfigError> {
        if self.client_cert.is_empty() != self.client_key.is_empty() {
            return Err(ConfigError::invalid(
                "api.client_key",
                &self.client_key,
                "both api.client_cert and api.client_key, or neither",
            ));
        }
        for (key, v) in [
            ("api.client_cert", &self.client_cert),
            ("api.client_key", &self.client_key),
            ("api.ca_bundle", &self.ca_bundle),
        ] {
            if !v.is_empty() && !Path::new(v).exists() {
                return Err(ConfigError::invalid(
                    key,
                    v,
                    "the path of an existing PEM file",
                ));
            }
        }
        if self.timeout_ms == 0 || self.connect_timeout_ms == 0 || self.max_in_flight == 0 {
            return Err(ConfigError::invalid(
                "api.timeout_ms / api.connect_timeout_ms / api.max_in_flight",
                format!(
                    "{} / {} / {}",
                    self.timeout_ms, self.connect_timeout_ms, self.max_in_flight
                ),
                "numbers greater than 0",
            ));
        }
        Ok(ApiSettings {
            access_token: self.access_token.clone(),
            client_cert: self.client_cert.clone(),
            client_key: self.client_key.clone(),
            ca_bundle: self.ca_bundle.clone(),
            timeout: Duration::from_millis(self.timeout_ms),
            connect_timeout: Duration::from_millis(self.connect_timeout_ms),
            max_in_flight: self.max_in_flight,
        })
    }
}

impl RawCoordination {
    fn validate(&self, api: &ApiSettings) -> Result<CoordinationSettings, ConfigError> {
        let url = self.redis_url.trim();
        let shown_url = redact_url_password(url);
        let redis = if self.enabled() {
            let scheme_ok = url.starts_with("redis://") || url.starts_with("rediss://");
            let info = scheme_ok
                .then(|| redis::IntoConnectionInfo::into_connection_info(url).ok())
                .flatten()
                .ok_or_else(|| {
                    ConfigError::invalid(
                        "coordination.redis_url",
                        &shown_url,
                        "redis://host:6379/0 or rediss://host:6379/0 (TLS), optionally with \
                         user:password@ before the host, or empty to turn coordination off",
                    )
                })?;
            Some(if self.redis_password.is_empty() {
                info
            } else {
                let settings = info
                    .redis_settings()
                    .clone()
                    .set_password(self.redis_password.expose());
                info.set_redis_settings(settings)
            })
        } else {
            None
        };
        for (key, v) in [
            ("lock_acquire_timeout_ms", self.lock_acquire_timeout_ms),
            ("redis_timeout_ms", self.redis_timeout_ms),
        ] {
            if v == 0 {
                return Err(ConfigError::invalid(
                    &format!("coordination.{key}"),
                    0,
                    "a number of milliseconds greater than 0",
                ));
            }
        }
        let min = min_lock_expiry(api);
        let lock_expiry = match self.lock_expiry_ms {
            // The minimum plus a margin for the Redis round trips.
            0 => min.saturating_add(Duration::from_secs(5)),
            ms if Duration::from_millis(ms) < min => {
                return Err(ConfigError::invalid(
                    "coordination.lock_expiry_ms",
                    ms,
                    format!(
                        "0 (derived) or at least {} ms: {API_CALLS_UNDER_LOCK} API calls are \
                         made under the lock, each up to 2 × api.timeout_ms ({} ms) with the \
                         wait for a slot, and a lock must not expire under its holder",
                        min.as_millis(),
                        api.timeout.as_millis()
                    ),
                ));
            }
            ms => Duration::from_millis(ms),
        };
        Ok(CoordinationSettings {
            redis,
            shown_url,
            key_prefix: self.key_prefix.clone(),
            lock_expiry,
            lock_acquire_timeout: Duration::from_millis(self.lock_acquire_timeout_ms),
            redis_timeout: Duration::from_millis(self.redis_timeout_ms),
        })
    }
}

/// The shortest lock expiry that outlasts the work done under the lock: each API call may
/// wait `api.timeout_ms` for a slot among `api.max_in_flight` and then take
/// `api.timeout_ms` itself.
fn min_lock_expiry(api: &ApiSettings) -> Duration {
    api.timeout
        .saturating_mul(2)
        .saturating_mul(API_CALLS_UNDER_LOCK)
}
