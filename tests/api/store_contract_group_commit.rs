//! The `Store` contract, continued: a redemption whose transaction fails leaves nothing behind and
//! can be retried. On SQLite, where redemptions are written in group commits (`group_commit.rs`),
//! one failing statement rolls back the whole batch: every caller in it gets the error and none of
//! their OTPs is consumed. The fault is injected with a trigger that refuses the audit row of one
//! user, so it strikes after that user's OTP was consumed.

use crate::store_contract::*;
use crate::support::*;
use otpd::domain::{AuditEvent, LockPolicy};
use otpd::store::{CountedRedemption, FollowUp, Redeemed, Redemption, Store};
use std::sync::Arc;
use std::time::Duration;

const FAULTY: &str = "gc-faulty";
/// Innocent users redeeming beside the faulty one.
const INNOCENT: u8 = 8;

const FAULT_SQLITE: &str = "CREATE TRIGGER otpd_test_fault BEFORE INSERT ON audit_events
     WHEN NEW.sub = 'gc-faulty' BEGIN SELECT RAISE(ABORT, 'injected fault'); END";
const FAULT_POSTGRES: &str = "CREATE FUNCTION otpd_test_fault() RETURNS trigger LANGUAGE plpgsql AS $$
     BEGIN IF NEW.sub = 'gc-faulty' THEN RAISE EXCEPTION 'injected fault'; END IF; RETURN NEW; END $$;
     CREATE TRIGGER otpd_test_fault BEFORE INSERT ON audit_events
     FOR EACH ROW EXECUTE FUNCTION otpd_test_fault()";

async fn fault(url: &str, on: bool) {
    let sql = match (is_sqlite(url), on) {
        (true, true) => FAULT_SQLITE,
        (false, true) => FAULT_POSTGRES,
        (true, false) => "DROP TRIGGER otpd_test_fault",
        (false, false) => "DROP TRIGGER otpd_test_fault ON audit_events",
    };
    on_database!(url, |pool| {
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
            .execute(&pool)
            .await
            .unwrap();
    });
}

fn users() -> Vec<String> {
    let mut users: Vec<String> = (0..INNOCENT).map(|i| format!("gc-{i}")).collect();
    users.insert(usize::from(INNOCENT / 2), FAULTY.to_owned());
    users
}

fn digest_of(user: &str) -> [u8; 32] {
    let mut d = [0u8; 32];
    d[..user.len()].copy_from_slice(user.as_bytes());
    d
}

fn candidates(user: &str) -> Redemption {
    Redemption {
        account_digests: vec![digest_of(user)],
        login_digests: vec![],
        device_steps: vec![],
    }
}

/// Which of the store's redemption calls a test makes.
#[derive(Clone, Copy)]
enum Call {
    Counted,
    OneCall,
}

/// `user` redeems its own OTP through `call`; a declined one-call redemption is an error here.
async fn redeem(
    store: &Arc<dyn Store>,
    call: Call,
    user: &str,
) -> Result<CountedRedemption, String> {
    let (u, candidates, policy) = (sub(user), candidates(user), LockPolicy::OTP);
    match call {
        Call::Counted => store
            .redeem_counted(&u, &candidates, FollowUp::Nothing, &policy, false, 2_000)
            .await
            .map_err(|e| e.to_string()),
        Call::OneCall => store
            .redeem_counted_in_one_call(&u, &candidates, false, &policy, 2_000)
            .await
            .map_err(|e| e.to_string())?
            .ok_or_else(|| "declined".to_owned()),
    }
}

/// Every user in `users` redeems its own OTP at once; the outcome of each, in order.
async fn redeem_all(
    store: &Arc<dyn Store>,
    call: Call,
    users: &[String],
) -> Vec<Result<CountedRedemption, String>> {
    let tasks = users.iter().map(|user| {
        let (store, user) = (Arc::clone(store), user.clone());
        tokio::spawn(async move { redeem(&store, call, &user).await })
    });
    futures::future::join_all(tasks)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect()
}

/// What a failed redemption must have left: its OTP live, no audit row, no attempt counted.
async fn untouched(c: &Contract, user: &str) -> bool {
    let counters = scalar(&c.url, "SELECT COUNT(*) FROM attempts WHERE sub = $1", user).await;
    let redeemed = c
        .store
        .audit_events(&sub(user))
        .await
        .unwrap()
        .iter()
        .filter(|e| e.event == AuditEvent::OtpRedeemed.as_str())
        .count();
    live_otps(c, user).await == 1 && redeemed == 0 && counters == 0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn store_a_failing_redemption_rolls_back_its_whole_transaction_and_a_retry_succeeds() {
    rolls_back_and_retries(Call::Counted).await;
}

/// The same through the one-call redemption of the service's common path: on SQLite its audit rows
/// are written together at the end of the batch, and a fault there rolls back every redemption in
/// it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn store_a_failing_one_call_redemption_rolls_back_its_whole_transaction_and_a_retry_succeeds()
{
    rolls_back_and_retries(Call::OneCall).await;
}

async fn rolls_back_and_retries(call: Call) {
    let c = contract().await;
    let all = users();
    for user in all.iter().chain([&"gc-plug".to_owned()]) {
        let digest = digest_of(user);
        c.store
            .insert_otp(&sub(user), otp(&digest, 1_000, 3))
            .await
            .unwrap();
    }
    fault(&c.url, true).await;

    let outcomes = if is_sqlite(&c.url) {
        // Hold the file's write lock from a second connection, so the first redemption (the plug)
        // waits in its BEGIN IMMEDIATE while the others queue behind it: they are then written
        // together, in one batch, once the lock is released.
        use sqlx::Connection;
        let mut holder = sqlx::SqliteConnection::connect(&c.url).await.unwrap();
        sqlx::raw_sql("BEGIN IMMEDIATE")
            .execute(&mut holder)
            .await
            .unwrap();
        let plug = {
            let c_store = Arc::clone(&c.store);
            tokio::spawn(async move { redeem(&c_store, call, "gc-plug").await })
        };
        tokio::time::sleep(Duration::from_millis(200)).await;
        let rest = {
            let (store, all) = (Arc::clone(&c.store), all.clone());
            tokio::spawn(async move { redeem_all(&store, call, &all).await })
        };
        tokio::time::sleep(Duration::from_millis(500)).await;
        sqlx::raw_sql("ROLLBACK")
            .execute(&mut holder)
            .await
            .unwrap();
        let _ = plug.await.unwrap();
        rest.await.unwrap()
    } else {
        redeem_all(&c.store, call, &all).await
    };

    let mut innocent_failures = 0;
    for (user, outcome) in all.iter().zip(&outcomes) {
        match outcome {
            Ok(CountedRedemption::Redeemed(Redeemed::Account)) => {
                assert_ne!(user, FAULTY, "{outcomes:?}");
                assert_eq!(live_otps(&c, user).await, 0, "{user} redeemed");
            }
            Err(_) => {
                innocent_failures += usize::from(user != FAULTY);
                assert!(untouched(&c, user).await, "{user} failed but left rows");
            }
            Ok(other) => panic!("{user}: {other:?}"),
        }
    }
    let faulty_at = all.iter().position(|u| u == FAULTY).unwrap();
    assert!(outcomes[faulty_at].is_err(), "{outcomes:?}");
    if is_sqlite(&c.url) {
        // The batch the faulty redemption was in rolled back with it.
        assert!(innocent_failures >= 1, "{outcomes:?}");
    } else {
        // Each redemption is its own transaction.
        assert_eq!(innocent_failures, 0, "{outcomes:?}");
    }

    // The fault gone, every failed redemption is retried and succeeds: nothing was consumed.
    fault(&c.url, false).await;
    let failed: Vec<String> = all
        .iter()
        .zip(&outcomes)
        .filter(|(_, o)| o.is_err())
        .map(|(u, _)| u.clone())
        .collect();
    let retried = redeem_all(&c.store, call, &failed).await;
    for (user, outcome) in failed.iter().zip(&retried) {
        assert!(
            matches!(outcome, Ok(CountedRedemption::Redeemed(Redeemed::Account))),
            "{user}: {outcome:?}"
        );
        assert_eq!(live_otps(&c, user).await, 0);
    }
}
