//! `PUT /user/pin` hashes the new PIN only after the OTP attempt is admitted: a locked OTP factor
//! costs no Argon2 time.

use crate::support::*;
use futures::future::join_all;

fn hash_waits(text: &str) -> f64 {
    text.lines()
        .find_map(|l| {
            l.strip_prefix("otpd_hash_wait_seconds_count ")?
                .parse()
                .ok()
        })
        .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn with_the_otp_factor_locked_pin_changes_are_refused_without_hashing() {
    let app = TestApp::builder().admitting_bursts().spawn().await;
    let pat = app.as_user("pat");
    // Wrong OTPs until the OTP factor locks.
    let mut locked = false;
    for _ in 0..20 {
        let res = pat.verify("000000").await;
        if res.status() == 429 {
            locked = true;
            break;
        }
        assert_eq!(res.status(), 404);
    }
    assert!(locked, "the OTP factor locked");
    let before = hash_waits(&app.metrics_text().await);
    let answers = join_all((0..20).map(|_| pat.put_pin("4378", "123456"))).await;
    for res in answers {
        assert_error(res, 429, "credential-locked").await;
    }
    assert_eq!(hash_waits(&app.metrics_text().await), before);
}

#[tokio::test]
async fn a_malformed_otp_costs_no_hash_either() {
    let app = TestApp::spawn().await;
    let before = hash_waits(&app.metrics_text().await);
    let res = app.as_user("quin").put_pin("4378", "not-an-otp").await;
    assert_error(res, 403, "invalid-otp").await;
    assert_eq!(hash_waits(&app.metrics_text().await), before);
}
