//! The spectrum of one frame with librosa's conventions: periodic Hann
//! window, real FFT, magnitude and power per bin. The FFT plan, the window,
//! the twiddles and every buffer are made once in `new`.
//!
//! The real FFT is one complex FFT of half the length from rustfft's scalar
//! planner, unpacked here. The SIMD planners (AVX, SSE, NEON) each order
//! their arithmetic differently, so x86 and ARM would round differently and
//! a tree split of the forest could flip between them; the scalar path is
//! the same on every machine, and costs about 5 µs more per frame on x86.

use rustfft::num_complex::Complex;
use rustfft::{Fft, FftPlannerScalar};
use std::sync::Arc;

pub struct FrameSpectrum {
    pub n_fft: usize,
    window: Vec<f32>,
    fft: Arc<dyn Fft<f32>>,
    /// exp(-2πik/n) for k in 0..n/2, for the unpacking.
    twiddles: Vec<Complex<f32>>,
    /// The windowed frame packed as n/2 complex numbers: even samples real,
    /// odd samples imaginary, transformed in place.
    packed: Vec<Complex<f32>>,
    scratch: Vec<Complex<f32>>,
    /// |X| per bin.
    pub magnitude: Vec<f32>,
    /// |X|² per bin.
    pub power: Vec<f32>,
}

impl FrameSpectrum {
    /// `n_fft` must be even (librosa's are powers of two).
    pub fn new(n_fft: usize) -> Self {
        assert!(
            n_fft >= 2 && n_fft % 2 == 0,
            "the real FFT needs an even length"
        );
        let half = n_fft / 2;
        let fft = FftPlannerScalar::<f32>::new().plan_fft_forward(half);
        let n_bins = half + 1;
        let window = (0..n_fft)
            .map(|n| {
                (0.5 - 0.5 * (2.0 * std::f64::consts::PI * n as f64 / n_fft as f64).cos()) as f32
            })
            .collect();
        let twiddles = (0..half)
            .map(|k| {
                let angle = -2.0 * std::f64::consts::PI * k as f64 / n_fft as f64;
                Complex::new(angle.cos() as f32, angle.sin() as f32)
            })
            .collect();
        FrameSpectrum {
            n_fft,
            window,
            twiddles,
            packed: vec![Complex::new(0.0, 0.0); half],
            scratch: vec![Complex::new(0.0, 0.0); fft.get_inplace_scratch_len()],
            fft,
            magnitude: vec![0.0; n_bins],
            power: vec![0.0; n_bins],
        }
    }

    /// Computes magnitude and power of `frame` (of `n_fft` samples).
    pub fn compute(&mut self, frame: &[f32]) {
        assert_eq!(
            frame.len(),
            self.n_fft,
            "spectrum planned for another length"
        );
        for ((z, x), h) in self
            .packed
            .iter_mut()
            .zip(frame.chunks_exact(2))
            .zip(self.window.chunks_exact(2))
        {
            *z = Complex::new(x[0] * h[0], x[1] * h[1]);
        }
        self.fft
            .process_with_scratch(&mut self.packed, &mut self.scratch);
        // With Z the transform of the packed frame and m = n/2, the frame's
        // transform is X[k] = E[k] + W^k·O[k], where E[k] = (Z[k] + Z*[m-k])/2
        // is the even samples' transform and O[k] = -i(Z[k] - Z*[m-k])/2 the
        // odd samples'; Z[m] = Z[0].
        let half = self.packed.len();
        let z0 = self.packed[0];
        self.set_bin(0, Complex::new(z0.re + z0.im, 0.0));
        self.set_bin(half, Complex::new(z0.re - z0.im, 0.0));
        for k in 1..half {
            let a = self.packed[k];
            let b = self.packed[half - k].conj();
            let even = (a + b) * 0.5;
            let diff = (a - b) * 0.5;
            let odd = Complex::new(diff.im, -diff.re);
            self.set_bin(k, even + self.twiddles[k] * odd);
        }
    }

    fn set_bin(&mut self, k: usize, x: Complex<f32>) {
        let p = x.re * x.re + x.im * x.im;
        self.power[k] = p;
        self.magnitude[k] = p.sqrt();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The unpacked half-length transform equals a direct DFT, computed in
    /// f64, to single precision.
    #[test]
    fn matches_a_direct_dft() {
        let n = 64;
        let frame: Vec<f32> = (0..n)
            .map(|i| ((i * 7919 % 61) as f32 - 30.0) / 17.0 + (i as f32 * 0.3).sin())
            .collect();
        let mut s = FrameSpectrum::new(n);
        s.compute(&frame);
        for k in 0..=n / 2 {
            let (mut re, mut im) = (0.0f64, 0.0f64);
            for (i, &x) in frame.iter().enumerate() {
                let w = 0.5 - 0.5 * (2.0 * std::f64::consts::PI * i as f64 / n as f64).cos();
                let angle = -2.0 * std::f64::consts::PI * (k * i) as f64 / n as f64;
                re += x as f64 * w * angle.cos();
                im += x as f64 * w * angle.sin();
            }
            let power = re * re + im * im;
            let got = s.power[k] as f64;
            assert!(
                (got - power).abs() <= 1e-5 * power.max(1.0),
                "bin {k}: {got} vs {power}"
            );
            assert_eq!(s.magnitude[k], s.power[k].sqrt());
        }
    }
}
