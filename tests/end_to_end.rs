//! `tutti analyze` on rendered recordings whose instruments are known (their
//! notes are in `samples/*.csv`), through the real binary and shipped model.

mod support;

use std::collections::BTreeMap;
use std::process::Command;

/// Windows of the file, as parsed `--json` lines.
fn analyze(file: &str, extra: &[&str]) -> Vec<serde_json::Value> {
    support::analyze_json(file, extra)
}

/// Instruments reported in more than half of the windows.
fn majority(rows: &[serde_json::Value]) -> Vec<String> {
    let mut count: BTreeMap<String, usize> = BTreeMap::new();
    for r in rows {
        for i in r["instruments"].as_array().unwrap() {
            *count.entry(i.as_str().unwrap().to_string()).or_default() += 1;
        }
    }
    count
        .into_iter()
        .filter(|&(_, c)| 2 * c > rows.len())
        .map(|(n, _)| n)
        .collect()
}

#[test]
fn json_lines_have_the_documented_fields_and_windows() {
    let rows = analyze("samples/piano.wav", &[]);
    // 8 s, 2 s windows every 0.5 s: starts 0, 0.5, ..., 6.0.
    assert_eq!(rows.len(), 13);
    for (i, r) in rows.iter().enumerate() {
        let keys: Vec<&str> = r.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "file",
                "start",
                "end",
                "padded",
                "instruments",
                "scores",
                "rms_dbfs",
                "peak_dbfs",
                "on"
            ]
        );
        assert_eq!(r["start"].as_f64().unwrap(), i as f64 * 0.5);
        assert_eq!(r["end"].as_f64().unwrap(), i as f64 * 0.5 + 2.0);
        assert_eq!(r["padded"], false);
        let scores = r["scores"].as_object().unwrap();
        let names: Vec<&str> = scores.keys().map(String::as_str).collect();
        assert_eq!(
            names,
            [
                "piano",
                "harpsichord",
                "violin",
                "viola",
                "cello",
                "contrabass",
                "horn",
                "oboe",
                "bassoon",
                "clarinet",
                "flute"
            ]
        );
        assert!(scores
            .values()
            .all(|p| (0.0..=1.0).contains(&p.as_f64().unwrap())));
    }
    let rows = analyze("samples/piano.wav", &["--hop", "1.5"]);
    let starts: Vec<f64> = rows.iter().map(|r| r["start"].as_f64().unwrap()).collect();
    assert_eq!(starts, [0.0, 1.5, 3.0, 4.5, 6.0]);
}

/// The names in a window's `key` list.
fn names(row: &serde_json::Value, key: &str) -> Vec<String> {
    row[key]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect()
}

#[test]
fn on_states_follow_the_windows_with_the_daemons_hold() {
    // No hold and no margin: ON exactly where the window reports it.
    let rows = analyze(
        "samples/flute_bassoon.wav",
        &["--hold", "0", "--margin", "0"],
    );
    assert!(rows.iter().any(|r| !names(r, "instruments").is_empty()));
    for r in &rows {
        assert_eq!(names(r, "on"), names(r, "instruments"), "{r}");
    }
    // A 1.5 s hold (three hops) with no margin: ON wherever reported, and
    // OFF only after three windows in a row without it.
    let rows = analyze(
        "samples/flute_bassoon.wav",
        &["--hold", "1.5", "--margin", "0"],
    );
    let mut held = 0;
    for (i, r) in rows.iter().enumerate() {
        let on = names(r, "on");
        for n in names(r, "instruments") {
            assert!(on.contains(&n), "{r}");
        }
        for n in on.iter().filter(|n| !names(r, "instruments").contains(n)) {
            held += 1;
            assert!(
                (i.saturating_sub(2)..i).any(|j| names(&rows[j], "instruments").contains(n)),
                "{n} held at window {i} without support in the two before"
            );
        }
        if i > 0 {
            for n in names(&rows[i - 1], "on").iter().filter(|n| !on.contains(n)) {
                assert!(
                    (i.saturating_sub(2)..=i).all(|j| !names(&rows[j], "instruments").contains(n)),
                    "{n} went OFF at window {i} within three windows of support"
                );
            }
        }
    }
    assert!(held > 0, "the hold never held anything on this sample");
}

#[test]
fn a_bad_hold_or_margin_names_the_value() {
    for (flag, value) in [("--hold", "-1"), ("--hold", "soon"), ("--margin", "1.5")] {
        let out = Command::new(env!("CARGO_BIN_EXE_tutti"))
            .args(["analyze", "--json", "samples/piano.wav", flag, value])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .unwrap();
        // A bad value is bad input like any other: exit 1, one line.
        assert_eq!(out.status.code(), Some(1));
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(
            err.starts_with("tutti: error: ")
                && err.contains(&format!("'{value}'"))
                && err.contains(flag),
            "{err}"
        );
    }
}

#[test]
fn solo_piano_comes_out_as_piano() {
    let rows = analyze("samples/piano.wav", &[]);
    assert_eq!(majority(&rows), ["piano"]);
}

#[test]
fn violin_and_cello_come_out_as_both() {
    let rows = analyze("samples/violin_cello.wav", &[]);
    let found = majority(&rows);
    assert!(
        found.contains(&"violin".to_string()) && found.contains(&"cello".to_string()),
        "{found:?}"
    );
    assert!(!found.contains(&"piano".to_string()), "{found:?}");
}

#[test]
fn a_relative_threshold_in_the_sidecar_drops_the_weak_neighbours() {
    // The shipped model, its sidecar given a relative threshold of 0.75,
    // above the one it ships with.
    const R: f64 = 0.75;
    let dir = tempfile::tempdir().unwrap();
    let models = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("models");
    let mut sidecar: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(models.join("tutti.json")).unwrap()).unwrap();
    let onnx = sidecar["model_file"].as_str().unwrap();
    std::fs::copy(models.join(onnx), dir.path().join(onnx)).unwrap();
    let shipped = sidecar
        .get("relative_threshold")
        .map_or(0.0, |r| r.as_f64().unwrap());
    assert!(
        shipped < R,
        "the shipped model's relative threshold is {shipped}"
    );
    sidecar["relative_threshold"] = R.into();
    let json = dir.path().join("tutti.json");
    std::fs::write(&json, sidecar.to_string()).unwrap();

    let json = json.to_str().unwrap();
    let (mut all_before, mut all_after) = (0, 0);
    for file in [
        "samples/piano.wav",
        "samples/flute_bassoon.wav",
        "samples/violin_cello.wav",
    ] {
        let plain = analyze(file, &[]);
        let relative = analyze(file, &["--model", json]);
        assert_eq!(plain.len(), relative.len());
        let (mut before, mut after) = (0, 0);
        for (p, r) in plain.iter().zip(&relative) {
            assert_eq!(
                p["scores"], r["scores"],
                "{file}: the scores must not change"
            );
            let scores = r["scores"].as_object().unwrap();
            let top = scores
                .values()
                .map(|v| v.as_f64().unwrap())
                .fold(0.0, f64::max);
            let names = |w: &serde_json::Value| -> Vec<String> {
                w["instruments"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|i| i.as_str().unwrap().to_string())
                    .collect()
            };
            let (p, r) = (names(p), names(r));
            // What it reports, it reported before, and at R x the top.
            for i in &r {
                assert!(p.contains(i), "{file}: {i} is new");
                assert!(scores[i].as_f64().unwrap() >= R * top - 1e-4, "{file}: {i}");
            }
            // What it drops was under R x the top.
            for i in p.iter().filter(|i| !r.contains(i)) {
                assert!(scores[i].as_f64().unwrap() < R * top + 1e-4, "{file}: {i}");
            }
            before += p.len();
            after += r.len();
        }
        all_before += before;
        all_after += after;
    }
    // How many go depends on the model; on every model shipped so far the
    // relative threshold has dropped some reports of these recordings.
    assert!(
        all_after < all_before,
        "nothing dropped: {all_after} of {all_before}"
    );
}

#[test]
fn a_file_shorter_than_a_window_gives_one_padded_window() {
    let rows = analyze("tests/fixtures/features/short_0_7s.wav", &[]);
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["padded"], true);
    assert_eq!(rows[0]["start"].as_f64(), Some(0.0));
}

#[test]
fn the_table_is_readable() {
    let out = Command::new(env!("CARGO_BIN_EXE_tutti"))
        .args(["analyze", "samples/piano.wav"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].contains("start") && lines[0].contains("instruments"));
    assert_eq!(lines.len(), 14);
    assert!(
        lines[1].starts_with("piano.wav") && lines[1].contains("0.00") && lines[1].contains("2.00")
    );
}
