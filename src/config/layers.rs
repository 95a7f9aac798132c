//! The three layers of settings, the file, `TUTTI_*` environment variables
//! and flags, merged key by key (later layers win) with every key and value
//! checked against its definition in [`super::keys`] as it comes in.

use super::keys::{FlagValue, Flags, Key, Names, NumberMap, ValueKind, KEYS};
use super::ConfigError;
use std::path::Path;
use toml::{Table, Value};

/// The password may come from this variable instead of a file.
const PASSWORD_VAR: &str = "TUTTI_MQTT_PASSWORD";
/// The HTTP API's bearer token may come from this variable instead of a file.
const TOKEN_VAR: &str = "TUTTI_HTTP_TOKEN";
/// Kept for `tutti analyze`, which reads it too.
const MODEL_VAR: &str = "TUTTI_MODEL";
/// The log level, read by the logger rather than the settings.
const LOG_VAR: &str = "TUTTI_LOG";

fn known_keys() -> String {
    KEYS.iter().map(Key::dotted).collect::<Vec<_>>().join(", ")
}

/// The three layers, before checking.
#[derive(Debug, Default, Clone)]
pub struct Layers {
    pub(super) merged: Table,
    pub(super) password_from_env: Option<String>,
    pub(super) token_from_env: Option<String>,
}

impl Layers {
    /// Reads the TOML file at `path`. A missing file is an error only when
    /// `required` (the user named it); the default path may be absent.
    pub fn file(&mut self, path: &Path, required: bool) -> Result<&mut Self, ConfigError> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if !required && e.kind() == std::io::ErrorKind::NotFound => return Ok(self),
            Err(source) => {
                return Err(ConfigError::Read {
                    path: path.to_path_buf(),
                    source,
                })
            }
        };
        let table: Table = text.parse().map_err(|e: toml::de::Error| {
            let at = e.span().map_or(0, |s| s.start).min(text.len());
            let line = text[..at].matches('\n').count() + 1;
            let column = at - text[..at].rfind('\n').map_or(0, |i| i + 1) + 1;
            ConfigError::Parse {
                path: path.to_path_buf(),
                reason: format!(
                    "line {line}, column {column}: {}",
                    e.message().trim().replace('\n', "; ")
                ),
            }
        })?;
        let name = path.display().to_string();
        for (section, value) in table {
            let Value::Table(keys) = value else {
                return Err(ConfigError::UnknownKey {
                    source_name: name,
                    key: section,
                    known: known_keys(),
                });
            };
            for (key, value) in keys {
                self.set(&name, &section, &key, value)?;
            }
        }
        Ok(self)
    }

    /// Takes `TUTTI_*` variables from `vars` (usually `std::env::vars()`).
    pub fn env(
        &mut self,
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<&mut Self, ConfigError> {
        for (name, text) in vars {
            if !name.starts_with("TUTTI_") {
                continue;
            }
            if name == PASSWORD_VAR {
                self.password_from_env = Some(text);
                continue;
            }
            if name == TOKEN_VAR {
                self.token_from_env = Some(text);
                continue;
            }
            if name == LOG_VAR {
                continue;
            }
            let key = if name == MODEL_VAR {
                Key::find("analysis", "model")
            } else {
                KEYS.iter().find(|k| k.env_var() == name)
            };
            let Some(key) = key else {
                return Err(ConfigError::UnknownKey {
                    source_name: "environment".into(),
                    key: name,
                    known: KEYS
                        .iter()
                        .map(Key::env_var)
                        .chain([PASSWORD_VAR, TOKEN_VAR, MODEL_VAR, LOG_VAR].map(String::from))
                        .collect::<Vec<_>>()
                        .join(", "),
                });
            };
            let value = parse_text(&name, key, &text)?;
            self.set(&name, key.section, key.name, value)?;
        }
        Ok(self)
    }

    /// Takes the flags given on the command line; clap has typed them.
    pub fn flags(&mut self, flags: &Flags) -> Result<&mut Self, ConfigError> {
        for (key, value) in flags.given() {
            self.set(&format!("--{}", key.flag), key.section, key.name, value)?;
        }
        Ok(self)
    }

    fn set(
        &mut self,
        source: &str,
        section: &str,
        key: &str,
        value: Value,
    ) -> Result<(), ConfigError> {
        let Some(&Key { kind, .. }) = Key::find(section, key) else {
            return Err(ConfigError::UnknownKey {
                source_name: source.to_string(),
                key: format!("{section}.{key}"),
                known: known_keys(),
            });
        };
        let type_error = |want: &'static str| ConfigError::Type {
            source_name: source.to_string(),
            key: format!("{section}.{key}"),
            want,
            got: value.to_string(),
        };
        let value = match (kind, &value) {
            (ValueKind::Text, Value::String(_)) => value.clone(),
            // A device index or channel number may be written as a number.
            (ValueKind::Text, Value::Integer(i)) => Value::String(i.to_string()),
            (ValueKind::Text, _) => return Err(type_error("text")),
            (ValueKind::Number, Value::Float(_)) => value.clone(),
            (ValueKind::Number, Value::Integer(i)) => Value::Float(*i as f64),
            (ValueKind::Number, _) => return Err(type_error("a number")),
            (ValueKind::Count, Value::Integer(i)) if *i >= 0 => value.clone(),
            (ValueKind::Count, _) => return Err(type_error("a whole number >= 0")),
            (ValueKind::List, Value::Array(items)) if items.iter().all(Value::is_str) => {
                value.clone()
            }
            (ValueKind::List, _) => return Err(type_error("a list of names")),
            (ValueKind::Map, Value::Table(t)) => {
                let mut numbers = Table::new();
                for (name, v) in t {
                    let n = match v {
                        Value::Float(f) => *f,
                        Value::Integer(i) => *i as f64,
                        _ => return Err(type_error("a table of numbers by name")),
                    };
                    numbers.insert(name.clone(), Value::Float(n));
                }
                Value::Table(numbers)
            }
            (ValueKind::Map, _) => return Err(type_error("a table of numbers by name")),
        };
        let section = self
            .merged
            .entry(section.to_string())
            .or_insert_with(|| Value::Table(Table::new()))
            .as_table_mut()
            .expect("sections are tables");
        match (section.get_mut(key), value) {
            // A map merges name by name: a later layer's name wins.
            (Some(Value::Table(earlier)), Value::Table(later)) if kind == ValueKind::Map => {
                earlier.extend(later)
            }
            (_, value) => {
                section.insert(key.to_string(), value);
            }
        }
        Ok(())
    }

    pub(super) fn text(&self, section: &str, key: &str) -> Option<&str> {
        self.merged
            .get(section)?
            .get(key)?
            .as_str()
            .filter(|s| !s.is_empty())
    }

    /// A text key as given, empty or not: `None` when no layer set it.
    pub(super) fn raw_text(&self, section: &str, key: &str) -> Option<&str> {
        self.merged.get(section)?.get(key)?.as_str()
    }

    pub(super) fn number(&self, section: &str, key: &str) -> Option<f64> {
        self.merged.get(section)?.get(key)?.as_float()
    }

    pub(super) fn count(&self, section: &str, key: &str) -> Option<i64> {
        self.merged.get(section)?.get(key)?.as_integer()
    }

    /// A list of names, in the order given.
    pub(super) fn list(&self, section: &str, key: &str) -> Vec<String> {
        let items = self.merged.get(section).and_then(|s| s.get(key));
        items
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(String::from)
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Numbers by name, sorted by name.
    pub(super) fn map(&self, section: &str, key: &str) -> Vec<(String, f64)> {
        let table = self.merged.get(section).and_then(|s| s.get(key));
        table
            .and_then(Value::as_table)
            .map(|t| {
                t.iter()
                    .filter_map(|(n, v)| Some((n.clone(), v.as_float()?)))
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// A value given as text (an environment variable) typed as `key` wants.
fn parse_text(source: &str, key: &Key, text: &str) -> Result<Value, ConfigError> {
    let bad = |want| ConfigError::Type {
        source_name: source.to_string(),
        key: key.dotted(),
        want,
        got: format!("{text:?}"),
    };
    Ok(match key.kind {
        ValueKind::Text => Value::String(text.to_string()),
        ValueKind::Number => Value::Float(text.trim().parse().map_err(|_| bad("a number"))?),
        ValueKind::Count => Value::Integer(
            text.trim()
                .parse::<u32>()
                .map_err(|_| bad("a whole number >= 0"))?
                .into(),
        ),
        ValueKind::List => text
            .parse::<Names>()
            .map_err(|_| bad("a list of names"))?
            .value(),
        ValueKind::Map => text
            .parse::<NumberMap>()
            .map_err(|_| bad("NAME=NUMBER,…"))?
            .value(),
    })
}
