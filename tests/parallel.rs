//! Splitting a file into parts analysed at once gives exactly the windows,
//! and bit for bit the features, of reading it front to back: each part
//! warms its resampler and frames up on the audio before its first window.

use std::path::Path;
use tutti::feature_set;
use tutti::AudioError;
use tutti::{features_as_they_are, for_each_window, for_each_window_parallel};
use tutti::{WindowInfo, WindowSpec, Windower};

/// Whatever the pipeline fails with: an audio or a feature error.
type Error = Box<dyn std::error::Error + Send + Sync>;

/// `seconds` of a melody over noise, 16-bit, at `rate` with `channels`.
fn write_wav(path: &Path, rate: u32, channels: u16, seconds: f64) {
    let spec = hound::WavSpec {
        channels,
        sample_rate: rate,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(path, spec).unwrap();
    let mut seed = 12345u32;
    let n = (seconds * f64::from(rate)) as usize;
    for i in 0..n {
        let t = i as f64 / f64::from(rate);
        let note = 220.0 * 2f64.powf(((t * 3.0) as i32 % 12) as f64 / 12.0);
        seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        let noise = (seed >> 8) as f64 / f64::from(1u32 << 24) - 0.5;
        for c in 0..channels {
            let x =
                0.4 * (2.0 * std::f64::consts::PI * note * t + f64::from(c)).sin() + 0.05 * noise;
            w.write_sample((x * 32767.0) as i16).unwrap();
        }
    }
    w.finalize().unwrap();
}

type Windows = Vec<(WindowInfo, Vec<f32>)>;

fn both_ways(path: &Path, threads: usize) -> (Windows, Windows) {
    let spec = WindowSpec::from_seconds(22050, 2.0, 0.5).unwrap();
    let mut whole = vec![];
    let mut windower = Windower::new(spec, feature_set("seed26", 22050).unwrap());
    for_each_window(path, &mut windower, |i, x| -> Result<(), Error> {
        whole.push((i, x.to_vec()));
        Ok(())
    })
    .unwrap();
    let mut parts = vec![];
    let n = for_each_window_parallel(
        path,
        spec,
        "seed26",
        threads,
        features_as_they_are,
        |i, x| -> Result<(), Error> {
            parts.push((i, x.to_vec()));
            Ok(())
        },
    )
    .unwrap();
    assert_eq!(n as usize, parts.len());
    (whole, parts)
}

#[test]
fn parts_give_the_same_windows_as_the_whole_file() {
    let dir = tempfile::tempdir().unwrap();
    // Same rate (no resampler), 2:1, and 48 kHz (chunks of 8320 frames).
    for (rate, channels, seconds) in [(22050, 1, 150.3), (44100, 2, 140.0), (48000, 1, 131.7)] {
        let path = dir.path().join(format!("{rate}_{channels}.wav"));
        write_wav(&path, rate, channels, seconds);
        let (whole, parts) = both_ways(&path, 3);
        assert!(
            whole.len() >= 256,
            "{rate} Hz: only {} windows",
            whole.len()
        );
        assert_eq!(whole.len(), parts.len(), "{rate} Hz: window count");
        for (k, (a, b)) in whole.iter().zip(&parts).enumerate() {
            assert_eq!(a.0, b.0, "{rate} Hz: window {k}");
            assert!(
                a.1.iter()
                    .zip(&b.1)
                    .all(|(x, y)| x.to_bits() == y.to_bits()),
                "{rate} Hz: window {k} features differ:\n{:?}\n{:?}",
                a.1,
                b.1
            );
        }
    }
}

#[test]
fn short_files_take_the_streaming_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("short.wav");
    write_wav(&path, 44100, 2, 1.2);
    let (whole, parts) = both_ways(&path, 4);
    assert_eq!(whole, parts);
    assert_eq!(parts.len(), 1);
    assert!(parts[0].0.padded);
}

#[test]
fn a_truncated_long_file_fails_after_the_same_windows() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cut.wav");
    write_wav(&path, 22050, 1, 150.0);
    // Keep the header (which still announces 150 s) and 60% of the data.
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() * 6 / 10]).unwrap();
    let spec = WindowSpec::from_seconds(22050, 2.0, 0.5).unwrap();
    let mut whole = vec![];
    let mut windower = Windower::new(spec, feature_set("seed26", 22050).unwrap());
    let e1 = for_each_window(&path, &mut windower, |i, x| -> Result<(), Error> {
        whole.push((i, x.to_vec()));
        Ok(())
    })
    .unwrap_err();
    let mut parts = vec![];
    let e2 = for_each_window_parallel(
        &path,
        spec,
        "seed26",
        3,
        features_as_they_are,
        |i, x| -> Result<(), Error> {
            parts.push((i, x.to_vec()));
            Ok(())
        },
    )
    .unwrap_err();
    for e in [&e1, &e2] {
        assert!(
            matches!(
                e.downcast_ref::<AudioError>(),
                Some(AudioError::Truncated { .. })
            ),
            "{e:?}"
        );
    }
    // Reads stop at the last whole block before the cut, and blocks start at
    // other places in each part, so the counts may differ by a window or two.
    assert!(
        whole.len().abs_diff(parts.len()) <= 2,
        "{} vs {}",
        whole.len(),
        parts.len()
    );
    assert!(parts.len() > 100);
    for (a, b) in whole.iter().zip(&parts) {
        assert_eq!(a, b);
    }
}

#[test]
fn each_part_maps_its_windows_and_hands_on_only_what_map_made() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("long.wav");
    write_wav(&path, 22050, 1, 150.0);
    let (whole, _) = both_ways(&path, 1);
    // A map that makes two numbers of each window: its sum and its first
    // feature, as a model makes scores of features.
    let summary = |x: &[f32], out: &mut Vec<f32>| -> Result<(), Error> {
        out.extend([x.iter().sum::<f32>(), x[0]]);
        Ok(())
    };
    let spec = WindowSpec::from_seconds(22050, 2.0, 0.5).unwrap();
    let mut got = vec![];
    for_each_window_parallel(
        &path,
        spec,
        "seed26",
        3,
        summary,
        |i, x| -> Result<(), Error> {
            got.push((i, x.to_vec()));
            Ok(())
        },
    )
    .unwrap();
    assert_eq!(got.len(), whole.len());
    for ((a, features), (b, mapped)) in whole.iter().zip(&got) {
        assert_eq!(a, b);
        assert_eq!(mapped, &[features.iter().sum::<f32>(), features[0]]);
    }
}
