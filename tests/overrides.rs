//! The user's say per instrument, end to end: `[instruments]` exclusions
//! and thresholds and `analysis.confirm`, through `tutti analyze --config`,
//! `tutti listen` on a real mosquitto, and `tutti config`.

mod support;

use serde_json::Value;
use std::process::Stdio;
use std::time::Duration;
use support::*;

const RECORDING: &str = "samples/violin_cello.wav";

/// A configuration file holding `text`, in `dir`.
fn config(dir: &std::path::Path, text: &str) -> String {
    let path = dir.join("tutti.toml");
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

fn names(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_str().unwrap().to_string())
        .collect()
}

/// Windows (by index) in which `name` is reported, or ON.
fn windows_with(windows: &[Value], field: &str, name: &str) -> Vec<usize> {
    (0..windows.len())
        .filter(|&k| names(&windows[k][field]).iter().any(|n| n == name))
        .collect()
}

#[test]
fn a_raised_threshold_drops_what_the_models_would_report() {
    let dir = tempfile::tempdir().unwrap();
    let plain = analyze_json(RECORDING, &[]);
    let violin = windows_with(&plain, "instruments", "violin");
    assert!(!violin.is_empty(), "the recording has violin");
    // Just over the highest violin score any window reached.
    let top = plain
        .iter()
        .map(|w| w["scores"]["violin"].as_f64().unwrap())
        .fold(0.0, f64::max);
    let raised = (top + 0.001).min(1.0);
    let file = config(
        dir.path(),
        &format!("[instruments.thresholds]\nviolin = {raised}\n"),
    );
    let over = analyze_json(RECORDING, &["--config", &file]);
    assert_eq!(over.len(), plain.len());
    assert!(windows_with(&over, "instruments", "violin").is_empty());
    assert!(windows_with(&over, "on", "violin").is_empty());
    for (a, b) in plain.iter().zip(&over) {
        // Scores are the model's, whatever the thresholds; the other
        // instruments are read as before.
        assert_eq!(a["scores"], b["scores"]);
        let others = |w: &Value| {
            let mut n = names(&w["instruments"]);
            n.retain(|n| n != "violin");
            n
        };
        assert_eq!(others(a), others(b));
    }
}

#[test]
fn confirm_3_delays_on_by_exactly_two_windows() {
    let dir = tempfile::tempdir().unwrap();
    let plain = analyze_json(RECORDING, &["--hold", "0", "--margin", "0"]);
    let file = config(
        dir.path(),
        "[analysis]\nconfirm = 3\nhold = 0\nmargin = 0\n",
    );
    let confirmed = analyze_json(RECORDING, &["--config", &file]);
    let mut checked = 0;
    for name in ["violin", "cello", "viola", "contrabass", "piano"] {
        let over = windows_with(&plain, "instruments", name);
        let Some(&first) = over.first() else { continue };
        // Without confirm it is ON at its first window over the threshold.
        assert_eq!(windows_with(&plain, "on", name).first(), Some(&first));
        // With confirm 3, at the third of the first three in a row.
        let run =
            (0..plain.len().saturating_sub(2)).find(|&k| (k..k + 3).all(|j| over.contains(&j)));
        assert_eq!(
            windows_with(&confirmed, "on", name).first().copied(),
            run.map(|k| k + 2),
            "{name}"
        );
        if run == Some(first) {
            checked += 1;
        }
    }
    assert!(
        checked > 0,
        "an instrument held for three windows from its first"
    );
}

#[test]
fn an_excluded_instrument_never_reaches_mqtt_but_keeps_its_score() {
    let tmp = tempfile::tempdir().unwrap();
    let port = free_port();
    let _broker = Mosquitto::start(port, &tmp.path().join("broker"));
    // What an earlier run without the exclusion left retained.
    publish(port, "tutti/stage/instrument/cello", "ON", true);
    publish(
        port,
        "homeassistant/binary_sensor/tutti_stage/cello/config",
        "{}",
        true,
    );
    let sub = Sub::start(
        port,
        "overrides",
        &["tutti/#", "homeassistant/#"],
        "tutti/probe",
    );
    let broker = format!("mqtt://127.0.0.1:{port}");
    let file = config(tmp.path(), "[instruments]\nexclude = [\"cello\"]\n");
    let mut child = listen(
        &tmp.path().join("state"),
        &[
            "--config",
            &file,
            "--input",
            RECORDING,
            "--speed",
            "50",
            "--broker",
            &broker,
            "--device-id",
            "stage",
        ],
    )
    .stdout(Stdio::null())
    .spawn()
    .unwrap();
    assert!(wait_exit(&mut child, Duration::from_secs(60)).success());
    let expected = analyze_json(RECORDING, &[]);
    assert!(
        !windows_with(&expected, "instruments", "cello").is_empty(),
        "without the exclusion the recording has cello"
    );
    assert!(wait_until(Duration::from_secs(10), || {
        detections(&sub, "tutti/stage").len() >= expected.len()
    }));
    let got = detections(&sub, "tutti/stage");
    for (d, a) in got.iter().zip(&expected) {
        assert!(
            !names(&d["instruments"]).contains(&"cello".to_string()),
            "{d}"
        );
        assert_eq!(d["scores"]["cello"], a["scores"]["cello"], "still scored");
    }
    // Violin goes on being reported and switched.
    assert!(sub
        .payloads("tutti/stage/instrument/violin")
        .contains(&"ON".to_string()));
    // The cello's topic and entity are cleared, never set: after the ON
    // an earlier run left retained, only empty messages.
    let cello = sub.payloads("tutti/stage/instrument/cello");
    assert_eq!(cello.first().map(String::as_str), Some("ON"), "{cello:?}");
    assert!(
        cello.len() >= 2 && cello[1..].iter().all(String::is_empty),
        "{cello:?}"
    );
    assert_eq!(retained(port, "tutti/stage/instrument/cello"), None);
    assert_eq!(
        retained(port, "homeassistant/binary_sensor/tutti_stage/cello/config"),
        None
    );
    assert!(retained(
        port,
        "homeassistant/binary_sensor/tutti_stage/violin/config"
    )
    .is_some());
}

/// `tutti config` with `args`, the repository as its directory.
fn tutti_config(args: &[&str]) -> (bool, String, String) {
    let out = tutti()
        .current_dir(root())
        .arg("config")
        .args(["--model", "models/tutti.json", "--http", ""])
        .args(args)
        .env_remove("TUTTI_MODEL")
        .env_remove("TUTTI_INSTRUMENTS_EXCLUDE")
        .env_remove("TUTTI_INSTRUMENTS_THRESHOLDS")
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn tutti_config_shows_whose_threshold_is_in_force() {
    let (ok, out, err) = tutti_config(&["--thresholds", "cello=0.4", "--exclude", "horn"]);
    assert!(ok, "{err}");
    let line = |name: &str| {
        out.lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .unwrap_or_else(|| panic!("no {name} in {out}"))
            .to_string()
    };
    assert!(
        line("cello").contains("0.40  yours (the model's is"),
        "{out}"
    );
    assert!(line("violin").contains("the model's") && !line("violin").contains("yours"));
    assert!(line("horn").contains("excluded"), "{out}");
    assert_eq!(
        out.lines().filter(|l| l.contains("the model's")).count(),
        11,
        "{out}"
    );
}

#[test]
fn bad_overrides_are_refused_by_name_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    for (text, wanted) in [
        (
            "[instruments]\nexclude = [\"tuba\"]\n",
            "instruments.exclude",
        ),
        (
            "[instruments.thresholds]\ncelo = 0.4\n",
            "instruments.thresholds.celo",
        ),
        (
            "[instruments.thresholds]\ncello = 1.2\n",
            "instruments.thresholds",
        ),
        ("[instruments]\nexcluded = []\n", "instruments.excluded"),
        ("[analysis]\nconfirm = 0\n", "analysis.confirm"),
    ] {
        let file = config(dir.path(), text);
        let (ok, _, err) = tutti_config(&["--config", &file]);
        assert!(!ok, "{text}");
        assert_eq!(err.lines().count(), 1, "{text}: {err}");
        assert!(err.contains(wanted), "{text}: {err}");
        // `analyze --config` refuses it alike.
        let out = tutti()
            .current_dir(root())
            .args([
                "analyze",
                "--model",
                "models/tutti.json",
                "--config",
                &file,
                RECORDING,
            ])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{text}");
        assert!(
            err.contains(wanted) && err.lines().count() == 1,
            "{text}: {err}"
        );
    }
}
