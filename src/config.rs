//! Configuration of the live daemon (`tutti listen`): one set of keys,
//! read from the TOML file (`/etc/tutti/tutti.toml`), from `TUTTI_*`
//! environment variables and from command-line flags, later sources winning
//! in that order. The three layers are merged key by key, then checked once
//! into [`Settings`], whose values are ready to use. Unknown keys, in any
//! layer, are refused with their name.

use crate::detect::Hysteresis;
use std::path::{Path, PathBuf};
use toml::{Table, Value};

/// Where the daemon looks for its configuration file by default.
pub const DEFAULT_PATH: &str = "/etc/tutti/tutti.toml";

/// Configuration errors; each names the file, variable or key at fault.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: cannot read: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {reason}")]
    Parse { path: PathBuf, reason: String },
    #[error("{source_name}: unknown setting `{key}` (known: {known})")]
    UnknownKey {
        source_name: String,
        key: String,
        known: String,
    },
    #[error("{source_name}: `{key}` must be {want}, got {got}")]
    Type {
        source_name: String,
        key: String,
        want: &'static str,
        got: String,
    },
    #[error("`{key}` = {value}: {reason}")]
    Invalid {
        key: &'static str,
        value: String,
        reason: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Text,
    Number,
    Count,
}

/// Every key, its type and its environment variable's name (derived:
/// `TUTTI_<SECTION>_<KEY>`).
const KEYS: &[(&str, &str, Kind)] = &[
    ("input", "device", Kind::Text),
    ("input", "channel", Kind::Text),
    ("input", "sample_rate", Kind::Count),
    ("input", "period_frames", Kind::Count),
    ("analysis", "model", Kind::Text),
    ("analysis", "hop", Kind::Number),
    ("analysis", "hold", Kind::Number),
    ("analysis", "margin", Kind::Number),
    ("mqtt", "broker", Kind::Text),
    ("mqtt", "device_id", Kind::Text),
    ("mqtt", "topic_prefix", Kind::Text),
    ("mqtt", "username", Kind::Text),
    ("mqtt", "password_file", Kind::Text),
    ("mqtt", "ca_file", Kind::Text),
    ("mqtt", "client_cert", Kind::Text),
    ("mqtt", "client_key", Kind::Text),
    ("mqtt", "discovery_prefix", Kind::Text),
    ("mqtt", "embedded_port", Kind::Count),
    ("state", "directory", Kind::Text),
    ("state", "outbox_mb", Kind::Count),
];

/// The password may come from this variable instead of a file.
const PASSWORD_VAR: &str = "TUTTI_MQTT_PASSWORD";
/// Kept for `tutti analyze`, which reads it too.
const MODEL_VAR: &str = "TUTTI_MODEL";
/// The log level, read by the logger rather than the settings.
const LOG_VAR: &str = "TUTTI_LOG";

fn env_name(section: &str, key: &str) -> String {
    format!("TUTTI_{}_{}", section, key).to_uppercase()
}

fn known_keys() -> String {
    KEYS.iter()
        .map(|(s, k, _)| format!("{s}.{k}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Where captured audio comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    /// The system's default capture device.
    Default,
    /// A capture device by its index in `tutti devices`.
    Index(usize),
    /// A capture device by name.
    Device(String),
    /// A WAV file played through the pipeline at real-time pace.
    File(PathBuf),
}

/// Which channel of the input is analysed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    /// The average of all channels.
    Mix,
    /// One channel, counted from 1.
    Only(u16),
}

/// The MQTT broker to publish to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Broker {
    /// tutti's own broker on 127.0.0.1:1883.
    Embedded,
    Remote {
        host: String,
        port: u16,
        tls: bool,
    },
}

/// A secret that never shows in logs or `Debug` output.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct MqttSettings {
    pub broker: Broker,
    pub device_id: String,
    pub topic_prefix: String,
    pub username: Option<String>,
    pub password: Option<Secret>,
    pub ca_file: Option<PathBuf>,
    pub client_cert: Option<PathBuf>,
    pub client_key: Option<PathBuf>,
    /// Home Assistant discovery prefix; `None` turns discovery off.
    pub discovery_prefix: Option<String>,
    /// The embedded broker's port on 127.0.0.1 (used when `broker` is
    /// [`Broker::Embedded`]).
    pub embedded_port: u16,
}

/// The checked configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub input: Input,
    pub channel: Channel,
    /// The rate to open the capture device at; `None`: its default.
    pub sample_rate: Option<u32>,
    /// Frames per capture period; `None`: the device's default.
    pub period_frames: Option<u32>,
    /// `None`: the installed model.
    pub model: Option<PathBuf>,
    pub hop_seconds: f64,
    pub hysteresis: Hysteresis,
    pub mqtt: MqttSettings,
    pub state_dir: PathBuf,
    pub outbox_bytes: u64,
}

/// The three layers, before checking.
#[derive(Debug, Default, Clone)]
pub struct Layers {
    merged: Table,
    password_from_env: Option<String>,
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
            if name == LOG_VAR {
                continue;
            }
            let (section, key) = if name == MODEL_VAR {
                ("analysis", "model")
            } else {
                match KEYS.iter().find(|(s, k, _)| env_name(s, k) == name) {
                    Some((s, k, _)) => (*s, *k),
                    None => {
                        return Err(ConfigError::UnknownKey {
                            source_name: "environment".into(),
                            key: name,
                            known: KEYS
                                .iter()
                                .map(|(s, k, _)| env_name(s, k))
                                .chain([PASSWORD_VAR, MODEL_VAR, LOG_VAR].map(String::from))
                                .collect::<Vec<_>>()
                                .join(", "),
                        })
                    }
                }
            };
            let value = parse_text(&name, section, key, &text)?;
            self.set(&name, section, key, value)?;
        }
        Ok(self)
    }

    /// Sets `section.key` from a command-line flag's text.
    pub fn flag(
        &mut self,
        flag: &str,
        section: &str,
        key: &str,
        text: &str,
    ) -> Result<&mut Self, ConfigError> {
        let value = parse_text(flag, section, key, text)?;
        self.set(flag, section, key, value)?;
        Ok(self)
    }

    fn set(
        &mut self,
        source: &str,
        section: &str,
        key: &str,
        value: Value,
    ) -> Result<(), ConfigError> {
        let Some((_, _, kind)) = KEYS.iter().find(|(s, k, _)| *s == section && *k == key) else {
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
            (Kind::Text, Value::String(_)) => value.clone(),
            // A device index or channel number may be written as a number.
            (Kind::Text, Value::Integer(i)) => Value::String(i.to_string()),
            (Kind::Text, _) => return Err(type_error("text")),
            (Kind::Number, Value::Float(_)) => value.clone(),
            (Kind::Number, Value::Integer(i)) => Value::Float(*i as f64),
            (Kind::Number, _) => return Err(type_error("a number")),
            (Kind::Count, Value::Integer(i)) if *i >= 0 => value.clone(),
            (Kind::Count, _) => return Err(type_error("a whole number >= 0")),
        };
        self.merged
            .entry(section.to_string())
            .or_insert_with(|| Value::Table(Table::new()))
            .as_table_mut()
            .expect("sections are tables")
            .insert(key.to_string(), value);
        Ok(())
    }

    fn text(&self, section: &str, key: &str) -> Option<&str> {
        self.merged
            .get(section)?
            .get(key)?
            .as_str()
            .filter(|s| !s.is_empty())
    }

    fn number(&self, section: &str, key: &str) -> Option<f64> {
        self.merged.get(section)?.get(key)?.as_float()
    }

    fn count(&self, section: &str, key: &str) -> Option<i64> {
        self.merged.get(section)?.get(key)?.as_integer()
    }

    /// Checks the merged layers. `hostname` names the machine, for the
    /// default device id; `default_state` is the state directory used when none
    /// is set (`default_state_dir`), `/var/lib/tutti` when `None`.
    pub fn check(
        &self,
        hostname: &str,
        default_state: Option<&str>,
    ) -> Result<Settings, ConfigError> {
        let input = match self.text("input", "device") {
            None | Some("default") => Input::Default,
            Some(d) if d.to_lowercase().ends_with(".wav") || Path::new(d).is_file() => {
                Input::File(PathBuf::from(d))
            }
            Some(d) => d
                .parse()
                .map(Input::Index)
                .unwrap_or_else(|_| Input::Device(d.to_string())),
        };
        let channel = match self.text("input", "channel") {
            None | Some("mix") => Channel::Mix,
            Some(c) => match c.parse::<u16>() {
                Ok(n) if n >= 1 => Channel::Only(n),
                _ => {
                    return Err(ConfigError::Invalid {
                        key: "input.channel",
                        value: format!("{c:?}"),
                        reason: "use \"mix\" or a channel number from 1".into(),
                    })
                }
            },
        };
        let optional_count = |key: &'static str, range: std::ops::RangeInclusive<i64>| {
            let (section, name) = key.split_once('.').expect("keys have a section");
            match self.count(section, name) {
                None | Some(0) => Ok(None),
                Some(n) if range.contains(&n) => Ok(Some(n as u32)),
                Some(n) => Err(ConfigError::Invalid {
                    key,
                    value: n.to_string(),
                    reason: format!(
                        "must be 0 (the device's default) or from {} to {}",
                        range.start(),
                        range.end()
                    ),
                }),
            }
        };
        let sample_rate = optional_count("input.sample_rate", 1000..=768_000)?;
        let period_frames = optional_count("input.period_frames", 16..=1_000_000)?;
        let positive = |key: &'static str, value: f64| {
            if value.is_finite() && value > 0.0 {
                Ok(value)
            } else {
                Err(ConfigError::Invalid {
                    key,
                    value: value.to_string(),
                    reason: "must be a positive number of seconds".into(),
                })
            }
        };
        let hop_seconds = positive(
            "analysis.hop",
            self.number("analysis", "hop").unwrap_or(0.5),
        )?;
        let defaults = Hysteresis::default();
        let hold = self
            .number("analysis", "hold")
            .unwrap_or(defaults.hold_seconds);
        if !(hold.is_finite() && hold >= 0.0) {
            return Err(ConfigError::Invalid {
                key: "analysis.hold",
                value: hold.to_string(),
                reason: "must be 0 or more seconds".into(),
            });
        }
        let margin = self
            .number("analysis", "margin")
            .unwrap_or(f64::from(defaults.margin));
        if !(0.0..1.0).contains(&margin) {
            return Err(ConfigError::Invalid {
                key: "analysis.margin",
                value: margin.to_string(),
                reason: "must be in [0, 1)".into(),
            });
        }
        let device_id = match self.text("mqtt", "device_id") {
            Some(id) => {
                if id.is_empty() || id.contains(['/', '+', '#']) {
                    return Err(ConfigError::Invalid {
                        key: "mqtt.device_id",
                        value: format!("{id:?}"),
                        reason: "must not contain '/', '+' or '#'".into(),
                    });
                }
                id.to_string()
            }
            None => device_id_from(hostname),
        };
        let topic_prefix = match self.text("mqtt", "topic_prefix") {
            Some(p) if p.contains(['+', '#']) || p.ends_with('/') => {
                return Err(ConfigError::Invalid {
                    key: "mqtt.topic_prefix",
                    value: format!("{p:?}"),
                    reason: "must not contain wildcards or end with '/'".into(),
                })
            }
            Some(p) => p.to_string(),
            None => format!("tutti/{device_id}"),
        };
        let password = match (self.text("mqtt", "password_file"), &self.password_from_env) {
            (Some(file), _) => {
                let text = std::fs::read_to_string(file).map_err(|source| ConfigError::Read {
                    path: PathBuf::from(file),
                    source,
                })?;
                Some(Secret(text.trim_end_matches(['\r', '\n']).to_string()))
            }
            (None, Some(p)) => Some(Secret(p.clone())),
            (None, None) => None,
        };
        let path = |key| self.text("mqtt", key).map(PathBuf::from);
        let embedded_port = match self.count("mqtt", "embedded_port").unwrap_or(1883) {
            p @ 1..=65535 => p as u16,
            p => {
                return Err(ConfigError::Invalid {
                    key: "mqtt.embedded_port",
                    value: p.to_string(),
                    reason: "must be a port number from 1 to 65535".into(),
                })
            }
        };
        let mqtt = MqttSettings {
            broker: parse_broker(self.text("mqtt", "broker"))?,
            device_id,
            topic_prefix,
            username: self.text("mqtt", "username").map(String::from),
            password,
            ca_file: path("ca_file"),
            client_cert: path("client_cert"),
            client_key: path("client_key"),
            discovery_prefix: match self
                .merged
                .get("mqtt")
                .and_then(|m| m.get("discovery_prefix"))
            {
                // Present but empty: discovery off.
                Some(Value::String(s)) if s.is_empty() => None,
                Some(Value::String(s)) => Some(s.clone()),
                _ => Some("homeassistant".into()),
            },
            embedded_port,
        };
        if mqtt.client_cert.is_some() != mqtt.client_key.is_some() {
            return Err(ConfigError::Invalid {
                key: "mqtt.client_cert",
                value: format!("{:?}", mqtt.client_cert),
                reason: "a client certificate needs mqtt.client_key, and the reverse".into(),
            });
        }
        let outbox_mb = self.count("state", "outbox_mb").unwrap_or(64);
        Ok(Settings {
            input,
            channel,
            sample_rate,
            period_frames,
            model: self.text("analysis", "model").map(PathBuf::from),
            hop_seconds,
            hysteresis: Hysteresis {
                hold_seconds: hold,
                margin: margin as f32,
            },
            mqtt,
            state_dir: self
                .text("state", "directory")
                .or(default_state.filter(|s| !s.is_empty()))
                .map_or_else(|| PathBuf::from("/var/lib/tutti"), PathBuf::from),
            outbox_bytes: outbox_mb as u64 * 1024 * 1024,
        })
    }
}

/// A value given as text (environment, flags) typed as the key wants.
fn parse_text(source: &str, section: &str, key: &str, text: &str) -> Result<Value, ConfigError> {
    let kind = KEYS
        .iter()
        .find(|(s, k, _)| *s == section && *k == key)
        .map(|(_, _, kind)| *kind)
        .unwrap_or(Kind::Text);
    let bad = |want| ConfigError::Type {
        source_name: source.to_string(),
        key: format!("{section}.{key}"),
        want,
        got: format!("{text:?}"),
    };
    Ok(match kind {
        Kind::Text => Value::String(text.to_string()),
        Kind::Number => Value::Float(text.trim().parse().map_err(|_| bad("a number"))?),
        Kind::Count => Value::Integer(
            text.trim()
                .parse::<u32>()
                .map_err(|_| bad("a whole number >= 0"))?
                .into(),
        ),
    })
}

fn parse_broker(url: Option<&str>) -> Result<Broker, ConfigError> {
    let Some(url) = url else {
        return Ok(Broker::Embedded);
    };
    let invalid = |reason: &str| ConfigError::Invalid {
        key: "mqtt.broker",
        value: format!("{url:?}"),
        reason: reason.to_string(),
    };
    let (tls, rest) = if let Some(r) = url.strip_prefix("mqtts://") {
        (true, r)
    } else if let Some(r) = url.strip_prefix("mqtt://") {
        (false, r)
    } else {
        return Err(invalid("use mqtt://host[:port] or mqtts://host[:port]"));
    };
    let rest = rest.trim_end_matches('/');
    let (host, port) = match rest.rsplit_once(':') {
        Some((h, p)) => (
            h,
            p.parse::<u16>()
                .ok()
                .filter(|&p| p > 0)
                .ok_or_else(|| invalid("the port must be a number from 1 to 65535"))?,
        ),
        None => (rest, if tls { 8883 } else { 1883 }),
    };
    if host.is_empty() || host.contains('/') {
        return Err(invalid("the host is missing"));
    }
    Ok(Broker::Remote {
        host: host.to_string(),
        port,
        tls,
    })
}

/// A device id from a host name: lower case, and only letters, digits, `-`
/// and `_` (what MQTT topics and Home Assistant ids accept everywhere).
fn device_id_from(hostname: &str) -> String {
    let id: String = hostname
        .trim()
        .to_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if id.is_empty() {
        "tutti".into()
    } else {
        id
    }
}

/// Where the outbox goes when neither the file, the environment nor a flag
/// sets `state.directory`: systemd's `$STATE_DIRECTORY`; for root,
/// `/var/lib/tutti` (`None` here: `Layers::check`'s own default); for anyone
/// else, who cannot write there, `$XDG_STATE_HOME/tutti`, else
/// `~/.local/state/tutti`. `var` reads the environment.
pub fn default_state_dir(var: impl Fn(&str) -> Option<String>, root: bool) -> Option<String> {
    let set = |name: &str| var(name).filter(|v| !v.is_empty());
    if let Some(dir) = set("STATE_DIRECTORY") {
        return Some(dir);
    }
    if root {
        return None;
    }
    set("XDG_STATE_HOME")
        .map(|d| format!("{d}/tutti"))
        .or_else(|| set("HOME").map(|h| format!("{h}/.local/state/tutti")))
}

/// Whether tutti runs as root (effective user id 0).
pub fn running_as_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// This machine's host name, as the kernel reports it.
pub fn hostname() -> String {
    // uname(2), not /proc/sys/kernel/hostname: the systemd unit hides
    // /proc/sys (ProcSubset=pid).
    rustix::system::uname()
        .nodename()
        .to_string_lossy()
        .trim()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn the_shipped_example_config_loads_with_its_documented_values() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/tutti.toml");
        let s = Layers::default()
            .file(&path, true)
            .unwrap()
            .check("Pi-Kitchen.local", None)
            .unwrap();
        assert_eq!(s.input, Input::Default);
        assert_eq!(s.channel, Channel::Mix);
        assert_eq!((s.sample_rate, s.period_frames), (None, None));
        assert_eq!(s.model, None);
        assert_eq!(s.hop_seconds, 0.5);
        assert_eq!(s.hysteresis, Hysteresis::default());
        assert_eq!(s.mqtt.broker, Broker::Embedded);
        assert_eq!(s.mqtt.device_id, "pi-kitchen_local");
        assert_eq!(s.mqtt.topic_prefix, "tutti/pi-kitchen_local");
        assert_eq!(s.mqtt.discovery_prefix.as_deref(), Some("homeassistant"));
        assert_eq!(s.mqtt.password, None);
        assert_eq!(s.state_dir, PathBuf::from("/var/lib/tutti"));
        assert_eq!(s.outbox_bytes, 64 << 20);
    }

    #[test]
    fn the_state_directory_defaults_to_systemd_s_then_root_s_then_the_user_s() {
        let env = |list: &'static [(&str, &str)]| {
            move |name: &str| {
                list.iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| v.to_string())
            }
        };
        let all = env(&[
            ("STATE_DIRECTORY", "/var/lib/private/tutti"),
            ("XDG_STATE_HOME", "/home/ana/.state"),
            ("HOME", "/home/ana"),
        ]);
        assert_eq!(
            default_state_dir(all, false).as_deref(),
            Some("/var/lib/private/tutti")
        );
        let user = env(&[
            ("XDG_STATE_HOME", "/home/ana/.state"),
            ("HOME", "/home/ana"),
        ]);
        assert_eq!(default_state_dir(user, true), None);
        assert_eq!(
            default_state_dir(user, false).as_deref(),
            Some("/home/ana/.state/tutti")
        );
        let home = env(&[("XDG_STATE_HOME", ""), ("HOME", "/home/ana")]);
        assert_eq!(
            default_state_dir(home, false).as_deref(),
            Some("/home/ana/.local/state/tutti")
        );
        // Root's default is check's own; a set state.directory wins over all.
        let root = Layers::default().check("pi", None).unwrap();
        assert_eq!(root.state_dir, PathBuf::from("/var/lib/tutti"));
        let mut layers = Layers::default();
        layers
            .env(vars(&[("TUTTI_STATE_DIRECTORY", "/srv/tutti")]))
            .unwrap();
        let set = layers.check("pi", Some("/home/ana/.state/tutti")).unwrap();
        assert_eq!(set.state_dir, PathBuf::from("/srv/tutti"));
    }

    #[test]
    fn flags_win_over_the_environment_which_wins_over_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("tutti.toml");
        std::fs::write(
            &file,
            "[analysis]\nhop = 1\nhold = 3.0\n[mqtt]\nbroker = \"mqtt://file\"\n",
        )
        .unwrap();
        let mut layers = Layers::default();
        layers
            .file(&file, true)
            .unwrap()
            .env(vars(&[
                ("TUTTI_ANALYSIS_HOP", "0.25"),
                ("TUTTI_MQTT_BROKER", "mqtts://env.example:8884"),
                ("TUTTI_INPUT_DEVICE", "2"),
                ("HOME", "/root"),
            ]))
            .unwrap()
            .flag("--broker", "mqtt", "broker", "mqtt://flag.example")
            .unwrap();
        let s = layers.check("h", Some("/run/state")).unwrap();
        assert_eq!(s.hop_seconds, 0.25);
        assert_eq!(s.hysteresis.hold_seconds, 3.0);
        assert_eq!(s.input, Input::Index(2));
        assert_eq!(
            s.mqtt.broker,
            Broker::Remote {
                host: "flag.example".into(),
                port: 1883,
                tls: false
            }
        );
        assert_eq!(s.state_dir, PathBuf::from("/run/state"));
    }

    #[test]
    fn unknown_keys_are_refused_by_name_in_every_layer() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("tutti.toml");
        std::fs::write(&file, "[mqtt]\nbrokr = \"x\"\n").unwrap();
        let e = Layers::default().file(&file, true).unwrap_err().to_string();
        assert!(
            e.contains("tutti.toml") && e.contains("`mqtt.brokr`"),
            "{e}"
        );
        let e = Layers::default()
            .env(vars(&[("TUTTI_MQTT_BROKR", "x")]))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("environment") && e.contains("TUTTI_MQTT_BROKR"),
            "{e}"
        );
        let e = Layers::default()
            .file(&dir.path().join("missing.toml"), true)
            .unwrap_err()
            .to_string();
        assert!(e.contains("missing.toml"), "{e}");
        assert!(Layers::default()
            .file(&dir.path().join("missing.toml"), false)
            .is_ok());
        std::fs::write(&file, "[input]\ndevice = \"a\"\n[mqtt\n").unwrap();
        let e = Layers::default().file(&file, true).unwrap_err().to_string();
        assert!(e.contains("tutti.toml: line 3, column 6"), "{e}");
    }

    #[test]
    fn the_host_name_comes_from_uname_as_the_kernel_has_it() {
        let kernel = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
        assert_eq!(hostname(), kernel.trim());
        assert!(!hostname().is_empty());
    }

    #[test]
    fn bad_values_name_the_key_and_the_value() {
        let check = |list: &[(&str, &str)]| {
            Layers::default()
                .env(vars(list))
                .and_then(|l| l.check("h", None))
                .unwrap_err()
                .to_string()
        };
        let e = check(&[("TUTTI_ANALYSIS_HOP", "fast")]);
        assert!(e.contains("analysis.hop") && e.contains("fast"), "{e}");
        let e = check(&[("TUTTI_ANALYSIS_HOP", "-1")]);
        assert!(e.contains("analysis.hop") && e.contains("-1"), "{e}");
        let e = check(&[("TUTTI_MQTT_BROKER", "http://x")]);
        assert!(e.contains("mqtt.broker") && e.contains("http://x"), "{e}");
        let e = check(&[("TUTTI_MQTT_BROKER", "mqtt://x:99999")]);
        assert!(e.contains("port"), "{e}");
        let e = check(&[("TUTTI_INPUT_CHANNEL", "0")]);
        assert!(e.contains("input.channel"), "{e}");
        let e = check(&[("TUTTI_MQTT_TOPIC_PREFIX", "a/#")]);
        assert!(e.contains("mqtt.topic_prefix"), "{e}");
        let e = check(&[("TUTTI_MQTT_CLIENT_CERT", "c.pem")]);
        assert!(e.contains("client_key"), "{e}");
        let e = check(&[("TUTTI_INPUT_SAMPLE_RATE", "99")]);
        assert!(e.contains("input.sample_rate") && e.contains("99"), "{e}");
        let e = check(&[("TUTTI_INPUT_PERIOD_FRAMES", "-5")]);
        assert!(e.contains("input.period_frames") && e.contains("-5"), "{e}");
    }

    #[test]
    fn the_password_comes_from_a_file_or_the_environment_and_never_shows() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pw");
        std::fs::write(&file, "s3cret\n").unwrap();
        let s = Layers::default()
            .env(vars(&[
                ("TUTTI_MQTT_PASSWORD_FILE", file.to_str().unwrap()),
                ("TUTTI_MQTT_USERNAME", "tutti"),
            ]))
            .unwrap()
            .check("h", None)
            .unwrap();
        let pw = s.mqtt.password.as_ref().unwrap();
        assert_eq!(pw.expose(), "s3cret");
        assert!(!format!("{s:?}").contains("s3cret"));
        let s = Layers::default()
            .env(vars(&[("TUTTI_MQTT_PASSWORD", "p")]))
            .unwrap()
            .check("h", None)
            .unwrap();
        assert_eq!(s.mqtt.password.unwrap().expose(), "p");
        let e = Layers::default()
            .env(vars(&[("TUTTI_MQTT_PASSWORD_FILE", "/nonexistent/pw")]))
            .unwrap()
            .check("h", None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("/nonexistent/pw"), "{e}");
    }

    #[test]
    fn inputs_are_files_indexes_or_names() {
        let input = |d: &str| {
            Layers::default()
                .flag("--input", "input", "device", d)
                .unwrap()
                .check("h", None)
                .unwrap()
                .input
        };
        assert_eq!(input("rec.WAV"), Input::File("rec.WAV".into()));
        assert_eq!(input("3"), Input::Index(3));
        assert_eq!(input("plughw:1,0"), Input::Device("plughw:1,0".into()));
        assert_eq!(input("default"), Input::Default);
    }
}
