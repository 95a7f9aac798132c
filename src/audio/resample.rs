//! Streaming sample-rate conversion with `rubato`'s FFT resampler. The
//! resampler's own delay is trimmed so that output sample `k` lines up with
//! time `k / target_rate`, and the tail is flushed so no audio is lost.
//!
//! It works in f64 and rounds its output to f32. rubato's FFT takes the
//! machine's SIMD path (AVX on x86, NEON on ARM), and the two round
//! differently: in f32 that changed most windows' features in the 7th digit
//! between x86 and ARM. In f64 the differences are about 1e-15 of full
//! scale, so nearly every sample rounds to the same f32; only very quiet
//! samples (a decaying tail) still differ in their last bit now and then.

use super::AudioError;
use rubato::{FftFixedIn, Resampler as _};
use std::path::{Path, PathBuf};

pub struct Resampler {
    inner: FftFixedIn<f64>,
    path: PathBuf,
    from: u32,
    to: u32,
    pending: Vec<f64>,
    out_buf: Vec<Vec<f64>>,
    to_skip: usize,
    in_total: u64,
    out_total: u64,
}

impl Resampler {
    /// `chunk` is the approximate number of input frames per FFT.
    pub fn new(path: &Path, from: u32, to: u32, chunk: usize) -> Result<Self, AudioError> {
        // rubato's FFT resampler garbles its output when an FFT length is odd
        // (seen with 16 and 48 kHz in, 22.05 kHz out), so the chunk is an even
        // multiple of the smallest whole input block, which makes both FFT
        // lengths even; one chunk is one FFT.
        let g = gcd(from as usize, to as usize);
        let unit = from as usize / g;
        let mut units = chunk.div_ceil(unit).max(2);
        units += units % 2;
        let chunk = units * unit;
        let inner =
            FftFixedIn::<f64>::new(from as usize, to as usize, chunk, 1, 1).map_err(|e| {
                AudioError::Resample {
                    path: path.to_path_buf(),
                    from,
                    to,
                    reason: e.to_string(),
                }
            })?;
        let out_buf = vec![vec![0.0; inner.output_frames_max()]];
        let to_skip = inner.output_delay();
        Ok(Resampler {
            inner,
            path: path.to_path_buf(),
            from,
            to,
            pending: Vec::with_capacity(2 * chunk),
            out_buf,
            to_skip,
            in_total: 0,
            out_total: 0,
        })
    }

    /// The rates it converts from and to.
    pub fn rates(&self) -> (u32, u32) {
        (self.from, self.to)
    }

    /// Makes it as new, for another stream named `path`: what it gives
    /// then is what a fresh resampler would (its FFT plans are kept).
    pub fn reset(&mut self, path: &Path) {
        self.inner.reset();
        self.path = path.to_path_buf();
        self.pending.clear();
        self.to_skip = self.inner.output_delay();
        self.in_total = 0;
        self.out_total = 0;
    }

    /// Input frames per FFT chunk, and output frames each chunk gives.
    pub fn chunk_sizes(&self) -> (usize, usize) {
        (
            self.inner.input_frames_max(),
            self.inner.output_frames_max(),
        )
    }

    /// Input frames held until the next chunk is complete.
    pub fn pending_frames(&self) -> usize {
        self.pending.len()
    }

    /// Output frames still to be dropped for the filter's delay (at the
    /// start of a stream).
    pub fn pending_skip(&self) -> usize {
        self.to_skip
    }

    /// The resampler's own delay, in output frames (trimmed from the start).
    pub fn delay(&self) -> usize {
        self.inner.output_delay()
    }

    /// Prepares a fresh resampler to be fed from input chunk `chunk - 1` of
    /// a stream (`chunk >= 1`). That first chunk only warms the filter up:
    /// its output is dropped, and from chunk `chunk` on the output equals,
    /// sample for sample, what a resampler fed from the start gives there.
    /// Returns the stream position of the first sample it will emit.
    pub fn start_mid_stream(&mut self, chunk: u64) -> u64 {
        let (cin, cout) = self.chunk_sizes();
        self.in_total = (chunk - 1) * cin as u64;
        self.to_skip = cout;
        self.out_total = chunk * cout as u64 - self.delay() as u64;
        self.out_total
    }

    fn expected_out(&self) -> u64 {
        (self.in_total * u64::from(self.to) + u64::from(self.from) / 2) / u64::from(self.from)
    }

    /// Converts `input`; with `at_end`, also flushes everything still inside
    /// the resampler. Output is appended to `out`.
    pub fn process(
        &mut self,
        input: &[f32],
        at_end: bool,
        out: &mut Vec<f32>,
    ) -> Result<(), AudioError> {
        self.in_total += input.len() as u64;
        self.pending.extend(input.iter().map(|&x| f64::from(x)));
        loop {
            let need = self.inner.input_frames_next();
            if self.pending.len() < need {
                break;
            }
            let (_, produced) = self
                .inner
                .process_into_buffer(&[&self.pending[..need]], &mut self.out_buf, None)
                .map_err(|e| self.error(e.to_string()))?;
            self.pending.drain(..need);
            self.emit(produced, out);
        }
        if at_end {
            let expected = self.expected_out();
            if !self.pending.is_empty() {
                let rest = std::mem::take(&mut self.pending);
                let (_, produced) = self
                    .inner
                    .process_partial_into_buffer(Some(&[&rest[..]]), &mut self.out_buf, None)
                    .map_err(|e| self.error(e.to_string()))?;
                self.emit(produced, out);
            }
            while self.out_total < expected {
                let (_, produced) = self
                    .inner
                    .process_partial_into_buffer(None::<&[&[f64]]>, &mut self.out_buf, None)
                    .map_err(|e| self.error(e.to_string()))?;
                self.emit(produced, out);
            }
            // The last flush may overshoot: drop what lies past the input's end.
            let excess = (self.out_total - expected) as usize;
            out.truncate(out.len() - excess.min(out.len()));
            self.out_total = expected;
        }
        Ok(())
    }

    fn emit(&mut self, produced: usize, out: &mut Vec<f32>) {
        let skip = self.to_skip.min(produced);
        self.to_skip -= skip;
        out.extend(self.out_buf[0][skip..produced].iter().map(|&x| x as f32));
        self.out_total += (produced - skip) as u64;
    }

    fn error(&self, reason: String) -> AudioError {
        AudioError::Resample {
            path: self.path.clone(),
            from: self.from,
            to: self.to,
            reason,
        }
    }
}

/// The greatest common divisor.
pub(crate) fn gcd(a: usize, b: usize) -> usize {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reset_resampler_gives_what_a_fresh_one_does() {
        let input: Vec<f32> = (0..30_000)
            .map(|i| ((i as f32) * 0.01).sin() * 0.5)
            .collect();
        let run = |r: &mut Resampler, input: &[f32]| {
            let mut out = vec![];
            for block in input.chunks(8192) {
                r.process(block, false, &mut out).unwrap();
            }
            r.process(&[], true, &mut out).unwrap();
            out
        };
        let path = Path::new("a.wav");
        let mut used = Resampler::new(path, 44100, 22050, 8192).unwrap();
        run(&mut used, &input[..12_345]);
        used.reset(Path::new("b.wav"));
        let mut fresh = Resampler::new(path, 44100, 22050, 8192).unwrap();
        assert_eq!(run(&mut used, &input), run(&mut fresh, &input));
        assert_eq!(used.path, Path::new("b.wav"));
    }
}
