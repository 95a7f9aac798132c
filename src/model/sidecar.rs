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
        if !(sidecar.window_seconds > 0.0 && sidecar.hop_seconds > 0.0 && sidecar.sample_rate > 0) {
            return Err(bad(
                "window_seconds, hop_seconds and sample_rate must be positive".into(),
            ));
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
