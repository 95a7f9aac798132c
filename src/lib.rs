//! tutti: which orchestral instruments are playing, from audio, on the edge.
//!
//! Data flows one way, one module per stage:
//! [`audio`] (decode, downmix, resample) → [`window`] (sliding windows) →
//! [`features`] (named feature sets) → [`model`] (ONNX run by tract) →
//! [`detect`] (thresholds, labels) → [`output`] (table or JSON lines).

pub mod audio;
pub mod features;
pub mod window;
