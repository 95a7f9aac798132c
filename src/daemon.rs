//! `tutti listen`: the stages wired together. A source (capture device or
//! WAV file) feeds the ring; the worker thread analyses windows; the MQTT
//! sink, on a single-threaded tokio runtime, publishes them. systemd hears
//! READY after the first window and watchdog pings while audio flows.

use crate::capture::{self, file::FileSource, CaptureError, Stop};
use crate::config::{Broker, Input, Settings};
use crate::live::{Progress, Worker};
use crate::model::Model;
use crate::service;
use crate::sink::broker::{self, BrokerError, Embedded};
use crate::sink::mqtt::{MqttError, Sink, Summary};
use crate::sink::outbox::{Outbox, OutboxError};
use crate::window::{WindowError, WindowSpec};
use std::sync::atomic::Ordering;
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error(transparent)]
    Capture(#[from] CaptureError),
    #[error(transparent)]
    Mqtt(#[from] MqttError),
    #[error(transparent)]
    Outbox(#[from] OutboxError),
    #[error(transparent)]
    Broker(#[from] BrokerError),
    #[error(transparent)]
    Window(#[from] WindowError),
    #[error("cannot start the {what}: {source}")]
    Runtime {
        what: &'static str,
        source: std::io::Error,
    },
}

/// Options that only make sense on the command line.
#[derive(Debug, Clone, Copy)]
pub struct RunOptions {
    /// WAV input: times faster than real time.
    pub speed: f64,
    /// WAV input: loop forever.
    pub looped: bool,
    /// Also print each detection's JSON on stdout.
    pub print: bool,
}

/// Runs until the input ends or SIGTERM/SIGINT; returns what was sent.
pub fn run(settings: Settings, model: Model, opts: RunOptions) -> Result<Summary, DaemonError> {
    let sc = &model.sidecar;
    let spec = WindowSpec::from_seconds(sc.sample_rate, sc.window_seconds, settings.hop_seconds)?;
    let outbox = Outbox::open(&settings.state_dir, settings.outbox_bytes)?;
    let mut embedded = false;
    if settings.mqtt.broker == Broker::Embedded {
        match broker::start(settings.mqtt.embedded_port)? {
            Embedded::Started => {
                embedded = true;
                log::info!(
                    "No broker configured: the embedded MQTT broker listens on 127.0.0.1:{}.",
                    settings.mqtt.embedded_port
                )
            }
            Embedded::PortTaken => log::info!(
                "No broker configured, and a broker already listens on 127.0.0.1:{}: \
                 publishing to it.",
                settings.mqtt.embedded_port
            ),
        }
    }
    let stop = Stop::default();
    let (src_tx, src_rx) = std::sync::mpsc::channel();
    let source = match &settings.input {
        Input::File(path) => FileSource {
            path: path.clone(),
            speed: opts.speed,
            looped: opts.looped,
        }
        .spawn(src_tx, stop.clone())?,
        other => capture::device::spawn(
            capture::device::Request {
                input: other.clone(),
                sample_rate: settings.sample_rate,
                period_frames: settings.period_frames,
            },
            src_tx,
            stop.clone(),
        )?,
    };
    let (out_tx, out_rx) = tokio::sync::mpsc::unbounded_channel();
    let progress = Arc::new(Progress::default());
    let labels = sc.labels.clone();
    let relative = sc.relative_threshold;
    let model_id = model.sidecar_sha256.clone();
    let model = Arc::new(model);
    let worker = {
        let (progress, stop) = (progress.clone(), stop.clone());
        let w = Worker {
            model,
            spec,
            channel: settings.channel,
            hysteresis: settings.hysteresis,
        };
        std::thread::Builder::new()
            .name("tutti-worker".into())
            .spawn(move || w.run(src_rx, out_tx, progress, stop))
            .map_err(|source| DaemonError::Runtime {
                what: "analysis worker",
                source,
            })?
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|source| DaemonError::Runtime {
            what: "async runtime",
            source,
        })?;
    let result = runtime.block_on(async {
        let sink = Sink::start(
            &settings.mqtt,
            settings.mqtt.embedded_port,
            labels,
            relative,
            model_id,
            outbox,
            opts.print,
        )?;
        if let Some(interval) = service::watchdog_interval() {
            tokio::spawn(service::watchdog(interval, progress.clone()));
        }
        let mut ready = false;
        sink.run(out_rx, service::stop_signal(), || {
            if !ready {
                ready = true;
                log::info!("The first window is analysed: ready.");
                service::notify_ready();
            }
        })
        .await
    });
    service::notify_stopping();
    if embedded {
        // The broker goes with the process: give it a moment to pass the
        // last messages (`offline`) on to its subscribers.
        std::thread::sleep(std::time::Duration::from_millis(300));
    }
    stop.request();
    let _ = worker.join();
    let _ = source.join();
    let summary = result?;
    log::info!(
        "Stopped after {} windows ({} delivered, {} frames lost to overruns).",
        summary.windows,
        summary.delivered,
        progress.overruns.load(Ordering::Relaxed)
    );
    Ok(summary)
}
