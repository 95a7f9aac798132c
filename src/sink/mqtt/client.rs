//! The rumqttc side: client options from the settings (broker address,
//! last will, credentials, TLS) and the task that drives rumqttc's event
//! loop and reports what happens on the connection to the sink.

use super::tls::{self, TlsError};
use crate::config::{Broker, MqttSettings};
use crate::sink::payload::{Topics, OFFLINE};
use crate::wait::Backoff;
use rumqttc::{
    Event, EventLoop, LastWill, MqttOptions, Outgoing, Packet, QoS, TlsConfiguration, Transport,
};
use std::time::Duration;
use tokio::sync::mpsc;

/// What happened on the connection, as the driver reports it.
#[derive(Debug)]
pub enum LinkEvent {
    Connected,
    /// A publish went out as packet `.0`.
    Sent(u16),
    /// The broker acknowledged packet `.0`.
    Acked(u16),
    /// A message on a topic we subscribed to.
    Message {
        topic: String,
        payload: Vec<u8>,
    },
    Lost(String),
    /// Our DISCONNECT went out.
    Closed,
}

/// Client options from the settings: last will, credentials, TLS.
pub fn options(s: &MqttSettings, embedded_port: u16) -> Result<MqttOptions, TlsError> {
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
        o.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(
            tls::client_config(s)?,
        )));
    }
    Ok(o)
}

/// Drives rumqttc's event loop, reporting to the sink. After a lost
/// connection it waits for the sink's go-ahead, then backs off.
pub async fn drive(
    mut el: EventLoop,
    events: mpsc::UnboundedSender<LinkEvent>,
    mut resume: mpsc::UnboundedReceiver<()>,
) {
    let mut backoff = Backoff::default();
    loop {
        // Ends with the sink (its receiver dropped), even while idle.
        let polled = tokio::select! {
            polled = el.poll() => polled,
            () = events.closed() => return,
        };
        let event = match polled {
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                backoff.reset();
                LinkEvent::Connected
            }
            Ok(Event::Incoming(Packet::PubAck(a))) => LinkEvent::Acked(a.pkid),
            Ok(Event::Incoming(Packet::Publish(p))) => LinkEvent::Message {
                topic: p.topic.clone(),
                payload: p.payload.to_vec(),
            },
            Ok(Event::Outgoing(Outgoing::Publish(pkid))) => LinkEvent::Sent(pkid),
            Ok(Event::Outgoing(Outgoing::Disconnect)) => {
                let _ = events.send(LinkEvent::Closed);
                return;
            }
            Ok(_) => continue,
            Err(e) => {
                if events.send(LinkEvent::Lost(e.to_string())).is_err()
                    || resume.recv().await.is_none()
                {
                    return;
                }
                tokio::select! {
                    () = tokio::time::sleep(backoff.next_wait()) => {}
                    () = events.closed() => return,
                }
                continue;
            }
        };
        if events.send(event).is_err() {
            return;
        }
    }
}
