//! The PostgreSQL backend: for many replicas sharing one database. Same statements as SQLite (see
//! `sql.rs`); migrations take PostgreSQL's advisory lock, so replicas starting together are safe.

use super::{PoolSettings, PoolUsage, StoreError};
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use std::str::FromStr;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

pub struct PgStore {
    pub(super) pool: PgPool,
    /// The same pool: PostgreSQL runs writers side by side (one user's are serialised by row
    /// locks and `LOCK_USER`).
    pub(super) writer: PgPool,
}

impl PgStore {
    pub async fn connect(url: &str, settings: PoolSettings) -> Result<Self, StoreError> {
        let options = PgConnectOptions::from_str(url)?.application_name("otpd");
        let pool = PgPoolOptions::new()
            .max_connections(settings.max_connections)
            .acquire_timeout(settings.acquire_timeout)
            .connect_with(options)
            .await?;
        Ok(Self {
            writer: pool.clone(),
            pool,
        })
    }

    fn usage(&self) -> PoolUsage {
        PoolUsage::of(&self.pool)
    }

    /// PostgreSQL commits concurrent transactions together by itself (one WAL flush for many):
    /// redemptions run in their own transactions, side by side.
    fn group_commit(&self) -> Option<&super::group_commit::GroupCommit> {
        None
    }

    /// One replica at a time: a session advisory lock, tried without waiting, on a connection
    /// taken out of the pool for as long as the lease lives; dropping the lease closes that
    /// connection, which releases the lock even if the job stopped half-way.
    async fn take_retention_lease(&self) -> Result<Option<super::RetentionLease>, StoreError> {
        let mut conn = self.pool.acquire().await?.detach();
        let got: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
            .bind(RETENTION_LOCK_KEY)
            .fetch_one(&mut conn)
            .await?;
        Ok(got.then(|| super::RetentionLease::held(conn)))
    }
}

/// The advisory-lock key of the retention job ("otpd-ret" in ASCII): one replica prunes at a time.
const RETENTION_LOCK_KEY: i64 = 0x6f74_7064_2d72_6574;

/// Serialises one user's write transactions across every replica (READ COMMITTED alone would let
/// two concurrent OTP inserts each prune without seeing the other's row). A transaction-scoped
/// advisory lock on a hash of the user id: collisions only make unrelated users wait briefly.
const LOCK_USER: Option<&str> = Some("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))");

/// Writers run side by side: a redemption counts its attempt (taking the counter's row lock)
/// before it looks at a candidate.
const SERIAL_WRITER: bool = false;

/// An account or login OTP's success after the count, in one statement: consume ($1 now, $2 sub,
/// $3 digest, $7 kind), reset the counter ($4 factor) and write the audit row ($5 event, $6
/// detail), or none of them.
/// Returns how many OTPs were consumed (0 or 1).
const CONSUME_RESET_AUDIT: Option<&str> = Some(
    "WITH used AS (
       UPDATE otps SET used_at = $1
       WHERE sub = $2 AND digest = $3 AND used_at IS NULL AND expires_at > $1 AND kind = $7
       RETURNING id),
     reset AS (
       DELETE FROM attempts WHERE sub = $2 AND factor = $4 AND EXISTS (SELECT 1 FROM used)),
     audit AS (
       INSERT INTO audit_events (sub, at, event, detail)
       SELECT $2, $1, $5, $6 WHERE EXISTS (SELECT 1 FROM used))
     SELECT COUNT(*) FROM used",
);

/// `AttemptStore::redeem_counted_in_one_call`: one call of a server-side function.
use super::redeem_call::redeem as redeem_in_one_call;

/// The attempt reservation and the OTP's write after the check: one call of a server-side
/// function each (`issue_call`).
use super::issue_call::{issue as issue_otp, reserve as reserve_in_one_call};

super::sql::impl_store!(
    PgStore,
    sqlx::Postgres,
    "BEGIN",
    super::LOCK_USER,
    super::MIGRATOR
);
super::attempts::impl_attempt_store!(PgStore, sqlx::Postgres);
super::retention::impl_retention_store!(PgStore);
super::password_links::impl_password_link_store!(PgStore, sqlx::Postgres);
super::keys::impl_key_store!(PgStore, sqlx::Postgres);
super::phone::impl_phone_store!(PgStore, sqlx::Postgres);
super::admin::impl_admin_store!(PgStore);
super::sessions::impl_session_store!(PgStore, sqlx::Postgres);
