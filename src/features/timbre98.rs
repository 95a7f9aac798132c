//! `timbre98`: 98 numbers per window that keep what `seed26`'s plain means
//! throw away: how the timbre moves (deviations over the window's frames),
//! its attack and vibrato (MFCC deltas), which pitch classes sound (all 12
//! chroma bins) and how peaky each octave is (spectral contrast). Every
//! per-frame quantity is librosa 0.11's, at its defaults (n_fft 2048, hop
//! 512, Hann, centred, 128 Slaney mel bands, `top_db` 80, chroma with
//! `tuning=0`); a window's statistic is numpy's mean or `std` (ddof 0) over
//! its frames:
//! - `mfcc_mean1..20`, `mfcc_std1..20`: `feature.mfcc(n_mfcc=20)`;
//! - `mfcc_delta_std1..20`: `feature.delta(mfcc)` (width 9, interp edges);
//! - `chroma_c..chroma_b`: means of `feature.chroma_stft`, bin by bin;
//! - `contrast_mean1..7`, `contrast_std1..7`: `feature.spectral_contrast`
//!   (6 octave bands from 200 Hz and the rest above, quantile 0.02, dB);
//! - `rms`, `zcr`, `centroid`, `bandwidth`, `rolloff` (0.85) and `flatness`
//!   (`feature.spectral_flatness`), each `_mean` and `_std`.

use super::filters::dct_ortho;
use super::frame::{db_floor, FrameAnalyser, DB_PER_NEPER, N_CHROMA};
use super::{FeatureSet, SetShape};
use std::ops::Range;

pub const NAME: &str = "timbre98";
pub const SAMPLE_RATE: u32 = 22050;
const N_FFT: usize = 2048;
const HOP: usize = 512;
pub(super) const N_MELS: usize = 128;
const N_MFCC: usize = 20;
const TOP_DB: f32 = 80.0;
const AMIN: f32 = 1e-10;
/// Spectral contrast: `n_bands` octaves from `fmin`, plus the band below.
const CONTRAST_FMIN: f64 = 200.0;
const CONTRAST_OCTAVES: usize = 6;
const N_CONTRAST: usize = CONTRAST_OCTAVES + 1;
const CONTRAST_QUANTILE: f64 = 0.02;
/// `feature.delta`'s default Savitzky–Golay width.
const DELTA_WIDTH: usize = 9;

/// Per-frame record.
const RMS: usize = 0;
const ZCR: usize = 1;
const CENTROID: usize = 2;
const BANDWIDTH: usize = 3;
const ROLLOFF: usize = 4;
const FLATNESS: usize = 5;
const CHROMA: usize = 6;
const PEAK_DB: usize = CHROMA + N_CHROMA;
const VALLEY_DB: usize = PEAK_DB + N_CONTRAST;
/// Where a frame record holds its mel bands in dB (`pair.rs` reads them).
pub(super) const MEL_DB: usize = VALLEY_DB + N_CONTRAST;
pub(super) const RECORD: usize = MEL_DB + N_MELS;

/// Output layout.
const OUT_MFCC_MEAN: usize = 0;
const OUT_MFCC_STD: usize = OUT_MFCC_MEAN + N_MFCC;
const OUT_DELTA_STD: usize = OUT_MFCC_STD + N_MFCC;
const OUT_CHROMA: usize = OUT_DELTA_STD + N_MFCC;
const OUT_CONTRAST_MEAN: usize = OUT_CHROMA + N_CHROMA;
const OUT_CONTRAST_STD: usize = OUT_CONTRAST_MEAN + N_CONTRAST;
const OUT_SCALARS: usize = OUT_CONTRAST_STD + N_CONTRAST;
/// The scalars, in output order, with the record slot each comes from.
const SCALARS: [(&str, usize); 6] = [
    ("rms", RMS),
    ("zcr", ZCR),
    ("centroid", CENTROID),
    ("bandwidth", BANDWIDTH),
    ("rolloff", ROLLOFF),
    ("flatness", FLATNESS),
];
const LEN: usize = OUT_SCALARS + 2 * SCALARS.len();

const PITCH_CLASSES: [&str; N_CHROMA] = [
    "c", "c#", "d", "d#", "e", "f", "f#", "g", "g#", "a", "a#", "b",
];

/// One band of the spectral contrast: the FFT bins it sorts, and how many
/// of the lowest and highest it averages.
struct ContrastBand {
    bins: Range<usize>,
    take: usize,
}

/// The `k` lowest of `values` into `low` and the `k` highest into `high`,
/// each in ascending order, as sorting `values` and taking its ends would
/// give them (`k` at most `values.len()`). Most values are turned away by
/// one comparison with the current bound; the rest are inserted in place.
fn extremes(values: &[f32], k: usize, low: &mut Vec<f32>, high: &mut Vec<f32>) {
    use std::cmp::Ordering::{Greater, Less};
    low.clear();
    high.clear();
    if k == 0 {
        return;
    }
    for &v in values {
        // `low` ascending: its last is the highest kept.
        if low.len() < k || v.total_cmp(&low[k - 1]) == Less {
            if low.len() == k {
                low.pop();
            }
            let at = low.partition_point(|x| x.total_cmp(&v) != Greater);
            low.insert(at, v);
        }
        // `high` ascending: its first is the lowest kept.
        if high.len() < k || v.total_cmp(&high[0]) == Greater {
            if high.len() == k {
                high.remove(0);
            }
            let at = high.partition_point(|x| x.total_cmp(&v) != Greater);
            high.insert(at, v);
        }
    }
}

/// librosa's band edges: bins with `f_low <= f <= f_high`, plus the bin
/// below for every band but the first and every bin above for the last;
/// every band but the last then drops its top bin. `take` is the quantile
/// of the band's size before that drop, rounded half to even, at least 1.
fn contrast_bands(freqs: &[f32]) -> Vec<ContrastBand> {
    let mut edges = vec![0.0f64];
    edges.extend((0..=CONTRAST_OCTAVES).map(|k| CONTRAST_FMIN * 2f64.powi(k as i32)));
    edges
        .windows(2)
        .enumerate()
        .map(|(k, e)| {
            let inside: Vec<usize> = freqs
                .iter()
                .enumerate()
                .filter(|(_, &f)| f64::from(f) >= e[0] && f64::from(f) <= e[1])
                .map(|(i, _)| i)
                .collect();
            let mut lo = inside[0];
            let mut hi = inside[inside.len() - 1] + 1;
            if k > 0 {
                lo -= 1;
            }
            if k == CONTRAST_OCTAVES {
                hi = freqs.len();
            }
            let take = ((CONTRAST_QUANTILE * (hi - lo) as f64).round_ties_even() as usize).max(1);
            if k < CONTRAST_OCTAVES {
                hi -= 1;
            }
            ContrastBand { bins: lo..hi, take }
        })
        .collect()
}

pub struct Timbre98 {
    shape: SetShape,
    frame: FrameAnalyser,
    /// The MFCC's DCT, band by band (see `mfcc`).
    dct_by_band: Vec<[f64; N_MFCC]>,
    bands: Vec<ContrastBand>,
    /// One band's lowest and highest magnitudes in one frame (scratch).
    low: Vec<f32>,
    high: Vec<f32>,
    /// A window's MFCC, frame after frame; grows to the window's frame
    /// count on the first window and is reused after.
    mfcc: Vec<f32>,
    /// One coefficient over the window's frames, and its deltas (reused
    /// likewise).
    series: Vec<f32>,
    delta: Vec<f32>,
}

impl Default for Timbre98 {
    fn default() -> Self {
        Self::new()
    }
}

impl Timbre98 {
    pub fn new() -> Self {
        let mut names = Vec::with_capacity(LEN);
        names.extend((1..=N_MFCC).map(|i| format!("mfcc_mean{i}")));
        names.extend((1..=N_MFCC).map(|i| format!("mfcc_std{i}")));
        names.extend((1..=N_MFCC).map(|i| format!("mfcc_delta_std{i}")));
        names.extend(PITCH_CLASSES.iter().map(|p| format!("chroma_{p}")));
        names.extend((1..=N_CONTRAST).map(|i| format!("contrast_mean{i}")));
        names.extend((1..=N_CONTRAST).map(|i| format!("contrast_std{i}")));
        for (s, _) in SCALARS {
            names.push(format!("{s}_mean"));
            names.push(format!("{s}_std"));
        }
        assert_eq!(names.len(), LEN);
        let frame = FrameAnalyser::new(SAMPLE_RATE, N_FFT, N_MELS);
        let bands = contrast_bands(&frame.freqs);
        let most = bands.iter().map(|b| b.take).max().unwrap_or(0);
        Timbre98 {
            shape: SetShape {
                name: NAME,
                names,
                frame_len: N_FFT,
                frame_hop: HOP,
                record_len: RECORD,
            },
            frame,
            dct_by_band: by_band(&dct_ortho(N_MFCC, N_MELS)),
            bands,
            low: Vec::with_capacity(most),
            high: Vec::with_capacity(most),
            mfcc: Vec::new(),
            series: Vec::new(),
            delta: Vec::new(),
        }
    }
}

/// `feature.mfcc` of one frame: the orthonormal DCT of its mel dB, each
/// raised to `floor`. `by_band` holds the DCT's f32 weights band by band.
/// Each coefficient is summed in f64 from the lowest band up, one rounding
/// per product and per sum (what a dot product of the basis with the bands
/// gives); the 20 sums run side by side, which the compiler vectorises.
fn mfcc(by_band: &[[f64; N_MFCC]], mel_db: &[f32], floor: f32, out: &mut [f32]) {
    // -0.0 is the f64 sum's neutral element, as in `Iterator::sum`.
    let mut acc = [-0.0f64; N_MFCC];
    for (w, &d) in by_band.iter().zip(mel_db) {
        let d = f64::from(if d > floor { d } else { floor });
        for (a, &w) in acc.iter_mut().zip(w) {
            *a += w * d;
        }
    }
    for (o, a) in out.iter_mut().zip(acc) {
        *o = a as f32;
    }
}

/// A DCT's rows (one per coefficient) turned into one row per band.
fn by_band(dct: &[Vec<f32>]) -> Vec<[f64; N_MFCC]> {
    (0..N_MELS)
        .map(|j| std::array::from_fn(|c| f64::from(dct[c][j])))
        .collect()
}

/// Mean and population standard deviation, two-pass in f64.
fn mean_std(values: impl Iterator<Item = f32> + Clone) -> (f32, f32) {
    let (mut n, mut sum) = (0usize, 0.0f64);
    for v in values.clone() {
        n += 1;
        sum += f64::from(v);
    }
    if n == 0 {
        return (0.0, 0.0);
    }
    let mean = sum / n as f64;
    let var = values.map(|v| (f64::from(v) - mean).powi(2)).sum::<f64>() / n as f64;
    (mean as f32, var.sqrt() as f32)
}

/// `feature.delta(width=9, mode="interp")` of one series: the Savitzky–Golay
/// first derivative of order 1, which is the least-squares slope over the
/// 9 frames centred on each frame; the first and last 4 frames take the
/// slope of the first and last 9 (scipy's `interp` edges fit one line
/// there). A series shorter than 9 frames gets the slope of all of it.
fn delta(series: &[f32], out: &mut [f32]) {
    let n = series.len();
    let slope = |s: &[f32]| -> f32 {
        let centre = (s.len() as f64 - 1.0) / 2.0;
        let (num, den) = s
            .iter()
            .enumerate()
            .fold((0.0f64, 0.0f64), |(num, den), (i, &y)| {
                let x = i as f64 - centre;
                (num + x * f64::from(y), den + x * x)
            });
        if den > 0.0 {
            (num / den) as f32
        } else {
            0.0
        }
    };
    if n < DELTA_WIDTH {
        out.fill(slope(series));
        return;
    }
    let half = DELTA_WIDTH / 2;
    for t in half..n - half {
        out[t] = slope(&series[t - half..=t + half]);
    }
    let (first, last) = (out[half], out[n - half - 1]);
    out[..half].fill(first);
    out[n - half..].fill(last);
}

impl FeatureSet for Timbre98 {
    fn shape(&self) -> &SetShape {
        &self.shape
    }

    fn analyse_frame(&mut self, frame: &[f32], valid: Range<usize>, record: &mut [f32]) {
        assert_eq!(record.len(), RECORD);
        let b = self.frame.analyse(frame, valid, &mut record[MEL_DB..]);
        record[RMS] = b.rms;
        record[ZCR] = b.zcr;
        record[CENTROID] = b.centroid;
        record[BANDWIDTH] = b.bandwidth;
        record[ROLLOFF] = b.rolloff;
        record[CHROMA..PEAK_DB].copy_from_slice(&b.chroma);

        // Flatness: geometric over arithmetic mean of the power, floored.
        let power = &self.frame.spectrum.power;
        let (mut log_sum, mut sum) = (0.0f64, 0.0f64);
        for &p in power {
            let p = p.max(AMIN);
            log_sum += f64::from(p.ln());
            sum += f64::from(p);
        }
        let bins = power.len() as f64;
        record[FLATNESS] = ((log_sum / bins).exp() / (sum / bins)) as f32;

        // Contrast: mean of the band's quietest and loudest bins, in dB
        // (floored per window in `summarise`).
        let mag = &self.frame.spectrum.magnitude;
        for (k, band) in self.bands.iter().enumerate() {
            // Only the `take` lowest and highest are needed, in sorted order
            // (the order they are summed in): gathering them in one pass
            // gives the very numbers a full sort would, in a fraction of
            // its time.
            extremes(
                &mag[band.bins.clone()],
                band.take,
                &mut self.low,
                &mut self.high,
            );
            let mean = |s: &[f32]| s.iter().map(|&v| f64::from(v)).sum::<f64>() / s.len() as f64;
            let valley = mean(&self.low) as f32;
            let peak = mean(&self.high) as f32;
            record[PEAK_DB + k] = DB_PER_NEPER * peak.max(AMIN).ln();
            record[VALLEY_DB + k] = DB_PER_NEPER * valley.max(AMIN).ln();
        }
    }

    fn summarise(&mut self, records: &[f32], out: &mut [f32]) {
        assert_eq!(out.len(), LEN);
        let frames = records.len() / RECORD;
        let rows = || records.chunks_exact(RECORD);

        // MFCC per frame, from mel dB floored at the window's top_db.
        let floor = db_floor(records, RECORD, MEL_DB..RECORD, TOP_DB);
        self.mfcc.resize(frames * N_MFCC, 0.0);
        for (r, m) in rows().zip(self.mfcc.chunks_exact_mut(N_MFCC)) {
            mfcc(&self.dct_by_band, &r[MEL_DB..], floor, m);
        }
        self.series.resize(frames, 0.0);
        self.delta.resize(frames, 0.0);
        for c in 0..N_MFCC {
            for (s, m) in self.series.iter_mut().zip(self.mfcc.chunks_exact(N_MFCC)) {
                *s = m[c];
            }
            let (mean, std) = mean_std(self.series.iter().copied());
            out[OUT_MFCC_MEAN + c] = mean;
            out[OUT_MFCC_STD + c] = std;
            delta(&self.series, &mut self.delta);
            out[OUT_DELTA_STD + c] = mean_std(self.delta.iter().copied()).1;
        }

        for i in 0..N_CHROMA {
            let (mean, _) = mean_std(rows().map(|r| r[CHROMA + i]));
            out[OUT_CHROMA + i] = mean;
        }

        let peak_floor = db_floor(records, RECORD, PEAK_DB..VALLEY_DB, TOP_DB);
        let valley_floor = db_floor(records, RECORD, VALLEY_DB..MEL_DB, TOP_DB);
        for k in 0..N_CONTRAST {
            let (mean, std) = mean_std(
                rows().map(|r| r[PEAK_DB + k].max(peak_floor) - r[VALLEY_DB + k].max(valley_floor)),
            );
            out[OUT_CONTRAST_MEAN + k] = mean;
            out[OUT_CONTRAST_STD + k] = std;
        }

        for (i, (_, slot)) in SCALARS.iter().enumerate() {
            let (mean, std) = mean_std(rows().map(|r| r[*slot]));
            out[OUT_SCALARS + 2 * i] = mean;
            out[OUT_SCALARS + 2 * i + 1] = std;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extremes_are_the_ends_of_the_sorted_values() {
        // A pseudo-random series with ties, of every length and k.
        let mut x = 12345u32;
        let values: Vec<f32> = (0..300)
            .map(|_| {
                x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
                ((x >> 16) % 97) as f32 * 0.25
            })
            .collect();
        let (mut low, mut high) = (Vec::new(), Vec::new());
        for n in [1, 2, 7, 50, 300] {
            let mut sorted = values[..n].to_vec();
            sorted.sort_by(f32::total_cmp);
            for k in [1, 2, 5, n / 2, n] {
                if k == 0 || k > n {
                    continue;
                }
                extremes(&values[..n], k, &mut low, &mut high);
                assert_eq!(low, sorted[..k], "n {n} k {k}");
                assert_eq!(high, sorted[n - k..], "n {n} k {k}");
            }
        }
    }

    #[test]
    fn delta_is_the_slope_of_a_line_and_flat_at_the_edges() {
        let line: Vec<f32> = (0..20).map(|i| 3.0 * i as f32 - 7.0).collect();
        let mut d = vec![0.0; 20];
        delta(&line, &mut d);
        assert!(d.iter().all(|&v| (v - 3.0).abs() < 1e-5), "{d:?}");
        // A step: the edges copy their nearest full-width slope.
        let step: Vec<f32> = (0..20).map(|i| if i < 10 { 0.0 } else { 1.0 }).collect();
        delta(&step, &mut d);
        assert_eq!(d[0], d[4]);
        assert_eq!(d[19], d[15]);
        assert!(d[9] > d[5] && d[9] > 0.0);
        // Shorter than the width: one slope for all.
        let mut short = [0.0f32; 3];
        delta(&[1.0, 2.0, 3.0], &mut short);
        assert_eq!(short, [1.0, 1.0, 1.0]);
    }

    #[test]
    fn mfcc_sums_each_coefficient_as_a_dot_product_would() {
        // Features the shipped models were trained on came from the dot
        // product of each DCT row with the floored bands; the side-by-side
        // sums must give the same bits, floored bands or not.
        let rows = dct_ortho(N_MFCC, N_MELS);
        let by_band = by_band(&rows);
        let mut state = 12345u32;
        let mut db = || {
            state = state.wrapping_mul(1664525).wrapping_add(1013904223);
            (state >> 8) as f32 / (1u32 << 24) as f32 * 120.0 - 100.0
        };
        for floor in [f32::NEG_INFINITY, -60.0, 0.0] {
            let mel: Vec<f32> = (0..N_MELS).map(|_| db()).collect();
            let mut got = [0.0f32; N_MFCC];
            mfcc(&by_band, &mel, floor, &mut got);
            for (c, row) in rows.iter().enumerate() {
                let dot = row
                    .iter()
                    .zip(&mel)
                    .map(|(&w, &d)| f64::from(w) * f64::from(d.max(floor)))
                    .sum::<f64>() as f32;
                assert_eq!(
                    got[c].to_bits(),
                    dot.to_bits(),
                    "coefficient {c}, floor {floor}"
                );
            }
        }
    }

    #[test]
    fn contrast_bands_follow_librosas_edges() {
        let t = Timbre98::new();
        let b = &t.bands;
        assert_eq!(b.len(), N_CONTRAST);
        // 22050 Hz, 2048 points: 10.77 Hz per bin; 200 Hz lies in bin 18.57.
        assert_eq!(b[0].bins, 0..18);
        assert_eq!(b[1].bins.start, 18);
        // The last band runs to Nyquist, and each band starts where the
        // one below ends.
        assert_eq!(b[N_CONTRAST - 1].bins.end, N_FFT / 2 + 1);
        for w in b.windows(2) {
            assert_eq!(w[0].bins.end, w[1].bins.start);
        }
        assert!(b.iter().all(|band| band.take >= 1));
    }
}
