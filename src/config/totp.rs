//! The device TOTP settings: what a new device TOTP looks like (`totp_digits`,
//! `totp_period_seconds`, `totp_algorithm`), the key that seals stored secrets (`totp_key_file`),
//! and the after-login grant's window (`after_login_window_seconds`).

use super::{ConfigError, Lines, Source, invalid, secret_path};
use crate::domain::totp::{MAX_TOTP_DIGITS, MIN_TOTP_DIGITS};
use crate::domain::{TotpAlgorithm, TotpSettings};
use crate::service::{DeviceTotpSettings, Pepper, TotpCipher};
use std::path::PathBuf;
use std::time::Duration;

impl DeviceTotpSettings {
    pub(super) fn from_source(src: &Source) -> Result<Self, ConfigError> {
        let new_devices = TotpSettings {
            period_secs: src.in_range("totp_period_seconds", 30u32, 1..=300)?,
            digits: src.in_range("totp_digits", 6u8, MIN_TOTP_DIGITS..=MAX_TOTP_DIGITS)?,
            algorithm: match src.get("totp_algorithm") {
                None => TotpAlgorithm::Sha1,
                Some(raw) => TotpAlgorithm::parse(raw).ok_or_else(|| {
                    invalid(
                        "totp_algorithm",
                        format!("`{raw}` is not SHA1, SHA256 or SHA512"),
                    )
                })?,
            },
        };
        Ok(Self {
            new_devices,
            key_file: src.get("totp_key_file").map(PathBuf::from),
            after_login_window: Duration::from_secs(src.in_range(
                "after_login_window_seconds",
                300u64,
                0..=3600,
            )?),
        })
    }

    /// The cipher for device secrets: keyed from `totp_key_file` when set, else from the pepper.
    pub fn cipher(&self, pepper: &Pepper) -> Result<TotpCipher, ConfigError> {
        match &self.key_file {
            Some(path) => TotpCipher::from_key_file(path).map_err(|p| invalid("totp_key_file", p)),
            None => Ok(TotpCipher::from_pepper(pepper)),
        }
    }

    pub(super) fn describe(&self, out: &mut Lines) {
        let key_file = match &self.key_file {
            Some(path) => secret_path(Some(path)),
            None => "(derived from the pepper)".to_owned(),
        };
        out.extend([
            ("totp_key_file", key_file),
            ("totp_digits", self.new_devices.digits.to_string()),
            (
                "totp_period_seconds",
                self.new_devices.period_secs.to_string(),
            ),
            (
                "totp_algorithm",
                self.new_devices.algorithm.as_str().to_owned(),
            ),
            (
                "after_login_window_seconds",
                self.after_login_window.as_secs().to_string(),
            ),
        ]);
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{assert_refused, load};
    use crate::service::Pepper;

    #[test]
    fn a_bad_totp_setting_names_itself() {
        assert_refused(&[
            ("OTPD_TOTP_ALGORITHM", "MD5", "totp_algorithm"),
            ("OTPD_TOTP_DIGITS", "9", "totp_digits"),
            ("OTPD_TOTP_PERIOD_SECONDS", "0", "totp_period_seconds"),
            (
                "OTPD_AFTER_LOGIN_WINDOW_SECONDS",
                "3601",
                "after_login_window_seconds",
            ),
        ]);
    }

    #[test]
    fn a_short_totp_key_file_names_its_setting() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("totp-key");
        std::fs::write(&key, [7u8; 31]).unwrap();
        let c = load(&[("OTPD_TOTP_KEY_FILE", key.to_str().unwrap())]).unwrap();
        let pepper = Pepper::new("p1".into(), vec![1; 32]).unwrap();
        let e = c.totp.cipher(&pepper).unwrap_err().to_string();
        assert!(
            e.contains("totp_key_file") && e.contains("at least 32 bytes"),
            "{e}"
        );
        std::fs::write(&key, [7u8; 32]).unwrap();
        assert!(c.totp.cipher(&pepper).is_ok());
    }
}
