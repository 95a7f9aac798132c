//! The HTTP API beside the live daemon: `tutti listen` playing a file to
//! a real mosquitto, its status, latest detection, event stream and
//! metrics, and the live page in a real browser (Debian's chromium).

mod support;

use std::io::{BufRead, BufReader};
use std::time::Duration;
use support::http::*;

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
