//! Publishing to MQTT with rumqttc: detections (QoS 1) through the on-disk
//! outbox, retained status and instrument states, Home Assistant discovery.
//!
//! How nothing is lost: every detection is appended to the [`Outbox`] and
//! leaves it only when the broker's PUBACK for it has arrived. The client's
//! request channel is a rendezvous (capacity 0), so a publish is accepted
//! only while the connection is up and the client is taking requests; when
//! the connection drops, the event-loop task waits until this side has
//! taken note, and sending resumes from the first unacknowledged detection.
//! Subscribers may see a detection twice (QoS 1), never out of order.

mod client;
mod delivery;
mod discovery;
mod tls;

use super::outbox::{Outbox, OutboxError, Trouble};
use super::payload::{self, Topics, OFF, OFFLINE, ON, ONLINE};
use crate::config::MqttSettings;
use crate::detect::Detection;
use crate::model::LabelSpec;
use client::LinkEvent;
use delivery::{Acked, Delivery, Line};
use rumqttc::{AsyncClient, QoS};
use std::collections::VecDeque;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tls::TlsError;
use tokio::sync::mpsc;

#[derive(Debug, thiserror::Error)]
pub enum MqttError {
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error(transparent)]
    Outbox(#[from] OutboxError),
    #[error("cannot start the MQTT connection thread: {0}")]
    Thread(std::io::Error),
}

/// How often work the client did not take yet is offered again.
const TICK: Duration = Duration::from_millis(5);
/// How often the outbox cursor is saved, and its new lines flushed to the
/// disk (docs/mqtt.md has the measured cost behind this policy).
const SAVE_EVERY: Duration = Duration::from_secs(1);
/// How long a shutdown waits for the outbox to drain and `offline` to land.
const FLUSH: Duration = Duration::from_secs(5);

enum Control {
    Publish {
        topic: String,
        payload: Vec<u8>,
        retain: bool,
    },
    Subscribe(String),
}

/// The sink's state as others read it (the HTTP API's status and
/// metrics), updated as it changes.
#[derive(Debug, Default)]
pub struct SinkStatus {
    pub connected: AtomicBool,
    /// Detections waiting in the outbox, and their bytes.
    pub outbox_detections: AtomicU64,
    pub outbox_bytes: AtomicU64,
}

/// What the sink did, for the log at exit.
#[derive(Debug, Default, Clone, Copy)]
pub struct Summary {
    pub windows: u64,
    pub delivered: u64,
    pub waiting_bytes: u64,
    /// Detections the outbox could not be written with.
    pub not_kept: u64,
}

pub struct Sink {
    client: AsyncClient,
    link: mpsc::UnboundedReceiver<LinkEvent>,
    resume: mpsc::UnboundedSender<()>,
    topics: Topics,
    labels: Vec<LabelSpec>,
    /// Instruments the user excluded: no ON/OFF topic, no Home Assistant
    /// entity.
    excluded: Vec<bool>,
    device_id: String,
    /// `input.name`, which names the Home Assistant device.
    source: String,
    discovery_prefix: Option<String>,
    broker_name: String,
    outbox: Outbox,
    connected: bool,
    ever_connected: bool,
    failures: u32,
    control: VecDeque<Control>,
    delivery: Delivery,
    on: Vec<bool>,
    summary: Summary,
    status: Arc<SinkStatus>,
    /// The outbox's last flush to the disk, while it runs.
    flushing: Option<tokio::task::JoinHandle<()>>,
    trouble: Trouble,
}

impl Sink {
    /// Creates the client and starts its event loop on a thread of its own.
    pub fn start(
        settings: &MqttSettings,
        embedded_port: u16,
        source: &str,
        labels: Vec<LabelSpec>,
        excluded: Vec<bool>,
        outbox: Outbox,
        status: Arc<SinkStatus>,
    ) -> Result<Sink, MqttError> {
        let opts = client::options(settings, embedded_port)?;
        let broker_name = format!("{}:{}", opts.broker_address().0, opts.broker_address().1);
        // Capacity 0: a request is taken only by a running connection.
        let (client, el) = AsyncClient::new(opts, 0);
        let (link_tx, link) = mpsc::unbounded_channel();
        let (resume, resume_rx) = mpsc::unbounded_channel();
        // The connection runs on a thread of its own, so nothing this side
        // does between awaits (disk writes, compaction, a slow consumer
        // elsewhere on the runtime) delays its keep-alives.
        std::thread::Builder::new()
            .name("tutti-mqtt".into())
            .spawn(move || {
                match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt.block_on(client::drive(el, link_tx, resume_rx)),
                    Err(e) => {
                        let _ = link_tx.send(LinkEvent::Lost(format!("no runtime: {e}")));
                    }
                }
            })
            .map_err(MqttError::Thread)?;
        let n = labels.len();
        if !outbox.is_empty() {
            log::info!(
                "{} bytes of detections from an earlier run wait in the outbox.",
                outbox.waiting_bytes()
            );
        }
        Ok(Sink {
            client,
            link,
            resume,
            topics: Topics {
                prefix: settings.topic_prefix.clone(),
            },
            labels,
            excluded,
            device_id: settings.device_id.clone(),
            source: source.to_string(),
            discovery_prefix: settings.discovery_prefix.clone(),
            broker_name,
            delivery: Delivery::new(outbox.cursor()),
            outbox,
            connected: false,
            ever_connected: false,
            failures: 0,
            control: VecDeque::new(),
            on: vec![false; n],
            summary: Summary::default(),
            status,
            flushing: None,
            trouble: Trouble::default(),
        })
    }

    /// Publishes every detection from `detections`, each with its payload
    /// line, until that channel
    /// closes (the input ended, or the analysis failed) or `shutdown`
    /// resolves; then drains the outbox for a few seconds, publishes
    /// `offline` and disconnects.
    pub async fn run(
        mut self,
        mut detections: mpsc::UnboundedReceiver<(Detection, String)>,
        shutdown: impl Future<Output = ()>,
    ) -> Result<Summary, MqttError> {
        tokio::pin!(shutdown);
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut save = tokio::time::interval(SAVE_EVERY);
        save.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                biased;
                _ = &mut shutdown => {
                    log::info!("Stopping: asked to.");
                    break;
                }
                Some(event) = self.link.recv() => self.on_link(event)?,
                d = detections.recv() => match d {
                    Some((d, line)) => self.on_window(&d, &line)?,
                    None => break,
                },
                // Retries only while something waits to be handed over, so
                // an idle sink does not wake every few milliseconds.
                _ = tick.tick(), if self.work_waiting() => {}
                _ = save.tick() => self.save()?,
            }
            self.pump()?;
            self.report();
        }
        self.close().await?;
        Ok(self.summary)
    }

    /// Saves the cursor, and flushes the lines appended since the last
    /// time to the disk on a blocking thread: an `fdatasync` can take long
    /// on an SD card, and this thread also serves the connection. A flush
    /// still running when the next is due lets that one wait.
    fn save(&mut self) -> Result<(), MqttError> {
        if let Err(e) = self.outbox.save_cursor() {
            self.trouble.failed(&e, false);
        }
        if self.flushing.as_ref().is_some_and(|f| !f.is_finished()) {
            return Ok(());
        }
        let to_flush = self.outbox.to_flush();
        if let Some((file, path)) = to_flush.unwrap_or_else(|e| {
            self.trouble.failed(&e, false);
            None
        }) {
            self.flushing = Some(tokio::task::spawn_blocking(move || {
                if let Err(e) = file.sync_data() {
                    log::warn!(
                        "{}: could not flush the outbox to the disk ({e}); \
                         a power cut now could lose its latest detections.",
                        path.display()
                    );
                }
            }));
        }
        Ok(())
    }

    /// Tells [`SinkStatus`] readers where things stand.
    fn report(&self) {
        let s = &self.status;
        s.connected.store(self.connected, Ordering::Relaxed);
        s.outbox_detections
            .store(self.outbox.waiting_lines(), Ordering::Relaxed);
        s.outbox_bytes
            .store(self.outbox.waiting_bytes(), Ordering::Relaxed);
    }

    /// Waits (a bounded time) for the outbox to drain, then says offline.
    async fn close(&mut self) -> Result<(), MqttError> {
        let deadline = tokio::time::Instant::now() + FLUSH;
        while self.connected && !self.outbox.is_empty() {
            if !self.step_until(deadline).await? {
                break;
            }
        }
        if self.connected {
            self.control.push_back(Control::Publish {
                topic: self.topics.status(),
                payload: OFFLINE.into(),
                retain: true,
            });
            self.pump()?;
            let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
            while self.connected && (!self.control.is_empty() || !self.delivery.settled()) {
                if !self.step_until(deadline).await? {
                    break;
                }
            }
            // A clean DISCONNECT, so the broker does not also send the
            // last will.
            let client = self.client.clone();
            let closed = async {
                if client.disconnect().await.is_ok() {
                    while let Some(event) = self.link.recv().await {
                        if matches!(event, LinkEvent::Closed) {
                            break;
                        }
                    }
                }
            };
            let _ = tokio::time::timeout(Duration::from_secs(2), closed).await;
        }
        if let Err(e) = self.outbox.sync() {
            log::warn!("{e}: its latest detections may not be on the disk.");
        }
        self.report();
        self.summary.waiting_bytes = self.outbox.waiting_bytes();
        self.summary.not_kept = self.trouble.lost_total;
        if self.summary.not_kept > 0 {
            log::warn!(
                "{} detection(s) were not kept: the outbox could not be written.",
                self.summary.not_kept
            );
        }
        if self.summary.waiting_bytes > 0 {
            log::warn!(
                "{} bytes of detections stay in the outbox for the next start.",
                self.summary.waiting_bytes
            );
        }
        Ok(())
    }

    /// One link event or tick, unless the deadline passes first (`false`).
    async fn step_until(&mut self, deadline: tokio::time::Instant) -> Result<bool, MqttError> {
        tokio::select! {
            Some(event) = self.link.recv() => self.on_link(event)?,
            _ = tokio::time::sleep(TICK) => {}
            _ = tokio::time::sleep_until(deadline) => return Ok(false),
        }
        self.pump()?;
        Ok(true)
    }

    /// Keeps one window's detection, `line` being its payload
    /// ([`payload::detection`]), in the outbox until the broker has it.
    fn on_window(&mut self, d: &Detection, line: &str) -> Result<(), MqttError> {
        self.summary.windows += 1;
        match self.outbox.append(line) {
            Ok(_) => self.trouble.ok(),
            Err(e) => self.trouble.failed(&e, true),
        }
        if self.outbox.dropped > 0 {
            log::warn!(
                "The outbox is full ({} bytes): dropped the {} oldest detection(s).",
                self.outbox.waiting_bytes(),
                self.outbox.dropped
            );
            self.outbox.dropped = 0;
        }
        self.on.clone_from(&d.on);
        if self.connected {
            for c in &d.changes {
                self.control.push_back(Control::Publish {
                    topic: self.topics.instrument(&c.instrument),
                    payload: if c.on { ON } else { OFF }.into(),
                    retain: true,
                });
            }
        }
        Ok(())
    }

    /// The retained messages a fresh connection (or a restarted Home
    /// Assistant) needs.
    fn queue_announcements(&mut self, discovery: bool) {
        self.control.push_back(Control::Publish {
            topic: self.topics.status(),
            payload: ONLINE.into(),
            retain: true,
        });
        if let (true, Some(prefix)) = (discovery, &self.discovery_prefix) {
            for (topic, config) in discovery::configs(
                prefix,
                &self.topics,
                &self.device_id,
                &self.source,
                &self.labels,
                &self.excluded,
            ) {
                self.control.push_back(Control::Publish {
                    topic,
                    payload: config.into_bytes(),
                    retain: true,
                });
            }
        }
        for ((l, &on), &excluded) in self.labels.iter().zip(&self.on).zip(&self.excluded) {
            // An excluded instrument's topic is cleared: an empty retained
            // message removes what an earlier run left there.
            let payload = match (excluded, on) {
                (true, _) => "",
                (false, true) => ON,
                (false, false) => OFF,
            };
            self.control.push_back(Control::Publish {
                topic: self.topics.instrument(&l.name),
                payload: payload.into(),
                retain: true,
            });
        }
    }

    fn on_link(&mut self, event: LinkEvent) -> Result<(), MqttError> {
        match event {
            LinkEvent::Connected => {
                self.connected = true;
                if self.failures > 0 || !self.ever_connected {
                    log::info!("Connected to the MQTT broker at {}.", self.broker_name);
                }
                self.ever_connected = true;
                self.failures = 0;
                // What waits now was not sent live: it is a replay.
                self.delivery
                    .connected(self.outbox.cursor(), self.outbox.end());
                self.control.clear();
                if let Some(prefix) = &self.discovery_prefix {
                    self.control
                        .push_back(Control::Subscribe(discovery::ha_status(prefix)));
                }
                self.queue_announcements(true);
            }
            LinkEvent::Sent(pkid) => self.delivery.sent(pkid),
            LinkEvent::Acked(pkid) => {
                if let Acked::Detection { forget_upto } = self.delivery.acked(pkid) {
                    self.summary.delivered += 1;
                    if let Some(end) = forget_upto {
                        if let Err(e) = self.outbox.acknowledge(end) {
                            self.trouble.failed(&e, false);
                        }
                        if self.outbox.end() == 0 {
                            // The file started afresh: offsets restart.
                            self.delivery.rebased(0);
                        }
                    }
                }
            }
            LinkEvent::Message { topic, payload } => {
                let ha = self.discovery_prefix.as_deref().map(discovery::ha_status);
                if Some(topic) == ha && payload == ONLINE.as_bytes() {
                    log::info!("Home Assistant came online: sending discovery again.");
                    self.queue_announcements(true);
                }
            }
            LinkEvent::Closed => {}
            LinkEvent::Lost(reason) => {
                if self.connected || self.failures == 0 {
                    log::warn!(
                        "MQTT broker {} unreachable ({reason}); detections wait in the outbox \
                         and reconnection is retried with backoff.",
                        self.broker_name
                    );
                }
                self.failures += 1;
                self.connected = false;
                self.control.clear();
                self.delivery.lost(self.outbox.cursor());
                match self.outbox.compact_if_needed() {
                    Ok(true) => self.delivery.rebased(self.outbox.cursor()),
                    Ok(false) => {}
                    Err(e) => self.trouble.failed(&e, false),
                }
                let _ = self.resume.send(());
            }
        }
        Ok(())
    }

    /// Whether `pump` has something to hand the client.
    fn work_waiting(&self) -> bool {
        self.connected && (!self.control.is_empty() || self.delivery.behind(self.outbox.end()))
    }

    /// Hands the client what it will take: control messages first, then
    /// detections from the outbox, in order.
    fn pump(&mut self) -> Result<(), MqttError> {
        if !self.connected {
            return Ok(());
        }
        while let Some(c) = self.control.front() {
            let ok = match c {
                Control::Publish {
                    topic,
                    payload,
                    retain,
                } => self
                    .client
                    .try_publish(topic.clone(), QoS::AtLeastOnce, *retain, payload.clone())
                    .is_ok(),
                Control::Subscribe(topic) => self
                    .client
                    .try_subscribe(topic.clone(), QoS::AtLeastOnce)
                    .is_ok(),
            };
            if !ok {
                return Ok(());
            }
            if matches!(c, Control::Publish { .. }) {
                self.delivery.handed_control();
            }
            self.control.pop_front();
        }
        while self.delivery.has_room() {
            let line = match self.delivery.next_line() {
                Ok(line) => line,
                Err(offset) => match self.outbox.read_at(offset)? {
                    Some((text, next)) => Line { offset, text, next },
                    None => break,
                },
            };
            let body = payload::with_replayed(&line.text, self.delivery.is_replay(line.offset));
            if self
                .client
                .try_publish(self.topics.detections(), QoS::AtLeastOnce, false, body)
                .is_err()
            {
                self.delivery.refused(line);
                break;
            }
            self.delivery.handed_detection(&line);
        }
        Ok(())
    }
}
