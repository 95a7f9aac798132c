//! `tutti features`: the features of one WAV file, or of a dataset into an
//! NPZ file for training.

use crate::features;
use crate::pipeline::{self, PipelineError};
use crate::window::{WindowSpec, Windower};
use crate::{dataset, instruments::INSTRUMENTS};
use anyhow::{bail, Result};
use indicatif::{ProgressBar, ProgressStyle};
use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

pub fn features_cmd(
    path: &Path,
    set: &str,
    out: Option<&Path>,
    hop: f64,
    window: f64,
    min_sounding: f64,
    threads: Option<usize>,
) -> Result<ExitCode> {
    let sr = features::sample_rate(set)?;
    let spec = WindowSpec::from_seconds(sr, window, hop)?;
    if path.is_dir() {
        let Some(out) = out else {
            bail!(
                "{}: a dataset directory needs --out FILE.npz",
                path.display()
            );
        };
        let recordings = dataset::scan(path)?;
        let bar = ProgressBar::new(recordings.len() as u64).with_style(
            ProgressStyle::with_template(
                "features {bar:40} {pos}/{len} recordings [{elapsed} < {eta}]",
            )
            .expect("valid template"),
        );
        let threads =
            threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
        let table =
            pipeline::extract_dataset(&recordings, spec, set, min_sounding, threads, &|| {
                bar.inc(1)
            })?;
        bar.finish();
        let metadata = dataset::metadata(path);
        let meta = serde_json::json!({
            "feature_set": table.feature_set,
            "feature_names": table.feature_names,
            "labels": INSTRUMENTS.iter().map(|i| serde_json::json!({"name": i.name, "program": i.program})).collect::<Vec<_>>(),
            "sample_rate": sr,
            "window_seconds": window,
            "hop_seconds": hop,
            "min_sounding_seconds": min_sounding,
            "splits": ["train", "test"],
            "recordings": table.recordings,
            "metadata": metadata,
            "source": path.display().to_string(),
        });
        table.write_npz(out, meta)?;
        eprintln!(
            "{} windows of {} recordings written to {}",
            table.rows(),
            recordings.len(),
            out.display()
        );
        return Ok(ExitCode::SUCCESS);
    }
    let mut windower = Windower::new(spec, features::feature_set(set, sr)?);
    let names = windower.feature_set().feature_names().to_vec();
    let stdout = std::io::stdout();
    let mut lock = stdout.lock();
    let file = path.display().to_string();
    pipeline::for_each_window(
        path,
        &mut windower,
        |info, feats| -> Result<(), PipelineError> {
            let start = spec.seconds(info.start_sample);
            let map: serde_json::Map<String, serde_json::Value> = names
                .iter()
                .zip(feats)
                .map(|(n, &v)| (n.clone(), serde_json::Value::from(v)))
                .collect();
            let line = serde_json::json!({
                "file": file, "start": start, "end": start + window, "padded": info.padded,
                "feature_set": set, "features": map,
            });
            writeln!(lock, "{line}").map_err(|source| PipelineError::Write {
                path: "<stdout>".into(),
                source,
            })
        },
    )?;
    Ok(ExitCode::SUCCESS)
}
