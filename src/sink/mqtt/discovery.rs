//! Home Assistant's MQTT discovery: one retained binary-sensor config per
//! instrument, all under one device, and the topic on which Home Assistant
//! announces its restarts (tutti then announces itself again).

use crate::instruments::title;
use crate::model::LabelSpec;
use crate::sink::payload::{Topics, OFF, OFFLINE, ON, ONLINE};
use serde_json::json;

/// The discovery configs, as (topic, payload) pairs.
pub fn configs(
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
