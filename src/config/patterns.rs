//! Configured regular expressions, compiled once and refused by name when they cannot run;
//! NotifyBC's bounce filters in their JavaScript meaning.

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

/// NotifyBC's patterns are JavaScript regular expressions, in which `\d`, `\w` and `\b`
/// are ASCII-only; in the `regex` crate they are Unicode-aware. Rewrite them to their
/// ASCII meaning, and escape the characters that are literal in a JavaScript character
/// class but operators in a `regex` class (`[`, `&&`, `~~`, `--`).
pub fn js_compat(pattern: &str) -> String {
    let mut out = String::with_capacity(pattern.len() + 16);
    let mut in_class = false;
    let mut chars = pattern.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                let Some(n) = chars.next() else {
                    out.push('\\');
                    break;
                };
                let rewrite = match (n, in_class) {
                    ('d', false) => "[0-9]",
                    ('D', false) => "[^0-9]",
                    ('w', false) => "[0-9A-Za-z_]",
                    ('W', false) => "[^0-9A-Za-z_]",
                    ('b', false) => "(?-u:\\b)",
                    ('B', false) => "(?-u:\\B)",
                    ('d', true) => "0-9",
                    ('w', true) => "0-9A-Za-z_",
                    _ => "",
                };
                if rewrite.is_empty() {
                    out.push('\\');
                    out.push(n);
                } else {
                    out.push_str(rewrite);
                }
            }
            '[' if !in_class => {
                in_class = true;
                out.push('[');
                if chars.peek() == Some(&'^') {
                    out.push('^');
                    chars.next();
                }
                // A `]` first in a JavaScript class closes an empty class; keep it literal
                // only in the `regex` sense it already has.
            }
            '[' => out.push_str("\\["),
            ']' if in_class => {
                in_class = false;
                out.push(']');
            }
            '&' | '~' if in_class => {
                out.push('\\');
                out.push(c);
            }
            '-' if in_class && chars.peek() == Some(&'-') => out.push_str("\\-"),
            _ => out.push(c),
        }
    }
    out
}

/// Compiles one of NotifyBC's (JavaScript) bounce filters; `case_insensitive` adds the
/// `i` flag, which the case-insensitive address options need so that the whole address
/// is found.
pub(super) fn compile_js(
    key: &str,
    pattern: &str,
    case_insensitive: bool,
) -> Result<Option<Regex>, ConfigError> {
    if pattern.is_empty() {
        return Ok(None);
    }
    // Report errors against the pattern as configured, not the rewritten one.
    compile_regex(key, pattern)?;
    let rewritten = js_compat(pattern);
    if case_insensitive {
        compile_regex(key, &format!("(?i:{rewritten})"))
    } else {
        compile_regex(key, &rewritten)
    }
}
