//! `otpd backup`: an online, consistent copy of the embedded SQLite database, verified by opening it.
//!
//! `VACUUM INTO` on a connection of its own: it reads one snapshot (a read transaction, which in
//! WAL mode never blocks the running service's writers) and writes it as a fresh, compact file.
//! Copying the database file instead would miss whatever still sits in the `-wal` file, or catch a
//! page half-written. The copy is flushed to disk, then opened read-only and checked
//! (`PRAGMA integrity_check`, and the same migrations as the source) before it is reported good.
//! PostgreSQL has its own tools for this (`pg_dump`; see docs/operations.md).

use super::StoreError;
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{AssertSqlSafe, ConnectOptions, Connection, Row, SqliteConnection};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("{0} already exists; a backup never overwrites a file (choose a new name)")]
    TargetExists(PathBuf),
    #[error("{0}: the backup path must be valid UTF-8")]
    TargetNotUtf8(PathBuf),
    #[error("cannot open the database to back up ({0}); is the database URL right?")]
    SourceUnavailable(#[source] sqlx::Error),
    #[error("the database has no migrations table: it is not an otpd database")]
    NotOtpd,
    #[error("writing the backup failed: {0}")]
    Write(String),
    #[error("the backup at {path} failed its check and was removed: {problem}")]
    Verification { path: PathBuf, problem: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for BackupError {
    fn from(e: sqlx::Error) -> Self {
        BackupError::Store(e.into())
    }
}

/// What a verified backup holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupReport {
    pub path: PathBuf,
    pub bytes: u64,
    /// The newest migration applied in the copy (the same as in the source).
    pub schema_version: i64,
    /// Rows per table, in name order.
    pub tables: Vec<(String, u64)>,
}

/// Copies the SQLite database named by `url` into the new file `to` while the service may keep
/// serving. `busy_timeout` bounds the wait for a lock (a checkpoint in progress).
pub async fn sqlite_online_backup(
    url: &str,
    to: &Path,
    busy_timeout: Duration,
) -> Result<BackupReport, BackupError> {
    if std::fs::symlink_metadata(to).is_ok() {
        return Err(BackupError::TargetExists(to.to_owned()));
    }
    let target = to
        .to_str()
        .ok_or_else(|| BackupError::TargetNotUtf8(to.to_owned()))?;
    // Never creates a database: a mistyped path must fail, not back up an empty new file.
    let source_options = SqliteConnectOptions::from_str(url)
        .map_err(BackupError::SourceUnavailable)?
        .create_if_missing(false)
        .busy_timeout(busy_timeout);
    let mut source = source_options
        .connect()
        .await
        .map_err(BackupError::SourceUnavailable)?;
    let migrations = applied_migrations(&mut source)
        .await
        .map_err(|_| BackupError::NotOtpd)?;
    // VACUUM INTO refuses an existing non-empty file itself, so a file created between our check
    // and now is not overwritten either.
    sqlx::query("VACUUM INTO $1")
        .bind(target)
        .execute(&mut source)
        .await
        .map_err(|e| BackupError::Write(e.to_string()))?;
    source.close().await?;
    sync_to_disk(to).map_err(|e| BackupError::Write(e.to_string()))?;
    match verify(to, &migrations).await {
        Ok(report) => Ok(report),
        Err(problem) => {
            let _ = std::fs::remove_file(to);
            Err(BackupError::Verification {
                path: to.to_owned(),
                problem,
            })
        }
    }
}

async fn applied_migrations(conn: &mut SqliteConnection) -> Result<Vec<i64>, sqlx::Error> {
    sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success ORDER BY version")
        .fetch_all(conn)
        .await
}

/// The file and its directory entry reach the disk before the backup is called done.
fn sync_to_disk(path: &Path) -> std::io::Result<()> {
    std::fs::File::open(path)?.sync_all()?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// Opens the copy read-only: the whole file checks out and it has the source's migrations.
async fn verify(path: &Path, expected_migrations: &[i64]) -> Result<BackupReport, String> {
    let mut conn = SqliteConnectOptions::new()
        .filename(path)
        .read_only(true)
        .connect()
        .await
        .map_err(|e| format!("cannot open it: {e}"))?;
    let integrity: Vec<String> = sqlx::query_scalar("PRAGMA integrity_check")
        .fetch_all(&mut conn)
        .await
        .map_err(|e| format!("integrity_check failed to run: {e}"))?;
    if integrity != ["ok"] {
        return Err(format!("integrity_check: {}", integrity.join("; ")));
    }
    let migrations = applied_migrations(&mut conn)
        .await
        .map_err(|e| format!("no migrations table: {e}"))?;
    if migrations != expected_migrations {
        return Err(format!(
            "migrations {migrations:?} differ from the source's {expected_migrations:?}"
        ));
    }
    let names: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'
         AND name <> '_sqlx_migrations' ORDER BY name",
    )
    .fetch_all(&mut conn)
    .await
    .map_err(|e| e.to_string())?;
    let mut tables = Vec::with_capacity(names.len());
    for name in names {
        let sql = format!("SELECT COUNT(*) FROM \"{}\"", name.replace('"', "\"\""));
        let row = sqlx::query(AssertSqlSafe(sql))
            .fetch_one(&mut conn)
            .await
            .map_err(|e| format!("reading table {name}: {e}"))?;
        let rows: i64 = row.try_get(0).map_err(|e| e.to_string())?;
        tables.push((name, u64::try_from(rows).unwrap_or(0)));
    }
    conn.close().await.map_err(|e| e.to_string())?;
    let bytes = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    Ok(BackupReport {
        path: path.to_owned(),
        bytes,
        schema_version: migrations.last().copied().unwrap_or(0),
        tables,
    })
}
