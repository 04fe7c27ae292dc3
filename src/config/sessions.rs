//! The login-session setting (`session_ttl_seconds`): how long a session of
//! `PUT /sessions/{sessionId}` is known (docs/sessions.md).

use super::{ConfigError, Lines, Source};
use crate::domain::SessionTtl;
use std::time::Duration;

impl SessionTtl {
    pub(super) fn from_source(src: &Source) -> Result<Self, ConfigError> {
        Ok(Self(Duration::from_secs(src.in_range(
            "session_ttl_seconds",
            86_400u64,
            300..=30 * 86_400,
        )?)))
    }

    pub(super) fn describe(&self, out: &mut Lines) {
        out.push(("session_ttl_seconds", self.0.as_secs().to_string()));
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{assert_refused, load};

    #[test]
    fn sessions_live_a_day_by_default_and_between_five_minutes_and_thirty_days() {
        assert_eq!(load(&[]).unwrap().sessions.0.as_secs(), 86_400);
        let c = load(&[("OTPD_SESSION_TTL_SECONDS", "3600")]).unwrap();
        assert_eq!(c.sessions.0.as_secs(), 3600);
        assert_refused(&[("OTPD_SESSION_TTL_SECONDS", "299", "session_ttl_seconds")]);
        assert_refused(&[("OTPD_SESSION_TTL_SECONDS", "2592001", "session_ttl_seconds")]);
    }
}
