//! Detections: a window's scores read against the sidecar's per-instrument
//! thresholds (and its relative threshold, a floor at a fraction of the
//! window's top score), and, for a live stream, each instrument's ON/OFF state with
//! hysteresis so that a state does not flicker from window to window.

use crate::model::{LabelSpec, Sidecar};
use std::time::{Duration, SystemTime};

/// One analysed window: what `tutti analyze` prints, what `tutti listen`
/// publishes and what every other consumer of results reads. A
/// [`Detector`] makes them from the model's scores.
#[derive(Debug, Clone, PartialEq)]
pub struct Detection {
    /// Window number in its stream, from 0.
    pub seq: u64,
    /// Start and end of the window, in seconds of audio into its stream.
    pub start: f64,
    pub end: f64,
    /// True when the input was shorter than one window and was zero-padded.
    pub padded: bool,
    /// Every instrument's score, in the model's label order.
    pub scores: Vec<f32>,
    /// Label indices of the instruments whose score reaches their
    /// threshold in this window (see [`effective_threshold`]).
    pub instruments: Vec<usize>,
    /// Which instruments are ON after this window, in label order, held
    /// with hysteresis ([`InstrumentStates`]).
    pub on: Vec<bool>,
    /// The state changes this window caused.
    pub changes: Vec<StateChange>,
    /// When the window was heard, by the wall clock: live streams only.
    pub heard: Option<Heard>,
}

/// A live window's place in wall-clock time.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Heard {
    pub start: SystemTime,
    pub end: SystemTime,
    /// From the arrival of the last sample the window's features read
    /// (half an analysis frame past its end) to its detection.
    pub latency: Duration,
}

/// Turns one stream's scores, window after window, into [`Detection`]s:
/// thresholds, then ON/OFF states. One per stream: every instrument starts
/// OFF.
#[derive(Debug, Clone)]
pub struct Detector {
    labels: Vec<LabelSpec>,
    relative: f32,
    window_seconds: f64,
    states: InstrumentStates,
    seq: u64,
}

impl Detector {
    pub fn new(sidecar: &Sidecar, hysteresis: Hysteresis) -> Self {
        Detector {
            labels: sidecar.labels.clone(),
            relative: sidecar.relative_threshold,
            window_seconds: sidecar.window_seconds,
            states: InstrumentStates::new(&sidecar.labels, sidecar.relative_threshold, hysteresis),
            seq: 0,
        }
    }

    /// The detection of the window that starts `start` seconds into the
    /// stream (windows in time order), from its `scores`.
    pub fn detect(&mut self, start: f64, padded: bool, scores: &[f32]) -> Detection {
        let end = start + self.window_seconds;
        let mut changes = Vec::new();
        self.states.update(end, scores, &mut changes);
        let detection = Detection {
            seq: self.seq,
            start,
            end,
            padded,
            scores: scores.to_vec(),
            instruments: over_threshold(&self.labels, self.relative, scores).collect(),
            on: self.states.on.clone(),
            changes,
            heard: None,
        };
        self.seq += 1;
        detection
    }
}

impl Detection {
    /// Names of the instruments over their threshold.
    pub fn instrument_names<'a>(
        &'a self,
        labels: &'a [LabelSpec],
    ) -> impl Iterator<Item = &'a str> + 'a {
        self.instruments.iter().map(|&i| labels[i].name.as_str())
    }

    /// Names of the instruments ON after this window.
    pub fn on_names<'a>(&'a self, labels: &'a [LabelSpec]) -> impl Iterator<Item = &'a str> + 'a {
        labels
            .iter()
            .zip(&self.on)
            .filter(|(_, &on)| on)
            .map(|(l, _)| l.name.as_str())
    }

    /// Every instrument's score, rounded, in label order.
    pub fn score_map(&self, labels: &[LabelSpec]) -> serde_json::Map<String, serde_json::Value> {
        labels
            .iter()
            .zip(&self.scores)
            .map(|(l, &s)| (l.name.clone(), serde_json::Value::from(round4(s))))
            .collect()
    }
}

/// What an instrument's score must reach in a window whose highest score is
/// `top`: its own threshold, and at least `relative` times `top`. With a
/// relative threshold of 0.6, an instrument scoring 0.3 beside one scoring
/// 0.8 is not reported even if 0.3 is over its own threshold: a forest
/// spreads its votes over timbres like the one it hears, and a solo player
/// would otherwise be reported with its neighbours.
pub fn effective_threshold(own: f32, relative: f32, top: f32) -> f32 {
    own.max(relative * top)
}

/// The highest score of a window (0 for none).
fn top_score(scores: &[f32]) -> f32 {
    scores.iter().copied().fold(0.0, f32::max)
}

/// Label indices of the instruments whose score reaches their effective
/// threshold.
fn over_threshold<'a>(
    labels: &'a [LabelSpec],
    relative: f32,
    scores: &'a [f32],
) -> impl Iterator<Item = usize> + 'a {
    let top = top_score(scores);
    labels
        .iter()
        .zip(scores)
        .enumerate()
        .filter(move |(_, (l, &s))| s >= effective_threshold(l.threshold, relative, top))
        .map(|(i, _)| i)
}

/// How an instrument's state is held: it turns ON as soon as a window's
/// score reaches the (effective) threshold, and OFF only once no window has
/// scored at least `threshold - margin` for `hold_seconds`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Hysteresis {
    pub hold_seconds: f64,
    pub margin: f32,
}

impl Default for Hysteresis {
    fn default() -> Self {
        Hysteresis {
            hold_seconds: 1.5,
            margin: 0.05,
        }
    }
}

/// A change of one instrument's state, at the end time of the window that
/// caused it.
#[derive(Debug, Clone, PartialEq)]
pub struct StateChange {
    pub instrument: String,
    pub on: bool,
    pub at: f64,
}

/// The ON/OFF state of every instrument of a model, in label order.
#[derive(Debug, Clone)]
pub struct InstrumentStates {
    names: Vec<String>,
    thresholds: Vec<f32>,
    relative: f32,
    hysteresis: Hysteresis,
    on: Vec<bool>,
    /// End time of the last window that kept each instrument ON.
    last_support: Vec<f64>,
}

impl InstrumentStates {
    /// Every instrument starts OFF.
    pub fn new(labels: &[LabelSpec], relative: f32, hysteresis: Hysteresis) -> Self {
        InstrumentStates {
            names: labels.iter().map(|l| l.name.clone()).collect(),
            thresholds: labels.iter().map(|l| l.threshold).collect(),
            relative,
            hysteresis,
            on: vec![false; labels.len()],
            last_support: vec![f64::NEG_INFINITY; labels.len()],
        }
    }

    /// Feeds the scores of the window ending at `end` seconds (windows in
    /// time order) and appends the state changes it causes to `changes`.
    pub fn update(&mut self, end: f64, scores: &[f32], changes: &mut Vec<StateChange>) {
        let top = top_score(scores);
        for (i, &score) in scores.iter().enumerate().take(self.on.len()) {
            let threshold = effective_threshold(self.thresholds[i], self.relative, top);
            if score >= threshold {
                self.last_support[i] = end;
                if !self.on[i] {
                    self.on[i] = true;
                    changes.push(self.change(i, end));
                }
            } else if self.on[i] {
                if score >= threshold - self.hysteresis.margin {
                    self.last_support[i] = end;
                } else if end - self.last_support[i] >= self.hysteresis.hold_seconds {
                    self.on[i] = false;
                    changes.push(self.change(i, end));
                }
            }
        }
    }

    fn change(&self, i: usize, at: f64) -> StateChange {
        StateChange {
            instrument: self.names[i].clone(),
            on: self.on[i],
            at,
        }
    }
}

/// Scores and times are reported to 4 decimals: finer digits are noise.
pub(crate) fn round4(x: f32) -> f64 {
    (f64::from(x) * 1e4).round() / 1e4
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels() -> Vec<LabelSpec> {
        vec![
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
        ]
    }

    fn sidecar(relative: f32) -> Sidecar {
        Sidecar {
            model_file: "m.onnx".into(),
            onnx_sha256: String::new(),
            labels: labels(),
            sample_rate: 22050,
            window_seconds: 2.0,
            hop_seconds: 0.5,
            feature_set: "seed26".into(),
            feature_names: vec![],
            relative_threshold: relative,
            training: serde_json::Value::Null,
            validation: serde_json::Value::Null,
        }
    }

    /// The instruments one window reports, from a fresh detector.
    fn reported(relative: f32, scores: &[f32]) -> Vec<String> {
        let labels = labels();
        let d = Detector::new(&sidecar(relative), Hysteresis::default()).detect(0.0, false, scores);
        d.instrument_names(&labels).map(str::to_string).collect()
    }

    #[test]
    fn instruments_at_or_over_their_own_threshold_are_reported() {
        let labels = labels();
        let mut detector = Detector::new(&sidecar(0.0), Hysteresis::default());
        let d = detector.detect(4.0, false, &[0.4, 0.2, 0.9]);
        assert_eq!(d.instruments, vec![1, 2]);
        assert_eq!(reported(0.0, &[0.4, 0.2, 0.9]), ["violin", "cello"]);
        let map = d.score_map(&labels);
        let keys: Vec<&String> = map.keys().collect();
        assert_eq!(keys, ["piano", "violin", "cello"]);
        assert_eq!(map["piano"], serde_json::json!(0.4));
        assert_eq!((d.seq, d.start, d.end), (0, 4.0, 6.0));
        // Over-threshold instruments turn ON at once, and say so.
        assert_eq!(d.on_names(&labels).collect::<Vec<_>>(), ["violin", "cello"]);
        assert_eq!(d.changes.len(), 2);
        let next = detector.detect(4.5, false, &[0.0; 3]);
        assert_eq!(next.seq, 1);
        assert!(next.instruments.is_empty());
        assert!(next.changes.is_empty(), "the hold keeps them ON");
        assert_eq!(next.on, [false, true, true]);
    }

    /// Feeds piano scores at 0.5 s steps; returns (time, on) per change.
    fn piano_changes(scores: &[f32], hysteresis: Hysteresis) -> Vec<(f64, bool)> {
        let mut states = InstrumentStates::new(&labels(), 0.0, hysteresis);
        let mut changes = vec![];
        for (k, &p) in scores.iter().enumerate() {
            states.update(2.0 + 0.5 * k as f64, &[p, 0.0, 0.0], &mut changes);
        }
        assert!(changes.iter().all(|c| c.instrument == "piano"));
        changes.iter().map(|c| (c.at, c.on)).collect()
    }

    #[test]
    fn a_flickering_score_keeps_the_state_on() {
        let h = Hysteresis {
            hold_seconds: 1.0,
            margin: 0.05,
        };
        // Threshold 0.5: dips of one window, or into the margin, do not
        // turn piano off; a second of low scores does.
        let scores = [0.6, 0.1, 0.7, 0.46, 0.47, 0.46, 0.2, 0.2, 0.2, 0.9];
        assert_eq!(
            piano_changes(&scores, h),
            vec![(2.0, true), (5.5, false), (6.5, true)]
        );
    }

    #[test]
    fn without_hold_or_margin_the_state_follows_every_window() {
        let h = Hysteresis {
            hold_seconds: 0.0,
            margin: 0.0,
        };
        assert_eq!(
            piano_changes(&[0.6, 0.49, 0.5], h),
            vec![(2.0, true), (2.5, false), (3.0, true)]
        );
    }

    #[test]
    fn a_relative_threshold_drops_the_neighbours_of_a_clear_leader() {
        // Own thresholds 0.5, 0.2, 0.3; top score 0.9 (cello).
        let scores = [0.55, 0.5, 0.9];
        assert_eq!(reported(0.0, &scores), ["piano", "violin", "cello"]);
        // 0.6 x 0.9 = 0.54: violin (0.5) goes, piano (0.55) stays.
        assert_eq!(reported(0.6, &scores), ["piano", "cello"]);
        assert_eq!(reported(0.7, &scores), ["cello"]);
        // It never lowers an instrument's own threshold.
        assert!(reported(0.9, &[0.45, 0.1, 0.1]).is_empty());
    }

    #[test]
    fn states_turn_on_and_off_against_the_relative_threshold() {
        let h = Hysteresis {
            hold_seconds: 0.0,
            margin: 0.05,
        };
        let mut states = InstrumentStates::new(&labels(), 0.5, h);
        let mut changes = vec![];
        // Violin (own threshold 0.2) at 0.3: ON beside piano at 0.5 (floor
        // 0.25), OFF when cello reaches 0.8 (floor 0.4, below 0.4 - 0.05).
        states.update(2.0, &[0.5, 0.3, 0.0], &mut changes);
        assert!(states.on[1]);
        states.update(2.5, &[0.5, 0.3, 0.8], &mut changes);
        assert!(!states.on[1]);
        let violin: Vec<bool> = changes
            .iter()
            .filter(|c| c.instrument == "violin")
            .map(|c| c.on)
            .collect();
        assert_eq!(violin, vec![true, false]);
    }
}
