//! Real parts for the daemon's tests: a mosquitto broker on a free port,
//! a `mosquitto_sub` subscriber, and `tutti listen` as a child process.
#![allow(dead_code)]

pub mod hostile;
pub mod http;

use std::io::{BufRead, BufReader};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn tutti() -> Command {
    Command::new(env!("CARGO_BIN_EXE_tutti"))
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn wait_for_port(port: u16, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

/// Waits until `cond` holds, up to `timeout`.
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    cond()
}

pub fn signal(child: &Child, sig: &str) {
    let ok = Command::new("kill")
        .args([&format!("-{sig}"), &child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill -{sig} failed");
}

/// Waits for a child to exit, killing it after `timeout`.
pub fn wait_exit(child: &mut Child, timeout: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("process {} did not exit within {timeout:?}", child.id());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A mosquitto broker with its own config, on 127.0.0.1 only. Persistent
/// sessions survive a restart (it saves them when stopped with SIGTERM).
pub struct Mosquitto {
    pub port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

impl Mosquitto {
    pub fn start(port: u16, dir: &Path) -> Mosquitto {
        Mosquitto::start_with(port, dir, "allow_anonymous true\n")
    }

    /// A broker whose listener takes `listener_config` (authentication,
    /// TLS) in place of anonymous access.
    pub fn start_with(port: u16, dir: &Path, listener_config: &str) -> Mosquitto {
        std::fs::create_dir_all(dir).unwrap();
        // mosquitto started as root runs as user `mosquitto`: it must be
        // able to save its database here.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o777)).unwrap();
        let conf = dir.join("mosquitto.conf");
        std::fs::write(
            &conf,
            format!(
                "listener {port} 127.0.0.1\n{listener_config}persistence true\n\
                 persistence_location {}/\nautosave_interval 1\n",
                dir.display()
            ),
        )
        .unwrap();
        let mut m = Mosquitto {
            port,
            dir: dir.to_path_buf(),
            child: None,
        };
        m.restart();
        m
    }

    pub fn restart(&mut self) {
        let child = Command::new("mosquitto")
            .arg("-c")
            .arg(self.dir.join("mosquitto.conf"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect(
                "mosquitto (Debian package `mosquitto`) must be installed; .ci/run installs it",
            );
        self.child = Some(child);
        assert!(
            wait_for_port(self.port, Duration::from_secs(10)),
            "mosquitto did not listen on {}",
            self.port
        );
    }

    /// The broker's process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// Stops the broker (SIGTERM) and waits for it to exit.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            signal(&c, "TERM");
            wait_exit(&mut c, Duration::from_secs(10));
        }
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A `mosquitto_sub` subscriber; every message it prints is kept as
/// (topic, payload).
pub struct Sub {
    child: Child,
    pub lines: Arc<Mutex<Vec<(String, String)>>>,
}

impl Sub {
    /// Subscribes to `topics` at QoS 1 with a persistent session named
    /// `id`, and waits until a probe message on `probe_topic` comes back.
    pub fn start(port: u16, id: &str, topics: &[&str], probe_topic: &str) -> Sub {
        let lines = Arc::new(Mutex::new(vec![]));
        // What mosquitto_sub says on stderr, for the failure message.
        let said = Arc::new(Mutex::new(String::new()));
        let spawn = || {
            let mut cmd = Command::new("mosquitto_sub");
            cmd.args([
                "-h",
                "127.0.0.1",
                "-p",
                &port.to_string(),
                "-q",
                "1",
                "-c",
                "-i",
                id,
            ])
            .args(["-F", "%t\t%p"]);
            for t in topics {
                cmd.args(["-t", t]);
            }
            let mut child = cmd
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("mosquitto_sub (Debian package `mosquitto-clients`) must be installed");
            let out = child.stdout.take().unwrap();
            let sink = lines.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(out).lines().map_while(Result::ok) {
                    if let Some((t, p)) = line.split_once('\t') {
                        sink.lock().unwrap().push((t.to_string(), p.to_string()));
                    }
                }
            });
            let err = child.stderr.take().unwrap();
            let said = said.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(err).lines().map_while(Result::ok) {
                    said.lock().unwrap().push_str(&format!("{line}\n"));
                }
            });
            child
        };
        let mut sub = Sub {
            child: spawn(),
            lines: lines.clone(),
        };
        // One probe every 250 ms: each is a short-lived client, and a
        // burst of them (every 20 ms, as before) crowds a broker under load.
        // mosquitto_sub gives up if its first connection fails (CI saw a
        // subscriber never hear a probe, once, under load): it is started
        // again, and what it said is kept for the failure message.
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut seen = false;
        let mut restarts = 0;
        while !seen && Instant::now() < deadline {
            if let Ok(Some(_)) = sub.child.try_wait() {
                sub.child = spawn();
                restarts += 1;
            }
            publish(port, probe_topic, "probe", false);
            seen = wait_until(Duration::from_millis(250), || sub.count(probe_topic) > 0);
        }
        assert!(
            seen,
            "the subscriber never saw its probe on {probe_topic} ({restarts} restarts; \
             mosquitto_sub said: {:?})",
            said.lock().unwrap()
        );
        sub
    }

    pub fn count(&self, topic: &str) -> usize {
        self.lines
            .lock()
            .unwrap()
            .iter()
            .filter(|(t, _)| t == topic)
            .count()
    }

    pub fn payloads(&self, topic: &str) -> Vec<String> {
        self.lines
            .lock()
            .unwrap()
            .iter()
            .filter(|(t, _)| t == topic)
            .map(|(_, p)| p.clone())
            .collect()
    }

    pub fn topics(&self) -> Vec<String> {
        self.lines
            .lock()
            .unwrap()
            .iter()
            .map(|(t, _)| t.clone())
            .collect()
    }
}

impl Drop for Sub {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn publish(port: u16, topic: &str, payload: &str, retain: bool) {
    let mut cmd = Command::new("mosquitto_pub");
    cmd.args([
        "-h",
        "127.0.0.1",
        "-p",
        &port.to_string(),
        "-q",
        "1",
        "-t",
        topic,
        "-m",
        payload,
    ]);
    if retain {
        cmd.arg("-r");
    }
    let _ = cmd.stdout(Stdio::null()).stderr(Stdio::null()).status();
}

/// The retained message on `topic`, if any (a fresh subscriber's first).
pub fn retained(port: u16, topic: &str) -> Option<String> {
    let out = Command::new("mosquitto_sub")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-t",
            topic,
            "-C",
            "1",
            "-W",
            "2",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
    (!text.is_empty()).then_some(text)
}

/// `cmd` run as systemd runs a service's main process with a watchdog:
/// through a shell that sets `WATCHDOG_PID` to its own pid and execs it,
/// in the repository, with `socket` as `NOTIFY_SOCKET` and `watchdog` as
/// `WATCHDOG_USEC`.
pub fn as_service(cmd: &Command, socket: &Path, watchdog: Duration) -> Command {
    let mut args = vec![cmd.get_program().to_string_lossy().into_owned()];
    args.extend(cmd.get_args().map(|a| a.to_string_lossy().into_owned()));
    let quoted: Vec<String> = args.iter().map(|a| format!("'{a}'")).collect();
    let mut sh = Command::new("sh");
    sh.arg("-c")
        .arg(format!("WATCHDOG_PID=$$ exec {}", quoted.join(" ")))
        .current_dir(root())
        .env("NOTIFY_SOCKET", socket)
        .env("WATCHDOG_USEC", watchdog.as_micros().to_string())
        .env("TUTTI_LOG", "info")
        .env_remove("TUTTI_MODEL");
    sh
}

/// `tutti listen` with its state in `state` and the shipped model.
pub fn listen(state: &Path, args: &[&str]) -> Command {
    let mut cmd = tutti();
    cmd.current_dir(root()).arg("listen");
    if !args.contains(&"--model") {
        cmd.args(["--model", "models/tutti.json"]);
    }
    if !args.contains(&"--state-dir") {
        cmd.arg("--state-dir").arg(state);
    }
    // Tests run side by side: the HTTP API is on only where asked for
    // (its default port would be taken by the first).
    if !args.contains(&"--http") {
        cmd.args(["--http", ""]);
    }
    cmd.args(args)
        .env_remove("TUTTI_MODEL")
        .env("TUTTI_LOG", "info");
    cmd
}

/// `tutti analyze --json FILE EXTRA...`, one value per window, with the
/// shipped model unless `extra` names another.
pub fn analyze_json(file: &str, extra: &[&str]) -> Vec<serde_json::Value> {
    let mut cmd = tutti();
    cmd.current_dir(root()).args(["analyze", "--json", file]);
    if !extra.contains(&"--model") {
        cmd.args(["--model", "models/tutti.json"]);
    }
    let out = cmd.args(extra).env_remove("TUTTI_MODEL").output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Detections as JSON, in arrival order.
pub fn detections(sub: &Sub, prefix: &str) -> Vec<serde_json::Value> {
    sub.payloads(&format!("{prefix}/detections"))
        .iter()
        .map(|p| serde_json::from_str(p).unwrap_or_else(|e| panic!("bad JSON {p}: {e}")))
        .collect()
}
