//! The `Store` contract, continued: device TOTPs and `redeem` (consume-once of account OTPs, TOTP
//! step replay, and the follow-ups that share the redemption's transaction), under concurrency.

use crate::store_contract::*;
use otpd::domain::Subject;
use otpd::domain::{AuditEvent, Factor, LockPolicy};
use otpd::store::{CountedRedemption, FollowUp, Redeemed, Redemption, Store, StoredDevice};
use std::future::Future;
use std::sync::Arc;

fn device(id: &str, secret: &[u8]) -> StoredDevice {
    StoredDevice {
        device_id: id.to_owned(),
        secret_ct: secret.to_vec(),
        algorithm: "SHA1".to_owned(),
        digits: 6,
        period_secs: 30,
        key_id: None,
        secret_gen: 0,
    }
}

fn account(digest: [u8; 32]) -> Redemption {
    Redemption {
        account_digests: vec![digest],
        login_digests: vec![],
        device_steps: vec![],
    }
}

fn step(d: &StoredDevice, step: i64) -> Redemption {
    Redemption {
        account_digests: vec![],
        login_digests: vec![],
        device_steps: vec![(d.clone(), step)],
    }
}

async fn events(c: &Contract, user: &str, event: AuditEvent) -> usize {
    c.store
        .audit_events(&sub(user))
        .await
        .unwrap()
        .iter()
        .filter(|e| e.event == event.as_str())
        .count()
}

async fn redeem(
    c: &Contract,
    user: &str,
    candidates: Redemption,
    then: FollowUp<'_>,
    now: i64,
) -> Option<Redeemed> {
    c.store
        .redeem(&sub(user), &candidates, then, now)
        .await
        .unwrap()
}

/// `PARALLEL` tasks make `call` at once, each with the store, the user and the same candidates;
/// their answers, in task order.
async fn in_parallel<T, F, Fut>(c: &Contract, user: &str, candidates: Redemption, call: F) -> Vec<T>
where
    F: Fn(Arc<dyn Store>, Subject, Redemption) -> Fut,
    Fut: Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let tasks = (0..PARALLEL)
        .map(|_| tokio::spawn(call(Arc::clone(&c.store), sub(user), candidates.clone())));
    futures::future::join_all(tasks)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect()
}

/// `PARALLEL` tasks redeem the same candidates at once; returns how many succeeded.
async fn race(c: &Contract, user: &str, candidates: Redemption, now: i64) -> usize {
    let redeemed = in_parallel(c, user, candidates, |store, u, candidates| async move {
        store
            .redeem(&u, &candidates, FollowUp::Nothing, now)
            .await
            .unwrap()
    });
    redeemed.await.iter().filter(|r| r.is_some()).count()
}

#[tokio::test]
async fn store_devices_are_saved_listed_and_replaced() {
    let c = contract().await;
    let u = sub("contract-devices");
    assert!(c.store.devices(&u).await.unwrap().is_empty());
    c.store
        .save_device(&u, &device("phone", b"ct-1"), "device=phone", None, 1)
        .await
        .unwrap();
    c.store
        .save_device(&u, &device("phone", b"ct-2"), "device=phone", None, 2)
        .await
        .unwrap();
    c.store
        .save_device(&u, &device("tablet", b"ct-3"), "device=tablet", None, 3)
        .await
        .unwrap();
    let saved = c.store.devices(&u).await.unwrap();
    // Replacing a secret starts a new generation of it (codes of the old one consume nothing).
    let replaced = StoredDevice {
        secret_gen: 1,
        ..device("phone", b"ct-2")
    };
    assert_eq!(saved, [replaced, device("tablet", b"ct-3")]);
    assert_eq!(
        events(&c, "contract-devices", AuditEvent::DeviceTotpCreated).await,
        3
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn store_parallel_redemptions_consume_an_account_otp_exactly_once() {
    let c = contract().await;
    let u = sub("contract-redeem");
    let digest = [7u8; 32];
    c.store
        .insert_otp(&u, otp(&digest, 1_000, 3))
        .await
        .unwrap();
    assert_eq!(race(&c, "contract-redeem", account(digest), 2_000).await, 1);
    assert_eq!(
        events(&c, "contract-redeem", AuditEvent::OtpRedeemed).await,
        1
    );
    assert_eq!(live_otps(&c, "contract-redeem").await, 0);
}

#[tokio::test]
async fn store_an_expired_or_foreign_account_otp_is_not_redeemed() {
    let c = contract().await;
    let u = sub("contract-expiry");
    let digest = [8u8; 32];
    c.store
        .insert_otp(&u, otp(&digest, 1_000, 3))
        .await
        .unwrap();
    let expiry = 1_000 + 300_000;
    let user = "contract-expiry";
    let other = redeem(
        &c,
        "someone-else",
        account(digest),
        FollowUp::Nothing,
        2_000,
    );
    assert_eq!(other.await, None);
    let late = redeem(&c, user, account(digest), FollowUp::Nothing, expiry);
    assert_eq!(late.await, None);
    let in_time = redeem(&c, user, account(digest), FollowUp::Nothing, expiry - 1);
    assert_eq!(in_time.await, Some(Redeemed::Account));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn store_a_totp_step_is_accepted_once_and_never_an_older_one() {
    let c = contract().await;
    let u = sub("contract-totp");
    let phone = device("phone", b"ct-1");
    c.store.save_device(&u, &phone, "", None, 1).await.unwrap();
    assert_eq!(race(&c, "contract-totp", step(&phone, 100), 3_000).await, 1);
    let user = "contract-totp";
    let replay = |p: &StoredDevice, s: i64| redeem(&c, user, step(p, s), FollowUp::Nothing, 3_100);
    assert_eq!(replay(&phone, 100).await, None, "same step again");
    assert_eq!(replay(&phone, 99).await, None, "an older step");
    assert_eq!(
        replay(&phone, 101).await,
        Some(Redeemed::Device("phone".into()))
    );
    // A step computed from a secret that was replaced in the meantime consumes nothing.
    c.store
        .save_device(&u, &device("phone", b"ct-2"), "", None, 4)
        .await
        .unwrap();
    // As a redemption reads it: with the generation the replacement gave it.
    let replaced = c.store.devices(&u).await.unwrap().remove(0);
    assert_eq!(replay(&phone, 200).await, None);
    assert_eq!(
        replay(&replaced, 5).await,
        Some(Redeemed::Device("phone".into())),
        "a new secret starts with no last step"
    );
}

#[tokio::test]
async fn store_follow_ups_happen_only_with_a_redemption_and_in_its_transaction() {
    let c = contract().await;
    let u = sub("contract-follow");
    let (used, fresh) = ([1u8; 32], [2u8; 32]);
    c.store.insert_otp(&u, otp(&used, 1, 3)).await.unwrap();
    c.store.insert_otp(&u, otp(&fresh, 2, 3)).await.unwrap();
    let user = "contract-follow";
    assert!(
        redeem(&c, user, account(used), FollowUp::Nothing, 3)
            .await
            .is_some()
    );
    // A refused redemption sets nothing.
    let refused = redeem(
        &c,
        user,
        account(used),
        FollowUp::SetPin { phc: "pin-phc" },
        4,
    );
    assert_eq!(refused.await, None);
    assert_eq!(
        c.store.credentials(&u).await.unwrap().hash(Factor::Pin),
        None
    );
    let set = redeem(
        &c,
        user,
        account(fresh),
        FollowUp::SetPin { phc: "pin-phc" },
        5,
    );
    assert!(set.await.is_some());
    let stored = c.store.credentials(&u).await.unwrap();
    assert_eq!(stored.hash(Factor::Pin), Some("pin-phc"));

    // Erasure takes every credential record with it, and keeps the audit trail.
    let last = [3u8; 32];
    c.store.insert_otp(&u, otp(&last, 6, 3)).await.unwrap();
    c.store
        .save_device(&u, &device("phone", b"ct"), "", None, 6)
        .await
        .unwrap();
    let erase = redeem(&c, user, account(last), FollowUp::EraseUser, 7);
    assert!(erase.await.is_some());
    assert_eq!(c.store.credentials(&u).await.unwrap(), Default::default());
    assert!(c.store.devices(&u).await.unwrap().is_empty());
    assert_eq!(live_otps(&c, "contract-follow").await, 0);
    assert_eq!(
        events(&c, "contract-follow", AuditEvent::UserDeleted).await,
        1
    );
}

/// `PARALLEL` counted redemptions of the same candidates at once, under the OTP policy.
async fn counted_race(c: &Contract, user: &str, candidates: Redemption) -> Vec<CountedRedemption> {
    in_parallel(c, user, candidates, |store, u, candidates| async move {
        let (then, policy) = (FollowUp::Nothing, &LockPolicy::OTP);
        store
            .redeem_counted(&u, &candidates, then, policy, false, 2_000)
            .await
            .unwrap()
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn store_parallel_counted_redemptions_consume_once_and_count_before_the_check() {
    let c = contract().await;
    let u = sub("contract-counted");
    let digest = [9u8; 32];
    c.store
        .insert_otp(&u, otp(&digest, 1_000, 3))
        .await
        .unwrap();
    let outcomes = counted_race(&c, "contract-counted", account(digest)).await;
    let redeemed = outcomes
        .iter()
        .filter(|o| matches!(o, CountedRedemption::Redeemed(Redeemed::Account)))
        .count();
    assert_eq!(redeemed, 1, "{outcomes:?}");
    assert_eq!(live_otps(&c, "contract-counted").await, 0);
    assert_eq!(
        events(&c, "contract-counted", AuditEvent::OtpRedeemed).await,
        1
    );

    // Wrong codes: the 5th counted failure locks, so exactly five are looked at.
    let outcomes = counted_race(&c, "contract-counted-wrong", account([10u8; 32])).await;
    let failed = outcomes
        .iter()
        .filter(|o| matches!(o, CountedRedemption::Failed { .. }))
        .count();
    let refused = outcomes
        .iter()
        .filter(|o| matches!(o, CountedRedemption::Refused(_)))
        .count();
    assert_eq!((failed, refused), (5, PARALLEL - 5), "{outcomes:?}");
    assert_eq!(
        events(&c, "contract-counted-wrong", AuditEvent::OtpRefused).await,
        5
    );
}

/// `PARALLEL` one-call redemptions of the same candidates at once, under the OTP policy; `None`
/// where the store declined.
async fn one_call_race(
    c: &Contract,
    user: &str,
    candidates: Redemption,
) -> Vec<Option<CountedRedemption>> {
    in_parallel(c, user, candidates, |store, u, candidates| async move {
        store
            .redeem_counted_in_one_call(&u, &candidates, true, &LockPolicy::OTP, 2_000)
            .await
            .unwrap()
    })
    .await
}

/// The one-call redemption (PostgreSQL's server-side function, SQLite's group-commit job that reads
/// no devices, docs/decisions.md) keeps every guarantee of `redeem_counted`: consumed once, counted
/// before the check (exactly five wrong codes looked at; the fifth locks and revokes the user's live
/// OTPs), and a user with device TOTPs whose code may be one of theirs is left to the full path with
/// nothing counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn store_one_call_redemptions_consume_once_count_before_the_check_and_decline_device_users() {
    let c = contract().await;
    let u = sub("contract-one-call");
    let digest = [11u8; 32];
    c.store
        .insert_otp(&u, otp(&digest, 1_000, 3))
        .await
        .unwrap();
    let outcomes = one_call_race(&c, "contract-one-call", account(digest)).await;
    let redeemed = outcomes
        .iter()
        .filter(|o| matches!(o, Some(CountedRedemption::Redeemed(Redeemed::Account))))
        .count();
    assert_eq!(redeemed, 1, "{outcomes:?}");
    assert_eq!(live_otps(&c, "contract-one-call").await, 0);
    assert_eq!(
        events(&c, "contract-one-call", AuditEvent::OtpRedeemed).await,
        1
    );
    // The others found the code used (or not yet consumed by the winner): counted failures, and
    // refusals once five failures in a row locked; every call was answered by the function.
    assert!(
        outcomes.iter().all(|o| matches!(
            o,
            Some(
                CountedRedemption::Redeemed(_)
                    | CountedRedemption::Failed { .. }
                    | CountedRedemption::Refused(_)
            )
        )),
        "{outcomes:?}"
    );

    // Wrong codes: the 5th counted failure locks, so exactly five are looked at; it also revokes
    // the user's live OTPs (otp_revoke_after 5).
    let w = sub("contract-one-call-wrong");
    c.store
        .insert_otp(&w, otp(&[12u8; 32], 1_000, 3))
        .await
        .unwrap();
    let outcomes = one_call_race(&c, "contract-one-call-wrong", account([13u8; 32])).await;
    let failed: Vec<_> = outcomes
        .iter()
        .filter_map(|o| match o {
            Some(CountedRedemption::Failed { failed, .. }) => Some(failed.failures),
            _ => None,
        })
        .collect();
    let refused = outcomes
        .iter()
        .filter(|o| matches!(o, Some(CountedRedemption::Refused(s)) if s.locked_until > 2_000))
        .count();
    assert_eq!((failed.len(), refused), (5, PARALLEL - 5), "{outcomes:?}");
    let mut counts = failed.clone();
    counts.sort_unstable();
    assert_eq!(counts, [1, 2, 3, 4, 5], "each failure saw its own count");
    let wrong = "contract-one-call-wrong";
    assert_eq!(events(&c, wrong, AuditEvent::OtpRefused).await, 5);
    assert_eq!(
        events(
            &c,
            wrong,
            AuditEvent::Locked(otpd::domain::GuardedFactor::Otp)
        )
        .await,
        1
    );
    assert_eq!(events(&c, wrong, AuditEvent::OtpsRevoked).await, 1);
    assert_eq!(live_otps(&c, wrong).await, 0);

    // A user with a device TOTP and a code that is no OTP of theirs (it may be a device code):
    // declined, nothing counted, nothing consumed, no audit row.
    let d = sub("contract-one-call-device");
    let device_user = "contract-one-call-device";
    c.store
        .insert_otp(&d, otp(&[14u8; 32], 1_000, 3))
        .await
        .unwrap();
    c.store
        .save_device(&d, &device("phone", b"ct"), "device=phone", None, 1)
        .await
        .unwrap();
    let declined = c
        .store
        .redeem_counted_in_one_call(&d, &account([15u8; 32]), true, &LockPolicy::OTP, 2_000)
        .await
        .unwrap();
    assert_eq!(declined, None);
    assert_eq!(live_otps(&c, device_user).await, 1);
    assert!(c.store.attempt_states(&d).await.unwrap().is_empty());
    assert_eq!(events(&c, device_user, AuditEvent::OtpRefused).await, 0);
    // Their valid OTP: declined as well (PostgreSQL asks about devices first), or redeemed (SQLite
    // tries the OTPs first; device codes come after them, so the outcome is the full path's).
    let valid = c
        .store
        .redeem_counted_in_one_call(&d, &account([14u8; 32]), true, &LockPolicy::OTP, 2_000)
        .await
        .unwrap();
    if c.url.starts_with("sqlite:") {
        assert_eq!(valid, Some(CountedRedemption::Redeemed(Redeemed::Account)));
        assert_eq!(live_otps(&c, device_user).await, 0);
        assert_eq!(events(&c, device_user, AuditEvent::OtpRedeemed).await, 1);
        return;
    }
    assert_eq!(valid, None);
    assert_eq!(live_otps(&c, device_user).await, 1);
    // Without device codes asked for (`types: ["account"]`) the call redeems it.
    let accepted = c
        .store
        .redeem_counted_in_one_call(&d, &account([14u8; 32]), false, &LockPolicy::OTP, 2_000)
        .await
        .unwrap();
    assert_eq!(
        accepted,
        Some(CountedRedemption::Redeemed(Redeemed::Account))
    );
    assert_eq!(live_otps(&c, device_user).await, 0);
}

/// A valid code racing wrong ones for a user without a counter row, under a policy whose first
/// failure locks: however they interleave, the outcome is one of the two serial orders. Exactly one
/// wrong code is looked at (it locks; the rest are refused), and the lock it wrote survives: a
/// success that went first must not delete the counter row of a failure it never saw (PostgreSQL's
/// function looks at the codes before it counts; docs/decisions.md).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn store_a_one_call_success_racing_failures_keeps_the_lock_they_set() {
    let c = contract().await;
    let policy = LockPolicy {
        lock_from: 1,
        revoke_after: None,
        ..LockPolicy::OTP
    };
    for round in 0..8u8 {
        let user = format!("contract-one-call-mixed-{round}");
        let u = sub(&user);
        let digest = [40 + round; 32];
        c.store
            .insert_otp(&u, otp(&digest, 1_000, 3))
            .await
            .unwrap();
        let tasks = (0..PARALLEL).map(|i| {
            let (store, u) = (Arc::clone(&c.store), u.clone());
            let candidates = account(if i == PARALLEL / 2 {
                digest
            } else {
                [99u8; 32]
            });
            tokio::spawn(async move {
                store
                    .redeem_counted_in_one_call(&u, &candidates, true, &policy, 2_000)
                    .await
                    .unwrap()
            })
        });
        let outcomes: Vec<_> = futures::future::join_all(tasks)
            .await
            .into_iter()
            .map(Result::unwrap)
            .collect();
        let count = |want: fn(&CountedRedemption) -> bool| {
            outcomes
                .iter()
                .filter(|o| o.as_ref().is_some_and(want))
                .count()
        };
        let redeemed = count(|o| matches!(o, CountedRedemption::Redeemed(_)));
        let failed = count(|o| matches!(o, CountedRedemption::Failed { .. }));
        assert!(redeemed <= 1, "{outcomes:?}");
        assert_eq!(failed, 1, "one wrong code looked at: {outcomes:?}");
        assert_eq!(live_otps(&c, &user).await, 1 - redeemed as i64);
        let states = c.store.attempt_states(&u).await.unwrap();
        assert_eq!(states.len(), 1, "the failure's lock is kept: {outcomes:?}");
        assert_eq!(states[0].1.failures, 1);
        assert!(states[0].1.locked_until > 2_000, "{states:?}");
    }
    if c.url.starts_with("postgres") {
        success_held_between_its_counter_read_and_its_consume(&c, &policy).await;
    }
}

/// PostgreSQL, the interleaving the race above can only hit by chance, forced: the success has read
/// "no counter row" and waits on the OTP's row lock (held here) while a wrong code is counted and
/// locks. Once let go, the success consumes (it is ordered first) and must leave that lock alone.
async fn success_held_between_its_counter_read_and_its_consume(c: &Contract, policy: &LockPolicy) {
    use sqlx::Connection;
    let user = "contract-one-call-interleaved";
    let u = sub(user);
    let digest = [60u8; 32];
    c.store
        .insert_otp(&u, otp(&digest, 1_000, 3))
        .await
        .unwrap();
    let mut holder = sqlx::PgConnection::connect(&c.url).await.unwrap();
    let mut held = holder.begin().await.unwrap();
    sqlx::query("SELECT 1 FROM otps WHERE sub = $1 FOR UPDATE")
        .bind(user)
        .execute(&mut *held)
        .await
        .unwrap();
    let success = {
        let (store, u, policy) = (Arc::clone(&c.store), u.clone(), *policy);
        tokio::spawn(async move {
            let candidates = account(digest);
            store
                .redeem_counted_in_one_call(&u, &candidates, true, &policy, 2_000)
                .await
                .unwrap()
        })
    };
    let mut watcher = sqlx::PgConnection::connect(&c.url).await.unwrap();
    let mut waiting = false;
    for _ in 0..500 {
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM pg_stat_activity
             WHERE datname = current_database() AND wait_event_type = 'Lock'
               AND query LIKE '%otpd_redeem_otp%'",
        )
        .fetch_one(&mut watcher)
        .await
        .unwrap();
        if n > 0 {
            waiting = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert!(waiting, "the success never waited on the OTP's row lock");
    let wrong = c
        .store
        .redeem_counted_in_one_call(&u, &account([98u8; 32]), true, policy, 2_000)
        .await
        .unwrap();
    assert!(
        matches!(wrong, Some(CountedRedemption::Failed { .. })),
        "{wrong:?}"
    );
    held.rollback().await.unwrap();
    let redeemed = success.await.unwrap();
    assert_eq!(
        redeemed,
        Some(CountedRedemption::Redeemed(Redeemed::Account))
    );
    let states = c.store.attempt_states(&u).await.unwrap();
    assert_eq!(
        states.len(),
        1,
        "the failure's count and lock survive the success"
    );
    assert_eq!(states[0].1.failures, 1);
    assert!(states[0].1.locked_until > 2_000, "{states:?}");
}
