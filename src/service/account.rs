//! Changes a user makes with an OTP in hand: a new PIN (`PUT /user/pin`) and erasing the account
//! (`DELETE /user`); and what is set (`GET /user/pin-or-password`).

use super::clock::to_millis;
use super::{ServiceError, Services};
use crate::domain::{Actor, AuditEvent, OtpTypes, Pin, Subject};
use crate::store::FollowUp;
use secrecy::SecretString;

/// Which knowledge factors a user has set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FactorsSet {
    pub pin: bool,
    pub password: bool,
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
    /// so a refused PIN leaves the OTP usable; the OTP is consumed in the transaction that stores
    /// the PIN.
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
        let phc = self.hasher.hash(pin.expose()).await?;
        self.redeem_otp_then(sub, otp, OtpTypes::ALL, FollowUp::SetPin { phc: &phc })
            .await?;
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
        let stored = self.store.credentials(sub).await?;
        Ok(FactorsSet {
            pin: stored.pin_hash.is_some(),
            password: stored.password_hash.is_some(),
        })
    }
}
