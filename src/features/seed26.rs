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

/// Dot product in eight independent lanes, so the compiler can vectorise it
/// (a plain `sum()` of `f32` must keep its sequential order).
#[inline]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut lanes = [0.0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for k in 0..8 {
            lanes[k] += x[k] * y[k];
        }
    }
    let tail: f32 = ra.iter().zip(rb).map(|(x, y)| x * y).sum();
    lanes.iter().sum::<f32>() + tail
}

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
    /// Prefix sums over the window: squares (for RMS) and sign changes (ZCR).
    energy: Vec<f64>,
    crossings: Vec<u32>,
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
            energy: vec![0.0; window_len + 1],
            crossings: vec![0; window_len.max(1)],
            stft,
        })
    }

    /// Fills the prefix sums: `energy[i]` = sum of squares of samples before
    /// `i`; `crossings[i]` = sign changes between consecutive samples up to `i`
    /// (librosa's rule: |x| <= 1e-10 counts as 0, and 0 as positive).
    fn prefix_sums(&mut self, window: &[f32]) {
        let mut e = 0.0f64;
        self.energy[0] = 0.0;
        for (i, &x) in window.iter().enumerate() {
            e += f64::from(x) * f64::from(x);
            self.energy[i + 1] = e;
        }
        let negative = |v: f32| v < -ZC_THRESHOLD;
        let mut c = 0u32;
        self.crossings[0] = 0;
        for i in 1..window.len() {
            c += u32::from(negative(window[i]) != negative(window[i - 1]));
            self.crossings[i] = c;
        }
    }

    /// RMS of centred frame `t`, zero-padded by n_fft/2 on both sides.
    fn frame_rms(&self, t: usize, n: usize) -> f64 {
        let start = (t * HOP).saturating_sub(N_FFT / 2).min(n);
        let end = (t * HOP + N_FFT / 2).min(n);
        ((self.energy[end] - self.energy[start]).max(0.0) / N_FFT as f64).sqrt()
    }

    /// Zero-crossing rate of centred frame `t`, padded by repeating the edge
    /// samples (which adds no crossings).
    fn frame_zcr(&self, t: usize, n: usize) -> f64 {
        let first = (t * HOP).saturating_sub(N_FFT / 2).min(n - 1);
        let last = (t * HOP + N_FFT / 2 - 1).min(n - 1);
        f64::from(self.crossings[last] - self.crossings[first]) / N_FFT as f64
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
        self.prefix_sums(window);
        let (mut chroma, mut rms, mut centroid, mut bandwidth, mut rolloff, mut zcr) =
            (0.0, 0.0, 0.0, 0.0, 0.0, 0.0);
        let mut db_max = f32::NEG_INFINITY;
        for t in 0..frames {
            let power = self.stft.power_frame(t);
            let mag = self.stft.magnitude_frame(t);

            // Chroma: filter bank on power, each frame scaled to max 1.
            let mut raw = [0.0f32; N_CHROMA];
            for (r, fb) in raw.iter_mut().zip(&self.chroma) {
                *r = dot(fb, power);
            }
            let peak = raw.iter().fold(0.0f32, |m, &v| m.max(v.abs()));
            let norm = if peak < f32::MIN_POSITIVE { 1.0 } else { peak };
            chroma += raw.iter().map(|&v| f64::from(v / norm)).sum::<f64>();

            rms += self.frame_rms(t, window.len());
            zcr += self.frame_zcr(t, window.len());

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
        for db in &mut self.mel_db[..frames * N_MELS] {
            *db = db.max(floor);
        }
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
        out[5] = (zcr / n) as f32;
        for (o, m) in out[6..].iter_mut().zip(mfcc) {
            *o = (m / n) as f32;
        }
    }
}
