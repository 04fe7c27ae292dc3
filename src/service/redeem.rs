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
        // `totp` alone names nothing this API version can hold: nothing to compare, nothing to
        // count (docs/sessions.md).
        if !types.can_match() {
            self.metrics.otp_refused();
            return Err(ServiceError::InvalidOtp);
        }
        let policy = self.lockout.of(GuardedFactor::Otp);
        let now = self.clock.now();
        let mut candidates = self.candidates(sub, otp, types, &[], now);
        // The common case without reading the user's devices first (one call on either backend);
        // `None` when the user has device TOTPs to compare: then the full path below.
        if matches!(then, FollowUp::Nothing) {
            let counted = self
                .store
                .redeem_counted_in_one_call(
                    sub,
                    &candidates,
                    types.device_totp,
                    policy,
                    to_millis(now),
                )
                .await?;
            if let Some(counted) = counted {
                return self.settle_counted(sub, counted, false, now);
            }
        }
        // Read (and checked for a missing key) before anything is counted.
        let devices = self.redeemable_devices(sub, types).await?;
        self.add_device_steps(&mut candidates, sub, otp, &devices, now);
        let devices_checked = !devices.is_empty();
        let changes_credentials = !matches!(then, FollowUp::Nothing);
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
        self.settle_counted(sub, counted, changes_credentials, now)
    }

    /// The answer to a counted redemption, counted in the metrics.
    fn settle_counted(
        &self,
        sub: &Subject,
        counted: CountedRedemption,
        changes_credentials: bool,
        now: time::OffsetDateTime,
    ) -> Result<Redeemed, ServiceError> {
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
                Err(refused(refusal::<()>(state, to_millis(now))))
            }
        }
    }

    /// The devices a redemption of `types` may match. Read before the attempt is counted: a device
    /// sealed under a key that is not loaded makes the redemption uncheckable, which is the
    /// operator's problem to fix (503), not a guess to count against the user.
    pub(super) async fn redeemable_devices(
        &self,
        sub: &Subject,
        types: OtpTypes,
    ) -> Result<Vec<StoredDevice>, ServiceError> {
        let devices = if types.device_totp {
            self.store.devices(sub).await?
        } else {
            Vec::new()
        };
        if let Some(id) = devices
            .iter()
            .filter_map(|d| d.key_id.as_deref())
            .find(|id| !self.totp_keys.contains(id))
        {
            return Err(ServiceError::KeyUnavailable(format!(
                "a device TOTP secret is sealed under TOTP key id `{id}`, which is not loaded: add it to totp_old_key_files (or its pepper to pepper_old_files)"
            )));
        }
        Ok(devices)
    }

    /// The answer to a redemption guarded by `guarded` (`PUT /user/pin`, which reserves the
    /// attempt before hashing the new PIN), counted in the metrics.
    pub(super) fn settle_redemption(
        &self,
        checked: Checked<Redeemed>,
    ) -> Result<Redeemed, ServiceError> {
        match checked {
            Checked::Passed(redeemed) => {
                self.metrics.otp_redeemed();
                Ok(redeemed)
            }
            Checked::Failed => {
                self.metrics.otp_refused();
                Err(ServiceError::InvalidOtp)
            }
            other => {
                self.metrics.otp_refused();
                Err(refused(other))
            }
        }
    }

    /// One redemption, already admitted by the attempt limit (`guarded`): `None` when no candidate
    /// is valid. Consumes and applies `then` in one transaction.
    pub(super) async fn try_redeem(
        &self,
        sub: &Subject,
        otp: &SecretString,
        types: OtpTypes,
        devices: &[StoredDevice],
        then: FollowUp<'_>,
    ) -> Result<Option<Redeemed>, ServiceError> {
        let now = self.clock.now();
        let candidates = self.candidates(sub, otp, types, devices, now);
        let changes_credentials = !matches!(then, FollowUp::Nothing);
        match self
            .store
            .redeem(sub, &candidates, then, to_millis(now))
            .await?
        {
            Some(redeemed) => {
                if changes_credentials {
                    self.watch.changed(sub);
                }
                Ok(Some(redeemed))
            }
            // The refusal's audit row is written by the attempt limit, with the failure count.
            None => Ok(None),
        }
    }

    /// What `otp` could be for `sub`: the digests of an account OTP (one per pepper in use), and
    /// each step of `devices` whose code it is. A value that is not 6..10 digits matches nothing.
    fn candidates(
        &self,
        sub: &Subject,
        otp: &SecretString,
        types: OtpTypes,
        devices: &[StoredDevice],
        now: time::OffsetDateTime,
    ) -> Redemption {
        let mut candidates = Redemption::default();
        let Some(code) = OtpCode::parse(otp.expose_secret()) else {
            return candidates;
        };
        // Login OTPs share the account OTPs' digests; the kind column tells them apart.
        if types.account || types.login {
            let digests = self.otp_key.candidate_digests(sub.as_str(), code.expose());
            if types.login {
                candidates.login_digests.clone_from(&digests);
            }
            if types.account {
                candidates.account_digests = digests;
            }
        }
        self.add_device_steps(&mut candidates, sub, otp, devices, now);
        candidates
    }

    /// Adds each step of `devices` whose code `otp` is to `candidates`.
    fn add_device_steps(
        &self,
        candidates: &mut Redemption,
        sub: &Subject,
        otp: &SecretString,
        devices: &[StoredDevice],
        now: time::OffsetDateTime,
    ) {
        let Some(code) = OtpCode::parse(otp.expose_secret()) else {
            return;
        };
        for device in devices {
            for step in self.device_steps(sub, device, &code, now.unix_timestamp()) {
                candidates.device_steps.push((device.clone(), step));
            }
        }
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
        match self.totp_keys.open(
            device.key_id.as_deref(),
            sub,
            &id,
            settings,
            &device.secret_ct,
        ) {
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

/// The error of a redemption the attempt limit did not let through.
fn refused<T>(checked: Checked<T>) -> ServiceError {
    match checked {
        Checked::Disabled => ServiceError::CredentialDisabled,
        Checked::Locked { retry_after } => ServiceError::CredentialLocked { retry_after },
        Checked::Passed(_) | Checked::Failed => ServiceError::CredentialLocked {
            retry_after: std::time::Duration::from_secs(1),
        },
    }
}
