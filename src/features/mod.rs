//! Feature extraction in two steps, so that overlapping windows share work:
//! each STFT frame of the stream is analysed once into a small record, and a
//! window's features are then summarised from the records of its frames.
//! Each feature set has a name and an ordered list of feature names; a
//! model's sidecar records which set it was trained on, and training reads
//! features computed by this very code, so training and serving agree.

mod filters;
mod frame;
mod logmel;
mod pair;
mod seed26;
mod spectrum;
mod timbre98;

pub use logmel::LogMel;
pub use pair::TimbreAndLogMel;
pub use seed26::Seed26;
pub use spectrum::FrameSpectrum;
pub use timbre98::Timbre98;

use std::ops::Range;

/// Feature errors; messages name the set or the rate at fault.
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

/// A feature set: how to analyse one frame, and how to turn the frames of a
/// window into `len()` numbers. Buffers are made at construction; neither
/// step allocates.
/// What a feature set is besides its arithmetic: its name, its features'
/// names, and the frames it reads.
#[derive(Debug, Clone)]
pub struct SetShape {
    /// The set's stable name, as stored in model sidecars.
    pub name: &'static str,
    /// Names of the features, in output order.
    pub names: Vec<String>,
    /// Samples per frame; frame `j` is centred on stream sample
    /// `j * frame_hop`.
    pub frame_len: usize,
    pub frame_hop: usize,
    /// Numbers kept per frame.
    pub record_len: usize,
}

pub trait FeatureSet: Send {
    fn shape(&self) -> &SetShape;
    fn set_name(&self) -> &'static str {
        self.shape().name
    }
    fn feature_names(&self) -> &[String] {
        &self.shape().names
    }
    fn len(&self) -> usize {
        self.feature_names().len()
    }
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    fn frame_len(&self) -> usize {
        self.shape().frame_len
    }
    fn frame_hop(&self) -> usize {
        self.shape().frame_hop
    }
    fn record_len(&self) -> usize {
        self.shape().record_len
    }
    /// Analyses one frame into `record` (of `record_len()`). `frame` holds
    /// `frame_len()` samples, zeros where the stream has none; `valid` is the
    /// part that lies inside the stream.
    fn analyse_frame(&mut self, frame: &[f32], valid: Range<usize>, record: &mut [f32]);
    /// Computes a window's features into `out` (of `len()`) from the records
    /// of its frames, frame after frame.
    fn summarise(&mut self, records: &[f32], out: &mut [f32]);
}

/// One entry of the feature-set table.
struct SetEntry {
    name: &'static str,
    sample_rate: u32,
    build: fn() -> Box<dyn FeatureSet>,
}

const SETS: &[SetEntry] = &[
    SetEntry {
        name: seed26::NAME,
        sample_rate: seed26::SAMPLE_RATE,
        build: || Box::new(Seed26::new()),
    },
    SetEntry {
        name: timbre98::NAME,
        sample_rate: timbre98::SAMPLE_RATE,
        build: || Box::new(Timbre98::new()),
    },
    SetEntry {
        name: logmel::NAME,
        sample_rate: logmel::SAMPLE_RATE,
        build: || Box::new(LogMel::new()),
    },
    SetEntry {
        name: pair::NAME,
        sample_rate: pair::SAMPLE_RATE,
        build: || Box::new(TimbreAndLogMel::new()),
    },
];

/// Names of every feature set this build knows.
pub fn set_names() -> Vec<&'static str> {
    SETS.iter().map(|s| s.name).collect()
}

fn entry(name: &str) -> Result<&'static SetEntry, FeatureError> {
    SETS.iter()
        .find(|s| s.name == name)
        .ok_or_else(|| FeatureError::UnknownSet {
            name: name.to_string(),
            known: set_names().join(", "),
        })
}

/// The sample rate a feature set is defined at.
pub fn sample_rate(name: &str) -> Result<u32, FeatureError> {
    Ok(entry(name)?.sample_rate)
}

/// Builds the feature set `name` for audio at `sample_rate` Hz.
pub fn feature_set(name: &str, sample_rate: u32) -> Result<Box<dyn FeatureSet>, FeatureError> {
    let e = entry(name)?;
    if e.sample_rate != sample_rate {
        return Err(FeatureError::SampleRate {
            set: e.name,
            need: e.sample_rate,
            got: sample_rate,
        });
    }
    Ok((e.build)())
}
