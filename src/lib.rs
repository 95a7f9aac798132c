//! tutti: which orchestral instruments are playing, from audio, on the edge.
//!
//! Data flows one way, one module per stage:
//! [`audio`] (decode, downmix, resample) → [`window`] (sliding windows) →
//! [`features`] (named feature sets) → [`model`] (ONNX run by tract) →
//! [`detect`] (thresholds, labels, ON/OFF states) → [`output`] (table or
//! JSON lines). [`config`] holds the live daemon's settings.

pub mod audio;
pub mod config;
pub mod dataset;
pub mod detect;
pub mod features;
pub mod instruments;
pub mod model;
pub mod output;
pub mod pipeline;
pub mod window;
