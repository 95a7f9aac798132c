//! `logmel128`: the window itself as an image for a small CNN, 87 frames ×
//! 128 mel bands of power in dB, frame after frame. It is librosa 0.11's
//! `power_to_db(melspectrogram(y, sr=22050, n_fft=2048, hop_length=512),
//! ref=1.0, top_db=80)` of the 2-s window (Hann, centred, Slaney mel): the
//! same frames and mel bands `timbre98` reads, floored at the window's
//! loudest value less 80 dB. Normalisation (per band, per window) belongs
//! to the model, which carries it in its ONNX graph.
//!
//! The set is defined for 2-s windows (`1 + 44100 / 512` = 87 frames); a
//! window of another length fills the 87 frames from its first and pads
//! with the floor, so a model never reads past what it was trained on.

use super::frame::{db_floor, FrameAnalyser};
use super::{FeatureSet, SetShape};
use std::ops::Range;

pub const NAME: &str = "logmel128";
pub const SAMPLE_RATE: u32 = 22050;
const N_FFT: usize = 2048;
const HOP: usize = 512;
pub const N_MELS: usize = 128;
/// Frames of a 2-s window: `1 + 2 · 22050 / 512`.
pub const FRAMES: usize = 87;
const TOP_DB: f32 = 80.0;
const LEN: usize = FRAMES * N_MELS;

pub struct LogMel {
    shape: SetShape,
    frame: FrameAnalyser,
}

impl Default for LogMel {
    fn default() -> Self {
        Self::new()
    }
}

impl LogMel {
    pub fn new() -> Self {
        let names = (0..FRAMES)
            .flat_map(|t| (0..N_MELS).map(move |m| format!("t{t}_mel{m}")))
            .collect();
        LogMel {
            shape: SetShape {
                name: NAME,
                names,
                frame_len: N_FFT,
                frame_hop: HOP,
                record_len: N_MELS,
            },
            frame: FrameAnalyser::new(SAMPLE_RATE, N_FFT, N_MELS),
        }
    }
}

impl FeatureSet for LogMel {
    fn shape(&self) -> &SetShape {
        &self.shape
    }

    fn analyse_frame(&mut self, frame: &[f32], valid: Range<usize>, record: &mut [f32]) {
        self.frame.analyse(frame, valid, record);
    }

    fn summarise(&mut self, records: &[f32], out: &mut [f32]) {
        assert_eq!(out.len(), LEN);
        let floor = db_floor(records, N_MELS, 0..N_MELS, TOP_DB);
        let n = records.len().min(LEN);
        for (o, &d) in out[..n].iter_mut().zip(&records[..n]) {
            *o = if d > floor { d } else { floor };
        }
        out[n..].fill(floor);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_is_its_frames_mel_db_floored_80_db_under_its_peak() {
        let mut set = LogMel::new();
        assert_eq!(set.len(), FRAMES * N_MELS);
        assert_eq!(set.feature_names()[N_MELS + 2], "t1_mel2");
        let mut records = vec![-200.0f32; FRAMES * N_MELS];
        records[5] = 10.0;
        records[N_MELS + 7] = -30.0;
        let mut out = vec![0.0; set.len()];
        set.summarise(&records, &mut out);
        assert_eq!(out[5], 10.0);
        assert_eq!(out[N_MELS + 7], -30.0);
        assert_eq!(out[0], -70.0);
        // A shorter window is padded with its floor.
        let mut short = vec![0.0; set.len()];
        set.summarise(&records[..2 * N_MELS], &mut short);
        assert_eq!(short[..2 * N_MELS], out[..2 * N_MELS]);
        assert!(short[2 * N_MELS..].iter().all(|&v| v == -70.0));
    }
}
