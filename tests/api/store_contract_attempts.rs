//! The `Store` contract, continued: attempt counters (count-before-check under concurrency, reset
//! on success, failure side effects, operator unlock), on the configured backend.

use crate::store_contract::*;
use otpd::domain::{GuardedFactor, LockPolicy};
use otpd::store::{FailedAttempt, OtpInsert, Reservation};
use std::sync::Arc;

const NOW: i64 = 1_000_000;

/// `PARALLEL` reservations of one factor at once; returns how many were admitted.
async fn reserve_all(c: &Contract, user: &str, factor: GuardedFactor, policy: LockPolicy) -> usize {
    let tasks = (0..PARALLEL).map(|_| {
        let (store, u) = (Arc::clone(&c.store), sub(user));
        tokio::spawn(async move {
            store
                .reserve_attempt(&u, factor, &policy, NOW)
                .await
                .unwrap()
        })
    });
    futures::future::join_all(tasks)
        .await
        .into_iter()
        .filter(|r| matches!(r.as_ref().unwrap(), Reservation::Admitted(_)))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn store_parallel_reservations_admit_no_more_than_the_policy_allows() {
    let c = contract().await;
    let pin = LockPolicy::PIN;
    // The reservation that reaches `lock_from` writes the lock; every later one is refused.
    let admitted = reserve_all(&c, "contract-reserve", GuardedFactor::Pin, pin).await;
    assert_eq!(admitted, pin.lock_from as usize);
    let states = c
        .store
        .attempt_states(&sub("contract-reserve"))
        .await
        .unwrap();
    assert_eq!(states.len(), 1);
    let (factor, state) = states[0];
    assert_eq!(factor, GuardedFactor::Pin);
    assert_eq!(state.failures, pin.lock_from);
    assert!(state.locked_until > NOW);
    // Other factors and other users have counters of their own.
    let (u, stranger) = (sub("contract-reserve"), sub("someone-else"));
    let other = c
        .store
        .reserve_attempt(&u, GuardedFactor::Password, &LockPolicy::PASSWORD, NOW);
    assert!(matches!(other.await.unwrap(), Reservation::Admitted(_)));
    let elsewhere = c
        .store
        .reserve_attempt(&stranger, GuardedFactor::Pin, &pin, NOW);
    assert!(matches!(elsewhere.await.unwrap(), Reservation::Admitted(_)));
}

/// Both backends compute in SQL the lock a count starts (PostgreSQL's `otpd_reserve_attempt`,
/// SQLite's one-statement reservation) from the steps `LockPolicy` passes in. For a policy whose
/// first count locks and disables at its sixth, one that never locks, and one whose locks double
/// up to their cap, count by count: an admitted attempt leaves `LockPolicy::after_reserving`'s
/// state, an attempt inside the lock it started is refused with that state, and after the
/// disabling count every attempt is refused as disabled.
#[tokio::test]
async fn store_reservations_leave_the_states_the_lock_policy_computes() {
    use std::time::Duration;
    let c = contract().await;
    let policies = [
        LockPolicy {
            lock_from: 1,
            base_lock: Duration::from_secs(1),
            max_lock: Duration::from_secs(10),
            disable_after: Some(6),
            ..LockPolicy::PIN
        },
        LockPolicy {
            lock_from: 0,
            disable_after: None,
            ..LockPolicy::PASSWORD
        },
        LockPolicy {
            lock_from: 3,
            base_lock: Duration::from_secs(30),
            max_lock: Duration::from_secs(300),
            disable_after: None,
            ..LockPolicy::PIN
        },
    ];
    for (i, policy) in policies.iter().enumerate() {
        let u = sub(&format!("contract-reserve-states-{i}"));
        let (mut now, mut lock_end) = (NOW, 0);
        for failures in 1..=12u32 {
            now = now.max(lock_end) + 1;
            let got = c
                .store
                .reserve_attempt(&u, GuardedFactor::Pin, policy, now)
                .await
                .unwrap();
            if policy.disables_at(failures - 1) {
                let Reservation::Refused(state) = got else {
                    panic!("policy {i}: count {failures} after the disabling one: {got:?}");
                };
                assert!(
                    state.disabled && state.failures == failures - 1,
                    "{state:?}"
                );
                break;
            }
            let want = policy.after_reserving(failures, lock_end, now);
            assert_eq!(
                got,
                Reservation::Admitted(want),
                "policy {i}, count {failures}"
            );
            if want.locked_until > now && !want.disabled {
                let inside = c
                    .store
                    .reserve_attempt(&u, GuardedFactor::Pin, policy, now)
                    .await
                    .unwrap();
                assert_eq!(
                    inside,
                    Reservation::Refused(want),
                    "policy {i}, count {failures}"
                );
            }
            lock_end = want.locked_until;
        }
    }
}

#[tokio::test]
async fn store_a_success_resets_its_factor_and_unlock_clears_the_rest() {
    let c = contract().await;
    let u = sub("contract-reset");
    let pin = LockPolicy::PIN;
    for factor in [GuardedFactor::Pin, GuardedFactor::Otp] {
        let policy = if factor == GuardedFactor::Pin {
            pin
        } else {
            LockPolicy::OTP
        };
        let r = c
            .store
            .reserve_attempt(&u, factor, &policy, NOW)
            .await
            .unwrap();
        assert!(matches!(r, Reservation::Admitted(s) if s.failures == 1));
    }
    c.store
        .attempt_succeeded(&u, GuardedFactor::Pin)
        .await
        .unwrap();
    let states = c.store.attempt_states(&u).await.unwrap();
    assert_eq!(
        states.iter().map(|(f, _)| *f).collect::<Vec<_>>(),
        [GuardedFactor::Otp]
    );
    c.store
        .unlock(&u, &[GuardedFactor::Otp], "via=cli", NOW)
        .await
        .unwrap();
    assert!(c.store.attempt_states(&u).await.unwrap().is_empty());
    let audit = c.store.audit_events(&u).await.unwrap();
    assert_eq!(
        audit.len(),
        1,
        "one audit row per unlocked factor: {audit:?}"
    );
}

#[tokio::test]
async fn store_a_failure_that_revokes_deletes_only_live_otps_with_its_audit_rows() {
    let c = contract().await;
    let u = sub("contract-revoke");
    let (used, live) = ([4u8; 32], [5u8; 32]);
    c.store.insert_otp(&u, otp(&used, NOW, 3)).await.unwrap();
    c.store.insert_otp(&u, otp(&live, NOW, 3)).await.unwrap();
    let redemption = otpd::store::Redemption {
        account_digests: vec![used],
        login_digests: vec![],
        device_steps: vec![],
    };
    let first = c
        .store
        .redeem(&u, &redemption, otpd::store::FollowUp::Nothing, NOW + 1);
    assert!(first.await.unwrap().is_some());
    let before = c.store.audit_events(&u).await.unwrap().len();
    c.store
        .attempt_failed(
            &u,
            FailedAttempt {
                factor: GuardedFactor::Otp,
                failures: 5,
                locked_until: Some(NOW + 30_000),
                disabled: false,
                revoke_otps: true,
                revoke_devices_after: None,
            },
            NOW + 2,
        )
        .await
        .unwrap();
    assert_eq!(live_otps(&c, "contract-revoke").await, 0);
    let audit = c.store.audit_events(&u).await.unwrap();
    let added: Vec<_> = audit[before..].iter().map(|e| e.detail.as_str()).collect();
    assert_eq!(added.len(), 3, "refused, locked, revoked: {added:?}");
    assert!(added[2].ends_with("revoked=1"), "{added:?}");
}

#[tokio::test]
async fn store_an_otp_insert_resets_the_counter_of_the_factor_that_earned_it_and_no_other() {
    let c = contract().await;
    let u = sub("contract-reset-with-otp");
    for factor in [
        GuardedFactor::Pin,
        GuardedFactor::Pin,
        GuardedFactor::Password,
    ] {
        let policy = LockPolicy::PIN;
        c.store
            .reserve_attempt(&u, factor, &policy, NOW)
            .await
            .unwrap();
    }
    let earned = otpd::store::NewOtp {
        reset_attempts: Some(GuardedFactor::Pin),
        ..otp(&[3u8; 32], NOW, 3)
    };
    c.store.insert_otp(&u, earned).await.unwrap();
    let left: Vec<_> = c.store.attempt_states(&u).await.unwrap();
    assert_eq!(left.len(), 1, "{left:?}");
    assert_eq!(left[0].0, GuardedFactor::Password);
    assert_eq!(live_otps(&c, "contract-reset-with-otp").await, 1);
}

#[tokio::test]
async fn store_an_otp_whose_factor_is_gone_or_whose_digest_is_taken_writes_nothing_else() {
    let c = contract().await;
    let (u, other) = (sub("contract-otp-nothing"), sub("contract-otp-owner"));
    let earned = |digest| otpd::store::NewOtp {
        reset_attempts: Some(GuardedFactor::Pin),
        requires: Some(otpd::domain::Factor::Pin),
        ..otp(digest, NOW, 3)
    };
    let count_two = || async {
        for _ in 0..2 {
            let policy = LockPolicy::PIN;
            let reserved = c
                .store
                .reserve_attempt(&u, GuardedFactor::Pin, &policy, NOW);
            reserved.await.unwrap();
        }
    };
    let pin_failures = || async {
        let states = c.store.attempt_states(&u).await.unwrap();
        states.first().map_or(0, |(_, state)| state.failures)
    };
    count_two().await;
    // No PIN set (erased after the check): nothing stored, the count stays.
    let gone = c.store.insert_otp(&u, earned(&[1u8; 32])).await.unwrap();
    assert_eq!(gone, OtpInsert::CredentialGone);
    assert_eq!(live_otps(&c, "contract-otp-nothing").await, 0);
    assert!(c.store.audit_events(&u).await.unwrap().is_empty());
    assert_eq!(pin_failures().await, 2);

    c.store
        .set_credential(&u, otpd::domain::Factor::Pin, "pin-hash", NOW)
        .await
        .unwrap();
    for i in 0..3u8 {
        let digest = [10 + i; 32];
        let live = otp(&digest, NOW + i64::from(i), 3);
        assert_eq!(
            c.store.insert_otp(&u, live).await.unwrap(),
            OtpInsert::Inserted
        );
    }
    let taken = otp(&[9u8; 32], NOW, 3);
    assert_eq!(
        c.store.insert_otp(&other, taken).await.unwrap(),
        OtpInsert::Inserted
    );
    count_two().await; // setting the PIN started its count over
    let audit_before = c.store.audit_events(&u).await.unwrap().len();
    // A digest in use: no new OTP, none of the user's live ones retired to make room, no reset.
    let clash = c.store.insert_otp(&u, earned(&[9u8; 32])).await.unwrap();
    assert_eq!(clash, OtpInsert::DigestTaken);
    assert_eq!(live_otps(&c, "contract-otp-nothing").await, 3);
    assert_eq!(c.store.audit_events(&u).await.unwrap().len(), audit_before);
    assert_eq!(pin_failures().await, 2);
    // The next draw goes through and starts the count over.
    let fresh = c.store.insert_otp(&u, earned(&[8u8; 32])).await.unwrap();
    assert_eq!(fresh, OtpInsert::Inserted);
    assert_eq!(pin_failures().await, 0);
    assert_eq!(live_otps(&c, "contract-otp-nothing").await, 3);
}
