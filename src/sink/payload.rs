//! The MQTT contract: topics and payloads. `tests/mqtt_contract.rs` freezes
//! them; a change here is a change for every subscriber.

use crate::detect::{over_threshold, score_map};
use crate::live::Record;
use crate::model::LabelSpec;
use serde_json::json;
use std::time::SystemTime;

/// Version of the detection payload's fields.
pub const SCHEMA: u32 = 1;

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

/// A window's detection as one JSON line, without the `replayed` field,
/// which is added when it is sent (see [`with_replayed`]).
pub fn detection(
    record: &Record,
    labels: &[LabelSpec],
    relative: f32,
    device_id: &str,
    model_id: &str,
) -> String {
    let instruments: Vec<&str> = over_threshold(labels, relative, &record.scores).collect();
    let scores = score_map(labels, &record.scores);
    let end = utc(record.end);
    json!({
        "schema": SCHEMA,
        "device_id": device_id,
        "seq": record.seq,
        "timestamp": end,
        "window_start": utc(record.start),
        "window_end": end,
        "instruments": instruments,
        "scores": scores,
        "model": model_id,
        "latency_ms": (record.latency.as_secs_f64() * 1e7).round() / 1e4,
    })
    .to_string()
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

/// Home Assistant discovery: one retained config per instrument, all under
/// one device. Returns (topic, payload) pairs.
pub fn discovery(
    discovery_prefix: &str,
    topics: &Topics,
    device_id: &str,
    labels: &[LabelSpec],
) -> Vec<(String, String)> {
    let node = format!("tutti_{device_id}");
    let device = json!({
        "identifiers": [node],
        "name": format!("tutti {device_id}"),
        "manufacturer": "tutti",
        "model": "orchestral instrument detector",
        "sw_version": env!("CARGO_PKG_VERSION"),
    });
    labels
        .iter()
        .map(|l| {
            let topic = format!("{discovery_prefix}/binary_sensor/{node}/{}/config", l.name);
            let config = json!({
                "name": title(&l.name),
                "unique_id": format!("{node}_{}", l.name),
                "object_id": format!("{node}_{}", l.name),
                "state_topic": topics.instrument(&l.name),
                "payload_on": ON,
                "payload_off": OFF,
                "availability_topic": topics.status(),
                "payload_available": ONLINE,
                "payload_not_available": OFFLINE,
                "icon": "mdi:music",
                "device": device,
            });
            (topic, config.to_string())
        })
        .collect()
}

/// The topic Home Assistant announces its own restarts on.
pub fn ha_status(discovery_prefix: &str) -> String {
    format!("{discovery_prefix}/status")
}

/// An instrument's display name: "violin" → "Violin".
pub(crate) fn title(name: &str) -> String {
    let mut c = name.chars();
    c.next()
        .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replayed_is_added_as_the_last_field() {
        let p = with_replayed("{\"a\":1}", true);
        assert_eq!(p, b"{\"a\":1,\"replayed\":true}");
        let v: serde_json::Value = serde_json::from_slice(&with_replayed("{}", false)).unwrap();
        assert_eq!(v, json!({"replayed": false}));
    }

    #[test]
    fn utc_has_milliseconds_and_zulu() {
        let t = SystemTime::UNIX_EPOCH + std::time::Duration::from_millis(1_795_000_000_123);
        assert_eq!(utc(t), "2026-11-18T11:06:40.123Z");
    }
}
