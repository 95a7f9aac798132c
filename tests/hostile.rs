//! Hostile input, generated: thousands of mutated WAV files, configs, model
//! sidecars, ONNX files, broker URLs and certificates, each through the
//! command a user would run. Every one must end in exit 0 (still valid)
//! or 1 with one line naming the file or key and the problem: no panic, no
//! abort, no hang, and no more than `ADDRESS_SPACE_KB` (1 GiB) of address space. A seeded
//! mutator (`support/hostile.rs`) keeps every run the same; what it once
//! found lives on in `tests/fixtures/hostile/`.

mod support;

use std::process::Command;
use support::hostile::*;
use support::*;

#[test]
fn two_thousand_mutated_wav_files_through_analyze() {
    let tmp = tempfile::tempdir().unwrap();
    let seeds = [
        wav(22050, 1, 16, false, 2.5, false),
        wav(44100, 2, 24, false, 2.2, true),
        wav(48000, 1, 32, true, 2.1, false),
        wav(16000, 2, 8, false, 2.0, true),
        wav(8000, 1, 32, false, 3.0, false),
    ];
    // The header's fields: sizes, format, channels, rate, block, bits.
    let fields = [4, 16, 20, 22, 24, 28, 32, 34, 36, 40];
    let mut rng = Rng(0x7477_7469_7761_7601);
    let cases: Vec<Vec<u8>> = (0..2000)
        .map(|i| mutate(&mut rng, &seeds[i % seeds.len()], &fields))
        .collect();
    let files = write_cases(tmp.path(), "wav", "wav", &cases);
    // 100 files per run: analyze reports each bad file and goes on.
    let mut refused = 0;
    for (k, batch) in files.chunks(100).enumerate() {
        let names: Vec<String> = batch.iter().map(|p| p.display().to_string()).collect();
        let mut args = vec!["analyze", "--model", "models/cnn.json", "--json"];
        args.extend(names.iter().map(String::as_str));
        let run = run_bounded(&args);
        refused += assert_clean(&format!("WAV batch {k}"), &run, &names);
    }
    assert_both_sides("WAV files", refused, files.len());
}

#[test]
fn a_thousand_mutated_configs_through_tutti_config() {
    let tmp = tempfile::tempdir().unwrap();
    let shipped = std::fs::read(root().join("deploy/tutti.toml")).unwrap();
    let small = b"[input]\ndevice = \"default\"\nsample_rate = 48000\n[analysis]\nhop = 0.5\n\
                  hold = 1.5\nmargin = 0.05\n[mqtt]\nbroker = \"mqtts://hub.lan:8883\"\n\
                  device_id = \"den\"\n[state]\noutbox_mb = 64\n[http]\nlisten = \"127.0.0.1:8080\"\n"
        .to_vec();
    // Values that break types and ranges, swapped in for a line's value.
    let values = [
        "\"\"",
        "-1",
        "0",
        "1e309",
        "nan",
        "inf",
        "99999999999999999999",
        "[]",
        "{}",
        "true",
        "\"mqtt://[::1\"",
        "\"\\u0000\"",
        "\"../../etc/passwd\"",
        "4294967297",
        "0.0000001",
    ];
    let mut rng = Rng(0x636f_6e66_6967_0001);
    let mut cases = vec![];
    for i in 0..1000 {
        let base = if i % 2 == 0 { &shipped } else { &small };
        let text = String::from_utf8_lossy(base).into_owned();
        let mut lines: Vec<String> = text.lines().map(String::from).collect();
        let case = match rng.below(3) {
            // A setting's value replaced.
            0 => {
                let settable: Vec<usize> = (0..lines.len())
                    .filter(|&j| lines[j].contains(" = ") && !lines[j].starts_with('#'))
                    .collect();
                if let Some(&j) = settable.get(rng.below(settable.len().max(1))) {
                    let key = lines[j].split(" = ").next().unwrap().to_string();
                    lines[j] = format!("{key} = {}", rng.pick(&values));
                }
                (lines.join("\n") + "\n").into_bytes()
            }
            // A commented-out setting switched on, with a junk value.
            1 => {
                let commented: Vec<usize> = (0..lines.len())
                    .filter(|&j| lines[j].starts_with("# ") && lines[j].contains(" = "))
                    .collect();
                if let Some(&j) = commented.get(rng.below(commented.len().max(1))) {
                    let key = lines[j][2..].split(" = ").next().unwrap().to_string();
                    lines[j] = format!("{key} = {}", rng.pick(&values));
                }
                (lines.join("\n") + "\n").into_bytes()
            }
            _ => mutate(&mut rng, base, &[]),
        };
        cases.push(case);
    }
    let files = write_cases(tmp.path(), "config", "toml", &cases);
    let mut refused = 0;
    for f in &files {
        let name = f.display().to_string();
        let run = run_bounded(&["config", "--config", &name]);
        // A bad value is named by its key (it may come from any layer).
        let names = [name.clone(), "`".into()];
        refused += assert_clean(&name, &run, &names);
    }
    assert_both_sides("configs", refused, files.len());
}

#[test]
fn six_hundred_mutated_sidecars_through_model() {
    let tmp = tempfile::tempdir().unwrap();
    let (sidecar, _) = cnn_copy(tmp.path());
    let clip = clip(tmp.path());
    let junk = [
        serde_json::json!(null),
        serde_json::json!(0),
        serde_json::json!(-1),
        serde_json::json!(1e300),
        serde_json::json!(1e-300),
        serde_json::json!(4_294_967_296u64),
        serde_json::json!(""),
        serde_json::json!("../../../etc/passwd"),
        serde_json::json!([]),
        serde_json::json!({}),
        serde_json::json!(true),
        serde_json::json!(0.5),
        serde_json::json!(1000000),
    ];
    let keys: Vec<String> = sidecar.as_object().unwrap().keys().cloned().collect();
    let mut rng = Rng(0x7369_6465_6361_7201);
    let text = serde_json::to_vec_pretty(&sidecar).unwrap();
    let mut cases = vec![];
    for _ in 0..600 {
        let mut v = sidecar.clone();
        let case = match rng.below(5) {
            // A key's value made junk.
            0 | 1 => {
                let k = rng.pick(&keys).clone();
                v[&k] = rng.pick(&junk).clone();
                serde_json::to_vec(&v).unwrap()
            }
            // A key gone.
            2 => {
                v.as_object_mut().unwrap().remove(rng.pick(&keys).as_str());
                serde_json::to_vec(&v).unwrap()
            }
            // A label's field made junk, or a label gone or repeated.
            3 => {
                let labels = v["labels"].as_array_mut().unwrap();
                let i = rng.below(labels.len());
                match rng.below(3) {
                    0 => {
                        let f = *rng.pick(&["name", "program", "threshold"]);
                        labels[i][f] = rng.pick(&junk).clone();
                    }
                    1 => {
                        labels.remove(i);
                    }
                    _ => {
                        let l = labels[i].clone();
                        labels.push(l);
                    }
                }
                serde_json::to_vec(&v).unwrap()
            }
            _ => mutate(&mut rng, &text, &[]),
        };
        cases.push(case);
    }
    let files = write_cases(tmp.path(), "sidecar", "json", &cases);
    let mut refused = 0;
    for f in &files {
        let name = f.display().to_string();
        let run = run_bounded(&["analyze", "--model", &name, &clip]);
        // Or the ONNX file it names, when the two disagree.
        let onnx = tmp.path().join("cnn.onnx").display().to_string();
        refused += assert_clean(&name, &run, &[name.clone(), onnx]);
    }
    assert_both_sides("sidecars", refused, files.len());
}

#[test]
fn three_hundred_mutated_onnx_files_through_model() {
    let tmp = tempfile::tempdir().unwrap();
    let (sidecar, onnx) = cnn_copy(tmp.path());
    let clip = clip(tmp.path());
    let mut rng = Rng(0x6f6e_6e78_0000_0001);
    let mut tried = 0;
    let mut refused = 0;
    let mut run_one = |bytes: &[u8], name: &str| {
        // The sidecar is made to match, so the checksum does not stop
        // the file before the decoder and tract see it.
        let onnx_path = tmp.path().join(format!("{name}.onnx"));
        std::fs::write(&onnx_path, bytes).unwrap();
        let mut v = sidecar.clone();
        v["model_file"] = format!("{name}.onnx").into();
        v["onnx_sha256"] = tutti::sha256_hex(bytes).into();
        let json = tmp.path().join(format!("{name}.json"));
        std::fs::write(&json, serde_json::to_vec(&v).unwrap()).unwrap();
        let run = run_bounded(&["analyze", "--model", json.to_str().unwrap(), &clip]);
        let onnx_name = onnx_path.display().to_string();
        tried += 1;
        refused += assert_clean(&onnx_name, &run, std::slice::from_ref(&onnx_name));
    };
    for i in 0..300 {
        run_one(&mutate(&mut rng, &onnx, &[]), &format!("onnx-{i}"));
    }
    assert_both_sides("ONNX files", refused, tried);
}

#[test]
fn every_regression_fixture_is_refused_in_one_line() {
    let tmp = tempfile::tempdir().unwrap();
    cnn_copy(tmp.path());
    let clip = clip(tmp.path());
    let sidecars = fixtures("sidecar");
    let configs = fixtures("toml");
    assert!(
        sidecars.len() >= 8 && configs.len() >= 3,
        "fixtures missing"
    );
    for f in sidecars {
        // Beside a CNN they would otherwise load with.
        let to = tmp.path().join(f.file_name().unwrap());
        std::fs::copy(&f, &to).unwrap();
        let name = to.display().to_string();
        let run = run_bounded(&["analyze", "--model", &name, &clip]);
        assert_eq!(run.0, 1, "{name} must be refused: {}", run.2);
        assert_eq!(
            assert_clean(&name, &run, std::slice::from_ref(&name)),
            1,
            "{}",
            run.2
        );
    }
    for f in configs {
        let name = f.display().to_string();
        let run = run_bounded(&["config", "--config", &name]);
        assert_eq!(run.0, 1, "{name} must be refused: {}", run.2);
        assert_eq!(
            assert_clean(&name, &run, &["`mqtt.".into(), "`analysis.".into()]),
            1,
            "{}",
            run.2
        );
    }
}

#[test]
fn three_hundred_junk_broker_urls_through_tutti_config() {
    let seeds = [
        "mqtt://hub",
        "mqtts://hub.lan:8883",
        "mqtt://10.0.0.2:1884/",
        "mqtts://[::1]:8884",
    ];
    let pieces = [
        "[",
        "]",
        ":",
        "::",
        "@",
        "/",
        "?",
        "#",
        "%",
        " ",
        "\t",
        "é",
        "0",
        "65536",
        "-1",
        "..",
        "user:pw@",
        "[fe80::1%eth0]",
        "mqtt://",
        "\u{7f}",
    ];
    let mut rng = Rng(0x6272_6f6b_6572_0001);
    let mut refused = 0;
    for _ in 0..300 {
        let mut url: Vec<char> = rng.pick(&seeds).chars().collect();
        for _ in 0..1 + rng.below(3) {
            let at = rng.below(url.len() + 1);
            match rng.below(3) {
                0 => {
                    let p: Vec<char> = rng.pick(&pieces).chars().collect();
                    url.splice(at..at, p);
                }
                1 if at < url.len() => {
                    url.remove(at);
                }
                _ => url.truncate(at),
            }
        }
        let url: String = url.into_iter().collect();
        let run = run_bounded(&["config", "--broker", &url]);
        refused += assert_clean(&url, &run, &["`mqtt.broker`".into()]);
        if run.0 == 0 && !run.1.contains("broker: Embedded") {
            // What was taken is a host a socket can be asked for.
            let host = run
                .1
                .lines()
                .find_map(|l| l.trim().strip_prefix("host: "))
                .map(|h| h.trim_end_matches(',').trim_matches('"').to_string())
                .unwrap_or_else(|| panic!("{url}: no host in {}", run.1));
            let ok = host.parse::<std::net::IpAddr>().is_ok()
                || host
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'));
            assert!(ok, "{url} was taken with host {host:?}");
        }
    }
    assert_both_sides("broker URLs", refused, 300);
}

#[test]
fn two_hundred_mutated_certificates_and_keys_through_listen() {
    let tmp = tempfile::tempdir().unwrap();
    let out = Command::new("sh")
        .args([
            "-c",
            "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
             -keyout key.pem -out cert.pem -days 2 -subj /CN=tutti-hostile 2>/dev/null",
        ])
        .current_dir(tmp.path())
        .status()
        .unwrap();
    assert!(
        out.success(),
        "openssl (Debian package `openssl`) must be installed"
    );
    let cert = std::fs::read(tmp.path().join("cert.pem")).unwrap();
    let key = std::fs::read(tmp.path().join("key.pem")).unwrap();
    let clip = clip(tmp.path());
    // Nothing listens there: a file that passes reaches the connection
    // attempt, and the clip (at 100x) ends the run.
    let broker = format!("mqtts://127.0.0.1:{}", free_port());
    let mut rng = Rng(0x7065_6d00_0000_0001);
    let mut refused = 0;
    for i in 0..200 {
        let state = tmp.path().join(format!("state-{i}"));
        let (flag, bad) = match i % 3 {
            0 => ("--ca-file", mutate(&mut rng, &cert, &[])),
            1 => ("--client-cert", mutate(&mut rng, &cert, &[])),
            _ => ("--client-key", mutate(&mut rng, &key, &[])),
        };
        let bad_path = tmp.path().join(format!("pem-{i}.pem"));
        std::fs::write(&bad_path, bad).unwrap();
        let bad_path = bad_path.display().to_string();
        let (cert_path, key_path) = (
            tmp.path().join("cert.pem").display().to_string(),
            tmp.path().join("key.pem").display().to_string(),
        );
        let mut args = vec![
            "listen",
            "--model",
            "models/cnn.json",
            "--input",
            &clip,
            "--speed",
            "100",
            "--http",
            "",
            "--broker",
            &broker,
            "--device-id",
            "hostile",
        ];
        let state = state.display().to_string();
        args.extend(["--state-dir", state.as_str(), flag, bad_path.as_str()]);
        match flag {
            "--client-cert" => args.extend(["--client-key", key_path.as_str()]),
            "--client-key" => args.extend(["--client-cert", cert_path.as_str()]),
            _ => {}
        }
        let run = run_bounded(&args);
        refused += assert_clean(&bad_path, &run, std::slice::from_ref(&bad_path));
    }
    // Nearly any change to base64 or DER breaks the file: all refused is
    // expected here, and each refusal named the file (above).
    eprintln!("certificates and keys: {refused} of 200 refused");
    assert!(
        refused >= 180,
        "only {refused} of 200 mutated PEM files refused"
    );
}
