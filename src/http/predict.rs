//! `POST /v1/predict`: a WAV file in, its detections out, through the
//! pipeline `tutti analyze` uses (decoding, windows, features, model,
//! detector), so both give the same windows to the last digit.
//!
//! A prediction is admitted only while fewer than `in_flight + queue` are
//! admitted (503 beyond), then waits for one of `in_flight` analysis slots
//! (two per core) and runs on tokio's blocking threads, with a windower
//! taken from a pool so that FFT plans are made once.

use super::errors::ApiError;
use super::App;
use crate::audio::{AudioError, MonoStream, Resamplers};
use crate::detect::{round4, Detector, Hysteresis, Rules};
use crate::features;
use crate::model::Model;
use crate::output::WindowJson;
use crate::pipeline;
use crate::window::{WindowSpec, Windower};
use axum::body::{Body, Bytes};
use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// What error messages call the posted file.
const BODY_NAME: &str = "request body";

/// Runs predictions for the API, a bounded number at a time.
pub struct Predictor {
    model: Arc<Model>,
    rules: Rules,
    hysteresis: Hysteresis,
    default_hop: f64,
    /// Windowers ready for reuse (each keeps its spec).
    pool: Mutex<Vec<Windower>>,
    resamplers: Resamplers,
    in_flight: usize,
    queue: usize,
    /// One permit per analysis slot.
    running: Arc<Semaphore>,
    /// One permit per prediction admitted: running or waiting.
    admitted: Arc<Semaphore>,
    /// One permit per byte of request bodies held in memory.
    body_memory: Arc<Semaphore>,
    body_memory_bytes: usize,
    answered: AtomicU64,
    refused_busy: AtomicU64,
}

/// Memory kept for request bodies, at least (one largest body always fits).
const BODY_MEMORY: usize = 64 << 20;

impl Predictor {
    /// Predictions with `model`, whose windows start `hop` seconds apart
    /// unless a request says otherwise; `queue` may wait beyond the two
    /// per core that run. Bodies in memory take at most [`BODY_MEMORY`]
    /// or `max_body` bytes, whichever is more.
    pub fn new(
        model: Arc<Model>,
        rules: Rules,
        hysteresis: Hysteresis,
        hop: f64,
        queue: usize,
        max_body: usize,
    ) -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let in_flight = 2 * cores;
        let body_memory_bytes = BODY_MEMORY.max(max_body);
        Predictor {
            model,
            rules,
            hysteresis,
            default_hop: hop,
            pool: Mutex::new(Vec::new()),
            resamplers: Resamplers::default(),
            in_flight,
            queue,
            running: Arc::new(Semaphore::new(in_flight)),
            admitted: Arc::new(Semaphore::new(in_flight + queue)),
            body_memory: Arc::new(Semaphore::new(body_memory_bytes)),
            body_memory_bytes,
            answered: AtomicU64::new(0),
            refused_busy: AtomicU64::new(0),
        }
    }

    pub fn model(&self) -> &Model {
        &self.model
    }

    /// Seconds between windows unless a request asks otherwise.
    pub fn hop(&self) -> f64 {
        self.default_hop
    }

    /// For `/v1/status`.
    pub fn counts(&self) -> serde_json::Value {
        let admitted = self.in_flight + self.queue - self.admitted.available_permits();
        serde_json::json!({
            "answered": self.answered.load(Ordering::Relaxed),
            "refused_busy": self.refused_busy.load(Ordering::Relaxed),
            "in_flight": admitted.min(self.in_flight),
            "waiting": admitted.saturating_sub(self.in_flight),
            "max_in_flight": self.in_flight,
            "max_waiting": self.queue,
            "body_bytes": self.body_memory_bytes - self.body_memory.available_permits(),
            "max_body_bytes": self.body_memory_bytes,
        })
    }

    fn windower(&self, spec: WindowSpec) -> Result<Windower, ApiError> {
        let mut pool = self.pool.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(i) = pool.iter().position(|w| w.spec() == spec) {
            return Ok(pool.swap_remove(i));
        }
        drop(pool);
        let set = features::feature_set(&self.model.sidecar.feature_set, spec.sample_rate)
            .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
        Ok(Windower::new(spec, set))
    }

    fn give_back(&self, windower: Windower) {
        let mut pool = self.pool.lock().unwrap_or_else(|e| e.into_inner());
        if pool.len() < self.in_flight {
            pool.push(windower);
        }
    }

    /// Analyses the WAV file in `body`, on this thread.
    fn analyse(&self, body: Bytes, spec: WindowSpec) -> Result<serde_json::Value, ApiError> {
        let sidecar = &self.model.sidecar;
        let labels = &sidecar.labels;
        let bad_audio = |e: AudioError| ApiError::new(StatusCode::BAD_REQUEST, e.to_string());
        let mut stream = MonoStream::from_memory(
            Path::new(BODY_NAME),
            body,
            spec.sample_rate,
            &self.resamplers,
        )
        .map_err(bad_audio)?;
        let mut windower = self.windower(spec)?;
        let mut detector = Detector::new(sidecar, &self.rules, self.hysteresis);
        let mut scores = Vec::with_capacity(labels.len());
        let mut detections = Vec::new();
        let result = pipeline::for_each_window_of(
            &mut stream,
            &mut windower,
            |info, feats| -> Result<(), Failure> {
                self.model.predict(feats, &mut scores)?;
                detections.push(detector.detect(
                    spec.seconds(info.start_sample),
                    info.padded,
                    info.level,
                    &scores,
                ));
                Ok(())
            },
        );
        self.give_back(windower);
        stream.recycle(&self.resamplers);
        match result {
            Ok(_) => {}
            Err(Failure::Audio(e)) => return Err(bad_audio(e)),
            Err(Failure::Other(e)) => {
                return Err(ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e))
            }
        }
        let mut top = vec![0f32; labels.len()];
        let mut reported = vec![false; labels.len()];
        for d in &detections {
            for (t, &s) in top.iter_mut().zip(&d.scores) {
                *t = t.max(s);
            }
            for &i in &d.instruments {
                reported[i] = true;
            }
        }
        let windows: Vec<WindowJson> = detections
            .iter()
            .map(|d| WindowJson::new(None, labels, d))
            .collect();
        Ok(serde_json::json!({
            "instruments": labels.iter().zip(&reported).filter(|(_, &r)| r).map(|(l, _)| &l.name).collect::<Vec<_>>(),
            "scores": labels.iter().zip(&top).map(|(l, &s)| (l.name.clone(), serde_json::Value::from(round4(s)))).collect::<serde_json::Map<_, _>>(),
            "windows": windows,
            "model": self.model.sidecar_sha256,
        }))
    }
}

/// Why a clip's analysis stopped.
enum Failure {
    /// The clip: the client's fault.
    Audio(AudioError),
    /// Features or model: ours.
    Other(String),
}

impl From<AudioError> for Failure {
    fn from(e: AudioError) -> Self {
        Failure::Audio(e)
    }
}

impl From<crate::model::ModelError> for Failure {
    fn from(e: crate::model::ModelError) -> Self {
        Failure::Other(e.to_string())
    }
}

impl From<crate::features::FeatureError> for Failure {
    fn from(e: crate::features::FeatureError) -> Self {
        Failure::Other(e.to_string())
    }
}

/// The window hop a request asks for with `?hop=S`.
fn hop_of(query: Option<&str>, default: f64) -> Result<f64, ApiError> {
    let mut hop = default;
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        match name {
            "hop" => {
                hop = value.parse().map_err(|_| {
                    ApiError::new(
                        StatusCode::BAD_REQUEST,
                        format!("hop={value:?}: not a number of seconds"),
                    )
                })?
            }
            other => {
                return Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    format!("unknown query parameter {other:?} (known: hop)"),
                ))
            }
        }
    }
    Ok(hop)
}

/// Reads the request's body (taken from `unread`, which keeps it if the
/// memory for bodies runs out first), holding a share of that memory for
/// each byte: what it returns with the body is released with it.
async fn read_body(
    unread: &mut Option<Body>,
    p: &Predictor,
) -> Result<(Bytes, Option<OwnedSemaphorePermit>), ApiError> {
    use http_body_util::BodyExt;
    let body = unread.as_mut().expect("the caller sets it");
    let mut data =
        Vec::with_capacity(usize::try_from(http_body::Body::size_hint(body).lower()).unwrap_or(0));
    let mut held: Option<OwnedSemaphorePermit> = None;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| {
            let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(&e);
            let mut too_large = false;
            while let Some(c) = cause {
                too_large |= c.is::<http_body_util::LengthLimitError>();
                cause = c.source();
            }
            if too_large {
                ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "request body: over the limit set by http.max_body_mb",
                )
            } else {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    format!("request body: could not be read: {e}"),
                )
            }
        })?;
        let Ok(chunk) = frame.into_data() else {
            continue;
        };
        let share = u32::try_from(chunk.len()).unwrap_or(u32::MAX);
        let Ok(permit) = p.body_memory.clone().try_acquire_many_owned(share) else {
            p.refused_busy.fetch_add(1, Ordering::Relaxed);
            return Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                format!(
                    "busy: the clips being received and analysed fill the {} MB kept for them; \
                     try again shortly",
                    p.body_memory_bytes >> 20
                ),
            ));
        };
        match &mut held {
            Some(h) => h.merge(permit),
            None => held = Some(permit),
        }
        data.extend_from_slice(&chunk);
    }
    unread.take();
    Ok((Bytes::from(data), held))
}

/// `POST /v1/predict[?hop=S]` with a WAV file as the body.
pub async fn handle(
    State(app): State<App>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let mut unread = None;
    let answer = match predict(&app, query.as_deref(), body, &mut unread).await {
        Ok(answer) => answer,
        Err(e) => e.into_response(),
    };
    // A client that sends its body without waiting for `100 Continue`
    // would hit a closed socket and never read the answer: take (and drop)
    // what it sends, up to the body limit, before answering.
    if let Some(body) = unread {
        if !headers.contains_key(header::EXPECT) {
            use http_body_util::BodyExt;
            let mut body = body;
            while let Some(Ok(_)) = body.frame().await {}
        }
    }
    answer
}

async fn predict(
    app: &App,
    query: Option<&str>,
    body: Body,
    unread: &mut Option<Body>,
) -> Result<Response, ApiError> {
    *unread = Some(body);
    let p = app.predictor.clone();
    let sidecar = &p.model.sidecar;
    let hop = hop_of(query, p.default_hop)?;
    let spec = WindowSpec::from_seconds(sidecar.sample_rate, sidecar.window_seconds, hop)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, format!("hop={hop}: {e}")))?;
    let Ok(admitted) = p.admitted.clone().try_acquire_owned() else {
        // Answered without reading the body.
        p.refused_busy.fetch_add(1, Ordering::Relaxed);
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "busy: {} predictions run and {} wait (http.queue); try again shortly",
                p.in_flight, p.queue
            ),
        ));
    };
    // The body is read once admitted, so waiting bodies are bounded too.
    let (body, in_memory) = read_body(unread, &p).await?;
    let started = Instant::now();
    let running = p
        .running
        .clone()
        .acquire_owned()
        .await
        .expect("never closed");
    let analyse = {
        let p = p.clone();
        move || {
            let began = Instant::now();
            let answer = p.analyse(body, spec);
            drop(running);
            drop(in_memory);
            (answer, began.elapsed())
        }
    };
    let (answer, analysis) = tokio::task::spawn_blocking(analyse)
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    drop(admitted);
    let mut answer = answer?;
    let windows = answer["windows"].as_array().map_or(0, Vec::len);
    app.metrics.predicted(analysis, windows as u64);
    p.answered.fetch_add(1, Ordering::Relaxed);
    answer["elapsed_ms"] =
        serde_json::Value::from((started.elapsed().as_secs_f64() * 1e4).round() / 10.0);
    Ok(axum::Json(answer).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hop_comes_from_the_query_or_the_default() {
        assert_eq!(hop_of(None, 0.5).unwrap(), 0.5);
        assert_eq!(hop_of(Some("hop=0.25"), 0.5).unwrap(), 0.25);
        let e = hop_of(Some("hop=fast"), 0.5).unwrap_err();
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
        assert!(e.message.contains("\"fast\""), "{}", e.message);
        let e = hop_of(Some("hpo=1"), 0.5).unwrap_err();
        assert!(e.message.contains("\"hpo\""), "{}", e.message);
    }
}
