//! Faults on purpose: what tutti keeps, drops (and counts) and says when
//! the world around it misbehaves.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;
use support::*;

/// A tmpfs of `kb` KiB mounted at `dir`, unmounted when dropped. Mounting
/// needs root, which CI has; elsewhere these tests fail saying so.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, kb: u32) -> Tmpfs {
        std::fs::create_dir_all(dir).unwrap();
        let ok = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={kb}k,mode=0700"),
                "tmpfs",
            ])
            .arg(dir)
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "mounting a tmpfs at {} needs root", dir.display());
        Tmpfs(dir.to_path_buf())
    }

    fn remount(&self, how: &str) {
        let ok = Command::new("mount")
            .args(["-o", &format!("remount,{how}")])
            .arg(&self.0)
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "remount,{how} {}", self.0.display());
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// `tutti listen` on a loop with no broker to send to (nothing listens at
/// a free port), so every detection stays in the outbox under `state`.
fn listen_unsent(state: &Path, log: &Path) -> std::process::Child {
    listen(
        state,
        &[
            "--input",
            "samples/piano.wav",
            "--loop",
            "--speed",
            "10",
            "--broker",
            &format!("mqtt://127.0.0.1:{}", free_port()),
            "--device-id",
            "disk",
        ],
    )
    .stdout(Stdio::null())
    .stderr(std::fs::File::create(log).unwrap())
    .spawn()
    .unwrap()
}

/// The number in `text` just before `what` ("12 detection(s) were not kept").
fn number_before(text: &str, what: &str) -> u64 {
    let at = text
        .find(what)
        .unwrap_or_else(|| panic!("no `{what}` in {text}"));
    let digits: String = text[..at]
        .trim_end()
        .chars()
        .rev()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.chars().rev().collect::<String>().parse().unwrap()
}

/// The outbox's seqs: every line whole JSON.
fn outbox_seqs(state: &Path) -> Vec<u64> {
    std::fs::read_to_string(state.join("outbox.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            let v: serde_json::Value =
                serde_json::from_str(l).unwrap_or_else(|e| panic!("a torn line ({e}): {l}"));
            v["seq"].as_u64().unwrap()
        })
        .collect()
}

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

#[test]
fn a_full_disk_under_the_outbox_keeps_what_fits_and_counts_the_rest() {
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    let _disk = Tmpfs::mount(&state, 64);
    let log = tmp.path().join("stderr.log");
    let mut child = listen_unsent(&state, &log);
    let full = wait_until(Duration::from_secs(60), || {
        std::fs::read_to_string(&log).is_ok_and(|t| t.contains("No space left on device"))
    });
    // A few more windows on the full disk, then a normal stop.
    std::thread::sleep(Duration::from_secs(2));
    signal(&child, "TERM");
    let status = wait_exit(&mut child, Duration::from_secs(30));
    let said = std::fs::read_to_string(&log).unwrap();
    assert!(full, "the disk never filled: {said}");
    assert!(status.success(), "{status}: {said}");
    // Named: the file and the reason, once, as a warning.
    let warned: Vec<&str> = said
        .lines()
        .filter(|l| l.contains("No space left on device"))
        .collect();
    assert_eq!(warned.len(), 1, "{said}");
    assert!(
        warned[0].starts_with("tutti: warning: ") && warned[0].contains("outbox.jsonl"),
        "{said}"
    );
    // What is kept is whole and in order from the first window; the rest
    // is counted, and together they are every window analysed.
    let kept = outbox_seqs(&state);
    assert!(!kept.is_empty());
    assert_eq!(kept, (0..kept.len() as u64).collect::<Vec<_>>());
    let not_kept = number_before(&said, "detection(s) were not kept");
    let windows = number_before(&said, "windows (");
    assert!(not_kept > 0, "{said}");
    assert_eq!(kept.len() as u64 + not_kept, windows, "{said}");
    assert!(!state.join("outbox.jsonl.tmp").exists());
}

#[test]
fn a_read_only_state_directory_stops_tutti_at_start_naming_it() {
    // A read-only remount needs no file open for writing (else EBUSY), so
    // here the directory is read-only before tutti starts: it says so in
    // one line and exits 1 (systemd retries); a directory that turns
    // read-only later takes the full-disk path above.
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    let disk = Tmpfs::mount(&state, 64);
    disk.remount("ro");
    let log = tmp.path().join("stderr.log");
    let mut child = listen_unsent(&state, &log);
    let status = wait_exit(&mut child, Duration::from_secs(30));
    let said = std::fs::read_to_string(&log).unwrap();
    assert_eq!(status.code(), Some(1), "{said}");
    assert_eq!(said.trim_end().lines().count(), 1, "{said}");
    assert!(
        said.contains(&state.join("outbox.jsonl").display().to_string())
            && said.contains("Read-only file system"),
        "{said}"
    );
}

#[test]
fn a_model_corrupted_while_running_is_not_read_again_until_a_restart_refuses_it() {
    use std::io::BufRead;
    let tmp = tempfile::tempdir().unwrap();
    for f in ["cnn.json", "cnn.onnx"] {
        std::fs::copy(root().join("models").join(f), tmp.path().join(f)).unwrap();
    }
    let model = tmp.path().join("cnn.json").display().to_string();
    let state = tmp.path().join("state");
    let args = [
        "--model",
        model.as_str(),
        "--input",
        "samples/piano.wav",
        "--loop",
        "--speed",
        "10",
        "--json",
        "--broker",
        "mqtt://127.0.0.1:1",
    ];
    let mut child = listen(&state, &args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let mut next =
        || -> serde_json::Value { serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap() };
    let before = next();
    // Overwritten in place (what a bad copy or a failing card does), and
    // the sidecar too.
    std::fs::write(tmp.path().join("cnn.onnx"), b"not a model").unwrap();
    std::fs::write(tmp.path().join("cnn.json"), b"{").unwrap();
    // The running daemon goes on with the model it loaded.
    let mut after = next();
    for _ in 0..20 {
        after = next();
    }
    assert_eq!(after["model"], before["model"]);
    assert!(after["seq"].as_u64() > before["seq"].as_u64());
    signal(&child, "TERM");
    assert!(wait_exit(&mut child, Duration::from_secs(30)).success());
    // The next start refuses it, in one line naming the file.
    let out = listen(&state, &args).output().unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert_eq!(said.trim_end().lines().count(), 1, "{said}");
    assert!(said.contains(&model), "{said}");
}

#[test]
fn the_wall_clock_stepping_back_an_hour_loses_and_repeats_nothing() {
    use std::io::BufRead;
    // libfaketime (Debian package `faketime`) moves the wall clock only;
    // the monotonic clock that paces and times tutti runs on, as when NTP
    // steps a clock back.
    let lib = std::fs::read_dir("/usr/lib")
        .unwrap()
        .filter_map(|d| {
            let p = d.ok()?.path().join("faketime/libfaketime.so.1");
            p.exists().then_some(p)
        })
        .next()
        .expect("libfaketime (Debian package `faketime`) must be installed");
    let tmp = tempfile::tempdir().unwrap();
    let clock = tmp.path().join("clock");
    std::fs::write(&clock, "+0\n").unwrap();
    let state = tmp.path().join("state");
    let mut child = listen(
        &state,
        &[
            "--input",
            "samples/piano.wav",
            "--loop",
            "--speed",
            "4",
            "--json",
            "--broker",
            "mqtt://127.0.0.1:1",
        ],
    )
    .env("LD_PRELOAD", &lib)
    .env("FAKETIME_TIMESTAMP_FILE", &clock)
    .env("FAKETIME_NO_CACHE", "1")
    .env("FAKETIME_DONT_FAKE_MONOTONIC", "1")
    .stdout(Stdio::piped())
    .stderr(Stdio::null())
    .spawn()
    .unwrap();
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let mut next =
        || -> serde_json::Value { serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap() };
    let time =
        |d: &serde_json::Value| humantime::parse_rfc3339(d["timestamp"].as_str().unwrap()).unwrap();
    let before: Vec<serde_json::Value> = (0..8).map(|_| next()).collect();
    std::fs::write(&clock, "-1h\n").unwrap();
    let after: Vec<serde_json::Value> = (0..16).map(|_| next()).collect();
    signal(&child, "TERM");
    assert!(wait_exit(&mut child, Duration::from_secs(30)).success());
    // Every window once, in order, across the step...
    let seqs: Vec<u64> = before
        .iter()
        .chain(&after)
        .map(|d| d["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, (0..24).collect::<Vec<_>>());
    // ...stamped with the clock as it is: an hour back after the step.
    let last_before = time(before.last().unwrap());
    let last_after = time(after.last().unwrap());
    let back = last_before.duration_since(last_after).unwrap();
    assert!(
        back > Duration::from_secs(3000) && back < Duration::from_secs(3600),
        "{back:?}"
    );
    // And all of them wait in the outbox.
    let kept = outbox_seqs(&state);
    assert_eq!(&kept[..24], &(0..24).collect::<Vec<_>>()[..]);
}
