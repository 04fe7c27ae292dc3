//! `otpd copy-data`: moves a SQLite deployment's data into an empty PostgreSQL database.
//!
//! Table by table and column by column, as both catalogs describe them, so tables added by later
//! migrations are copied without touching this code. Both databases are first migrated to the same
//! version; the source is read in one snapshot, the target written in one transaction (all or
//! nothing), and identity sequences are moved past the copied ids.

use super::postgres::PgStore;
use super::sqlite::SqliteStore;
use super::{PoolSettings, Store, StoreError};
use sqlx::{AssertSqlSafe, Connection, Row};
use std::str::FromStr;

#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot open the source database: {0}")]
    SourceMissing(String),
    #[error("the two databases differ: {0}")]
    SchemaMismatch(String),
    #[error("table `{0}` in the target already holds rows; copy only into an empty database")]
    TargetNotEmpty(String),
    #[error("column `{table}.{column}` has type `{ty}`, which copy-data does not know")]
    UnknownType {
        table: String,
        column: String,
        ty: String,
    },
}

impl From<sqlx::Error> for CopyError {
    fn from(e: sqlx::Error) -> Self {
        CopyError::Store(e.into())
    }
}

/// Rows copied per table, in copy order.
pub type CopyReport = Vec<(String, u64)>;

struct Column {
    name: String,
    kind: Kind,
    identity: bool,
}

#[derive(Clone, Copy)]
enum Kind {
    Int,
    Text,
    Bytes,
    Bool,
    Float,
}

/// Double-quoted identifier; catalog names never contain quotes, but be safe anyway.
fn quoted(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

pub async fn sqlite_to_postgres(
    from: &str,
    to: &str,
    pool: PoolSettings,
) -> Result<CopyReport, CopyError> {
    // Never create an empty source by mistyping its path.
    let must_exist = sqlx::sqlite::SqliteConnectOptions::from_str(from)?.create_if_missing(false);
    sqlx::SqliteConnection::connect_with(&must_exist)
        .await
        .map_err(|e| CopyError::SourceMissing(e.to_string()))?
        .close()
        .await?;
    let source = SqliteStore::connect(from, pool).await?;
    source.migrate().await?;
    let target = PgStore::connect(to, pool).await?;
    target.migrate().await?;

    let versions = "SELECT version FROM _sqlx_migrations WHERE success ORDER BY version";
    let from_versions: Vec<i64> = sqlx::query_scalar(versions).fetch_all(&source.pool).await?;
    let to_versions: Vec<i64> = sqlx::query_scalar(versions).fetch_all(&target.pool).await?;
    if from_versions != to_versions {
        return Err(CopyError::SchemaMismatch(format!(
            "migrations {from_versions:?} vs {to_versions:?}"
        )));
    }

    // One read transaction: a consistent snapshot even if a server still writes to the file.
    let mut src = source.pool.begin().await?;
    let mut dst = target.pool.begin().await?;
    let mut tables: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'table'
           AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' AND name NOT LIKE '\\_sqlx%' ESCAPE '\\'",
    )
    .fetch_all(&mut *src)
    .await?;
    tables.sort();
    let mut target_tables: Vec<String> = sqlx::query_scalar(
        "SELECT table_name::text FROM information_schema.tables
          WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'
            AND table_name NOT LIKE '\\_sqlx%'",
    )
    .fetch_all(&mut *dst)
    .await?;
    target_tables.sort();
    if tables != target_tables {
        return Err(CopyError::SchemaMismatch(format!(
            "tables {tables:?} vs {target_tables:?}"
        )));
    }

    let mut report = Vec::new();
    for table in &tables {
        let columns = target_columns(&mut dst, table).await?;
        let mut source_columns: Vec<String> =
            sqlx::query_scalar("SELECT name FROM pragma_table_info($1)")
                .bind(table)
                .fetch_all(&mut *src)
                .await?;
        let mut names: Vec<String> = columns.iter().map(|c| c.name.clone()).collect();
        source_columns.sort();
        names.sort();
        if source_columns != names {
            return Err(CopyError::SchemaMismatch(format!(
                "columns of {table}: {source_columns:?} vs {names:?}"
            )));
        }
        let has_rows: bool = sqlx::query_scalar(AssertSqlSafe(format!(
            "SELECT EXISTS (SELECT 1 FROM {})",
            quoted(table)
        )))
        .fetch_one(&mut *dst)
        .await?;
        if has_rows {
            return Err(CopyError::TargetNotEmpty(table.clone()));
        }
        let copied = copy_table(&mut src, &mut dst, table, &columns).await?;
        report.push((table.clone(), copied));
    }
    dst.commit().await?;
    src.rollback().await?;
    Ok(report)
}

async fn target_columns(
    dst: &mut sqlx::PgConnection,
    table: &str,
) -> Result<Vec<Column>, CopyError> {
    let rows = sqlx::query(
        "SELECT column_name::text, data_type::text, is_identity::text FROM information_schema.columns
          WHERE table_schema = current_schema() AND table_name = $1 ORDER BY ordinal_position",
    )
    .bind(table)
    .fetch_all(dst)
    .await?;
    rows.iter()
        .map(|row| {
            let name: String = row.try_get(0)?;
            let ty: String = row.try_get(1)?;
            let identity: String = row.try_get(2)?;
            let kind = match ty.as_str() {
                "bigint" | "integer" | "smallint" => Kind::Int,
                "text" | "character varying" => Kind::Text,
                "bytea" => Kind::Bytes,
                "boolean" => Kind::Bool,
                "double precision" | "real" => Kind::Float,
                _ => {
                    return Err(CopyError::UnknownType {
                        table: table.to_owned(),
                        column: name,
                        ty,
                    });
                }
            };
            Ok(Column {
                name,
                kind,
                identity: identity == "YES",
            })
        })
        .collect()
}

async fn copy_table(
    src: &mut sqlx::SqliteConnection,
    dst: &mut sqlx::PgConnection,
    table: &str,
    columns: &[Column],
) -> Result<u64, CopyError> {
    let list = columns
        .iter()
        .map(|c| quoted(&c.name))
        .collect::<Vec<_>>()
        .join(", ");
    let params = (1..=columns.len())
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ");
    let overriding = if columns.iter().any(|c| c.identity) {
        " OVERRIDING SYSTEM VALUE"
    } else {
        ""
    };
    let insert = format!(
        "INSERT INTO {} ({list}){overriding} VALUES ({params})",
        quoted(table)
    );
    let rows = sqlx::query(AssertSqlSafe(format!(
        "SELECT {list} FROM {}",
        quoted(table)
    )))
    .fetch_all(&mut *src)
    .await?;
    for row in &rows {
        let mut query = sqlx::query(AssertSqlSafe(insert.clone()));
        for (i, column) in columns.iter().enumerate() {
            query = match column.kind {
                Kind::Int => query.bind(row.try_get::<Option<i64>, _>(i)?),
                Kind::Text => query.bind(row.try_get::<Option<String>, _>(i)?),
                Kind::Bytes => query.bind(row.try_get::<Option<Vec<u8>>, _>(i)?),
                Kind::Bool => query.bind(row.try_get::<Option<bool>, _>(i)?),
                Kind::Float => query.bind(row.try_get::<Option<f64>, _>(i)?),
            };
        }
        query.execute(&mut *dst).await?;
    }
    for column in columns.iter().filter(|c| c.identity) {
        // The next generated id follows the largest copied one.
        sqlx::query(AssertSqlSafe(format!(
            "SELECT setval(pg_get_serial_sequence($1, $2), COALESCE(MAX({col}), 0) + 1, false) FROM {tbl}",
            col = quoted(&column.name),
            tbl = quoted(table),
        )))
        .bind(table)
        .bind(&column.name)
        .execute(&mut *dst)
        .await?;
    }
    Ok(rows.len() as u64)
}
