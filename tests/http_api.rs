//! The HTTP API against the real binary: `tutti serve` with the shipped
//! model, real WAV files posted over a real socket.

mod support;

use std::time::Duration;
use support::http::*;
use support::{root, tutti};

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
    // `serve` has no live input: its keys are there, and null.
    for key in [
        "input",
        "windows",
        "frames_lost",
        "level_dbfs",
        "broker_connected",
        "outbox",
        "on",
        "latest_seq",
    ] {
        assert!(status[key].is_null(), "{key}: {status}");
        assert!(status.as_object().unwrap().contains_key(key), "{key}");
    }
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
