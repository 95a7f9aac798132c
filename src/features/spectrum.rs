//! Short-time Fourier transform with librosa's conventions: periodic Hann
//! window, centred frames with zero padding of `n_fft / 2` on both sides.
//! The FFT plan, window and every buffer are made once in `new`.

use realfft::num_complex::Complex;
use realfft::{RealFftPlanner, RealToComplex};
use std::sync::Arc;

pub struct Stft {
    pub n_fft: usize,
    pub hop: usize,
    pub n_bins: usize,
    pub n_frames: usize,
    window: Vec<f32>,
    fft: Arc<dyn RealToComplex<f32>>,
    /// The signal with centre padding.
    padded: Vec<f32>,
    frame: Vec<f32>,
    spectrum: Vec<Complex<f32>>,
    scratch: Vec<Complex<f32>>,
    /// |X|, frames × bins, row-major.
    pub magnitude: Vec<f32>,
    /// |X|², frames × bins, row-major.
    pub power: Vec<f32>,
}

impl Stft {
    /// Plans an STFT for signals of exactly `signal_len` samples.
    pub fn new(n_fft: usize, hop: usize, signal_len: usize) -> Self {
        let fft = RealFftPlanner::<f32>::new().plan_fft_forward(n_fft);
        let n_bins = n_fft / 2 + 1;
        let n_frames = 1 + signal_len / hop;
        let window = (0..n_fft)
            .map(|n| {
                (0.5 - 0.5 * (2.0 * std::f64::consts::PI * n as f64 / n_fft as f64).cos()) as f32
            })
            .collect();
        Stft {
            n_fft,
            hop,
            n_bins,
            n_frames,
            window,
            spectrum: fft.make_output_vec(),
            scratch: fft.make_scratch_vec(),
            fft,
            padded: vec![0.0; signal_len + n_fft],
            frame: vec![0.0; n_fft],
            magnitude: vec![0.0; n_frames * n_bins],
            power: vec![0.0; n_frames * n_bins],
        }
    }

    pub fn magnitude_frame(&self, t: usize) -> &[f32] {
        &self.magnitude[t * self.n_bins..(t + 1) * self.n_bins]
    }

    pub fn power_frame(&self, t: usize) -> &[f32] {
        &self.power[t * self.n_bins..(t + 1) * self.n_bins]
    }

    /// Computes magnitude and power spectra of `signal`.
    pub fn compute(&mut self, signal: &[f32]) {
        let pad = self.n_fft / 2;
        assert_eq!(
            signal.len() + self.n_fft,
            self.padded.len(),
            "STFT planned for another length"
        );
        self.padded[pad..pad + signal.len()].copy_from_slice(signal);
        for t in 0..self.n_frames {
            let start = t * self.hop;
            for ((f, &x), &w) in self
                .frame
                .iter_mut()
                .zip(&self.padded[start..start + self.n_fft])
                .zip(&self.window)
            {
                *f = x * w;
            }
            self.fft
                .process_with_scratch(&mut self.frame, &mut self.spectrum, &mut self.scratch)
                .expect("buffers are sized by the plan");
            let row = t * self.n_bins;
            for (k, c) in self.spectrum.iter().enumerate() {
                let p = c.re * c.re + c.im * c.im;
                self.power[row + k] = p;
                self.magnitude[row + k] = p.sqrt();
            }
        }
    }
}
