//! Changes a user makes with an OTP in hand: a new PIN (`PUT /user/pin`) and erasing the account
//! (`DELETE /user`); and what is set (`GET /user/pin-or-password`).

use super::clock::to_millis;
use super::{ServiceError, Services};
use crate::domain::{AuditEvent, OtpTypes, Pin, Subject};
use crate::store::FollowUp;
use secrecy::SecretString;

/// Which knowledge factors a user has set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FactorsSet {
    pub pin: bool,
    pub password: bool,
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

    /// Erases every credential record of `sub` if `code` is a valid OTP. Audit rows stay.
    pub async fn delete_user(&self, sub: &Subject, otp: &SecretString) -> Result<(), ServiceError> {
        self.redeem_otp_then(sub, otp, OtpTypes::ALL, FollowUp::EraseUser)
            .await?;
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
