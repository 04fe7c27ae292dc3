//! `otpd copy-data`: a SQLite deployment moved to PostgreSQL keeps its users, live OTPs and audit
//! trail, and serves them. Runs in the PostgreSQL half of the suite (it needs a server).

use crate::support::*;
use otpd::domain::Subject;
use otpd::store::PoolSettings;
use serde_json::json;
use std::process::Command;

fn copy_data(env: &[(String, String)], args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_otpd"))
        .arg("copy-data")
        .args(args)
        .env_clear()
        .envs(env.iter().cloned())
        .output()
        .unwrap()
}

#[tokio::test]
async fn copy_data_moves_a_sqlite_deployment_into_postgresql() {
    if postgres_server().is_none() {
        skip!("PostgreSQL only: a SQLite-only run has no server to copy into");
    }
    let dir = tempfile::tempdir().unwrap();
    let sqlite_url = format!("sqlite://{}/old.db", dir.path().display());
    let old = TestApp::builder().database_url(&sqlite_url).spawn().await;
    old.set_pin("mover", "4378").await;
    old.set_password("mover", "correct horse battery").await;
    let otp = old.as_user("mover").new_otp(json!({"pin": "4378"})).await;
    let old_store = otpd::app::open_store(&sqlite_url, PoolSettings::default())
        .await
        .unwrap();
    let mover = Subject::parse("mover").unwrap();
    let audit_before = old_store.audit_events(&mover).await.unwrap();
    let pepper = old.config().hashing.read_pepper().unwrap();
    let new = old.sibling();
    old.stop().await;

    let target = fresh_database_url(dir.path()).await;
    let env = vec![("OTPD_DATABASE_URL".to_owned(), target.clone())];
    let out = copy_data(&env, &["--from", &sqlite_url]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("users: 1 rows"), "{stdout}");
    assert!(stdout.contains("otps: 1 rows"), "{stdout}");

    // The same history, the live OTP still live, the credentials usable with the same pepper.
    let new_store = otpd::app::open_store(&target, PoolSettings::default())
        .await
        .unwrap();
    assert_eq!(new_store.audit_events(&mover).await.unwrap(), audit_before);
    let key = otpd::service::OtpKey::derive(&pepper);
    assert_eq!(
        count_live_digest(&target, &key.digest("mover", &otp)).await,
        1
    );
    let new = new.database_url(&target).spawn().await;
    for body in [
        json!({"pin": "4378"}),
        json!({"password": "correct horse battery"}),
    ] {
        // A 201 also shows the id sequences were moved past the copied rows.
        assert_eq!(new.create_otp("mover", body).await.status(), 201);
    }

    // A second copy into a database that now holds data is refused, and changes nothing.
    let out = copy_data(&env, &["--from", &sqlite_url]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("already holds rows"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A mistyped source is an error, not a new empty database.
    let missing = format!("sqlite://{}/typo.db", dir.path().display());
    assert!(!copy_data(&env, &["--from", &missing]).status.success());
    assert!(!dir.path().join("typo.db").exists());
}
