//! Both models, run by tract, reproduce their training framework: the
//! forest (with tutti's forest evaluator) scikit-learn's probabilities
//! (fixture written by models/train/train.py), the CNN JAX's (written by
//! models/train/cnn.py). Every mismatch between sidecar and ONNX file is
//! refused at load with an error that names the file and the mismatch.

use prost::Message;
use std::path::{Path, PathBuf};
use tutti::{sha256_hex, Model, ModelError};

fn models_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("models")
}

/// A parity fixture and the model it names.
fn parity(fixture: &str) -> (Model, serde_json::Value) {
    let fixture: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/fixtures")
                .join(fixture),
        )
        .unwrap(),
    )
    .unwrap();
    let model = Model::load(&models_dir().join(fixture["model"].as_str().unwrap())).unwrap();
    assert_eq!(
        fixture["onnx_sha256"], model.sidecar.onnx_sha256,
        "the parity fixture belongs to another model: rerun models/train/rebuild.sh"
    );
    (model, fixture)
}

/// The largest |got - want| over every score of every row.
fn worst_difference(got: &[f32], want: &[Vec<f32>]) -> f32 {
    assert_eq!(got.len(), want.iter().map(Vec::len).sum::<usize>());
    got.iter()
        .zip(want.iter().flatten())
        .map(|(g, w)| (g - w).abs())
        .fold(0.0, f32::max)
}

#[test]
fn tract_matches_scikit_learn_within_1e_5() {
    let (model, fixture) = parity("model_parity.json");
    assert_eq!(model.sidecar.feature_set, "timbre98");
    let rows: Vec<Vec<f32>> = serde_json::from_value(fixture["features"].clone()).unwrap();
    let want: Vec<Vec<f32>> = serde_json::from_value(fixture["probabilities"].clone()).unwrap();
    assert!(rows.len() >= 32);
    let flat: Vec<f32> = rows.concat();
    let mut got = vec![];
    model.predict(&flat, &mut got).unwrap();
    let n = model.sidecar.labels.len();
    assert_eq!(got.len(), rows.len() * n);
    let worst = worst_difference(&got, &want);
    assert!(worst <= 1e-5, "max |tract - sklearn| = {worst}");
    // One row at a time gives the same answer as the batch.
    let mut single = vec![];
    model.predict(&rows[3], &mut single).unwrap();
    assert_eq!(&single[..], &got[3 * n..4 * n]);
}

#[test]
fn tract_runs_the_cnn_as_jax_does_within_1e_5() {
    let (model, fixture) = parity("cnn_parity.json");
    assert_eq!(model.sidecar.feature_set, "logmel128");
    // Log-mel windows in hundredths of a dB: exactly what JAX read.
    let rows: Vec<Vec<i64>> = serde_json::from_value(fixture["features_centi_db"].clone()).unwrap();
    let want: Vec<Vec<f32>> = serde_json::from_value(fixture["probabilities"].clone()).unwrap();
    assert_eq!(rows.len(), 2);
    let flat: Vec<f32> = rows
        .iter()
        .flatten()
        .map(|&c| (c as f64 / 100.0) as f32)
        .collect();
    assert_eq!(flat.len(), 2 * model.n_features());
    let mut got = vec![];
    model.predict(&flat, &mut got).unwrap();
    let n = model.sidecar.labels.len();
    let worst = worst_difference(&got, &want);
    assert!(worst <= 1e-5, "max |tract - JAX| = {worst}");
    // One window at a time (as the daemon runs it) gives the same answer.
    let mut single = vec![];
    model
        .predict(&flat[model.n_features()..], &mut single)
        .unwrap();
    for (a, b) in single.iter().zip(&got[n..]) {
        assert!((a - b).abs() <= 1e-6, "{a} vs {b}");
    }
}

/// Parity fixture rows as the model reads them: the forest's features as
/// they are, the CNN's log-mel from hundredths of a dB.
fn fixture_rows(fixture: &serde_json::Value) -> Vec<Vec<f32>> {
    match fixture.get("features") {
        Some(rows) => serde_json::from_value(rows.clone()).unwrap(),
        None => {
            let rows: Vec<Vec<i64>> =
                serde_json::from_value(fixture["features_centi_db"].clone()).unwrap();
            rows.iter()
                .map(|r| r.iter().map(|&c| (c as f64 / 100.0) as f32).collect())
                .collect()
        }
    }
}

#[test]
fn the_ensemble_scores_the_mean_of_its_members() {
    let model = Model::load(&models_dir().join("ensemble.json")).unwrap();
    assert_eq!(model.sidecar.feature_set, "timbre98+logmel128");
    // Each member's parity fixture (its framework's own output): row i of
    // the ensemble's input is the forest's row i followed by the CNN's.
    let members = [parity("model_parity.json").1, parity("cnn_parity.json").1];
    let sidecar: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(models_dir().join("ensemble.json")).unwrap())
            .unwrap();
    let listed: Vec<&str> = sidecar["training"]["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["onnx_sha256"].as_str().unwrap())
        .collect();
    let fixtures: Vec<&str> = members
        .iter()
        .map(|f| f["onnx_sha256"].as_str().unwrap())
        .collect();
    assert_eq!(
        listed, fixtures,
        "the ensemble was built from other members"
    );
    let rows: Vec<Vec<Vec<f32>>> = members.iter().map(fixture_rows).collect();
    let n_rows = rows.iter().map(Vec::len).min().unwrap();
    assert!(n_rows >= 2);
    let input: Vec<f32> = (0..n_rows)
        .flat_map(|i| rows.iter().flat_map(move |r| r[i].iter().copied()))
        .collect();
    assert_eq!(input.len(), n_rows * model.n_features());
    let probabilities: Vec<Vec<Vec<f32>>> = members
        .iter()
        .map(|f| serde_json::from_value(f["probabilities"].clone()).unwrap())
        .collect();
    let want: Vec<Vec<f32>> = (0..n_rows)
        .map(|i| {
            (0..model.sidecar.labels.len())
                .map(|k| probabilities.iter().map(|p| p[i][k]).sum::<f32>() / 2.0)
                .collect()
        })
        .collect();
    let mut got = vec![];
    model.predict(&input, &mut got).unwrap();
    let worst = worst_difference(&got, &want);
    assert!(worst <= 1e-5, "max |ensemble - mean of members| = {worst}");
    // The members disagree on these windows, so the mean is neither.
    let apart = probabilities[0][..n_rows]
        .iter()
        .flatten()
        .zip(probabilities[1][..n_rows].iter().flatten())
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f32::max);
    assert!(apart > 0.1, "the members agree everywhere: a weak test");
}

/// A copy of the shipped model in a temporary directory, to be broken.
struct Copy {
    _dir: tempfile::TempDir,
    json: PathBuf,
    onnx: PathBuf,
}

fn copy_model() -> Copy {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("tutti.json");
    std::fs::copy(models_dir().join("tutti.json"), &json).unwrap();
    let sidecar: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let name = sidecar["model_file"].as_str().unwrap();
    let onnx = dir.path().join(name);
    std::fs::copy(models_dir().join(name), &onnx).unwrap();
    Copy {
        _dir: dir,
        json,
        onnx,
    }
}

fn edit_sidecar(c: &Copy, f: impl FnOnce(&mut serde_json::Value)) {
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&c.json).unwrap()).unwrap();
    f(&mut v);
    std::fs::write(&c.json, v.to_string()).unwrap();
}

fn load_err(c: &Copy) -> (ModelError, String) {
    let e = Model::load(&c.json)
        .err()
        .expect("the broken model must be refused");
    let msg = e.to_string();
    assert!(!msg.contains('\n'), "one-line error: {msg}");
    (e, msg)
}

#[test]
fn a_modified_onnx_file_fails_its_checksum() {
    let c = copy_model();
    let mut bytes = std::fs::read(&c.onnx).unwrap();
    bytes.push(0);
    std::fs::write(&c.onnx, bytes).unwrap();
    let (e, msg) = load_err(&c);
    assert!(matches!(e, ModelError::Checksum { .. }), "{msg}");
    assert!(
        msg.contains(&c.onnx.display().to_string()) && msg.contains("sha256"),
        "{msg}"
    );
}

#[test]
fn an_unknown_feature_set_is_named() {
    let c = copy_model();
    edit_sidecar(&c, |v| v["feature_set"] = "mystery42".into());
    let (e, msg) = load_err(&c);
    assert!(matches!(e, ModelError::UnknownFeatureSet { .. }), "{msg}");
    assert!(msg.contains("mystery42") && msg.contains("seed26"), "{msg}");
}

#[test]
fn reordered_feature_names_are_refused() {
    let c = copy_model();
    edit_sidecar(&c, |v| {
        v["feature_names"].as_array_mut().unwrap().swap(1, 2)
    });
    let (e, msg) = load_err(&c);
    assert!(
        matches!(e, ModelError::FeatureNames { index: 1, .. }),
        "{msg}"
    );
}

#[test]
fn a_label_count_mismatch_is_refused() {
    let c = copy_model();
    edit_sidecar(&c, |v| {
        v["labels"].as_array_mut().unwrap().pop();
    });
    let (e, msg) = load_err(&c);
    assert!(
        matches!(e, ModelError::LabelCount { sidecar: 10, .. }),
        "{msg}"
    );
    assert!(
        msg.contains("11 scores") && msg.contains("10 labels"),
        "{msg}"
    );
}

#[test]
fn a_wrong_input_width_is_refused() {
    use tract_onnx::pb::tensor_shape_proto::dimension::Value as Dim;
    use tract_onnx::pb::type_proto::Value as Type;
    let c = copy_model();
    let sidecar: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&c.json).unwrap()).unwrap();
    let width = sidecar["feature_names"].as_array().unwrap().len();
    let mut proto =
        tract_onnx::pb::ModelProto::decode(std::fs::read(&c.onnx).unwrap().as_slice()).unwrap();
    let input = &mut proto.graph.as_mut().unwrap().input[0];
    let Some(Type::TensorType(t)) = input.r#type.as_mut().unwrap().value.as_mut() else {
        panic!("tensor input")
    };
    t.shape.as_mut().unwrap().dim[1].value = Some(Dim::DimValue(width as i64 - 1));
    let bytes = proto.encode_to_vec();
    std::fs::write(&c.onnx, &bytes).unwrap();
    edit_sidecar(&c, |v| v["onnx_sha256"] = sha256_hex(&bytes).into());
    let (e, msg) = load_err(&c);
    assert!(
        matches!(e, ModelError::InputWidth { sidecar, .. } if sidecar == width),
        "{msg}"
    );
    assert!(
        msg.contains(&format!("takes {} inputs", width - 1)),
        "{msg}"
    );
}

#[test]
fn broken_or_missing_files_are_named() {
    let c = copy_model();
    std::fs::write(&c.json, "{ not json").unwrap();
    let (e, msg) = load_err(&c);
    assert!(
        matches!(e, ModelError::Sidecar { .. }) && msg.contains("tutti.json"),
        "{msg}"
    );

    let c = copy_model();
    std::fs::remove_file(&c.onnx).unwrap();
    let (e, msg) = load_err(&c);
    assert!(
        matches!(e, ModelError::Read { .. }) && msg.contains(&c.onnx.display().to_string()),
        "{msg}"
    );

    let c = copy_model();
    edit_sidecar(&c, |v| v["labels"][0]["threshold"] = 1.5.into());
    let (_, msg) = load_err(&c);
    assert!(
        msg.contains("threshold 1.5") && msg.contains("piano"),
        "{msg}"
    );

    let c = copy_model();
    edit_sidecar(&c, |v| v["relative_threshold"] = 1.0.into());
    let (_, msg) = load_err(&c);
    assert!(
        msg.contains("relative_threshold 1") && msg.contains("tutti.json"),
        "{msg}"
    );
}

#[test]
fn the_onnx_path_also_finds_its_sidecar() {
    let c = copy_model();
    // The shipped tutti.json is a copy of the winner's own sidecar, which
    // sits beside its ONNX file under the same stem.
    std::fs::copy(&c.json, c.onnx.with_extension("json")).unwrap();
    let m = Model::load(&c.onnx).unwrap();
    assert_eq!(m.sidecar.labels.len(), 11);
    assert_eq!(m.sidecar.labels[4].name, "cello");
    assert_eq!(m.sidecar.labels[4].program, 43);
}

#[test]
fn an_unknown_sidecar_key_is_refused_by_name() {
    // A misspelt key must not be ignored while the value it meant to set
    // silently keeps its default.
    let c = copy_model();
    edit_sidecar(&c, |v| v["relative_treshold"] = 0.5.into());
    let (e, msg) = load_err(&c);
    assert!(matches!(e, ModelError::Sidecar { .. }), "{msg}");
    assert!(
        msg.contains("unknown field `relative_treshold`") && msg.contains("tutti.json"),
        "{msg}"
    );
}

#[test]
fn the_model_id_is_the_hash_of_the_sidecar_that_was_parsed() {
    let c = copy_model();
    // Reformatted: the same sidecar to serde, other bytes to sha256.
    edit_sidecar(&c, |_| {});
    let bytes = std::fs::read(&c.json).unwrap();
    let m = Model::load(&c.json).unwrap();
    assert_eq!(m.sidecar_sha256, sha256_hex(&bytes));
    let shipped = Model::load(&models_dir().join("tutti.json")).unwrap();
    assert_ne!(m.sidecar_sha256, shipped.sidecar_sha256);
}
