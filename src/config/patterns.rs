//! Configured regular expressions, compiled once and refused by name when they cannot run.

use regex::Regex;

use super::ConfigError;

/// Compiles one configured pattern. NotifyBC's patterns are JavaScript regexes; those the
/// `regex` crate cannot run (look-around, back-references) are refused here by name rather
/// than silently never matching.
pub fn compile_regex(key: &str, pattern: &str) -> Result<Option<Regex>, ConfigError> {
    if pattern.is_empty() {
        return Ok(None);
    }
    Regex::new(pattern).map(Some).map_err(|e| {
        let hint = if pattern.contains("(?=")
            || pattern.contains("(?!")
            || pattern.contains("(?<=")
            || pattern.contains("(?<!")
        {
            "a regular expression without look-around (not supported by the regex engine)"
                .to_string()
        } else {
            format!(
                "a valid regular expression ({})",
                first_line(&e.to_string())
            )
        };
        ConfigError::invalid(key, pattern, hint)
    })
}

fn first_line(s: &str) -> String {
    s.lines()
        .find(|l| l.starts_with("error:"))
        .unwrap_or_else(|| s.lines().last().unwrap_or(""))
        .trim()
        .to_string()
}
