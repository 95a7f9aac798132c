//! `tutti listen` as systemd sees it: sd_notify READY after the first
//! window, watchdog pings while audio flows, STOPPING on SIGTERM; and one
//! clear error line for bad settings, inputs and models.

mod support;

use std::os::unix::net::UnixDatagram;
use std::process::Stdio;
use std::time::{Duration, Instant};
use support::*;

#[test]
fn systemd_hears_ready_after_the_first_window_then_watchdog_pings_then_stopping() {
    let tmp = tempfile::tempdir().unwrap();
    let socket_path = tmp.path().join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let port = free_port();
    let listen_cmd = listen(
        &tmp.path().join("state"),
        &[
            "--input",
            "samples/piano.wav",
            "--loop",
            "--embedded-port",
            &port.to_string(),
        ],
    );
    let started = Instant::now();
    let mut child = as_service(&listen_cmd, &socket_path, Duration::from_millis(400))
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut messages: Vec<(Duration, String)> = vec![];
    let mut buf = [0u8; 256];
    while started.elapsed() < Duration::from_secs(20) {
        if let Ok(n) = socket.recv(&mut buf) {
            messages.push((
                started.elapsed(),
                String::from_utf8_lossy(&buf[..n]).trim().to_string(),
            ));
        }
        let pings = messages.iter().filter(|m| m.1 == "WATCHDOG=1").count();
        if pings >= 3 {
            break;
        }
    }
    signal(&child, "TERM");
    assert_eq!(
        wait_exit(&mut child, Duration::from_secs(10)).code(),
        Some(0)
    );
    while let Ok(n) = socket.recv(&mut buf) {
        messages.push((
            started.elapsed(),
            String::from_utf8_lossy(&buf[..n]).trim().to_string(),
        ));
    }
    let kinds: Vec<&str> = messages.iter().map(|m| m.1.as_str()).collect();
    let ready = kinds
        .iter()
        .position(|&k| k == "READY=1")
        .unwrap_or_else(|| panic!("no READY=1 in {messages:?}"));
    // The first window needs 2 s of audio played in real time.
    assert!(messages[ready].0 >= Duration::from_secs(2), "{messages:?}");
    assert!(
        kinds[ready..]
            .iter()
            .filter(|&&k| k == "WATCHDOG=1")
            .count()
            >= 3
    );
    assert_eq!(kinds.last(), Some(&"STOPPING=1"), "{kinds:?}");
}

fn error_of(args: &[&str]) -> String {
    let tmp = tempfile::tempdir().unwrap();
    let out = listen(tmp.path(), args)
        .args(["--embedded-port", &free_port().to_string()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{args:?} must fail");
    let err = String::from_utf8_lossy(&out.stderr).trim().to_string();
    let last = err.lines().last().unwrap_or_default().to_string();
    assert!(last.starts_with("tutti: error: "), "{err}");
    last
}

#[test]
fn bad_inputs_give_one_clear_line() {
    let e = error_of(&["--input", "no/such.wav"]);
    assert!(e.contains("no/such.wav"), "{e}");
    let e = error_of(&["--input", "Studio Mic That Is Not There"]);
    assert!(
        e.contains("Studio Mic That Is Not There") && e.contains("tutti devices"),
        "{e}"
    );
    let e = error_of(&["--input", "samples/piano.wav", "--channel", "3"]);
    assert!(e.contains("channel 3") && e.contains("1 channel"), "{e}");
    let e = error_of(&["--input", "samples/piano.wav", "--speed", "0"]);
    assert!(e.contains("--speed"), "{e}");
    // A huge speed would size one period's chunk past memory.
    let e = error_of(&["--input", "samples/piano.wav", "--speed", "1e12"]);
    assert!(
        e.contains("--speed 1000000000000") && e.contains("100"),
        "{e}"
    );
    let e = error_of(&["--input", "samples/piano.wav", "--outbox-mb", "0"]);
    assert!(e.contains("state.outbox_mb"), "{e}");
    let e = error_of(&["--input", "samples/piano.wav", "--broker", "http://x"]);
    assert!(e.contains("mqtt.broker") && e.contains("http://x"), "{e}");
    let e = error_of(&["--input", "samples/piano.wav", "--hop", "fast"]);
    assert!(e.contains("--hop") && e.contains("fast"), "{e}");
}

#[test]
fn a_bad_model_or_state_directory_gives_one_clear_line() {
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("broken.json");
    std::fs::write(&model, "{ not json").unwrap();
    let e = error_of(&[
        "--input",
        "samples/piano.wav",
        "--model",
        model.to_str().unwrap(),
    ]);
    assert!(e.contains("broken.json"), "{e}");
    // A state directory that cannot be created: a file is in the way.
    let blocker = tmp.path().join("file");
    std::fs::write(&blocker, "").unwrap();
    let state = blocker.join("state");
    let e = error_of(&[
        "--input",
        "samples/piano.wav",
        "--state-dir",
        state.to_str().unwrap(),
    ]);
    assert!(e.contains(state.to_str().unwrap()), "{e}");
    // The cause is said once, not once per layer of the error chain.
    assert_eq!(e.matches("os error").count(), 1, "{e}");
}
