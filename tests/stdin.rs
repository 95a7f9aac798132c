//! Raw PCM on standard input (`tutti listen --input -`): the same recording
//! piped as s16le at 22 050 Hz mono, and as f32le at 48 kHz stereo, scores
//! as `tutti analyze` scores it as a WAV file; each detection's level
//! matches an RMS computed here from the samples; and a stream that stops
//! without ending stops the watchdog pings until it flows again.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};
use support::*;

/// `n` samples of samples/violin_cello.wav (16-bit mono at 44.1 kHz),
/// looped as needed.
fn violin_cello(n: usize) -> Vec<i16> {
    let mut r = hound::WavReader::open(root().join("samples/violin_cello.wav")).unwrap();
    let one: Vec<i16> = r.samples::<i16>().map(Result::unwrap).collect();
    one.into_iter().cycle().take(n).collect()
}

fn write_wav(path: &Path, spec: hound::WavSpec, samples: &[f32]) {
    let mut w = hound::WavWriter::create(path, spec).unwrap();
    for &s in samples {
        match spec.sample_format {
            hound::SampleFormat::Int => w.write_sample((s * 32768.0) as i16).unwrap(),
            hound::SampleFormat::Float => w.write_sample(s).unwrap(),
        }
    }
    w.finalize().unwrap();
}

/// `tutti listen --input - ARGS --json` fed `bytes` on standard input,
/// against a mosquitto of its own; its detections, as printed.
fn listen_to_pipe(dir: &Path, bytes: Vec<u8>, args: &[&str]) -> Vec<serde_json::Value> {
    let port = free_port();
    let _broker = Mosquitto::start(port, &dir.join("broker"));
    let broker = format!("mqtt://127.0.0.1:{port}");
    let mut child = listen(
        &dir.join("state"),
        &["--input", "-", "--json", "--broker", &broker],
    )
    .args(args)
    .stdin(Stdio::piped())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let feeder = std::thread::spawn(move || {
        // Odd-sized writes: frames split across reads must come out whole.
        for piece in bytes.chunks(10_007) {
            stdin.write_all(piece).unwrap();
        }
    });
    let mut out = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    feeder.join().unwrap();
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    let status = wait_exit(&mut child, Duration::from_secs(60));
    assert!(status.success(), "{status}: {err}");
    assert!(err.contains("The input has ended."), "{err}");
    out.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn level_db(power: f64) -> f64 {
    (10.0 * power.log10()).max(-120.0)
}

#[test]
fn s16le_at_the_models_rate_scores_as_analyze_to_the_last_digit_with_its_level() {
    let dir = tempfile::tempdir().unwrap();
    // 12 s at 22 050 Hz: every other sample (it only has to be music).
    let pcm: Vec<i16> = violin_cello(24 * 22050).into_iter().step_by(2).collect();
    let wav = dir.path().join("mono.wav");
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 22050,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let floats: Vec<f32> = pcm.iter().map(|&s| f32::from(s) / 32768.0).collect();
    write_wav(&wav, spec, &floats);
    let expected = analyze_json(wav.to_str().unwrap(), &[]);
    let bytes = pcm.iter().flat_map(|s| s.to_le_bytes()).collect();
    let got = listen_to_pipe(
        dir.path(),
        bytes,
        &[
            "--input-format",
            "s16le",
            "--sample-rate",
            "22050",
            "--channels",
            "1",
        ],
    );
    assert_eq!(got.len(), expected.len(), "one detection per window");
    assert!(got.len() >= 20);
    for (k, (d, a)) in got.iter().zip(&expected).enumerate() {
        assert_eq!(d["seq"], k as u64);
        assert_eq!(d["scores"], a["scores"], "window {k}");
        assert_eq!(d["instruments"], a["instruments"], "window {k}");
        assert_eq!(
            (&d["rms_dbfs"], &d["peak_dbfs"]),
            (&a["rms_dbfs"], &a["peak_dbfs"])
        );
        // The level, from the samples themselves: window k spans
        // [k · 0.5 s, k · 0.5 s + 2 s).
        let span = &pcm[k * 11025..k * 11025 + 44100];
        let power = span
            .iter()
            .map(|&s| (f64::from(s) / 32768.0).powi(2))
            .sum::<f64>()
            / span.len() as f64;
        let peak = span
            .iter()
            .map(|&s| (f64::from(s) / 32768.0).abs())
            .fold(0.0, f64::max);
        let (rms, pk) = (
            d["rms_dbfs"].as_f64().unwrap(),
            d["peak_dbfs"].as_f64().unwrap(),
        );
        assert!(
            (rms - level_db(power)).abs() <= 0.0051,
            "window {k}: {rms} vs {}",
            level_db(power)
        );
        assert!(
            (pk - level_db(peak * peak)).abs() <= 0.0051,
            "window {k}: {pk}"
        );
        assert!(rms < pk, "RMS under the peak");
    }
    assert!(
        got.iter().all(|d| d["source"] == d["device_id"]),
        "source defaults to the id"
    );
}

#[test]
fn f32le_stereo_at_48_khz_scores_as_analyze_on_the_same_wav() {
    let dir = tempfile::tempdir().unwrap();
    // 12 s of stereo at 48 kHz: the recording on the left, reversed at half
    // level on the right (its 44.1 kHz samples, so it plays 9 % fast).
    let mono: Vec<f32> = violin_cello(12 * 48000)
        .iter()
        .map(|&s| f32::from(s) / 32768.0)
        .collect();
    let stereo: Vec<f32> = mono
        .iter()
        .zip(mono.iter().rev())
        .flat_map(|(&l, &r)| [l, r * 0.5])
        .collect();
    let wav = dir.path().join("stereo.wav");
    let spec = hound::WavSpec {
        channels: 2,
        sample_rate: 48000,
        bits_per_sample: 32,
        sample_format: hound::SampleFormat::Float,
    };
    write_wav(&wav, spec, &stereo);
    let expected = analyze_json(wav.to_str().unwrap(), &[]);
    let bytes = stereo.iter().flat_map(|s| s.to_le_bytes()).collect();
    let got = listen_to_pipe(
        dir.path(),
        bytes,
        &[
            "--input-format",
            "f32le",
            "--sample-rate",
            "48000",
            "--channels",
            "2",
            "--input-name",
            "Stage camera",
        ],
    );
    // Windows that end well inside the stream (the resampler looks 0.2 s
    // ahead; at the end of a stream capture and analyze differ by design,
    // as for a device: tests/listen_alsa.rs).
    let seconds = mono.len() as f64 / 48000.0;
    let full: Vec<_> = expected
        .iter()
        .filter(|w| w["end"].as_f64().unwrap() <= seconds - 0.25)
        .collect();
    assert!(full.len() >= 15, "only {} full windows", full.len());
    for (k, a) in full.iter().enumerate() {
        assert_eq!(got[k]["scores"], a["scores"], "window {k}");
        assert_eq!(got[k]["rms_dbfs"], a["rms_dbfs"], "window {k}");
        assert_eq!(got[k]["source"], "Stage camera");
    }
}

/// A datagram socket standing in for systemd's notify socket.
struct Notify {
    socket: UnixDatagram,
    heard: Vec<(Instant, String)>,
}

impl Notify {
    fn drain(&mut self, for_: Duration) {
        let until = Instant::now() + for_;
        let mut buf = [0u8; 256];
        while Instant::now() < until {
            if let Ok(n) = self.socket.recv(&mut buf) {
                let text = String::from_utf8_lossy(&buf[..n]).trim().to_string();
                self.heard.push((Instant::now(), text));
            }
        }
    }

    fn pings_between(&self, from: Instant, to: Instant) -> usize {
        self.heard
            .iter()
            .filter(|(t, m)| *t >= from && *t < to && m == "WATCHDOG=1")
            .count()
    }
}

/// Writes `seconds` of a 440 Hz tone at 22 050 Hz in real time.
fn play(stdin: &mut impl Write, seconds: f64, notify: &mut Notify) {
    let chunk: Vec<u8> = (0..2205)
        .flat_map(|i| {
            let x = (2.0 * std::f64::consts::PI * 440.0 * f64::from(i) / 22050.0).sin();
            ((x * 8000.0) as i16).to_le_bytes()
        })
        .collect();
    for _ in 0..(seconds * 10.0) as usize {
        stdin.write_all(&chunk).unwrap();
        notify.drain(Duration::from_millis(100));
    }
}

#[test]
fn a_stream_that_stops_without_ending_stops_the_watchdog_until_it_flows_again() {
    let tmp = tempfile::tempdir().unwrap();
    let socket_path = tmp.path().join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(20)))
        .unwrap();
    let mut notify = Notify {
        socket,
        heard: vec![],
    };
    let port = free_port();
    let cmd = listen(
        &tmp.path().join("state"),
        &[
            "--input",
            "-",
            "--sample-rate",
            "22050",
            "--embedded-port",
            &port.to_string(),
        ],
    );
    let mut child: Child = as_service(&cmd, &socket_path, Duration::from_millis(400))
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let stderr = child.stderr.take().unwrap();
    let sink = log.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            sink.lock().unwrap().push_str(&format!("{line}\n"));
        }
    });
    let mut stdin = child.stdin.take().unwrap();
    let t0 = Instant::now();
    play(&mut stdin, 4.0, &mut notify);
    let stalled = Instant::now();
    // Open, and silent: nothing to read, no end.
    notify.drain(Duration::from_secs(6));
    let resumed = Instant::now();
    play(&mut stdin, 2.0, &mut notify);
    let ended = Instant::now();
    drop(stdin);
    let status = wait_exit(&mut child, Duration::from_secs(20));
    notify.drain(Duration::from_millis(100));
    let log = log.lock().unwrap().clone();
    assert!(status.success(), "{status}: {log}");
    assert!(
        notify.heard.iter().any(|(_, m)| m == "READY=1"),
        "{:?}",
        notify.heard
    );
    assert!(notify.pings_between(t0, stalled) >= 2, "{:?}", notify.heard);
    // Half a watchdog interval after the audio stopped, no more pings.
    let quiet_from = stalled + Duration::from_millis(600);
    assert_eq!(
        notify.pings_between(quiet_from, resumed),
        0,
        "{:?}",
        notify.heard
    );
    assert!(
        notify.pings_between(resumed, ended) >= 1,
        "{:?}",
        notify.heard
    );
    assert!(log.contains("No audio on standard input for 5 s"), "{log}");
    assert!(
        log.contains("No audio lately: not telling the watchdog"),
        "{log}"
    );
    assert!(log.contains("Audio on standard input again."), "{log}");
    assert!(log.contains("The input has ended."), "{log}");
}
