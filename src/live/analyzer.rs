//! One capture segment's frames into windows' features: the configured
//! channel or the mix, resampled to the model's rate, windowed, as
//! `tutti analyze` does for a file.

use super::WorkerError;
use crate::audio::{AudioError, Resampler};
use crate::capture::{CaptureError, Format};
use crate::config::Channel;
use crate::features;
use crate::window::{WindowInfo, WindowSpec, Windower};
use std::path::Path;

/// Most frames taken from the ring at a time.
pub(super) const CHUNK_FRAMES: usize = 4096;
/// Input frames per resampler FFT: the same as `tutti analyze` uses, so a
/// file gives the same features through either path.
const RESAMPLER_CHUNK: usize = 8192;

/// One segment's conversion from interleaved device frames to windows:
/// channel choice or downmix, resampling, windowing and features. Buffers
/// are made in `new`; `process` allocates nothing.
pub struct Analyzer {
    channels: usize,
    channel: Channel,
    mono: Vec<f32>,
    resampled: Vec<f32>,
    resampler: Option<Resampler>,
    windower: Windower,
}

impl Analyzer {
    pub fn new(
        format: Format,
        channel: Channel,
        spec: WindowSpec,
        feature_set: &str,
        source: &str,
    ) -> Result<Self, WorkerError> {
        if let Channel::Only(n) = channel {
            if n == 0 || n > format.channels {
                return Err(CaptureError::Channel {
                    device: source.to_string(),
                    channel: n,
                    channels: format.channels,
                }
                .into());
            }
        }
        let set = features::feature_set(feature_set, spec.sample_rate).map_err(|e| {
            WorkerError::Features {
                input: source.to_string(),
                source: e,
            }
        })?;
        let resampler = if format.sample_rate == spec.sample_rate {
            None
        } else {
            Some(Resampler::new(
                Path::new(source),
                format.sample_rate,
                spec.sample_rate,
                RESAMPLER_CHUNK,
            )?)
        };
        let out_max = resampler.as_ref().map_or(CHUNK_FRAMES, |r| {
            let (cin, cout) = r.chunk_sizes();
            (CHUNK_FRAMES / cin + 2) * cout
        });
        Ok(Analyzer {
            channels: usize::from(format.channels.max(1)),
            channel,
            mono: Vec::with_capacity(CHUNK_FRAMES),
            resampled: Vec::with_capacity(out_max),
            resampler,
            windower: Windower::new(spec, set),
        })
    }

    /// Analyses interleaved frames (at most [`CHUNK_FRAMES`] of them) and
    /// calls `f` for each window they complete.
    pub fn process(
        &mut self,
        interleaved: &[f32],
        f: &mut impl FnMut(WindowInfo, &[f32]),
    ) -> Result<(), AudioError> {
        self.mono.clear();
        let ch = self.channels;
        match self.channel {
            Channel::Only(n) => {
                let i = usize::from(n) - 1;
                self.mono
                    .extend(interleaved.chunks_exact(ch).map(|frame| frame[i]));
            }
            Channel::Mix if ch == 1 => self.mono.extend_from_slice(interleaved),
            Channel::Mix => {
                let inv = 1.0 / ch as f32;
                self.mono.extend(
                    interleaved
                        .chunks_exact(ch)
                        .map(|frame| frame.iter().sum::<f32>() * inv),
                );
            }
        }
        let samples = match &mut self.resampler {
            None => &self.mono,
            Some(r) => {
                self.resampled.clear();
                r.process(&self.mono, false, &mut self.resampled)?;
                &self.resampled
            }
        };
        let mut g = |info: WindowInfo, feats: &[f32]| -> Result<(), std::convert::Infallible> {
            f(info, feats);
            Ok(())
        };
        let Ok(()) = self.windower.push(samples, &mut g);
        Ok(())
    }

    /// Ends the segment's stream (a file that played to its end): the
    /// resampler's tail and the last windows, zero-padded, as `tutti
    /// analyze` ends a file.
    pub fn finish(&mut self, f: &mut impl FnMut(WindowInfo, &[f32])) -> Result<(), AudioError> {
        let mut g = |info: WindowInfo, feats: &[f32]| -> Result<(), std::convert::Infallible> {
            f(info, feats);
            Ok(())
        };
        if let Some(r) = &mut self.resampler {
            self.resampled.clear();
            r.process(&[], true, &mut self.resampled)?;
            let Ok(()) = self.windower.push(&self.resampled, &mut g);
        }
        let Ok(()) = self.windower.finish(&mut g);
        Ok(())
    }

    /// Input frames still to come before the next window is complete: what
    /// the windower lacks, and with a resampler the rest of its chunk plus
    /// the further whole chunks that the missing output (and, at the start,
    /// the output dropped for the filter's delay) needs.
    pub fn input_frames_missing(&self) -> u64 {
        let missing = self.windower.samples_missing();
        match &self.resampler {
            None => missing,
            Some(r) => {
                let (cin, cout) = r.chunk_sizes();
                let out = missing + r.pending_skip() as u64;
                let chunks = out.div_ceil(cout as u64).max(1);
                (cin - r.pending_frames().min(cin)) as u64 + (chunks - 1) * cin as u64
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The worker sleeps for `input_frames_missing` frames' worth of time:
    /// one frame fewer must never complete a window, and that many must.
    #[test]
    fn input_frames_missing_is_exactly_when_the_next_window_completes() {
        for (rate, channels) in [(22_050, 1u16), (44_100, 2), (48_000, 2)] {
            let format = Format {
                sample_rate: rate,
                channels,
            };
            let spec = WindowSpec::from_seconds(22_050, 2.0, 0.5).unwrap();
            let mut a = Analyzer::new(format, Channel::Mix, spec, "seed26", "test").unwrap();
            let ch = usize::from(channels);
            // A 440 Hz tone, fed in pieces no longer than CHUNK_FRAMES.
            let mut t = 0usize;
            let mut feed = |a: &mut Analyzer, frames: usize| -> usize {
                let mut windows = 0;
                let mut left = frames;
                while left > 0 {
                    let n = left.min(CHUNK_FRAMES);
                    let piece: Vec<f32> = (t..t + n)
                        .flat_map(|i| {
                            let v = (i as f32 * 440.0 * std::f32::consts::TAU / rate as f32).sin();
                            std::iter::repeat_n(0.3 * v, ch)
                        })
                        .collect();
                    t += n;
                    a.process(&piece, &mut |_, _| windows += 1).unwrap();
                    left -= n;
                }
                windows
            };
            for k in 0..6 {
                let missing = a.input_frames_missing() as usize;
                assert!(missing > 0);
                assert_eq!(feed(&mut a, missing - 1), 0, "{rate} Hz, window {k}: early");
                assert!(feed(&mut a, 1) >= 1, "{rate} Hz, window {k}: late");
            }
        }
    }
}
