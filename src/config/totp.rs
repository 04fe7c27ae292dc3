//! The device TOTP settings: what a new device TOTP looks like (`totp_digits`,
//! `totp_period_seconds`, `totp_algorithm`), the key that seals stored secrets (`totp_key_file`),
//! and the after-login grant's window (`after_login_window_seconds`).

use super::hashing::{describe_key_files, parse_key_files, valid_key_id};
use super::{ConfigError, Lines, Source, invalid, secret_path};
use crate::domain::totp::{MAX_TOTP_DIGITS, MIN_TOTP_DIGITS};
use crate::domain::{TotpAlgorithm, TotpSettings};
use crate::service::{DeviceTotpSettings, PepperRing, TotpCipher, TotpKeyRing};
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
        let key_id = src.get("totp_key_id").unwrap_or("t1").to_owned();
        if !valid_key_id(&key_id) {
            return Err(invalid(
                "totp_key_id",
                "must be 1..8 ASCII letters or digits",
            ));
        }
        let old_key_files = parse_key_files("totp_old_key_files", src.get("totp_old_key_files"))?;
        if old_key_files.iter().any(|(id, _)| *id == key_id) {
            return Err(invalid(
                "totp_old_key_files",
                format!("`{key_id}` is the current totp_key_id; an old key needs an id of its own"),
            ));
        }
        Ok(Self {
            new_devices,
            key_file: src.get("totp_key_file").map(PathBuf::from),
            key_id,
            old_key_files,
            after_login_window: Duration::from_secs(src.in_range(
                "after_login_window_seconds",
                300u64,
                0..=3600,
            )?),
        })
    }

    /// The keys for device secrets: the current one from `totp_key_file` (labelled
    /// `totp_key_id`) when set, else derived from the current pepper; the older ones of
    /// `totp_old_key_files`; and one derived from every loaded pepper.
    pub fn key_ring(&self, peppers: &PepperRing) -> Result<TotpKeyRing, ConfigError> {
        let old = self
            .old_key_files
            .iter()
            .map(|(id, path)| {
                TotpCipher::from_key_file(path)
                    .map(|c| (id.clone(), c))
                    .map_err(|p| invalid("totp_old_key_files", format!("{id}: {p}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let current = match &self.key_file {
            Some(path) => (
                self.key_id.clone(),
                TotpCipher::from_key_file(path).map_err(|p| invalid("totp_key_file", p))?,
            ),
            None if old.is_empty() => return Ok(TotpKeyRing::from_peppers(peppers)),
            None => {
                let pepper = peppers.current();
                (
                    crate::service::totp_keys::derived_key_id(&pepper.id),
                    TotpCipher::from_pepper(pepper),
                )
            }
        };
        TotpKeyRing::new(current, old, peppers).map_err(|p| invalid("totp_old_key_files", p))
    }

    pub(super) fn describe(&self, out: &mut Lines) {
        let key_file = match &self.key_file {
            Some(path) => secret_path(Some(path)),
            None => "(derived from the pepper)".to_owned(),
        };
        out.extend([
            ("totp_key_file", key_file),
            ("totp_key_id", self.key_id.clone()),
            (
                "totp_old_key_files",
                describe_key_files(&self.old_key_files),
            ),
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
    use crate::service::{Pepper, PepperRing};

    #[test]
    fn a_bad_totp_setting_names_itself() {
        assert_refused(&[
            ("OTPD_TOTP_ALGORITHM", "MD5", "totp_algorithm"),
            ("OTPD_TOTP_KEY_ID", "pepper:p1", "totp_key_id"),
            (
                "OTPD_TOTP_OLD_KEY_FILES",
                "t1:/a,t1:/b",
                "totp_old_key_files",
            ),
            ("OTPD_TOTP_OLD_KEY_FILES", "t1", "totp_old_key_files"),
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
        let pepper = PepperRing::single(Pepper::new("p1".into(), vec![1; 32]).unwrap());
        let e = c.totp.key_ring(&pepper).unwrap_err().to_string();
        assert!(
            e.contains("totp_key_file") && e.contains("at least 32 bytes"),
            "{e}"
        );
        std::fs::write(&key, [7u8; 32]).unwrap();
        assert_eq!(c.totp.key_ring(&pepper).unwrap().current_id(), "t1");
        let old = dir.path().join("old-key");
        std::fs::write(&old, [8u8; 32]).unwrap();
        let c = load(&[
            ("OTPD_TOTP_KEY_FILE", key.to_str().unwrap()),
            ("OTPD_TOTP_KEY_ID", "t2"),
            ("OTPD_TOTP_OLD_KEY_FILES", &format!("t1:{}", old.display())),
        ])
        .unwrap();
        let ring = c.totp.key_ring(&pepper).unwrap();
        assert_eq!(ring.ids().collect::<Vec<_>>(), ["t2", "t1", "pepper:p1"]);
    }
}
