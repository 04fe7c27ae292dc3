//! Changes a user makes with an OTP in hand: a new PIN (`PUT /user/pin`) and erasing the account
//! (`DELETE /user`); and what is set (`GET /user/pin-or-password`).

use super::clock::to_millis;
use super::{ServiceError, Services};
use crate::domain::{Actor, AuditEvent, Factor, GuardedFactor, OtpCode, OtpTypes, Pin, Subject};
use crate::store::{FollowUp, StoredCredentials};
use secrecy::{ExposeSecret, SecretString};

/// Which knowledge factors a user has set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FactorsSet {
    pub pin: bool,
    pub password: bool,
}

impl FactorsSet {
    pub(crate) fn of(stored: &StoredCredentials) -> Self {
        Self {
            pin: stored.pin_hash.is_some(),
            password: stored.password_hash.is_some(),
        }
    }

    pub fn has(self, factor: Factor) -> bool {
        match factor {
            Factor::Pin => self.pin,
            Factor::Password => self.password,
        }
    }
}

/// What entitles an erasure.
pub enum Erasure<'a> {
    /// The user proves the request with an account OTP or device TOTP, consumed in the same
    /// transaction as the erasure.
    WithOtp(&'a SecretString),
    /// An admin (the identity provider deleted the user) or an operator; audited with who asked.
    RequestedBy(&'a Actor),
}

impl Services {
    /// Sets the PIN if it meets the policy and `code` is a valid OTP. The policy is checked first,
    /// so a refused PIN leaves the OTP usable; then the OTP attempt is reserved, then the PIN is
    /// hashed, and the OTP is consumed in the transaction that stores the PIN.
    pub async fn change_pin(
        &self,
        sub: &Subject,
        new_pin: SecretString,
        otp: &SecretString,
    ) -> Result<(), ServiceError> {
        let pin = match Pin::parse(new_pin, self.pin_policy) {
            Ok(pin) => pin,
            Err(rejection) => {
                self.store
                    .record_audit(
                        sub,
                        AuditEvent::PinPolicyRefused,
                        "",
                        to_millis(self.clock.now()),
                    )
                    .await?;
                return Err(ServiceError::PinRejected(rejection));
            }
        };
        // The new PIN is hashed only once the OTP attempt is counted (and refused while the OTP
        // factor is locked), so a locked factor or a stream of bad OTPs costs no Argon2 time. A
        // full hashing queue is answered before anything is counted: a 503 is no guess.
        let devices = &self.redeemable_devices(sub, OtpTypes::ALL).await?;
        let permit = self.hasher.admit()?;
        let checked = self
            .guarded(sub, GuardedFactor::Otp, || async {
                if OtpCode::parse(otp.expose_secret()).is_none() {
                    return Ok(None);
                }
                let phc = permit.hash(pin.expose()).await?;
                let then = FollowUp::SetPin { phc: &phc };
                self.try_redeem(sub, otp, OtpTypes::ALL, devices, then)
                    .await
            })
            .await?;
        drop(permit);
        self.settle_redemption(checked)?;
        Ok(())
    }

    /// Erases every credential record of `sub`: the user's own request with a valid OTP
    /// (`DELETE /user`), or on someone else's word (the identity provider's user-deleted hook
    /// through the admin API). One function for both, so both erase the same rows under the same
    /// per-user lock. Audit rows stay.
    pub async fn delete_user(
        &self,
        sub: &Subject,
        erasure: Erasure<'_>,
    ) -> Result<(), ServiceError> {
        match erasure {
            Erasure::WithOtp(otp) => {
                self.redeem_otp_then(sub, otp, OtpTypes::ALL, FollowUp::EraseUser)
                    .await?;
            }
            Erasure::RequestedBy(actor) => {
                let now = to_millis(self.clock.now());
                self.store
                    .erase_user_for(sub, &actor.audit_detail(), now)
                    .await?;
                self.watch.changed(sub);
            }
        }
        Ok(())
    }

    pub async fn factors_set(&self, sub: &Subject) -> Result<FactorsSet, ServiceError> {
        Ok(FactorsSet::of(&self.store.credentials(sub).await?))
    }
}
