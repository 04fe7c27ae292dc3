//! The embedded SQLite backend: one file, WAL journal, one writer connection and a pool of readers.
//!
//! SQLite lets one transaction write at a time. Several pooled connections that all want to write
//! fight for that lock through `busy_timeout`, whose back-off sleeps (up to 100 ms) left the file
//! idle while requests waited: measured 270–750 redemptions/s with 840 ms tails. So every write
//! goes through a pool of exactly one connection, where writers queue in order and the lock is never
//! contended inside the process; reads use their own pool and, in WAL mode, never wait for the
//! writer. Write transactions still begin IMMEDIATE, for a second process on the same file (an
//! operator command while the server runs).

use super::group_commit::{GroupCommit, Job};
use super::{CountedRedemption, FollowUp, PoolSettings, PoolUsage, StoreError};
use sqlx::SqlitePool;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use std::str::FromStr;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

pub struct SqliteStore {
    /// Readers: `database_max_connections` of them.
    pub(super) pool: SqlitePool,
    /// The one writer.
    pub(super) writer: SqlitePool,
    /// Redemptions without a follow-up, written in batches on the writer (`group_commit.rs`).
    group: GroupCommit,
}

impl SqliteStore {
    /// Opens (creating if needed) the database named by a `sqlite:` URL.
    pub async fn connect(url: &str, settings: PoolSettings) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // FULL: a transaction that returned is on disk, so an OTP answered 201 survives a crash
            // of the process *and* of the machine. Costs ~10x in raw insert rate, which is still
            // far above the Argon2 rate that bounds every request that writes.
            .synchronous(SqliteSynchronous::Full)
            // A writer waits for the file lock as long as a request waits for a connection: the
            // same "database too busy, 503" bound on both backends.
            .busy_timeout(settings.acquire_timeout)
            .foreign_keys(true);
        // The writer first: it creates the file and switches it to WAL before any reader opens it.
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .acquire_timeout(settings.acquire_timeout)
            .connect_with(options.clone())
            .await?;
        let pool = SqlitePoolOptions::new()
            .max_connections(settings.max_connections)
            .acquire_timeout(settings.acquire_timeout)
            .connect_with(options.create_if_missing(false))
            .await?;
        let batch_writer = writer.clone();
        let group = GroupCommit::start(move |jobs| write_batch(batch_writer.clone(), jobs));
        Ok(Self {
            pool,
            writer,
            group,
        })
    }

    fn group_commit(&self) -> Option<&GroupCommit> {
        Some(&self.group)
    }

    /// One process owns the file: it may always prune.
    async fn take_retention_lease(&self) -> Result<Option<super::RetentionLease>, StoreError> {
        Ok(Some(super::RetentionLease::local()))
    }

    fn usage(&self) -> PoolUsage {
        PoolUsage::of(&self.pool) + PoolUsage::of(&self.writer)
    }
}

/// One transaction for a batch of redemptions; see `group_commit.rs`.
async fn write_batch(
    writer: SqlitePool,
    jobs: Vec<Job>,
) -> Result<Vec<CountedRedemption>, StoreError> {
    let mut tx = writer.begin_with("BEGIN IMMEDIATE").await?;
    let mut outcomes = Vec::with_capacity(jobs.len());
    for (sub, candidates, policy, devices_checked, now) in &jobs {
        let then = FollowUp::Nothing;
        let outcome = attempt_sql::redeem_counted_in(
            &mut tx,
            sub,
            candidates,
            then,
            policy,
            *devices_checked,
            *now,
        );
        outcomes.push(outcome.await?);
    }
    tx.commit().await?;
    Ok(outcomes)
}

/// `BEGIN IMMEDIATE` already serialises every write transaction of the file: no per-user lock.
const LOCK_USER: Option<&str> = None;

/// Every write transaction holds the file's one write lock from its first statement (one writer,
/// `BEGIN IMMEDIATE`): nothing runs between its statements (see `redeem_counted_in`).
const SERIAL_WRITER: bool = true;

/// SQLite has no data-modifying `WITH`: a redemption's success is its own statements.
const CONSUME_RESET_AUDIT: Option<&str> = None;

/// `AttemptStore::redeem_counted_in_one_call`: declined. One writer in-process already batches
/// redemptions (group commit); there is no server to call.
async fn redeem_in_one_call(
    _: &SqlitePool,
    _: &crate::domain::Subject,
    _: &super::Redemption,
    _: bool,
    _: &crate::domain::LockPolicy,
    _: super::Millis,
) -> Result<Option<CountedRedemption>, StoreError> {
    Ok(None)
}

super::sql::impl_store!(
    SqliteStore,
    sqlx::Sqlite,
    "BEGIN IMMEDIATE",
    super::LOCK_USER,
    super::MIGRATOR
);
super::attempts::impl_attempt_store!(SqliteStore, sqlx::Sqlite);
super::retention::impl_retention_store!(SqliteStore);
super::password_links::impl_password_link_store!(SqliteStore, sqlx::Sqlite);
super::keys::impl_key_store!(SqliteStore, sqlx::Sqlite);
super::phone::impl_phone_store!(SqliteStore, sqlx::Sqlite);
super::admin::impl_admin_store!(SqliteStore);
super::sessions::impl_session_store!(SqliteStore, sqlx::Sqlite);
