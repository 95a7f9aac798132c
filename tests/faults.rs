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

#[test]
fn a_line_torn_by_sigkill_is_skipped_with_a_warning_and_the_rest_is_sent() {
    let tmp = tempfile::tempdir().unwrap();
    let port = free_port();
    let state = tmp.path().join("state");
    let broker = format!("mqtt://127.0.0.1:{port}");
    let args = [
        "--input",
        "samples/piano.wav",
        "--speed",
        "20",
        "--broker",
        &broker,
        "--device-id",
        "torn",
    ];
    // No broker: detections wait in the outbox, then SIGKILL...
    let mut child = listen(&state, &args).stdout(Stdio::null()).spawn().unwrap();
    let outbox = state.join("outbox.jsonl");
    assert!(wait_until(Duration::from_secs(30), || {
        std::fs::read_to_string(&outbox).is_ok_and(|t| t.lines().count() >= 10)
    }));
    signal(&child, "KILL");
    wait_exit(&mut child, Duration::from_secs(5));
    // ...in the middle of a write: half a line at the end.
    let whole = std::fs::read_to_string(&outbox).unwrap().lines().count();
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&outbox)
        .unwrap();
    std::io::Write::write_all(&mut f, b"{\"schema\":1,\"device_id\":\"torn\",\"seq\":9").unwrap();
    drop(f);

    let _mosquitto = Mosquitto::start(port, &tmp.path().join("broker"));
    let sub = Sub::start(port, "torn", &["tutti/torn/#"], "tutti/torn/probe");
    let log = tmp.path().join("second.log");
    let mut child = listen(&state, &args)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    assert!(wait_exit(&mut child, Duration::from_secs(60)).success());
    let said = std::fs::read_to_string(&log).unwrap();
    assert!(
        said.contains("skipped a torn last line (38 bytes)") && said.contains("outbox.jsonl"),
        "{said}"
    );
    assert!(wait_until(Duration::from_secs(5), || {
        detections(&sub, "tutti/torn")
            .iter()
            .filter(|d| d["replayed"] == true)
            .count()
            >= whole
    }));
    // Every whole line of the killed run arrived, in order; nothing of the
    // torn one did (each payload parsed as JSON on the way).
    let replayed: Vec<u64> = detections(&sub, "tutti/torn")
        .iter()
        .filter(|d| d["replayed"] == true)
        .map(|d| d["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(replayed, (0..whole as u64).collect::<Vec<_>>());
}

#[test]
fn a_broker_that_accepts_but_never_answers_loses_nothing() {
    // A TCP listener that takes connections and never says a word: no
    // CONNACK, ever.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let held = std::thread::spawn(move || {
        let mut conns = vec![];
        for c in silent.incoming().take(8).flatten() {
            conns.push(c);
        }
        conns
    });
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    let log = tmp.path().join("stderr.log");
    let mut child = listen(
        &state,
        &[
            "--input",
            "samples/piano.wav",
            "--speed",
            "1",
            "--broker",
            &format!("mqtt://127.0.0.1:{port}"),
            "--device-id",
            "mute",
        ],
    )
    .stdout(Stdio::null())
    .stderr(std::fs::File::create(&log).unwrap())
    .spawn()
    .unwrap();
    // The clip lasts 8 s, more than the 5 s rumqttc waits for a CONNACK;
    // then the daemon ends by itself.
    let status = wait_exit(&mut child, Duration::from_secs(60));
    let said = std::fs::read_to_string(&log).unwrap();
    assert!(status.success(), "{status}: {said}");
    let windows = analyze_json("samples/piano.wav", &[]).len();
    // All of them kept for the next start, and said so.
    let kept = std::fs::read_to_string(state.join("outbox.jsonl")).unwrap();
    assert_eq!(kept.lines().count(), windows, "{said}");
    assert!(said.contains("unreachable (Network timeout)"), "{said}");
    assert!(
        said.contains("stay in the outbox for the next start"),
        "{said}"
    );
    drop(held);
}
