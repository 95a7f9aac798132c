//! Filter banks with librosa's definitions: Slaney mel filters, chroma
//! filters, and the orthonormal DCT-II used for MFCC.

/// Centre frequency of every FFT bin.
pub fn fft_frequencies(sr: f64, n_fft: usize) -> Vec<f64> {
    (0..=n_fft / 2)
        .map(|k| k as f64 * sr / n_fft as f64)
        .collect()
}

const F_SP: f64 = 200.0 / 3.0;
const MIN_LOG_HZ: f64 = 1000.0;
const MIN_LOG_MEL: f64 = MIN_LOG_HZ / F_SP;

fn logstep() -> f64 {
    6.4f64.ln() / 27.0
}

/// Slaney's mel scale (librosa `hz_to_mel`, `htk=False`).
pub fn hz_to_mel(f: f64) -> f64 {
    if f >= MIN_LOG_HZ {
        MIN_LOG_MEL + (f / MIN_LOG_HZ).ln() / logstep()
    } else {
        f / F_SP
    }
}

pub fn mel_to_hz(m: f64) -> f64 {
    if m >= MIN_LOG_MEL {
        MIN_LOG_HZ * (logstep() * (m - MIN_LOG_MEL)).exp()
    } else {
        F_SP * m
    }
}

/// One mel filter: its first non-zero bin and weights from there on.
/// Σ f(aᵢ, bᵢ) over the common length, in eight independent lanes so the
/// compiler can vectorise it (a plain `sum()` of `f32` must keep its
/// sequential order).
#[inline(always)]
pub fn lane_sum(a: &[f32], b: &[f32], f: impl Fn(f32, f32) -> f32) -> f32 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut lanes = [0.0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for k in 0..8 {
            lanes[k] += f(x[k], y[k]);
        }
    }
    let tail: f32 = ra.iter().zip(rb).map(|(&x, &y)| f(x, y)).sum();
    lanes.iter().sum::<f32>() + tail
}

#[inline(always)]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    lane_sum(a, b, |x, y| x * y)
}

pub struct SparseFilter {
    pub start: usize,
    pub weights: Vec<f32>,
}

impl SparseFilter {
    #[inline]
    pub fn apply(&self, spectrum: &[f32]) -> f32 {
        dot(&self.weights, &spectrum[self.start..])
    }
}

/// librosa `filters.mel(sr, n_fft, n_mels, fmin=0, fmax=sr/2, norm="slaney")`.
pub fn mel_filters(sr: f64, n_fft: usize, n_mels: usize) -> Vec<SparseFilter> {
    let fftfreqs = fft_frequencies(sr, n_fft);
    let (lo, hi) = (hz_to_mel(0.0), hz_to_mel(sr / 2.0));
    let mel_f: Vec<f64> = (0..n_mels + 2)
        .map(|i| mel_to_hz(lo + (hi - lo) * i as f64 / (n_mels + 1) as f64))
        .collect();
    (0..n_mels)
        .map(|i| {
            let enorm = 2.0 / (mel_f[i + 2] - mel_f[i]);
            let dense: Vec<f64> = fftfreqs
                .iter()
                .map(|&f| {
                    let lower = (f - mel_f[i]) / (mel_f[i + 1] - mel_f[i]);
                    let upper = (mel_f[i + 2] - f) / (mel_f[i + 2] - mel_f[i + 1]);
                    lower.min(upper).max(0.0) * enorm
                })
                .collect();
            let start = dense.iter().position(|&w| w > 0.0).unwrap_or(0);
            let end = dense
                .iter()
                .rposition(|&w| w > 0.0)
                .map_or(start, |e| e + 1);
            SparseFilter {
                start,
                weights: dense[start..end].iter().map(|&w| w as f32).collect(),
            }
        })
        .collect()
}

/// librosa `filters.chroma(sr, n_fft, n_chroma=12, tuning, ctroct=5,
/// octwidth=2, norm=2, base_c=True)`, as `n_chroma` rows of `n_fft/2+1`.
pub fn chroma_filters(sr: f64, n_fft: usize, n_chroma: usize, tuning: f64) -> Vec<Vec<f32>> {
    let nc = n_chroma as f64;
    let a440 = 440.0 * 2f64.powf(tuning / nc);
    let mut frqbins: Vec<f64> = (1..n_fft)
        .map(|k| nc * (k as f64 * sr / n_fft as f64 / (a440 / 16.0)).log2())
        .collect();
    frqbins.insert(0, frqbins[0] - 1.5 * nc);
    let mut binwidth: Vec<f64> = frqbins.windows(2).map(|w| (w[1] - w[0]).max(1.0)).collect();
    binwidth.push(1.0);
    let half = (nc / 2.0).round();
    let mut wts = vec![vec![0.0f64; n_fft]; n_chroma];
    for (c, row) in wts.iter_mut().enumerate() {
        for (k, w) in row.iter_mut().enumerate() {
            let d = (frqbins[k] - c as f64 + half + 10.0 * nc).rem_euclid(nc) - half;
            *w = (-0.5 * (2.0 * d / binwidth[k]).powi(2)).exp();
        }
    }
    // Normalise each column (FFT bin) to unit L2 norm, then weight octaves.
    for k in 0..n_fft {
        let norm = wts.iter().map(|r| r[k] * r[k]).sum::<f64>().sqrt();
        let oct = (-0.5 * ((frqbins[k] / nc - 5.0) / 2.0).powi(2)).exp();
        for row in wts.iter_mut() {
            if norm > f64::MIN_POSITIVE {
                row[k] /= norm;
            }
            row[k] *= oct;
        }
    }
    // base_c: roll so that row 0 is C.
    wts.rotate_left(3 * (n_chroma / 12));
    wts.into_iter()
        .map(|row| row[..n_fft / 2 + 1].iter().map(|&w| w as f32).collect())
        .collect()
}

/// Rows of the orthonormal DCT-II (scipy `dct(type=2, norm="ortho")`),
/// the first `n_out` coefficients of an `n_in`-point transform.
pub fn dct_ortho(n_out: usize, n_in: usize) -> Vec<Vec<f32>> {
    let n = n_in as f64;
    (0..n_out)
        .map(|k| {
            let scale = if k == 0 {
                (1.0 / n).sqrt()
            } else {
                (2.0 / n).sqrt()
            };
            (0..n_in)
                .map(|i| {
                    (scale
                        * (std::f64::consts::PI * k as f64 * (2.0 * i as f64 + 1.0) / (2.0 * n))
                            .cos()) as f32
                })
                .collect()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slaney_mel_scale_round_trips_and_is_linear_below_1khz() {
        assert!((hz_to_mel(500.0) - 7.5).abs() < 1e-12);
        assert!((hz_to_mel(1000.0) - 15.0).abs() < 1e-12);
        for f in [0.0, 123.0, 999.0, 1000.0, 4321.0, 11025.0] {
            assert!((mel_to_hz(hz_to_mel(f)) - f).abs() < 1e-6);
        }
    }

    #[test]
    fn dct_rows_are_orthonormal() {
        let d = dct_ortho(20, 128);
        for a in 0..20 {
            for b in 0..20 {
                let dot: f64 = d[a].iter().zip(&d[b]).map(|(x, y)| f64::from(x * y)).sum();
                let want = if a == b { 1.0 } else { 0.0 };
                assert!((dot - want).abs() < 1e-5, "rows {a},{b}: {dot}");
            }
        }
    }
}
