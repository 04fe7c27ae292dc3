//! The embedded SQLite backend: one file, WAL journal, one writer connection and a pool of readers.
//!
//! SQLite lets one transaction write at a time. Several pooled connections that all want to write
//! fight for that lock through `busy_timeout`, whose back-off sleeps (up to 100 ms) left the file
//! idle while requests waited: measured 270–750 redemptions/s with 840 ms tails. So every write
//! goes through a pool of exactly one connection, where writers queue in order and the lock is never
//! contended inside the process; reads use their own pool and, in WAL mode, never wait for the
//! writer. Write transactions still begin IMMEDIATE, for a second process on the same file (an
//! operator command while the server runs).

use super::group_commit::{Call, GroupCommit, Job};
use super::{
    CountedRedemption, FollowUp, Millis, NewOtp, OtpInsert, PoolSettings, PoolUsage, Redeemed,
    Redemption, Reservation, StoreError,
};
use crate::domain::{AttemptState, AuditEvent, GuardedFactor, LockPolicy, Subject};
use sqlx::sqlite::SqliteConnection;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{QueryBuilder, Row, Sqlite, SqlitePool};
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
        // No ping before a connection is handed out (sqlx's `test_before_acquire`): it checks for a
        // server that went away, which a file cannot do, and each ping is a round trip to the
        // connection's worker thread: three per issued OTP (docs/benchmark.md).
        // The writer first: it creates the file and switches it to WAL before any reader opens it.
        let writer = SqlitePoolOptions::new()
            .test_before_acquire(false)
            .max_connections(1)
            .acquire_timeout(settings.acquire_timeout)
            .connect_with(options.clone())
            .await?;
        let pool = SqlitePoolOptions::new()
            .test_before_acquire(false)
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

/// One transaction for a batch of redemptions; see `group_commit.rs`. The audit rows of one-call
/// successes are written together, in one statement, before the next statement that could write
/// another audit row (so the rows keep the order of the redemptions) and before the commit.
async fn write_batch(
    writer: SqlitePool,
    jobs: Vec<Job>,
) -> Result<Vec<Option<CountedRedemption>>, StoreError> {
    let mut tx = writer.begin_with("BEGIN IMMEDIATE").await?;
    let mut outcomes = Vec::with_capacity(jobs.len());
    let mut audits = RedeemedAudits::default();
    for job in &jobs {
        let outcome = match job.call {
            Call::OneCall { devices } => one_call_in(&mut tx, job, devices, &mut audits).await?,
            Call::Counted { devices_checked } => {
                audits.write(&mut tx).await?;
                let counted = attempt_sql::redeem_counted_in(
                    &mut tx,
                    &job.sub,
                    &job.candidates,
                    FollowUp::Nothing,
                    &job.policy,
                    devices_checked,
                    job.now,
                );
                Some(counted.await?)
            }
        };
        outcomes.push(outcome);
    }
    audits.write(&mut tx).await?;
    tx.commit().await?;
    Ok(outcomes)
}

/// `redeem_counted_in_one_call` inside a group commit: the OTP candidates are tried first, and a
/// success is the same whether or not the user has device TOTPs (their codes come after every
/// OTP in `redeem_counted`), so the common redemption needs no device read at all. Only a miss
/// asks whether the user has device TOTPs: then nothing is written and the caller takes the full
/// path; otherwise the miss is counted as `redeem_counted` counts it.
async fn one_call_in(
    tx: &mut SqliteConnection,
    job: &Job,
    devices: bool,
    audits: &mut RedeemedAudits,
) -> Result<Option<CountedRedemption>, StoreError> {
    let Job {
        sub,
        candidates,
        policy,
        now,
        ..
    } = job;
    if let Some(redeemed) = attempt_sql::consume_serially(&mut *tx, sub, candidates, *now).await? {
        audits.push(sub, &redeemed, *now);
        return Ok(Some(CountedRedemption::Redeemed(redeemed)));
    }
    audits.write(&mut *tx).await?;
    if devices && has_device_totps(&mut *tx, sub).await? {
        return Ok(None);
    }
    let counted = attempt_sql::count_then_consume(
        tx,
        sub,
        candidates,
        FollowUp::Nothing,
        policy,
        false,
        *now,
    );
    Ok(Some(counted.await?))
}

async fn has_device_totps(tx: &mut SqliteConnection, sub: &Subject) -> Result<bool, StoreError> {
    let found: Option<i64> =
        sqlx::query_scalar("SELECT 1 FROM device_totps WHERE sub = $1 LIMIT 1")
            .bind(sub.as_str())
            .fetch_optional(tx)
            .await?;
    Ok(found.is_some())
}

/// The audit rows of redemptions consumed but not yet written, in order.
#[derive(Default)]
struct RedeemedAudits(Vec<(Subject, String, Millis)>);

impl RedeemedAudits {
    fn push(&mut self, sub: &Subject, redeemed: &Redeemed, now: Millis) {
        self.0.push((sub.clone(), redeemed.audit_detail(), now));
    }

    /// Writes them, in one statement.
    async fn write(&mut self, tx: &mut SqliteConnection) -> Result<(), StoreError> {
        if self.0.is_empty() {
            return Ok(());
        }
        let mut insert =
            QueryBuilder::<Sqlite>::new("INSERT INTO audit_events (sub, at, event, detail) ");
        insert.push_values(&self.0, |mut row, (sub, detail, now)| {
            row.push_bind(sub.as_str())
                .push_bind(*now)
                .push_bind(AuditEvent::OtpRedeemed.as_str())
                .push_bind(detail.as_str());
        });
        insert.build().execute(tx).await?;
        self.0.clear();
        Ok(())
    }
}

/// `BEGIN IMMEDIATE` already serialises every write transaction of the file: no per-user lock.
const LOCK_USER: Option<&str> = None;

/// Every write transaction holds the file's one write lock from its first statement (one writer,
/// `BEGIN IMMEDIATE`): nothing runs between its statements (see `redeem_counted_in`).
const SERIAL_WRITER: bool = true;

/// SQLite has no data-modifying `WITH`: a redemption's success is its own statements.
const CONSUME_RESET_AUDIT: Option<&str> = None;

/// `AttemptStore::redeem_counted_in_one_call`: a job of the group commit (`one_call_in`).
async fn redeem_in_one_call(
    store: &SqliteStore,
    sub: &Subject,
    candidates: &Redemption,
    devices: bool,
    policy: &LockPolicy,
    now: Millis,
) -> Result<Option<CountedRedemption>, StoreError> {
    let call = Call::OneCall { devices };
    store.group.redeem(sub, candidates, policy, call, now).await
}

/// `AttemptStore::reserve_attempt` on SQLite as one command to the writer's thread, where the
/// shared `count_attempt` needs four (BEGIN, the counting upsert, the lock's UPDATE when one starts,
/// COMMIT), each a hand-off between threads while the hashes want the cores (docs/benchmark.md).
/// One statement is its own transaction: the count and the lock it starts are written together
/// or not at all. The statements of PostgreSQL's `otpd_reserve_attempt` (migrations/postgres/0020),
/// with the lock policy's arithmetic passed in the same way: `$5` holds the locks (ms) that counts
/// `$4` … `$4 + 31` start (`lock_steps`, as JSON), `$6` the count that disables. A refused
/// attempt writes nothing (`changes()` is 0), and the second statement reads the counter as found.
const RESERVE: &str = "
    INSERT INTO attempts AS a (sub, factor, failures, locked_until, disabled_at, updated_at)
    VALUES ($1, $2, 1,
        COALESCE($3 + NULLIF(
            CASE WHEN $4 = 0 OR 1 < $4 THEN 0
                 ELSE json_extract($5, '$[' || MIN(1 - $4, 31) || ']') END, 0),
            0),
        CASE WHEN $6 IS NOT NULL AND 1 >= $6 THEN $3 END,
        $3)
    ON CONFLICT (sub, factor) DO UPDATE SET
        failures = a.failures + 1,
        locked_until = COALESCE($3 + NULLIF(
            CASE WHEN $4 = 0 OR a.failures + 1 < $4 THEN 0
                 ELSE json_extract($5, '$[' || MIN(a.failures + 1 - $4, 31) || ']') END, 0),
            a.locked_until),
        disabled_at = CASE WHEN $6 IS NOT NULL AND a.failures + 1 >= $6 THEN $3 END,
        updated_at = excluded.updated_at
      WHERE a.locked_until <= $3 AND a.disabled_at IS NULL
    RETURNING 1, failures, locked_until, disabled_at IS NOT NULL;
    SELECT 0, failures, locked_until, disabled_at IS NOT NULL
      FROM attempts WHERE sub = $1 AND factor = $2 AND changes() = 0;";

async fn reserve_in_one_call(
    store: &SqliteStore,
    sub: &Subject,
    factor: GuardedFactor,
    policy: &LockPolicy,
    now: Millis,
) -> Result<Reservation, StoreError> {
    let steps = serde_json::Value::from(super::redeem_call::lock_steps(policy));
    let rows = sqlx::query(RESERVE)
        .bind(sub.as_str())
        .bind(factor.as_str())
        .bind(now)
        .bind(i64::from(policy.lock_from))
        .bind(steps.to_string())
        .bind(policy.disable_after.map(i64::from))
        .fetch_all(&store.writer)
        .await?;
    let Some(row) = rows.first() else {
        // Refused while the row vanished (an unlock by another process in between): as found.
        return Ok(Reservation::Refused(AttemptState::default()));
    };
    let failures: i64 = row.try_get(1)?;
    let state = AttemptState {
        failures: u32::try_from(failures).unwrap_or(u32::MAX),
        locked_until: row.try_get(2)?,
        disabled: row.try_get(3)?,
    };
    let admitted: bool = row.try_get(0)?;
    Ok(if admitted {
        Reservation::Admitted(state)
    } else {
        Reservation::Refused(state)
    })
}

/// The writes of `Store::insert_otp` after its credential check, as one string: sqlx's SQLite
/// driver runs every statement of a string in one command to the connection's thread, binding `$N`
/// in each to the same arguments. One hand-off instead of five, each of which woke a thread on a
/// core that is hashing (docs/benchmark.md). The statements and their order are those of
/// PostgreSQL's `otpd_issue_otp` (migrations/postgres/0020) and of `write_steps::insert_otp`
/// (which login OTPs use): the counter reset (`$2` NULL: none), the user's dead OTPs, the account
/// OTPs over the cap, the insert, its audit row.
const ISSUE_WRITES: &str = "
    DELETE FROM attempts WHERE sub = $1 AND factor = $2;
    DELETE FROM otps WHERE sub = $1 AND (expires_at <= $3 OR used_at IS NOT NULL);
    DELETE FROM otps WHERE sub = $1 AND kind = 'account' AND id NOT IN
      (SELECT id FROM otps WHERE sub = $1 AND kind = 'account' ORDER BY id DESC LIMIT $4);
    INSERT INTO otps (sub, digest, created_at, expires_at, kind) VALUES ($1, $5, $3, $6, 'account');
    INSERT INTO audit_events (sub, at, event, detail) VALUES ($1, $3, $7, $8);";

/// `Store::insert_otp` on SQLite: the credential check, then [`ISSUE_WRITES`].
async fn issue_otp(
    store: &SqliteStore,
    sub: &Subject,
    otp: &NewOtp<'_>,
) -> Result<OtpInsert, StoreError> {
    let mut tx = store.writer.begin_with("BEGIN IMMEDIATE").await?;
    if let Some(factor) = otp.requires
        && !write_steps::factor_set(&mut tx, sub, factor).await?
    {
        tx.rollback().await?;
        return Ok(OtpInsert::CredentialGone);
    }
    let written = sqlx::query(ISSUE_WRITES)
        .bind(sub.as_str())
        .bind(otp.reset_attempts.map(GuardedFactor::as_str))
        .bind(otp.created_at)
        .bind(i64::from(otp.max_live.saturating_sub(1)))
        .bind(otp.digest)
        .bind(otp.expires_at)
        .bind(AuditEvent::OtpIssued.as_str())
        .bind(otp.audit_detail)
        .execute(&mut *tx)
        .await;
    match written {
        Ok(_) => {}
        // The code's digest is taken: dropping the transaction undoes the statements before.
        Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
            return Ok(OtpInsert::DigestTaken);
        }
        Err(e) => return Err(e.into()),
    }
    tx.commit().await?;
    Ok(OtpInsert::Inserted)
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
