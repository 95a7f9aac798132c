//! `seed26`: the seed study's 26 features, each with librosa 0.11's
//! definition and defaults, averaged over the window's frames:
//! chroma (mean over 12 bins and all frames, `tuning=0` pinned), RMS,
//! spectral centroid, bandwidth, roll-off (0.85), zero-crossing rate and
//! 20 MFCC (128 Slaney mel bands, dB with `top_db=80`, orthonormal DCT-II).
//! Frames: n_fft 2048, hop 512, Hann, centred with zero padding (ZCR pads
//! by repeating the edge sample, as librosa does).

use super::filters::{chroma_filters, dct_ortho, fft_frequencies, mel_filters, SparseFilter};
use super::{FeatureError, FeatureExtractor, Stft};

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

pub struct Seed26 {
    names: Vec<String>,
    stft: Stft,
    freqs: Vec<f32>,
    mel: Vec<SparseFilter>,
    chroma: Vec<Vec<f32>>,
    dct: Vec<Vec<f32>>,
    /// Mel power in dB, frames × mels.
    mel_db: Vec<f32>,
    cumsum: Vec<f32>,
}

impl Seed26 {
    pub fn new(sample_rate: u32, window_len: usize) -> Result<Self, FeatureError> {
        if sample_rate != SAMPLE_RATE {
            return Err(FeatureError::SampleRate {
                set: NAME,
                need: SAMPLE_RATE,
                got: sample_rate,
            });
        }
        let sr = f64::from(sample_rate);
        let stft = Stft::new(N_FFT, HOP, window_len);
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
        Ok(Seed26 {
            names,
            freqs: fft_frequencies(sr, N_FFT)
                .iter()
                .map(|&f| f as f32)
                .collect(),
            mel: mel_filters(sr, N_FFT, N_MELS),
            chroma: chroma_filters(sr, N_FFT, N_CHROMA, 0.0),
            dct: dct_ortho(N_MFCC, N_MELS),
            mel_db: vec![0.0; stft.n_frames * N_MELS],
            cumsum: vec![0.0; stft.n_bins],
            stft,
        })
    }

    fn zero_crossing_rate(window: &[f32], n_frames: usize) -> f64 {
        let n = window.len() as isize;
        let half = (N_FFT / 2) as isize;
        let at = |i: isize| {
            let v = window[i.clamp(0, n - 1) as usize];
            if v.abs() <= ZC_THRESHOLD {
                0.0
            } else {
                v
            }
        };
        let mut total = 0.0;
        for t in 0..n_frames {
            let start = (t * HOP) as isize - half;
            let mut crossings = 0u32;
            let mut prev = at(start).is_sign_negative();
            for i in start + 1..start + N_FFT as isize {
                let cur = at(i).is_sign_negative();
                crossings += u32::from(cur != prev);
                prev = cur;
            }
            total += f64::from(crossings) / N_FFT as f64;
        }
        total / n_frames as f64
    }
}

impl FeatureExtractor for Seed26 {
    fn set_name(&self) -> &'static str {
        NAME
    }

    fn feature_names(&self) -> &[String] {
        &self.names
    }

    fn compute(&mut self, window: &[f32], out: &mut [f32]) {
        assert_eq!(out.len(), self.names.len());
        self.stft.compute(window);
        let frames = self.stft.n_frames;
        let (mut chroma, mut rms, mut centroid, mut bandwidth, mut rolloff) =
            (0.0, 0.0, 0.0, 0.0, 0.0);
        let mut db_max = f32::NEG_INFINITY;
        for t in 0..frames {
            let power = self.stft.power_frame(t);
            let mag = self.stft.magnitude_frame(t);

            // Chroma: filter bank on power, each frame scaled to max 1.
            let mut raw = [0.0f32; N_CHROMA];
            for (r, fb) in raw.iter_mut().zip(&self.chroma) {
                *r = fb.iter().zip(power).map(|(w, p)| w * p).sum();
            }
            let peak = raw.iter().fold(0.0f32, |m, &v| m.max(v.abs()));
            let norm = if peak < f32::MIN_POSITIVE { 1.0 } else { peak };
            chroma += raw.iter().map(|&v| f64::from(v / norm)).sum::<f64>();

            // RMS of the zero-padded frame (no window).
            let frame = self.stft.padded_frame(t);
            let energy: f64 = frame.iter().map(|&x| f64::from(x) * f64::from(x)).sum();
            rms += (energy / N_FFT as f64).sqrt();

            // Spectral shape on the magnitude spectrum.
            let total: f64 = mag.iter().map(|&m| f64::from(m)).sum();
            let scale = if total < f64::from(f32::MIN_POSITIVE) {
                1.0
            } else {
                total
            };
            let c: f64 = mag
                .iter()
                .zip(&self.freqs)
                .map(|(&m, &f)| f64::from(m) * f64::from(f))
                .sum::<f64>()
                / scale;
            centroid += c;
            let spread: f64 = mag
                .iter()
                .zip(&self.freqs)
                .map(|(&m, &f)| f64::from(m) / scale * (f64::from(f) - c).powi(2))
                .sum();
            bandwidth += spread.sqrt();
            let mut acc = 0.0f32;
            for (cs, &m) in self.cumsum.iter_mut().zip(mag) {
                acc += m;
                *cs = acc;
            }
            let threshold = ROLL_PERCENT * acc;
            let k = self
                .cumsum
                .iter()
                .position(|&cs| cs >= threshold)
                .unwrap_or(0);
            rolloff += f64::from(self.freqs[k]);

            // Mel power in dB (clipped below later, against the global max).
            let row = &mut self.mel_db[t * N_MELS..(t + 1) * N_MELS];
            for (db, filter) in row.iter_mut().zip(&self.mel) {
                *db = 10.0 * filter.apply(power).max(1e-10).log10();
                db_max = db_max.max(*db);
            }
        }
        let floor = db_max - TOP_DB;
        let mut mfcc = [0.0f64; N_MFCC];
        for t in 0..frames {
            let row = &self.mel_db[t * N_MELS..(t + 1) * N_MELS];
            for (m, basis) in mfcc.iter_mut().zip(&self.dct) {
                *m += f64::from(
                    basis
                        .iter()
                        .zip(row)
                        .map(|(b, &d)| b * d.max(floor))
                        .sum::<f32>(),
                );
            }
        }
        let n = frames as f64;
        out[0] = (chroma / (n * N_CHROMA as f64)) as f32;
        out[1] = (rms / n) as f32;
        out[2] = (centroid / n) as f32;
        out[3] = (bandwidth / n) as f32;
        out[4] = (rolloff / n) as f32;
        out[5] = Self::zero_crossing_rate(window, frames) as f32;
        for (o, m) in out[6..].iter_mut().zip(mfcc) {
            *o = (m / n) as f32;
        }
    }
}
