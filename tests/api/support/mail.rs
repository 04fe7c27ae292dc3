//! The mail sink: a real SMTP server for the mail tests, aiosmtpd on loopback, run by the Python
//! of `OTPD_TEST_PYTHON` or the venv `scripts/test.sh` makes. Without one the mail tests skip
//! (fail under CI); nothing is installed mid-run.

use super::skip::python_with;
use serde_json::Value;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};

pub struct SmtpSink {
    pub port: u16,
    lines: Lines<BufReader<ChildStdout>>,
    _child: Child,
}

/// One message as the server received it.
#[derive(Debug)]
pub struct Received {
    pub from: String,
    pub to: Vec<String>,
    pub data: String,
}

impl SmtpSink {
    /// Why the sink cannot run here, for the skip line.
    pub const MISSING: &str =
        "no Python with aiosmtpd (run scripts/test.sh, or set OTPD_TEST_PYTHON)";

    /// A server that accepts every message, or `None` without a Python that has aiosmtpd.
    pub async fn start() -> Option<Self> {
        Self::start_with(&[]).await
    }

    /// A server that refuses every message with a permanent error.
    pub async fn rejecting() -> Option<Self> {
        Self::start_with(&["reject"]).await
    }

    async fn start_with(args: &[&str]) -> Option<Self> {
        let python = python_with("aiosmtpd")?;
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/smtp_sink.py");
        let mut child = Command::new(python)
            .arg(script)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("starting the SMTP test server");
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let first = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
            .await
            .expect("SMTP test server starts")
            .expect("reading its port")
            .expect("a port line");
        let port = serde_json::from_str::<Value>(&first).expect("JSON")["port"]
            .as_u64()
            .expect("port") as u16;
        Some(Self {
            port,
            lines,
            _child: child,
        })
    }

    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// The next message the server received (waits for it).
    pub async fn next_message(&mut self) -> Received {
        let line = tokio::time::timeout(Duration::from_secs(30), self.lines.next_line())
            .await
            .expect("a message arrives")
            .expect("reading the SMTP server's output")
            .expect("the SMTP server is running");
        let v: Value = serde_json::from_str(&line).expect("JSON");
        Received {
            from: v["from"].as_str().unwrap_or_default().to_owned(),
            to: v["to"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|x| x.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default(),
            data: v["data"].as_str().unwrap_or_default().to_owned(),
        }
    }
}
