//! Support operations, shared by the admin API and the operator commands: show a user, unlock,
//! erase on the identity provider's word, revoke one device, read the audit trail a page at a time.
//!
//! Every change is audited in its own transaction with who asked ([`Actor`]); reads through the
//! admin API are audited too (before the data is read, so a read that cannot be audited fails).

use super::clock::to_millis;
use super::{ServiceError, Services};
use crate::domain::{Actor, AuditEvent, DeviceId, GuardedFactor, Subject};
use crate::store::{AuditRecord, Store};

/// Most audit events one page holds.
pub const MAX_AUDIT_PAGE: u32 = 200;
/// Audit events a page holds when the caller does not say.
pub const DEFAULT_AUDIT_PAGE: u32 = 50;

/// Which page of a user's audit trail: the events after the cursor `after` (an event id; none:
/// from the first), at most `size` of them (1..=[`MAX_AUDIT_PAGE`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuditPageRequest {
    pub after: Option<i64>,
    pub size: u32,
}

impl Default for AuditPageRequest {
    fn default() -> Self {
        Self {
            after: None,
            size: DEFAULT_AUDIT_PAGE,
        }
    }
}

/// One page, oldest first; `next` is the cursor of the following page when there is one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditPage {
    pub events: Vec<AuditRecord>,
    pub next: Option<i64>,
}

/// Reads one page. A free function over the store so that `otpd audit`, which needs no pepper,
/// pages exactly as the admin API does.
pub async fn read_audit_page(
    store: &dyn Store,
    sub: &Subject,
    request: AuditPageRequest,
) -> Result<AuditPage, ServiceError> {
    let size = request.size.clamp(1, MAX_AUDIT_PAGE);
    // One more than asked tells whether a next page exists without a second query.
    let mut events = store.audit_page(sub, request.after, size + 1).await?;
    let next = if events.len() > size as usize {
        events.truncate(size as usize);
        events.last().map(|e| e.id)
    } else {
        None
    };
    Ok(AuditPage { events, next })
}

impl Services {
    /// Writes the audit row of a read by `actor`, if reads by that kind of actor are audited.
    pub(super) async fn audit_read(
        &self,
        sub: &Subject,
        event: AuditEvent,
        actor: &Actor,
    ) -> Result<(), ServiceError> {
        if actor.audits_reads() {
            let now = to_millis(self.clock.now());
            self.store
                .record_audit(sub, event, &actor.audit_detail(), now)
                .await?;
        }
        Ok(())
    }

    /// A page of the user's audit trail, read on behalf of `actor`.
    pub async fn audit_page(
        &self,
        sub: &Subject,
        request: AuditPageRequest,
        actor: &Actor,
    ) -> Result<AuditPage, ServiceError> {
        self.audit_read(sub, AuditEvent::AdminAuditRead, actor)
            .await?;
        read_audit_page(self.store.as_ref(), sub, request).await
    }

    /// Clears the counters (locks, disabling) of `factors`, audited with who asked.
    pub async fn unlock(
        &self,
        sub: &Subject,
        factors: &[GuardedFactor],
        actor: &Actor,
    ) -> Result<(), ServiceError> {
        let now = to_millis(self.clock.now());
        self.store
            .unlock(sub, factors, &actor.audit_detail(), now)
            .await?;
        Ok(())
    }

    /// Revokes one device TOTP (a lost phone). `DeviceNotFound` when the user has no such device.
    pub async fn revoke_device(
        &self,
        sub: &Subject,
        device: &DeviceId,
        actor: &Actor,
    ) -> Result<(), ServiceError> {
        let now = to_millis(self.clock.now());
        let found = self
            .store
            .revoke_device(sub, device.as_str(), &actor.audit_detail(), now)
            .await?;
        if found {
            Ok(())
        } else {
            Err(ServiceError::DeviceNotFound)
        }
    }
}
