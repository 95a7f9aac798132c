//! Feature extraction: one window of mono audio in, one named feature vector
//! out. Each feature set has a name and an ordered list of feature names; a
//! model's sidecar records which set it was trained on, and training reads
//! features computed by this very code, so training and serving agree.

mod filters;
mod seed26;
mod stft;

pub use seed26::Seed26;
pub use stft::Stft;

/// Feature errors; messages name the set or the size at fault.
#[derive(Debug, thiserror::Error)]
pub enum FeatureError {
    #[error("unknown feature set `{name}` (known: {known})")]
    UnknownSet { name: String, known: String },
    #[error("feature set `{set}` needs {need} Hz audio, got {got} Hz")]
    SampleRate {
        set: &'static str,
        need: u32,
        got: u32,
    },
}

/// A feature set that turns a window into `len()` numbers.
pub trait FeatureExtractor: Send {
    /// The set's stable name, as stored in model sidecars.
    fn set_name(&self) -> &'static str;
    /// Names of the features, in output order.
    fn feature_names(&self) -> &[String];
    fn len(&self) -> usize {
        self.feature_names().len()
    }
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Computes the features of one window into `out` (of `len()`), using
    /// only buffers made at construction.
    fn compute(&mut self, window: &[f32], out: &mut [f32]);
}

/// Names of every feature set this build knows.
pub const FEATURE_SETS: &[&str] = &[seed26::NAME];

/// The sample rate a feature set is defined at.
pub fn sample_rate(name: &str) -> Result<u32, FeatureError> {
    match name {
        seed26::NAME => Ok(seed26::SAMPLE_RATE),
        other => Err(FeatureError::UnknownSet {
            name: other.to_string(),
            known: FEATURE_SETS.join(", "),
        }),
    }
}

/// Builds the extractor for `name`, for windows of `window_len` samples at
/// `sample_rate` Hz.
pub fn extractor(
    name: &str,
    sample_rate: u32,
    window_len: usize,
) -> Result<Box<dyn FeatureExtractor>, FeatureError> {
    match name {
        seed26::NAME => Ok(Box::new(Seed26::new(sample_rate, window_len)?)),
        other => Err(FeatureError::UnknownSet {
            name: other.to_string(),
            known: FEATURE_SETS.join(", "),
        }),
    }
}
