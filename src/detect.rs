//! Detections: a window's scores read against the sidecar's per-instrument
//! thresholds.

use crate::model::LabelSpec;
use serde::Serialize;

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Detection {
    pub file: String,
    pub start: f64,
    pub end: f64,
    /// True when the input was shorter than one window and was zero-padded.
    pub padded: bool,
    /// Names of the instruments whose score reaches their threshold.
    pub instruments: Vec<String>,
    /// Every instrument's score, in the model's label order.
    pub scores: serde_json::Map<String, serde_json::Value>,
}

impl Detection {
    pub fn new(
        file: &str,
        start: f64,
        end: f64,
        padded: bool,
        labels: &[LabelSpec],
        scores: &[f32],
    ) -> Self {
        let instruments = labels
            .iter()
            .zip(scores)
            .filter(|(l, &s)| s >= l.threshold)
            .map(|(l, _)| l.name.clone())
            .collect();
        let scores = labels
            .iter()
            .zip(scores)
            .map(|(l, &s)| (l.name.clone(), serde_json::Value::from(round4(s))))
            .collect();
        Detection {
            file: file.to_string(),
            start: round4(start as f32),
            end: round4(end as f32),
            padded,
            instruments,
            scores,
        }
    }
}

/// Scores and times are reported to 4 decimals: finer digits are noise.
fn round4(x: f32) -> f64 {
    (f64::from(x) * 1e4).round() / 1e4
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instruments_at_or_over_their_own_threshold_are_reported() {
        let labels = vec![
            LabelSpec {
                name: "piano".into(),
                program: 1,
                threshold: 0.5,
            },
            LabelSpec {
                name: "violin".into(),
                program: 41,
                threshold: 0.2,
            },
            LabelSpec {
                name: "cello".into(),
                program: 43,
                threshold: 0.3,
            },
        ];
        let d = Detection::new("a.wav", 0.0, 2.0, false, &labels, &[0.4, 0.2, 0.9]);
        assert_eq!(d.instruments, vec!["violin", "cello"]);
        let keys: Vec<&String> = d.scores.keys().collect();
        assert_eq!(keys, ["piano", "violin", "cello"]);
        assert_eq!(d.scores["piano"], serde_json::json!(0.4));
    }
}
