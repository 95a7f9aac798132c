//! MQTT over TLS with a private CA, a client certificate and a password,
//! against a mosquitto that requires all three; and what a wrong password
//! or an untrusted server looks like in the log.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;
use support::*;

const USER: &str = "tutti";
const PASSWORD: &str = "pw-Zq81-never-logged";

struct Pki {
    ca: PathBuf,
    client_cert: PathBuf,
    client_key: PathBuf,
}

/// A CA, a server certificate for localhost / 127.0.0.1 and a client
/// certificate, made with openssl in `dir`.
fn make_pki(dir: &Path) -> Pki {
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\n",
    )
    .unwrap();
    std::fs::write(dir.join("client.ext"), "extendedKeyUsage=clientAuth\n").unwrap();
    let script = r#"set -e
ec="-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes"
openssl req -x509 $ec -keyout ca.key -out ca.crt -days 2 -subj /CN=tutti-test-ca
openssl req $ec -keyout server.key -out server.csr -subj /CN=localhost
openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial \
  -out server.crt -days 2 -extfile server.ext
openssl req $ec -keyout client.key -out client.csr -subj /CN=tutti-client
openssl x509 -req -in client.csr -CA ca.crt -CAkey ca.key -CAcreateserial \
  -out client.crt -days 2 -extfile client.ext
openssl x509 -req -in client.csr -CA ca.crt -CAkey ca.key -CAcreateserial \
  -out client-v1.crt -days 2
chmod 644 *.key
"#;
    let out = Command::new("sh")
        .args(["-c", script])
        .current_dir(dir)
        .output()
        .expect("openssl (Debian package `openssl`) must be installed");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Pki {
        ca: dir.join("ca.crt"),
        client_cert: dir.join("client.crt"),
        client_key: dir.join("client.key"),
    }
}

/// mosquitto on TLS only, with client certificates and passwords required.
fn secure_broker(dir: &Path, port: u16) -> Mosquitto {
    let pw = dir.join("passwords");
    let ok = Command::new("mosquitto_passwd")
        .args(["-c", "-b"])
        .arg(&pw)
        .args([USER, PASSWORD])
        .status()
        .unwrap()
        .success();
    assert!(ok, "mosquitto_passwd failed");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o644)).unwrap();
    Mosquitto::start_with(
        port,
        &dir.join("broker"),
        &format!(
            "allow_anonymous false\npassword_file {pw}\ncafile {d}/ca.crt\n\
             certfile {d}/server.crt\nkeyfile {d}/server.key\nrequire_certificate true\n",
            pw = pw.display(),
            d = dir.display()
        ),
    )
}

fn tutti_tls(state: &Path, port: u16, pki: &Pki, password: &str) -> Command {
    let broker = format!("mqtts://localhost:{port}");
    let mut cmd = listen(
        state,
        &[
            "--input",
            "samples/piano.wav",
            "--loop",
            "--speed",
            "4",
            "--broker",
            &broker,
            "--device-id",
            "secure",
        ],
    );
    cmd.env("TUTTI_MQTT_CA_FILE", &pki.ca)
        .env("TUTTI_MQTT_CLIENT_CERT", &pki.client_cert)
        .env("TUTTI_MQTT_CLIENT_KEY", &pki.client_key)
        .env("TUTTI_MQTT_USERNAME", USER)
        .env("TUTTI_MQTT_PASSWORD", password)
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    cmd
}

fn stop_and_log(mut child: std::process::Child) -> String {
    signal(&child, "TERM");
    let status = wait_exit(&mut child, Duration::from_secs(20));
    let mut log = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut log).unwrap();
    assert!(status.success(), "exit {status}:\n{log}");
    assert!(!log.contains(PASSWORD), "the password was logged:\n{log}");
    log
}

#[test]
fn detections_arrive_over_tls_with_a_client_certificate_and_a_password() {
    let dir = tempfile::tempdir().unwrap();
    let pki = make_pki(dir.path());
    let port = free_port();
    let _broker = secure_broker(dir.path(), port);
    // A subscriber with the same credentials: the first three detections.
    let sub = Command::new("mosquitto_sub")
        .args(["-h", "localhost", "-p", &port.to_string()])
        .arg("--cafile")
        .arg(&pki.ca)
        .arg("--cert")
        .arg(&pki.client_cert)
        .arg("--key")
        .arg(&pki.client_key)
        .args(["-u", USER, "-P", PASSWORD])
        .args(["-t", "tutti/secure/detections", "-C", "3", "-W", "60"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let child = tutti_tls(&dir.path().join("state"), port, &pki, PASSWORD)
        .spawn()
        .unwrap();
    let out = sub.wait_with_output().unwrap();
    let log = stop_and_log(child);
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3, "subscriber got {lines:?}\nlog:\n{log}");
    assert_eq!(lines[0]["device_id"], "secure");
    assert!(log.contains("Connected to the MQTT broker"), "{log}");
}

#[test]
fn a_wrong_password_or_an_untrusted_server_is_one_clear_warning() {
    let dir = tempfile::tempdir().unwrap();
    let pki = make_pki(dir.path());
    let port = free_port();
    let _broker = secure_broker(dir.path(), port);

    let child = tutti_tls(&dir.path().join("state1"), port, &pki, "wrong")
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(4));
    let log = stop_and_log(child);
    let refusals: Vec<&str> = log.lines().filter(|l| l.contains("unreachable")).collect();
    assert_eq!(refusals.len(), 1, "one warning, not one per retry:\n{log}");
    assert!(refusals[0].contains(&format!("localhost:{port}")), "{log}");
    assert!(
        refusals[0].to_lowercase().contains("not authorized")
            || refusals[0].contains("NotAuthorized")
            || refusals[0].contains("BadUserNamePassword"),
        "the reason is not named:\n{log}"
    );
    assert!(log.contains("stay in the outbox"), "{log}");

    // The system CAs do not know the test CA.
    let other = tempfile::tempdir().unwrap();
    let untrusted = Pki {
        ca: make_pki(other.path()).ca,
        ..pki
    };
    let child = tutti_tls(&dir.path().join("state2"), port, &untrusted, PASSWORD)
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(4));
    let log = stop_and_log(child);
    let refusals: Vec<&str> = log.lines().filter(|l| l.contains("unreachable")).collect();
    assert_eq!(refusals.len(), 1, "{log}");
    assert!(
        refusals[0].contains("certificate") || refusals[0].contains("UnknownIssuer"),
        "the TLS reason is not named:\n{log}"
    );
}

#[test]
fn bad_tls_files_stop_tutti_at_start_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let pki = make_pki(dir.path());
    let port = free_port();
    let v1 = dir.path().join("client-v1.crt");
    let server_key = dir.path().join("server.key");
    let not_pem = dir.path().join("server.ext");
    let cases: [(&Path, &Path, &Path, &str); 4] = [
        (&pki.ca, &v1, &pki.client_key, "X.509 v1"),
        (
            &pki.ca,
            &pki.client_cert,
            &server_key,
            "does not go with the key",
        ),
        (
            &not_pem,
            &pki.client_cert,
            &pki.client_key,
            "holds no PEM certificate",
        ),
        (
            &pki.ca,
            &pki.client_cert,
            &pki.ca,
            "no usable PEM private key",
        ),
    ];
    for (ca, cert, key, says) in cases {
        let blamed = if says.contains("key") && key == pki.ca.as_path() {
            key
        } else if ca == not_pem.as_path() {
            ca
        } else {
            cert
        };
        let out = tutti_tls(&dir.path().join("state"), port, &pki, PASSWORD)
            .env("TUTTI_MQTT_CA_FILE", ca)
            .env("TUTTI_MQTT_CLIENT_CERT", cert)
            .env("TUTTI_MQTT_CLIENT_KEY", key)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{err}");
        let lines: Vec<&str> = err.lines().collect();
        assert_eq!(lines.len(), 1, "one line: {err}");
        assert!(
            lines[0].contains(&blamed.display().to_string()) && lines[0].contains(says),
            "expected {} and {says:?} in: {err}",
            blamed.display()
        );
    }
}
