//! The retention job: removes rows that stopped mattering (expired OTPs, stale attempt counters,
//! audit events past `audit_retention_days`, expired password links, expired login sessions) in
//! small batches, outside the request path, on one replica at a time. See docs/retention.md.

use super::clock::to_millis;
use super::{ServiceError, Services};
use crate::store::PruneKind;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// How much is kept and how the job paces itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetentionSettings {
    /// Audit events older than this many days are deleted; 0 keeps them forever.
    pub audit_days: u32,
    /// Time between two runs.
    pub interval: Duration,
    /// Rows per delete statement: small, so no statement holds a lock for long.
    pub batch: u32,
}

impl Default for RetentionSettings {
    fn default() -> Self {
        Self {
            audit_days: 400,
            interval: Duration::from_secs(60),
            batch: 500,
        }
    }
}

/// An OTP attempt counter untouched this long, with no lock in force, guards nothing any more.
const STALE_OTP_COUNTER: Duration = Duration::from_secs(24 * 3600);
/// How long an expired password link is kept: a click on it within this time still gets the page
/// that says it was used or expired, not an unknown-link answer.
const EXPIRED_LINK_GRACE: Duration = Duration::from_secs(7 * 24 * 3600);
/// Pause between batches, so request writes interleave with the job's.
const BETWEEN_BATCHES: Duration = Duration::from_millis(5);
/// At most this many batches of one kind per run: a backlog is worked off over several runs.
const MAX_BATCHES_PER_RUN: u32 = 200;

/// Rows deleted by one run, per kind; `None` when another replica held the job.
pub type PruneReport = Option<BTreeMap<&'static str, u64>>;

impl Services {
    /// One run of the retention job.
    pub async fn prune_once(&self) -> Result<PruneReport, ServiceError> {
        let Some(lease) = self.store.retention_lease().await? else {
            self.metrics.retention_run("skipped");
            return Ok(None);
        };
        let mut report = BTreeMap::new();
        for kind in PruneKind::ALL {
            let Some(cutoff) = self.cutoff(kind) else {
                continue;
            };
            let mut deleted = 0;
            for _ in 0..MAX_BATCHES_PER_RUN {
                let now = to_millis(self.clock.now());
                let n = self
                    .store
                    .prune(kind, cutoff, now, self.retention.batch)
                    .await?;
                deleted += n;
                self.metrics.retention_deleted(kind.as_str(), n);
                if n < u64::from(self.retention.batch) {
                    break;
                }
                tokio::time::sleep(BETWEEN_BATCHES).await;
            }
            report.insert(kind.as_str(), deleted);
        }
        lease.release().await;
        self.metrics.retention_run("ok");
        Ok(Some(report))
    }

    /// Rows of `kind` older than this (Unix ms) go; `None`: keep them all.
    fn cutoff(&self, kind: PruneKind) -> Option<i64> {
        let now = to_millis(self.clock.now());
        let ago =
            |d: Duration| now.saturating_sub(i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        match kind {
            PruneKind::ExpiredOtps => Some(now),
            PruneKind::StaleAttempts => Some(ago(STALE_OTP_COUNTER)),
            PruneKind::ExpiredPasswordLinks => Some(ago(EXPIRED_LINK_GRACE)),
            PruneKind::ExpiredSessions => Some(now),
            PruneKind::ExpiredPhoneCodes => Some(now),
            PruneKind::CancelledPhoneChanges | PruneKind::AbandonedPhoneNumbers => {
                Some(ago(super::phone::PHONE_CHANGE_LIFETIME))
            }
            PruneKind::OldSmsQuota => Some(ago(super::sms::SMS_WINDOW)),
            PruneKind::OldAuditEvents => (self.retention.audit_days > 0).then(|| {
                ago(Duration::from_secs(
                    u64::from(self.retention.audit_days) * 24 * 3600,
                ))
            }),
        }
    }

    /// Runs the job every `interval` until the process ends (an interval of zero: never). A failed
    /// run is logged and counted; the next one tries again.
    pub fn spawn_retention(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let services = Arc::clone(self);
        tokio::spawn(async move {
            if services.retention.interval.is_zero() {
                return;
            }
            let mut tick = tokio::time::interval(services.retention.interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                match services.prune_once().await {
                    Ok(Some(report)) if report.values().any(|n| *n > 0) => {
                        tracing::info!(?report, "retention: old rows removed");
                    }
                    Ok(_) => {}
                    Err(e) => {
                        services.metrics.retention_run("error");
                        tracing::warn!(error = %e, "retention run failed; retrying at the next interval");
                    }
                }
            }
        })
    }
}
