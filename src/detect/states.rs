//! Each instrument's ON/OFF state, held from window to window so that it
//! does not flicker: it turns ON once enough consecutive windows reach the
//! threshold (and any cooldown since it last went OFF has passed), and OFF
//! only once no window has come near the threshold for a hold time.

use super::effective_threshold;
use super::rules::Rules;

/// How an instrument's state is held.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Hysteresis {
    /// Seconds an ON instrument stays ON without a supporting window.
    pub hold_seconds: f64,
    /// How far under its threshold a score still supports an ON
    /// instrument.
    pub margin: f32,
    /// Consecutive windows at or over the threshold before an instrument
    /// turns ON (1: the first such window).
    pub confirm: u32,
    /// Seconds after an instrument turns OFF before it may turn ON again.
    pub cooldown_seconds: f64,
}

impl Default for Hysteresis {
    fn default() -> Self {
        Hysteresis {
            hold_seconds: 1.5,
            margin: 0.05,
            confirm: 1,
            cooldown_seconds: 0.0,
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

/// The ON/OFF state of every instrument of a model, in label order. An
/// excluded instrument never turns ON.
#[derive(Debug, Clone)]
pub struct InstrumentStates {
    names: Vec<String>,
    thresholds: Vec<f32>,
    excluded: Vec<bool>,
    relative: f32,
    hysteresis: Hysteresis,
    pub(super) on: Vec<bool>,
    /// End time of the last window that kept each instrument ON.
    last_support: Vec<f64>,
    /// Consecutive windows, up to the last, at or over the threshold.
    streak: Vec<u32>,
    /// When each instrument last turned OFF.
    off_at: Vec<f64>,
}

impl InstrumentStates {
    /// Every instrument starts OFF.
    pub fn new(rules: &Rules, relative: f32, hysteresis: Hysteresis) -> Self {
        let n = rules.labels.len();
        InstrumentStates {
            names: rules.labels.iter().map(|l| l.name.clone()).collect(),
            thresholds: rules.labels.iter().map(|l| l.threshold).collect(),
            excluded: rules.excluded.clone(),
            relative,
            hysteresis,
            on: vec![false; n],
            last_support: vec![f64::NEG_INFINITY; n],
            streak: vec![0; n],
            off_at: vec![f64::NEG_INFINITY; n],
        }
    }

    /// Feeds the scores of the window ending at `end` seconds (windows in
    /// time order) and appends the state changes it causes to `changes`.
    pub fn update(&mut self, end: f64, scores: &[f32], changes: &mut Vec<StateChange>) {
        let top = super::top_score(scores);
        let h = self.hysteresis;
        for (i, &score) in scores.iter().enumerate().take(self.on.len()) {
            if self.excluded[i] {
                continue;
            }
            let threshold = effective_threshold(self.thresholds[i], self.relative, top);
            if score >= threshold {
                self.streak[i] = self.streak[i].saturating_add(1);
                if self.on[i] {
                    self.last_support[i] = end;
                } else if self.streak[i] >= h.confirm.max(1)
                    && end - self.off_at[i] >= h.cooldown_seconds
                {
                    self.last_support[i] = end;
                    self.on[i] = true;
                    changes.push(self.change(i, end));
                }
                continue;
            }
            self.streak[i] = 0;
            if self.on[i] {
                if score >= threshold - h.margin {
                    self.last_support[i] = end;
                } else if end - self.last_support[i] >= h.hold_seconds {
                    self.on[i] = false;
                    self.off_at[i] = end;
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

#[cfg(test)]
mod tests {
    use super::super::tests::labels;
    use super::*;
    use crate::detect::rules::Overrides;

    /// Feeds piano scores at 0.5 s steps; returns (time, on) per change.
    fn piano_changes(scores: &[f32], hysteresis: Hysteresis) -> Vec<(f64, bool)> {
        let rules = Rules::of_model(&labels());
        let mut states = InstrumentStates::new(&rules, 0.0, hysteresis);
        let mut changes = vec![];
        for (k, &p) in scores.iter().enumerate() {
            states.update(2.0 + 0.5 * k as f64, &[p, 0.0, 0.0], &mut changes);
        }
        assert!(changes.iter().all(|c| c.instrument == "piano"));
        changes.iter().map(|c| (c.at, c.on)).collect()
    }

    fn held(hold_seconds: f64, margin: f32) -> Hysteresis {
        Hysteresis {
            hold_seconds,
            margin,
            ..Hysteresis::default()
        }
    }

    #[test]
    fn a_flickering_score_keeps_the_state_on() {
        // Threshold 0.5: dips of one window, or into the margin, do not
        // turn piano off; a second of low scores does.
        let scores = [0.6, 0.1, 0.7, 0.46, 0.47, 0.46, 0.2, 0.2, 0.2, 0.9];
        assert_eq!(
            piano_changes(&scores, held(1.0, 0.05)),
            vec![(2.0, true), (5.5, false), (6.5, true)]
        );
    }

    #[test]
    fn without_hold_or_margin_the_state_follows_every_window() {
        assert_eq!(
            piano_changes(&[0.6, 0.49, 0.5], held(0.0, 0.0)),
            vec![(2.0, true), (2.5, false), (3.0, true)]
        );
    }

    #[test]
    fn confirm_waits_for_that_many_windows_in_a_row() {
        let h = Hysteresis {
            confirm: 3,
            ..held(0.0, 0.0)
        };
        // Two over, one under: the streak starts again; ON at the third
        // of three in a row, two windows after the first of them.
        let scores = [0.6, 0.6, 0.1, 0.6, 0.6, 0.6, 0.6, 0.1];
        assert_eq!(piano_changes(&scores, h), vec![(4.5, true), (5.5, false)]);
        assert_eq!(piano_changes(&scores, held(0.0, 0.0))[0], (2.0, true));
    }

    #[test]
    fn cooldown_keeps_an_instrument_off_for_a_while_after_it_stops() {
        let h = Hysteresis {
            cooldown_seconds: 1.0,
            ..held(0.0, 0.0)
        };
        // OFF at 2.5; over again at 3.0 (too soon), ON at 3.5, a second
        // after it stopped.
        let scores = [0.6, 0.1, 0.6, 0.6, 0.6];
        assert_eq!(
            piano_changes(&scores, h),
            vec![(2.0, true), (2.5, false), (3.5, true)]
        );
    }

    #[test]
    fn an_excluded_instrument_never_turns_on() {
        let overrides = Overrides {
            exclude: vec!["piano".into()],
            ..Overrides::default()
        };
        let rules = Rules::resolve(&labels(), &overrides).unwrap();
        let mut states = InstrumentStates::new(&rules, 0.0, Hysteresis::default());
        let mut changes = vec![];
        states.update(2.0, &[0.99, 0.9, 0.0], &mut changes);
        assert_eq!(states.on, [false, true, false]);
        assert_eq!(changes.len(), 1);
        assert_eq!(changes[0].instrument, "violin");
    }

    #[test]
    fn states_turn_on_and_off_against_the_relative_threshold() {
        let rules = Rules::of_model(&labels());
        let mut states = InstrumentStates::new(&rules, 0.5, held(0.0, 0.05));
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
