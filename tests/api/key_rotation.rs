//! Rotating the pepper and the TOTP key without an outage: hashes and device secrets made under an
//! old key keep working while it is loaded, move to the current key (re-hash at login,
//! `otpd keys reencrypt-totp`), and a key that is missing is a clear 503, never a 500.

use crate::store_contract::{contract, sub};
use crate::support::process::run_otpd;
use crate::support::*;
use otpd::domain::{GuardedFactor, Subject};
use otpd::store::{FollowUp, Redeemed, Redemption, Reseal, StoredDevice};
use std::sync::Arc;

const DEVICE: &str = "738e379f-fe30-45ab-819c-ba88804b6368";

/// A key file of 32 bytes of `byte` in the app's directory.
fn key_file(app: &TestApp, name: &str, byte: u8) -> String {
    let path = app.dir.path().join(name);
    std::fs::write(&path, [byte; 32]).unwrap();
    path.display().to_string()
}

fn original_pepper(app: &TestApp) -> String {
    app.dir.path().join("pepper").display().to_string()
}

/// `before`'s database restarted on pepper `p2` (the file `p2`), with `before`'s own pepper loaded
/// as the old `p1` when `keep_p1`.
async fn on_p2(before: &TestApp, p2: &str, keep_p1: bool) -> TestApp {
    let app = before
        .sibling()
        .env("OTPD_PEPPER_FILE", p2)
        .env("OTPD_PEPPER_ID", "p2");
    let app = if keep_p1 {
        app.env(
            "OTPD_PEPPER_OLD_FILES",
            &format!("p1:{}", original_pepper(before)),
        )
    } else {
        app
    };
    app.spawn().await
}

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[tokio::test]
async fn a_hash_under_an_old_pepper_verifies_and_is_rehashed_under_the_current_one() {
    let before = TestApp::spawn().await;
    before.set_password("rosa", PASSWORD).await;
    before.set_pin("rosa", "4378").await;
    assert!(before.user_status("rosa").await.contains("pepper=p1"));
    let p2 = key_file(&before, "pepper-2", 2);
    let after = on_p2(&before, &p2, true).await;
    let rosa = after.as_user("rosa");
    assert_eq!(rosa.create_otp_with_password(PASSWORD).await.status(), 201);
    assert_eq!(rosa.create_otp_with_pin("4378").await.status(), 201);
    let shown = after.user_status("rosa").await;
    assert_eq!(shown.matches("pepper=p2").count(), 2, "{shown}");
    // Under the new pepper alone (p1 removed) both still verify: they were re-hashed.
    let only_p2 = on_p2(&before, &p2, false).await;
    let rosa = only_p2.as_user("rosa");
    assert_eq!(rosa.create_otp_with_password(PASSWORD).await.status(), 201);
    assert_eq!(rosa.create_otp_with_pin("4378").await.status(), 201);
    assert_eq!(
        rosa.create_otp_with_password("not the password")
            .await
            .status(),
        422
    );
}

#[tokio::test]
async fn a_hash_under_a_pepper_that_is_not_loaded_is_503_key_unavailable_and_counts_nothing() {
    let before = TestApp::spawn().await;
    before.set_password("sami", PASSWORD).await;
    let p2 = key_file(&before, "pepper-2", 2);
    let after = on_p2(&before, &p2, false).await;
    for _ in 0..6 {
        let res = after
            .as_user("sami")
            .create_otp_with_password(PASSWORD)
            .await;
        let id = request_id(&res);
        assert_eq!(res.headers()["retry-after"], "300");
        let body = assert_error(res, 503, "key-unavailable").await;
        assert!(
            // The request id is random base32hex and may itself contain "p1": look elsewhere.
            !body["detail"].to_string().contains("p1") && !body["title"].to_string().contains("p1"),
            "no internals in the body: {body}"
        );
        assert_logged(&id, "pepper id `p1`, which is not loaded");
    }
    let states = after
        .services()
        .await
        .attempt_states(&Subject::parse("sami").unwrap())
        .await
        .unwrap();
    let password = states.iter().find(|(f, _)| *f == GuardedFactor::Password);
    assert_eq!(password.unwrap().1.failures, 0, "nothing was counted");
    // The operator commands say so before a restart would.
    for args in [&["keys", "status"][..], &["check-config"][..]] {
        let out = run_otpd(&after.env, args, "");
        assert!(!out.status.success(), "{args:?} must fail");
        let text = stdout(&out) + &stderr(&out);
        assert!(
            text.contains("PROBLEM") && text.contains("pepper id `p1`"),
            "{args:?}: {text}"
        );
    }
    // Loading p1 again as an old pepper heals it.
    let healed = on_p2(&before, &p2, true).await;
    assert_eq!(
        healed
            .as_user("sami")
            .create_otp_with_password(PASSWORD)
            .await
            .status(),
        201
    );
    assert!(
        run_otpd(&healed.env, &["keys", "status"], "")
            .status
            .success()
    );
}

#[tokio::test]
async fn an_otp_issued_by_a_replica_on_the_new_pepper_redeems_on_one_still_on_the_old() {
    let old_side = TestApp::spawn().await;
    old_side.set_password("tove", PASSWORD).await;
    let p2 = key_file(&old_side, "pepper-2", 2);
    let p1 = original_pepper(&old_side);
    // Step 1 of the runbook: every replica loads p2 before any uses it.
    let old_side = old_side
        .sibling()
        .env("OTPD_PEPPER_OLD_FILES", &format!("p2:{p2}"))
        .spawn()
        .await;
    let new_side = old_side
        .sibling()
        .env("OTPD_PEPPER_FILE", &p2)
        .env("OTPD_PEPPER_ID", "p2")
        .env("OTPD_PEPPER_OLD_FILES", &format!("p1:{p1}"))
        .spawn()
        .await;
    let from_new = new_side.account_otp("tove").await;
    assert_eq!(
        old_side.as_user("tove").verify(&from_new).await.status(),
        204
    );
    let from_old = old_side.account_otp("tove").await;
    assert_eq!(
        new_side.as_user("tove").verify(&from_old).await.status(),
        204
    );
}

#[tokio::test]
async fn a_totp_key_rotation_keeps_devices_working_and_reencrypt_moves_them_to_the_new_key() {
    let first = TestApp::spawn().await;
    let t1 = key_file(&first, "totp-1", 1);
    let t2 = key_file(&first, "totp-2", 2);
    let before = first
        .sibling()
        .env("OTPD_TOTP_KEY_FILE", &t1)
        .env("OTPD_TOTP_KEY_ID", "t1")
        .spawn()
        .await;
    let device = before.device_secret("uma", DEVICE).await;
    let used = device.now();
    assert_eq!(
        before
            .as_user("uma")
            .verify_as(&used, &["device-totp"])
            .await
            .status(),
        204
    );
    let after = first
        .sibling()
        .env("OTPD_TOTP_KEY_FILE", &t2)
        .env("OTPD_TOTP_KEY_ID", "t2")
        .env("OTPD_TOTP_OLD_KEY_FILES", &format!("t1:{t1}"))
        .spawn()
        .await;
    let status = stdout(&run_otpd(&after.env, &["keys", "status"], ""));
    assert!(
        status.contains("key t1") && status.contains("old, loaded"),
        "{status}"
    );
    let out = run_otpd(
        &after.env,
        &["keys", "reencrypt-totp", "--batch-size", "1"],
        "",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("re-encrypted 1 device secrets under TOTP key `t2`"));
    let again = run_otpd(&after.env, &["keys", "reencrypt-totp"], "");
    assert!(
        stdout(&again).contains("re-encrypted 0 device secrets"),
        "resumable: nothing left"
    );
    let status = stdout(&run_otpd(&after.env, &["keys", "status"], ""));
    assert!(
        status.contains("key t2") && !status.contains("key t1"),
        "{status}"
    );
    // t1 can go now: the device still works, and the code used before is still used.
    let only_t2 = first
        .sibling()
        .env("OTPD_TOTP_KEY_FILE", &t2)
        .env("OTPD_TOTP_KEY_ID", "t2")
        .spawn()
        .await;
    let uma = only_t2.as_user("uma");
    assert_eq!(uma.verify_as(&used, &["device-totp"]).await.status(), 404);
    let next = device.code(time::OffsetDateTime::now_utc().unix_timestamp(), 1);
    assert_eq!(uma.verify_as(&next, &["device-totp"]).await.status(), 204);
    // Without the key the device was sealed under, a check is 503, not "invalid".
    let without = first
        .sibling()
        .env("OTPD_TOTP_KEY_FILE", &t1)
        .env("OTPD_TOTP_KEY_ID", "t1")
        .spawn()
        .await;
    let res = without
        .as_user("uma")
        .verify_as(&next, &["device-totp"])
        .await;
    assert_error(res, 503, "key-unavailable").await;
}

fn device(secret_ct: &[u8]) -> StoredDevice {
    StoredDevice {
        device_id: "phone".into(),
        secret_ct: secret_ct.to_vec(),
        algorithm: "SHA1".into(),
        digits: 6,
        period_secs: 30,
        key_id: Some("t1".into()),
        secret_gen: 0,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn store_a_reseal_during_redemptions_breaks_no_code_and_replays_none() {
    let c = Arc::new(contract().await);
    let u = sub("contract-reseal");
    c.store
        .save_device(&u, &device(b"ct-1"), "", None, 1)
        .await
        .unwrap();
    let read = c.store.devices(&u).await.unwrap().remove(0);
    // A code being redeemed was computed from `read`; the reseal lands first.
    let reseal = Reseal {
        sub: "contract-reseal".into(),
        device_id: "phone".into(),
        secret_gen: read.secret_gen,
        old_ct: read.secret_ct.clone(),
        new_ct: b"ct-1 under t2".to_vec(),
        key_id: "t2".into(),
    };
    let step = |s: i64| Redemption {
        account_digests: vec![],
        login_digests: vec![],
        device_steps: vec![(read.clone(), s)],
    };
    let mut racers = Vec::new();
    for _ in 0..8 {
        let (c, u, candidates) = (Arc::clone(&c), u.clone(), step(100));
        racers.push(tokio::spawn(async move {
            c.store
                .redeem(&u, &candidates, FollowUp::Nothing, 10)
                .await
                .unwrap()
        }));
    }
    let resealed = c
        .store
        .reseal_devices(std::slice::from_ref(&reseal), 10)
        .await
        .unwrap();
    let mut consumed = 0;
    for r in racers {
        if r.await.unwrap() == Some(Redeemed::Device("phone".into())) {
            consumed += 1;
        }
    }
    assert_eq!(
        (resealed, consumed),
        (1, 1),
        "one reseal, exactly one redemption"
    );
    let now = c.store.devices(&u).await.unwrap().remove(0);
    assert_eq!(now.key_id.as_deref(), Some("t2"));
    assert_eq!(
        now.secret_gen, read.secret_gen,
        "same secret, same generation"
    );
    let again = c
        .store
        .redeem(&u, &step(100), FollowUp::Nothing, 11)
        .await
        .unwrap();
    assert_eq!(again, None, "the step stays used after the reseal");
    // A second reseal from the same read finds the row changed and leaves it alone.
    assert_eq!(c.store.reseal_devices(&[reseal], 12).await.unwrap(), 0);
    // A new secret for the device gets a new generation: codes of the old one consume nothing.
    c.store
        .save_device(&u, &device(b"ct-2"), "", None, 13)
        .await
        .unwrap();
    let replaced = c.store.devices(&u).await.unwrap().remove(0);
    assert_eq!(replaced.secret_gen, read.secret_gen + 1);
    assert_eq!(
        c.store
            .redeem(&u, &step(200), FollowUp::Nothing, 14)
            .await
            .unwrap(),
        None
    );
    let counts = c.store.device_key_counts().await.unwrap();
    assert_eq!(counts, vec![(Some("t1".to_owned()), 1)]);
}

#[tokio::test]
async fn keys_status_never_prints_a_secret() {
    let app = TestApp::spawn().await;
    app.set_password("vera", PASSWORD).await;
    let device = app.device_secret("vera", DEVICE).await;
    let out = run_otpd(&app.env, &["keys", "status"], "");
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("pepper p1 argon2id m=256,t=1,p=1"), "{text}");
    assert!(text.contains("key pepper:p1"), "{text}");
    let stored = app
        .services()
        .await
        .store
        .credentials(&Subject::parse("vera").unwrap())
        .await
        .unwrap()
        .password_hash
        .unwrap();
    let salt_and_hash = stored.rsplitn(3, '$').take(2).collect::<Vec<_>>();
    for secret in salt_and_hash
        .iter()
        .chain([&device.secret.as_str(), &PASSWORD])
    {
        assert!(!text.contains(secret), "keys status shows a secret");
    }
}
