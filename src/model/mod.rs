//! The model: one ONNX file holding everything after the features (scaling,
//! PCA, forest), run by tract, plus a JSON sidecar that says how to feed it
//! and how to read it. The two are checked against each other at load.

mod forest;
mod sidecar;
mod tract_op;

pub use sidecar::{LabelSpec, Sidecar};

use prost::bytes::Buf;
use sha2::{Digest, Sha256};
use std::io::Read;
use std::path::{Path, PathBuf};
use tract_onnx::prelude::translator::Translate;
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

fn optimize(model: TractResult<TypedModel>) -> TractResult<Plan> {
    model?.into_optimized()?.into_runnable()
}

pub struct Model {
    pub sidecar: Sidecar,
    /// Hex sha256 of the sidecar file: names this exact model in payloads.
    pub sidecar_sha256: String,
    pub sidecar_path: PathBuf,
    pub onnx_path: PathBuf,
    /// Runs any number of rows.
    plan: Plan,
    /// Runs one row (when the graph leaves the number of rows open).
    single: Option<Plan>,
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
    hex(&Sha256::digest(bytes))
}

fn hex(digest: &[u8]) -> String {
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// A protobuf input that reads a file in blocks and hashes every byte it
/// reads. A read error ends the input early (the decoder then fails) and is
/// reported by `finish`.
struct HashingBuf<R: Read> {
    reader: R,
    block: Box<[u8]>,
    pos: usize,
    len: usize,
    /// Bytes not yet consumed, counting the block's unconsumed part.
    remaining: u64,
    hasher: Sha256,
    error: Option<std::io::Error>,
}

impl HashingBuf<std::fs::File> {
    fn new(file: std::fs::File) -> std::io::Result<Self> {
        let remaining = file.metadata()?.len();
        let mut buf = HashingBuf {
            reader: file,
            block: vec![0; 1 << 16].into_boxed_slice(),
            pos: 0,
            len: 0,
            remaining,
            hasher: Sha256::new(),
            error: None,
        };
        buf.refill();
        Ok(buf)
    }
}

impl<R: Read> HashingBuf<R> {
    fn refill(&mut self) {
        (self.pos, self.len) = (0, 0);
        while self.remaining > 0 && self.error.is_none() {
            match self.reader.read(&mut self.block) {
                Ok(0) => {
                    self.error = Some(std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        "the file shrank while it was read",
                    ));
                }
                Ok(n) => {
                    // A file that grew while it was read ends where it began.
                    let n = n.min(usize::try_from(self.remaining).unwrap_or(usize::MAX));
                    self.hasher.update(&self.block[..n]);
                    self.len = n;
                    return;
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => self.error = Some(e),
            }
        }
        self.remaining = 0;
    }

    /// Hashes whatever the decoder left unread; returns the hex digest and
    /// the read error, if any.
    fn finish(mut self) -> (String, Option<std::io::Error>) {
        while self.remaining > 0 {
            let left = self.len - self.pos;
            self.advance(left);
        }
        (hex(&self.hasher.finalize()), self.error)
    }
}

impl<R: Read> Buf for HashingBuf<R> {
    fn remaining(&self) -> usize {
        self.remaining as usize
    }

    fn chunk(&self) -> &[u8] {
        &self.block[self.pos..self.len]
    }

    fn advance(&mut self, mut cnt: usize) {
        while cnt > 0 && self.remaining > 0 {
            let step = cnt.min(self.len - self.pos);
            self.pos += step;
            self.remaining -= step as u64;
            cnt -= step;
            if self.pos == self.len && self.remaining > 0 {
                self.refill();
            }
        }
    }
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
        // Read once: the hash that names the model in payloads is of the
        // very bytes that were parsed.
        let bytes = std::fs::read(&sidecar_path).map_err(|source| ModelError::Read {
            path: sidecar_path.clone(),
            source,
        })?;
        let sidecar = Sidecar::parse(&sidecar_path, &bytes)?;
        let sidecar_sha256 = sha256_hex(&bytes);
        let onnx_path = sidecar_path
            .parent()
            .unwrap_or(Path::new("."))
            .join(&sidecar.model_file);
        // The file is hashed while it is decoded, block by block, so it is
        // read once and never held whole beside its decoded form.
        let file = std::fs::File::open(&onnx_path).map_err(|source| ModelError::Read {
            path: onnx_path.clone(),
            source,
        })?;
        let mut reader = HashingBuf::new(file).map_err(|source| ModelError::Read {
            path: onnx_path.clone(),
            source,
        })?;
        let decoded = <tract_onnx::pb::ModelProto as prost::Message>::decode(&mut reader);
        let (actual, read_error) = reader.finish();
        if let Some(source) = read_error {
            return Err(ModelError::Read {
                path: onnx_path,
                source,
            });
        }
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
        let proto = decoded.map_err(|e| ModelError::Onnx {
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
        let model = tract_op::onnx_with_forest()
            .model_for_proto_model(&proto)
            .map_err(onnx_err)?;
        drop(proto);
        let model = model.into_typed().map_err(onnx_err)?;
        // A plan made for one row runs faster than the one for any number
        // (tract sizes every tensor in advance; a quarter less CPU for the
        // CNN): windows go through the model one at a time, in `listen` and
        // in `analyze` alike.
        let single = match model.input_fact(0).map_err(onnx_err)?.shape[0].clone() {
            TDim::Sym(rows) => {
                let one: std::collections::HashMap<Symbol, TDim> = [(rows, TDim::Val(1))].into();
                Some(optimize(one.translate_model(&model)).map_err(onnx_err)?)
            }
            _ => None,
        };
        let plan = optimize(Ok(model)).map_err(onnx_err)?;
        Ok(Model {
            sidecar,
            sidecar_sha256,
            sidecar_path,
            onnx_path,
            plan,
            single,
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
        out.clear();
        self.predict_append(features, out)
    }

    /// As [`Model::predict`], appending the scores to what `out` holds.
    pub fn predict_append(&self, features: &[f32], out: &mut Vec<f32>) -> Result<(), ModelError> {
        let run_err = |reason: String| ModelError::Run {
            path: self.onnx_path.clone(),
            reason,
        };
        let rows = features.len() / self.n_features;
        let input = Tensor::from_shape(&[rows, self.n_features], features)
            .map_err(|e| run_err(e.to_string()))?;
        let plan = match &self.single {
            Some(single) if rows == 1 => single,
            _ => &self.plan,
        };
        let result = plan
            .run(tvec!(input.into_tvalue()))
            .map_err(|e| run_err(format!("{e:#}")))?;
        let scores = result
            .get(self.out_index)
            .ok_or_else(|| run_err("the model has no outputs".into()))?
            .to_plain_array_view::<f32>()
            .map_err(|e| run_err(e.to_string()))?;
        out.extend(scores.iter().copied());
        Ok(())
    }
}
