//! Every `seed26` feature of every fixture matches librosa (values rendered
//! by `models/train/make_feature_fixtures.py`) within 1e-3 relative; values
//! near zero are compared absolutely, at 1e-3 of the feature's largest
//! magnitude over all fixtures.

use std::path::Path;
use tutti::audio::MonoStream;
use tutti::features::feature_set;
use tutti::window::{WindowSpec, Windower};

#[test]
fn seed26_matches_librosa_on_every_fixture() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/features");
    let expected: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("librosa_seed26.json")).unwrap())
            .unwrap();
    let sr = expected["sample_rate"].as_u64().unwrap() as u32;
    let spec = WindowSpec::from_seconds(sr, 2.0, 0.5).unwrap();
    let mut windower = Windower::new(spec, feature_set("seed26", sr).unwrap());
    let names = windower.feature_set().feature_names().to_vec();
    let fixtures = expected["fixtures"].as_object().unwrap();
    assert!(fixtures.len() >= 8, "fixtures missing");

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
        let mut samples = MonoStream::open(&dir.join(format!("{fixture}.wav")), sr)
            .unwrap()
            .read_all()
            .unwrap();
        // A fixture is one window long (shorter ones are padded by the
        // windower), so its one window is librosa's whole clip.
        samples.truncate(spec.length);
        let mut windows = vec![];
        let mut keep = |info: tutti::window::WindowInfo, f: &[f32]| -> Result<(), ()> {
            windows.push((info, f.to_vec()));
            Ok(())
        };
        windower.reset();
        windower.push(&samples, &mut keep).unwrap();
        windower.finish(&mut keep).unwrap();
        assert_eq!(windows.len(), 1, "{fixture}: one window expected");
        let (info, got) = windows.pop().unwrap();
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
            let tol = 1e-3 * w.abs().max(scale[i] * 1e-3).max(f64::MIN_POSITIVE);
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
    eprintln!("worst error is {worst:.2} of its tolerance");
}
