//! The `tutti` command line: the subcommands, and the edge where errors
//! become one-line messages (with `anyhow` context) and exit codes.

use crate::config;
use crate::detect::{Detector, Hysteresis};
use crate::features;
use crate::model::Model;
use crate::output::{Format, Printer};
use crate::pipeline::{self, PipelineError};
use crate::window::{WindowSpec, Windower};
use crate::{dataset, instruments::INSTRUMENTS};
use anyhow::{bail, Context, Result};
use clap::error::ErrorKind;
use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Parser)]
#[command(version, about = "Says which orchestral instruments are playing")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Analyse WAV files: the instruments playing in every 2-second window.
    Analyze {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Seconds between window starts (default: the model's, 0.5).
        #[arg(long)]
        hop: Option<f64>,
        /// Model sidecar (.json) or ONNX file (default: $TUTTI_MODEL, then
        /// the installed or bundled model).
        #[arg(long)]
        model: Option<PathBuf>,
        /// One JSON object per window and line instead of a table.
        #[arg(long)]
        json: bool,
        /// With --json, each window also says which instruments the daemon
        /// would hold ON after it (`on`): seconds an instrument stays ON
        /// without support, as `analysis.hold` (default 1.5).
        #[arg(long, value_parser = hold_seconds, allow_negative_numbers = true)]
        hold: Option<f64>,
        /// With --json: how far under its threshold a score still supports
        /// an ON instrument, as `analysis.margin` (default 0.05).
        #[arg(long, value_parser = margin, allow_negative_numbers = true)]
        margin: Option<f32>,
    },
    /// Compute features: of one WAV file (JSON per window), or of a dataset
    /// in the MusicNet layout into an NPZ file for training.
    Features {
        path: PathBuf,
        /// Feature set: seed26 (the seed study's 26 means), timbre98 (means
        /// and deviations of MFCC, deltas, chroma, contrast), logmel128 (the
        /// window's 87 × 128 mel bands in dB, for the CNN) or
        /// timbre98+logmel128 (both, from one analysis of each frame).
        #[arg(long, default_value = "seed26")]
        set: String,
        /// Output NPZ file (required for a dataset directory).
        #[arg(long)]
        out: Option<PathBuf>,
        #[arg(long, default_value_t = 0.5)]
        hop: f64,
        #[arg(long, default_value_t = 2.0)]
        window: f64,
        /// An instrument labels a window when it sounds this many seconds of it.
        #[arg(long, default_value_t = 0.25)]
        min_sounding: f64,
        /// Worker threads (default: all cores).
        #[arg(long)]
        threads: Option<usize>,
    },
    /// Listen: capture audio (or play a WAV file in real time) and publish
    /// the instruments playing to MQTT, every hop.
    Listen(ListenArgs),
    /// Serve the HTTP API alone: POST a WAV file to /v1/predict and get
    /// its detections (`--http` sets the address, `--model` the model).
    Serve {
        /// Configuration file (default: /etc/tutti/tutti.toml, if present).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Every setting of the configuration file, as a flag.
        #[command(flatten)]
        settings: config::Flags,
    },
    /// List the audio capture devices, with their formats.
    Devices,
    /// Check the live daemon's configuration (the file, then TUTTI_*
    /// environment variables, then flags) and print the settings they make.
    Config {
        /// Configuration file (default: /etc/tutti/tutti.toml, if present).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Every setting of the configuration file, as a flag.
        #[command(flatten)]
        settings: config::Flags,
    },
}

#[derive(clap::Args)]
struct ListenArgs {
    /// Configuration file (default: /etc/tutti/tutti.toml, if present).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Every setting of the configuration file, as a flag.
    #[command(flatten)]
    settings: config::Flags,
    /// With a WAV input: play it this many times faster than real time.
    #[arg(long, default_value_t = 1.0)]
    speed: f64,
    /// With a WAV input: start again at its end, forever.
    #[arg(long = "loop")]
    looped: bool,
    /// Also print every detection's JSON on standard output.
    #[arg(long)]
    json: bool,
}

/// Runs the command line and says how it ended.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        // A bad value (`--hop fast`) is bad input like any other: one
        // line that names the flag and the value. Help, versions and
        // unknown flags stay clap's.
        Err(e)
            if matches!(
                e.kind(),
                ErrorKind::InvalidValue | ErrorKind::ValueValidation
            ) =>
        {
            let text = e.to_string();
            let first = text.lines().next().unwrap_or_default();
            eprintln!("tutti: {first}");
            return ExitCode::FAILURE;
        }
        Err(e) => e.exit(),
    };
    let result = match cli.command {
        Command::Analyze {
            files,
            hop,
            model,
            json,
            hold,
            margin,
        } => {
            let defaults = Hysteresis::default();
            let hysteresis = Hysteresis {
                hold_seconds: hold.unwrap_or(defaults.hold_seconds),
                margin: margin.unwrap_or(defaults.margin),
            };
            analyze(&files, hop, model, json, hysteresis)
        }
        Command::Features {
            path,
            set,
            out,
            hop,
            window,
            min_sounding,
            threads,
        } => features_cmd(
            &path,
            &set,
            out.as_deref(),
            hop,
            window,
            min_sounding,
            threads,
        ),
        Command::Config { config, settings } => config_cmd(config.as_deref(), &settings),
        Command::Listen(args) => listen(args),
        Command::Serve { config, settings } => serve(config.as_deref(), &settings),
        Command::Devices => devices_cmd(),
    };
    match result {
        Ok(code) => code,
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tutti: error: {}", one_line(&e));
            ExitCode::FAILURE
        }
    }
}

/// `--hold`: seconds, finite and not negative.
fn hold_seconds(text: &str) -> Result<f64, String> {
    let seconds = text.parse::<f64>().map_err(|e| e.to_string())?;
    config::check_hold(seconds).map_err(|e| e.to_string())
}

/// `--margin`: a score difference in [0, 1).
fn margin(text: &str) -> Result<f32, String> {
    let margin = text.parse::<f64>().map_err(|e| e.to_string())?;
    config::check_margin(margin).map_err(|e| e.to_string())
}

/// The error and its causes on one line, each said once: tutti's error
/// enums already quote their source, which anyhow's `{:#}` would repeat.
fn one_line(e: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line
}

/// A reader that stopped reading (`tutti analyze … | head`) is not an error.
fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            || matches!(c.downcast_ref::<PipelineError>(), Some(PipelineError::Write { source, .. }) if source.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// Where the model is looked for when `--model` is not given.
fn model_candidates() -> Vec<PathBuf> {
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

fn load_model(explicit: Option<PathBuf>) -> Result<Model> {
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

fn analyze(
    files: &[PathBuf],
    hop: Option<f64>,
    model: Option<PathBuf>,
    json: bool,
    hysteresis: Hysteresis,
) -> Result<ExitCode> {
    let model = load_model(model)?;
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
        let mut detector = Detector::new(sidecar, hysteresis);
        // The model runs beside the features, on each part's thread; only
        // the scores come back, so memory does not grow with the features.
        let result = pipeline::for_each_window_parallel(
            file,
            spec,
            &sidecar.feature_set,
            threads,
            |feats, out| -> Result<()> { Ok(model.predict_append(feats, out)?) },
            |info, s| -> Result<()> {
                let d = detector.detect(spec.seconds(info.start_sample), info.padded, s);
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

fn listen(a: ListenArgs) -> Result<ExitCode> {
    crate::service::init_logging();
    let settings = config::load(a.config.as_deref(), &a.settings)?;
    let max = crate::capture::file::MAX_SPEED;
    if !(a.speed > 0.0 && a.speed <= max) {
        bail!("--speed {}: must be above 0 and at most {max}", a.speed);
    }
    let model = load_model(settings.model.clone())?;
    crate::daemon::run(
        settings,
        model,
        crate::daemon::RunOptions {
            speed: a.speed,
            looped: a.looped,
            print: a.json,
        },
    )?;
    Ok(ExitCode::SUCCESS)
}

fn serve(path: Option<&Path>, flags: &config::Flags) -> Result<ExitCode> {
    crate::service::init_logging();
    let settings = config::load(path, flags)?;
    let model = load_model(settings.model.clone())?;
    crate::http::serve_alone(&settings, model)?;
    Ok(ExitCode::SUCCESS)
}

fn devices_cmd() -> Result<ExitCode> {
    let devices = crate::capture::device::list()?;
    let mut out = std::io::stdout().lock();
    if devices.is_empty() {
        writeln!(out, "No audio capture devices found. `tutti listen --input FILE.wav` analyses a recording instead.")?;
        return Ok(ExitCode::SUCCESS);
    }
    for d in devices {
        writeln!(
            out,
            "{:>3}  {}{}\n     id: {}",
            d.index,
            d.name,
            if d.is_default { "  (default)" } else { "" },
            d.id
        )?;
        if let Some(c) = d.default_config {
            writeln!(out, "     default: {c}")?;
        }
        for c in d.configs {
            writeln!(out, "     supports: {c}")?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn config_cmd(path: Option<&Path>, flags: &config::Flags) -> Result<ExitCode> {
    let settings = config::load(path, flags)?;
    // Debug output masks the password. A reader that stops early
    // (`tutti config | grep -q …`) is not an error: see is_broken_pipe.
    writeln!(std::io::stdout().lock(), "{settings:#?}")?;
    Ok(ExitCode::SUCCESS)
}

fn features_cmd(
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
