//! Crash safety: an OTP answered 201 is on disk. A real `otpd serve` is killed with SIGKILL in the
//! middle of a stream of `POST /user/otp`, restarted on the same database, and every OTP it had
//! answered is redeemed there, exactly once.

use crate::process::Server;
use crate::support::*;
use otpd::domain::{Pin, Subject};
use otpd::service::credentials::NewCredential;
use secrecy::SecretString;
use serde_json::{Value, json};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// Users in the stream; each is asked for one OTP, so none is retired by `otp_max_live`.
const USERS: usize = 60;
/// The kill comes after this many 201s, with other requests in flight.
const KILL_AFTER: usize = 20;
const CLIENTS: usize = 4;

pub async fn set_pins(app: &TestApp, prefix: &str, count: usize, pin: &str) {
    let services = app.services().await;
    let policy = app.config().pin;
    for i in 0..count {
        let new = NewCredential::Pin(Pin::parse(SecretString::from(pin), policy).unwrap());
        services
            .set_credential(&Subject::parse(&format!("{prefix}-{i}")).unwrap(), new)
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn every_otp_answered_201_before_a_sigkill_is_redeemable_once_after_restart() {
    let app = TestApp::spawn().await;
    set_pins(&app, "crash", USERS, "4378").await;
    let mut server = Server::start(&app.env).await;
    let http = reqwest::Client::new();
    let next = Arc::new(AtomicUsize::new(0));
    let issued = Arc::new(Mutex::new(Vec::<(String, String)>::new()));
    let enough = Arc::new(tokio::sync::Notify::new());
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let (http, next, issued, enough) = (
                http.clone(),
                Arc::clone(&next),
                Arc::clone(&issued),
                Arc::clone(&enough),
            );
            let url = server.url("/user/otp");
            let issuer = Arc::clone(&app.issuer);
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    if i >= USERS {
                        break;
                    }
                    let user = format!("crash-{i}");
                    let sent = http
                        .post(&url)
                        .bearer_auth(issuer.token(&user))
                        .json(&json!({"pin": "4378"}))
                        .send()
                        .await;
                    let Ok(res) = sent else { break }; // the server is gone
                    if res.status() != 201 {
                        panic!("unexpected {} before the kill", res.status());
                    }
                    let Ok(body) = res.json::<Value>().await else {
                        break;
                    };
                    let otp = body["otp"].as_str().unwrap().to_owned();
                    let mut issued = issued.lock().unwrap();
                    issued.push((user, otp));
                    if issued.len() == KILL_AFTER {
                        enough.notify_one();
                    }
                }
            })
        })
        .collect();
    enough.notified().await;
    server.kill9();
    for c in clients {
        c.await.unwrap();
    }
    let issued = issued.lock().unwrap().clone();
    assert!(issued.len() >= KILL_AFTER);
    assert!(
        issued.len() < USERS,
        "the kill came after the stream ended: nothing was tested"
    );

    let restarted = Server::start(&app.env).await;
    for (user, otp) in &issued {
        assert_redeemable_once(&app, &restarted, user, otp).await;
    }
}

/// The OTP is accepted once and refused the second time, by `server`.
pub async fn assert_redeemable_once(app: &TestApp, server: &Server, user: &str, otp: &str) {
    let http = reqwest::Client::new();
    let verify = || {
        http.post(server.url("/user/otp/verify"))
            .bearer_auth(app.issuer.token(user))
            .json(&json!({ "otp": otp }))
            .send()
    };
    assert_eq!(verify().await.unwrap().status(), 204, "OTP of {user} lost");
    assert_error(verify().await.unwrap(), 404, "invalid-otp").await;
}
