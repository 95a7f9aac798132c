//! Live analysis: the worker thread ([`worker`]) reads each capture
//! segment's ring; the [`analyzer`] takes the configured channel (or the
//! mix), resamples to the model's rate and windows it, and the same
//! features, model and detector as `tutti analyze` turn every window into
//! a [`Detection`] for the sinks, with its wall-clock times.

mod analyzer;
mod worker;

pub use analyzer::Analyzer;
pub use worker::Worker;

use crate::audio::AudioError;
use crate::capture::CaptureError;
use crate::detect::Detection;
use crate::features::FeatureError;
use crate::model::ModelError;
use crate::window::Level;
use std::sync::atomic::{AtomicU64, Ordering};

/// What the worker hands the sinks.
#[derive(Debug)]
pub enum WorkerEvent {
    Window(Detection),
    /// The source ended (a file that does not loop); no more windows.
    Ended,
    /// Capture or analysis failed for good.
    Failed(WorkerError),
}

/// Why the live analysis stopped.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error(transparent)]
    Capture(#[from] CaptureError),
    #[error(transparent)]
    Audio(#[from] AudioError),
    #[error("{input}: {source}")]
    Features { input: String, source: FeatureError },
    #[error("{input}: the model failed: {source}")]
    Model {
        input: String,
        source: Box<ModelError>,
    },
}

/// Progress counters, read by the watchdog, the shutdown report and the
/// HTTP API.
#[derive(Debug, Default)]
pub struct Progress {
    pub frames: AtomicU64,
    pub windows: AtomicU64,
    pub overruns: AtomicU64,
    /// The RMS level of the last audio taken from the ring, in dBFS: its
    /// `f32` bits, with bit 32 set once there is one.
    level_bits: AtomicU64,
}

impl Progress {
    /// The RMS level of `samples` (any channel layout), in dBFS.
    pub fn set_level(&self, samples: &[f32]) {
        if samples.is_empty() {
            return;
        }
        let sum_squares = samples.iter().map(|&x| f64::from(x) * f64::from(x)).sum();
        let db = Level::of(sum_squares, samples.len(), 0.0).rms_dbfs;
        self.level_bits
            .store(1 << 32 | u64::from(db.to_bits()), Ordering::Relaxed);
    }

    /// The last level set, `None` before any audio.
    pub fn level_dbfs(&self) -> Option<f32> {
        let bits = self.level_bits.load(Ordering::Relaxed);
        (bits >> 32 == 1).then(|| f32::from_bits(bits as u32))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::window::level::SILENCE_DBFS;

    #[test]
    fn the_level_is_the_rms_in_dbfs() {
        let p = Progress::default();
        assert_eq!(p.level_dbfs(), None);
        // A full-scale square wave is 0 dBFS; half of it about -6.02.
        p.set_level(&[1.0, -1.0, 1.0, -1.0]);
        assert_eq!(p.level_dbfs(), Some(0.0));
        p.set_level(&[0.5, -0.5]);
        assert!((p.level_dbfs().unwrap() + 6.0206).abs() < 1e-3);
        p.set_level(&[0.0; 8]);
        assert_eq!(p.level_dbfs(), Some(SILENCE_DBFS));
    }
}
