//! The systemd unit in deploy/: systemd itself checks its syntax and rates
//! its sandbox. (`systemd-analyze` comes with Debian's `systemd` package,
//! which .ci/run installs; no running systemd is needed.)

mod support;

use std::process::Command;
use support::root;

fn systemd_analyze(args: &[&str]) -> std::process::Output {
    Command::new("systemd-analyze")
        .args(args)
        .output()
        .expect("systemd-analyze (Debian package `systemd`) must be installed; .ci/run installs it")
}

#[test]
fn the_unit_is_rated_2_or_less_by_systemd_analyze_security() {
    let unit = root().join("deploy/tutti.service");
    let out = systemd_analyze(&["security", "--offline=yes", unit.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&out.stdout);
    let level: f64 = text
        .lines()
        .find_map(|l| l.split("Overall exposure level for tutti.service: ").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no overall level in:\n{text}"));
    assert!(level <= 2.0, "exposure {level} > 2.0:\n{text}");
    // The parts the daemon relies on are there.
    let unit_text = std::fs::read_to_string(&unit).unwrap();
    for line in [
        "Type=notify",
        "WatchdogSec=",
        "Restart=on-failure",
        "DynamicUser=yes",
        "SupplementaryGroups=audio",
        "StateDirectory=tutti",
        "ConfigurationDirectory=tutti",
        "DeviceAllow=char-alsa rw",
        "CapabilityBoundingSet=\n",
        "SystemCallFilter=@system-service",
        "MemoryMax=",
    ] {
        assert!(unit_text.contains(line), "the unit lacks {line:?}");
    }
}

#[test]
fn systemd_reads_the_unit_without_a_warning() {
    // verify wants the ExecStart binary to exist: point it at this build.
    let dir = tempfile::tempdir().unwrap();
    let unit = std::fs::read_to_string(root().join("deploy/tutti.service")).unwrap();
    assert!(unit.contains("ExecStart=/usr/bin/tutti listen"));
    let copy = dir.path().join("tutti.service");
    std::fs::write(
        &copy,
        unit.replace("/usr/bin/tutti", env!("CARGO_BIN_EXE_tutti")),
    )
    .unwrap();
    let out = systemd_analyze(&["verify", copy.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    // Unknown keys and bad values are warnings on stderr, not failures.
    assert!(err.trim().is_empty(), "systemd-analyze verify says:\n{err}");
}
