//! The retention settings (`audit_retention_days`, `retention_interval_seconds`): how long audit
//! events are kept and how often this replica runs the job.

use super::{ConfigError, Lines, Source};
use crate::service::RetentionSettings;
use std::time::Duration;

impl RetentionSettings {
    pub(super) fn from_source(src: &Source) -> Result<Self, ConfigError> {
        Ok(Self {
            audit_days: src.in_range("audit_retention_days", 400u32, 0..=36_500)?,
            interval: Duration::from_secs(src.in_range(
                "retention_interval_seconds",
                60u64,
                0..=86_400,
            )?),
            ..Self::default()
        })
    }

    pub(super) fn describe(&self, out: &mut Lines) {
        out.extend([
            ("audit_retention_days", self.audit_days.to_string()),
            (
                "retention_interval_seconds",
                self.interval.as_secs().to_string(),
            ),
        ]);
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{assert_refused, load};

    #[test]
    fn audit_retention_defaults_to_400_days_and_zero_keeps_forever() {
        assert_eq!(load(&[]).unwrap().retention.audit_days, 400);
        let c = load(&[("OTPD_AUDIT_RETENTION_DAYS", "0")]).unwrap();
        assert_eq!(c.retention.audit_days, 0);
        assert_refused(&[("OTPD_AUDIT_RETENTION_DAYS", "-1", "audit_retention_days")]);
    }

    #[test]
    fn the_job_runs_every_minute_by_default_and_zero_turns_it_off_on_this_replica() {
        let c = load(&[]).unwrap();
        assert_eq!(c.retention.interval.as_secs(), 60);
        let c = load(&[("OTPD_RETENTION_INTERVAL_SECONDS", "0")]).unwrap();
        assert!(c.retention.interval.is_zero());
        assert_refused(&[(
            "OTPD_RETENTION_INTERVAL_SECONDS",
            "86401",
            "retention_interval_seconds",
        )]);
    }
}
