//! `seed26`: the seed study's 26 features, each with librosa 0.11's
//! definition and defaults, averaged over the window's frames:
//! chroma (mean over 12 bins and all frames, `tuning=0` pinned), RMS,
//! spectral centroid, bandwidth, roll-off (0.85), zero-crossing rate and
//! 20 MFCC (128 Slaney mel bands, dB with `top_db=80` against the window's
//! loudest band, orthonormal DCT-II).
//! Frames: n_fft 2048, hop 512, Hann, centred, zero beyond the stream's ends
//! (ZCR counts crossings inside the stream only, as librosa's edge padding
//! adds none).

use super::filters::{
    chroma_filters, dct_ortho, dot, fft_frequencies, lane_sum, mel_filters, SparseFilter,
};
use super::{FeatureSet, FrameSpectrum};
use std::ops::Range;

pub const NAME: &str = "seed26";
pub const SAMPLE_RATE: u32 = 22050;
const N_FFT: usize = 2048;
const HOP: usize = 512;
const N_MELS: usize = 128;
const N_MFCC: usize = 20;
const N_CHROMA: usize = 12;
const TOP_DB: f32 = 80.0;
const ROLL_PERCENT: f32 = 0.85;
const ZC_THRESHOLD: f32 = 1e-10;
/// 10 · log10(x) = (10 / ln 10) · ln(x); `ln` alone costs half of `log10`.
const DB_PER_NEPER: f32 = 10.0 / std::f32::consts::LN_10;

/// Per-frame record: six scalars, then the frame's mel power in dB.
const CHROMA: usize = 0;
const RMS: usize = 1;
const CENTROID: usize = 2;
const BANDWIDTH: usize = 3;
const ROLLOFF: usize = 4;
const ZCR: usize = 5;
const MEL_DB: usize = 6;
const RECORD: usize = MEL_DB + N_MELS;

pub struct Seed26 {
    names: Vec<String>,
    spectrum: FrameSpectrum,
    freqs: Vec<f32>,
    mel: Vec<SparseFilter>,
    chroma: Vec<Vec<f32>>,
    dct: Vec<Vec<f32>>,
    /// Per-band sums of clipped dB over a window.
    band_sums: Vec<f32>,
}

impl Default for Seed26 {
    fn default() -> Self {
        Self::new()
    }
}

impl Seed26 {
    pub fn new() -> Self {
        let sr = f64::from(SAMPLE_RATE);
        let spectrum = FrameSpectrum::new(N_FFT);
        let mut names: Vec<String> = [
            "chroma_stft",
            "rms",
            "spectral_centroid",
            "spectral_bandwidth",
            "spectral_rolloff",
            "zero_crossing_rate",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        names.extend((1..=N_MFCC).map(|i| format!("mfcc{i}")));
        Seed26 {
            names,
            freqs: fft_frequencies(sr, N_FFT)
                .iter()
                .map(|&f| f as f32)
                .collect(),
            mel: mel_filters(sr, N_FFT, N_MELS),
            chroma: chroma_filters(sr, N_FFT, N_CHROMA, 0.0),
            dct: dct_ortho(N_MFCC, N_MELS),
            band_sums: vec![0.0; N_MELS],
            spectrum,
        }
    }
}

impl FeatureSet for Seed26 {
    fn set_name(&self) -> &'static str {
        NAME
    }

    fn feature_names(&self) -> &[String] {
        &self.names
    }

    fn frame_len(&self) -> usize {
        N_FFT
    }

    fn frame_hop(&self) -> usize {
        HOP
    }

    fn record_len(&self) -> usize {
        RECORD
    }

    fn analyse_frame(&mut self, frame: &[f32], valid: Range<usize>, record: &mut [f32]) {
        debug_assert_eq!(record.len(), RECORD);
        // RMS over the whole frame (zeros outside the stream), ZCR inside it
        // (librosa's rule: |x| <= 1e-10 counts as 0, and 0 as positive).
        record[RMS] = (dot(frame, frame) / N_FFT as f32).sqrt();
        let inside = &frame[valid];
        let negative = |v: f32| v < -ZC_THRESHOLD;
        let crossings: u32 = inside
            .iter()
            .zip(inside.iter().skip(1))
            .map(|(&a, &b)| u32::from(negative(a) != negative(b)))
            .sum();
        record[ZCR] = crossings as f32 / N_FFT as f32;

        self.spectrum.compute(frame);
        let power = &self.spectrum.power;
        let mag = &self.spectrum.magnitude;

        // Chroma: filter bank on power, the frame scaled to max 1, then
        // summed over its bins (averaged in `summarise`).
        let mut raw = [0.0f32; N_CHROMA];
        for (r, fb) in raw.iter_mut().zip(&self.chroma) {
            *r = dot(fb, power);
        }
        let peak = raw.iter().fold(0.0f32, |m, &v| m.max(v.abs()));
        let norm = if peak < f32::MIN_POSITIVE { 1.0 } else { peak };
        record[CHROMA] = raw.iter().map(|&v| f64::from(v / norm)).sum::<f64>() as f32;

        // Spectral shape on the magnitude spectrum.
        let freqs = &self.freqs;
        let total = lane_sum(mag, mag, |m, _| m);
        let scale = if total < f32::MIN_POSITIVE {
            1.0
        } else {
            total
        };
        let c = dot(mag, freqs) / scale;
        record[CENTROID] = c;
        let spread = lane_sum(mag, freqs, |m, f| m * (f - c) * (f - c)) / scale;
        record[BANDWIDTH] = spread.sqrt();
        // Roll-off: the first bin where the running sum reaches 85 % of
        // the total.
        let threshold = ROLL_PERCENT * total;
        let mut acc = 0.0f32;
        let k = mag
            .iter()
            .position(|&m| {
                acc += m;
                acc >= threshold
            })
            .unwrap_or(0);
        record[ROLLOFF] = self.freqs[k];

        // Mel power in dB; the window's top_db floor is applied in
        // `summarise`, where the window's loudest band is known.
        for (db, filter) in record[MEL_DB..].iter_mut().zip(&self.mel) {
            *db = DB_PER_NEPER * filter.apply(power).max(1e-10).ln();
        }
    }

    fn summarise(&mut self, records: &[f32], out: &mut [f32]) {
        assert_eq!(out.len(), self.names.len());
        let frames = records.len() / RECORD;
        let mut sums = [0.0f64; MEL_DB];
        let mut db_max = f32::NEG_INFINITY;
        for r in records.chunks_exact(RECORD) {
            for (s, &v) in sums.iter_mut().zip(&r[..MEL_DB]) {
                *s += f64::from(v);
            }
            db_max = r[MEL_DB..]
                .iter()
                .fold(db_max, |m, &d| if d > m { d } else { m });
        }
        let floor = db_max - TOP_DB;
        // f32 sums of at most a few hundred dB values each: exact to ~1e-6.
        self.band_sums.fill(0.0);
        for r in records.chunks_exact(RECORD) {
            for (s, &d) in self.band_sums.iter_mut().zip(&r[MEL_DB..]) {
                *s += if d > floor { d } else { floor };
            }
        }
        let n = frames.max(1) as f64;
        out[0] = (sums[CHROMA] / (n * N_CHROMA as f64)) as f32;
        for k in [RMS, CENTROID, BANDWIDTH, ROLLOFF, ZCR] {
            out[k] = (sums[k] / n) as f32;
        }
        for (o, basis) in out[MEL_DB..].iter_mut().zip(&self.dct) {
            let m: f64 = basis
                .iter()
                .zip(&self.band_sums)
                .map(|(&b, &s)| f64::from(b) * f64::from(s))
                .sum();
            *o = (m / n) as f32;
        }
    }
}
