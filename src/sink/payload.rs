//! The MQTT contract: topics and payloads. `tests/listen_mqtt.rs` checks
//! them on a real broker; a change here is a change for every subscriber.

use crate::detect::Detection;
use crate::model::LabelSpec;
use crate::window::level::round_db;
use serde_json::json;
use std::time::SystemTime;

/// Version of the detection payload's fields: 2 added `source`,
/// `rms_dbfs` and `peak_dbfs`.
pub const SCHEMA: u32 = 2;

pub const ONLINE: &str = "online";
pub const OFFLINE: &str = "offline";
pub const ON: &str = "ON";
pub const OFF: &str = "OFF";

/// Topics under one prefix.
#[derive(Debug, Clone)]
pub struct Topics {
    pub prefix: String,
}

impl Topics {
    /// Retained `online`/`offline`; `offline` is also the last will.
    pub fn status(&self) -> String {
        format!("{}/status", self.prefix)
    }
    /// One JSON object per window.
    pub fn detections(&self) -> String {
        format!("{}/detections", self.prefix)
    }
    /// Retained `ON`/`OFF` per instrument.
    pub fn instrument(&self, name: &str) -> String {
        format!("{}/instrument/{name}", self.prefix)
    }
}

/// RFC 3339 UTC with milliseconds, e.g. `2026-11-24T05:45:57.123Z`.
pub fn utc(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

/// Who sent a detection: the device, and its input's name.
#[derive(Debug, Clone)]
pub struct Origin {
    pub device_id: String,
    /// `input.name`: the device id unless set.
    pub source: String,
    /// The model's sidecar hash.
    pub model_id: String,
}

/// A live window's detection as one JSON line, without the `replayed`
/// field, which is added when it is sent (see [`with_replayed`]). A
/// detection without wall-clock times (not from a live stream) has no
/// `timestamp`, `window_start`, `window_end` or `latency_ms`.
pub fn detection(d: &Detection, labels: &[LabelSpec], origin: &Origin) -> String {
    let mut line = serde_json::Map::new();
    line.insert("schema".into(), json!(SCHEMA));
    line.insert("device_id".into(), json!(origin.device_id));
    line.insert("source".into(), json!(origin.source));
    line.insert("seq".into(), json!(d.seq));
    if let Some(heard) = &d.heard {
        let end = utc(heard.end);
        line.insert("timestamp".into(), json!(end));
        line.insert("window_start".into(), json!(utc(heard.start)));
        line.insert("window_end".into(), json!(end));
    }
    let instruments: Vec<&str> = d.instrument_names(labels).collect();
    line.insert("instruments".into(), json!(instruments));
    line.insert("scores".into(), d.score_map(labels).into());
    line.insert("rms_dbfs".into(), json!(round_db(d.level.rms_dbfs)));
    line.insert("peak_dbfs".into(), json!(round_db(d.level.peak_dbfs)));
    line.insert("model".into(), json!(origin.model_id));
    if let Some(heard) = &d.heard {
        let ms = (heard.latency.as_secs_f64() * 1e7).round() / 1e4;
        line.insert("latency_ms".into(), json!(ms));
    }
    serde_json::Value::Object(line).to_string()
}

/// The payload as sent: `line` (a JSON object) with `"replayed"` last.
/// `replayed` is true for a detection that waited in the outbox (the broker
/// was unreachable, or it is sent again after a reconnect or a restart).
pub fn with_replayed(line: &str, replayed: bool) -> Vec<u8> {
    let body = line.trim_end().strip_suffix('}').unwrap_or(line);
    let mut out = Vec::with_capacity(body.len() + 20);
    out.extend_from_slice(body.as_bytes());
    if !body.trim_end().ends_with('{') {
        out.push(b',');
    }
    out.extend_from_slice(format!("\"replayed\":{replayed}}}").as_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::Heard;

    #[test]
    fn replayed_is_added_as_the_last_field() {
        let p = with_replayed("{\"a\":1}", true);
        assert_eq!(p, b"{\"a\":1,\"replayed\":true}");
        let v: serde_json::Value = serde_json::from_slice(&with_replayed("{}", false)).unwrap();
        assert_eq!(v, json!({"replayed": false}));
    }

    fn labels() -> Vec<LabelSpec> {
        ["piano", "violin"]
            .iter()
            .map(|n| LabelSpec {
                name: n.to_string(),
                program: 1,
                threshold: 0.5,
            })
            .collect()
    }

    fn origin() -> Origin {
        Origin {
            device_id: "pi".into(),
            source: "stage".into(),
            model_id: "abc".into(),
        }
    }

    fn window(heard: Option<Heard>) -> Detection {
        Detection {
            seq: 7,
            start: 3.5,
            end: 5.5,
            padded: false,
            level: crate::window::Level {
                rms_dbfs: -23.45678,
                peak_dbfs: -120.0,
            },
            scores: vec![0.123_456, 0.9],
            instruments: vec![1],
            on: vec![false, true],
            changes: vec![],
            heard,
        }
    }

    #[test]
    fn a_live_detection_says_when_it_was_heard() {
        let t = SystemTime::UNIX_EPOCH + std::time::Duration::from_millis(1_795_000_000_123);
        let heard = Heard {
            start: t - std::time::Duration::from_secs(2),
            end: t,
            latency: std::time::Duration::from_micros(12_345),
        };
        let line = detection(&window(Some(heard)), &labels(), &origin());
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        // tests/listen_mqtt.rs pins every field and their order on a real
        // broker; here, what each says of this window.
        assert_eq!(v["seq"], 7);
        assert_eq!(v["timestamp"], "2026-11-18T11:06:40.123Z");
        assert_eq!(v["window_start"], "2026-11-18T11:06:38.123Z");
        assert_eq!(v["instruments"], json!(["violin"]));
        assert_eq!(v["scores"], json!({"piano": 0.1235, "violin": 0.9}));
        assert_eq!(v["latency_ms"], 12.345);
        assert_eq!(
            (v["device_id"].as_str(), v["source"].as_str()),
            (Some("pi"), Some("stage"))
        );
        assert_eq!(
            (v["rms_dbfs"].as_f64(), v["peak_dbfs"].as_f64()),
            (Some(-23.46), Some(-120.0))
        );
    }

    #[test]
    fn a_detection_without_wall_clock_times_says_none() {
        let line = detection(&window(None), &labels(), &origin());
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        for key in ["timestamp", "window_start", "window_end", "latency_ms"] {
            assert!(v.get(key).is_none(), "{key} in {line}");
        }
        assert_eq!(v["instruments"], json!(["violin"]));
    }

    #[test]
    fn utc_has_milliseconds_and_zulu() {
        let t = SystemTime::UNIX_EPOCH + std::time::Duration::from_millis(1_795_000_000_123);
        assert_eq!(utc(t), "2026-11-18T11:06:40.123Z");
    }
}
