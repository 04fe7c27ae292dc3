//! Device TOTP secrets (`POST /user/devices/totp`): proof first (OTP, then password, then PIN),
//! or the after-login grant right after registration; then a fresh secret, stored encrypted.

use super::clock::to_millis;
use super::otp::{Proof, ResetAfterSuccess};
use super::{ServiceError, Services};
use crate::domain::{Attempt, DeviceId, OtpTypes, Subject, TotpSecret, TotpSettings};
use crate::store::{FollowUp, StoredDevice};
use anyhow::anyhow;
use secrecy::SecretString;
use std::path::PathBuf;
use std::time::Duration;

/// The settings of device TOTPs: what a new one looks like, the key that seals the stored secrets,
/// and how long the after-login grant lasts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceTotpSettings {
    /// Parameters of new device TOTPs (stored devices keep their own).
    pub new_devices: TotpSettings,
    /// Key material for sealing device secrets (`TotpCipher::from_key_file`); `None`: derived
    /// from the pepper.
    pub key_file: Option<PathBuf>,
    /// The id new secrets are labelled with when `key_file` is set.
    pub key_id: String,
    /// Older keys by id, loaded to open what they sealed.
    pub old_key_files: Vec<(String, PathBuf)>,
    pub after_login_window: Duration,
}

/// What the caller offered for a new device secret; any may be absent.
#[derive(Debug, Default)]
pub struct DeviceProof {
    pub otp: Option<SecretString>,
    pub password: Option<Attempt>,
    pub pin: Option<Attempt>,
}

/// The after-login grant: the caller holds `user:device-totps:create-after-login` and the token
/// says when the user registered (unix seconds), if it says so.
#[derive(Debug, Clone, Copy)]
pub struct AfterLogin {
    pub registered_at: Option<i64>,
}

/// A new device secret, in clear only on its way to the device.
#[derive(Debug)]
pub struct IssuedTotp {
    pub device: DeviceId,
    pub secret: TotpSecret,
    pub settings: TotpSettings,
}

impl Services {
    pub async fn create_device_totp(
        &self,
        sub: &Subject,
        device: DeviceId,
        proof: DeviceProof,
        after_login: Option<AfterLogin>,
    ) -> Result<IssuedTotp, ServiceError> {
        let settings = self.totp;
        let secret = TotpSecret::generate(&mut rand::rng());
        let (key_id, secret_ct) = self
            .totp_keys
            .seal(sub, &device, settings, &secret)
            .map_err(|e| anyhow!(e))?;
        let stored = StoredDevice {
            device_id: device.as_str().to_owned(),
            secret_ct,
            key_id: Some(key_id),
            secret_gen: 0,
            algorithm: settings.algorithm.as_str().to_owned(),
            digits: i64::from(settings.digits),
            period_secs: i64::from(settings.period_secs),
        };
        let issued = IssuedTotp {
            device,
            secret,
            settings,
        };
        let now = to_millis(self.clock.now());
        // A locked OTP path leaves the password and PIN usable (docs/lockout.md); the lock is
        // the answer only when nothing else was offered.
        let mut otp_refusal = None;
        if let Some(code) = &proof.otp {
            match self
                .redeem_otp_then(sub, code, OtpTypes::ALL, FollowUp::SaveDevice(&stored))
                .await
            {
                Ok(_) => return Ok(issued),
                Err(ServiceError::InvalidOtp) => {}
                Err(
                    e @ (ServiceError::CredentialLocked { .. } | ServiceError::CredentialDisabled),
                ) => otp_refusal = Some(e),
                Err(e) => return Err(e),
            }
        }
        let (how, requires) = if proof.password.is_some() || proof.pin.is_some() {
            let stored_credentials = self.store.credentials(sub).await?;
            let knowledge = Proof {
                password: proof.password,
                pin: proof.pin,
            };
            match self
                .check_proof(sub, &stored_credentials, &knowledge, ResetAfterSuccess::Now)
                .await
            {
                Ok(factor) => (factor.as_str(), Some(factor)),
                Err(ServiceError::InvalidCredentials | ServiceError::CredentialNotSet) => {
                    return Err(ServiceError::NoValidProof);
                }
                Err(e) => return Err(e),
            }
        } else if proof.otp.is_none()
            && after_login.is_some_and(|grant| self.within_after_login_window(grant))
        {
            // Not tied to a credential: a grant right after registration stands on its own.
            ("after-login", None)
        } else {
            return Err(otp_refusal.unwrap_or(ServiceError::NoValidProof));
        };
        let detail = format!("device={} proof={how}", issued.device);
        if !self
            .store
            .save_device(sub, &stored, &detail, requires, now)
            .await?
        {
            // The PIN or password just checked was erased or reset meanwhile (DELETE /user).
            return Err(ServiceError::NoValidProof);
        }
        Ok(issued)
    }

    /// True when the user registered no more than `after_login_window` ago (and not in the
    /// future beyond a small skew).
    fn within_after_login_window(&self, grant: AfterLogin) -> bool {
        const SKEW: Duration = Duration::from_secs(60);
        let Some(registered) = grant.registered_at else {
            return false;
        };
        // The claim is the token's word: an absurd value (i64::MIN) must not overflow, it is
        // simply not recent.
        let Some(age) = self.clock.now().unix_timestamp().checked_sub(registered) else {
            return false;
        };
        let window = i64::try_from(self.after_login_window.as_secs()).unwrap_or(i64::MAX);
        let skew = i64::try_from(SKEW.as_secs()).unwrap_or(0);
        (-skew..=window).contains(&age)
    }
}
