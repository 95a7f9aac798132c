//! `tutti listen`: the stages wired together. A source (capture device or
//! WAV file) feeds the ring; the worker thread analyses windows; on a
//! single-threaded tokio runtime each detection goes to its consumers: the
//! MQTT sink, the log ("Cello started."), standard output with `--json`,
//! the HTTP API (when `http.listen` is set), and systemd, which hears READY
//! after the first window and watchdog pings while audio flows.

use crate::capture::{self, file::FileSource, stdin::StdinSource, CaptureError};
use crate::config::{Broker, Input, Settings};
use crate::detect::{Detection, Rules};
use crate::http::{HttpError, Live, Metrics, Predictor, Server};
use crate::instruments::title;
use crate::live::{Progress, Worker, WorkerError, WorkerEvent};
use crate::model::Model;
use crate::service;
use crate::sink::broker::{self, BrokerError, Embedded};
use crate::sink::mqtt::{MqttError, Sink, SinkStatus, Summary};
use crate::sink::outbox::{Outbox, OutboxError};
use crate::sink::payload;
use crate::sink::stdout::Printer;
use crate::wait::Stop;
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
    #[error(transparent)]
    Http(#[from] HttpError),
    #[error("analysis stopped: {0}")]
    Worker(#[from] WorkerError),
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
/// `rules` are the user's overrides resolved against `model`'s labels.
pub fn run(
    settings: Settings,
    model: Model,
    rules: Rules,
    opts: RunOptions,
) -> Result<Summary, DaemonError> {
    let sidecar = &model.sidecar;
    let spec = WindowSpec::from_seconds(
        sidecar.sample_rate,
        sidecar.window_seconds,
        settings.hop_seconds,
    )?;
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
        Input::Stdin(format) => StdinSource { format: *format }.spawn(src_tx, stop.clone())?,
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
    let (out_tx, mut events) = tokio::sync::mpsc::unbounded_channel();
    let progress = Arc::new(Progress::default());
    let mut printer = match opts.print {
        true => Some(Printer::spawn().map_err(|source| DaemonError::Runtime {
            what: "standard output printer",
            source,
        })?),
        false => None,
    };
    let labels = sidecar.labels.clone();
    let origin = payload::Origin {
        device_id: settings.mqtt.device_id.clone(),
        source: settings.input_name.clone(),
        model_id: model.sidecar_sha256.clone(),
    };
    let hysteresis = settings.hysteresis;
    let model = Arc::new(model);
    let sink_status = Arc::new(SinkStatus::default());
    // The HTTP API's parts, when it is on; it is bound in the runtime.
    let http = match settings.http.listen {
        Some(_) => Some((
            Arc::new(Live::new(
                settings.input.to_string(),
                settings.hop_seconds,
                progress.clone(),
                sink_status.clone(),
            )),
            Arc::new(Metrics::install(
                labels.iter().map(|l| l.name.clone()).collect(),
            )?),
            Arc::new(Predictor::new(
                model.clone(),
                rules.clone(),
                hysteresis,
                settings.hop_seconds,
                settings.http.queue,
                settings.http.max_body_bytes,
            )),
        )),
        None => None,
    };
    let worker = {
        let (progress, stop) = (progress.clone(), stop.clone());
        let w = Worker {
            model,
            spec,
            channel: settings.channel,
            rules: rules.clone(),
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
    let (result, failure) = runtime.block_on(async {
        let live = match &http {
            Some((live, metrics, predictor)) => {
                let server = Server::bind(
                    &settings.http,
                    predictor.clone(),
                    Some(live.clone()),
                    metrics.clone(),
                    &settings.mqtt.device_id,
                )
                .await;
                let server = match server {
                    Ok(server) => server,
                    Err(e) => return (Err(e.into()), None),
                };
                if let Some(addr) = server.local_addr() {
                    log::info!("The HTTP API and live page listen on http://{addr}/.");
                }
                // It ends with the runtime, after the sink has closed.
                tokio::spawn(server.run(std::future::pending()));
                Some((live.clone(), metrics.clone()))
            }
            None => None,
        };
        let sink = Sink::start(
            &settings.mqtt,
            settings.mqtt.embedded_port,
            &settings.input_name,
            labels.clone(),
            rules.excluded.clone(),
            outbox,
            sink_status,
        );
        let sink = match sink {
            Ok(sink) => sink,
            Err(e) => return (Err(e.into()), None),
        };
        if let Some(interval) = service::watchdog_interval() {
            tokio::spawn(service::watchdog(interval, progress.clone()));
        }
        let (to_sink, detections) = tokio::sync::mpsc::unbounded_channel();
        let sink = sink.run(detections, service::stop_signal());
        tokio::pin!(sink);
        // Hands each detection to every consumer until the input ends or
        // fails; the sink then drains and closes. A stop asked for ends
        // the sink first, and with it the fan-out.
        let printer = &mut printer;
        let fan_out = async move {
            let mut first = true;
            while let Some(event) = events.recv().await {
                let d = match event {
                    WorkerEvent::Window(d) => d,
                    WorkerEvent::Ended => {
                        log::info!("The input has ended.");
                        break;
                    }
                    WorkerEvent::Failed(e) => return Some(e),
                };
                if first {
                    first = false;
                    log::info!("The first window is analysed: ready.");
                    service::notify_ready();
                }
                log_changes(&d);
                // Made once: the sink keeps this line in the outbox.
                let line = payload::detection(&d, &labels, &origin);
                if printer.is_some() || live.is_some() {
                    let payload = payload::with_replayed(&line, false);
                    if let Some((live, metrics)) = &live {
                        if let Some(heard) = &d.heard {
                            metrics.live_window(heard.latency, d.level);
                        }
                        let on = d.on_names(&labels).map(String::from).collect();
                        live.publish(&d, &payload, on);
                    }
                    if let Some(p) = printer {
                        if !p.print(payload) {
                            *printer = None;
                        }
                    }
                }
                if to_sink.send((d, line)).is_err() {
                    break;
                }
            }
            None
        };
        // Whichever ends first; a fan-out that ended has closed the sink's
        // channel, so the sink finishes what it holds and closes.
        let first = tokio::select! {
            summary = &mut sink => Ok(summary),
            failure = fan_out => Err(failure),
        };
        match first {
            Ok(summary) => (summary.map_err(DaemonError::from), None),
            Err(failure) => (sink.await.map_err(DaemonError::from), failure),
        }
    });
    service::notify_stopping();
    if let Some(p) = printer {
        p.finish();
    }
    if embedded {
        // The broker goes with the process: give it a moment to pass the
        // last messages (`offline`) on to its subscribers.
        std::thread::sleep(std::time::Duration::from_millis(300));
    }
    stop.request();
    let _ = worker.join();
    let _ = source.join();
    if let Some(e) = failure {
        return Err(e.into());
    }
    let summary = result?;
    log::info!(
        "Stopped after {} windows ({} delivered, {} frames lost to overruns).",
        summary.windows,
        summary.delivered,
        progress.overruns.load(Ordering::Relaxed)
    );
    Ok(summary)
}

/// "Cello started.": each state change, as a sentence in the log.
fn log_changes(d: &Detection) {
    for c in &d.changes {
        let how = if c.on { "started" } else { "stopped" };
        log::info!("{} {how}.", title(&c.instrument));
    }
}
