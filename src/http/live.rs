//! What the live daemon shows over HTTP: the latest detection, a stream of
//! them (Server-Sent Events carrying the MQTT payloads), and the state for
//! `/v1/status`. The daemon hands every detection to [`Live::publish`].

use super::errors::ApiError;
use super::App;
use crate::detect::Detection;
use crate::live::Progress;
use crate::sink::mqtt::SinkStatus;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::broadcast;
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;
use tokio_stream::wrappers::BroadcastStream;
use tokio_stream::StreamExt;

/// Detections a slow event stream may fall behind before it skips some.
const BACKLOG: usize = 64;
/// How much of the past `/v1/detections/recent` keeps (the live page's
/// timeline).
const RECENT_SECONDS: f64 = 120.0;

/// The latest detection, as published.
struct Latest {
    seq: u64,
    /// The MQTT payload (with `"replayed": false`).
    payload: Arc<str>,
    /// The instruments ON after it.
    on: Vec<String>,
}

/// The live daemon's state, shared with the HTTP API.
pub struct Live {
    /// What the input is called (a device or a file).
    input: String,
    progress: Arc<Progress>,
    sink: Arc<SinkStatus>,
    latest: Mutex<Option<Latest>>,
    /// The payloads of the last [`RECENT_SECONDS`], oldest first.
    recent: Mutex<std::collections::VecDeque<Arc<str>>>,
    recent_max: usize,
    events: broadcast::Sender<(u64, Arc<str>)>,
}

impl Live {
    /// The state of a live input whose windows start `hop` seconds apart.
    pub fn new(input: String, hop: f64, progress: Arc<Progress>, sink: Arc<SinkStatus>) -> Self {
        let recent_max = (RECENT_SECONDS / hop).ceil() as usize + 1;
        Live {
            input,
            progress,
            sink,
            latest: Mutex::new(None),
            recent: Mutex::new(std::collections::VecDeque::with_capacity(recent_max)),
            recent_max,
            events: broadcast::channel(BACKLOG).0,
        }
    }

    /// A new detection `d` with its MQTT `payload`, for the latest and the
    /// event streams; `on` names the instruments ON after it.
    pub fn publish(&self, d: &Detection, payload: &[u8], on: Vec<String>) {
        let payload: Arc<str> = String::from_utf8_lossy(payload).into();
        // No one listening is fine.
        let _ = self.events.send((d.seq, payload.clone()));
        {
            let mut recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
            if recent.len() == self.recent_max {
                recent.pop_front();
            }
            recent.push_back(payload.clone());
        }
        *self.latest.lock().unwrap_or_else(|e| e.into_inner()) = Some(Latest {
            seq: d.seq,
            payload,
            on,
        });
    }

    /// The instruments ON after the latest window.
    pub fn on(&self) -> Vec<String> {
        self.latest
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .map(|l| l.on.clone())
            .unwrap_or_default()
    }

    pub fn progress(&self) -> &Progress {
        &self.progress
    }

    pub fn sink(&self) -> &SinkStatus {
        &self.sink
    }
}

/// The live part of `/v1/status`: every key is there, `null` when there is
/// no live input (`tutti serve`).
pub fn status(live: Option<&Live>) -> serde_json::Map<String, serde_json::Value> {
    let status = live.map_or_else(LiveStatus::default, LiveStatus::of);
    match serde_json::to_value(status) {
        Ok(serde_json::Value::Object(map)) => map,
        _ => serde_json::Map::new(),
    }
}

/// The live part of `/v1/status`: every key is always there, `null` where
/// there is no live input (`tutti serve`).
#[derive(serde::Serialize, Default)]
struct LiveStatus {
    input: Option<String>,
    windows: Option<u64>,
    frames_lost: Option<u64>,
    level_dbfs: Option<f64>,
    broker_connected: Option<bool>,
    outbox: Option<OutboxStatus>,
    on: Option<Vec<String>>,
    latest_seq: Option<u64>,
}

#[derive(serde::Serialize)]
struct OutboxStatus {
    detections: u64,
    bytes: u64,
}

impl LiveStatus {
    fn of(live: &Live) -> LiveStatus {
        let (p, s) = (&live.progress, &live.sink);
        let latest_seq = live
            .latest
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .map(|l| l.seq);
        LiveStatus {
            input: Some(live.input.clone()),
            windows: Some(p.windows.load(Ordering::Relaxed)),
            frames_lost: Some(p.overruns.load(Ordering::Relaxed)),
            level_dbfs: p.level_dbfs().map(|l| (f64::from(l) * 10.0).round() / 10.0),
            broker_connected: Some(s.connected.load(Ordering::Relaxed)),
            outbox: Some(OutboxStatus {
                detections: s.outbox_detections.load(Ordering::Relaxed),
                bytes: s.outbox_bytes.load(Ordering::Relaxed),
            }),
            on: Some(live.on()),
            latest_seq,
        }
    }
}

fn no_live_input() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "no live input here: `tutti serve` only analyses posted clips (POST /v1/predict)",
    )
}

/// `GET /v1/detections/latest`: the latest detection's MQTT payload.
pub async fn latest(State(app): State<App>) -> Response {
    let Some(live) = &app.live else {
        return no_live_input().into_response();
    };
    let payload = live
        .latest
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .as_ref()
        .map(|l| l.payload.clone());
    match payload {
        Some(p) => ([(header::CONTENT_TYPE, "application/json")], p.to_string()).into_response(),
        None => ApiError::new(
            StatusCode::NOT_FOUND,
            "no detection yet: the first window is still being heard",
        )
        .into_response(),
    }
}

/// `GET /v1/detections/recent`: the payloads of the last two minutes, as
/// a JSON array, oldest first.
pub async fn recent(State(app): State<App>) -> Response {
    let Some(live) = &app.live else {
        return no_live_input().into_response();
    };
    let payloads: Vec<Arc<str>> = live
        .recent
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .cloned()
        .collect();
    let mut body = String::with_capacity(payloads.iter().map(|p| p.len() + 1).sum::<usize>() + 2);
    body.push('[');
    for (i, p) in payloads.iter().enumerate() {
        if i > 0 {
            body.push(',');
        }
        body.push_str(p);
    }
    body.push(']');
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// `GET /v1/events`: every detection's MQTT payload as a Server-Sent
/// Event (`event: detection`, `id:` its seq), from now on. A client that
/// falls more than [`BACKLOG`] behind gets an `event: skipped` saying how
/// many it missed.
pub async fn events(State(app): State<App>) -> Response {
    let Some(live) = &app.live else {
        return no_live_input().into_response();
    };
    let stream = BroadcastStream::new(live.events.subscribe()).map(|item| {
        Ok::<_, std::convert::Infallible>(match item {
            Ok((seq, payload)) => Event::default()
                .event("detection")
                .id(seq.to_string())
                .data(&*payload),
            Err(BroadcastStreamRecvError::Lagged(n)) => Event::default()
                .event("skipped")
                .data(format!("{{\"skipped\":{n}}}")),
        })
    });
    Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response()
}
