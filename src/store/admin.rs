//! What support staff and the identity provider's hooks ask of the store (the admin API and the
//! operator commands): device summaries, revoking one device, erasing a user on someone else's
//! word, and reading the audit trail a page at a time. Expanded per backend like `sql.rs`.

use super::{AuditRecord, Millis, StoreError};
use crate::domain::Subject;
use async_trait::async_trait;

/// A device TOTP as support may see it: which one and since when, never its secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceSummary {
    pub device_id: String,
    pub created_at: Millis,
}

#[async_trait]
pub trait AdminStore: Send + Sync {
    /// The user's devices, oldest first.
    async fn device_summaries(&self, sub: &Subject) -> Result<Vec<DeviceSummary>, StoreError>;

    /// Deletes one device TOTP, with its audit row in the same transaction. Returns whether it was
    /// there (nothing is written when it was not).
    async fn revoke_device(
        &self,
        sub: &Subject,
        device_id: &str,
        detail: &str,
        now: Millis,
    ) -> Result<bool, StoreError>;

    /// Erases every credential record of the user as `DELETE /user` does (the same statements,
    /// under the same per-user lock), without an OTP, with a `user.deleted` row saying who asked.
    async fn erase_user_for(
        &self,
        sub: &Subject,
        detail: &str,
        now: Millis,
    ) -> Result<(), StoreError>;

    /// At most `limit` of the user's audit events with an id greater than `after`, oldest first.
    async fn audit_page(
        &self,
        sub: &Subject,
        after: Option<i64>,
        limit: u32,
    ) -> Result<Vec<AuditRecord>, StoreError>;
}

/// `impl_admin_store!(Type)`: implements `AdminStore` for a backend that has already expanded
/// `impl_store!` (whose `begin_write`, `lock_user`, `erase_user` and `insert_audit` it uses).
macro_rules! impl_admin_store {
    ($store:ident) => {
        mod admin_sql {
            use super::write_steps::{erase_user, insert_audit, lock_user};
            use super::$store;
            use sqlx::Row;
            use $crate::domain::{AuditEvent, Subject};
            use $crate::store::{AuditRecord, DeviceSummary, Millis, StoreError};

            #[async_trait::async_trait]
            impl $crate::store::AdminStore for $store {
                async fn device_summaries(
                    &self,
                    sub: &Subject,
                ) -> Result<Vec<DeviceSummary>, StoreError> {
                    let rows = sqlx::query(
                        "SELECT device_id, created_at FROM device_totps WHERE sub = $1
                         ORDER BY created_at, device_id",
                    )
                    .bind(sub.as_str())
                    .fetch_all(&self.pool)
                    .await?;
                    rows.iter()
                        .map(|row| {
                            Ok(DeviceSummary {
                                device_id: row.try_get(0)?,
                                created_at: row.try_get(1)?,
                            })
                        })
                        .collect()
                }

                async fn revoke_device(
                    &self,
                    sub: &Subject,
                    device_id: &str,
                    detail: &str,
                    now: Millis,
                ) -> Result<bool, StoreError> {
                    let mut tx = self.begin_write().await?;
                    lock_user(&mut tx, sub).await?;
                    let done =
                        sqlx::query("DELETE FROM device_totps WHERE sub = $1 AND device_id = $2")
                            .bind(sub.as_str())
                            .bind(device_id)
                            .execute(&mut *tx)
                            .await?;
                    if done.rows_affected() == 0 {
                        tx.rollback().await?;
                        return Ok(false);
                    }
                    let detail = format!("device={device_id} {detail}");
                    insert_audit(&mut tx, sub, AuditEvent::DeviceTotpRevoked, &detail, now).await?;
                    tx.commit().await?;
                    Ok(true)
                }

                async fn erase_user_for(
                    &self,
                    sub: &Subject,
                    detail: &str,
                    now: Millis,
                ) -> Result<(), StoreError> {
                    let mut tx = self.begin_write().await?;
                    lock_user(&mut tx, sub).await?;
                    erase_user(&mut tx, sub).await?;
                    insert_audit(&mut tx, sub, AuditEvent::UserDeleted, detail, now).await?;
                    tx.commit().await?;
                    Ok(())
                }

                async fn audit_page(
                    &self,
                    sub: &Subject,
                    after: Option<i64>,
                    limit: u32,
                ) -> Result<Vec<AuditRecord>, StoreError> {
                    let rows = sqlx::query_as::<_, AuditRecord>(
                        "SELECT id, at, event, detail FROM audit_events
                         WHERE sub = $1 AND id > $2 ORDER BY id LIMIT $3",
                    )
                    .bind(sub.as_str())
                    .bind(after.unwrap_or(0))
                    .bind(i64::from(limit))
                    .fetch_all(&self.pool)
                    .await?;
                    Ok(rows)
                }
            }
        }
    };
}

pub(crate) use impl_admin_store;
