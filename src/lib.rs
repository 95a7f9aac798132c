//! tutti: which orchestral instruments are playing, from audio, on the edge.
//!
//! Data flows one way, one module per stage:
//! `capture` (microphone, file or pipe into a lock-free ring) or `audio`
//! (decode, downmix, resample) → `window` (sliding windows and their
//! sound level) → `features` (named feature sets) → `model` (ONNX run by
//! tract) → `detect` (thresholds, the user's per-instrument rules, ON/OFF
//! states) → `output` (table or
//! JSON lines), `sink` (MQTT) or `http` (the API, live page and metrics). `live` runs the live stages in a
//! worker thread and `daemon` wires them; `config` holds the daemon's
//! settings, `service` its systemd integration and `wait` how its threads
//! wait. `pipeline` drives a file through the stages for `analyze` and for
//! training data (`dataset`); [`cli`] is the command line.
//!
//! The modules are private, so that the compiler sees what nothing uses;
//! what is public below is what the integration tests, the benchmark and
//! `tutti-synth` reach.

mod audio;
mod capture;
pub mod cli;
mod config;
mod daemon;
mod dataset;
mod detect;
mod features;
mod http;
mod instruments;
mod live;
mod model;
mod output;
mod pipeline;
mod service;
mod sink;
mod wait;
mod window;

pub use audio::{AudioError, MonoStream, Resamplers};
pub use capture::{ring, Format};
pub use config::Channel;
pub use dataset::{LABEL_HEADER, LABEL_RATE};
pub use features::{feature_set, sample_rate, FeatureError};
pub use instruments::{index_of_name, INSTRUMENTS};
pub use live::Analyzer;
pub use model::{sha256_hex, Model, ModelError};
pub use pipeline::{features_as_they_are, for_each_window, for_each_window_parallel};
pub use sink::outbox::Outbox;
pub use window::{WindowInfo, WindowSpec, Windower};
