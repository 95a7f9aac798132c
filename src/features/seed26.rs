//! `seed26`: the seed study's 26 features, each with librosa 0.11's
//! definition and defaults, averaged over the window's frames:
//! chroma (mean over 12 bins and all frames, `tuning=0` pinned), RMS,
//! spectral centroid, bandwidth, roll-off (0.85), zero-crossing rate and
//! 20 MFCC (128 Slaney mel bands, dB with `top_db=80` against the window's
//! loudest band, orthonormal DCT-II).
//! Frames: n_fft 2048, hop 512, Hann, centred, zero beyond the stream's ends
//! (ZCR counts crossings inside the stream only, as librosa's edge padding
//! adds none).

use super::filters::dct_ortho;
use super::frame::{db_floor, FrameAnalyser, N_CHROMA};
use super::{FeatureSet, SetShape};
use std::ops::Range;

pub const NAME: &str = "seed26";
pub const SAMPLE_RATE: u32 = 22050;
const N_FFT: usize = 2048;
const HOP: usize = 512;
const N_MELS: usize = 128;
const N_MFCC: usize = 20;
const TOP_DB: f32 = 80.0;

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
    shape: SetShape,
    frame: FrameAnalyser,
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
            shape: SetShape {
                name: NAME,
                names,
                frame_len: N_FFT,
                frame_hop: HOP,
                record_len: RECORD,
            },
            frame: FrameAnalyser::new(SAMPLE_RATE, N_FFT, N_MELS),
            dct: dct_ortho(N_MFCC, N_MELS),
            band_sums: vec![0.0; N_MELS],
        }
    }
}

impl FeatureSet for Seed26 {
    fn shape(&self) -> &SetShape {
        &self.shape
    }

    fn analyse_frame(&mut self, frame: &[f32], valid: Range<usize>, record: &mut [f32]) {
        assert_eq!(record.len(), RECORD);
        let b = self.frame.analyse(frame, valid, &mut record[MEL_DB..]);
        // The chroma feature averages all bins of all frames: sum them here.
        record[CHROMA] = b.chroma.iter().map(|&v| f64::from(v)).sum::<f64>() as f32;
        record[RMS] = b.rms;
        record[CENTROID] = b.centroid;
        record[BANDWIDTH] = b.bandwidth;
        record[ROLLOFF] = b.rolloff;
        record[ZCR] = b.zcr;
    }

    fn summarise(&mut self, records: &[f32], out: &mut [f32]) {
        assert_eq!(out.len(), self.shape.names.len());
        let frames = records.len() / RECORD;
        let mut sums = [0.0f64; MEL_DB];
        for r in records.chunks_exact(RECORD) {
            for (s, &v) in sums.iter_mut().zip(&r[..MEL_DB]) {
                *s += f64::from(v);
            }
        }
        let floor = db_floor(records, RECORD, MEL_DB..RECORD, TOP_DB);
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
