//! `otpd backup`: an online copy of the SQLite database taken while the app serves OTPs, restored
//! by starting an app on it; and what it refuses.

use crate::support::process::run_otpd;
use crate::support::*;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

const PIN: &str = "4378";
const USERS: usize = 40;
/// OTPs a user may hold; no user gets more, so no OTP answered before the backup is retired.
const MAX_LIVE: usize = 10;
const WORKERS: usize = 4;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_backup_under_load_holds_every_otp_answered_before_it_and_restores() {
    let dir = tempfile::tempdir().unwrap();
    let live = format!("sqlite://{}", dir.path().join("live.db").display());
    let app = Arc::new(
        TestApp::builder()
            .database_url(&live)
            .admitting_bursts()
            .env("OTPD_OTP_MAX_LIVE", &MAX_LIVE.to_string())
            .spawn()
            .await,
    );
    let subs: Vec<String> = (0..USERS).map(|i| format!("load-{i}")).collect();
    for sub in &subs {
        app.set_pin(sub, PIN).await;
    }
    // (sub, otp) in the order their 201 arrived.
    let answered = Arc::new(Mutex::new(Vec::<(String, String)>::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..WORKERS)
        .map(|w| {
            let (app, answered, stop) = (app.clone(), answered.clone(), stop.clone());
            let mine: Vec<String> = subs.iter().skip(w).step_by(WORKERS).cloned().collect();
            tokio::spawn(async move {
                'outer: for _ in 0..MAX_LIVE {
                    for sub in &mine {
                        if stop.load(Ordering::Relaxed) {
                            break 'outer;
                        }
                        let otp = otp_of(app.as_user(sub).create_otp_with_pin(PIN).await).await;
                        answered.lock().unwrap().push((sub.clone(), otp));
                    }
                }
            })
        })
        .collect();
    while answered.lock().unwrap().len() < 40 {
        tokio::task::yield_now().await;
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    let before: Vec<(String, String)> = answered.lock().unwrap().clone();
    let copy = dir.path().join("copy.db");
    let env = app.env.clone();
    let target = copy.to_str().unwrap().to_owned();
    let out = tokio::task::spawn_blocking(move || run_otpd(&env, &["backup", "--to", &target], ""))
        .await
        .unwrap();
    let during = answered.lock().unwrap().len() - before.len();
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.await.unwrap();
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "backup failed: {stderr}");
    assert!(stderr.contains("integrity check passed"), "{stderr}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let otp_rows: usize = stdout
        .lines()
        .find_map(|l| l.strip_prefix("otps: "))
        .and_then(|l| l.split(' ').next())
        .and_then(|n| n.parse().ok())
        .expect("the report counts OTP rows");
    assert!(otp_rows >= before.len(), "{stdout}");
    eprintln!(
        "backup under load: {} OTPs answered before it, {during} while it ran, {otp_rows} in the copy",
        before.len()
    );

    // Restore: an app on the copy (same pepper, same issuer) verifies every OTP answered before.
    let restored = app
        .sibling()
        .database_url(&format!("sqlite://{}", copy.display()))
        .spawn()
        .await;
    let mut outcomes: HashMap<u16, usize> = HashMap::new();
    for (sub, otp) in &before {
        let status = restored.as_user(sub).verify(otp).await.status().as_u16();
        *outcomes.entry(status).or_default() += 1;
    }
    assert_eq!(outcomes, HashMap::from([(204, before.len())]));
}

#[tokio::test]
async fn a_backup_never_overwrites_a_file_and_refuses_postgresql() {
    let dir = tempfile::tempdir().unwrap();
    let live = format!("sqlite://{}", dir.path().join("live.db").display());
    let app = TestApp::builder().database_url(&live).spawn().await;
    app.set_pin("alice", PIN).await;
    let existing = dir.path().join("precious.db");
    std::fs::write(&existing, b"keep me").unwrap();
    let out = run_otpd(
        &app.env,
        &["backup", "--to", existing.to_str().unwrap()],
        "",
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("already exists"));
    assert_eq!(std::fs::read(&existing).unwrap(), b"keep me");

    let missing = format!("sqlite://{}", dir.path().join("typo.db").display());
    let mut env = app.env.clone();
    env.retain(|(k, _)| k != "OTPD_DATABASE_URL");
    env.push(("OTPD_DATABASE_URL".into(), missing));
    let out = run_otpd(
        &env,
        &["backup", "--to", dir.path().join("b.db").to_str().unwrap()],
        "",
    );
    assert!(
        !out.status.success(),
        "a mistyped database is not backed up"
    );
    assert!(
        !dir.path().join("typo.db").exists(),
        "and not created either"
    );

    env.retain(|(k, _)| k != "OTPD_DATABASE_URL");
    env.push((
        "OTPD_DATABASE_URL".into(),
        "postgres://otpd@127.0.0.1:1/otpd".into(),
    ));
    let out = run_otpd(
        &env,
        &["backup", "--to", dir.path().join("c.db").to_str().unwrap()],
        "",
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("pg_dump"));
}
