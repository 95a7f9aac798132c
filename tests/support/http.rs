//! The HTTP side of the tests: `tutti serve` or `listen` as a child whose
//! log gives the address, and a client that reads any status.

use super::{root, tutti};
use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// A running `tutti serve` (or `listen`) and the address its log gave.
pub struct Server {
    pub child: Child,
    pub base: String,
    /// Every line it logs after the address; held so that its log is
    /// read on (a full pipe would stall it).
    _log: mpsc::Receiver<String>,
}

impl Server {
    /// Spawns `cmd` (stderr piped) and waits for "listen… on http://…/".
    pub fn spawn(mut cmd: std::process::Command) -> Server {
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
        Server {
            child,
            base,
            _log: log,
        }
    }

    /// `tutti serve` on a free loopback port with the shipped model.
    pub fn serve(args: &[&str]) -> Server {
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

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .into()
}

/// Status and body of an answer.
pub fn answer(r: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> (u16, String) {
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

pub fn post(url: &str, body: &[u8]) -> (u16, serde_json::Value) {
    let (status, text) = answer(agent().post(url).send(body));
    let json = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
    (status, json)
}

pub fn get(url: &str) -> (u16, String) {
    answer(agent().get(url).call())
}

pub fn error_of(json: &serde_json::Value) -> &str {
    json["error"]
        .as_str()
        .unwrap_or_else(|| panic!("no error message: {json}"))
}
