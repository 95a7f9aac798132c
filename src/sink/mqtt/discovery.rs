//! Home Assistant's MQTT discovery: one retained binary-sensor config per
//! instrument and a sound-level sensor, all under one device named after
//! the input, and the topic on which Home Assistant announces its restarts
//! (tutti then announces itself again).

use crate::instruments::title;
use crate::model::LabelSpec;
use crate::sink::payload::{Topics, OFF, OFFLINE, ON, ONLINE};
use serde_json::json;

/// The discovery configs, as (topic, payload) pairs. An excluded
/// instrument's payload is empty, which removes the entity an earlier run
/// may have made.
pub fn configs(
    discovery_prefix: &str,
    topics: &Topics,
    device_id: &str,
    source: &str,
    labels: &[LabelSpec],
    excluded: &[bool],
) -> Vec<(String, String)> {
    let node = format!("tutti_{device_id}");
    let device = json!({
        "identifiers": [node],
        "name": format!("tutti {source}"),
        "manufacturer": "tutti",
        "model": "orchestral instrument detector",
        "sw_version": env!("CARGO_PKG_VERSION"),
    });
    labels
        .iter()
        .zip(excluded)
        .map(|(l, &excluded)| {
            let topic = format!("{discovery_prefix}/binary_sensor/{node}/{}/config", l.name);
            if excluded {
                return (topic, String::new());
            }
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
        .chain(std::iter::once(level(
            discovery_prefix,
            topics,
            &node,
            &device,
        )))
        .collect()
}

/// The sound level: each detection's RMS in dBFS, its peak an attribute.
fn level(
    discovery_prefix: &str,
    topics: &Topics,
    node: &str,
    device: &serde_json::Value,
) -> (String, String) {
    let topic = format!("{discovery_prefix}/sensor/{node}/level/config");
    let config = json!({
        "name": "Sound level",
        "unique_id": format!("{node}_level"),
        "object_id": format!("{node}_level"),
        "state_topic": topics.detections(),
        "value_template": "{{ value_json.rms_dbfs }}",
        "json_attributes_topic": topics.detections(),
        "json_attributes_template": "{{ {'peak_dbfs': value_json.peak_dbfs} | tojson }}",
        "unit_of_measurement": "dBFS",
        "state_class": "measurement",
        "availability_topic": topics.status(),
        "payload_available": ONLINE,
        "payload_not_available": OFFLINE,
        "icon": "mdi:volume-high",
        "device": device,
    });
    (topic, config.to_string())
}

/// The topic Home Assistant announces its own restarts on.
pub fn ha_status(discovery_prefix: &str) -> String {
    format!("{discovery_prefix}/status")
}
