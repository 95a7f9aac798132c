//! Faults on purpose: what tutti keeps, drops (and counts) and says when
//! the world around it misbehaves.

mod support;

use std::process::Stdio;
use std::time::Duration;
use support::*;

/// Seqs received, sorted and without the repeats QoS 1 may bring.
fn seqs(sub: &Sub, prefix: &str) -> Vec<u64> {
    let mut s: Vec<u64> = detections(sub, prefix)
        .iter()
        .map(|d| d["seq"].as_u64().unwrap())
        .collect();
    s.sort_unstable();
    s.dedup();
    s
}

#[test]
fn a_stalled_json_reader_does_not_stall_mqtt() {
    // `listen --json` whose standard output nobody reads: the pipe fills
    // after a hundred lines or so. Publishing must go on regardless.
    let tmp = tempfile::tempdir().unwrap();
    let port = free_port();
    let _broker = Mosquitto::start(port, &tmp.path().join("broker"));
    let sub = Sub::start(port, "stalled", &["tutti/#"], "tutti/probe");
    let log = tmp.path().join("stderr.log");
    let mut child = listen(
        &tmp.path().join("state"),
        &[
            "--input",
            "samples/violin_cello.wav",
            "--loop",
            "--speed",
            "20",
            "--json",
            "--broker",
            &format!("mqtt://127.0.0.1:{port}"),
            "--device-id",
            "stalled",
        ],
    )
    .stdout(Stdio::piped())
    .stderr(std::fs::File::create(&log).unwrap())
    .spawn()
    .unwrap();
    // 64 KiB of pipe and 256 queued lines hold about 350 detections.
    let want = 800;
    let arrived = wait_until(Duration::from_secs(120), || {
        detections(&sub, "tutti/stalled").len() >= want
    });
    signal(&child, "TERM");
    let status = wait_exit(&mut child, Duration::from_secs(30));
    let said = std::fs::read_to_string(&log).unwrap();
    assert!(
        arrived,
        "only {} detections reached MQTT while standard output was stalled: {said}",
        detections(&sub, "tutti/stalled").len()
    );
    assert!(status.success(), "{status}: {said}");
    // None missing on MQTT, from the first on.
    let got = seqs(&sub, "tutti/stalled");
    assert_eq!(got, (0..got.len() as u64).collect::<Vec<_>>());
    // The keep-alive held: no last will in the middle.
    assert_eq!(
        sub.payloads("tutti/stalled/status"),
        ["online", "offline"],
        "{said}"
    );
    assert!(said.contains("Standard output is not being read"), "{said}");
    assert!(said.contains("were not printed"), "{said}");
}
