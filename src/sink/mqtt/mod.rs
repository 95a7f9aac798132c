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

use super::outbox::{Outbox, OutboxError};
use super::payload::{self, title, Topics, OFF, OFFLINE, ON, ONLINE};
use crate::config::{Broker, MqttSettings};
use crate::live::Output;
use crate::model::LabelSpec;
use rumqttc::{
    AsyncClient, Event, EventLoop, LastWill, MqttOptions, Outgoing, Packet, QoS, TlsConfiguration,
    Transport,
};
use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::sync::mpsc;

#[derive(Debug, thiserror::Error)]
pub enum MqttError {
    #[error("{path}: cannot read the TLS file: {source}")]
    TlsFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {reason}")]
    Tls { path: PathBuf, reason: String },
    #[error(transparent)]
    Outbox(#[from] OutboxError),
    #[error("analysis stopped: {0}")]
    Analysis(String),
}

/// Detections sent and not yet acknowledged, at most.
const MAX_IN_FLIGHT: usize = 64;
const BACKOFF_FIRST: Duration = Duration::from_millis(500);
const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// How often work the client did not take yet is offered again.
const TICK: Duration = Duration::from_millis(5);
/// How often the outbox cursor is saved.
const SAVE_EVERY: Duration = Duration::from_secs(1);
/// How long a shutdown waits for the outbox to drain and `offline` to land.
const FLUSH: Duration = Duration::from_secs(5);

/// Debian's CA bundle, trusted for `mqtts://` when no `ca_file` is set.
const SYSTEM_CAS: &str = "/etc/ssl/certs/ca-certificates.crt";

/// What the event-loop task reports.
#[derive(Debug)]
enum Note {
    Connected,
    Sent(u16),
    Acked(u16),
    Message {
        topic: String,
        payload: Vec<u8>,
    },
    Lost(String),
    /// Our DISCONNECT went out.
    Closed,
}

fn read(path: &Path) -> Result<Vec<u8>, MqttError> {
    std::fs::read(path).map_err(|source| MqttError::TlsFile {
        path: path.to_path_buf(),
        source,
    })
}

/// Client options from the settings: last will, credentials, TLS.
pub fn options(s: &MqttSettings, embedded_port: u16) -> Result<MqttOptions, MqttError> {
    let (host, port, tls) = match &s.broker {
        Broker::Embedded => ("127.0.0.1".to_string(), embedded_port, false),
        Broker::Remote { host, port, tls } => (host.clone(), *port, *tls),
    };
    let mut o = MqttOptions::new(format!("tutti-{}", s.device_id), host, port);
    let topics = Topics {
        prefix: s.topic_prefix.clone(),
    };
    o.set_last_will(LastWill::new(
        topics.status(),
        OFFLINE,
        QoS::AtLeastOnce,
        true,
    ));
    o.set_keep_alive(Duration::from_secs(15));
    o.set_clean_session(true);
    o.set_inflight(100);
    if let Some(user) = &s.username {
        let password = s.password.as_ref().map_or("", |p| p.expose());
        o.set_credentials(user.clone(), password);
    }
    if tls {
        // One crypto provider, ring, for the whole process.
        let _ = rustls::crypto::ring::default_provider().install_default();
        o.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(
            tls_config(s)?,
        )));
    }
    Ok(o)
}

/// The TLS client configuration, checked now so that a bad CA file or
/// client certificate stops tutti at start with the file's name, rather
/// than failing every reconnection later.
fn tls_config(s: &MqttSettings) -> Result<std::sync::Arc<rustls::ClientConfig>, MqttError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let bad = |path: &Path, reason: String| MqttError::Tls {
        path: path.to_path_buf(),
        reason,
    };
    let ca_path = s.ca_file.as_deref().unwrap_or(Path::new(SYSTEM_CAS));
    let certs = |path: &Path| -> Result<Vec<CertificateDer<'static>>, MqttError> {
        let pem = read(path)?;
        let certs = CertificateDer::pem_slice_iter(&pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| bad(path, format!("not a PEM certificate file ({e})")))?;
        if certs.is_empty() {
            return Err(bad(path, "holds no PEM certificate".into()));
        }
        Ok(certs)
    };
    let mut roots = rustls::RootCertStore::empty();
    let (_, ignored) = roots.add_parsable_certificates(certs(ca_path)?);
    if roots.is_empty() {
        return Err(bad(
            ca_path,
            format!("none of its {ignored} certificate(s) can serve as a CA"),
        ));
    }
    let builder = rustls::ClientConfig::builder().with_root_certificates(roots);
    let config = match (&s.client_cert, &s.client_key) {
        (Some(cert_path), Some(key_path)) => {
            let chain = certs(cert_path)?;
            let key = PrivateKeyDer::from_pem_slice(&read(key_path)?)
                .map_err(|e| bad(key_path, format!("no usable PEM private key ({e})")))?;
            builder.with_client_auth_cert(chain, key).map_err(|e| {
                let e = e.to_string();
                let hint = if e.contains("UnsupportedCertVersion") {
                    "is an X.509 v1 certificate, and TLS needs v3 \
                     (openssl x509 -req makes v3 when given -extfile)"
                        .to_string()
                } else {
                    format!("does not go with the key {}: {e}", key_path.display())
                };
                bad(cert_path, format!("client certificate {hint}"))
            })?
        }
        _ => builder.with_no_client_auth(),
    };
    Ok(std::sync::Arc::new(config))
}

/// Drives rumqttc's event loop, reporting to the sink. After a lost
/// connection it waits for the sink's go-ahead, then backs off.
async fn drive(
    mut el: EventLoop,
    notes: mpsc::UnboundedSender<Note>,
    mut resume: mpsc::UnboundedReceiver<()>,
) {
    let mut backoff = BACKOFF_FIRST;
    loop {
        let note = match el.poll().await {
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                backoff = BACKOFF_FIRST;
                Note::Connected
            }
            Ok(Event::Incoming(Packet::PubAck(a))) => Note::Acked(a.pkid),
            Ok(Event::Incoming(Packet::Publish(p))) => Note::Message {
                topic: p.topic.clone(),
                payload: p.payload.to_vec(),
            },
            Ok(Event::Outgoing(Outgoing::Publish(pkid))) => Note::Sent(pkid),
            Ok(Event::Outgoing(Outgoing::Disconnect)) => {
                let _ = notes.send(Note::Closed);
                return;
            }
            Ok(_) => continue,
            Err(e) => {
                if notes.send(Note::Lost(e.to_string())).is_err() || resume.recv().await.is_none() {
                    return;
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(BACKOFF_MAX);
                continue;
            }
        };
        if notes.send(note).is_err() {
            return;
        }
    }
}

enum Control {
    Publish {
        topic: String,
        payload: Vec<u8>,
        retain: bool,
    },
    Subscribe(String),
}

#[derive(Clone, Copy)]
enum Kind {
    Control,
    Detection { end: u64 },
}

/// What the sink did, for the log at exit.
#[derive(Debug, Default, Clone, Copy)]
pub struct Summary {
    pub windows: u64,
    pub delivered: u64,
    pub waiting_bytes: u64,
}

pub struct Sink {
    client: AsyncClient,
    notes: mpsc::UnboundedReceiver<Note>,
    resume: mpsc::UnboundedSender<()>,
    topics: Topics,
    labels: Vec<LabelSpec>,
    /// The sidecar's relative threshold (see `detect::effective_threshold`).
    relative: f32,
    device_id: String,
    model_id: String,
    discovery_prefix: Option<String>,
    broker_name: String,
    outbox: Outbox,
    connected: bool,
    ever_connected: bool,
    failures: u32,
    control: VecDeque<Control>,
    handed: VecDeque<Kind>,
    in_flight: HashMap<u16, Kind>,
    detections: VecDeque<(u64, bool)>,
    peeked: Option<(u64, String, u64)>,
    sent_upto: u64,
    live_from: u64,
    on: Vec<bool>,
    print: bool,
    summary: Summary,
}

impl Sink {
    /// Creates the client and spawns its event loop on the current runtime.
    pub fn start(
        settings: &MqttSettings,
        embedded_port: u16,
        labels: Vec<LabelSpec>,
        relative: f32,
        model_id: String,
        outbox: Outbox,
        print: bool,
    ) -> Result<Sink, MqttError> {
        let opts = options(settings, embedded_port)?;
        let broker_name = format!("{}:{}", opts.broker_address().0, opts.broker_address().1);
        // Capacity 0: a request is taken only by a running connection.
        let (client, el) = AsyncClient::new(opts, 0);
        let (note_tx, notes) = mpsc::unbounded_channel();
        let (resume, resume_rx) = mpsc::unbounded_channel();
        tokio::spawn(drive(el, note_tx, resume_rx));
        let n = labels.len();
        if !outbox.is_empty() {
            log::info!(
                "{} bytes of detections from an earlier run wait in the outbox.",
                outbox.waiting_bytes()
            );
        }
        Ok(Sink {
            client,
            notes,
            resume,
            topics: Topics {
                prefix: settings.topic_prefix.clone(),
            },
            labels,
            relative,
            device_id: settings.device_id.clone(),
            model_id,
            discovery_prefix: settings.discovery_prefix.clone(),
            broker_name,
            sent_upto: outbox.cursor(),
            live_from: 0,
            outbox,
            connected: false,
            ever_connected: false,
            failures: 0,
            control: VecDeque::new(),
            handed: VecDeque::new(),
            in_flight: HashMap::new(),
            detections: VecDeque::new(),
            peeked: None,
            on: vec![false; n],
            print,
            summary: Summary::default(),
        })
    }

    /// Publishes every window from `outputs` until the source ends or
    /// `shutdown` resolves; then drains the outbox for a few seconds,
    /// publishes `offline` and disconnects. `first_window` runs once, when
    /// the first window has been analysed.
    pub async fn run(
        mut self,
        mut outputs: mpsc::UnboundedReceiver<Output>,
        shutdown: impl Future<Output = ()>,
        mut first_window: impl FnMut(),
    ) -> Result<Summary, MqttError> {
        tokio::pin!(shutdown);
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut save = tokio::time::interval(SAVE_EVERY);
        save.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut failure = None;
        loop {
            tokio::select! {
                biased;
                _ = &mut shutdown => {
                    log::info!("Stopping: asked to.");
                    break;
                }
                Some(note) = self.notes.recv() => self.on_note(note)?,
                out = outputs.recv() => match out {
                    Some(Output::Window(record)) => {
                        if self.summary.windows == 0 {
                            first_window();
                        }
                        self.on_window(&record)?;
                    }
                    Some(Output::Failed(reason)) => {
                        failure = Some(reason);
                        break;
                    }
                    Some(Output::Ended) | None => {
                        log::info!("The input has ended.");
                        break;
                    }
                },
                // Retries only while something waits to be handed over, so
                // an idle sink does not wake every few milliseconds.
                _ = tick.tick(), if self.work_waiting() => {}
                _ = save.tick() => self.outbox.save_cursor()?,
            }
            self.pump()?;
        }
        self.close().await?;
        if let Some(reason) = failure {
            return Err(MqttError::Analysis(reason));
        }
        Ok(self.summary)
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
            while self.connected
                && (!self.control.is_empty()
                    || !self.in_flight.is_empty()
                    || !self.handed.is_empty())
            {
                if !self.step_until(deadline).await? {
                    break;
                }
            }
            // A clean DISCONNECT, so the broker does not also send the
            // last will.
            let client = self.client.clone();
            let closed = async {
                if client.disconnect().await.is_ok() {
                    while let Some(note) = self.notes.recv().await {
                        if matches!(note, Note::Closed) {
                            break;
                        }
                    }
                }
            };
            let _ = tokio::time::timeout(Duration::from_secs(2), closed).await;
        }
        self.outbox.sync()?;
        self.summary.waiting_bytes = self.outbox.waiting_bytes();
        if self.summary.waiting_bytes > 0 {
            log::warn!(
                "{} bytes of detections stay in the outbox for the next start.",
                self.summary.waiting_bytes
            );
        }
        Ok(())
    }

    /// One note or tick, unless the deadline passes first (`false`).
    async fn step_until(&mut self, deadline: tokio::time::Instant) -> Result<bool, MqttError> {
        tokio::select! {
            Some(note) = self.notes.recv() => self.on_note(note)?,
            _ = tokio::time::sleep(TICK) => {}
            _ = tokio::time::sleep_until(deadline) => return Ok(false),
        }
        self.pump()?;
        Ok(true)
    }

    fn on_window(&mut self, record: &crate::live::Record) -> Result<(), MqttError> {
        self.summary.windows += 1;
        let line = payload::detection(
            record,
            &self.labels,
            self.relative,
            &self.device_id,
            &self.model_id,
        );
        if self.print {
            use std::io::Write;
            let mut out = std::io::stdout().lock();
            let printed = out
                .write_all(&payload::with_replayed(&line, false))
                .and_then(|()| out.write_all(b"\n"))
                .and_then(|()| out.flush());
            if let Err(e) = printed {
                // A closed pipe (`tutti listen --json | head`) must not
                // take the daemon down: MQTT and the outbox go on.
                log::warn!("Could not print detections on standard output ({e}); printing stops, publishing goes on.");
                self.print = false;
            }
        }
        self.outbox.append(&line)?;
        if self.outbox.dropped > 0 {
            log::warn!(
                "The outbox is full ({} bytes): dropped the {} oldest detection(s).",
                self.outbox.waiting_bytes(),
                self.outbox.dropped
            );
            self.outbox.dropped = 0;
        }
        self.on.clone_from(&record.on);
        if self.connected {
            for c in &record.changes {
                self.control.push_back(Control::Publish {
                    topic: self.topics.instrument(&c.instrument),
                    payload: if c.on { ON } else { OFF }.into(),
                    retain: true,
                });
            }
        }
        for c in &record.changes {
            log::info!(
                "{} {}.",
                title(&c.instrument),
                if c.on { "started" } else { "stopped" }
            );
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
            for (topic, config) in
                payload::discovery(prefix, &self.topics, &self.device_id, &self.labels)
            {
                self.control.push_back(Control::Publish {
                    topic,
                    payload: config.into_bytes(),
                    retain: true,
                });
            }
        }
        for (l, &on) in self.labels.iter().zip(&self.on) {
            self.control.push_back(Control::Publish {
                topic: self.topics.instrument(&l.name),
                payload: if on { ON } else { OFF }.into(),
                retain: true,
            });
        }
    }

    fn on_note(&mut self, note: Note) -> Result<(), MqttError> {
        match note {
            Note::Connected => {
                self.connected = true;
                if self.failures > 0 || !self.ever_connected {
                    log::info!("Connected to the MQTT broker at {}.", self.broker_name);
                }
                self.ever_connected = true;
                self.failures = 0;
                // What waits now was not sent live: it is a replay.
                self.live_from = self.outbox.end();
                self.sent_upto = self.outbox.cursor();
                self.control.clear();
                if let Some(prefix) = &self.discovery_prefix {
                    self.control
                        .push_back(Control::Subscribe(payload::ha_status(prefix)));
                }
                self.queue_announcements(true);
            }
            Note::Sent(pkid) => {
                if let Some(kind) = self.handed.pop_front() {
                    self.in_flight.insert(pkid, kind);
                }
            }
            Note::Acked(pkid) => {
                if let Some(Kind::Detection { end }) = self.in_flight.remove(&pkid) {
                    self.summary.delivered += 1;
                    if let Some(d) = self.detections.iter_mut().find(|d| d.0 == end) {
                        d.1 = true;
                    }
                    let mut upto = None;
                    while let Some(&(end, true)) = self.detections.front() {
                        upto = Some(end);
                        self.detections.pop_front();
                    }
                    if let Some(end) = upto {
                        let reset = end == self.outbox.end();
                        self.outbox.acknowledge(end)?;
                        if reset {
                            // The file started afresh: offsets restart.
                            self.sent_upto = 0;
                            self.live_from = 0;
                            self.peeked = None;
                        }
                    }
                }
            }
            Note::Message { topic, payload } => {
                let ha = self.discovery_prefix.as_deref().map(payload::ha_status);
                if Some(topic) == ha && payload == ONLINE.as_bytes() {
                    log::info!("Home Assistant came online: sending discovery again.");
                    self.queue_announcements(true);
                }
            }
            Note::Closed => {}
            Note::Lost(reason) => {
                if self.connected || self.failures == 0 {
                    log::warn!(
                        "MQTT broker {} unreachable ({reason}); detections wait in the outbox \
                         and reconnection is retried with backoff.",
                        self.broker_name
                    );
                }
                self.failures += 1;
                self.connected = false;
                self.handed.clear();
                self.in_flight.clear();
                self.detections.clear();
                self.control.clear();
                self.peeked = None;
                self.sent_upto = self.outbox.cursor();
                if self.outbox.compact_if_needed()? {
                    self.sent_upto = self.outbox.cursor();
                }
                let _ = self.resume.send(());
            }
        }
        Ok(())
    }

    /// Hands the client what it will take: control messages first, then
    /// detections from the outbox, in order.
    /// Whether `pump` has something to hand the client.
    fn work_waiting(&self) -> bool {
        self.connected
            && (!self.control.is_empty()
                || self.peeked.is_some()
                || (self.detections.len() < MAX_IN_FLIGHT && self.sent_upto < self.outbox.end()))
    }

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
                self.handed.push_back(Kind::Control);
            }
            self.control.pop_front();
        }
        while self.detections.len() < MAX_IN_FLIGHT {
            let (offset, line, next) = match self.peeked.take() {
                Some(p) => p,
                None => match self.outbox.read_at(self.sent_upto)? {
                    Some((line, next)) => (self.sent_upto, line, next),
                    None => break,
                },
            };
            let replayed = offset < self.live_from;
            let body = payload::with_replayed(&line, replayed);
            if self
                .client
                .try_publish(self.topics.detections(), QoS::AtLeastOnce, false, body)
                .is_err()
            {
                self.peeked = Some((offset, line, next));
                break;
            }
            self.handed.push_back(Kind::Detection { end: next });
            self.detections.push_back((next, false));
            self.sent_upto = next;
        }
        Ok(())
    }
}
