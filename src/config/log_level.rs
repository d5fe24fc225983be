//! `log.level` (and `RUST_LOG`): tracing filter directives, checked when read and turned
//! into the subscriber's filter by the logging set-up.

use tracing_subscriber::EnvFilter;

/// A checked log filter: a level such as `info`, or directives such as
/// `info,notify_inbound=debug`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLevel(String);

impl LogLevel {
    /// Checks `text`; the error says why it is not a filter.
    pub fn parse(text: &str) -> Result<LogLevel, String> {
        let value = text.trim();
        // EnvFilter reads a lone word that is not a level as a target name ("verbose" =
        // trace for a module named verbose, nothing else), which silently turns logging
        // off; a lone word from an operator is meant as a level.
        let is_lone_word = !value.contains(['=', ',', '[', ':']);
        if is_lone_word
            && value
                .parse::<tracing::level_filters::LevelFilter>()
                .is_err()
        {
            return Err("not a level (trace, debug, info, warn, error, off)".into());
        }
        EnvFilter::try_new(value).map_err(|e| e.to_string())?;
        Ok(LogLevel(value.to_string()))
    }

    /// The filter as written (trimmed).
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// A subscriber filter for these directives (`EnvFilter` cannot be cloned, so each
    /// subscriber gets its own).
    pub fn env_filter(&self) -> EnvFilter {
        // Checked in `parse`: nothing is lost.
        EnvFilter::builder().parse_lossy(&self.0)
    }
}

impl std::fmt::Display for LogLevel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}
