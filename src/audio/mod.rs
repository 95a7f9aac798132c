//! Audio input: decoding WAV files and turning them into a mono stream at the
//! model's sample rate. Everything downstream sees only `f32` mono samples.

pub(crate) mod resample;
mod wav;

pub use resample::Resampler;
pub use wav::WavReader;

use std::path::{Path, PathBuf};

/// Errors while reading or converting audio. Every message names the file.
#[derive(Debug, thiserror::Error)]
pub enum AudioError {
    #[error("{path}: cannot open: {source}")]
    Open {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: not a WAV file or unreadable header: {reason}")]
    Header { path: PathBuf, reason: String },
    #[error("{path}: unsupported WAV format: {reason}")]
    Unsupported { path: PathBuf, reason: String },
    #[error("{path}: truncated or unreadable sample data after {frames} frames: {reason}")]
    Truncated {
        path: PathBuf,
        frames: u64,
        reason: String,
    },
    #[error("{path}: sample {value} at frame {frame} is not finite (NaN or infinity)")]
    NonFinite {
        path: PathBuf,
        frame: u64,
        value: f32,
    },
    #[error("{path}: cannot resample from {from} Hz to {to} Hz: {reason}")]
    Resample {
        path: PathBuf,
        from: u32,
        to: u32,
        reason: String,
    },
}

/// Resamplers kept for reuse by streams of short clips: making one plans
/// its FFTs, which costs about as much as resampling a 2-second clip.
#[derive(Default)]
pub struct Resamplers {
    spare: std::sync::Mutex<Vec<Resampler>>,
}

/// Spare resamplers kept, at most.
const SPARE_RESAMPLERS: usize = 16;

impl Resamplers {
    /// A spare resampler for `rates`, reset for the stream `path`.
    fn take(&self, rates: (u32, u32), path: &Path) -> Option<Resampler> {
        let mut spare = self.spare.lock().unwrap_or_else(|e| e.into_inner());
        let i = spare.iter().position(|r| r.rates() == rates)?;
        let mut r = spare.swap_remove(i);
        drop(spare);
        r.reset(path);
        Some(r)
    }

    fn put(&self, r: Resampler) {
        let mut spare = self.spare.lock().unwrap_or_else(|e| e.into_inner());
        if spare.len() < SPARE_RESAMPLERS {
            spare.push(r);
        }
    }
}

/// A mono stream of samples at a fixed rate, read block by block so that
/// hour-long files never have to be held in memory.
pub struct MonoStream {
    reader: WavReader,
    resampler: Option<Resampler>,
    block: Vec<f32>,
    done: bool,
}

/// How many input frames are decoded per block.
const BLOCK_FRAMES: usize = 8192;

impl MonoStream {
    /// Opens `path` and prepares conversion to mono at `target_rate` Hz.
    pub fn open(path: &Path, target_rate: u32) -> Result<Self, AudioError> {
        Self::new(WavReader::open(path)?, path, target_rate)
    }

    /// As [`MonoStream::open`], for a WAV file held in memory; messages call
    /// it `name`. A resampler for its rate is taken from `spare` if there is
    /// one (give it back with [`MonoStream::recycle`]).
    pub fn from_memory<B>(
        name: &Path,
        bytes: B,
        target_rate: u32,
        spare: &Resamplers,
    ) -> Result<Self, AudioError>
    where
        B: AsRef<[u8]> + Clone + Send + 'static,
    {
        let reader = WavReader::from_memory(name, bytes)?;
        let reused = spare.take((reader.sample_rate(), target_rate), name);
        Self::with(reader, name, target_rate, reused)
    }

    /// Hands its resampler, if it has one, to `spare` for another stream.
    pub fn recycle(self, spare: &Resamplers) {
        if let Some(r) = self.resampler {
            spare.put(r);
        }
    }

    fn new(reader: WavReader, path: &Path, target_rate: u32) -> Result<Self, AudioError> {
        Self::with(reader, path, target_rate, None)
    }

    fn with(
        reader: WavReader,
        path: &Path,
        target_rate: u32,
        reused: Option<Resampler>,
    ) -> Result<Self, AudioError> {
        let resampler = if reader.sample_rate() == target_rate {
            None
        } else if let Some(r) = reused {
            Some(r)
        } else {
            Some(Resampler::new(
                path,
                reader.sample_rate(),
                target_rate,
                BLOCK_FRAMES,
            )?)
        };
        Ok(MonoStream {
            reader,
            resampler,
            block: Vec::with_capacity(BLOCK_FRAMES),
            done: false,
        })
    }

    /// Opens `path` to read from stream position `start` (in samples at
    /// `target_rate`) or a little before it; returns the stream and the
    /// position of its first sample. What it yields from there is exactly
    /// what [`MonoStream::open`] yields at the same positions.
    pub fn open_at(path: &Path, target_rate: u32, start: u64) -> Result<(Self, u64), AudioError> {
        let mut stream = Self::open(path, target_rate)?;
        let position = match &mut stream.resampler {
            None => {
                stream.reader.seek_to_frame(start)?;
                start
            }
            Some(r) => {
                let (cin, cout) = r.chunk_sizes();
                let chunk = (start + r.delay() as u64) / cout as u64;
                if chunk == 0 {
                    0
                } else {
                    stream.reader.seek_to_frame((chunk - 1) * cin as u64)?;
                    r.start_mid_stream(chunk)
                }
            }
        };
        Ok((stream, position))
    }

    /// Appends the next block of converted samples to `out`. Returns `false`
    /// once the stream is exhausted (nothing more was appended).
    pub fn read_into(&mut self, out: &mut Vec<f32>) -> Result<bool, AudioError> {
        if self.done {
            return Ok(false);
        }
        self.block.clear();
        let n = self.reader.read_mono(&mut self.block, BLOCK_FRAMES)?;
        let at_end = n < BLOCK_FRAMES;
        match &mut self.resampler {
            None => out.extend_from_slice(&self.block),
            Some(r) => r.process(&self.block, at_end, out)?,
        }
        if at_end {
            self.done = true;
        }
        Ok(true)
    }

    /// Reads the whole remaining stream (for short files and tests).
    pub fn read_all(mut self) -> Result<Vec<f32>, AudioError> {
        let mut out = Vec::new();
        while self.read_into(&mut out)? {}
        Ok(out)
    }
}
