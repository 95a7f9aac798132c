//! Every setting of `tutti listen`, each defined once, below: its section
//! and name in the TOML file, its type, its flag and its help. The
//! environment variable is derived (`TUTTI_<SECTION>_<NAME>`), and so are
//! the table of known keys the layers check against and the typed
//! [`Flags`] that clap parses.

/// What a key's value is, in every layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueKind {
    Text,
    /// Any number (an integer in the file counts as one).
    Number,
    /// A whole number, 0 or more.
    Count,
    /// A list of names: an array in the file, comma-separated elsewhere.
    List,
    /// Numbers by name: a table in the file, `name=value,…` elsewhere.
    /// Layers merge it name by name.
    Map,
}

/// One setting: `[section] name` in the file, `TUTTI_SECTION_NAME` in the
/// environment, `--flag` on the command line.
#[derive(Debug, PartialEq, Eq)]
pub struct Key {
    pub section: &'static str,
    pub name: &'static str,
    pub kind: ValueKind,
    pub flag: &'static str,
}

impl Key {
    /// The key as messages name it: `section.name`.
    pub fn dotted(&self) -> String {
        format!("{}.{}", self.section, self.name)
    }

    pub fn env_var(&self) -> String {
        format!("TUTTI_{}_{}", self.section, self.name).to_uppercase()
    }

    pub fn find(section: &str, name: &str) -> Option<&'static Key> {
        KEYS.iter().find(|k| k.section == section && k.name == name)
    }
}

/// The Rust type a flag parses into, and the value it gives the layers.
pub(super) trait FlagValue {
    const KIND: ValueKind;
    fn value(&self) -> toml::Value;
}

impl FlagValue for String {
    const KIND: ValueKind = ValueKind::Text;
    fn value(&self) -> toml::Value {
        toml::Value::String(self.clone())
    }
}

impl FlagValue for f64 {
    const KIND: ValueKind = ValueKind::Number;
    fn value(&self) -> toml::Value {
        toml::Value::Float(*self)
    }
}

impl FlagValue for u32 {
    const KIND: ValueKind = ValueKind::Count;
    fn value(&self) -> toml::Value {
        toml::Value::Integer(i64::from(*self))
    }
}

/// Names given as `a,b,c` (a flag or variable).
#[derive(Debug, Clone, PartialEq)]
pub struct Names(pub Vec<String>);

impl std::str::FromStr for Names {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        Ok(Names(
            text.split(',')
                .map(str::trim)
                .filter(|n| !n.is_empty())
                .map(String::from)
                .collect(),
        ))
    }
}

impl FlagValue for Names {
    const KIND: ValueKind = ValueKind::List;
    fn value(&self) -> toml::Value {
        toml::Value::Array(self.0.iter().cloned().map(toml::Value::String).collect())
    }
}

/// Numbers by name, given as `a=0.4,b=0.5` (a flag or variable).
#[derive(Debug, Clone, PartialEq)]
pub struct NumberMap(pub Vec<(String, f64)>);

impl std::str::FromStr for NumberMap {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        let mut map = vec![];
        for item in text.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            let parsed = item
                .split_once('=')
                .and_then(|(n, v)| Some((n.trim(), v.trim().parse::<f64>().ok()?)))
                .filter(|(n, _)| !n.is_empty());
            match parsed {
                Some((n, v)) => map.push((n.to_string(), v)),
                None => return Err(format!("{item:?} is not NAME=NUMBER")),
            }
        }
        Ok(NumberMap(map))
    }
}

impl FlagValue for NumberMap {
    const KIND: ValueKind = ValueKind::Map;
    fn value(&self) -> toml::Value {
        toml::Value::Table(
            self.0
                .iter()
                .map(|(n, v)| (n.clone(), toml::Value::Float(*v)))
                .collect(),
        )
    }
}

/// Defines the keys: `[section] name: Type = "flag";`, each with its help.
macro_rules! keys {
    ($( $(#[$help:meta])* [$section:ident] $name:ident: $ty:ty = $flag:literal; )*) => {
        /// Every key, in the order of the example configuration.
        pub const KEYS: &[Key] = &[$(Key {
            section: stringify!($section),
            name: stringify!($name),
            kind: <$ty as FlagValue>::KIND,
            flag: $flag,
        },)*];

        /// Every key as a command-line flag (`tutti listen --help`).
        #[derive(Debug, Default, Clone, clap::Args)]
        pub struct Flags {
            $(
                $(#[$help])*
                #[arg(long = $flag, allow_negative_numbers = true)]
                pub $name: Option<$ty>,
            )*
        }

        impl Flags {
            /// The flags given, each with its key and value.
            pub fn given(&self) -> Vec<(&'static Key, toml::Value)> {
                let mut given = Vec::new();
                $(
                    if let Some(v) = &self.$name {
                        let key = Key::find(stringify!($section), stringify!($name))
                            .expect("every flag is a key");
                        given.push((key, v.value()));
                    }
                )*
                given
            }
        }
    };
}

keys! {
    /// Capture device (name, id or index from `tutti devices`, or
    /// "default"), a WAV file to play through the pipeline, or "-" for raw
    /// PCM on standard input.
    [input] device: String = "input";
    /// This input's name in every payload and in Home Assistant (default:
    /// the device id).
    [input] name: String = "input-name";
    /// "mix" or a channel number from 1.
    [input] channel: String = "channel";
    /// Open the device at this rate in Hz (0: its own); with `--input -`,
    /// the stream's rate (required).
    [input] sample_rate: u32 = "sample-rate";
    /// Frames per capture period (0: the device's).
    [input] period_frames: u32 = "period-frames";
    /// With `--input -`: the samples' format, s16le, s32le or f32le
    /// (default s16le).
    [input] format: String = "input-format";
    /// With `--input -`: channels interleaved in the stream (default 1).
    [input] channels: u32 = "channels";
    /// Model sidecar (.json) (default: the installed model).
    [analysis] model: String = "model";
    /// Seconds between windows (default 0.5).
    [analysis] hop: f64 = "hop";
    /// Seconds an instrument stays ON without support (default 1.5).
    [analysis] hold: f64 = "hold";
    /// How far under its threshold a score still supports an ON
    /// instrument (default 0.05).
    [analysis] margin: f64 = "margin";
    /// Windows in a row over its threshold before an instrument turns ON
    /// (default 1).
    [analysis] confirm: u32 = "confirm";
    /// Seconds after an instrument turns OFF before it may turn ON again
    /// (default 0).
    [analysis] cooldown: f64 = "cooldown";
    /// Instruments never reported nor ON, still scored: NAME,NAME,…
    [instruments] exclude: Names = "exclude";
    /// Thresholds in (0, 1] that replace the model's: NAME=VALUE,…
    [instruments] thresholds: NumberMap = "thresholds";
    /// Broker URL, mqtt://host[:port] or mqtts://host[:port] (default: the
    /// embedded broker on 127.0.0.1).
    [mqtt] broker: String = "broker";
    /// This device's id in topics and in Home Assistant (default: the host
    /// name).
    [mqtt] device_id: String = "device-id";
    /// Topics start with this (default: tutti/<device_id>).
    [mqtt] topic_prefix: String = "topic-prefix";
    /// MQTT user name.
    [mqtt] username: String = "username";
    /// File holding the MQTT password (or set TUTTI_MQTT_PASSWORD).
    [mqtt] password_file: String = "password-file";
    /// CA certificate (PEM) to trust for mqtts:// (default: the system's).
    [mqtt] ca_file: String = "ca-file";
    /// Client certificate (PEM), for brokers that ask for one.
    [mqtt] client_cert: String = "client-cert";
    /// The client certificate's private key (PEM).
    [mqtt] client_key: String = "client-key";
    /// Home Assistant discovery prefix; empty turns discovery off (default
    /// homeassistant).
    [mqtt] discovery_prefix: String = "discovery-prefix";
    /// Port of the embedded broker on 127.0.0.1 (default 1883).
    [mqtt] embedded_port: u32 = "embedded-port";
    /// Where the outbox lives (default: systemd's state directory, else
    /// /var/lib/tutti for root, else ~/.local/state/tutti).
    [state] directory: String = "state-dir";
    /// Most disk space waiting detections may take, in MB (default 64).
    [state] outbox_mb: u32 = "outbox-mb";
    /// Address of the HTTP API and live page, IP:PORT (default
    /// 127.0.0.1:8080; empty: off). Beyond loopback a token is required.
    [http] listen: String = "http";
    /// File holding the HTTP API's bearer token (or set TUTTI_HTTP_TOKEN).
    [http] token_file: String = "http-token-file";
    /// Largest clip `POST /v1/predict` accepts, in MB (default 32).
    [http] max_body_mb: u32 = "max-body-mb";
    /// Predictions that may wait for a free analysis thread; more are
    /// answered 503 (default 100).
    [http] queue: u32 = "http-queue";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_unique_in_every_layer() {
        for (i, a) in KEYS.iter().enumerate() {
            for b in &KEYS[i + 1..] {
                assert_ne!(a.dotted(), b.dotted());
                assert_ne!(a.env_var(), b.env_var());
                assert_ne!(a.flag, b.flag);
            }
        }
        assert_eq!(
            Key::find("mqtt", "device_id").map(Key::env_var).as_deref(),
            Some("TUTTI_MQTT_DEVICE_ID")
        );
    }

    #[test]
    fn flags_are_typed_and_given_with_their_keys() {
        use clap::Parser;
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            flags: Flags,
        }
        let cli = Cli::try_parse_from([
            "t",
            "--hop",
            "0.25",
            "--state-dir",
            "/s",
            "--outbox-mb",
            "5",
        ])
        .unwrap();
        let given: Vec<(String, toml::Value)> = cli
            .flags
            .given()
            .into_iter()
            .map(|(k, v)| (k.dotted(), v))
            .collect();
        assert_eq!(
            given,
            [
                ("analysis.hop".to_string(), toml::Value::Float(0.25)),
                (
                    "state.directory".to_string(),
                    toml::Value::String("/s".into())
                ),
                ("state.outbox_mb".to_string(), toml::Value::Integer(5)),
            ]
        );
        assert!(Cli::try_parse_from(["t", "--hop", "fast"]).is_err());
        assert!(Cli::try_parse_from(["t", "--sample-rate", "-5"]).is_err());
    }
}
