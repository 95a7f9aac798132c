//! tutti: which orchestral instruments are playing, from audio, on the edge.
//!
//! Data flows one way, one module per stage:
//! [`capture`] (microphone or file into a lock-free ring) or [`audio`]
//! (decode, downmix, resample) → [`window`] (sliding windows) →
//! [`features`] (named feature sets) → [`model`] (ONNX run by tract) →
//! [`detect`] (thresholds, labels, ON/OFF states) → [`output`] (table or
//! JSON lines) or [`sink`] (MQTT). [`live`] runs the live stages in a
//! worker thread; [`config`] holds the daemon's settings and [`service`]
//! its systemd integration.

pub mod audio;
pub mod capture;
pub mod config;
pub mod daemon;
pub mod dataset;
pub mod detect;
pub mod features;
pub mod instruments;
pub mod live;
pub mod model;
pub mod output;
pub mod pipeline;
pub mod service;
pub mod sink;
pub mod wait;
pub mod window;
