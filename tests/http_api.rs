//! The HTTP API against the real binary: `tutti serve` with the shipped
//! model, real WAV files posted over a real socket.

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::Duration;
use support::{root, tutti};

/// A running `tutti serve` (or `listen`) and the address its log gave.
struct Server {
    child: Child,
    base: String,
    /// Every line it logged after the address, as it logs them.
    #[allow(dead_code)]
    log: mpsc::Receiver<String>,
}

impl Server {
    /// Spawns `cmd` (stderr piped) and waits for "listen… on http://…/".
    fn spawn(mut cmd: std::process::Command) -> Server {
        let mut child = cmd
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let (tx, log) = mpsc::channel();
        let err = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut seen = String::new();
        let base = loop {
            let line = log
                .recv_timeout(Duration::from_secs(60))
                .unwrap_or_else(|_| panic!("no address in the log:\n{seen}"));
            seen.push_str(&line);
            seen.push('\n');
            if let Some(at) = line.find("http://") {
                let rest = &line[at + "http://".len()..];
                break format!("http://{}", &rest[..rest.find('/').unwrap()]);
            }
        };
        Server { child, base, log }
    }

    /// `tutti serve` on a free loopback port with the shipped model.
    fn serve(args: &[&str]) -> Server {
        let empty = tempfile::NamedTempFile::new().unwrap();
        let mut cmd = tutti();
        cmd.current_dir(root())
            .args(["serve", "--model", "models/tutti.json", "--config"])
            .arg(empty.path())
            .args(if args.contains(&"--http") {
                &[][..]
            } else {
                &["--http", "127.0.0.1:0"][..]
            })
            .args(args)
            .env_remove("TUTTI_MODEL")
            .env_remove("TUTTI_HTTP_TOKEN")
            .env("TUTTI_LOG", "info");
        let server = Server::spawn(cmd);
        drop(empty);
        server
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .into()
}

/// Status and body of an answer.
fn answer(r: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> (u16, String) {
    let mut r = r.unwrap();
    let status = r.status().as_u16();
    let body = r
        .body_mut()
        .with_config()
        .limit(64 << 20)
        .read_to_string()
        .unwrap();
    (status, body)
}

fn post(url: &str, body: &[u8]) -> (u16, serde_json::Value) {
    let (status, text) = answer(agent().post(url).send(body));
    let json = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
    (status, json)
}

fn get(url: &str) -> (u16, String) {
    answer(agent().get(url).call())
}

fn error_of(json: &serde_json::Value) -> &str {
    json["error"]
        .as_str()
        .unwrap_or_else(|| panic!("no error message: {json}"))
}

/// `tutti analyze --json` of `file`, each window without its `file`.
fn analyze(file: &str, hop: &str) -> Vec<serde_json::Value> {
    let mut windows = support::analyze_json(file, &["--hop", hop]);
    for w in &mut windows {
        w.as_object_mut().unwrap().remove("file");
    }
    windows
}

#[test]
fn predict_agrees_with_analyze_to_the_last_digit() {
    let server = Server::serve(&[]);
    for (sample, hop) in [
        ("samples/violin_cello.wav", None),
        ("samples/flute_bassoon.wav", Some("0.25")),
        ("samples/piano.wav", Some("1")),
    ] {
        let path = root().join(sample);
        let query = hop.map_or(String::new(), |h| format!("?hop={h}"));
        let (status, json) = post(
            &server.url(&format!("/v1/predict{query}")),
            &std::fs::read(&path).unwrap(),
        );
        assert_eq!(status, 200, "{json}");
        let windows = analyze(sample, hop.unwrap_or("0.5"));
        assert!(!windows.is_empty());
        assert_eq!(json["windows"].as_array().unwrap(), &windows, "{sample}");
        // The clip level: every instrument reported in some window, and
        // each instrument's highest score.
        let mut reported: Vec<&str> = vec![];
        for w in &windows {
            for i in w["instruments"].as_array().unwrap() {
                let i = i.as_str().unwrap();
                if !reported.contains(&i) {
                    reported.push(i);
                }
            }
        }
        let clip: Vec<&str> = json["instruments"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        reported.sort();
        let mut sorted = clip.clone();
        sorted.sort();
        assert_eq!(sorted, reported, "{sample}");
        for (name, top) in json["scores"].as_object().unwrap() {
            let max = windows
                .iter()
                .map(|w| w["scores"][name].as_f64().unwrap())
                .fold(0.0, f64::max);
            assert_eq!(top.as_f64().unwrap(), max, "{sample} {name}");
        }
        let model = json["model"].as_str().unwrap();
        assert_eq!(model.len(), 64);
        assert!(json["elapsed_ms"].as_f64().unwrap() > 0.0);
    }
}

/// A 16-bit mono WAV file of `seconds` of a 440 Hz tone.
fn tone(seconds: f64, rate: u32) -> Vec<u8> {
    let mut out = std::io::Cursor::new(Vec::new());
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: rate,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::new(&mut out, spec).unwrap();
    for i in 0..(seconds * f64::from(rate)) as usize {
        let x = (2.0 * std::f64::consts::PI * 440.0 * i as f64 / f64::from(rate)).sin();
        w.write_sample((x * 8000.0) as i16).unwrap();
    }
    w.finalize().unwrap();
    out.into_inner()
}

#[test]
fn bad_input_gets_a_json_error_with_the_right_status() {
    let server = Server::serve(&["--max-body-mb", "1"]);
    let predict = server.url("/v1/predict");
    let good = std::fs::read(root().join("samples/piano.wav")).unwrap();

    let (status, json) = post(&predict, b"this is not a WAV file");
    assert_eq!(status, 400);
    assert!(
        error_of(&json).starts_with("request body: not a WAV file"),
        "{json}"
    );

    let (status, json) = post(&predict, b"");
    assert_eq!(status, 400, "{json}");
    assert!(error_of(&json).starts_with("request body:"), "{json}");

    let truncated = &good[..good.len() / 3 + 1];
    let (status, json) = post(&predict, truncated);
    assert_eq!(status, 400);
    assert!(error_of(&json).contains("truncated"), "{json}");

    // 32-bit float samples with a NaN among them.
    let mut nan = std::io::Cursor::new(Vec::new());
    {
        let spec = hound::WavSpec {
            channels: 1,
            sample_rate: 22050,
            bits_per_sample: 32,
            sample_format: hound::SampleFormat::Float,
        };
        let mut w = hound::WavWriter::new(&mut nan, spec).unwrap();
        for i in 0..44100 {
            w.write_sample(if i == 3000 { f32::NAN } else { 0.1 })
                .unwrap();
        }
        w.finalize().unwrap();
    }
    let (status, json) = post(&predict, &nan.into_inner());
    assert_eq!(status, 400);
    assert!(
        error_of(&json).contains("frame 3000 is not finite"),
        "{json}"
    );

    // Over --max-body-mb 1: told from the headers, before the body is
    // sent (as a client waiting for `100 Continue` would).
    let (status, json) = oversized(&server.base, 2 << 20);
    assert_eq!(status, 413);
    assert!(error_of(&json).contains("http.max_body_mb"), "{json}");
    // Sent without a length, it is cut off at the limit.
    let big = tone(30.0, 44100);
    let chunked = agent()
        .post(&predict)
        .send(ureq::SendBody::from_reader(&mut &big[..]));
    if let Ok(r) = chunked {
        // The client may also see the socket closed while it still sends.
        let (status, text) = answer(Ok(r));
        assert_eq!(status, 413, "{text}");
        assert!(text.contains("http.max_body_mb"), "{text}");
    }
    // And under it, the same server answers.
    let (status, json) = post(&predict, &tone(2.0, 44100));
    assert_eq!(status, 200, "{json}");

    let (status, json) = post(&format!("{predict}?hop=fast"), &good);
    assert_eq!(status, 400);
    assert!(error_of(&json).contains("hop=\"fast\""), "{json}");
    let (status, json) = post(&format!("{predict}?hop=3"), &good);
    assert_eq!(status, 400);
    assert!(error_of(&json).contains("hop=3"), "{json}");

    let (status, text) = get(&predict);
    assert_eq!(status, 405);
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        error_of(&json),
        "GET is not allowed on /v1/predict; use POST"
    );
    let (status, text) = get(&server.url("/v2/predict"));
    assert_eq!(status, 404);
    assert!(text.contains("no such endpoint: GET /v2/predict"), "{text}");
    // `serve` has no live input.
    let (status, text) = get(&server.url("/v1/events"));
    assert_eq!(status, 404);
    assert!(text.contains("no live input"), "{text}");

    // Bodies are never logged; every request is counted.
    let (status, metrics) = get(&server.url("/metrics"));
    assert_eq!(status, 200);
    for (route, code, n) in [
        ("/v1/predict", 400, 6),
        ("/v1/predict", 413, 2),
        ("/v1/predict", 200, 1),
        ("/v1/predict", 405, 1),
        ("unmatched", 404, 1),
    ] {
        let line = format!("tutti_http_requests_total{{route=\"{route}\",status=\"{code}\"}} {n}");
        assert!(metrics.lines().any(|l| l == line), "{line} in\n{metrics}");
    }
}

/// Sends only the headers of a POST /v1/predict announcing `length`
/// bytes, with `Expect: 100-continue`, and reads the answer.
fn oversized(base: &str, length: usize) -> (u16, serde_json::Value) {
    use std::io::{Read, Write};
    let addr = base.trim_start_matches("http://");
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "POST /v1/predict HTTP/1.1\r\nHost: {addr}\r\nContent-Type: audio/wav\r\n\
         Content-Length: {length}\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let status = text[9..12].parse().unwrap();
    let body = &text[text.find("\r\n\r\n").unwrap() + 4..];
    (
        status,
        serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {text}")),
    )
}

/// `tutti serve` with `args` and `env`, which must fail at start: its
/// stderr.
fn serve_refused(args: &[&str], env: &[(&str, &str)]) -> String {
    let out = tutti()
        .current_dir(root())
        .args([
            "serve",
            "--model",
            "models/tutti.json",
            "--config",
            "/dev/null",
        ])
        .args(args)
        .env_remove("TUTTI_HTTP_TOKEN")
        .envs(env.iter().copied())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    String::from_utf8(out.stderr).unwrap()
}

#[test]
fn beyond_loopback_a_token_is_required_and_checked() {
    // No token: tutti refuses to start, naming the key.
    let err = serve_refused(&["--http", "0.0.0.0:0"], &[]);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("http.listen") && err.contains("0.0.0.0:0") && err.contains("token"),
        "{err}"
    );

    let tmp = tempfile::tempdir().unwrap();
    let token_file = tmp.path().join("token");
    let token = "4f1e0c7a9b2d8e6f";
    std::fs::write(&token_file, format!("{token}\n")).unwrap();
    let server = Server::serve(&[
        "--http",
        "0.0.0.0:0",
        "--http-token-file",
        token_file.to_str().unwrap(),
    ]);
    // The log gave 0.0.0.0:PORT; ask on loopback.
    let status_url = server.url("/v1/status").replace("0.0.0.0", "127.0.0.1");
    let (status, text) = get(&status_url);
    assert_eq!(status, 401);
    assert!(text.contains("Authorization: Bearer"), "{text}");
    let wrong = agent()
        .get(&status_url)
        .header("Authorization", "Bearer 4f1e0c7a9b2d8e6e")
        .call();
    let (status, text) = answer(wrong);
    assert_eq!(status, 401);
    assert!(text.contains("wrong"), "{text}");
    let right = agent()
        .get(&status_url)
        .header("Authorization", format!("Bearer {token}"))
        .call();
    let (status, text) = answer(right);
    assert_eq!(status, 200, "{text}");
    // The page holds no data: it loads without the token, and asks for it.
    let (status, page) = get(&status_url.replace("/v1/status", "/"));
    assert_eq!(status, 200);
    assert!(page.contains("API token"), "{page}");
    // A token too short is refused at start, naming where it came from.
    let err = serve_refused(&[], &[("TUTTI_HTTP_TOKEN", "short")]);
    assert!(
        err.contains("TUTTI_HTTP_TOKEN") && err.contains("16"),
        "{err}"
    );
    assert!(!err.contains("short"), "the token must not be shown: {err}");
}

#[test]
fn a_full_queue_answers_503_and_the_rest_are_served() {
    // No queue: past the analysis slots (two per core), 503 at once.
    let server = Server::serve(&["--http-queue", "0"]);
    let clip = std::sync::Arc::new(tone(60.0, 44100));
    let url = server.url("/v1/predict");
    let clients = 24;
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(clients));
    let handles: Vec<_> = (0..clients)
        .map(|_| {
            let (clip, url, barrier) = (clip.clone(), url.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                post(&url, &clip)
            })
        })
        .collect();
    let answers: Vec<(u16, serde_json::Value)> =
        handles.into_iter().map(|h| h.join().unwrap()).collect();
    let busy: Vec<_> = answers.iter().filter(|(s, _)| *s == 503).collect();
    let ok = answers.iter().filter(|(s, _)| *s == 200).count();
    assert_eq!(ok + busy.len(), clients, "{answers:?}");
    assert!(ok >= 1 && !busy.is_empty(), "ok {ok}, busy {}", busy.len());
    assert!(error_of(&busy[0].1).contains("busy"), "{:?}", busy[0]);
    let (_, status) = get(&server.url("/v1/status"));
    let status: serde_json::Value = serde_json::from_str(&status).unwrap();
    assert_eq!(status["predictions"]["answered"], ok as u64);
    assert_eq!(status["predictions"]["refused_busy"], busy.len() as u64);
}

#[test]
fn bodies_in_memory_are_bounded_and_released() {
    use std::io::Write;
    // Clients that send all but the last byte of a 1 MB body, then stall:
    // each holds 1 MB of the 64 MB kept for bodies.
    let server = Server::serve(&["--max-body-mb", "1", "--http-queue", "200"]);
    let addr = server.base.trim_start_matches("http://").to_string();
    let length = 1 << 20;
    let stalled: Vec<std::net::TcpStream> = (0..70)
        .map(|_| {
            let mut s = std::net::TcpStream::connect(&addr).unwrap();
            write!(
                s,
                "POST /v1/predict HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {length}\r\n\r\n"
            )
            .unwrap();
            s.write_all(&vec![0u8; length - 1]).unwrap();
            s
        })
        .collect();
    let status = || -> serde_json::Value {
        serde_json::from_str(&get(&server.url("/v1/status")).1).unwrap()
    };
    assert!(
        wait_until_json(&status, |s| s["predictions"]["refused_busy"].as_u64()
            >= Some(6)),
        "{}",
        status()
    );
    let held = status()["predictions"]["body_bytes"].as_u64().unwrap();
    assert!(held <= 64 << 20 && held > 60 << 20, "{held}");
    let (code, json) = post(&server.url("/v1/predict"), &tone(2.0, 44100));
    assert_eq!(code, 503, "{json}");
    assert!(error_of(&json).contains("64 MB"), "{json}");
    // The stalled clients go: their memory comes back.
    drop(stalled);
    assert!(
        wait_until_json(&status, |s| s["predictions"]["body_bytes"] == 0),
        "{}",
        status()
    );
    let (code, json) = post(&server.url("/v1/predict"), &tone(2.0, 44100));
    assert_eq!(code, 200, "{json}");
}

/// Waits up to 20 s for `status()` to satisfy `ok`.
fn wait_until_json(
    status: &dyn Fn() -> serde_json::Value,
    ok: impl Fn(&serde_json::Value) -> bool,
) -> bool {
    support::wait_until(Duration::from_secs(20), || ok(&status()))
}

#[test]
fn metrics_parse_as_prometheus_text() {
    let server = Server::serve(&[]);
    let (status, _) = post(&server.url("/v1/predict"), &tone(4.0, 44100));
    assert_eq!(status, 200);
    let r = agent().get(server.url("/metrics")).call().unwrap();
    let content_type = r.headers()["content-type"].to_str().unwrap().to_string();
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    let (_, text) = answer(Ok(r));
    let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string())))
        .unwrap_or_else(|e| panic!("{e}: {text}"));
    let find = |name: &str| {
        scrape
            .samples
            .iter()
            .filter(|s| s.metric == name)
            .collect::<Vec<_>>()
    };
    // A 4-s clip at hop 0.5 is 5 windows.
    let windows = find("tutti_windows_total");
    assert_eq!(windows.len(), 1, "{text}");
    assert_eq!(windows[0].labels.get("source"), Some("predict"));
    assert!(
        matches!(windows[0].value, prometheus_parse::Value::Counter(n) if n == 5.0),
        "{text}"
    );
    let analysis = find("tutti_analysis_seconds");
    match &analysis[0].value {
        prometheus_parse::Value::Histogram(buckets) => {
            assert!(buckets.len() >= 10, "{text}");
            assert_eq!(buckets.last().unwrap().count, 1.0, "{text}");
        }
        other => panic!("not a histogram: {other:?}"),
    }
    assert!(scrape.docs.contains_key("tutti_analysis_seconds"), "{text}");
}

/// Server-Sent Events read from `url` until the stream ends: (event, id,
/// data) each.
fn read_events(url: &str, into: std::sync::Arc<std::sync::Mutex<Vec<(String, String, String)>>>) {
    let r = agent().get(url).call().unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let content_type = r.headers()["content-type"].to_str().unwrap().to_string();
    assert_eq!(content_type, "text/event-stream");
    let reader = BufReader::new(r.into_body().into_reader());
    let (mut event, mut id, mut data) = (String::new(), String::new(), String::new());
    // The stream ends with the process: a reset is its end too.
    for line in reader.lines().map_while(Result::ok) {
        if line.is_empty() {
            if !data.is_empty() {
                into.lock().unwrap().push((
                    std::mem::take(&mut event),
                    std::mem::take(&mut id),
                    std::mem::take(&mut data),
                ));
            }
        } else if let Some(v) = line.strip_prefix("event:") {
            event = v.trim().to_string();
        } else if let Some(v) = line.strip_prefix("id:") {
            id = v.trim().to_string();
        } else if let Some(v) = line.strip_prefix("data:") {
            data.push_str(v.trim_start());
        }
    }
}

#[test]
fn listen_serves_status_latest_events_and_metrics_beside_mqtt() {
    use support::{detections, free_port, listen, wait_exit, wait_until, Mosquitto, Sub};
    let tmp = tempfile::tempdir().unwrap();
    let port = free_port();
    let _broker = Mosquitto::start(port, &tmp.path().join("broker"));
    let sub = Sub::start(port, "http-live", &["tutti/live/#"], "tutti/live/probe");
    let broker = format!("mqtt://127.0.0.1:{port}");
    let cmd = listen(
        &tmp.path().join("state"),
        &[
            "--input",
            "samples/violin_cello.wav",
            "--broker",
            &broker,
            "--device-id",
            "live",
            "--http",
            "127.0.0.1:0",
        ],
    );
    let mut server = Server::spawn(cmd);
    let events = std::sync::Arc::new(std::sync::Mutex::new(vec![]));
    let reader = {
        let (url, events) = (server.url("/v1/events"), events.clone());
        std::thread::spawn(move || read_events(&url, events))
    };
    assert!(
        wait_until(Duration::from_secs(30), || events.lock().unwrap().len()
            >= 3),
        "no events"
    );

    let (code, text) = get(&server.url("/v1/status"));
    assert_eq!(code, 200, "{text}");
    let status: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(status["device_id"], "live");
    assert!(status["input"]
        .as_str()
        .unwrap()
        .ends_with("violin_cello.wav"));
    assert!(status["windows"].as_u64().unwrap() >= 3, "{status}");
    assert_eq!(status["frames_lost"], 0);
    assert_eq!(status["broker_connected"], true, "{status}");
    assert!(
        status["outbox"]["detections"].as_u64().is_some(),
        "{status}"
    );
    assert!(status["on"].is_array(), "{status}");
    let level = status["level_dbfs"].as_f64().unwrap();
    assert!((-60.0..0.0).contains(&level), "{status}");
    assert_eq!(status["model"]["labels"].as_array().unwrap().len(), 11);

    let (code, text) = get(&server.url("/v1/detections/latest"));
    assert_eq!(code, 200, "{text}");
    let latest: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert!(latest["seq"].as_u64().unwrap() >= 2, "{latest}");
    assert_eq!(latest["device_id"], "live");

    let (_, metrics) = get(&server.url("/metrics"));
    let scrape =
        prometheus_parse::Scrape::parse(metrics.lines().map(|l| Ok(l.to_string()))).unwrap();
    let samples = |name: &str| {
        scrape
            .samples
            .iter()
            .filter(|s| s.metric == name)
            .collect::<Vec<_>>()
    };
    assert_eq!(samples("tutti_instrument_on").len(), 11, "{metrics}");
    let gauge = |name: &str| match samples(name).first().map(|s| &s.value) {
        Some(prometheus_parse::Value::Gauge(v)) => *v,
        other => panic!("{name}: {other:?} in\n{metrics}"),
    };
    assert_eq!(gauge("tutti_broker_connected"), 1.0);
    assert!(gauge("tutti_input_level_dbfs") < 0.0);
    let on_now: Vec<&str> = samples("tutti_instrument_on")
        .iter()
        .filter(|s| matches!(s.value, prometheus_parse::Value::Gauge(v) if v == 1.0))
        .map(|s| s.labels.get("instrument").unwrap())
        .collect();
    assert!(!on_now.is_empty(), "violin and cello play: {metrics}");
    assert!(samples("tutti_outbox_bytes").len() == 1, "{metrics}");

    // The file ends, tutti stops, the stream ends.
    let status = wait_exit(&mut server.child, Duration::from_secs(60));
    assert!(status.success(), "{status}");
    reader.join().unwrap();
    let mqtt = detections(&sub, "tutti/live");
    let sse = events.lock().unwrap().clone();
    assert!(!mqtt.is_empty());
    let mqtt_seqs: Vec<u64> = mqtt.iter().map(|d| d["seq"].as_u64().unwrap()).collect();
    let sse_seqs: Vec<u64> = sse.iter().map(|(_, id, _)| id.parse().unwrap()).collect();
    // The stream starts when its client connects, at the start here (a
    // loaded machine may connect a window or two late): from then on it
    // carries every window MQTT does, and the same payloads.
    let first = *sse_seqs.first().expect("events");
    assert!(first <= 3, "the stream began late: {sse_seqs:?}");
    let from = mqtt_seqs.iter().position(|&s| s == first).unwrap();
    assert_eq!(
        sse_seqs,
        mqtt_seqs[from..],
        "the stream carries every window, as MQTT"
    );
    for ((event, _, data), m) in sse.iter().zip(&mqtt[from..]) {
        assert_eq!(event, "detection");
        let mut d: serde_json::Value = serde_json::from_str(data).unwrap();
        let mut m = m.clone();
        // Whether MQTT replayed it depends on when the broker link came up.
        d.as_object_mut().unwrap().remove("replayed");
        m.as_object_mut().unwrap().remove("replayed");
        assert_eq!(d, m);
    }
}

/// The page as a headless Chromium renders it after a few seconds.
fn rendered_page(url: &str) -> String {
    let out = std::process::Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--virtual-time-budget=3000",
            "--dump-dom",
            url,
        ])
        .output()
        .expect("chromium (Debian package `chromium`) must be installed; .ci/run installs it");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The value of `attr="…"` in `tag`.
fn attr<'a>(tag: &'a str, attr: &str) -> Option<&'a str> {
    let at = tag.find(&format!("{attr}=\""))? + attr.len() + 2;
    Some(&tag[at..at + tag[at..].find('"')?])
}

#[test]
fn the_live_page_shows_in_a_real_browser_what_mqtt_reports() {
    use support::{detections, free_port, listen, wait_until, Mosquitto, Sub};
    let tmp = tempfile::tempdir().unwrap();
    let port = free_port();
    let _broker = Mosquitto::start(port, &tmp.path().join("broker"));
    let sub = Sub::start(port, "http-page", &["tutti/page/#"], "tutti/page/probe");
    let broker = format!("mqtt://127.0.0.1:{port}");
    let server = Server::spawn(listen(
        &tmp.path().join("state"),
        &[
            "--input",
            "samples/violin_cello.wav",
            "--loop",
            "--speed",
            "2",
            "--broker",
            &broker,
            "--device-id",
            "page",
            "--http",
            "127.0.0.1:0",
        ],
    ));
    assert!(wait_until(Duration::from_secs(30), || {
        detections(&sub, "tutti/page").len() >= 6
    }));
    let page = rendered_page(&server.url("/"));
    // The tiles show the instruments of the window they name.
    let tiles = &page[page.find("<ul id=\"tiles\"").expect("tiles")..];
    let tiles = &tiles[..tiles.find("</ul>").unwrap()];
    let seq: u64 = attr(tiles, "data-seq")
        .unwrap_or_else(|| panic!("no detection shown: {page}"))
        .parse()
        .unwrap();
    let shown: Vec<&str> = tiles
        .split("<li ")
        .skip(1)
        .filter(|li| attr(li, "data-reported") == Some("true"))
        .map(|li| attr(li, "data-instrument").unwrap())
        .collect();
    assert_eq!(tiles.matches("<li ").count(), 11, "{tiles}");
    assert!(wait_until(Duration::from_secs(10), || {
        detections(&sub, "tutti/page").len() as u64 > seq
    }));
    let mqtt = detections(&sub, "tutti/page");
    let window = mqtt.iter().find(|d| d["seq"] == seq).unwrap();
    let reported: Vec<&str> = window["instruments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(shown, reported, "window {seq}: the page against MQTT");
    assert!(!shown.is_empty(), "violin and cello play");
    assert!(
        page.contains("<p id=\"state\" data-state=\"live\">"),
        "{page}"
    );
    assert!(
        page.contains("<span id=\"broker\">connected</span>"),
        "{page}"
    );
    // Served with a restrictive policy: its own script and style only.
    let r = agent().get(server.url("/")).call().unwrap();
    let csp = r.headers()["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("default-src 'none'") && csp.contains("script-src 'self'"),
        "{csp}"
    );
}
