//! Crash safety: an OTP answered 201 is on disk. A real `otpd serve` is killed with SIGKILL in the
//! middle of a stream of `POST /user/otp`, restarted on the same database, and every OTP it had
//! answered is redeemed there, exactly once.

use crate::support::process::Server;
use crate::support::*;
use serde_json::{Value, json};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Users in the stream; each is asked for one OTP, so none is retired by `otp_max_live`.
const USERS: usize = 60;
/// The kill comes after this many 201s, with other requests in flight.
const KILL_AFTER: usize = 20;
const CLIENTS: usize = 4;

/// Gives the users `PREFIX-0` … `PREFIX-(count-1)` the PIN `pin`.
pub async fn set_pins(app: &TestApp, prefix: &str, count: usize, pin: &str) {
    for i in 0..count {
        app.set_pin(&format!("{prefix}-{i}"), pin).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
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
            let api = server.url("");
            let issuer = Arc::clone(&app.issuer);
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    if i >= USERS {
                        break;
                    }
                    let user = format!("crash-{i}");
                    let client = User::new(&http, api.clone(), &issuer, &user);
                    let sent = client
                        .post("/user/otp")
                        .json(&json!({"pin": "4378"}))
                        .try_send()
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
    // Every wait is bounded: the whole test takes seconds, and a client or server that stops
    // answering must fail the test with what it knows, not hang the suite.
    if tokio::time::timeout(PHASE, enough.notified())
        .await
        .is_err()
    {
        let n = issued.lock().unwrap().len();
        panic!(
            "{n} OTPs issued before the kill, not {KILL_AFTER}; the server is {}",
            server.state()
        );
    }
    server.kill9();
    for c in clients {
        tokio::time::timeout(PHASE, c)
            .await
            .expect("a client ends once the server is killed")
            .unwrap();
    }
    let issued = issued.lock().unwrap().clone();
    assert!(issued.len() >= KILL_AFTER);
    assert!(
        issued.len() < USERS,
        "the kill came after the stream ended: nothing was tested"
    );

    let mut restarted = Server::start(&app.env).await;
    for (user, otp) in &issued {
        let redeemed = assert_redeemable_once(&app, &restarted, user, otp);
        if tokio::time::timeout(PHASE, redeemed).await.is_err() {
            panic!(
                "no answer for {user}'s OTP; the restarted server is {}",
                restarted.state()
            );
        }
    }
}

/// The longest any phase of the crash test may take.
const PHASE: Duration = Duration::from_secs(60);

/// The OTP is accepted once and refused the second time, by `server`.
pub async fn assert_redeemable_once(app: &TestApp, server: &Server, user: &str, otp: &str) {
    let user_there = server.as_user(&app.issuer, user);
    let first = user_there.verify(otp).await;
    assert_eq!(first.status(), 204, "OTP of {user} lost");
    assert_error(user_there.verify(otp).await, 404, "invalid-otp").await;
}
