//! `tutti analyze`: WAV files through the pipeline, a table or JSON lines
//! of detections.

use super::model::{load_model, rules};
use super::{is_broken_pipe, one_line};
use crate::detect::{Detector, Hysteresis, Overrides};
use crate::features;
use crate::output::{Format, Printer};
use crate::pipeline;
use crate::window::WindowSpec;
use anyhow::{Context, Result};
use std::path::PathBuf;
use std::process::ExitCode;

pub fn analyze(
    files: &[PathBuf],
    hop: Option<f64>,
    model: Option<PathBuf>,
    json: bool,
    hysteresis: Hysteresis,
    overrides: &Overrides,
) -> Result<ExitCode> {
    let model = load_model(model)?;
    let rules = rules(&model, overrides)?;
    let sidecar = &model.sidecar;
    let spec = WindowSpec::from_seconds(
        sidecar.sample_rate,
        sidecar.window_seconds,
        hop.unwrap_or(sidecar.hop_seconds),
    )?;
    // Checks the feature set before the first file.
    features::feature_set(&sidecar.feature_set, spec.sample_rate)?;
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let stdout = std::io::stdout();
    let mut printer = Printer::new(
        stdout.lock(),
        if json {
            Format::JsonLines
        } else {
            Format::Table
        },
    );
    let mut failed = 0;
    for file in files {
        let name = file.display().to_string();
        // Each file is its own stream: every instrument starts OFF.
        let mut detector = Detector::new(sidecar, &rules, hysteresis);
        // The model runs beside the features, on each part's thread; only
        // the scores come back, so memory does not grow with the features.
        let result = pipeline::for_each_window_parallel(
            file,
            spec,
            &sidecar.feature_set,
            threads,
            |feats, out| -> Result<()> { Ok(model.predict_append(feats, out)?) },
            |info, s| -> Result<()> {
                let d =
                    detector.detect(spec.seconds(info.start_sample), info.padded, info.level, s);
                printer
                    .print(&name, &sidecar.labels, &d)
                    .context("writing to standard output")?;
                Ok(())
            },
        );
        if let Err(e) = result {
            if is_broken_pipe(&e) {
                return Ok(ExitCode::SUCCESS);
            }
            printer.flush().ok();
            eprintln!("tutti: error: {}", one_line(&e));
            failed += 1;
        }
    }
    printer.flush().context("writing to standard output")?;
    Ok(if failed > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
