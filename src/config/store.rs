//! The database settings: which database (`database_url`) and how its pool behaves (`database_*`).

use super::{ConfigError, Lines, Source, invalid, redact_url_password};
use crate::store::{PoolSettings, StoreSettings};
use std::time::Duration;

impl StoreSettings {
    pub(super) fn from_source(src: &Source) -> Result<Self, ConfigError> {
        let url = src
            .get("database_url")
            .unwrap_or("sqlite://otpd.db")
            .to_owned();
        if !["sqlite:", "postgres://", "postgresql://"]
            .iter()
            .any(|p| url.starts_with(p))
        {
            return Err(invalid(
                "database_url",
                "must start with sqlite:, postgres:// or postgresql://",
            ));
        }
        let pool = PoolSettings {
            max_connections: src.in_range("database_max_connections", 10u32, 1..=1000)?,
            acquire_timeout: Duration::from_millis(src.in_range(
                "database_acquire_timeout_ms",
                2000u64,
                50..=60_000,
            )?),
        };
        Ok(Self { url, pool })
    }

    pub(super) fn describe(&self, out: &mut Lines) {
        out.extend([
            ("database_url", redact_url_password(&self.url)),
            (
                "database_max_connections",
                self.pool.max_connections.to_string(),
            ),
            (
                "database_acquire_timeout_ms",
                self.pool.acquire_timeout.as_millis().to_string(),
            ),
        ]);
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::assert_refused;

    #[test]
    fn a_bad_database_setting_names_itself() {
        assert_refused(&[
            ("OTPD_DATABASE_URL", "mysql://x", "database_url"),
            (
                "OTPD_DATABASE_MAX_CONNECTIONS",
                "0",
                "database_max_connections",
            ),
            (
                "OTPD_DATABASE_ACQUIRE_TIMEOUT_MS",
                "10",
                "database_acquire_timeout_ms",
            ),
        ]);
    }
}
