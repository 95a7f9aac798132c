//! Sinks: where detections go. MQTT ([`mqtt`]) through an on-disk outbox
//! ([`outbox`]), with the payloads and topics frozen in [`payload`], and the
//! embedded broker ([`broker`]) for machines without one; standard output
//! ([`stdout`]) for `listen --json`.

pub mod broker;
pub mod mqtt;
pub mod outbox;
pub mod payload;
pub mod stdout;
