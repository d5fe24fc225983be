//! Configuration (the README's Configuration section): the compiled-in `config.default.toml`, overlaid by
//! `config.local.toml` (or `--config FILE`), overlaid by `NOTIFY_INBOUND__SECTION__KEY`
//! environment variables. NotifyBC's camelCase key names (and its `email.` nesting) are
//! accepted and folded into our snake_case names before the layers are merged, so the two
//! spellings of one key can never both end up in the merged result.
//!
//! Everything that can be wrong with a setting is found here, at start: a bad value stops
//! the process with the key, the value and what was expected. Loading gives the typed
//! [`Settings`] (addresses parsed, regular expressions compiled, durations as `Duration`);
//! the rest of the service takes its values from there and parses nothing again.
//!
//! - [`raw`]: the serde shape of the files, as written (what `check-config` prints);
//! - `keys`: NotifyBC's spellings folded into ours, unknown keys named as written;
//! - `validate`: checks the raw values and builds the typed ones;
//! - [`typed`]: the validated configuration;
//! - `patterns`, `log_level`: the configured regular expressions and log filter.

use std::path::PathBuf;

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

/// API calls made while one address's lock is held, at most: read the bounce record, write
/// it, unsubscribe, retire the record.
pub const API_CALLS_UNDER_LOCK: u32 = 4;

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

/// A credential from the configuration (`api.access_token`, `coordination.redis_password`):
/// used as it is, and printed as `<redacted>` (when set) by every `{:?}`, so no log line or
/// error message carries it.
#[derive(Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<&str> for Secret {
    fn from(s: &str) -> Secret {
        Secret(s.to_string())
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", redact(&self.0))
    }
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
        RawSettings::load(sources)?.validate()
    }

    /// The defaults alone, validated: what `notify-inbound` runs with out of the box.
    pub fn defaults() -> Result<Settings, ConfigError> {
        RawSettings::defaults()?.validate()
    }

    /// Parses a configuration from TOML text layered over the defaults (tests, tools).
    pub fn from_toml_str(text: &str) -> Result<Settings, ConfigError> {
        RawSettings::from_toml_str(text)?.validate()
    }
}

mod keys;
mod log_level;
mod patterns;
pub mod raw;
pub mod typed;
mod validate;

pub use keys::{normalize, snake_case};
pub use log_level::LogLevel;
pub use patterns::{compile_regex, js_compat};
pub use raw::{
    BounceDecision, ListUnsubscribeSettings, LogFormat, NOTIFYBC_FAILED_RECIPIENT_REGEX,
    NOTIFYBC_STATUS_CODE_REGEX, RawApi, RawBounce, RawCoordination, RawLimits, RawListener, RawLog,
    RawOperations, RawSettings, RawSmtpServer, SmtpOptions, TlsMode,
};
pub use typed::{
    ApiSettings, BounceSettings, CoordinationSettings, ListenerSettings, LogSettings,
    OperationsSettings, Settings, SmtpLimits, SmtpServerSettings,
};

#[cfg(test)]
mod tests;
