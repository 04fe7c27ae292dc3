//! Two real `otpd serve` processes sharing one database and one pepper file: every guarantee holds
//! across them (single use, long-poll wake-up), because all state that matters is in the database.

use crate::durability::set_pins;
use crate::support::process::{Server, with_env};
use crate::support::*;
use serde_json::{Value, json};
use std::sync::Arc;

struct Replicas {
    a: Server,
    b: Server,
    issuer: Arc<TestIssuer>,
}

async fn replicas(app: &TestApp) -> Replicas {
    replicas_with(app, &[]).await
}

async fn replicas_with(app: &TestApp, extra: &[(&str, &str)]) -> Replicas {
    // The tests race many requests at once; a short hashing queue or connection wait would
    // answer some with 503.
    let mut env = with_env(&app.env, "OTPD_HASH_QUEUE", "1000");
    env = with_env(&env, "OTPD_DATABASE_ACQUIRE_TIMEOUT_MS", "60000");
    for (k, v) in extra {
        env = with_env(&env, k, v);
    }
    Replicas {
        a: Server::start(&env).await,
        b: Server::start(&env).await,
        issuer: Arc::clone(&app.issuer),
    }
}

impl Replicas {
    /// `user` calling replica `a` (`i` even) or `b` (`i` odd).
    fn user_on(&self, i: usize, user: &str) -> User<'_> {
        let on = if i.is_multiple_of(2) {
            &self.a
        } else {
            &self.b
        };
        on.as_user(&self.issuer, user)
    }

    async fn issue_otp(&self, i: usize, user: &str, proof: Value) -> String {
        self.user_on(i, user).new_otp(proof).await
    }
}

/// Verifications of one OTP racing on both replicas.
const RACERS: usize = 10;
const ROUNDS: usize = 5;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_otp_issued_on_a_is_redeemed_on_b_exactly_once_when_both_race() {
    let app = TestApp::spawn().await;
    set_pins(&app, "replica", ROUNDS, "4378").await;
    let r = Arc::new(replicas(&app).await);
    // A user per round: the losers' failed redemptions count towards the user's OTP attempt limit.
    for round in 0..ROUNDS {
        let user = format!("replica-{round}");
        let otp = r.issue_otp(0, &user, json!({"pin": "4378"})).await;
        let racers = (0..RACERS).map(|i| {
            let (r, otp, user) = (Arc::clone(&r), otp.clone(), user.clone());
            tokio::spawn(async move { r.user_on(i, &user).verify(&otp).await.status() })
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

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_pin_set_through_a_ends_a_long_poll_waiting_on_b() {
    let app = TestApp::spawn().await;
    app.set_password("poller", "correct horse battery").await;
    let r = Arc::new(replicas(&app).await);
    let poll = {
        let r = Arc::clone(&r);
        tokio::spawn(async move {
            r.user_on(1, "poller")
                .check("/user/pin?timeout=60")
                .await
                .status()
        })
    };
    // Not asserting "still waiting" here: that would be a timed assertion. The poll's answer says
    // whether the PIN was seen: 404 would mean it timed out without noticing.
    let otp = r
        .issue_otp(0, "poller", json!({"password": "correct horse battery"}))
        .await;
    let res = r.user_on(0, "poller").put_pin("4378", &otp).await;
    assert!(res.status().is_success(), "PUT /user/pin: {}", res.status());
    assert_eq!(poll.await.unwrap(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
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
        tokio::spawn(async move { r.issue_otp(i, "both-0", json!({"pin": "4378"})).await })
    });
    let otps: Vec<String> = futures::future::join_all(issues)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let key = otpd::service::OtpKey::derive(&app.config().hashing.read_pepper().unwrap());
    let mut live = 0;
    for otp in &otps {
        live += count_live_digest(&app.database_url, &key.digest("both-0", otp)).await;
    }
    assert_eq!(live, 3, "otp_max_live (3) holds across replicas");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn wrong_pins_spread_over_two_replicas_add_up_to_one_lock() {
    let app = TestApp::spawn().await;
    set_pins(&app, "spread", 1, "4378").await;
    let r = Arc::new(replicas(&app).await);
    let attempts = (0..40).map(|i| {
        let r = Arc::clone(&r);
        tokio::spawn(async move {
            let spread = r.user_on(i, "spread-0");
            spread.create_otp_with_pin("1235").await.status().as_u16()
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
    for i in [0, 1] {
        let res = r.user_on(i, "spread-0").create_otp_with_pin("4378").await;
        assert_error(res, 429, "credential-locked").await;
    }
}
