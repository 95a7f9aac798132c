//! From merged layers to [`Settings`]: every value checked against what it
//! means, a section at a time, with an error that names the key and value.

use super::host::device_id_from;
use super::layers::Layers;
use super::{
    Broker, ConfigError, HttpSettings, MqttSettings, Secret, Settings, DEFAULT_HTTP_LISTEN,
};
use std::path::PathBuf;
use toml::Value;

impl Layers {
    /// Checks the merged layers. `hostname` names the machine, for the
    /// default device id; `default_state` is the state directory used when
    /// none is set (`host::default_state_dir`), `/var/lib/tutti` when `None`.
    pub fn check(
        &self,
        hostname: &str,
        default_state: Option<&str>,
    ) -> Result<Settings, ConfigError> {
        let (input, channel) = self.input()?;
        let (hysteresis, overrides) = self.detection()?;
        let mqtt = self.mqtt(hostname)?;
        Ok(Settings {
            input,
            input_name: self.input_name(&mqtt.device_id)?,
            channel,
            sample_rate: self.optional_count("input.sample_rate", 1000..=768_000)?,
            period_frames: self.optional_count("input.period_frames", 16..=1_000_000)?,
            model: self.text("analysis", "model").map(PathBuf::from),
            hop_seconds: self.hop()?,
            hysteresis,
            overrides,
            mqtt,
            state_dir: self
                .text("state", "directory")
                .or(default_state.filter(|s| !s.is_empty()))
                .map_or_else(|| PathBuf::from("/var/lib/tutti"), PathBuf::from),
            outbox_bytes: self.outbox_mb()? << 20,
            http: self.http()?,
        })
    }

    /// `state.outbox_mb`: 1 MB to 64 GB (0 would keep nothing, and a huge
    /// value would overflow in bytes).
    fn outbox_mb(&self) -> Result<u64, ConfigError> {
        match self.count("state", "outbox_mb").unwrap_or(64) {
            mb @ 1..=MAX_OUTBOX_MB => Ok(mb as u64),
            mb => Err(ConfigError::Invalid {
                key: "state.outbox_mb",
                value: mb.to_string(),
                reason: format!("must be from 1 to {MAX_OUTBOX_MB} MB"),
            }),
        }
    }

    fn http(&self) -> Result<HttpSettings, ConfigError> {
        let listen = match self.raw_text("http", "listen") {
            // Set but empty: off.
            Some("") => None,
            text => {
                let text = text.unwrap_or(DEFAULT_HTTP_LISTEN);
                Some(text.parse().map_err(|_| ConfigError::Invalid {
                    key: "http.listen",
                    value: format!("{text:?}"),
                    reason: "use IP:PORT, e.g. 127.0.0.1:8080 or [::]:8080, or \"\" for off".into(),
                })?)
            }
        };
        let token = match (self.text("http", "token_file"), &self.token_from_env) {
            (Some(file), _) => {
                let text =
                    std::fs::read_to_string(file).map_err(|source| ConfigError::ReadNamed {
                        key: "http.token_file",
                        path: PathBuf::from(file),
                        source,
                    })?;
                Some(check_token(
                    "http.token_file",
                    file,
                    text.trim_end_matches(['\r', '\n']),
                )?)
            }
            (None, Some(t)) => Some(check_token("TUTTI_HTTP_TOKEN", "(hidden)", t)?),
            (None, None) => None,
        };
        if let Some(addr) = listen.filter(|a: &std::net::SocketAddr| !a.ip().is_loopback()) {
            if token.is_none() {
                return Err(ConfigError::Invalid {
                    key: "http.listen",
                    value: format!("\"{addr}\""),
                    reason: "beyond loopback the API needs a bearer token: set \
                             http.token_file or TUTTI_HTTP_TOKEN"
                        .into(),
                });
            }
        }
        let max_body_mb = self.count("http", "max_body_mb").unwrap_or(32);
        if !(1..=1024).contains(&max_body_mb) {
            return Err(ConfigError::Invalid {
                key: "http.max_body_mb",
                value: max_body_mb.to_string(),
                reason: "must be from 1 to 1024 MB".into(),
            });
        }
        let queue = self.count("http", "queue").unwrap_or(100);
        if queue > 10_000 {
            return Err(ConfigError::Invalid {
                key: "http.queue",
                value: queue.to_string(),
                reason: "must be from 0 to 10000".into(),
            });
        }
        Ok(HttpSettings {
            listen,
            token,
            max_body_bytes: max_body_mb as usize * 1024 * 1024,
            queue: queue as usize,
        })
    }

    /// A device setting where 0 (or nothing) means the device's own.
    pub(super) fn optional_count(
        &self,
        key: &'static str,
        range: std::ops::RangeInclusive<i64>,
    ) -> Result<Option<u32>, ConfigError> {
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
    }

    fn hop(&self) -> Result<f64, ConfigError> {
        let hop = self.number("analysis", "hop").unwrap_or(0.5);
        if !(hop.is_finite() && hop > 0.0) {
            return Err(ConfigError::Invalid {
                key: "analysis.hop",
                value: hop.to_string(),
                reason: "must be a positive number of seconds".into(),
            });
        }
        Ok(hop)
    }

    fn mqtt(&self, hostname: &str) -> Result<MqttSettings, ConfigError> {
        let device_id = match self.text("mqtt", "device_id") {
            Some(id) if id.contains(['/', '+', '#']) => {
                return Err(ConfigError::Invalid {
                    key: "mqtt.device_id",
                    value: format!("{id:?}"),
                    reason: "must not contain '/', '+' or '#'".into(),
                });
            }
            Some(id) => id.to_string(),
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
                let text =
                    std::fs::read_to_string(file).map_err(|source| ConfigError::ReadNamed {
                        key: "mqtt.password_file",
                        path: PathBuf::from(file),
                        source,
                    })?;
                Some(Secret(text.trim_end_matches(['\r', '\n']).to_string()))
            }
            (None, Some(p)) => Some(Secret(p.clone())),
            (None, None) => None,
        };
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
        let path = |key| self.text("mqtt", key).map(PathBuf::from);
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
        Ok(mqtt)
    }
}

/// The largest outbox, in MB (64 GB).
const MAX_OUTBOX_MB: i64 = 65_536;

/// Shortest bearer token accepted: 16 characters (`openssl rand -hex 16`
/// makes 32).
const MIN_TOKEN_LEN: usize = 16;

/// A bearer token read from `origin` (shown as `shown`, never the token).
fn check_token(key: &'static str, shown: &str, token: &str) -> Result<Secret, ConfigError> {
    let bad = |reason: String| ConfigError::Invalid {
        key,
        value: shown.to_string(),
        reason,
    };
    if token.chars().count() < MIN_TOKEN_LEN {
        return Err(bad(format!(
            "the token must have at least {MIN_TOKEN_LEN} characters (try `openssl rand -hex 16`)"
        )));
    }
    if !token.chars().all(|c| c.is_ascii_graphic()) {
        return Err(bad(
            "the token must be printable ASCII without spaces (it travels in a header)".into(),
        ));
    }
    Ok(Secret(token.to_string()))
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
    let port = |p: &str| {
        p.parse::<u16>()
            .ok()
            .filter(|&p| p > 0)
            .ok_or_else(|| invalid("the port must be a number from 1 to 65535"))
    };
    let default_port = if tls { 8883 } else { 1883 };
    // `[::1]:1883`: an IPv6 address goes in brackets, and is kept without.
    let (host, port) = if let Some(r) = rest.strip_prefix('[') {
        let (h, after) = r
            .split_once(']')
            .ok_or_else(|| invalid("an IPv6 address needs its closing `]`"))?;
        if h.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(invalid("not an IPv6 address between `[` and `]`"));
        }
        match after {
            "" => (h, default_port),
            a => match a.strip_prefix(':') {
                Some(p) => (h, port(p)?),
                None => return Err(invalid("only `:port` may follow `]`")),
            },
        }
    } else {
        let (host, port) = match rest.rsplit_once(':') {
            Some((h, p)) => (h, port(p)?),
            None => (rest, default_port),
        };
        if host.is_empty() {
            return Err(invalid("the host is missing"));
        }
        // A host name or an IPv4 address: nothing of a path, user or query.
        let name_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_');
        if host.len() > 253 || !host.chars().all(name_char) {
            return Err(invalid(
                "the host must be a name, an IPv4 address or an IPv6 address in brackets",
            ));
        }
        (host, port)
    };
    Ok(Broker::Remote {
        host: host.to_string(),
        port,
        tls,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn remote(url: &str) -> (String, u16, bool) {
        match parse_broker(Some(url)) {
            Ok(Broker::Remote { host, port, tls }) => (host, port, tls),
            other => panic!("{url}: {other:?}"),
        }
    }

    #[test]
    fn broker_urls_name_a_host_and_port() {
        assert_eq!(remote("mqtt://hub"), ("hub".into(), 1883, false));
        assert_eq!(
            remote("mqtts://hub.lan:8884/"),
            ("hub.lan".into(), 8884, true)
        );
        assert_eq!(
            remote("mqtt://10.0.0.2:1884"),
            ("10.0.0.2".into(), 1884, false)
        );
        assert_eq!(remote("mqtts://[::1]"), ("::1".into(), 8883, true));
        assert_eq!(remote("mqtt://[fe80::2]:99"), ("fe80::2".into(), 99, false));
    }

    #[test]
    fn junk_broker_urls_are_refused_naming_the_value() {
        for (url, why) in [
            ("mqtt://[::1", "closing `]`"),
            ("mqtt://[nope]:1883", "not an IPv6 address"),
            ("mqtt://[::1]x", "only `:port`"),
            ("mqtt://user@hub", "the host must be"),
            ("mqtt://hub/path", "the host must be"),
            ("mqtt://hub?x=1", "the host must be"),
            ("mqtt://h ub", "the host must be"),
            ("mqtt://::1", "the host must be"),
            ("mqtt://:1883", "the host is missing"),
            ("mqtt://hub:0", "port"),
            ("mqtt://hub:", "port"),
            ("mqtts://", "the host is missing"),
        ] {
            let e = parse_broker(Some(url)).unwrap_err().to_string();
            assert!(e.contains(why) && e.contains(url), "{url}: {e}");
        }
    }
}
