//! Databases for tests: a SQLite file per app, or a database of its own on the PostgreSQL server
//! named by `OTPD_TEST_DATABASE_URL`; and direct SQL for the few checks the store has no method
//! for (tests only: the app itself never bypasses the store).

pub fn unique_name(prefix: &str) -> String {
    format!("{prefix}_{}", xid::new())
}

/// The PostgreSQL server of this run, if the suite runs against one.
pub fn postgres_server() -> Option<String> {
    std::env::var("OTPD_TEST_DATABASE_URL")
        .ok()
        .filter(|u| u.starts_with("postgres"))
}

/// A fresh database URL: a SQLite file in `dir`, or a new PostgreSQL database when
/// `OTPD_TEST_DATABASE_URL` points at a server.
pub async fn fresh_database_url(dir: &std::path::Path) -> String {
    match postgres_server() {
        Some(base) => {
            use sqlx::Connection;
            // scripts/test.sh gives each run its own prefix, so it drops only what it created.
            let prefix =
                std::env::var("OTPD_TEST_DB_PREFIX").unwrap_or_else(|_| "otpd_t".to_owned());
            let name = unique_name(&prefix);
            let mut conn = sqlx::PgConnection::connect(&base)
                .await
                .expect("test PostgreSQL reachable");
            sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                .execute(&mut conn)
                .await
                .unwrap();
            let (prefix, _) = base.rsplit_once('/').expect("URL with a database name");
            format!("{prefix}/{name}")
        }
        None => format!("sqlite://{}/otpd.db", dir.display()),
    }
}

pub fn is_sqlite(url: &str) -> bool {
    url.starts_with("sqlite:")
}

/// The bytes of a test app's SQLite files (`otpd.db` and its WAL) in `dir`, to search for what
/// must never be stored.
pub fn sqlite_file_bytes(dir: &std::path::Path) -> Vec<u8> {
    let mut bytes = vec![];
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.starts_with("otpd.db") {
            bytes.extend(std::fs::read(path).unwrap());
        }
    }
    assert!(
        bytes.len() > 1000,
        "database files found in {}",
        dir.display()
    );
    bytes
}

/// Runs `$body` with `$pool` bound to a short-lived pool of the backend `$url` names, so one
/// piece of test SQL (`$1` placeholders run on both) serves SQLite and PostgreSQL.
macro_rules! on_database {
    ($url:expr, |$pool:ident| $body:expr) => {{
        let url: &str = $url;
        if $crate::support::is_sqlite(url) {
            let $pool = sqlx::SqlitePool::connect(url).await.unwrap();
            let out = $body;
            $pool.close().await;
            out
        } else {
            let $pool = sqlx::PgPool::connect(url).await.unwrap();
            let out = $body;
            $pool.close().await;
            out
        }
    }};
}
pub(crate) use on_database;

/// Runs one `SELECT COUNT(*)`-style query (first column, i64) with one text parameter.
pub async fn scalar(url: &str, sql: &str, bind: &str) -> i64 {
    let sql = sqlx::AssertSqlSafe(sql.to_owned());
    on_database!(url, |pool| sqlx::query_scalar(sql)
        .bind(bind)
        .fetch_one(&pool)
        .await
        .unwrap())
}

/// Unused OTP rows with this digest (0 or 1).
pub async fn count_live_digest(url: &str, digest: &[u8]) -> i64 {
    let sql = "SELECT COUNT(*) FROM otps WHERE digest = $1 AND used_at IS NULL";
    on_database!(url, |pool| sqlx::query_scalar(sql)
        .bind(digest)
        .fetch_one(&pool)
        .await
        .unwrap())
}

/// The digests of the user's unused OTPs, oldest first.
pub async fn stored_otp_digests(url: &str, sub: &str) -> Vec<Vec<u8>> {
    let sql = "SELECT digest FROM otps WHERE sub = $1 AND used_at IS NULL ORDER BY id";
    on_database!(url, |pool| sqlx::query_scalar(sql)
        .bind(sub)
        .fetch_all(&pool)
        .await
        .unwrap())
}

/// Everything a test app stored, to search for what must never be: the bytes of its SQLite
/// files in `dir`, or every row of its PostgreSQL database as JSON.
pub async fn stored_bytes(url: &str, dir: &std::path::Path) -> Vec<u8> {
    if is_sqlite(url) {
        return sqlite_file_bytes(dir);
    }
    let pool = sqlx::PgPool::connect(url).await.unwrap();
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT table_name::text FROM information_schema.tables WHERE table_schema = 'public'",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    let mut text = String::new();
    for table in tables {
        let sql = format!("SELECT row_to_json(t)::text FROM \"{table}\" t");
        let rows: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .fetch_all(&pool)
            .await
            .unwrap();
        text.extend(rows.iter().map(|r| format!("{table} {r}\n")));
    }
    pool.close().await;
    text.into_bytes()
}

/// Runs one statement with one text parameter; returns the rows it changed.
pub async fn execute(url: &str, sql: &str, bind: &str) -> u64 {
    let sql = sqlx::AssertSqlSafe(sql.to_owned());
    on_database!(url, |pool| sqlx::query(sql)
        .bind(bind)
        .execute(&pool)
        .await
        .unwrap()
        .rows_affected())
}

/// The schema as text lines (tables, columns, indexes) and the applied migrations with the time
/// each was applied: equal snapshots mean nothing was created, dropped or re-applied in between.
pub async fn schema_snapshot(url: &str) -> Vec<String> {
    let sql = if is_sqlite(url) {
        "SELECT type || ' ' || name || ' ' || COALESCE(sql, '') FROM sqlite_master
          UNION ALL SELECT 'migration ' || CAST(version AS TEXT) || ' ' || CAST(installed_on AS TEXT)
          FROM _sqlx_migrations ORDER BY 1"
    } else {
        "SELECT table_name || '.' || column_name || ' ' || data_type || ' ' || is_nullable
           FROM information_schema.columns WHERE table_schema = 'public'
          UNION ALL SELECT indexname || ' ' || indexdef FROM pg_indexes WHERE schemaname = 'public'
          UNION ALL SELECT 'migration ' || CAST(version AS TEXT) || ' ' || CAST(installed_on AS TEXT)
          FROM _sqlx_migrations ORDER BY 1"
    };
    on_database!(url, |pool| sqlx::query_scalar(sql)
        .fetch_all(&pool)
        .await
        .unwrap())
}
