//! WAV decoding with `hound`: integer PCM of 8, 16, 24 or 32 bits and 32-bit
//! float, any channel count, downmixed to mono by averaging channels.

use super::AudioError;
use hound::{SampleFormat, WavIntoSamples};
use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

enum Samples {
    Int {
        iter: WavIntoSamples<BufReader<File>, i32>,
        scale: f32,
    },
    Float(WavIntoSamples<BufReader<File>, f32>),
}

/// Streams a WAV file as mono `f32` frames in [-1, 1] (integer formats are
/// scaled by 2^(bits-1), as libsndfile and librosa do).
pub struct WavReader {
    path: PathBuf,
    samples: Samples,
    channels: u16,
    sample_rate: u32,
    frames_read: u64,
    frames_total: u64,
}

impl WavReader {
    pub fn open(path: &Path) -> Result<Self, AudioError> {
        let file = File::open(path).map_err(|source| AudioError::Open {
            path: path.to_path_buf(),
            source,
        })?;
        let reader = hound::WavReader::new(BufReader::new(file)).map_err(|e| match e {
            hound::Error::Unsupported => AudioError::Unsupported {
                path: path.to_path_buf(),
                reason: "this WAV encoding is not supported (use PCM or IEEE float)".into(),
            },
            other => AudioError::Header {
                path: path.to_path_buf(),
                reason: other.to_string(),
            },
        })?;
        let spec = reader.spec();
        let unsupported = |reason: String| AudioError::Unsupported {
            path: path.to_path_buf(),
            reason,
        };
        if spec.channels == 0 {
            return Err(unsupported("zero channels".into()));
        }
        if spec.sample_rate == 0 {
            return Err(unsupported("sample rate is 0 Hz".into()));
        }
        let frames_total = u64::from(reader.duration());
        let samples = match (spec.sample_format, spec.bits_per_sample) {
            (SampleFormat::Int, bits @ (8 | 16 | 24 | 32)) => Samples::Int {
                iter: reader.into_samples::<i32>(),
                scale: 1.0 / (1u64 << (bits - 1)) as f32,
            },
            (SampleFormat::Float, 32) => Samples::Float(reader.into_samples::<f32>()),
            (format, bits) => {
                return Err(unsupported(format!(
                    "{bits}-bit {} samples (supported: 8/16/24/32-bit integer, 32-bit float)",
                    match format {
                        SampleFormat::Int => "integer",
                        SampleFormat::Float => "float",
                    }
                )))
            }
        };
        Ok(WavReader {
            path: path.to_path_buf(),
            samples,
            channels: spec.channels,
            sample_rate: spec.sample_rate,
            frames_read: 0,
            frames_total,
        })
    }

    pub fn sample_rate(&self) -> u32 {
        self.sample_rate
    }

    pub fn channels(&self) -> u16 {
        self.channels
    }

    /// Number of frames the header announces.
    pub fn frames_total(&self) -> u64 {
        self.frames_total
    }

    /// Appends up to `max_frames` mono frames to `out`; returns how many.
    /// A file whose data ends inside a frame, or before the header's length,
    /// is reported as truncated rather than silently shortened.
    pub fn read_mono(
        &mut self,
        out: &mut Vec<f32>,
        max_frames: usize,
    ) -> Result<usize, AudioError> {
        let channels = usize::from(self.channels);
        let inv = 1.0 / channels as f32;
        let mut n = 0;
        while n < max_frames {
            let mut acc = 0.0f32;
            for ch in 0..channels {
                let next = match &mut self.samples {
                    Samples::Int { iter, scale } => {
                        iter.next().map(|r| r.map(|v| v as f32 * *scale))
                    }
                    Samples::Float(iter) => iter.next(),
                };
                let value = match next {
                    None if ch == 0 => {
                        if self.frames_read < self.frames_total {
                            return Err(self.truncated(format!(
                                "the header announces {} frames",
                                self.frames_total
                            )));
                        }
                        return Ok(n);
                    }
                    None => {
                        return Err(self.truncated(format!(
                            "the last frame has only {ch} of {channels} channels"
                        )))
                    }
                    Some(Err(e)) => return Err(self.truncated(e.to_string())),
                    Some(Ok(v)) => v,
                };
                if !value.is_finite() {
                    return Err(AudioError::NonFinite {
                        path: self.path.clone(),
                        frame: self.frames_read,
                        value,
                    });
                }
                acc += value;
            }
            out.push(acc * inv);
            self.frames_read += 1;
            n += 1;
        }
        Ok(n)
    }

    fn truncated(&self, reason: String) -> AudioError {
        AudioError::Truncated {
            path: self.path.clone(),
            frames: self.frames_read,
            reason,
        }
    }
}
