//! Every feature of every set, on every fixture, matches librosa (values
//! rendered by `models/train/make_feature_fixtures.py`) within 1e-3
//! relative; values near zero are compared absolutely, at 1e-3 of the
//! feature's largest magnitude over all fixtures.
//!
//! Two kinds of value are ill-conditioned, and get a wider allowance that
//! the fixture file justifies:
//! - where librosa's own value moves by more than that when the audio moves
//!   by 1e-6 of its RMS (the fixture's `sensitivity`, largest of three
//!   perturbations), the allowance is that move: the spectral contrast of a
//!   pure tone averages near-empty FFT bins, which two correct FFTs fill
//!   with different rounding noise;
//! - a deviation (`X_stdN`) may be off by 1e-6 of its mean (`X_meanN`): the
//!   deviation of a constant is float32 noise of the constant.

use std::path::Path;
use tutti::feature_set;
use tutti::MonoStream;
use tutti::{WindowInfo, WindowSpec, Windower};

#[test]
fn seed26_matches_librosa_on_every_fixture() {
    matches_librosa("seed26");
}

#[test]
fn timbre98_matches_librosa_on_every_fixture() {
    matches_librosa("timbre98");
}

/// The one window of fixture `name`: a fixture is one window long (shorter
/// ones are padded by the windower), so its window is librosa's whole clip.
fn fixture_window(windower: &mut Windower, dir: &Path, name: &str) -> (WindowInfo, Vec<f32>) {
    let spec = windower.spec();
    let mut samples = MonoStream::open(&dir.join(format!("{name}.wav")), spec.sample_rate)
        .unwrap()
        .read_all()
        .unwrap();
    samples.truncate(spec.length);
    let mut windows = vec![];
    let mut keep = |info: WindowInfo, f: &[f32]| -> Result<(), ()> {
        windows.push((info, f.to_vec()));
        Ok(())
    };
    windower.reset();
    windower.push(&samples, &mut keep).unwrap();
    windower.finish(&mut keep).unwrap();
    assert_eq!(windows.len(), 1, "{name}: one window expected");
    windows.pop().unwrap()
}

fn matches_librosa(set: &str) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/features");
    let expected: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join(format!("librosa_{set}.json"))).unwrap(),
    )
    .unwrap();
    let sr = expected["sample_rate"].as_u64().unwrap() as u32;
    let spec = WindowSpec::from_seconds(sr, 2.0, 0.5).unwrap();
    let mut windower = Windower::new(spec, feature_set(set, sr).unwrap());
    let names = windower.feature_set().feature_names().to_vec();
    let fixtures = expected["fixtures"].as_object().unwrap();
    assert!(fixtures.len() >= 8, "fixtures missing");
    // Every feature librosa has is checked, and nothing else exists.
    let first = fixtures.values().next().unwrap().as_object().unwrap();
    assert_eq!(first.len(), names.len(), "{set}: feature count");
    let sensitivity = |fixture: &str, name: &str| {
        expected["sensitivity"][fixture][name]
            .as_f64()
            .unwrap_or(0.0)
    };

    // Scale of each feature over all fixtures, for the near-zero rule.
    let scale: Vec<f64> = names
        .iter()
        .map(|n| {
            fixtures
                .values()
                .map(|f| f[n].as_f64().unwrap().abs())
                .fold(0.0, f64::max)
        })
        .collect();

    let mut failures = vec![];
    let mut worst = 0.0f64;
    for (fixture, want) in fixtures {
        let (info, got) = fixture_window(&mut windower, &dir, fixture);
        assert_eq!(
            info.padded,
            fixture.starts_with("short"),
            "{fixture}: padded flag"
        );
        for (i, name) in names.iter().enumerate() {
            let w = want[name]
                .as_f64()
                .unwrap_or_else(|| panic!("{fixture}: no {name}"));
            let g = f64::from(got[i]);
            let err = (g - w).abs();
            let of_mean = want[name.replace("_std", "_mean")]
                .as_f64()
                .filter(|_| name.contains("_std"))
                .map_or(0.0, |m| 1e-6 * m.abs());
            let tol = (1e-3 * w.abs().max(scale[i] * 1e-3))
                .max(sensitivity(fixture, name))
                .max(of_mean)
                .max(f64::MIN_POSITIVE);
            worst = worst.max(err / tol);
            if err > tol {
                failures.push(format!(
                    "{fixture}/{name}: tutti {g} librosa {w} (error {err:.3e}, allowed {tol:.3e})"
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
    eprintln!("{set}: worst error is {worst:.2} of its tolerance");
}

/// `logmel128`, the CNN's input, against librosa's `power_to_db` of its
/// mel spectrogram (stored in hundredths of a dB): every value of every
/// frame within 0.02 dB.
#[test]
fn logmel128_matches_librosa_on_its_fixtures() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/features");
    let expected: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("librosa_logmel128.json")).unwrap())
            .unwrap();
    let sr = expected["sample_rate"].as_u64().unwrap() as u32;
    let spec = WindowSpec::from_seconds(sr, 2.0, 0.5).unwrap();
    let mut windower = Windower::new(spec, feature_set("logmel128", sr).unwrap());
    let fixtures = expected["fixtures"].as_object().unwrap();
    assert!(fixtures.len() >= 6, "fixtures missing");
    let mut worst = 0.0f64;
    for (fixture, frames) in fixtures {
        let want: Vec<f64> = frames
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|f| f.as_array().unwrap().iter())
            .map(|v| v.as_f64().unwrap() / 100.0)
            .collect();
        let (_, got) = fixture_window(&mut windower, &dir, fixture);
        assert_eq!(got.len(), want.len(), "{fixture}: 87 frames x 128 bands");
        for (i, (&g, &w)) in got.iter().zip(&want).enumerate() {
            let err = (f64::from(g) - w).abs();
            worst = worst.max(err);
            assert!(
                err <= 0.02,
                "{fixture}: frame {} band {}: tutti {g} dB, librosa {w} dB",
                i / 128,
                i % 128
            );
        }
    }
    eprintln!("logmel128: worst error {worst:.4} dB");
}

/// Every window of `file` in feature set `set`, in order.
fn all_windows(set: &str, file: &Path, window: f64) -> Vec<Vec<f32>> {
    let sr = tutti::sample_rate(set).unwrap();
    let spec = WindowSpec::from_seconds(sr, window, 0.5).unwrap();
    let mut windower = Windower::new(spec, feature_set(set, sr).unwrap());
    let samples = MonoStream::open(file, sr).unwrap().read_all().unwrap();
    let mut windows = vec![];
    let mut keep = |_: WindowInfo, f: &[f32]| -> Result<(), ()> {
        windows.push(f.to_vec());
        Ok(())
    };
    windower.push(&samples, &mut keep).unwrap();
    windower.finish(&mut keep).unwrap();
    windows
}

#[test]
fn the_pair_set_is_timbre98_then_logmel128_of_the_same_window() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for (file, window) in [
        ("samples/violin_cello.wav", 2.0),
        ("samples/flute_bassoon.wav", 2.0),
        // Longer windows than logmel128's 87 frames: its floor reads them all.
        ("samples/piano.wav", 3.0),
        ("tests/fixtures/features/short_0_7s.wav", 2.0),
    ] {
        let path = root.join(file);
        let pair = all_windows("timbre98+logmel128", &path, window);
        let timbre = all_windows("timbre98", &path, window);
        let logmel = all_windows("logmel128", &path, window);
        assert!(!pair.is_empty());
        assert_eq!((pair.len(), timbre.len()), (logmel.len(), logmel.len()));
        for ((p, t), l) in pair.iter().zip(&timbre).zip(&logmel) {
            assert_eq!(p.len(), 98 + 87 * 128);
            assert_eq!(&p[..98], &t[..], "{file}: timbre98 part");
            assert_eq!(&p[98..], &l[..], "{file}: logmel128 part");
        }
    }
}
