//! A fleet on one broker: 50 `tutti listen` processes, one per room, publish
//! to an edge mosquitto that bridges `tutti/#` to a central one, and the
//! bridge goes down for 20 s in the middle. Every seq of every device must
//! reach the central broker.

mod support;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::Path;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::*;

const DEVICES: usize = 50;
const OUTAGE: Duration = Duration::from_secs(20);

/// A TCP relay for the bridge's connection, which can be cut: while `down`
/// it closes what it carries and refuses new connections.
struct Relay {
    port: u16,
    down: Arc<AtomicBool>,
    open: Arc<Mutex<Vec<TcpStream>>>,
}

impl Relay {
    fn start(to: u16) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let down = Arc::new(AtomicBool::new(false));
        let open = Arc::new(Mutex::new(Vec::<TcpStream>::new()));
        let (d, o) = (down.clone(), open.clone());
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                if d.load(Ordering::SeqCst) {
                    continue; // dropped: refused
                }
                let Ok(server) = TcpStream::connect(("127.0.0.1", to)) else {
                    continue;
                };
                let mut held = o.lock().unwrap();
                held.push(client.try_clone().unwrap());
                held.push(server.try_clone().unwrap());
                for (mut from, mut into) in [
                    (client.try_clone().unwrap(), server.try_clone().unwrap()),
                    (server, client),
                ] {
                    std::thread::spawn(move || {
                        let mut buf = [0u8; 16384];
                        while let Ok(n) = from.read(&mut buf) {
                            if n == 0 || into.write_all(&buf[..n]).is_err() {
                                break;
                            }
                        }
                        let _ = into.shutdown(Shutdown::Both);
                    });
                }
            }
        });
        Relay { port, down, open }
    }

    fn cut(&self) {
        self.down.store(true, Ordering::SeqCst);
        for s in self.open.lock().unwrap().drain(..) {
            let _ = s.shutdown(Shutdown::Both);
        }
    }

    fn mend(&self) {
        self.down.store(false, Ordering::SeqCst);
    }
}

/// CPU seconds (user + system) a process has used so far.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command's closing parenthesis; utime and stime are
    // the 14th and 15th of the whole line.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap();
    ticks / 100.0
}

/// `seconds` of the violin and cello sample, looped, at 22 050 Hz (the
/// model's rate: no resampling, so 50 of them fit on two cores).
fn long_wav(path: &Path, seconds: usize) {
    let mut r = hound::WavReader::open(root().join("samples/violin_cello.wav")).unwrap();
    let samples: Vec<i16> = r.samples::<i16>().map(Result::unwrap).step_by(2).collect();
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 22050,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(path, spec).unwrap();
    for s in samples.iter().cycle().take(seconds * 22050) {
        w.write_sample(*s).unwrap();
    }
    w.finalize().unwrap();
}

#[test]
fn fifty_devices_through_a_bridge_that_fails_for_20_s_deliver_every_seq() {
    let tmp = tempfile::tempdir().unwrap();
    let wav = tmp.path().join("room.wav");
    // 160 s at 4x: 40 s of publishing, the outage in the middle.
    long_wav(&wav, 160);
    let wav = wav.display().to_string();
    let windows = analyze_json(&wav, &["--model", "models/cnn.json"]).len() as u64;

    // The central broker, too, keeps without limit what its subscriber has
    // not taken: the bridge hands over the outage's backlog at once.
    let central = Mosquitto::start_with(
        free_port(),
        &tmp.path().join("central"),
        "allow_anonymous true\nmax_queued_messages 0\n",
    );
    let relay = Relay::start(central.port);
    // The edge keeps what the bridge has not taken, without limit
    // (mosquitto's default keeps 1000 messages, then drops).
    let edge_port = free_port();
    let edge = Mosquitto::start_with(
        edge_port,
        &tmp.path().join("edge"),
        &format!(
            "allow_anonymous true\nmax_queued_messages 0\n\
             connection central\naddress 127.0.0.1:{}\ntopic tutti/# out 1\n\
             cleansession false\nlocal_clientid edge-bridge\nremote_clientid edge\n\
             restart_timeout 1 2\n",
            relay.port
        ),
    );
    let sub = Sub::start(
        central.port,
        "central",
        &["tutti/+/detections", "fleet/probe"],
        "fleet/probe",
    );

    let edge_pid = edge.pid();
    let cpu_before = cpu_seconds(edge_pid);
    let started = Instant::now();
    let broker = format!("mqtt://127.0.0.1:{edge_port}");
    let mut fleet: Vec<_> = (0..DEVICES)
        .map(|i| {
            let id = format!("room{i:02}");
            listen(
                &tmp.path().join(format!("state-{i}")),
                &[
                    "--model",
                    "models/cnn.json",
                    "--input",
                    &wav,
                    "--speed",
                    "4",
                    "--broker",
                    &broker,
                    "--device-id",
                    &id,
                ],
            )
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
        })
        .collect();
    std::thread::sleep(Duration::from_secs(10));
    relay.cut();
    std::thread::sleep(OUTAGE);
    relay.mend();
    for child in &mut fleet {
        assert!(wait_exit(child, Duration::from_secs(120)).success());
    }
    let ran = started.elapsed().as_secs_f64();
    let cpu = cpu_seconds(edge_pid) - cpu_before;

    let total = windows * DEVICES as u64;
    // (device, seq) of every detection the central subscriber got.
    let all = || -> Vec<(String, u64)> {
        sub.lines
            .lock()
            .unwrap()
            .iter()
            .filter(|(t, _)| t.ends_with("/detections"))
            .map(|(_, p)| {
                let d: serde_json::Value = serde_json::from_str(p).unwrap();
                (
                    d["device_id"].as_str().unwrap().to_string(),
                    d["seq"].as_u64().unwrap(),
                )
            })
            .collect()
    };
    let unique = || {
        let mut seen = all();
        seen.sort();
        seen.dedup();
        seen
    };
    // The backlog of the outage drains at the central broker's pace, which
    // a loaded machine slows: the wait ends when all arrived, or when
    // nothing new arrived for 30 s (polled twice a second, since each look
    // parses every message).
    let mut last = (0, Instant::now());
    let arrived = loop {
        let n = unique().len();
        if n as u64 >= total {
            break true;
        }
        if n > last.0 {
            last = (n, Instant::now());
        } else if last.1.elapsed() > Duration::from_secs(30) {
            break false;
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    let got = unique();
    let received = all().len();
    eprintln!(
        "fleet: {DEVICES} devices x {windows} windows = {total}; central received {received} \
         messages, {} distinct; edge broker CPU {cpu:.2} s over {ran:.1} s = {:.3} ms per \
         device per second, {:.1} us per detection",
        got.len(),
        cpu * 1000.0 / DEVICES as f64 / ran,
        cpu * 1e6 / total as f64
    );
    assert!(
        arrived,
        "only {} of {total} distinct detections arrived",
        got.len()
    );
    for i in 0..DEVICES {
        let id = format!("room{i:02}");
        let seqs: Vec<u64> = got
            .iter()
            .filter(|(d, _)| *d == id)
            .map(|(_, s)| *s)
            .collect();
        assert_eq!(seqs, (0..windows).collect::<Vec<_>>(), "{id}");
    }
}
