//! The model: one ONNX file holding everything after the features (scaling,
//! PCA, forest), run by tract, plus a JSON sidecar that says how to feed it
//! and how to read it. The two are checked against each other at load.

mod forest;
mod sidecar;
mod tract_op;

pub use forest::{Forest, ForestError, ForestSpec};
pub use sidecar::{LabelSpec, Sidecar};

use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use tract_onnx::prelude::*;

/// Model loading and running errors; each names the file at fault.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("{path}: cannot read: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: not a valid model sidecar: {reason}")]
    Sidecar { path: PathBuf, reason: String },
    #[error("{path}: sha256 is {actual}, but the sidecar {sidecar} expects {expected}")]
    Checksum {
        path: PathBuf,
        sidecar: PathBuf,
        actual: String,
        expected: String,
    },
    #[error("{path}: the sidecar names feature set `{set}`, which this build does not know (known: {known})")]
    UnknownFeatureSet {
        path: PathBuf,
        set: String,
        known: String,
    },
    #[error("{path}: feature names differ from feature set `{set}` at position {index}: sidecar `{sidecar}`, set `{actual}`")]
    FeatureNames {
        path: PathBuf,
        set: String,
        index: usize,
        sidecar: String,
        actual: String,
    },
    #[error("{path}: the ONNX model takes {model} inputs per row, but the sidecar lists {sidecar} features")]
    InputWidth {
        path: PathBuf,
        model: String,
        sidecar: usize,
    },
    #[error("{path}: the ONNX model gives {model} scores per row, but the sidecar lists {sidecar} labels")]
    LabelCount {
        path: PathBuf,
        model: String,
        sidecar: usize,
    },
    #[error("{path}: ONNX model cannot be loaded: {reason}")]
    Onnx { path: PathBuf, reason: String },
    #[error("{path}: inference failed: {reason}")]
    Run { path: PathBuf, reason: String },
}

type Plan = std::sync::Arc<TypedSimplePlan>;

pub struct Model {
    pub sidecar: Sidecar,
    pub onnx_path: PathBuf,
    plan: Plan,
    n_features: usize,
    out_index: usize,
}

/// Declared dimensions of a graph input or output (`None` for symbolic ones).
fn declared_dims(v: &tract_onnx::pb::ValueInfoProto) -> Vec<Option<i64>> {
    use tract_onnx::pb::tensor_shape_proto::dimension::Value as Dim;
    use tract_onnx::pb::type_proto::Value as Type;
    match v.r#type.as_ref().and_then(|t| t.value.as_ref()) {
        Some(Type::TensorType(t)) => t
            .shape
            .as_ref()
            .map(|s| {
                s.dim
                    .iter()
                    .map(|d| match d.value {
                        Some(Dim::DimValue(n)) => Some(n),
                        _ => None,
                    })
                    .collect()
            })
            .unwrap_or_default(),
        _ => vec![],
    }
}

/// Hex sha256 of a file's bytes.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl Model {
    /// Loads `path`, which may name the sidecar (`.json`) or the ONNX file
    /// (its sidecar is the same path with `.json`).
    pub fn load(path: &Path) -> Result<Model, ModelError> {
        let sidecar_path = if path.extension().is_some_and(|e| e == "json") {
            path.to_path_buf()
        } else {
            path.with_extension("json")
        };
        let sidecar = Sidecar::load(&sidecar_path)?;
        let onnx_path = sidecar_path
            .parent()
            .unwrap_or(Path::new("."))
            .join(&sidecar.model_file);
        let bytes = std::fs::read(&onnx_path).map_err(|source| ModelError::Read {
            path: onnx_path.clone(),
            source,
        })?;
        let actual = sha256_hex(&bytes);
        if actual != sidecar.onnx_sha256 {
            return Err(ModelError::Checksum {
                path: onnx_path,
                sidecar: sidecar_path,
                actual,
                expected: sidecar.onnx_sha256.clone(),
            });
        }
        sidecar.check_feature_set(&sidecar_path)?;
        let onnx_err = |e: TractError| ModelError::Onnx {
            path: onnx_path.clone(),
            reason: format!("{e:#}"),
        };
        // Widths are read from the graph's declared input and output before
        // tract analyses it, so a mismatch is named as such.
        let proto = <tract_onnx::pb::ModelProto as prost::Message>::decode(bytes.as_slice())
            .map_err(|e| ModelError::Onnx {
                path: onnx_path.clone(),
                reason: format!("not an ONNX protobuf: {e}"),
            })?;
        let graph = proto.graph.as_ref().ok_or_else(|| ModelError::Onnx {
            path: onnx_path.clone(),
            reason: "the file holds no graph".into(),
        })?;
        let inits: Vec<&str> = graph.initializer.iter().map(|t| t.name.as_str()).collect();
        let input = graph
            .input
            .iter()
            .find(|i| !inits.contains(&i.name.as_str()));
        let n_features = sidecar.feature_names.len();
        let width = input.and_then(|i| declared_dims(i).get(1).copied().flatten());
        if input.map(|i| declared_dims(i).len()) != Some(2) || width != Some(n_features as i64) {
            return Err(ModelError::InputWidth {
                path: onnx_path,
                model: width.map_or("an unknown number of".into(), |w| w.to_string()),
                sidecar: n_features,
            });
        }
        let out_index = graph
            .output
            .iter()
            .position(|o| o.name == "probabilities")
            .unwrap_or(graph.output.len().saturating_sub(1));
        let n_labels = sidecar.labels.len();
        let scores = graph
            .output
            .get(out_index)
            .and_then(|o| declared_dims(o).get(1).copied().flatten());
        if scores != Some(n_labels as i64) {
            return Err(ModelError::LabelCount {
                path: onnx_path,
                model: scores.map_or("an unknown number of".into(), |w| w.to_string()),
                sidecar: n_labels,
            });
        }
        drop(bytes);
        let model = tract_op::onnx_with_forest()
            .model_for_proto_model(&proto)
            .map_err(onnx_err)?;
        drop(proto);
        let model = model.into_typed().map_err(onnx_err)?;
        let plan = model
            .into_optimized()
            .and_then(|m| m.into_runnable())
            .map_err(onnx_err)?;
        Ok(Model {
            sidecar,
            onnx_path,
            plan,
            n_features,
            out_index,
        })
    }

    pub fn n_features(&self) -> usize {
        self.n_features
    }

    /// Scores for `rows` windows of features (row-major), into `out`
    /// (rows × labels).
    pub fn predict(&self, features: &[f32], out: &mut Vec<f32>) -> Result<(), ModelError> {
        let run_err = |reason: String| ModelError::Run {
            path: self.onnx_path.clone(),
            reason,
        };
        let rows = features.len() / self.n_features;
        let input = Tensor::from_shape(&[rows, self.n_features], features)
            .map_err(|e| run_err(e.to_string()))?;
        let result = self
            .plan
            .run(tvec!(input.into_tvalue()))
            .map_err(|e| run_err(format!("{e:#}")))?;
        let scores = result
            .get(self.out_index)
            .ok_or_else(|| run_err("the model has no outputs".into()))?
            .to_plain_array_view::<f32>()
            .map_err(|e| run_err(e.to_string()))?;
        out.clear();
        out.extend(scores.iter().copied());
        Ok(())
    }
}
