//! Redeeming one-time passwords: account OTPs and device TOTPs, for every endpoint that takes an
//! OTP. The one place that decides whether a code is valid, so attempt limits belong here.

use super::attempts::{Checked, refusal};
use super::clock::to_millis;
use super::{ServiceError, Services};
use crate::domain::totp::matching_steps;
use crate::domain::{
    DeviceId, GuardedFactor, OtpCode, OtpTypes, Subject, TotpAlgorithm, TotpSettings,
};
use crate::store::{CountedRedemption, FollowUp, Redeemed, Redemption, StoredDevice};
use secrecy::{ExposeSecret, SecretString};

impl Services {
    /// Consumes `otp` if it is a valid OTP of `sub` of one of `types` (`POST /user/otp/verify`).
    /// A value that is not 6..10 digits is just an invalid OTP, like a wrong one.
    pub async fn redeem_otp(
        &self,
        sub: &Subject,
        otp: &SecretString,
        types: OtpTypes,
    ) -> Result<Redeemed, ServiceError> {
        self.redeem_otp_then(sub, otp, types, FollowUp::Nothing)
            .await
    }

    /// Consumes `code` and applies `then` in the same transaction; neither happens without the
    /// other. `InvalidOtp` when no candidate is valid (unknown, expired, used, replayed step).
    /// Every redemption runs under the user's OTP attempt limit (docs/lockout.md), counted in the
    /// same transaction before the code is looked at: `CredentialLocked` without looking while
    /// locked; from the 5th consecutive failure each failure revokes the user's live account
    /// OTPs, and a device whose codes failed `otp_disable_after` times is revoked.
    ///
    /// The candidates (HMAC digest, TOTP steps of each device) are computed before the
    /// transaction, so it holds the user's counter row only for a few statements; for a locked
    /// user that costs a device read and a few HMACs, no secret is compared.
    pub(crate) async fn redeem_otp_then(
        &self,
        sub: &Subject,
        otp: &SecretString,
        types: OtpTypes,
        then: FollowUp<'_>,
    ) -> Result<Redeemed, ServiceError> {
        let now = self.clock.now();
        let (candidates, devices_checked) = self.candidates(sub, otp, types, now).await?;
        let changes_credentials = !matches!(then, FollowUp::Nothing);
        let policy = self.lockout.of(GuardedFactor::Otp);
        let counted = self
            .store
            .redeem_counted(
                sub,
                &candidates,
                then,
                policy,
                devices_checked,
                to_millis(now),
            )
            .await?;
        match counted {
            CountedRedemption::Redeemed(redeemed) => {
                if changes_credentials {
                    self.watch.changed(sub);
                }
                self.metrics.otp_redeemed();
                Ok(redeemed)
            }
            CountedRedemption::Failed {
                failed,
                devices_revoked,
            } => {
                self.metrics.otp_refused();
                self.failure_noted(&failed);
                self.devices_revoked(devices_revoked);
                Err(ServiceError::InvalidOtp)
            }
            CountedRedemption::Refused(state) => {
                self.metrics.otp_refused();
                Err(match refusal::<()>(state, to_millis(now)) {
                    Checked::Disabled => ServiceError::CredentialDisabled,
                    Checked::Locked { retry_after } => {
                        ServiceError::CredentialLocked { retry_after }
                    }
                    Checked::Passed(()) | Checked::Failed => ServiceError::CredentialLocked {
                        retry_after: std::time::Duration::from_secs(1),
                    },
                })
            }
        }
    }

    /// What `otp` could be for `sub`: the digest of an account OTP, and each device step whose
    /// code it is; and whether device codes were compared at all (a failure then counts against
    /// the user's devices). A value that is not 6..10 digits matches nothing.
    async fn candidates(
        &self,
        sub: &Subject,
        otp: &SecretString,
        types: OtpTypes,
        now: time::OffsetDateTime,
    ) -> Result<(Redemption, bool), ServiceError> {
        let mut candidates = Redemption::default();
        let devices = if types.device_totp {
            self.store.devices(sub).await?
        } else {
            vec![]
        };
        let Some(code) = OtpCode::parse(otp.expose_secret()) else {
            return Ok((candidates, !devices.is_empty()));
        };
        if types.account {
            candidates.account_digest = Some(self.otp_key.digest(sub.as_str(), code.expose()));
        }
        for device in &devices {
            for step in self.device_steps(sub, device, &code, now.unix_timestamp()) {
                candidates.device_steps.push((device.clone(), step));
            }
        }
        Ok((candidates, !devices.is_empty()))
    }

    /// The steps of `device` whose code is `code`. A device whose row cannot be read (wrong key,
    /// altered row) matches nothing and is logged: it must not break the user's other devices.
    fn device_steps(
        &self,
        sub: &Subject,
        device: &StoredDevice,
        code: &OtpCode,
        unix_secs: i64,
    ) -> Vec<i64> {
        let Some((id, settings)) = stored_settings(device) else {
            tracing::error!(device = %device.device_id, "stored device TOTP has unusable parameters");
            return vec![];
        };
        match self.totp_cipher.open(sub, &id, settings, &device.secret_ct) {
            Ok(secret) => matching_steps(secret.bytes(), settings, code.expose(), unix_secs),
            Err(e) => {
                tracing::error!(device = %device.device_id, error = %e, "device TOTP secret unreadable");
                vec![]
            }
        }
    }
}

/// The parameters a device was created with, as stored.
pub(crate) fn stored_settings(device: &StoredDevice) -> Option<(DeviceId, TotpSettings)> {
    Some((
        DeviceId::parse(&device.device_id)?,
        TotpSettings {
            period_secs: u32::try_from(device.period_secs).ok().filter(|p| *p > 0)?,
            digits: u8::try_from(device.digits).ok()?,
            algorithm: TotpAlgorithm::parse(&device.algorithm)?,
        },
    ))
}
