//! Key spellings: NotifyBC's camelCase names and `email` nesting folded into ours, and
//! errors that name a key the way its author wrote it.

use std::path::Path;

use super::ConfigError;

/// Figment's errors in the user's words: an unknown key is named as it was written
/// (camelCase stays camelCase), with the nearest known key as a suggestion.
pub(super) fn describe_figment_error(e: figment::Error, written: Option<&toml::Value>) -> String {
    e.into_iter()
        .map(|e| {
            if let figment::error::Kind::UnknownField(field, expected) = &e.kind {
                return unknown_key(&e.path, field, expected, written);
            }
            let key = if e.path.is_empty() {
                String::new()
            } else {
                format!("key `{}`: ", e.path.join("."))
            };
            let from = e
                .metadata
                .as_ref()
                .map(|m| format!(" (from {})", m.name))
                .unwrap_or_default();
            format!("{key}{}{from}", e.kind)
        })
        .collect::<Vec<_>>()
        .join("; ")
}

fn unknown_key(
    path: &[String],
    field: &str,
    expected: &[&str],
    written: Option<&toml::Value>,
) -> String {
    let parents = path.strip_suffix(&[field.to_string()]).unwrap_or(path);
    let (mut shown, as_written) = spelled_as_written(written, parents, field);
    shown.push(as_written.clone());
    let camel = as_written.chars().any(|c| c.is_ascii_uppercase());
    let nearest = expected
        .iter()
        .map(|k| (strsim::jaro_winkler(field, k), *k))
        .filter(|(score, _)| *score >= 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, k)| if camel { camel_case(k) } else { k.to_string() });
    let hint = match nearest {
        Some(k) => format!("; did you mean `{k}`?"),
        None => format!("; known keys here: {}", expected.join(", ")),
    };
    format!("unknown key `{}`{hint}", shown.join("."))
}

/// The table path and the key as the user spelled them, found through their snake_case
/// forms (and NotifyBC's `email` table); our spelling where the text is not at hand.
fn spelled_as_written(
    written: Option<&toml::Value>,
    parents: &[String],
    field: &str,
) -> (Vec<String>, String) {
    let ours = || (parents.to_vec(), field.to_string());
    let Some(toml::Value::Table(top)) = written else {
        return ours();
    };
    let find = |t: &toml::Table, name: &str| {
        t.iter()
            .find(|(k, _)| snake_case(k) == name)
            .map(|(k, v)| (k.clone(), v.clone()))
    };
    let mut table = top.clone();
    let mut shown = Vec::new();
    if let Some(first) = parents.first()
        && find(&table, first).is_none()
        && let Some((email, toml::Value::Table(inner))) = find(&table, "email")
    {
        shown.push(email);
        table = inner;
    }
    for p in parents {
        match find(&table, p) {
            Some((k, toml::Value::Table(inner))) => {
                shown.push(k);
                table = inner;
            }
            _ => return ours(),
        }
    }
    match find(&table, field) {
        Some((k, _)) => (shown, k),
        None => ours(),
    }
}

/// `subject_regex` → `subjectRegex`, for suggestions to someone writing camelCase.
fn camel_case(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    let mut upper = false;
    for c in key.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.push(c.to_ascii_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

pub(super) fn read_toml(path: &Path) -> Result<toml::Value, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let value: toml::Value = toml::from_str(&text).map_err(|e| ConfigError::Syntax {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    Ok(value)
}

/// Folds NotifyBC's spellings into ours: camelCase keys become snake_case, and the
/// `email` table of newer NotifyBC versions (`email.inboundSmtpServer`, `email.bounce`,
/// `email.listUnsubscribeByEmail`) is lifted to the top level.
pub fn normalize(value: toml::Value) -> toml::Value {
    let mut value = snake_keys(value);
    if let toml::Value::Table(top) = &mut value
        && let Some(toml::Value::Table(email)) = top.remove("email")
    {
        for (k, v) in email {
            top.entry(k).or_insert(v);
        }
    }
    value
}

fn snake_keys(value: toml::Value) -> toml::Value {
    match value {
        toml::Value::Table(t) => toml::Value::Table(
            t.into_iter()
                .map(|(k, v)| (snake_case(&k), snake_keys(v)))
                .collect(),
        ),
        toml::Value::Array(a) => toml::Value::Array(a.into_iter().map(snake_keys).collect()),
        other => other,
    }
}

/// `listeningSmtpPort` → `listening_smtp_port`; snake_case names pass unchanged.
pub fn snake_case(key: &str) -> String {
    let mut out = String::with_capacity(key.len() + 4);
    for (i, c) in key.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}
