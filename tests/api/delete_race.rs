//! `DELETE /user` against the user's other writes at the same moment: whichever commits second
//! sees the first, so when both succeed nothing of the user is left (on PostgreSQL, where
//! transactions run side by side, this is the per-user lock; on SQLite the write lock).

use crate::support::*;
use serde_json::json;

const ROWS_OF_USER: &str = "SELECT (SELECT COUNT(*) FROM users WHERE sub = $1)
     + (SELECT COUNT(*) FROM otps WHERE sub = $1)
     + (SELECT COUNT(*) FROM device_totps WHERE sub = $1)
     + (SELECT COUNT(*) FROM attempts WHERE sub = $1)
     + (SELECT COUNT(*) FROM mail_quota WHERE sub = $1)";

const PIN: &str = "4378";
const DEVICE: &str = "738e379f-fe30-45ab-819c-ba88804b6368";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_delete_and_a_concurrent_create_that_both_succeed_leave_no_row_of_the_user() {
    let app = TestApp::builder().admitting_bursts().spawn().await;
    let mut both_succeeded = [0u32; 3];
    for round in 0..200 {
        let sub = format!("race{round}");
        app.set_pin(&sub, PIN).await;
        let user = app.as_user(&sub);
        let erase_otp = user.new_otp(json!({ "pin": PIN })).await;
        let kind = round % 3;
        let change_otp = if kind == 2 {
            user.new_otp(json!({ "pin": PIN })).await
        } else {
            String::new()
        };
        let create = async {
            match kind {
                0 => user.create_otp_with_pin(PIN).await.status() == 201,
                1 => {
                    let proof = json!({ "pin": PIN });
                    user.create_device(DEVICE, proof).await.status() == 201
                }
                _ => user.put_pin("5791", &change_otp).await.status() == 200,
            }
        };
        // Every write here hashes the PIN first (a PIN change also counts the attempt and
        // stores), against the erasure's one transaction after an OTP check that hashes nothing,
        // so started together the write nearly always loses; the erasure starts a little later in
        // some rounds (0–14 ms), so both orders occur. (Once the token's signature check was
        // remembered, the erasure got faster and a device creation never won without the lag.)
        let lag = (round / 3 % 8) as u64 * 2;
        let delete = async {
            tokio::time::sleep(std::time::Duration::from_millis(lag)).await;
            user.delete_user(&erase_otp).await
        };
        let (deleted, created) = tokio::join!(delete, create);
        assert_eq!(deleted.status(), 202, "round {round}");
        if created {
            both_succeeded[kind] += 1;
            assert_eq!(
                scalar(&app.database_url, ROWS_OF_USER, &sub).await,
                0,
                "round {round}: rows of {sub} left after both succeeded (kind {kind})"
            );
        }
    }
    // Otherwise the test proved nothing.
    eprintln!("rounds where both succeeded, per kind: {both_succeeded:?}");
    assert!(
        both_succeeded.iter().all(|n| *n > 0),
        "rounds where both succeeded, per kind: {both_succeeded:?}"
    );
}

#[tokio::test]
async fn deleting_a_user_erases_the_mail_quota_too() {
    let app = TestApp::spawn().await;
    let otp = app.account_otp("mae").await;
    execute(
        &app.database_url,
        "INSERT INTO mail_quota (sub, window_start, sent) VALUES ($1, 0, 1)",
        "mae",
    )
    .await;
    assert_eq!(app.as_user("mae").delete_user(&otp).await.status(), 202);
    assert_eq!(scalar(&app.database_url, ROWS_OF_USER, "mae").await, 0);
}
