//! Nothing is lost when the broker goes away: a 30-second outage mid-stream,
//! and a daemon killed with SIGKILL while the broker is unreachable.

mod support;

use serde_json::Value;
use std::io::Read;
use std::process::Stdio;
use std::time::Duration;
use support::*;

/// Seqs in arrival order must be complete (0..=last, each at least once)
/// and in order: a repeat (QoS 1) never goes back before a seq that has
/// not yet arrived.
fn assert_complete_and_in_order(d: &[Value], windows: u64) {
    let seqs: Vec<u64> = d.iter().map(|d| d["seq"].as_u64().unwrap()).collect();
    let mut next = 0;
    for (i, &s) in seqs.iter().enumerate() {
        assert!(s <= next, "seq {s} arrived (message {i}) before seq {next}");
        if s == next {
            next += 1;
        }
    }
    assert_eq!(next, windows, "every window's detection arrived");
}

#[test]
fn a_30_second_broker_outage_loses_no_detection() {
    let tmp = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut broker = Mosquitto::start(port, &tmp.path().join("broker"));
    let sub = Sub::start(port, "outage", &["tutti/gig/#"], "tutti/gig/probe");
    let state = tmp.path().join("state");
    let mut child = listen(
        &state,
        &[
            "--input",
            "samples/violin_cello.wav",
            "--loop",
            "--speed",
            "4",
            "--broker",
            &format!("mqtt://127.0.0.1:{port}"),
            "--device-id",
            "gig",
        ],
    )
    .stdout(Stdio::null())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    assert!(wait_until(Duration::from_secs(30), || {
        detections(&sub, "tutti/gig").len() >= 16
    }));
    broker.stop();
    let before = detections(&sub, "tutti/gig").len();
    std::thread::sleep(Duration::from_secs(30));
    let outbox = std::fs::read_to_string(state.join("outbox.jsonl")).unwrap();
    assert!(
        outbox.lines().count() >= 100,
        "30 s at 8 windows/s wait in the outbox ({} lines)",
        outbox.lines().count()
    );
    broker.restart();
    // The backlog drains (the subscriber's session kept its place).
    assert!(wait_until(Duration::from_secs(30), || {
        detections(&sub, "tutti/gig").len() >= before + 200
    }));
    signal(&child, "TERM");
    let status = wait_exit(&mut child, Duration::from_secs(20));
    assert_eq!(status.code(), Some(0));
    let mut log = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut log)
        .unwrap();
    let windows: u64 = log
        .lines()
        .find_map(|l| l.strip_prefix("tutti: Stopped after "))
        .and_then(|l| l.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no summary in the log:\n{log}"));
    assert!(log.contains("unreachable"), "{log}");
    assert!(wait_until(Duration::from_secs(10), || {
        detections(&sub, "tutti/gig")
            .iter()
            .any(|d| d["seq"].as_u64() == Some(windows - 1))
    }));
    let d = detections(&sub, "tutti/gig");
    assert_complete_and_in_order(&d, windows);
    let replayed = d.iter().filter(|d| d["replayed"] == true).count();
    assert!(replayed >= 200, "{replayed} replayed of {}", d.len());
    eprintln!(
        "outage: {windows} windows, {} messages ({} duplicates), {replayed} replayed",
        d.len(),
        d.len() as u64 - windows
    );
    // Replayed detections keep the time their window ended: older than
    // the moment they were sent.
    let first_replayed = d.iter().position(|d| d["replayed"] == true).unwrap();
    let later_live = d[first_replayed..].iter().find(|d| d["replayed"] == false);
    if let Some(live) = later_live {
        assert!(d[first_replayed]["timestamp"].as_str() < live["timestamp"].as_str());
    }
    // Everything was acknowledged: the outbox is empty.
    assert_eq!(
        std::fs::metadata(state.join("outbox.jsonl")).unwrap().len(),
        0
    );
}

#[test]
fn detections_of_a_killed_daemon_are_sent_by_the_next_start() {
    let tmp = tempfile::tempdir().unwrap();
    let port = free_port();
    let state = tmp.path().join("state");
    let broker_url = format!("mqtt://127.0.0.1:{port}");
    let args = |input_loop: bool| {
        let mut a = vec![
            "--input",
            "samples/piano.wav",
            "--speed",
            "20",
            "--broker",
            broker_url.as_str(),
            "--device-id",
            "crash",
        ];
        if input_loop {
            a.push("--loop");
        }
        a.into_iter().map(String::from).collect::<Vec<_>>()
    };
    let first_args = args(true);
    let first: Vec<&str> = first_args.iter().map(String::as_str).collect();
    // No broker yet: detections pile up in the outbox; then SIGKILL.
    let mut child = listen(&state, &first)
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let outbox = state.join("outbox.jsonl");
    assert!(wait_until(Duration::from_secs(30), || {
        std::fs::read_to_string(&outbox).is_ok_and(|t| t.lines().count() >= 20)
    }));
    signal(&child, "KILL");
    wait_exit(&mut child, Duration::from_secs(5));
    let text = std::fs::read_to_string(&outbox).unwrap();
    let waiting = text.lines().filter(|l| l.ends_with('}')).count();

    let _broker = Mosquitto::start(port, &tmp.path().join("broker"));
    let sub = Sub::start(port, "crash", &["tutti/crash/#"], "tutti/crash/probe");
    let second_args = args(false);
    let second: Vec<&str> = second_args.iter().map(String::as_str).collect();
    let mut child = listen(&state, &second)
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    assert!(wait_exit(&mut child, Duration::from_secs(60)).success());
    assert!(wait_until(Duration::from_secs(5), || {
        detections(&sub, "tutti/crash").len() >= waiting + 13
    }));
    let d = detections(&sub, "tutti/crash");
    // First the killed run's detections, replayed, in order...
    let old: Vec<u64> = d[..waiting]
        .iter()
        .map(|d| d["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(old, (0..waiting as u64).collect::<Vec<_>>());
    assert!(d[..waiting].iter().all(|d| d["replayed"] == true));
    // ...then this run's, live.
    let new: Vec<u64> = d[waiting..]
        .iter()
        .map(|d| d["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(new, (0..13).collect::<Vec<_>>());
    assert!(d[waiting..].iter().all(|d| d["replayed"] == false));

    // Killed while connected: the broker sends the last will, `offline`.
    let mut child = listen(&state, &first)
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    assert!(wait_until(Duration::from_secs(20), || {
        retained(port, "tutti/crash/status").as_deref() == Some("online")
    }));
    signal(&child, "KILL");
    wait_exit(&mut child, Duration::from_secs(5));
    assert!(wait_until(Duration::from_secs(5), || {
        retained(port, "tutti/crash/status").as_deref() == Some("offline")
    }));
}
