//! `otpd serve` as a real child process (the built binary), for replica, crash and outage tests:
//! started on port 0, its address read from its own "listening" log line, killed with SIGKILL.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub struct Server {
    child: Child,
    pub addr: SocketAddr,
    pub base: String,
}

impl Server {
    /// Starts `otpd serve` with exactly `env` (plus JSON logs) and waits until it listens.
    /// Async, because the issuer it fetches keys from runs on the test's own runtime.
    pub async fn start(env: &[(String, String)]) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_otpd"))
            .arg("serve")
            .env_clear()
            .envs(env.iter().cloned())
            .env("OTPD_LISTEN", "127.0.0.1:0")
            .env("OTPD_LOG_FORMAT", "json")
            .env("OTPD_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("otpd binary starts");
        let stderr = child.stderr.take().expect("piped stderr");
        let (tx, rx) = tokio::sync::oneshot::channel();
        // Reads the log until the process ends, so the pipe never fills up; the first "listening"
        // line tells the address.
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            let mut seen = Vec::new();
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Some(addr) = listening_addr(&line)
                    && let Some(tx) = tx.take()
                {
                    let _ = tx.send(Ok(addr));
                }
                if tx.is_some() {
                    seen.push(line);
                }
            }
            if let Some(tx) = tx {
                let _ = tx.send(Err(seen.join("\n")));
            }
        });
        match tokio::time::timeout(Duration::from_secs(60), rx).await {
            Ok(Ok(Ok(addr))) => Server {
                child,
                addr,
                base: base_path(env),
            },
            Ok(Ok(Err(log))) => panic!("otpd serve exited before listening:\n{log}"),
            Ok(Err(_)) | Err(_) => {
                let _ = child.kill();
                panic!("otpd serve did not listen within 60 s");
            }
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}{}", self.addr, self.base, path)
    }

    pub fn root_url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// SIGKILL: no shutdown hook, no flush, no goodbye.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill9();
    }
}

fn listening_addr(line: &str) -> Option<SocketAddr> {
    let v: serde_json::Value = serde_json::from_str(line).ok()?;
    if v["message"] != "otpd listening" {
        return None;
    }
    v["addr"].as_str()?.parse().ok()
}

fn base_path(env: &[(String, String)]) -> String {
    env.iter()
        .rev()
        .find(|(k, _)| k == "OTPD_BASE_PATH")
        .map_or_else(|| "/user/2022-1".to_owned(), |(_, v)| v.clone())
}

/// `env` with `key` set to `value` (replacing any earlier value).
pub fn with_env(env: &[(String, String)], key: &str, value: &str) -> Vec<(String, String)> {
    let mut env: Vec<_> = env.iter().filter(|(k, _)| k != key).cloned().collect();
    env.push((key.to_owned(), value.to_owned()));
    env
}
