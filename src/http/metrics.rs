//! `GET /metrics`: Prometheus text, made by `metrics-exporter-prometheus`.
//! Counters the daemon already keeps (windows, frames lost, the outbox,
//! the broker link, the instruments ON) are read when scraped; the analysis
//! time and the requests are recorded as they happen.

use super::{App, HttpError};
use crate::live::Progress;
use axum::body::Body;
use axum::extract::State;
use axum::http::{header, Request};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use metrics::{counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::sync::atomic::Ordering;
use std::sync::OnceLock;
use std::time::Duration;

/// Upper bounds of the analysis time buckets, in seconds.
const ANALYSIS_BUCKETS: &[f64] = &[
    0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0,
];

/// The process's recorder: there is one per process.
static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// The metrics of this process, and the instrument names of its model.
pub struct Metrics {
    handle: PrometheusHandle,
    labels: Vec<String>,
}

impl Metrics {
    /// Installs the process's recorder (once; later calls share it).
    pub fn install(labels: Vec<String>) -> Result<Metrics, HttpError> {
        let handle = match HANDLE.get() {
            Some(h) => h.clone(),
            None => {
                let h = PrometheusBuilder::new()
                    .set_buckets_for_metric(
                        Matcher::Full("tutti_analysis_seconds".into()),
                        ANALYSIS_BUCKETS,
                    )
                    .map_err(|e| HttpError::Metrics(e.to_string()))?
                    .install_recorder()
                    .map_err(|e| HttpError::Metrics(e.to_string()))?;
                describe();
                HANDLE.get_or_init(|| h).clone()
            }
        };
        Ok(Metrics { handle, labels })
    }

    /// A prediction of `windows` windows took `analysis`.
    pub fn predicted(&self, analysis: Duration, windows: u64) {
        histogram!("tutti_analysis_seconds", "source" => "predict").record(analysis);
        counter!("tutti_windows_total", "source" => "predict").increment(windows);
    }

    /// A live window was detected `latency` after its audio arrived.
    pub fn live_window(&self, latency: Duration, level: crate::window::Level) {
        histogram!("tutti_analysis_seconds", "source" => "live").record(latency);
        gauge!("tutti_window_level_dbfs", "measure" => "rms").set(level.rms_dbfs);
        gauge!("tutti_window_level_dbfs", "measure" => "peak").set(level.peak_dbfs);
    }

    /// The live state, read when scraped.
    fn read_live(&self, live: &super::Live) {
        let p: &Progress = live.progress();
        counter!("tutti_windows_total", "source" => "live")
            .absolute(p.windows.load(Ordering::Relaxed));
        counter!("tutti_frames_lost_total").absolute(p.overruns.load(Ordering::Relaxed));
        if let Some(level) = p.level_dbfs() {
            gauge!("tutti_input_level_dbfs").set(level);
        }
        let s = live.sink();
        gauge!("tutti_broker_connected").set(u8::from(s.connected.load(Ordering::Relaxed)));
        gauge!("tutti_outbox_detections").set(s.outbox_detections.load(Ordering::Relaxed) as f64);
        gauge!("tutti_outbox_bytes").set(s.outbox_bytes.load(Ordering::Relaxed) as f64);
        let on = live.on();
        for name in &self.labels {
            gauge!("tutti_instrument_on", "instrument" => name.clone())
                .set(u8::from(on.contains(name)));
        }
    }
}

fn describe() {
    describe_counter!(
        "tutti_windows_total",
        "Windows analysed, live or in posted clips."
    );
    describe_histogram!(
        "tutti_analysis_seconds",
        metrics::Unit::Seconds,
        "Live: from a window's last sample to its detection. Predict: a clip's analysis."
    );
    describe_counter!(
        "tutti_frames_lost_total",
        "Audio frames lost because the analysis fell behind the capture."
    );
    describe_gauge!(
        "tutti_input_level_dbfs",
        "RMS level of the latest audio, dBFS."
    );
    describe_gauge!(
        "tutti_window_level_dbfs",
        "RMS and peak of the latest analysed window, dBFS, as its detection gives them."
    );
    describe_gauge!(
        "tutti_broker_connected",
        "1 while connected to the MQTT broker."
    );
    describe_gauge!(
        "tutti_outbox_detections",
        "Detections waiting in the outbox for the broker."
    );
    describe_gauge!("tutti_outbox_bytes", "Bytes waiting in the outbox.");
    describe_gauge!("tutti_instrument_on", "1 while the instrument is ON.");
    describe_counter!(
        "tutti_http_requests_total",
        "HTTP requests answered, by route and status."
    );
}

/// `GET /metrics`.
pub async fn render(State(app): State<App>) -> Response {
    if let Some(live) = &app.live {
        app.metrics.read_live(live);
    }
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        app.metrics.handle.render(),
    )
        .into_response()
}

/// Counts every request by route (the pattern axum matched, which the
/// routes hand out through [`super::tag_route`]; never the raw path) and
/// status, and logs it at debug level; bodies are never logged.
pub async fn count_request(
    State(_app): State<App>,
    request: Request<Body>,
    next: Next,
) -> Response {
    let method = request.method().clone();
    let started = std::time::Instant::now();
    let response = next.run(request).await;
    let route = response
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or("unmatched".to_string(), |m| m.as_str().to_string());
    let status = response.status().as_u16();
    counter!("tutti_http_requests_total", "route" => route.clone(), "status" => status.to_string())
        .increment(1);
    log::debug!(
        "HTTP {method} {route} answered {status} in {:.1} ms.",
        started.elapsed().as_secs_f64() * 1e3
    );
    response
}
