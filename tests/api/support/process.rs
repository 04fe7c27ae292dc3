//! The real binary as a child process: `otpd serve` for replica, crash and outage tests (started
//! on port 0, its address read from its own "listening" log line, killed with SIGKILL), and the
//! operator commands, each bounded in time so a command that hangs fails its test.

use super::client::User;
use super::issuer::TestIssuer;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// How long an operator command may take before its test fails.
const COMMAND_BOUND: Duration = Duration::from_secs(60);

/// Runs `otpd ARGS` with exactly `env`, `stdin` as its input; killed and failed after a minute.
pub fn run_otpd(env: &[(String, String)], args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_otpd"))
        .args(args)
        .env_clear()
        .envs(env.iter().cloned())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the otpd binary starts");
    // A command that never reads its input must not block the test on a full pipe.
    let mut input = child.stdin.take().unwrap();
    let stdin = stdin.to_owned();
    std::thread::spawn(move || input.write_all(stdin.as_bytes()));
    let drain = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut out = Vec::new();
            let _ = pipe.read_to_end(&mut out);
            out
        })
    };
    let stdout = drain(Box::new(child.stdout.take().unwrap()));
    let stderr = drain(Box::new(child.stderr.take().unwrap()));
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > COMMAND_BOUND {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "`otpd {}` still running after {COMMAND_BOUND:?}",
                args.join(" ")
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Output {
        status,
        stdout: stdout.join().unwrap(),
        stderr: stderr.join().unwrap(),
    }
}

pub struct Server {
    child: Child,
    pub addr: SocketAddr,
    pub base: String,
    pub http: reqwest::Client,
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
                http: reqwest::Client::new(),
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

    /// `sub` calling this server with a token of `issuer` that has every scope.
    pub fn as_user<'a>(&'a self, issuer: &'a TestIssuer, sub: &str) -> User<'a> {
        User::new(&self.http, self.url(""), issuer, sub)
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
