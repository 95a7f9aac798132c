//! What every feature set at librosa's defaults measures of one frame:
//! RMS, zero-crossing rate, spectral centroid, bandwidth and roll-off,
//! chroma (scaled to a peak of 1) and the mel power in dB. The spectrum
//! stays available afterwards for set-specific measures.

use super::filters::{chroma_filters, dot, fft_frequencies, lane_sum, mel_filters, SparseFilter};
use super::FrameSpectrum;
use std::ops::Range;

pub const N_CHROMA: usize = 12;
const ROLL_PERCENT: f32 = 0.85;
const ZC_THRESHOLD: f32 = 1e-10;
/// 10 · log10(x) = (10 / ln 10) · ln(x); `ln` alone costs half of `log10`.
pub const DB_PER_NEPER: f32 = 10.0 / std::f32::consts::LN_10;

/// The scalar measures of one frame.
#[derive(Clone, Copy, Debug, Default)]
pub struct Basics {
    pub rms: f32,
    pub zcr: f32,
    pub centroid: f32,
    pub bandwidth: f32,
    pub rolloff: f32,
    /// Chroma bins from C, each divided by the frame's largest.
    pub chroma: [f32; N_CHROMA],
}

pub struct FrameAnalyser {
    pub spectrum: FrameSpectrum,
    pub freqs: Vec<f32>,
    mel: Vec<SparseFilter>,
    chroma: Vec<Vec<f32>>,
}

impl FrameAnalyser {
    /// librosa's defaults for `n_fft` at `sr` Hz, `n_mels` Slaney mel bands
    /// and chroma with `tuning=0`.
    pub fn new(sr: u32, n_fft: usize, n_mels: usize) -> Self {
        let sr = f64::from(sr);
        FrameAnalyser {
            spectrum: FrameSpectrum::new(n_fft),
            freqs: fft_frequencies(sr, n_fft)
                .iter()
                .map(|&f| f as f32)
                .collect(),
            mel: mel_filters(sr, n_fft, n_mels),
            chroma: chroma_filters(sr, n_fft, N_CHROMA, 0.0),
        }
    }

    /// Analyses `frame` (zeros outside the stream; `valid` is the part
    /// inside it), writes the mel power in dB (no floor yet: that needs the
    /// whole window) into `mel_db`, and returns the scalar measures.
    pub fn analyse(&mut self, frame: &[f32], valid: Range<usize>, mel_db: &mut [f32]) -> Basics {
        let n = frame.len() as f32;
        let mut b = Basics {
            // RMS over the whole frame (zeros outside the stream).
            rms: (dot(frame, frame) / n).sqrt(),
            ..Basics::default()
        };
        // ZCR inside the stream only (librosa's rule: |x| <= 1e-10 counts as
        // 0, and 0 as positive; its edge padding adds no crossing).
        let inside = &frame[valid];
        let negative = |v: f32| v < -ZC_THRESHOLD;
        let crossings: u32 = inside
            .iter()
            .zip(inside.iter().skip(1))
            .map(|(&a, &b)| u32::from(negative(a) != negative(b)))
            .sum();
        b.zcr = crossings as f32 / n;

        self.spectrum.compute(frame);
        let power = &self.spectrum.power;
        let mag = &self.spectrum.magnitude;

        // Chroma: filter bank on power, scaled to a peak of 1 per frame.
        for (r, fb) in b.chroma.iter_mut().zip(&self.chroma) {
            *r = dot(fb, power);
        }
        let peak = b.chroma.iter().fold(0.0f32, |m, &v| m.max(v.abs()));
        let norm = if peak < f32::MIN_POSITIVE { 1.0 } else { peak };
        for r in b.chroma.iter_mut() {
            *r /= norm;
        }

        // Spectral shape on the magnitude spectrum.
        let freqs = &self.freqs;
        let total = lane_sum(mag, mag, |m, _| m);
        let scale = if total < f32::MIN_POSITIVE {
            1.0
        } else {
            total
        };
        let c = dot(mag, freqs) / scale;
        b.centroid = c;
        let spread = lane_sum(mag, freqs, |m, f| m * (f - c) * (f - c)) / scale;
        b.bandwidth = spread.sqrt();
        // Roll-off: the first bin where the running sum reaches 85 % of the
        // total.
        let threshold = ROLL_PERCENT * total;
        let mut acc = 0.0f32;
        let k = mag
            .iter()
            .position(|&m| {
                acc += m;
                acc >= threshold
            })
            .unwrap_or(0);
        b.rolloff = self.freqs[k];

        for (db, filter) in mel_db.iter_mut().zip(&self.mel) {
            *db = DB_PER_NEPER * filter.apply(power).max(1e-10).ln();
        }
        b
    }
}

/// librosa's `top_db` floor for a window: its loudest value less `top_db`,
/// over the values at `range` of every record.
pub fn db_floor(records: &[f32], record_len: usize, range: Range<usize>, top_db: f32) -> f32 {
    let max = records
        .chunks_exact(record_len)
        .flat_map(|r| &r[range.clone()])
        .fold(f32::NEG_INFINITY, |m, &d| if d > m { d } else { m });
    max - top_db
}
