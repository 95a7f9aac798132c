//! The HTTP API and live page: `tutti serve` runs it alone, for clips sent
//! from elsewhere; `tutti listen` runs it beside the live daemon when
//! `http.listen` is set. It reads the same detections as every other
//! consumer: [`predict`] turns a posted WAV file into them through the
//! pipeline `analyze` uses, and [`live`] holds what the daemon hands it.
//!
//! Every error is `{"error": "<one line>"}` with its status ([`errors`]).
//! hyper serves the connections (for its header-read timeout), axum routes
//! them, tower-http bounds bodies and times; [`auth`] asks for the bearer
//! token when one is set, [`metrics`] renders Prometheus text, and [`page`]
//! serves the live page from the binary.

mod auth;
mod errors;
mod live;
mod metrics;
mod page;
mod predict;

pub use live::Live;
pub use metrics::Metrics;
pub use predict::Predictor;

use crate::config::{HttpSettings, Secret};
use axum::extract::{DefaultBodyLimit, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use hyper_util::rt::{TokioIo, TokioTimer};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpListener;

/// How long a client may take to send a request's headers.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a request may take from its headers to its answer (a clip's
/// upload, its wait in the queue and its analysis).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// Connections open at once, at most; more wait to be accepted.
const MAX_CONNECTIONS: usize = 512;
/// How long a stop waits for requests under way.
const DRAIN: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("http.listen {addr}: cannot listen: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot record metrics: {0}")]
    Metrics(String),
    #[error(
        "http.listen is off (\"\"): `tutti serve` needs an address, e.g. --http 127.0.0.1:8080"
    )]
    Off,
    #[error("cannot start the async runtime: {0}")]
    Runtime(std::io::Error),
}

/// `tutti serve`: the API alone, until SIGTERM or SIGINT.
pub fn serve_alone(
    settings: &crate::config::Settings,
    model: crate::model::Model,
    rules: crate::detect::Rules,
) -> Result<(), HttpError> {
    if settings.http.listen.is_none() {
        return Err(HttpError::Off);
    }
    let labels = model
        .sidecar
        .labels
        .iter()
        .map(|l| l.name.clone())
        .collect();
    let metrics = Arc::new(Metrics::install(labels)?);
    let predictor = Arc::new(Predictor::new(
        Arc::new(model),
        rules,
        settings.hysteresis,
        settings.hop_seconds,
        settings.http.queue,
        settings.http.max_body_bytes,
    ));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(HttpError::Runtime)?;
    runtime.block_on(async {
        let server = Server::bind(
            &settings.http,
            predictor,
            None,
            metrics,
            &settings.mqtt.device_id,
        )
        .await?;
        if let Some(addr) = server.local_addr() {
            log::info!("The HTTP API listens on http://{addr}/ (POST a WAV file to /v1/predict).");
        }
        crate::service::notify_ready();
        server.run(crate::service::stop_signal()).await;
        log::info!("Stopped serving.");
        Ok(())
    })
}

/// What every handler reads.
#[derive(Clone)]
struct App {
    predictor: Arc<Predictor>,
    /// The live daemon's state; `None` under `tutti serve`.
    live: Option<Arc<Live>>,
    metrics: Arc<Metrics>,
    token: Option<Secret>,
    device_id: Arc<str>,
    started: Instant,
}

/// A bound HTTP API, ready to serve.
pub struct Server {
    listener: TcpListener,
    router: Router,
}

impl Server {
    /// Binds `settings.listen` (which must be set) and builds the routes.
    pub async fn bind(
        settings: &HttpSettings,
        predictor: Arc<Predictor>,
        live: Option<Arc<Live>>,
        metrics: Arc<Metrics>,
        device_id: &str,
    ) -> Result<Server, HttpError> {
        let addr = settings
            .listen
            .expect("the caller checks that http.listen is set");
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| HttpError::Bind { addr, source })?;
        let app = App {
            predictor,
            live,
            metrics,
            token: settings.token.clone(),
            device_id: device_id.into(),
            started: Instant::now(),
        };
        Ok(Server {
            listener,
            router: router(app, settings.max_body_bytes),
        })
    }

    /// The address it listens on (the port chosen, for port 0).
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.listener.local_addr().ok()
    }

    /// Serves until `shutdown` resolves, then gives the requests under
    /// way a few seconds to finish.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        use hyper_util::server::graceful::GracefulShutdown;
        use hyper_util::service::TowerToHyperService;
        let graceful = GracefulShutdown::new();
        let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
        tokio::pin!(shutdown);
        loop {
            let slot = tokio::select! {
                slot = slots.clone().acquire_owned() => slot.expect("never closed"),
                () = &mut shutdown => break,
            };
            let (stream, _) = tokio::select! {
                accepted = self.listener.accept() => match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        // Out of file descriptors, say: wait, then go on.
                        log::warn!("The HTTP API could not accept a connection: {e}.");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                },
                () = &mut shutdown => break,
            };
            let _ = stream.set_nodelay(true);
            let service = TowerToHyperService::new(self.router.clone());
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .serve_connection(TokioIo::new(stream), service);
            let connection = graceful.watch(connection);
            tokio::spawn(async move {
                // A client that goes away mid-request is its own business.
                let _ = connection.await;
                drop(slot);
            });
        }
        drop(self.listener);
        let _ = tokio::time::timeout(DRAIN, graceful.shutdown()).await;
    }
}

/// Hands the route a request matched (which only the routes know) out to
/// the layers around the router, on the response: the request counter
/// labels by it.
async fn tag_route(
    matched: Option<axum::extract::MatchedPath>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let mut response = next.run(request).await;
    if let Some(m) = matched {
        response.extensions_mut().insert(m);
    }
    response
}

fn router(app: App, max_body: usize) -> Router {
    use tower_http::limit::RequestBodyLimitLayer;
    use tower_http::timeout::{RequestBodyTimeoutLayer, TimeoutLayer};
    // Only a prediction reads a body; tower-http bounds it, axum's own
    // (smaller) default limit steps aside.
    let predict = Router::new()
        .route("/v1/predict", post(predict::handle))
        .layer(DefaultBodyLimit::disable())
        .layer(RequestBodyLimitLayer::new(max_body));
    let api = Router::new()
        .merge(predict)
        .route("/v1/status", get(status))
        .route("/v1/detections/latest", get(live::latest))
        .route("/v1/detections/recent", get(live::recent))
        .route("/v1/events", get(live::events))
        .route("/metrics", get(metrics::render))
        .route_layer(axum::middleware::from_fn_with_state(
            app.clone(),
            auth::require_token,
        ))
        .route_layer(axum::middleware::from_fn(tag_route))
        // The answers change from one request to the next.
        .layer(tower_http::set_header::SetResponseHeaderLayer::overriding(
            axum::http::header::CACHE_CONTROL,
            axum::http::HeaderValue::from_static("no-store"),
        ));
    Router::new()
        .merge(api)
        .merge(page::routes().route_layer(axum::middleware::from_fn(tag_route)))
        .fallback(errors::not_found)
        .layer(axum::middleware::from_fn(errors::as_json))
        .layer(axum::middleware::from_fn_with_state(
            app.clone(),
            metrics::count_request,
        ))
        .layer(TimeoutLayer::with_status_code(
            axum::http::StatusCode::REQUEST_TIMEOUT,
            REQUEST_TIMEOUT,
        ))
        .layer(RequestBodyTimeoutLayer::new(REQUEST_TIMEOUT))
        .layer(tower_http::set_header::SetResponseHeaderLayer::overriding(
            axum::http::header::X_CONTENT_TYPE_OPTIONS,
            axum::http::HeaderValue::from_static("nosniff"),
        ))
        .with_state(app)
}

/// `GET /v1/status`: what this tutti is and how it is doing.
async fn status(State(app): State<App>) -> Json<serde_json::Value> {
    let model = app.predictor.model();
    let mut status = serde_json::json!({
        "device_id": &*app.device_id,
        "version": env!("CARGO_PKG_VERSION"),
        "model": {
            "sha256": model.sidecar_sha256,
            "feature_set": model.sidecar.feature_set,
            "labels": model.sidecar.labels.iter().map(|l| &l.name).collect::<Vec<_>>(),
        },
        "hop_s": app.predictor.hop(),
        "uptime_s": (app.started.elapsed().as_secs_f64() * 10.0).round() / 10.0,
        "predictions": app.predictor.counts(),
    });
    if let serde_json::Value::Object(map) = &mut status {
        map.extend(live::status(app.live.as_deref()));
    }
    Json(status)
}
