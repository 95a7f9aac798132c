//! The model sidecar: everything needed to feed the ONNX file and read its
//! output, written by the training recipe next to the ONNX file.

use super::ModelError;
use crate::features;
use serde::{Deserialize, Serialize};
use std::path::Path;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LabelSpec {
    pub name: String,
    /// General MIDI program, 1-based.
    pub program: u8,
    /// Score at or above which the instrument is reported as playing.
    pub threshold: f32,
}

/// A key the recipe does not write (a typo such as `treshold`) is refused
/// by name rather than ignored.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sidecar {
    /// ONNX file name, relative to the sidecar.
    pub model_file: String,
    pub onnx_sha256: String,
    /// Labels in the order of the model's score output.
    pub labels: Vec<LabelSpec>,
    pub sample_rate: u32,
    pub window_seconds: f64,
    pub hop_seconds: f64,
    pub feature_set: String,
    pub feature_names: Vec<String>,
    /// An instrument is reported only when its score also reaches this
    /// fraction of the window's top score (`detect::effective_threshold`);
    /// 0, the default, turns it off.
    #[serde(default)]
    pub relative_threshold: f32,
    #[serde(default)]
    pub training: serde_json::Value,
    #[serde(default)]
    pub validation: serde_json::Value,
}

impl Sidecar {
    /// Parses and checks the sidecar `bytes`, read from `path` (named in
    /// errors). The caller reads the file once, for this and its hash.
    pub fn parse(path: &Path, bytes: &[u8]) -> Result<Sidecar, ModelError> {
        let sidecar: Sidecar = serde_json::from_slice(bytes).map_err(|e| ModelError::Sidecar {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        let bad = |reason: String| ModelError::Sidecar {
            path: path.to_path_buf(),
            reason,
        };
        if sidecar.labels.is_empty() {
            return Err(bad("`labels` is empty".into()));
        }
        // The ONNX file sits beside its sidecar: a bare file name.
        let name = std::path::Path::new(&sidecar.model_file);
        if sidecar.model_file.is_empty()
            || name.file_name() != Some(std::ffi::OsStr::new(&sidecar.model_file))
        {
            return Err(bad(format!(
                "model_file {:?} must be a file name beside the sidecar",
                sidecar.model_file
            )));
        }
        // Names become MQTT topics and Home Assistant ids.
        let topic_safe = |n: &str| {
            !n.is_empty()
                && n.len() <= 64
                && n.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
        };
        for (i, l) in sidecar.labels.iter().enumerate() {
            if !topic_safe(&l.name) {
                return Err(bad(format!(
                    "label name {:?} must be 1 to 64 of a-z, 0-9, _ and -",
                    l.name
                )));
            }
            if sidecar.labels[..i].iter().any(|o| o.name == l.name) {
                return Err(bad(format!("label `{}` is listed twice", l.name)));
            }
            if !(1..=128).contains(&l.program) {
                return Err(bad(format!(
                    "program {} of `{}` is outside 1..=128",
                    l.program, l.name
                )));
            }
        }
        if let Some(l) = sidecar
            .labels
            .iter()
            .find(|l| !(0.0..=1.0).contains(&l.threshold))
        {
            return Err(bad(format!(
                "threshold {} of `{}` is outside [0, 1]",
                l.threshold, l.name
            )));
        }
        if !(0.0..1.0).contains(&sidecar.relative_threshold) {
            return Err(bad(format!(
                "relative_threshold {} is outside [0, 1)",
                sidecar.relative_threshold
            )));
        }
        // Bounds that keep a window's buffers small and its count finite,
        // whatever the file says.
        if !(1000..=384_000).contains(&sidecar.sample_rate) {
            return Err(bad(format!(
                "sample_rate {} is outside 1000..=384000",
                sidecar.sample_rate
            )));
        }
        if !(sidecar.window_seconds >= 0.1 && sidecar.window_seconds <= 60.0) {
            return Err(bad(format!(
                "window_seconds {:?} is outside [0.1, 60]",
                sidecar.window_seconds
            )));
        }
        if !(sidecar.hop_seconds >= 0.01 && sidecar.hop_seconds <= sidecar.window_seconds) {
            return Err(bad(format!(
                "hop_seconds {:?} is outside [0.01, window_seconds {:?}]",
                sidecar.hop_seconds, sidecar.window_seconds
            )));
        }
        Ok(sidecar)
    }

    /// Checks that this build computes the sidecar's feature set, with the
    /// same feature names in the same order.
    pub fn check_feature_set(&self, path: &Path) -> Result<(), ModelError> {
        let fx =
            features::feature_set(&self.feature_set, self.sample_rate).map_err(|e| match e {
                features::FeatureError::UnknownSet { known, .. } => ModelError::UnknownFeatureSet {
                    path: path.to_path_buf(),
                    set: self.feature_set.clone(),
                    known,
                },
                other => ModelError::Sidecar {
                    path: path.to_path_buf(),
                    reason: other.to_string(),
                },
            })?;
        let actual = fx.feature_names();
        for index in 0..actual.len().max(self.feature_names.len()) {
            let (s, a) = (self.feature_names.get(index), actual.get(index));
            if s != a {
                return Err(ModelError::FeatureNames {
                    path: path.to_path_buf(),
                    set: self.feature_set.clone(),
                    index,
                    sidecar: s.cloned().unwrap_or_else(|| "(none)".into()),
                    actual: a.cloned().unwrap_or_else(|| "(none)".into()),
                });
            }
        }
        Ok(())
    }
}
