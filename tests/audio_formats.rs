//! Every supported WAV encoding, channel count and sample rate decodes to the
//! same mono 22 050 Hz signal: compared sample by sample with the signal
//! computed directly at 22 050 Hz.

use std::f64::consts::PI;
use tutti::MonoStream;

const OUT_RATE: u32 = 22050;
const SECONDS: f64 = 1.5;

/// The mono signal: three partials well below the 11 025 Hz Nyquist limit.
fn signal(t: f64) -> f64 {
    0.3 * (2.0 * PI * 440.0 * t).sin()
        + 0.2 * (2.0 * PI * 1234.0 * t).sin()
        + 0.1 * (2.0 * PI * 3000.0 * t).sin()
}

/// Channel `c` of `n`: the signal plus a part that cancels in the average.
fn channel(t: f64, c: u16, n: u16) -> f64 {
    let side = 0.2 * (2.0 * PI * 700.0 * t).sin();
    let sign = if n == 1 {
        0.0
    } else if c % 2 == 0 {
        1.0
    } else {
        -1.0
    };
    // With an odd count the last channel carries no side part, so it cancels.
    let sign = if n % 2 == 1 && c == n - 1 { 0.0 } else { sign };
    signal(t) + sign * side
}

fn write(path: &std::path::Path, rate: u32, channels: u16, bits: u16, float: bool) {
    let spec = hound::WavSpec {
        channels,
        sample_rate: rate,
        bits_per_sample: bits,
        sample_format: if float {
            hound::SampleFormat::Float
        } else {
            hound::SampleFormat::Int
        },
    };
    let mut w = hound::WavWriter::create(path, spec).unwrap();
    let full = (1i64 << (bits - 1)) as f64;
    for i in 0..(SECONDS * f64::from(rate)) as usize {
        let t = i as f64 / f64::from(rate);
        for c in 0..channels {
            let v = channel(t, c, channels);
            if float {
                w.write_sample(v as f32).unwrap();
            } else {
                let q = (v * full).round().clamp(-full, full - 1.0);
                match bits {
                    8 => w.write_sample(q as i8).unwrap(),
                    16 => w.write_sample(q as i16).unwrap(),
                    _ => w.write_sample(q as i32).unwrap(),
                }
            }
        }
    }
    w.finalize().unwrap();
}

fn check(rate: u32, channels: u16, bits: u16, float: bool, max_rel_error: f64) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x.wav");
    write(&path, rate, channels, bits, float);
    let got = MonoStream::open(&path, OUT_RATE)
        .unwrap()
        .read_all()
        .unwrap();
    let frames = (SECONDS * f64::from(rate)) as u64;
    let want_len = (frames * u64::from(OUT_RATE) + u64::from(rate) / 2) / u64::from(rate);
    assert_eq!(
        got.len() as u64,
        want_len,
        "{rate} Hz {channels} ch {bits}-bit: length"
    );
    // Skip the edges, where a resampler sees the signal start from silence.
    let edge = 256;
    let (mut err, mut energy) = (0.0, 0.0);
    for (i, &g) in got.iter().enumerate().take(got.len() - edge).skip(edge) {
        let w = signal(i as f64 / f64::from(OUT_RATE));
        err += (f64::from(g) - w).powi(2);
        energy += w * w;
    }
    let rel = (err / energy).sqrt();
    assert!(
        rel < max_rel_error,
        "{rate} Hz {channels} ch {bits}-bit float={float}: relative error {rel:.2e}"
    );
}

#[test]
fn integer_depths_at_the_model_rate() {
    check(22050, 1, 8, false, 2e-2);
    check(22050, 1, 16, false, 1e-4);
    check(22050, 1, 24, false, 1e-6);
    check(22050, 1, 32, false, 1e-6);
}

#[test]
fn float_and_multichannel_downmix() {
    check(22050, 1, 32, true, 1e-6);
    check(22050, 2, 16, false, 1e-4);
    check(22050, 6, 24, false, 1e-6);
    check(22050, 3, 32, true, 1e-6);
}

#[test]
fn resampling_from_common_rates() {
    for rate in [8000, 16000, 44100, 48000, 96000] {
        check(rate, 2, 16, false, 2e-3);
    }
    check(11025, 1, 32, true, 2e-3);
}
