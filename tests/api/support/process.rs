//! The real binary as a child process: `otpd serve` for replica, crash and outage tests (started
//! on port 0, its address read from its own "listening" log line, killed with SIGKILL), `otpd
//! serve` with every log line kept for the shutdown tests, and the operator commands, each
//! bounded in time so a command that hangs fails its test.

use super::app::TestApp;
use super::client::User;
use super::issuer::TestIssuer;
use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::AsyncBufReadExt;
use tokio::net::TcpStream;

/// How long a child process may take to start, stop, or close its listener.
const SAFETY: Duration = Duration::from_secs(60);

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

/// `run_otpd` of a command that must succeed; a failure shows its standard error.
pub fn run_otpd_ok(env: &[(String, String)], args: &[&str], stdin: &str) -> Output {
    let out = run_otpd(env, args, stdin);
    assert!(
        out.status.success(),
        "otpd {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
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

    /// How the process stands, for a failure message: "running" or how it exited.
    pub fn state(&mut self) -> String {
        match self.child.try_wait() {
            Ok(None) => "running".to_owned(),
            Ok(Some(status)) => format!("exited: {status}"),
            Err(e) => format!("unknown: {e}"),
        }
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

/// `otpd serve` as a child process with JSON logs; its stderr lines are collected.
pub struct Served {
    child: tokio::process::Child,
    pub addr: SocketAddr,
    logs: Arc<Mutex<Vec<String>>>,
    /// Ends when the child's stderr closes: every line is collected then.
    collector: Option<tokio::task::JoinHandle<()>>,
}

pub async fn serve_binary(app: &TestApp, extra: &[(&str, &str)]) -> Served {
    let mut env = app.env.clone();
    env.retain(|(k, _)| k != "OTPD_LISTEN");
    env.push(("OTPD_LISTEN".into(), "127.0.0.1:0".into()));
    env.push(("OTPD_LOG_FORMAT".into(), "json".into()));
    env.push(("OTPD_LOG".into(), "debug".into()));
    for (k, v) in extra {
        env.push(((*k).into(), (*v).into()));
    }
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_otpd"))
        .arg("serve")
        .env_clear()
        .envs(env)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("otpd starts");
    let mut lines = tokio::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let logs = Arc::new(Mutex::new(Vec::new()));
    let addr = loop {
        let line = tokio::time::timeout(SAFETY, lines.next_line())
            .await
            .expect("otpd logs its address")
            .unwrap()
            .expect("otpd exited before listening");
        logs.lock().unwrap().push(line.clone());
        if let Ok(v) = serde_json::from_str::<Value>(&line)
            && v["message"] == "otpd listening"
        {
            break v["addr"].as_str().unwrap().parse().unwrap();
        }
    };
    let collected = Arc::clone(&logs);
    let collector = tokio::spawn(async move {
        while let Ok(Some(line)) = lines.next_line().await {
            collected.lock().unwrap().push(line);
        }
    });
    Served {
        child,
        addr,
        logs,
        collector: Some(collector),
    }
}

impl Served {
    pub fn terminate(&self) {
        let pid = self.child.id().expect("running").to_string();
        let status = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits until a new connection is refused: the listener is closed.
    pub async fn wait_until_refusing(&self) {
        let refused = async {
            while TcpStream::connect(self.addr).await.is_ok() {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        };
        tokio::time::timeout(SAFETY, refused)
            .await
            .expect("the listener closes after SIGTERM");
    }

    /// Waits for the process to exit and for its last log lines.
    pub async fn wait_for_exit(&mut self) -> std::process::ExitStatus {
        let status = tokio::time::timeout(SAFETY, self.child.wait())
            .await
            .expect("otpd exits after SIGTERM")
            .unwrap();
        if let Some(collector) = self.collector.take() {
            let _ = tokio::time::timeout(SAFETY, collector).await;
        }
        status
    }

    pub fn logs(&self) -> Vec<String> {
        self.logs.lock().unwrap().clone()
    }

    /// The log lines that are JSON objects (all of them, since `serve_binary` asks for JSON).
    pub fn json_logs(&self) -> Vec<Value> {
        let logs = self.logs.lock().unwrap();
        logs.iter()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// The `/metrics` page, as Prometheus text.
    pub async fn metrics(&self) -> String {
        let url = format!("http://{}/metrics", self.addr);
        let res = reqwest::get(url).await.expect("/metrics answers");
        res.text().await.unwrap()
    }
}
