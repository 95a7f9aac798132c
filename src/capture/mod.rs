//! Capture: where live audio comes from. A source (a cpal capture device, a
//! WAV file played at real-time pace, or raw PCM on standard input) writes interleaved `f32` frames into
//! a lock-free single-producer ring; the analysis worker reads them out.
//!
//! Each time a source (re)opens it starts a new [`Segment`]: a fresh ring
//! with its own format. A gap in the audio (a device that went away and came
//! back) is therefore never stitched into one window.

pub mod device;
pub mod file;
pub mod stdin;

use ringbuf::traits::{Observer, Producer, Split};
use ringbuf::{HeapCons, HeapProd, HeapRb};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Capture errors; each names the device or file.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    #[error(
        "no audio capture device found ({reason}); `tutti devices` lists what there is, \
         and `--input FILE.wav` analyses a recording instead"
    )]
    NoDevice { reason: String },
    #[error("capture device `{wanted}` not found; `tutti devices` lists them (found: {found})")]
    NotFound { wanted: String, found: String },
    #[error("capture device `{device}`: {reason}")]
    Device { device: String, reason: String },
    #[error("{device}: channel {channel} asked for, but it has {channels} channel(s)")]
    Channel {
        device: String,
        channel: u16,
        channels: u16,
    },
    #[error(transparent)]
    Audio(#[from] crate::audio::AudioError),
}

/// What a segment's frames look like.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Format {
    pub sample_rate: u32,
    pub channels: u16,
}

/// Seconds of audio the ring holds: far more than the worker ever lags.
const RING_SECONDS: usize = 2;

/// The producer side, owned by the audio callback (or the file feeder).
pub struct RingWriter {
    prod: HeapProd<f32>,
    channels: usize,
    overruns: Arc<AtomicU64>,
}

/// The consumer side with what describes it, handed to the worker.
pub struct Segment {
    pub consumer: HeapCons<f32>,
    pub format: Format,
    /// Frames the source could not write because the ring was full.
    pub overruns: Arc<AtomicU64>,
    /// The device name or file path, for messages.
    pub source: String,
    /// How much faster than real time the source runs (1 for a device).
    pub speed: f64,
}

/// A new ring for `format`: the writer for the source, the segment for the
/// worker.
pub fn ring(format: Format, source: &str, speed: f64) -> (RingWriter, Segment) {
    let capacity = RING_SECONDS * format.sample_rate as usize * usize::from(format.channels);
    let (prod, consumer) = HeapRb::<f32>::new(capacity.max(1)).split();
    let overruns = Arc::new(AtomicU64::new(0));
    (
        RingWriter {
            prod,
            channels: usize::from(format.channels.max(1)),
            overruns: overruns.clone(),
        },
        Segment {
            consumer,
            format,
            overruns,
            source: source.to_string(),
            speed,
        },
    )
}

impl RingWriter {
    /// Copies whole frames of `data` (interleaved, any sample type cpal
    /// delivers) into the ring, converted to `f32`. Frames that do not fit
    /// are counted as overruns. Never allocates, locks or blocks: this runs
    /// in the audio callback.
    pub fn write<T>(&mut self, data: &[T])
    where
        T: cpal::Sample,
        f32: cpal::FromSample<T>,
    {
        let room = self.prod.vacant_len() / self.channels * self.channels;
        let take = data.len().min(room) / self.channels * self.channels;
        self.prod
            .push_iter(data[..take].iter().map(|&s| s.to_sample::<f32>()));
        let lost = (data.len() - take) / self.channels;
        if lost > 0 {
            self.overruns.fetch_add(lost as u64, Ordering::Relaxed);
        }
    }

    /// Free room, in frames.
    pub fn vacant_frames(&self) -> usize {
        self.prod.vacant_len() / self.channels
    }
}

/// What a source thread tells the worker.
pub enum SourceEvent {
    /// A new ring to read from; the previous one is finished.
    Segment(Segment),
    /// The source has ended (a file that does not loop): no more audio.
    End,
    /// The source failed for good.
    Failed(CaptureError),
}

#[cfg(test)]
mod tests {
    use super::*;
    use ringbuf::traits::Consumer;

    #[test]
    fn writes_whole_frames_and_counts_overruns() {
        let format = Format {
            sample_rate: 2,
            channels: 2,
        };
        // Room for 2 s × 2 Hz × 2 channels = 8 samples = 4 frames.
        let (mut w, mut seg) = ring(format, "test", 1.0);
        w.write(&[1i16, -1, 2, -2, 3, -3]);
        assert_eq!(w.vacant_frames(), 1);
        // Two frames offered, one fits.
        w.write(&[i16::MAX, i16::MIN, 5, 5]);
        assert_eq!(seg.overruns.load(Ordering::Relaxed), 1);
        let mut out = [0f32; 8];
        assert_eq!(seg.consumer.pop_slice(&mut out), 8);
        assert_eq!(out[0], 1.0 / 32768.0);
        assert_eq!(out[1], -1.0 / 32768.0);
        assert_eq!(out[6], i16::MAX as f32 / 32768.0);
        assert_eq!(out[7], -1.0);
    }

    #[test]
    fn converts_unsigned_and_float_samples() {
        let format = Format {
            sample_rate: 4,
            channels: 1,
        };
        let (mut w, mut seg) = ring(format, "test", 1.0);
        w.write(&[0u16, 32768, 65535]);
        w.write(&[0.25f32]);
        let mut out = [9f32; 4];
        assert_eq!(seg.consumer.pop_slice(&mut out), 4);
        assert_eq!(out[0], -1.0);
        assert_eq!(out[1], 0.0);
        assert_eq!(out[3], 0.25);
    }
}
