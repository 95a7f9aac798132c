//! Which model the commands load, and the user's per-instrument
//! overrides resolved against it.

use crate::detect::{Overrides, Rules};
use crate::model::Model;
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};

/// Where the model is looked for when `--model` is not given.
pub fn model_candidates() -> Vec<PathBuf> {
    let mut c = vec![];
    if let Some(p) = std::env::var_os("TUTTI_MODEL") {
        c.push(PathBuf::from(p));
    }
    if let Ok(exe) = std::env::current_exe() {
        if let Some(prefix) = exe.parent().and_then(Path::parent) {
            c.push(prefix.join("share/tutti/models/tutti.json"));
        }
    }
    c.push(PathBuf::from("/usr/share/tutti/models/tutti.json"));
    // Relative: a checkout's own model, when run from its root. Never the
    // build machine's checkout, which an installed binary must not know.
    c.push(PathBuf::from("models/tutti.json"));
    c
}

pub fn load_model(explicit: Option<PathBuf>) -> Result<Model> {
    if let Some(p) = explicit {
        return Ok(Model::load(&p)?);
    }
    let candidates = model_candidates();
    match candidates.iter().find(|p| p.is_file()) {
        Some(p) => Ok(Model::load(p)?),
        None => bail!(
            "no model found; pass --model or set TUTTI_MODEL (looked in {})",
            candidates
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// The model the daemon's settings name (`analysis.model`, which `--model`
/// sets too), else the installed one; a model that does not load is one
/// line that names the key.
pub fn load_configured_model(setting: Option<PathBuf>) -> Result<Model> {
    match setting {
        Some(p) => Model::load(&p).with_context(|| format!("`analysis.model` = {p:?}")),
        None => load_model(None),
    }
}

/// The `overrides` applied to `model`'s labels; a name it does not know is
/// refused, naming the model.
pub fn rules(model: &Model, overrides: &Overrides) -> Result<Rules> {
    Rules::resolve(&model.sidecar.labels, overrides)
        .map_err(|e| anyhow::anyhow!("{}: {e}", model.sidecar_path.display()))
}
