//! The `Store` contract, exercised directly on the configured backend (SQLite, or PostgreSQL when
//! `OTPD_TEST_DATABASE_URL` is set): every method, and the atomic ones under concurrency.

use crate::support::*;
use otpd::domain::{AuditEvent, Factor, Subject};
use otpd::store::{NewOtp, OtpInsert, PoolSettings, Store};
use std::sync::Arc;

/// How many tasks hit one row at the same time in the concurrency tests.
pub const PARALLEL: usize = 50;

pub struct Contract {
    pub store: Arc<dyn Store>,
    pub url: String,
    _dir: tempfile::TempDir,
}

pub async fn contract() -> Contract {
    let dir = tempfile::tempdir().unwrap();
    let url = fresh_database_url(dir.path()).await;
    // The contract is about outcomes, not latency: a loaded CI machine must not turn a 2 s wait for
    // SQLite's write lock into a failure of a test that fires 50 writers at once.
    let pool = PoolSettings {
        acquire_timeout: std::time::Duration::from_secs(30),
        ..PoolSettings::default()
    };
    let store = otpd::app::open_store(&url, pool).await.unwrap();
    Contract {
        store,
        url,
        _dir: dir,
    }
}

pub fn sub(s: &str) -> Subject {
    Subject::parse(s).unwrap()
}

pub async fn live_otps(c: &Contract, user: &str) -> i64 {
    scalar(
        &c.url,
        "SELECT COUNT(*) FROM otps WHERE sub = $1 AND used_at IS NULL",
        user,
    )
    .await
}

pub fn otp<'a>(digest: &'a [u8], now: i64, max_live: u32) -> NewOtp<'a> {
    NewOtp {
        digest,
        created_at: now,
        expires_at: now + 300_000,
        max_live,
        audit_detail: "factor=pin",
        reset_attempts: None,
        requires: None,
    }
}

#[tokio::test]
async fn store_migrating_again_changes_neither_the_schema_nor_the_data() {
    let c = contract().await;
    c.store.ping().await.unwrap();
    let u = sub("contract-migrate");
    c.store
        .set_credential(&u, Factor::Pin, "$argon2id$pin", 1_000)
        .await
        .unwrap();
    c.store
        .insert_otp(&u, otp(b"digest-migrate", 2_000, 3))
        .await
        .unwrap();
    let schema = schema_snapshot(&c.url).await;
    assert!(
        schema.iter().any(|l| l.starts_with("migration ")),
        "{schema:#?}"
    );
    let audit = c.store.audit_events(&u).await.unwrap();

    // Again on the open store, and again as a restarted replica opening the database.
    c.store.migrate().await.unwrap();
    otpd::app::open_store(&c.url, PoolSettings::default())
        .await
        .unwrap()
        .ping()
        .await
        .unwrap();
    assert_eq!(
        schema_snapshot(&c.url).await,
        schema,
        "no migration ran again"
    );
    let stored = c.store.credentials(&u).await.unwrap();
    assert_eq!(stored.hash(Factor::Pin), Some("$argon2id$pin"));
    assert_eq!(live_otps(&c, "contract-migrate").await, 1);
    assert_eq!(c.store.audit_events(&u).await.unwrap(), audit);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn store_replicas_starting_together_migrate_one_database_once() {
    let dir = tempfile::tempdir().unwrap();
    let url = fresh_database_url(dir.path()).await;
    if is_sqlite(&url) {
        skip!("PostgreSQL only: one SQLite file is served by one process, nothing starts together");
    }
    let opens = (0..4).map(|_| otpd::app::open_store(&url, PoolSettings::default()));
    for store in futures::future::join_all(opens).await {
        store.unwrap().ping().await.unwrap();
    }
    let migrations = schema_snapshot(&url).await;
    let applied = migrations.iter().filter(|l| l.starts_with("migration "));
    let mut versions: Vec<&str> = applied.map(|l| l.split(' ').nth(1).unwrap()).collect();
    let all = versions.len();
    versions.dedup();
    assert_eq!(
        versions.len(),
        all,
        "each migration applied once: {migrations:#?}"
    );
}

#[tokio::test]
async fn store_credentials_are_empty_until_set_then_replaced() {
    let c = contract().await;
    let u = sub("contract-creds");
    assert_eq!(c.store.credentials(&u).await.unwrap(), Default::default());
    c.store
        .set_credential(&u, Factor::Password, "$argon2id$pw1", 1_000)
        .await
        .unwrap();
    c.store
        .set_credential(&u, Factor::Pin, "$argon2id$pin1", 2_000)
        .await
        .unwrap();
    c.store
        .set_credential(&u, Factor::Pin, "$argon2id$pin2", 3_000)
        .await
        .unwrap();
    let stored = c.store.credentials(&u).await.unwrap();
    assert_eq!(stored.hash(Factor::Password), Some("$argon2id$pw1"));
    assert_eq!(stored.hash(Factor::Pin), Some("$argon2id$pin2"));
    let events: Vec<_> = c
        .store
        .audit_events(&u)
        .await
        .unwrap()
        .into_iter()
        .map(|e| (e.at, e.event))
        .collect();
    assert_eq!(
        events,
        [
            (1_000, AuditEvent::PasswordSet.as_str().to_owned()),
            (2_000, AuditEvent::PinSet.as_str().to_owned()),
            (3_000, AuditEvent::PinSet.as_str().to_owned()),
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn store_upgrade_hash_replaces_only_the_hash_it_was_computed_from() {
    let c = contract().await;
    let u = sub("contract-upgrade");
    assert!(
        !c.store
            .upgrade_hash(&u, Factor::Pin, "old", "new", 1)
            .await
            .unwrap(),
        "no user, nothing to upgrade"
    );
    c.store
        .set_credential(&u, Factor::Pin, "old", 1)
        .await
        .unwrap();
    // Many replicas re-hash the same login at once: exactly one wins, the others see a changed hash.
    let attempts = (0..PARALLEL).map(|i| {
        let store = Arc::clone(&c.store);
        let u = u.clone();
        tokio::spawn(async move {
            store
                .upgrade_hash(&u, Factor::Pin, "old", &format!("new-{i}"), 2)
                .await
                .unwrap()
        })
    });
    let wins = futures::future::join_all(attempts)
        .await
        .into_iter()
        .filter(|r| *r.as_ref().unwrap())
        .count();
    assert_eq!(wins, 1);
    let stored = c.store.credentials(&u).await.unwrap();
    assert!(stored.hash(Factor::Pin).unwrap().starts_with("new-"));
    assert_eq!(
        stored.hash(Factor::Password),
        None,
        "other factor untouched"
    );
    // A credential set in the meantime is never overwritten by a late upgrade.
    c.store
        .set_credential(&u, Factor::Pin, "set-by-user", 3)
        .await
        .unwrap();
    let late = c.store.upgrade_hash(&u, Factor::Pin, "old", "stale", 4);
    assert!(!late.await.unwrap());
    let stored = c.store.credentials(&u).await.unwrap();
    assert_eq!(stored.hash(Factor::Pin), Some("set-by-user"));
}

#[tokio::test]
async fn store_insert_otp_refuses_a_digest_that_is_taken_and_writes_one_audit_row() {
    let c = contract().await;
    let (a, b) = (sub("contract-otp-a"), sub("contract-otp-b"));
    assert_eq!(
        c.store
            .insert_otp(&a, otp(b"digest-1", 10, 3))
            .await
            .unwrap(),
        OtpInsert::Inserted
    );
    // Digests are unique across users (they are keyed by the user, so a clash is a real clash).
    assert_eq!(
        c.store
            .insert_otp(&b, otp(b"digest-1", 11, 3))
            .await
            .unwrap(),
        OtpInsert::DigestTaken
    );
    assert_eq!(live_otps(&c, "contract-otp-b").await, 0);
    assert!(c.store.audit_events(&b).await.unwrap().is_empty());
    let events = c.store.audit_events(&a).await.unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].event, AuditEvent::OtpIssued.as_str());
    assert_eq!(events[0].detail, "factor=pin");
}

#[tokio::test]
async fn store_insert_otp_keeps_the_newest_max_live_and_drops_expired_ones() {
    let c = contract().await;
    let u = sub("contract-prune");
    for i in 0..5u8 {
        let digest = [b'p', i];
        c.store
            .insert_otp(&u, otp(&digest, 1_000 + i64::from(i), 3))
            .await
            .unwrap();
    }
    assert_eq!(live_otps(&c, "contract-prune").await, 3);
    let newest = scalar(
        &c.url,
        "SELECT MIN(created_at) FROM otps WHERE sub = $1",
        "contract-prune",
    )
    .await;
    assert_eq!(newest, 1_002, "the oldest two were retired");
    // Once every earlier OTP has expired, an insert leaves only itself.
    let later = 1_000 + 300_000 + 10;
    c.store
        .insert_otp(&u, otp(b"late", later, 3))
        .await
        .unwrap();
    assert_eq!(live_otps(&c, "contract-prune").await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn store_parallel_otp_inserts_for_one_user_never_exceed_max_live() {
    let c = contract().await;
    let u = sub("contract-parallel-otps");
    let inserts = (0..PARALLEL).map(|i| {
        let store = Arc::clone(&c.store);
        let u = u.clone();
        tokio::spawn(async move {
            let digest = format!("parallel-{i}");
            store
                .insert_otp(&u, otp(digest.as_bytes(), 5_000 + i as i64, 3))
                .await
                .unwrap()
        })
    });
    for r in futures::future::join_all(inserts).await {
        assert_eq!(r.unwrap(), OtpInsert::Inserted);
    }
    assert_eq!(live_otps(&c, "contract-parallel-otps").await, 3);
    assert_eq!(c.store.audit_events(&u).await.unwrap().len(), PARALLEL);
}

#[tokio::test]
async fn store_audit_events_are_per_user_and_oldest_first() {
    let c = contract().await;
    let (a, b) = (sub("contract-audit-a"), sub("contract-audit-b"));
    for (i, u) in [&a, &b, &a].into_iter().enumerate() {
        c.store
            .record_audit(u, AuditEvent::PinRefused, &format!("n={i}"), i as i64)
            .await
            .unwrap();
    }
    let details: Vec<_> = c
        .store
        .audit_events(&a)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.detail)
        .collect();
    assert_eq!(details, ["n=0", "n=2"]);
    assert_eq!(c.store.audit_events(&b).await.unwrap().len(), 1);
}
