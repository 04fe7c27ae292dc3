//! Two real `otpd serve` processes sharing one database and one pepper file: every guarantee holds
//! across them (single use, long-poll wake-up), because all state that matters is in the database.

use crate::durability::set_pins;
use crate::process::{Server, with_env};
use crate::support::*;
use serde_json::{Value, json};
use std::sync::Arc;

const JSON_API: &str = "application/vnd.api+json";

struct Replicas {
    a: Server,
    b: Server,
    issuer: Arc<TestIssuer>,
    http: reqwest::Client,
}

async fn replicas(app: &TestApp) -> Replicas {
    replicas_with(app, &[]).await
}

async fn replicas_with(app: &TestApp, extra: &[(&str, &str)]) -> Replicas {
    // The tests race many requests at once; a short hashing queue would answer some with 503.
    let mut env = with_env(&app.env, "OTPD_HASH_QUEUE", "64");
    for (k, v) in extra {
        env = with_env(&env, k, v);
    }
    Replicas {
        a: Server::start(&env).await,
        b: Server::start(&env).await,
        issuer: Arc::clone(&app.issuer),
        http: reqwest::Client::new(),
    }
}

impl Replicas {
    async fn issue_otp(&self, on: &Server, user: &str, proof: Value) -> String {
        let res = self
            .http
            .post(on.url("/user/otp"))
            .bearer_auth(self.issuer.token(user))
            .json(&proof)
            .send()
            .await
            .unwrap();
        let status = res.status();
        let body = res.json::<Value>().await.unwrap();
        assert_eq!(status, 201, "{body}");
        body["otp"].as_str().unwrap().to_owned()
    }

    fn verify(&self, on: &Server, user: &str, otp: &str) -> reqwest::RequestBuilder {
        self.http
            .post(on.url("/user/otp/verify"))
            .bearer_auth(self.issuer.token(user))
            .json(&json!({ "otp": otp }))
    }
}

/// Verifications of one OTP racing on both replicas.
const RACERS: usize = 10;
const ROUNDS: usize = 5;

#[tokio::test]
async fn an_otp_issued_on_a_is_redeemed_on_b_exactly_once_when_both_race() {
    let app = TestApp::spawn().await;
    set_pins(&app, "replica", ROUNDS, "4378").await;
    let r = Arc::new(replicas(&app).await);
    // A user per round: the losers' failed redemptions count towards the user's OTP attempt limit.
    for round in 0..ROUNDS {
        let user = format!("replica-{round}");
        let otp = r.issue_otp(&r.a, &user, json!({"pin": "4378"})).await;
        let racers = (0..RACERS).map(|i| {
            let (r, otp, user) = (Arc::clone(&r), otp.clone(), user.clone());
            tokio::spawn(async move {
                let on = if i % 2 == 0 { &r.a } else { &r.b };
                r.verify(on, &user, &otp).send().await.unwrap().status()
            })
        });
        let statuses: Vec<u16> = futures::future::join_all(racers)
            .await
            .into_iter()
            .map(|s| s.unwrap().as_u16())
            .collect();
        assert_eq!(
            statuses.iter().filter(|s| **s == 204).count(),
            1,
            "round {round}: {statuses:?}"
        );
        // The others are refused: 404, or 429 once the attempts reserved in parallel reach the
        // OTP redemption limit (counted before checking, across both replicas).
        assert!(
            statuses.iter().all(|s| [204, 404, 429].contains(s)),
            "{statuses:?}"
        );
    }
}

#[tokio::test]
async fn a_pin_set_through_a_ends_a_long_poll_waiting_on_b() {
    let app = TestApp::spawn().await;
    app.set_password("poller", "correct horse battery").await;
    let r = Arc::new(replicas(&app).await);
    let poll = {
        let r = Arc::clone(&r);
        tokio::spawn(async move {
            r.http
                .get(r.b.url("/user/pin?timeout=60"))
                .bearer_auth(r.issuer.token("poller"))
                .send()
                .await
                .unwrap()
                .status()
        })
    };
    // Not asserting "still waiting" here: that would be a timed assertion. The poll's answer says
    // whether the PIN was seen: 404 would mean it timed out without noticing.
    let otp = r
        .issue_otp(&r.a, "poller", json!({"password": "correct horse battery"}))
        .await;
    let doc = json!({"data": {"type": "pin", "attributes": {"pin": "4378", "otp": otp}}});
    let res = r
        .http
        .put(r.a.url("/user/pin"))
        .bearer_auth(r.issuer.token("poller"))
        .header("content-type", JSON_API)
        .header("accept", JSON_API)
        .body(doc.to_string())
        .send()
        .await
        .unwrap();
    assert!(res.status().is_success(), "PUT /user/pin: {}", res.status());
    assert_eq!(poll.await.unwrap(), 200);
}

#[tokio::test]
async fn otps_issued_on_both_replicas_at_once_stay_within_max_live() {
    let app = TestApp::spawn().await;
    set_pins(&app, "both", 1, "4378").await;
    // Parallel right PINs are counted before they are checked, so 20 at once would lock the PIN;
    // this test is about OTP pruning, so locking is off.
    let r = Arc::new(
        replicas_with(
            &app,
            &[("OTPD_PIN_LOCK_FROM", "0"), ("OTPD_PIN_DISABLE_AFTER", "0")],
        )
        .await,
    );
    let issues = (0..20).map(|i| {
        let r = Arc::clone(&r);
        tokio::spawn(async move {
            let on = if i % 2 == 0 { &r.a } else { &r.b };
            r.issue_otp(on, "both-0", json!({"pin": "4378"})).await
        })
    });
    let otps: Vec<String> = futures::future::join_all(issues)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let key = otpd::service::OtpKey::derive(&app.config().hashing.read_pepper().unwrap());
    let mut live = 0;
    for otp in &otps {
        live +=
            crate::store_contract::count_live_digest(&app.database_url, &key.digest("both-0", otp))
                .await;
    }
    assert_eq!(live, 3, "otp_max_live (3) holds across replicas");
}

#[tokio::test]
async fn wrong_pins_spread_over_two_replicas_add_up_to_one_lock() {
    let app = TestApp::spawn().await;
    set_pins(&app, "spread", 1, "4378").await;
    let r = Arc::new(replicas(&app).await);
    let attempts = (0..40).map(|i| {
        let r = Arc::clone(&r);
        tokio::spawn(async move {
            let on = if i % 2 == 0 { &r.a } else { &r.b };
            r.http
                .post(on.url("/user/otp"))
                .bearer_auth(r.issuer.token("spread-0"))
                .json(&json!({"pin": "1235"}))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        })
    });
    let statuses: Vec<u16> = futures::future::join_all(attempts)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let tally = |s: u16| statuses.iter().filter(|x| **x == s).count();
    // The PIN locks after its 4th consecutive failure, wherever the failures arrived.
    assert_eq!(tally(422), 4, "{statuses:?}");
    assert_eq!(tally(429), 36, "{statuses:?}");
    // Locked on both replicas, even for the right PIN.
    for on in [&r.a, &r.b] {
        let res = r
            .http
            .post(on.url("/user/otp"))
            .bearer_auth(r.issuer.token("spread-0"))
            .json(&json!({"pin": "4378"}))
            .send()
            .await
            .unwrap();
        assert_error(res, 429, "credential-locked").await;
    }
}
