//! `tutti config` checks a configuration the way the daemon will: the
//! shipped example passes, and a bad key or value stops it with one line
//! that names the file or variable and the key.

use std::path::Path;
use std::process::Command;

fn tutti_config(args: &[&str], env: &[(&str, &str)]) -> (bool, String, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tutti"));
    cmd.arg("config").args(args);
    // Only the variables a test sets, whatever the machine has.
    for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("TUTTI_")) {
        cmd.env_remove(k);
    }
    cmd.envs(env.iter().copied());
    let out = cmd.output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn the_example_config_passes_and_secrets_stay_hidden() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/tutti.toml");
    let dir = tempfile::tempdir().unwrap();
    let pw = dir.path().join("pw");
    std::fs::write(&pw, "hunter2\n").unwrap();
    let (ok, out, err) = tutti_config(
        &["--config", example.to_str().unwrap()],
        &[
            ("TUTTI_MQTT_PASSWORD_FILE", pw.to_str().unwrap()),
            ("TUTTI_MQTT_DEVICE_ID", "den"),
        ],
    );
    assert!(ok, "{err}");
    assert!(out.contains("\"tutti/den\""), "{out}");
    assert!(out.contains("Embedded"), "{out}");
    assert!(!out.contains("hunter2") && out.contains("***"), "{out}");
}

#[test]
fn bad_settings_give_one_line_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tutti.toml");
    std::fs::write(&file, "[analysis]\nhopp = 0.5\n").unwrap();
    let (ok, _, err) = tutti_config(&["--config", file.to_str().unwrap()], &[]);
    assert!(!ok);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("tutti.toml") && err.contains("analysis.hopp"),
        "{err}"
    );

    let (ok, _, err) = tutti_config(
        &["--config", file.to_str().unwrap()],
        &[("TUTTI_ANALYSIS_HOLD", "long")],
    );
    assert!(!ok);
    assert!(
        err.contains("analysis.hopp"),
        "the file is read first: {err}"
    );

    std::fs::write(&file, "[analysis]\nhop = 0.5\n").unwrap();
    let (ok, _, err) = tutti_config(
        &["--config", file.to_str().unwrap()],
        &[("TUTTI_ANALYSIS_HOLD", "long")],
    );
    assert!(!ok);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("TUTTI_ANALYSIS_HOLD") && err.contains("long"),
        "{err}"
    );
}

#[test]
fn a_reader_that_stops_early_is_not_an_error() {
    // `tutti config | grep -q device` closes the pipe after the first match;
    // tutti must neither panic nor fail the pipeline.
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/tutti.toml");
    let mut child = Command::new(env!("CARGO_BIN_EXE_tutti"))
        .args(["config", "--config", example.to_str().unwrap()])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}
