//! The shape of the secrets otpd hands out and accepts: account OTPs (`otp_digits`,
//! `otp_ttl_seconds`, `otp_max_live`) and PINs (`pin_length`).

use super::{ConfigError, Lines, Source};
use crate::domain::otp::{MAX_OTP_DIGITS, MAX_OTP_TTL, MIN_OTP_DIGITS};
use crate::domain::{OtpSettings, PinPolicy};
use std::time::Duration;

impl OtpSettings {
    pub(super) fn from_source(src: &Source) -> Result<Self, ConfigError> {
        Ok(Self {
            digits: src.in_range("otp_digits", 6u8, MIN_OTP_DIGITS..=MAX_OTP_DIGITS)?,
            ttl: Duration::from_secs(src.in_range(
                "otp_ttl_seconds",
                300u64,
                1..=MAX_OTP_TTL.as_secs(),
            )?),
            max_live: src.in_range("otp_max_live", 3u32, 1..=10)?,
        })
    }

    pub(super) fn describe(&self, out: &mut Lines) {
        out.extend([
            ("otp_digits", self.digits.to_string()),
            ("otp_ttl_seconds", self.ttl.as_secs().to_string()),
            ("otp_max_live", self.max_live.to_string()),
        ]);
    }
}

impl PinPolicy {
    pub(super) fn from_source(src: &Source) -> Result<Self, ConfigError> {
        Ok(Self {
            length: src.in_range("pin_length", 4usize, 4..=12)?,
        })
    }

    pub(super) fn describe(&self, out: &mut Lines) {
        out.push(("pin_length", self.length.to_string()));
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::assert_refused;

    #[test]
    fn a_bad_otp_or_pin_setting_names_itself() {
        assert_refused(&[
            ("OTPD_OTP_DIGITS", "5", "otp_digits"),
            ("OTPD_OTP_TTL_SECONDS", "601", "otp_ttl_seconds"),
            ("OTPD_OTP_MAX_LIVE", "11", "otp_max_live"),
            ("OTPD_PIN_LENGTH", "3", "pin_length"),
        ]);
    }
}
