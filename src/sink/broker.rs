//! The embedded MQTT broker (rumqttd), started when no broker is
//! configured, so that a fresh machine works with nothing installed. It
//! listens on 127.0.0.1 only.

use std::net::{SocketAddr, TcpListener};

#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error("embedded MQTT broker on {addr}: {reason}")]
    Start { addr: SocketAddr, reason: String },
}

/// What happened when the embedded broker was asked for.
pub enum Embedded {
    /// tutti's own broker runs on the address (never, in a build without
    /// the `embedded-broker` feature).
    #[cfg_attr(not(feature = "embedded-broker"), allow(dead_code))]
    Started,
    /// Something already listens there (often a local mosquitto): tutti
    /// publishes to it instead.
    PortTaken,
}

/// Starts rumqttd on 127.0.0.1:`port` in its own threads and waits until it
/// accepts connections.
#[cfg(feature = "embedded-broker")]
pub fn start(port: u16) -> Result<Embedded, BrokerError> {
    use rumqttd::{Broker, Config, ConnectionSettings, RouterConfig, ServerSettings};
    use std::collections::HashMap;
    use std::net::TcpStream;
    use std::time::{Duration, Instant};
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let err = |reason: String| BrokerError::Start { addr, reason };
    match TcpListener::bind(addr) {
        Ok(l) => drop(l),
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => return Ok(Embedded::PortTaken),
        Err(e) => return Err(err(e.to_string())),
    }
    let server = ServerSettings {
        name: "tutti".into(),
        listen: addr,
        tls: None,
        next_connection_delay_ms: 1,
        connections: ConnectionSettings {
            connection_timeout_ms: 60_000,
            max_payload_size: 64 * 1024,
            max_inflight_count: 100,
            auth: None,
            external_auth: None,
            dynamic_filters: true,
        },
    };
    let config = Config {
        id: 0,
        router: RouterConfig {
            max_connections: 64,
            max_outgoing_packet_count: 200,
            max_segment_size: 1 << 20,
            max_segment_count: 10,
            ..Default::default()
        },
        v4: Some(HashMap::from([("tutti".to_string(), server)])),
        ..Default::default()
    };
    let mut broker = Broker::new(config);
    std::thread::Builder::new()
        .name("tutti-broker".into())
        .spawn(move || {
            if let Err(e) = broker.start() {
                log::error!("The embedded MQTT broker stopped: {e}.");
            }
        })
        .map_err(|e| err(e.to_string()))?;
    let deadline = Instant::now() + Duration::from_secs(5);
    while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
        if Instant::now() > deadline {
            return Err(err("it did not start listening within 5 s".into()));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(Embedded::Started)
}

/// Built without the embedded broker: one must be configured.
#[cfg(not(feature = "embedded-broker"))]
pub fn start(port: u16) -> Result<Embedded, BrokerError> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    match TcpListener::bind(addr) {
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => Ok(Embedded::PortTaken),
        _ => Err(BrokerError::Start {
            addr,
            reason: "this build has no embedded broker; set mqtt.broker".into(),
        }),
    }
}
