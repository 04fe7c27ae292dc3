//! Persistence: the only place with SQL. One `Store` trait of unit-of-work methods, one
//! implementation per backend. Every state change that matters is a single statement or a single
//! transaction, and its audit row is written in the same transaction.

mod admin;
mod attempts;
pub mod backup;
pub mod copy;
mod group_commit;
mod issue_call;
pub mod keys;
pub mod password_links;
pub mod phone;
pub mod postgres;
mod redeem_call;
pub(crate) mod retention;
pub mod sessions;
mod sql;
pub mod sqlite;
mod write_steps;

use crate::domain::{AuditEvent, Factor, GuardedFactor, Subject};
pub use admin::{AdminStore, DeviceSummary};
use async_trait::async_trait;
pub use attempts::{AttemptStore, CountedRedemption, FailedAttempt, Reservation};
pub use keys::{HashRow, ImportOutcome, ImportRow, KeyStore, Reseal};
pub use password_links::{Erased, LinkUse, LinkUsed, NewLink, PasswordLinkStore, StoredLink};
pub use phone::{NewPhoneCode, PhoneStore, SmsLimits, SmsQuota, StoredPhone};
pub use retention::{PruneKind, RetentionLease, RetentionStore};
pub use sessions::{NewSession, SessionCreated, SessionPassed, SessionStore};

/// Milliseconds since the Unix epoch: the one time representation in every backend.
pub type Millis = i64;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database could not be reached or is too busy to answer in time: retrying later may work.
    #[error("database unavailable: {0}")]
    Unavailable(#[source] sqlx::Error),
    #[error("database error: {0}")]
    Other(#[source] sqlx::Error),
    #[error("migration failed: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
}

impl StoreError {
    /// The same kind of error for another caller of a failed group commit (sqlx errors are not
    /// `Clone`): transient stays transient.
    fn duplicate(&self) -> Self {
        let again = sqlx::Error::Protocol(self.to_string());
        match self {
            StoreError::Unavailable(_) => StoreError::Unavailable(again),
            _ => StoreError::Other(again),
        }
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        if is_transient(&e) {
            StoreError::Unavailable(e)
        } else {
            StoreError::Other(e)
        }
    }
}

/// Errors after which the same request may well succeed later: the database is unreachable,
/// restarting, overloaded, or the request lost a lock race. They become 503 + `Retry-After`;
/// everything else is a bug or a broken schema and becomes 500.
fn is_transient(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => {
            if let Some(pg) = db.try_downcast_ref::<sqlx::postgres::PgDatabaseError>() {
                let code = pg.code();
                // 08: connection exception; 53: insufficient resources (too many connections);
                // 57P0x: server shutting down or restarting; 40001/40P01: serialization or deadlock.
                code.starts_with("08")
                    || code.starts_with("53")
                    || code.starts_with("57P0")
                    || code == "40001"
                    || code == "40P01"
            } else {
                // SQLite reports extended result codes; the low byte is the primary one.
                // 5 BUSY and 6 LOCKED (after busy_timeout), 10 IOERR, 14 CANTOPEN.
                let primary = db
                    .code()
                    .and_then(|c| c.parse::<i32>().ok())
                    .map(|c| c & 0xff);
                matches!(primary, Some(5 | 6 | 10 | 14))
            }
        }
        _ => false,
    }
}

/// Which database, and how its pool behaves. No `Debug`: the URL may carry a password (the
/// configuration's description redacts it).
#[derive(Clone)]
pub struct StoreSettings {
    /// `sqlite:…`, `postgres://…` or `postgresql://…`.
    pub url: String,
    pub pool: PoolSettings,
}

/// Connection-pool settings, the same for both backends (`database_*` settings).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolSettings {
    /// Connections this process keeps at most. With N replicas on one PostgreSQL server, N times
    /// this must stay below the server's `max_connections`.
    pub max_connections: u32,
    /// How long a request waits for a connection, connecting included, before it fails with
    /// `Unavailable`. Short, so an unreachable database means a quick 503, not a hung request.
    pub acquire_timeout: std::time::Duration,
}

impl Default for PoolSettings {
    fn default() -> Self {
        Self {
            max_connections: 10,
            acquire_timeout: std::time::Duration::from_secs(2),
        }
    }
}

/// The PHC strings a user has stored, if any.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct StoredCredentials {
    pub password_hash: Option<String>,
    pub pin_hash: Option<String>,
}

impl StoredCredentials {
    pub fn hash(&self, factor: Factor) -> Option<&str> {
        match factor {
            Factor::Password => self.password_hash.as_deref(),
            Factor::Pin => self.pin_hash.as_deref(),
        }
    }
}

/// A new account OTP, already reduced to its digest.
#[derive(Debug, Clone)]
pub struct NewOtp<'a> {
    pub digest: &'a [u8],
    pub created_at: Millis,
    pub expires_at: Millis,
    /// Live OTPs the user may hold after this insert; older ones are deleted.
    pub max_live: u32,
    /// What the audit row says about how the OTP was earned (e.g. `factor=pin`).
    pub audit_detail: &'a str,
    /// The check that earned this OTP succeeded: that factor's attempt counter starts over in the
    /// same transaction (one write after the hash instead of two).
    pub reset_attempts: Option<GuardedFactor>,
    /// The factor that earned the OTP, which must still be set when it is stored: a PIN checked
    /// just before a concurrent `DELETE /user` must not leave an OTP behind. `None` for mail.
    pub requires: Option<Factor>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OtpInsert {
    Inserted,
    /// Another live or retired OTP already has this digest: draw a new code.
    DigestTaken,
    /// The factor in `requires` is no longer set (erased or replaced meanwhile): nothing stored.
    CredentialGone,
}

/// The answer to "may this user be sent one more mail now?".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MailQuota {
    /// Counted: the mail may go out.
    Granted,
    /// The window is full until `window_ends`.
    Exhausted { window_ends: Millis },
}

/// Read with `query_as`: the columns `id, at, event, detail` by name.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct AuditRecord {
    /// Ascending in the order events were written: the cursor of the admin API's audit pages.
    pub id: i64,
    pub at: Millis,
    pub event: String,
    pub detail: String,
}

/// Connections of the pool, for the metrics scrape.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PoolUsage {
    pub idle: u32,
    pub in_use: u32,
    pub max: u32,
}

impl PoolUsage {
    fn of<DB: sqlx::Database>(pool: &sqlx::Pool<DB>) -> Self {
        let idle = u32::try_from(pool.num_idle()).unwrap_or(u32::MAX);
        Self {
            idle,
            in_use: pool.size().saturating_sub(idle),
            max: pool.options().get_max_connections(),
        }
    }
}

impl std::ops::Add for PoolUsage {
    type Output = Self;
    fn add(self, o: Self) -> Self {
        Self {
            idle: self.idle + o.idle,
            in_use: self.in_use + o.in_use,
            max: self.max + o.max,
        }
    }
}

/// A device TOTP as stored: the secret only as ciphertext.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredDevice {
    pub device_id: String,
    pub secret_ct: Vec<u8>,
    pub algorithm: String,
    pub digits: i64,
    pub period_secs: i64,
    /// The TOTP key that sealed `secret_ct`; `None` for secrets sealed before key ids existed.
    pub key_id: Option<String>,
    /// Changes whenever the secret itself is replaced, never when it is only sealed anew under
    /// another key. Ignored when saving (the store keeps it).
    pub secret_gen: i64,
}

/// What one redemption may consume, all candidates of the same code: an account OTP with one of
/// these digests (one per loaded pepper: an OTP issued by a replica whose current pepper differs
/// from ours still redeems here), else the first device step that is newer than the device's last
/// accepted step.
#[derive(Debug, Clone, Default)]
pub struct Redemption {
    /// Consumed only as account OTPs (`kind = 'account'`).
    pub account_digests: Vec<[u8; 32]>,
    /// Consumed only as login OTPs (`kind = 'login'`): named by `types: ["login"]` alone.
    pub login_digests: Vec<[u8; 32]>,
    /// `(device, step)` pairs whose code matched, oldest step first. The secret generation is
    /// part of the condition, so a step computed from a secret replaced meanwhile consumes
    /// nothing, while a secret merely sealed anew (`otpd keys reencrypt-totp`) still redeems.
    pub device_steps: Vec<(StoredDevice, i64)>,
}

impl Redemption {
    /// The OTP digests with the `kind` they may consume and what consuming one redeems: every
    /// consuming statement filters by kind, so a login OTP never answers to an account digest.
    pub(crate) fn digests_by_kind(&self) -> [(&[[u8; 32]], &'static str, Redeemed); 2] {
        [
            (&self.account_digests, "account", Redeemed::Account),
            (&self.login_digests, "login", Redeemed::Login),
        ]
    }
}

/// What was consumed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Redeemed {
    Account,
    Login,
    Device(String),
}

impl Redeemed {
    pub fn audit_detail(&self) -> String {
        match self {
            Redeemed::Account => "type=account".to_owned(),
            Redeemed::Login => "type=login".to_owned(),
            Redeemed::Device(id) => format!("type=device-totp device={id}"),
        }
    }
}

/// The change that happens in the same transaction as the redemption, or not at all.
#[derive(Debug, Clone)]
pub enum FollowUp<'a> {
    Nothing,
    SetPin {
        phc: &'a str,
    },
    SaveDevice(&'a StoredDevice),
    /// Erase every credential record of the user (the audit rows stay).
    EraseUser,
}

impl AuditRecord {
    /// One line of `otpd audit`: `2026-11-25T20:31:00.123Z  otp.issued  factor=pin`, or a JSON
    /// object with `at`, `event` and `detail`.
    pub fn to_line(&self, json: bool) -> String {
        let at = crate::clock::rfc3339_millis(self.at);
        if json {
            serde_json::json!({"at": at, "event": self.event, "detail": self.detail}).to_string()
        } else {
            format!("{at:<24}  {:<20}  {}", self.event, self.detail)
                .trim_end()
                .to_owned()
        }
    }
}

#[async_trait]
pub trait Store:
    AttemptStore
    + RetentionStore
    + AdminStore
    + PasswordLinkStore
    + KeyStore
    + SessionStore
    + PhoneStore
    + Send
    + Sync
    + 'static
{
    /// Applies pending migrations.
    async fn migrate(&self) -> Result<(), StoreError>;

    /// How many pool connections are open and busy now.
    fn pool_usage(&self) -> PoolUsage;

    /// Succeeds when the database answers.
    async fn ping(&self) -> Result<(), StoreError>;

    async fn credentials(&self, sub: &Subject) -> Result<StoredCredentials, StoreError>;

    /// Sets or replaces a password or PIN hash, with its audit row.
    async fn set_credential(
        &self,
        sub: &Subject,
        factor: Factor,
        phc: &str,
        now: Millis,
    ) -> Result<(), StoreError>;

    /// Replaces `old` by `new` only if `old` is still the stored hash (a re-hash after a parameter
    /// change must never overwrite a credential set in the meantime). Returns whether it did.
    async fn upgrade_hash(
        &self,
        sub: &Subject,
        factor: Factor,
        old: &str,
        new: &str,
        now: Millis,
    ) -> Result<bool, StoreError>;

    /// Stores an OTP digest, retires expired/used/surplus OTPs of the user, writes the audit row.
    async fn insert_otp(&self, sub: &Subject, otp: NewOtp<'_>) -> Result<OtpInsert, StoreError>;

    /// Counts one mail for `sub` if fewer than `limit` were counted in the window of `window`
    /// milliseconds that started with the first of them; a window older than that starts anew.
    /// One conditional upsert, so parallel requests can never exceed `limit`.
    async fn reserve_mail(
        &self,
        sub: &Subject,
        now: Millis,
        window: Millis,
        limit: u32,
    ) -> Result<MailQuota, StoreError>;

    /// Deletes a live OTP by its digest (it was issued but could not be delivered), with an audit
    /// row. Returns whether it was there.
    async fn revoke_otp(
        &self,
        sub: &Subject,
        digest: &[u8],
        reason: &str,
        now: Millis,
    ) -> Result<bool, StoreError>;

    async fn record_audit(
        &self,
        sub: &Subject,
        event: AuditEvent,
        detail: &str,
        now: Millis,
    ) -> Result<(), StoreError>;

    /// The user's device TOTPs.
    async fn devices(&self, sub: &Subject) -> Result<Vec<StoredDevice>, StoreError>;

    /// Creates a device TOTP or replaces the secret of an existing device id (resetting its last
    /// accepted step), with its audit row. With `requires`, only while that factor (the proof
    /// just checked) is still set; answers whether the device was saved.
    async fn save_device(
        &self,
        sub: &Subject,
        device: &StoredDevice,
        audit_detail: &str,
        requires: Option<Factor>,
        now: Millis,
    ) -> Result<bool, StoreError>;

    /// Consumes one of the candidates by a conditional update and applies `then`, in one
    /// transaction with the audit rows. `None` (and nothing changed) when no candidate was still
    /// valid: unknown, expired, used, or a step not newer than the device's last one.
    async fn redeem(
        &self,
        sub: &Subject,
        candidates: &Redemption,
        then: FollowUp<'_>,
        now: Millis,
    ) -> Result<Option<Redeemed>, StoreError>;

    /// The user's audit events, oldest first.
    async fn audit_events(&self, sub: &Subject) -> Result<Vec<AuditRecord>, StoreError>;
}

/// Statements that differ only in the credential column. Spelled out rather than formatted so
/// every SQL string is a literal.
struct CredentialSql {
    upsert: &'static str,
    upgrade: &'static str,
    /// One row when the factor is set.
    is_set: &'static str,
}

fn credential_sql(factor: Factor) -> CredentialSql {
    match factor {
        Factor::Password => CredentialSql {
            upsert: "INSERT INTO users (sub, password_hash, created_at, updated_at) VALUES ($1, $2, $3, $3)
                     ON CONFLICT (sub) DO UPDATE SET password_hash = excluded.password_hash, updated_at = excluded.updated_at",
            upgrade: "UPDATE users SET password_hash = $1, updated_at = $2 WHERE sub = $3 AND password_hash = $4",
            is_set: "SELECT 1 FROM users WHERE sub = $1 AND password_hash IS NOT NULL",
        },
        Factor::Pin => CredentialSql {
            upsert: "INSERT INTO users (sub, pin_hash, created_at, updated_at) VALUES ($1, $2, $3, $3)
                     ON CONFLICT (sub) DO UPDATE SET pin_hash = excluded.pin_hash, updated_at = excluded.updated_at",
            upgrade: "UPDATE users SET pin_hash = $1, updated_at = $2 WHERE sub = $3 AND pin_hash = $4",
            is_set: "SELECT 1 FROM users WHERE sub = $1 AND pin_hash IS NOT NULL",
        },
    }
}

fn set_event(factor: Factor) -> AuditEvent {
    match factor {
        Factor::Password => AuditEvent::PasswordSet,
        Factor::Pin => AuditEvent::PinSet,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audit_lines_have_fixed_width_columns() {
        let line = |at: Millis, event: &str| {
            AuditRecord {
                id: 1,
                at,
                event: event.to_owned(),
                detail: "factor=pin".to_owned(),
            }
            .to_line(false)
        };
        let lines = [
            line(1_764_102_660_000, "otp.issued"),
            line(1_764_102_660_100, "device-totp.created"),
            line(1_764_102_660_123, "pin.set"),
        ];
        assert_eq!(
            lines[0],
            format!("2025-11-25T20:31:00.000Z  {:<20}  factor=pin", "otp.issued")
        );
        assert!(lines[1].starts_with("2025-11-25T20:31:00.100Z  device-totp.created "));
        for l in &lines {
            assert_eq!(l.find("factor="), Some(48), "{l}");
        }
    }

    #[test]
    fn unreachable_or_busy_databases_are_unavailable_and_other_errors_are_not() {
        for e in [
            sqlx::Error::PoolTimedOut,
            sqlx::Error::PoolClosed,
            sqlx::Error::Io(std::io::Error::from(std::io::ErrorKind::ConnectionRefused)),
            sqlx::Error::Io(std::io::Error::from(std::io::ErrorKind::UnexpectedEof)),
        ] {
            assert!(matches!(StoreError::from(e), StoreError::Unavailable(_)));
        }
        for e in [
            sqlx::Error::RowNotFound,
            sqlx::Error::ColumnNotFound("x".into()),
            sqlx::Error::Protocol("garbled".into()),
        ] {
            assert!(matches!(StoreError::from(e), StoreError::Other(_)));
        }
    }
}
