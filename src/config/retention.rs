//! The retention settings (`audit_retention_days`): how long audit events are kept.

use super::{ConfigError, Lines, Source};
use crate::service::RetentionSettings;

impl RetentionSettings {
    pub(super) fn from_source(src: &Source) -> Result<Self, ConfigError> {
        Ok(Self {
            audit_days: src.in_range("audit_retention_days", 400u32, 0..=36_500)?,
            ..Self::default()
        })
    }

    pub(super) fn describe(&self, out: &mut Lines) {
        out.extend([("audit_retention_days", self.audit_days.to_string())]);
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
}
