//! Configuration of the live daemon (`tutti listen`): one set of keys
//! ([`keys`], each defined once), read from the TOML file
//! (`/etc/tutti/tutti.toml`), from `TUTTI_*` environment variables and from
//! command-line flags, later sources winning in that order. The [`layers`]
//! are merged key by key, then [`check`]ed once into [`Settings`], whose
//! values are ready to use. Unknown keys, in any layer, are refused with
//! their name. [`host`] reads what the defaults need from the machine.

mod check;
mod detection;
mod host;
mod input;
mod keys;
mod layers;

pub use detection::{check_hold, check_margin, detection_from_file};
pub use host::{default_state_dir, hostname, running_as_root};
pub use keys::Flags;
pub use layers::Layers;

use crate::detect::{Hysteresis, Overrides};
use std::path::{Path, PathBuf};

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
    /// A file a setting names (a password or token file).
    #[error("`{key}` = {path}: cannot read: {source}")]
    ReadNamed {
        key: &'static str,
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
    /// Raw PCM on standard input (`-`), as ffmpeg, arecord or pw-record
    /// write it.
    Stdin(RawFormat),
}

/// How raw samples are written, little-endian.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    S16,
    S32,
    F32,
}

impl Encoding {
    pub fn bytes(self) -> usize {
        match self {
            Encoding::S16 => 2,
            Encoding::S32 | Encoding::F32 => 4,
        }
    }

    /// The name `input.format` gives it.
    pub fn name(self) -> &'static str {
        match self {
            Encoding::S16 => "s16le",
            Encoding::S32 => "s32le",
            Encoding::F32 => "f32le",
        }
    }
}

/// The shape of a raw PCM stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawFormat {
    pub encoding: Encoding,
    pub sample_rate: u32,
    pub channels: u16,
}

impl std::fmt::Display for Input {
    /// The input as the log and the API name it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Input::Default => f.write_str("the default capture device"),
            Input::Index(i) => write!(f, "capture device {i}"),
            Input::Device(name) => write!(f, "capture device {name}"),
            Input::File(path) => write!(f, "{}", path.display()),
            Input::Stdin(raw) => write!(
                f,
                "standard input ({}, {} Hz, {} channel(s))",
                raw.encoding.name(),
                raw.sample_rate,
                raw.channels
            ),
        }
    }
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
pub struct Secret(pub(super) String);

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

/// The HTTP API's settings.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpSettings {
    /// `None`: no HTTP API.
    pub listen: Option<std::net::SocketAddr>,
    /// The bearer token every request must carry; required beyond
    /// loopback.
    pub token: Option<Secret>,
    pub max_body_bytes: usize,
    /// Predictions that may wait for an analysis thread.
    pub queue: usize,
}

/// The default address of the HTTP API.
pub const DEFAULT_HTTP_LISTEN: &str = "127.0.0.1:8080";

/// The checked configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub input: Input,
    /// `input.name`: names the input in payloads and Home Assistant.
    pub input_name: String,
    pub channel: Channel,
    /// The rate to open the capture device at; `None`: its default.
    pub sample_rate: Option<u32>,
    /// Frames per capture period; `None`: the device's default.
    pub period_frames: Option<u32>,
    /// `None`: the installed model.
    pub model: Option<PathBuf>,
    pub hop_seconds: f64,
    pub hysteresis: Hysteresis,
    /// The user's say per instrument, checked against the model when it
    /// is loaded.
    pub overrides: Overrides,
    pub mqtt: MqttSettings,
    pub state_dir: PathBuf,
    pub outbox_bytes: u64,
    pub http: HttpSettings,
}

/// The settings `tutti listen` runs with: the file at `path` (else
/// [`DEFAULT_PATH`], if it exists), the process's environment, then
/// `flags`.
pub fn load(path: Option<&Path>, flags: &Flags) -> Result<Settings, ConfigError> {
    let mut layers = Layers::default();
    match path {
        Some(p) => layers.file(p, true)?,
        None => layers.file(Path::new(DEFAULT_PATH), false)?,
    };
    layers.env(std::env::vars())?.flags(flags)?;
    let state = default_state_dir(|v| std::env::var(v).ok(), running_as_root());
    layers.check(&hostname(), state.as_deref())
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
        assert_eq!(s.overrides, Overrides::default());
        assert_eq!(s.mqtt.broker, Broker::Embedded);
        assert_eq!(s.mqtt.device_id, "pi-kitchen_local");
        assert_eq!(s.mqtt.topic_prefix, "tutti/pi-kitchen_local");
        assert_eq!(s.mqtt.discovery_prefix.as_deref(), Some("homeassistant"));
        assert_eq!(s.mqtt.password, None);
        assert_eq!(s.state_dir, PathBuf::from("/var/lib/tutti"));
        assert_eq!(s.outbox_bytes, 64 << 20);
        assert_eq!(s.http.listen, Some("127.0.0.1:8080".parse().unwrap()));
        assert_eq!(s.http.token, None);
        assert_eq!(s.http.max_body_bytes, 32 << 20);
        assert_eq!(s.http.queue, 100);
    }

    #[test]
    fn the_http_api_is_on_loopback_by_default_and_needs_a_token_beyond() {
        let http = |list: &[(&str, &str)]| {
            Layers::default()
                .env(vars(list))
                .and_then(|l| l.check("h", None))
                .map(|s| s.http)
        };
        let default = http(&[]).unwrap();
        assert_eq!(default.listen, Some("127.0.0.1:8080".parse().unwrap()));
        assert_eq!(http(&[("TUTTI_HTTP_LISTEN", "")]).unwrap().listen, None);
        let v6 = http(&[("TUTTI_HTTP_LISTEN", "[::1]:9000")]).unwrap();
        assert_eq!(v6.listen, Some("[::1]:9000".parse().unwrap()));
        let e = http(&[("TUTTI_HTTP_LISTEN", "0.0.0.0:8080")])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("http.listen") && e.contains("0.0.0.0:8080") && e.contains("token"),
            "{e}"
        );
        let e = http(&[("TUTTI_HTTP_LISTEN", "localhost")])
            .unwrap_err()
            .to_string();
        assert!(e.contains("http.listen") && e.contains("localhost"), "{e}");
        let open = http(&[
            ("TUTTI_HTTP_LISTEN", "0.0.0.0:8080"),
            ("TUTTI_HTTP_TOKEN", "0123456789abcdef"),
        ])
        .unwrap();
        assert_eq!(open.token.unwrap().expose(), "0123456789abcdef");
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("token");
        std::fs::write(&file, "short\n").unwrap();
        let e = http(&[("TUTTI_HTTP_TOKEN_FILE", file.to_str().unwrap())])
            .unwrap_err()
            .to_string();
        assert!(e.contains("http.token_file") && e.contains("16"), "{e}");
        assert!(!e.contains("short"), "{e}");
        let e = http(&[("TUTTI_HTTP_MAX_BODY_MB", "0")])
            .unwrap_err()
            .to_string();
        assert!(e.contains("http.max_body_mb"), "{e}");
    }

    /// The example configuration is the reference a user edits: it sets
    /// every key, in the order they are defined, and nothing else (an
    /// unknown key would not load).
    #[test]
    fn the_shipped_example_config_sets_every_key_in_order() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/tutti.toml");
        let text = std::fs::read_to_string(path).unwrap();
        let mut section = "";
        let mut set = vec![];
        for line in text.lines().map(str::trim) {
            if let Some(s) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
                section = s;
            } else if let Some((name, _)) = line.split_once('=').filter(|_| !line.starts_with('#'))
            {
                set.push(format!("{section}.{}", name.trim()));
            }
        }
        let keys: Vec<String> = keys::KEYS.iter().map(keys::Key::dotted).collect();
        assert_eq!(set, keys);
    }

    #[test]
    fn without_state_directory_root_gets_var_lib_and_a_set_one_wins() {
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
            .flags(&Flags {
                broker: Some("mqtt://flag.example".into()),
                ..Flags::default()
            })
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
        let e = check(&[("TUTTI_STATE_OUTBOX_MB", "0")]);
        assert!(e.contains("state.outbox_mb") && e.contains('0'), "{e}");
        let e = check(&[("TUTTI_STATE_OUTBOX_MB", "4294967295")]);
        assert!(
            e.contains("state.outbox_mb") && e.contains("4294967295"),
            "{e}"
        );
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
                .flags(&Flags {
                    device: Some(d.into()),
                    ..Flags::default()
                })
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
