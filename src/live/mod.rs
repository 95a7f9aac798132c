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
use std::sync::atomic::AtomicU64;

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

/// Progress counters, read by the watchdog and the shutdown report.
#[derive(Debug, Default)]
pub struct Progress {
    pub frames: AtomicU64,
    pub windows: AtomicU64,
    pub overruns: AtomicU64,
}
