//! `tutti listen` end to end with real brokers: Debian's mosquitto with
//! `mosquitto_sub`, and the embedded rumqttd.

mod support;

use serde_json::Value;
use std::process::Stdio;
use std::time::Duration;
use support::*;

/// The detection payload's fields, in order: the MQTT contract (schema 2).
const DETECTION_FIELDS: [&str; 14] = [
    "schema",
    "device_id",
    "source",
    "seq",
    "timestamp",
    "window_start",
    "window_end",
    "instruments",
    "scores",
    "rms_dbfs",
    "peak_dbfs",
    "model",
    "latency_ms",
    "replayed",
];

fn sha256_of(path: &str) -> String {
    let out = std::process::Command::new("sha256sum")
        .arg(root().join(path))
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap()[..64].to_string()
}

#[test]
fn a_file_played_through_listen_reaches_mosquitto_as_analyze_scores_it() {
    let tmp = tempfile::tempdir().unwrap();
    let port = free_port();
    let _broker = Mosquitto::start(port, &tmp.path().join("broker"));
    let sub = Sub::start(
        port,
        "contract",
        &["tutti/#", "homeassistant/#"],
        "tutti/probe",
    );
    let broker = format!("mqtt://127.0.0.1:{port}");
    let mut child = listen(
        &tmp.path().join("state"),
        &[
            "--input",
            "samples/violin_cello.wav",
            "--speed",
            "50",
            "--broker",
            &broker,
            "--device-id",
            "stage",
            "--input-name",
            "Stage left",
        ],
    )
    .stdout(Stdio::null())
    .spawn()
    .unwrap();
    let status = wait_exit(&mut child, Duration::from_secs(60));
    assert!(status.success(), "{status}");
    let expected = analyze_json("samples/violin_cello.wav", &[]);
    assert!(wait_until(Duration::from_secs(5), || {
        detections(&sub, "tutti/stage").len() >= expected.len()
            && sub
                .payloads("tutti/stage/status")
                .last()
                .map(String::as_str)
                == Some("offline")
    }));
    let got = detections(&sub, "tutti/stage");
    assert_eq!(got.len(), expected.len(), "one message per window");
    let model = sha256_of("models/tutti.json");
    for (k, (d, a)) in got.iter().zip(&expected).enumerate() {
        // The frozen contract: these fields, in this order.
        let keys: Vec<&str> = d.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(keys, DETECTION_FIELDS, "{d}");
        assert_eq!(d["schema"], 2);
        assert_eq!(d["device_id"], "stage");
        assert_eq!(d["source"], "Stage left");
        assert_eq!(d["seq"], k as u64);
        assert_eq!(d["model"], model.as_str());
        assert_eq!(d["replayed"], false);
        assert!(d["latency_ms"].as_f64().unwrap() >= 0.0);
        for key in ["timestamp", "window_start", "window_end"] {
            let t = d[key].as_str().unwrap();
            assert!(t.len() == 24 && t.ends_with('Z'), "{key}: {t}");
        }
        assert_eq!(d["timestamp"], d["window_end"]);
        assert!(d["window_start"].as_str() < d["window_end"].as_str());
        // Same pipeline as analyze: same scores, same instruments.
        assert_eq!(d["scores"], a["scores"], "window {k}");
        assert_eq!(d["instruments"], a["instruments"], "window {k}");
        // The window's level, as analyze measures it.
        assert_eq!(d["rms_dbfs"], a["rms_dbfs"], "window {k}");
        assert_eq!(d["peak_dbfs"], a["peak_dbfs"], "window {k}");
        assert!(d["rms_dbfs"].as_f64().unwrap() < d["peak_dbfs"].as_f64().unwrap());
    }
    // Status: online while running, offline (retained) at the end.
    assert_eq!(sub.payloads("tutti/stage/status"), ["online", "offline"]);
    assert_eq!(
        retained(port, "tutti/stage/status").as_deref(),
        Some("offline")
    );
    // Retained ON/OFF per instrument: violin came on in this recording.
    assert!(sub
        .payloads("tutti/stage/instrument/violin")
        .contains(&"ON".to_string()));
    assert_eq!(
        retained(port, "tutti/stage/instrument/contrabass").as_deref(),
        Some("OFF")
    );
    // Home Assistant discovery: a retained binary_sensor per instrument.
    let configs: Vec<String> = sub
        .topics()
        .into_iter()
        .filter(|t| t.starts_with("homeassistant/binary_sensor/tutti_stage/"))
        .collect();
    assert_eq!(configs.len(), 11, "{configs:?}");
    let violin: Value = serde_json::from_str(
        &retained(
            port,
            "homeassistant/binary_sensor/tutti_stage/violin/config",
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(violin["state_topic"], "tutti/stage/instrument/violin");
    assert_eq!(violin["availability_topic"], "tutti/stage/status");
    assert_eq!(violin["unique_id"], "tutti_stage_violin");
    assert_eq!(violin["device"]["identifiers"][0], "tutti_stage");
    assert_eq!(violin["device"]["name"], "tutti Stage left");
    // And a sound-level sensor read from each detection.
    let level: Value = serde_json::from_str(
        &retained(port, "homeassistant/sensor/tutti_stage/level/config").unwrap(),
    )
    .unwrap();
    assert_eq!(level["state_topic"], "tutti/stage/detections");
    assert_eq!(level["value_template"], "{{ value_json.rms_dbfs }}");
    assert_eq!(level["unit_of_measurement"], "dBFS");
    assert_eq!(level["device"]["identifiers"][0], "tutti_stage");
}

#[test]
fn the_embedded_broker_serves_subscribers_and_sigterm_says_offline() {
    let tmp = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut child = listen(
        &tmp.path().join("state"),
        &[
            "--input",
            "samples/piano.wav",
            "--loop",
            "--speed",
            "4",
            "--embedded-port",
            &port.to_string(),
            "--device-id",
            "solo",
        ],
    )
    .stdout(Stdio::null())
    .spawn()
    .unwrap();
    assert!(wait_for_port(port, Duration::from_secs(20)));
    let sub = Sub::start(port, "embedded", &["tutti/#"], "tutti/probe");
    assert!(
        wait_until(Duration::from_secs(20), || detections(&sub, "tutti/solo")
            .len()
            >= 6),
        "no detections from the embedded broker"
    );
    assert_eq!(
        retained(port, "tutti/solo/status").as_deref(),
        Some("online")
    );
    assert_eq!(
        retained(port, "tutti/solo/instrument/piano").as_deref(),
        Some("ON")
    );
    signal(&child, "TERM");
    let status = wait_exit(&mut child, Duration::from_secs(15));
    assert_eq!(status.code(), Some(0), "SIGTERM is a clean stop");
    assert_eq!(
        sub.payloads("tutti/solo/status").last().map(String::as_str),
        Some("offline")
    );
    let d = detections(&sub, "tutti/solo");
    let seqs: Vec<u64> = d.iter().map(|d| d["seq"].as_u64().unwrap()).collect();
    assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1), "{seqs:?}");
    let piano = d
        .iter()
        .filter(|d| {
            d["instruments"]
                .as_array()
                .unwrap()
                .contains(&"piano".into())
        })
        .count();
    assert!(
        2 * piano > d.len(),
        "piano in {piano} of {} windows",
        d.len()
    );
}
