//! The settings that shape detections: how states are held
//! (`analysis.hold`, `margin`, `confirm`, `cooldown`) and the user's say
//! per instrument (`[instruments]`). `tutti listen` and `tutti analyze
//! --config` read them alike.

use super::layers::Layers;
use super::ConfigError;
use crate::detect::{Hysteresis, Overrides};
use std::path::Path;

/// Most windows `analysis.confirm` may ask for.
const MAX_CONFIRM: i64 = 1000;
/// Longest `analysis.cooldown`, in seconds (a day).
const MAX_COOLDOWN: f64 = 86_400.0;

impl Layers {
    /// The checked hold, margin, confirm and cooldown, and the
    /// per-instrument overrides (their names are checked against the model
    /// when it is loaded: [`crate::detect::Rules::resolve`]).
    pub fn detection(&self) -> Result<(Hysteresis, Overrides), ConfigError> {
        let defaults = Hysteresis::default();
        let hold_seconds = check_hold(
            self.number("analysis", "hold")
                .unwrap_or(defaults.hold_seconds),
        )?;
        let margin = check_margin(
            self.number("analysis", "margin")
                .unwrap_or(f64::from(defaults.margin)),
        )?;
        let confirm = match self.count("analysis", "confirm") {
            None => defaults.confirm,
            Some(n @ 1..=MAX_CONFIRM) => n as u32,
            Some(n) => {
                return Err(ConfigError::Invalid {
                    key: "analysis.confirm",
                    value: n.to_string(),
                    reason: format!("must be from 1 to {MAX_CONFIRM} windows"),
                })
            }
        };
        let cooldown_seconds = self
            .number("analysis", "cooldown")
            .unwrap_or(defaults.cooldown_seconds);
        if !(0.0..=MAX_COOLDOWN).contains(&cooldown_seconds) {
            return Err(ConfigError::Invalid {
                key: "analysis.cooldown",
                value: cooldown_seconds.to_string(),
                reason: format!("must be from 0 to {MAX_COOLDOWN} seconds"),
            });
        }
        let mut thresholds = vec![];
        for (name, value) in self.map("instruments", "thresholds") {
            if !(value > 0.0 && value <= 1.0) {
                return Err(ConfigError::Invalid {
                    key: "instruments.thresholds",
                    value: format!("{{ {name} = {value} }}"),
                    reason: "a threshold must be in (0, 1]".into(),
                });
            }
            thresholds.push((name, value as f32));
        }
        Ok((
            Hysteresis {
                hold_seconds,
                margin,
                confirm,
                cooldown_seconds,
            },
            Overrides {
                exclude: self.list("instruments", "exclude"),
                thresholds,
            },
        ))
    }
}

/// What `tutti analyze --config FILE` takes from the file: the settings
/// that shape detections, checked as `tutti listen` checks them.
pub fn detection_from_file(path: &Path) -> Result<(Hysteresis, Overrides), ConfigError> {
    Layers::default().file(path, true)?.detection()
}

/// `analysis.hold` (and `tutti analyze --hold`): seconds, 0 or more.
pub fn check_hold(seconds: f64) -> Result<f64, ConfigError> {
    if seconds.is_finite() && seconds >= 0.0 {
        Ok(seconds)
    } else {
        Err(ConfigError::Invalid {
            key: "analysis.hold",
            value: seconds.to_string(),
            reason: "must be 0 or more seconds".into(),
        })
    }
}

/// `analysis.margin` (and `tutti analyze --margin`): a score in [0, 1).
pub fn check_margin(margin: f64) -> Result<f32, ConfigError> {
    if (0.0..1.0).contains(&margin) {
        Ok(margin as f32)
    } else {
        Err(ConfigError::Invalid {
            key: "analysis.margin",
            value: margin.to_string(),
            reason: "must be in [0, 1)".into(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(list: &[(&str, &str)]) -> Result<(Hysteresis, Overrides), ConfigError> {
        Layers::default()
            .env(list.iter().map(|(k, v)| (k.to_string(), v.to_string())))?
            .detection()
    }

    #[test]
    fn overrides_come_from_the_file_with_its_subtable_and_merge_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("tutti.toml");
        std::fs::write(
            &file,
            "[analysis]\nconfirm = 3\ncooldown = 2\n\
             [instruments]\nexclude = [\"contrabass\"]\n\
             [instruments.thresholds]\ncello = 0.40\nviola = 1\n",
        )
        .unwrap();
        let (h, o) = detection_from_file(&file).unwrap();
        assert_eq!((h.confirm, h.cooldown_seconds), (3, 2.0));
        assert_eq!(o.exclude, ["contrabass"]);
        assert_eq!(o.thresholds, [("cello".into(), 0.4), ("viola".into(), 1.0)]);
        // The environment replaces a list, and adds to or replaces a
        // map's names.
        let mut layers = Layers::default();
        layers
            .file(&file, true)
            .unwrap()
            .env([
                ("TUTTI_INSTRUMENTS_EXCLUDE".into(), "horn, oboe".into()),
                (
                    "TUTTI_INSTRUMENTS_THRESHOLDS".into(),
                    "viola=0.5,flute=0.3".into(),
                ),
            ])
            .unwrap();
        let (_, o) = layers.detection().unwrap();
        assert_eq!(o.exclude, ["horn", "oboe"]);
        assert_eq!(
            o.thresholds,
            [
                ("cello".into(), 0.4),
                ("flute".into(), 0.3),
                ("viola".into(), 0.5)
            ]
        );
    }

    #[test]
    fn bad_overrides_are_refused_naming_the_key_and_value() {
        let e = env(&[("TUTTI_INSTRUMENTS_THRESHOLDS", "cello=1.5")])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("instruments.thresholds") && e.contains("cello = 1.5"),
            "{e}"
        );
        let e = env(&[("TUTTI_INSTRUMENTS_THRESHOLDS", "cello=0")])
            .unwrap_err()
            .to_string();
        assert!(e.contains("(0, 1]"), "{e}");
        let e = env(&[("TUTTI_INSTRUMENTS_THRESHOLDS", "cello")])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("instruments.thresholds") && e.contains("\"cello\""),
            "{e}"
        );
        let e = env(&[("TUTTI_ANALYSIS_CONFIRM", "0")])
            .unwrap_err()
            .to_string();
        assert!(e.contains("analysis.confirm") && e.contains('0'), "{e}");
        let e = env(&[("TUTTI_ANALYSIS_COOLDOWN", "-1")])
            .unwrap_err()
            .to_string();
        assert!(e.contains("analysis.cooldown") && e.contains("-1"), "{e}");
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("tutti.toml");
        std::fs::write(&file, "[instruments]\nexclude = \"cello\"\n").unwrap();
        let e = detection_from_file(&file).unwrap_err().to_string();
        assert!(
            e.contains("instruments.exclude") && e.contains("a list of names"),
            "{e}"
        );
        std::fs::write(&file, "[instruments.thresholds]\ncello = \"high\"\n").unwrap();
        let e = detection_from_file(&file).unwrap_err().to_string();
        assert!(e.contains("instruments.thresholds"), "{e}");
        std::fs::write(&file, "[instruments]\nexclud = []\n").unwrap();
        let e = detection_from_file(&file).unwrap_err().to_string();
        assert!(e.contains("`instruments.exclud`"), "{e}");
    }
}
