//! Bad input never panics: each case gives one line on stderr that names the
//! file and the problem, and a non-zero exit; good files in the same call are
//! still analysed.

use std::path::{Path, PathBuf};
use std::process::Command;

fn tutti(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_tutti"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn wav_header(channels: u16, rate: u32, bits: u16, format: u16, data_bytes: u32) -> Vec<u8> {
    let block = channels * bits / 8;
    let mut h = vec![];
    h.extend(b"RIFF");
    h.extend((36 + data_bytes).to_le_bytes());
    h.extend(b"WAVEfmt ");
    h.extend(16u32.to_le_bytes());
    h.extend(format.to_le_bytes());
    h.extend(channels.to_le_bytes());
    h.extend(rate.to_le_bytes());
    h.extend((rate * u32::from(block)).to_le_bytes());
    h.extend(block.to_le_bytes());
    h.extend(bits.to_le_bytes());
    h.extend(b"data");
    h.extend(data_bytes.to_le_bytes());
    h
}

fn tone16(path: &Path, seconds: f64) {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 22050,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(path, spec).unwrap();
    for i in 0..(seconds * 22050.0) as usize {
        w.write_sample(((i as f32 * 0.1).sin() * 8000.0) as i16)
            .unwrap();
    }
    w.finalize().unwrap();
}

fn assert_one_line_error(path: &Path, want: &[&str]) {
    let p = path.to_str().unwrap();
    let (code, _, err) = tutti(&["analyze", p]);
    assert_ne!(code, 0, "{p} must fail");
    assert!(!err.contains("panicked"), "{p}: {err}");
    assert_eq!(err.trim_end().lines().count(), 1, "one line for {p}: {err}");
    assert!(err.contains(p), "the error names the file: {err}");
    let lower = err.to_lowercase();
    for w in want {
        assert!(lower.contains(w), "{p}: expected `{w}` in: {err}");
    }
}

struct Dir(tempfile::TempDir);
impl Dir {
    fn new() -> Self {
        Dir(tempfile::tempdir().unwrap())
    }
    fn file(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let p = self.0.path().join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    }
}

#[test]
fn not_a_wav() {
    let d = Dir::new();
    assert_one_line_error(
        &d.file("notes.wav", b"these are not samples\n"),
        &["not a wav"],
    );
}

#[test]
fn truncated_header() {
    let d = Dir::new();
    let full = wav_header(1, 22050, 16, 1, 100);
    assert_one_line_error(&d.file("cut.wav", &full[..20]), &["header"]);
}

#[test]
fn zero_channels() {
    let d = Dir::new();
    let mut bytes = wav_header(0, 22050, 16, 1, 4);
    bytes.extend([0, 0, 0, 0]);
    assert_one_line_error(&d.file("zero.wav", &bytes), &["channel"]);
}

#[test]
fn truncated_data() {
    let d = Dir::new();
    let p = d.0.path().join("short.wav");
    tone16(&p, 3.0);
    let bytes = std::fs::read(&p).unwrap();
    std::fs::write(&p, &bytes[..bytes.len() / 2 + 1]).unwrap();
    assert_one_line_error(&p, &["truncated"]);
}

#[test]
fn nan_and_infinite_samples() {
    let d = Dir::new();
    for (name, bad) in [("nan.wav", f32::NAN), ("inf.wav", f32::INFINITY)] {
        let p = d.0.path().join(name);
        let spec = hound::WavSpec {
            channels: 2,
            sample_rate: 44100,
            bits_per_sample: 32,
            sample_format: hound::SampleFormat::Float,
        };
        let mut w = hound::WavWriter::create(&p, spec).unwrap();
        for i in 0..50_000 {
            w.write_sample(if i == 30_001 { bad } else { 0.1 }).unwrap();
        }
        w.finalize().unwrap();
        assert_one_line_error(&p, &["not finite", "frame 15000"]);
    }
}

#[test]
fn unsupported_encoding() {
    let d = Dir::new();
    // 64-bit float and A-law are not among the supported formats.
    let mut bytes = wav_header(1, 22050, 64, 3, 16);
    bytes.extend([0u8; 16]);
    assert_one_line_error(&d.file("f64.wav", &bytes), &["bits per sample"]);
    let mut bytes = wav_header(1, 8000, 8, 6, 16);
    bytes.extend([0u8; 16]);
    assert_one_line_error(&d.file("alaw.wav", &bytes), &["unsupported"]);
}

#[test]
fn missing_file() {
    assert_one_line_error(Path::new("/nonexistent/dir/take1.wav"), &["cannot open"]);
}

#[test]
fn good_files_are_still_analysed_beside_a_bad_one() {
    let d = Dir::new();
    let good = d.0.path().join("good.wav");
    tone16(&good, 3.0);
    let bad = d.file("bad.wav", b"nope");
    let (code, out, err) = tutti(&[
        "analyze",
        "--json",
        bad.to_str().unwrap(),
        good.to_str().unwrap(),
    ]);
    assert_eq!(code, 1);
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(err.contains("bad.wav"));
    let rows: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 3, "3 s at hop 0.5 gives windows at 0, 0.5, 1.0");
    assert!(rows
        .iter()
        .all(|r| r["file"].as_str().unwrap().ends_with("good.wav")));
}

#[test]
fn bad_options_are_named() {
    let (code, _, err) = tutti(&["analyze", "--hop", "3", "samples/piano.wav"]);
    assert_ne!(code, 0);
    assert!(err.contains("hop 3 s"), "{err}");
    let (code, _, err) = tutti(&[
        "analyze",
        "--model",
        "/nonexistent/m.json",
        "samples/piano.wav",
    ]);
    assert_ne!(code, 0);
    assert!(
        err.contains("/nonexistent/m.json") && !err.contains("panicked"),
        "{err}"
    );
    let (code, _, err) = tutti(&["features", "samples", "--set", "seed27"]);
    assert_ne!(code, 0);
    assert!(err.contains("seed27") && err.contains("seed26"), "{err}");
}

#[test]
fn an_installed_binary_does_not_look_in_the_checkout_it_was_built_from() {
    // Run from elsewhere, with no --model and no TUTTI_MODEL: the build
    // machine's models/ must not be found behind the user's back.
    let dir = tempfile::tempdir().unwrap();
    let wav = Path::new(env!("CARGO_MANIFEST_DIR")).join("samples/piano.wav");
    let out = Command::new(env!("CARGO_BIN_EXE_tutti"))
        .args(["analyze", wav.to_str().unwrap()])
        .current_dir(dir.path())
        .env_remove("TUTTI_MODEL")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("no model found"), "{err}");
    let checkout = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/tutti.json");
    assert!(!err.contains(checkout.to_str().unwrap()), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
}
