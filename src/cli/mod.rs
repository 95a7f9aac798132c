//! The `tutti` command line: the subcommands, and the edge where errors
//! become one-line messages (with `anyhow` context) and exit codes.

mod analyze;
mod features;
mod model;

use crate::config;
use crate::pipeline::PipelineError;
use anyhow::{bail, Result};
use clap::error::ErrorKind;
use clap::{Parser, Subcommand};
use model::{load_configured_model, rules};
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
        /// Take `[instruments]` (exclusions and thresholds) and
        /// `analysis.hold`, `margin`, `confirm` and `cooldown` from this
        /// configuration file, as `tutti listen` does; --hold and --margin
        /// win over it.
        #[arg(long)]
        config: Option<PathBuf>,
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
            config,
        } => (|| {
            let (mut hysteresis, overrides) = match &config {
                Some(path) => config::detection_from_file(path)?,
                None => Default::default(),
            };
            hysteresis.hold_seconds = hold.unwrap_or(hysteresis.hold_seconds);
            hysteresis.margin = margin.unwrap_or(hysteresis.margin);
            analyze::analyze(&files, hop, model, json, hysteresis, &overrides)
        })(),
        Command::Features {
            path,
            set,
            out,
            hop,
            window,
            min_sounding,
            threads,
        } => features::features_cmd(
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

fn listen(a: ListenArgs) -> Result<ExitCode> {
    crate::service::init_logging();
    let settings = config::load(a.config.as_deref(), &a.settings)?;
    let max = crate::capture::file::MAX_SPEED;
    if !(a.speed > 0.0 && a.speed <= max) {
        bail!("--speed {}: must be above 0 and at most {max}", a.speed);
    }
    let model = load_configured_model(settings.model.clone())?;
    let rules = rules(&model, &settings.overrides)?;
    crate::daemon::run(
        settings,
        model,
        rules,
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
    let model = load_configured_model(settings.model.clone())?;
    let rules = rules(&model, &settings.overrides)?;
    crate::http::serve_alone(&settings, model, rules)?;
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
    // The overrides are checked against the model the daemon would load.
    let model = load_configured_model(settings.model.clone())?;
    let rules = rules(&model, &settings.overrides)?;
    // Debug output masks the password. A reader that stops early
    // (`tutti config | grep -q …`) is not an error: see is_broken_pipe.
    let mut out = std::io::stdout().lock();
    writeln!(out, "{settings:#?}")?;
    writeln!(
        out,
        "\nInstruments of {} (threshold in force, and whose it is):",
        model.sidecar_path.display()
    )?;
    for (i, l) in rules.labels.iter().enumerate() {
        let whose = match rules.replaced[i] {
            Some(own) => format!("yours (the model's is {own:.2})"),
            None => "the model's".into(),
        };
        let excluded = if rules.excluded[i] {
            ", excluded: never reported"
        } else {
            ""
        };
        writeln!(
            out,
            "  {:<12} {:.2}  {whose}{excluded}",
            l.name, l.threshold
        )?;
    }
    Ok(ExitCode::SUCCESS)
}
