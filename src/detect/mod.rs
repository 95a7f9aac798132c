//! Detections: a window's scores read against each instrument's threshold
//! (the sidecar's, or the user's: [`rules`]) and the sidecar's relative
//! threshold, a floor at a fraction of the window's top score; and, for a
//! live stream, each instrument's ON/OFF state, held so that it does not
//! flicker from window to window ([`states`]).

pub mod rules;
pub mod states;

pub use rules::{Overrides, Rules};
pub use states::{Hysteresis, InstrumentStates, StateChange};

use crate::model::{LabelSpec, Sidecar};
use crate::window::Level;
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
    /// The RMS and peak of the window's samples (the analysed channel or
    /// mix, at the model's rate).
    pub level: Level,
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
    rules: Rules,
    relative: f32,
    window_seconds: f64,
    states: InstrumentStates,
    seq: u64,
}

impl Detector {
    /// A detector for `sidecar`'s model with the `rules` in force (made
    /// from its labels).
    pub fn new(sidecar: &Sidecar, rules: &Rules, hysteresis: Hysteresis) -> Self {
        Detector {
            rules: rules.clone(),
            relative: sidecar.relative_threshold,
            window_seconds: sidecar.window_seconds,
            states: InstrumentStates::new(rules, sidecar.relative_threshold, hysteresis),
            seq: 0,
        }
    }

    /// The detection of the window that starts `start` seconds into the
    /// stream (windows in time order), from its `scores`; `padded` and
    /// `level` are the window's ([`crate::window::WindowInfo`]).
    pub fn detect(&mut self, start: f64, padded: bool, level: Level, scores: &[f32]) -> Detection {
        let end = start + self.window_seconds;
        let mut changes = Vec::new();
        self.states.update(end, scores, &mut changes);
        let detection = Detection {
            seq: self.seq,
            start,
            end,
            padded,
            level,
            scores: scores.to_vec(),
            instruments: over_threshold(&self.rules.labels, self.relative, scores)
                .filter(|&i| self.rules.reported(i))
                .collect(),
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
pub(crate) fn top_score(scores: &[f32]) -> f32 {
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

/// Scores and times are reported to 4 decimals: finer digits are noise.
pub(crate) fn round4(x: f32) -> f64 {
    (f64::from(x) * 1e4).round() / 1e4
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    const LOUD: Level = Level {
        rms_dbfs: -20.0,
        peak_dbfs: -3.0,
    };

    pub(crate) fn labels() -> Vec<LabelSpec> {
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
        let rules = Rules::of_model(&labels);
        let d = Detector::new(&sidecar(relative), &rules, Hysteresis::default())
            .detect(0.0, false, LOUD, scores);
        d.instrument_names(&labels).map(str::to_string).collect()
    }

    #[test]
    fn instruments_at_or_over_their_own_threshold_are_reported() {
        let labels = labels();
        let mut detector = Detector::new(
            &sidecar(0.0),
            &Rules::of_model(&labels),
            Hysteresis::default(),
        );
        let d = detector.detect(4.0, false, LOUD, &[0.4, 0.2, 0.9]);
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
        let next = detector.detect(4.5, false, LOUD, &[0.0; 3]);
        assert_eq!(next.seq, 1);
        assert!(next.instruments.is_empty());
        assert!(next.changes.is_empty(), "the hold keeps them ON");
        assert_eq!(next.on, [false, true, true]);
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
    fn an_excluded_instrument_is_scored_but_never_reported() {
        let labels = labels();
        let rules = Rules::resolve(
            &labels,
            &Overrides {
                exclude: vec!["cello".into()],
                thresholds: vec![("violin".into(), 0.6)],
            },
        )
        .unwrap();
        let mut detector = Detector::new(&sidecar(0.0), &rules, Hysteresis::default());
        // Violin at 0.5 is over the model's 0.2, under the user's 0.6.
        let d = detector.detect(0.0, false, LOUD, &[0.7, 0.5, 0.9]);
        assert_eq!(d.instrument_names(&labels).collect::<Vec<_>>(), ["piano"]);
        assert_eq!(d.on, [true, false, false]);
        assert_eq!(d.scores, [0.7, 0.5, 0.9]);
    }
}
