//! `timbre98+logmel128`: both sets of one window, `timbre98`'s 98 numbers
//! followed by `logmel128`'s 87 × 128, from one analysis of each frame, for
//! a model that reads both (the forest and the CNN side by side, their
//! scores averaged). `timbre98`'s frame records already hold the 128 mel
//! bands in dB that `logmel128` is made of, so a frame is analysed once and
//! each window is summarised twice; the values equal each set's own.

use super::logmel::{self, LogMel};
use super::timbre98::{self, Timbre98, MEL_DB, RECORD};
use super::{FeatureSet, SetShape};
use std::ops::Range;

pub const NAME: &str = "timbre98+logmel128";
pub const SAMPLE_RATE: u32 = timbre98::SAMPLE_RATE;

pub struct TimbreAndLogMel {
    timbre: Timbre98,
    logmel: LogMel,
    shape: SetShape,
    /// The window's mel records gathered out of `timbre98`'s, grown to the
    /// longest window seen (once, for a stream's fixed window).
    mels: Vec<f32>,
}

impl Default for TimbreAndLogMel {
    fn default() -> Self {
        Self::new()
    }
}

impl TimbreAndLogMel {
    pub fn new() -> Self {
        const _: () = assert!(timbre98::N_MELS == logmel::N_MELS);
        const _: () = assert!(timbre98::SAMPLE_RATE == logmel::SAMPLE_RATE);
        let (timbre, logmel) = (Timbre98::new(), LogMel::new());
        let names = timbre
            .feature_names()
            .iter()
            .chain(logmel.feature_names())
            .cloned()
            .collect();
        let shape = SetShape {
            name: NAME,
            names,
            frame_len: timbre.frame_len(),
            frame_hop: timbre.frame_hop(),
            record_len: RECORD,
        };
        TimbreAndLogMel {
            timbre,
            logmel,
            shape,
            mels: Vec::with_capacity(logmel::FRAMES * logmel::N_MELS),
        }
    }
}

impl FeatureSet for TimbreAndLogMel {
    fn shape(&self) -> &SetShape {
        &self.shape
    }

    fn analyse_frame(&mut self, frame: &[f32], valid: Range<usize>, record: &mut [f32]) {
        self.timbre.analyse_frame(frame, valid, record);
    }

    fn summarise(&mut self, records: &[f32], out: &mut [f32]) {
        let (first, second) = out.split_at_mut(self.timbre.len());
        self.timbre.summarise(records, first);
        self.mels.clear();
        for record in records.chunks_exact(RECORD) {
            self.mels
                .extend_from_slice(&record[MEL_DB..MEL_DB + logmel::N_MELS]);
        }
        self.logmel.summarise(&self.mels, second);
    }
}
