//! The spectrum of one frame with librosa's conventions: periodic Hann
//! window, real FFT, magnitude and power per bin. The FFT plan, the window
//! and every buffer are made once in `new`.

use realfft::num_complex::Complex;
use realfft::{RealFftPlanner, RealToComplex};
use std::sync::Arc;

pub struct FrameSpectrum {
    pub n_fft: usize,
    pub n_bins: usize,
    window: Vec<f32>,
    fft: Arc<dyn RealToComplex<f32>>,
    windowed: Vec<f32>,
    spectrum: Vec<Complex<f32>>,
    scratch: Vec<Complex<f32>>,
    /// |X| per bin.
    pub magnitude: Vec<f32>,
    /// |X|² per bin.
    pub power: Vec<f32>,
}

impl FrameSpectrum {
    pub fn new(n_fft: usize) -> Self {
        let fft = RealFftPlanner::<f32>::new().plan_fft_forward(n_fft);
        let n_bins = n_fft / 2 + 1;
        let window = (0..n_fft)
            .map(|n| {
                (0.5 - 0.5 * (2.0 * std::f64::consts::PI * n as f64 / n_fft as f64).cos()) as f32
            })
            .collect();
        FrameSpectrum {
            n_fft,
            n_bins,
            window,
            spectrum: fft.make_output_vec(),
            scratch: fft.make_scratch_vec(),
            fft,
            windowed: vec![0.0; n_fft],
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
        for ((w, &x), &h) in self.windowed.iter_mut().zip(frame).zip(&self.window) {
            *w = x * h;
        }
        self.fft
            .process_with_scratch(&mut self.windowed, &mut self.spectrum, &mut self.scratch)
            .expect("buffers are sized by the plan");
        for ((c, p), m) in self
            .spectrum
            .iter()
            .zip(&mut self.power)
            .zip(&mut self.magnitude)
        {
            *p = c.re * c.re + c.im * c.im;
            *m = p.sqrt();
        }
    }
}
