//! Log forging without a token: text a client puts into a token's header (`alg`, `typ`, `kid`)
//! reaches the log through the refusal's reason, and must never end the line, start a forged one
//! or send escape sequences to a terminal, in either log format.

use crate::support::*;
use base64::Engine;
use serde_json::{Value, json};
use std::process::Stdio;
use tokio::io::{AsyncBufReadExt, AsyncReadExt};

/// A JWS-shaped token whose header is `header`: it gets as far as the header checks.
fn crafted(header: Value) -> String {
    let b64 = |v: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v);
    format!("{}.{}.c2ln", b64(header.to_string().as_bytes()), b64(b"{}"))
}

/// Tokens whose header fields carry forged log lines (each starts its own line with `FORGED`).
fn forging_tokens() -> Vec<String> {
    let line = "FORGED 2026-01-01T00:00:00Z  INFO otpd: admin login ok";
    vec![
        crafted(json!({"alg": format!("RS256\r\n{line}\u{1b}[2J"), "typ": "JWT"})),
        crafted(json!({"alg": "RS256", "typ": format!("JWT\n{line}\u{2028}"), "kid": RSA_KID})),
        crafted(json!({"alg": "RS256", "kid": format!("k\n{line}\u{9b}")})),
    ]
}

/// Sends each forging token to `url` (`POST /user/otp`): each is a plain 401.
async fn send_forgeries(http: &reqwest::Client, url: &str) {
    for token in forging_tokens() {
        let res = http
            .post(url)
            .bearer_auth(token)
            .json(&json!({"pin": "1235"}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 401);
    }
}

#[tokio::test]
async fn a_crafted_token_cannot_start_a_line_in_the_text_log() {
    let app = TestApp::spawn().await;
    let mut env = app.env.clone();
    env.retain(|(k, _)| !k.starts_with("OTPD_LOG") && k != "OTPD_LISTEN");
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_otpd"))
        .arg("serve")
        .env_clear()
        .envs(env)
        .env("OTPD_LISTEN", "127.0.0.1:0")
        .env("OTPD_LOG_FORMAT", "text")
        .env("OTPD_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("otpd starts");
    let mut stderr = tokio::io::BufReader::new(child.stderr.take().unwrap());
    let mut log = String::new();
    let addr = loop {
        let mut line = String::new();
        let read = stderr.read_line(&mut line).await.unwrap();
        assert!(read > 0, "otpd exited before listening:\n{log}");
        log.push_str(&line);
        if line.contains("otpd listening") {
            let addr = line.split("addr=").nth(1).expect("addr= in the line");
            break addr.split_whitespace().next().unwrap().to_owned();
        }
    };
    let url = format!("http://{addr}{}/user/otp", app.base);
    send_forgeries(&app.http, &url).await;
    // Each request's lines are written before its response; what the pipe holds is complete.
    child.kill().await.unwrap();
    stderr.read_to_string(&mut log).await.unwrap();

    assert!(log.contains("access token refused"), "{log}");
    for line in log.lines() {
        assert!(
            line.starts_with(|c: char| c.is_ascii_digit()),
            "a line that is not one of otpd's (no timestamp): {line:?}\n{log}"
        );
    }
    for raw in ['\r', '\u{1b}', '\u{2028}', '\u{9b}'] {
        assert!(!log.contains(raw), "{raw:?} written raw:\n{log}");
    }
    // The forged text is there, escaped, on the refusal's own line.
    assert!(log.contains("\\r\\nFORGED"), "{log}");
    assert!(log.contains("JWT\\nFORGED"), "{log}");
}

#[tokio::test]
async fn a_crafted_token_stays_inside_its_json_log_line() {
    let app = TestApp::spawn().await;
    send_forgeries(&app.http, &app.url("/user/otp")).await;
    let logs = captured_logs();
    for line in logs.lines().filter(|l| !l.is_empty()) {
        assert!(
            serde_json::from_str::<Value>(line).is_ok(),
            "not a JSON line: {line:?}"
        );
    }
    assert!(!logs.contains('\u{1b}') && !logs.contains('\r'));
    // Inside its JSON string the forged text is still the client's, newline and all.
    let refused: Vec<Value> = logs
        .lines()
        .filter(|l| l.contains("FORGED"))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    // The binary flattens fields into the object; the test harness keeps them under `fields`.
    let reasons = refused
        .iter()
        .flat_map(|v| [&v["reason"], &v["fields"]["reason"]])
        .filter_map(Value::as_str);
    assert!(
        reasons.into_iter().any(|r| r.contains("JWT\nFORGED")),
        "{refused:#?}"
    );
}
