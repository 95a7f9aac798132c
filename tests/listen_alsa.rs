//! The real capture path: cpal opens ALSA's default device, which a private
//! ALSA configuration (ALSA_CONFIG_PATH) makes a `file` plugin reading raw
//! audio from a FIFO. The test writes a recording into the FIFO at four
//! times real time, so the audio goes through ALSA, cpal's callback, the
//! ring, the worker and the model exactly as a microphone's would, and the
//! scores must equal `tutti analyze` on the same recording.

mod support;

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::*;

const RATE: u32 = 48_000;
/// Frames per write into the FIFO, and per capture period.
const PERIOD: usize = 4800;

/// A 16-bit stereo recording at 48 kHz: samples/violin_cello.wav on the
/// left, reversed and at half level on the right. (The samples are the
/// 44.1 kHz file's, so the music plays 9 % fast; it only has to be music.)
fn stereo_pcm() -> Vec<i16> {
    let bytes = std::fs::read(root().join("samples/violin_cello.wav")).unwrap();
    let at = bytes.windows(4).position(|w| w == b"data").unwrap();
    let len = u32::from_le_bytes(bytes[at + 4..at + 8].try_into().unwrap()) as usize;
    let mono: Vec<i16> = bytes[at + 8..at + 8 + len]
        .chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]))
        .collect();
    mono.iter()
        .zip(mono.iter().rev())
        .flat_map(|(&l, &r)| [l, r / 2])
        .collect()
}

fn write_wav(path: &Path, pcm: &[i16]) {
    let data = (pcm.len() * 2) as u32;
    let mut out = Vec::with_capacity(44 + data as usize);
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(36 + data).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes()); // PCM
    out.extend_from_slice(&2u16.to_le_bytes()); // channels
    out.extend_from_slice(&RATE.to_le_bytes());
    out.extend_from_slice(&(RATE * 4).to_le_bytes());
    out.extend_from_slice(&4u16.to_le_bytes());
    out.extend_from_slice(&16u16.to_le_bytes());
    out.extend_from_slice(b"data");
    out.extend_from_slice(&data.to_le_bytes());
    for s in pcm {
        out.extend_from_slice(&s.to_le_bytes());
    }
    std::fs::write(path, out).unwrap();
}

/// ALSA's default capture device reads raw S16_LE stereo 48 kHz from
/// `infile`; `plug` converts it to whatever cpal asks for.
fn alsa_config(dir: &Path, infile: &Path) -> std::path::PathBuf {
    let conf = dir.join("asound.conf");
    std::fs::write(
        &conf,
        format!(
            r#"pcm.filecap {{
  type file
  slave.pcm {{ type null }}
  file "/dev/null"
  infile "{}"
  format "raw"
  hint {{ show on description "tutti test capture" }}
}}
pcm.!default {{
  type plug
  slave {{ pcm "filecap" format S16_LE rate {RATE} channels 2 }}
  hint {{ show on description "Default capture" }}
}}
"#,
            infile.display()
        ),
    )
    .unwrap();
    conf
}

fn scores(v: &serde_json::Value) -> &serde_json::Map<String, serde_json::Value> {
    v["scores"].as_object().unwrap()
}

/// Plays `pcm` into ALSA's default device (through `fifo`) at 4× real
/// time while `tutti listen` captures it with `args`, until `windows`
/// detections are printed; then SIGTERM. Returns the detections and the log.
fn capture_through_alsa(
    dir: &Path,
    pcm: &[i16],
    args: &[&str],
    windows: usize,
) -> (Vec<serde_json::Value>, String) {
    let fifo = dir.join("capture.fifo");
    let _ = std::fs::remove_file(&fifo);
    assert!(Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    let conf = alsa_config(dir, &fifo);
    // The "microphone": the recording written into the FIFO at 4× real
    // time, then held open (silent) until the test is done.
    let (done_tx, done_rx) = mpsc::channel::<()>();
    let feeder = {
        let fifo = fifo.clone();
        let bytes: Vec<u8> = pcm.iter().flat_map(|s| s.to_le_bytes()).collect();
        std::thread::spawn(move || {
            let mut f = std::fs::OpenOptions::new().write(true).open(&fifo).unwrap();
            let start = Instant::now();
            for (i, chunk) in bytes.chunks(PERIOD * 4).enumerate() {
                if f.write_all(chunk).is_err() {
                    return; // tutti has stopped reading: the test is over
                }
                let due =
                    Duration::from_secs_f64((i + 1) as f64 * PERIOD as f64 / f64::from(RATE) / 4.0);
                if let Some(wait) = due.checked_sub(start.elapsed()) {
                    std::thread::sleep(wait);
                }
            }
            let _ = done_rx.recv_timeout(Duration::from_secs(60));
        })
    };
    let port = free_port().to_string();
    let mut all = vec!["--input", "default", "--embedded-port", &port, "--json"];
    all.extend_from_slice(args);
    let mut child = listen(dir, &all)
        .env("ALSA_CONFIG_PATH", &conf)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = Arc::new(Mutex::new(Vec::<String>::new()));
    let stdout = child.stdout.take().unwrap();
    let reader = {
        let lines = lines.clone();
        std::thread::spawn(move || {
            for l in BufReader::new(stdout).lines().map_while(Result::ok) {
                lines.lock().unwrap().push(l);
            }
        })
    };
    let stderr = child.stderr.take().unwrap();
    let log = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut BufReader::new(stderr), &mut s);
        s
    });
    let got_all = wait_until(Duration::from_secs(60), || {
        lines.lock().unwrap().len() >= windows
    });
    signal(&child, "TERM");
    let _ = done_tx.send(()); // close the FIFO so ALSA's read returns
    let status = wait_exit(&mut child, Duration::from_secs(20));
    feeder.join().unwrap();
    reader.join().unwrap();
    let log = log.join().unwrap();
    assert!(got_all, "too few windows; log:\n{log}");
    assert!(status.success(), "exit {status}; log:\n{log}");
    // Once the FIFO closes ALSA's file plugin races on unpaced, so only
    // the time before SIGTERM must be free of lost audio.
    let before_stop = log.split("SIGTERM").next().unwrap();
    assert!(!before_stop.contains("lost"), "audio was lost:\n{log}");
    let live = lines
        .lock()
        .unwrap()
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    (live, log)
}

#[test]
fn tutti_devices_lists_the_alsa_devices_with_their_formats() {
    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("audio.raw");
    std::fs::write(&raw, [0u8; 4 * PERIOD]).unwrap();
    let conf = alsa_config(dir.path(), &raw);
    let out = tutti()
        .arg("devices")
        .env("ALSA_CONFIG_PATH", &conf)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("tutti test capture"), "{text}");
    assert!(text.contains("id: alsa:filecap"), "{text}");
    assert!(text.contains("id: alsa:default"), "{text}");
    assert!(text.contains("(default)"), "{text}");
    // The plug device's 64 channel counts × formats fold into one line.
    let supports: Vec<&str> = text.lines().filter(|l| l.contains("supports:")).collect();
    assert!(
        supports
            .iter()
            .any(|l| l.contains("1–64 ch") && l.contains("i16") && l.contains("f32")),
        "{text}"
    );
    assert!(supports.len() <= 4, "{text}");
}

#[test]
fn audio_through_cpal_and_alsa_scores_exactly_as_analyze_does() {
    let dir = tempfile::tempdir().unwrap();
    let pcm = stereo_pcm();
    let wav = dir.path().join("duet48k.wav");
    write_wav(&wav, &pcm);

    // What `tutti analyze` says of the same recording, window by window.
    let out = tutti()
        .current_dir(root())
        .args(["analyze", "--model", "models/tutti.json", "--json"])
        .arg(&wav)
        .env_remove("TUTTI_MODEL")
        .output()
        .unwrap();
    assert!(out.status.success());
    let expected: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    // Windows that end well inside the recording (the resampler looks
    // 0.2 s ahead; after the end, capture and analyze differ by design).
    let seconds = (pcm.len() / 2) as f64 / f64::from(RATE);
    let full: Vec<_> = expected
        .iter()
        .filter(|w| w["end"].as_f64().unwrap() <= seconds - 0.25)
        .collect();
    assert!(full.len() >= 10, "only {} full windows", full.len());

    let period = PERIOD.to_string();
    let (live, log) =
        capture_through_alsa(dir.path(), &pcm, &["--period-frames", &period], full.len());
    assert!(
        log.contains("2 channel(s) at 48000 Hz"),
        "the device was not opened as expected:\n{log}"
    );

    for (i, want) in full.iter().enumerate() {
        assert_eq!(live[i]["seq"], i as u64);
        assert_eq!(
            scores(&live[i]),
            scores(want),
            "window {i} ({} s) differs from analyze",
            want["start"]
        );
    }
}

#[test]
fn a_device_opened_at_the_models_rate_needs_no_resampling_by_tutti() {
    let dir = tempfile::tempdir().unwrap();
    let period = (PERIOD / 2).to_string();
    let (live, log) = capture_through_alsa(
        dir.path(),
        &stereo_pcm(),
        &["--sample-rate", "22050", "--period-frames", &period],
        6,
    );
    // ALSA's plug converts the rate; tutti gets the model's rate directly.
    assert!(log.contains("2 channel(s) at 22050 Hz"), "{log}");
    for w in &live[..6] {
        assert!(scores(w)
            .values()
            .all(|v| (0.0..=1.0).contains(&v.as_f64().unwrap())));
    }
    // The recording is a violin (left) and a cello (right): violin leads.
    let violin = live[..6]
        .iter()
        .filter(|w| {
            w["instruments"]
                .as_array()
                .unwrap()
                .iter()
                .any(|i| i == "violin")
        })
        .count();
    assert!(violin >= 4, "violin in only {violin} of 6 windows");
}
