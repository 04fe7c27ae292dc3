//! The PACE "prove" of a password reset: whoever resets a password with only the mailbox keeps the
//! user's PIN and device TOTPs only by proving one of them (the PIN, or a current device TOTP).
//! "I don't have it", or more than `MAX_WRONG_PROVES` wrong proves, erases them in one transaction
//! with an audit row. Used by `POST /callbacks/password-reset` and by the reset page.

use super::clock::to_millis;
use super::otp::{Proof, ResetAfterSuccess};
use super::{ServiceError, Services};
use crate::domain::{Attempt, OtpCode, OtpTypes, Subject};
use crate::store::Erased;
use secrecy::{ExposeSecret, SecretString};
use std::time::Duration;

/// PACE: "In case the prove is incorrectly provided for more than 3 times, the critical data …
/// is deleted". The 4th wrong prove erases.
pub const MAX_WRONG_PROVES: u32 = 3;
/// Wrong proves count towards one reset within this window from the first of them.
pub const PROVE_WINDOW: Duration = Duration::from_secs(24 * 3600);

/// What a reset could keep, so what a prove protects.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProveOptions {
    pub pin: bool,
    pub devices: usize,
}

impl ProveOptions {
    /// Nothing to keep: no prove is asked.
    pub fn is_empty(self) -> bool {
        !self.pin && self.devices == 0
    }
}

/// How one prove went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProveCheck {
    Passed,
    /// Wrong, and this many more wrong proves are allowed before the erasure.
    Wrong {
        tries_left: u32,
    },
    /// Wrong for the 4th time: erase.
    Exhausted,
    /// The PIN is locked after consecutive failures and was not checked.
    Locked {
        retry_after: Duration,
    },
    /// The PIN is disabled after too many failures: it cannot be proven any more.
    Disabled,
}

/// Why the PIN and devices were erased (written into the audit row).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EraseReason {
    /// The user said they don't have the PIN or a device.
    Skipped,
    /// More than `MAX_WRONG_PROVES` wrong proves.
    WrongProves,
}

impl EraseReason {
    pub fn as_str(self) -> &'static str {
        match self {
            EraseReason::Skipped => "skipped",
            EraseReason::WrongProves => "wrong-proves",
        }
    }
}

/// The answer of `POST /callbacks/password-reset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallbackOutcome {
    /// The PIN is right: PIN and device TOTPs are kept.
    Retained,
    /// Skipped, or the 4th wrong prove: PIN and device TOTPs are gone.
    Erased(Erased),
}

impl Services {
    pub async fn prove_options(&self, sub: &Subject) -> Result<ProveOptions, ServiceError> {
        let pin = self.store.credentials(sub).await?.pin_hash.is_some();
        let devices = self.store.devices(sub).await?.len();
        Ok(ProveOptions { pin, devices })
    }

    /// `POST /callbacks/password-reset`: `skip`, or the PIN. 404 (`CredentialNotSet`) when no
    /// prove is possible: no PIN (the callback can only carry a PIN) and nothing to skip.
    pub async fn password_reset_callback(
        &self,
        sub: &Subject,
        pin: Option<SecretString>,
        skip: bool,
    ) -> Result<CallbackOutcome, ServiceError> {
        let options = self.prove_options(sub).await?;
        if skip && !options.is_empty() {
            let erased = self
                .erase_for_reset(sub, EraseReason::Skipped, "callback")
                .await?;
            return Ok(CallbackOutcome::Erased(erased));
        }
        if !options.pin {
            return Err(ServiceError::CredentialNotSet);
        }
        let pin = pin.ok_or(ServiceError::InvalidCredentials)?;
        let only_pin = ProveOptions {
            pin: true,
            devices: 0,
        };
        match self.check_prove(sub, &pin, only_pin).await? {
            ProveCheck::Passed => Ok(CallbackOutcome::Retained),
            ProveCheck::Wrong { .. } => Err(ServiceError::InvalidCredentials),
            ProveCheck::Exhausted => {
                let erased = self
                    .erase_for_reset(sub, EraseReason::WrongProves, "callback")
                    .await?;
                Ok(CallbackOutcome::Erased(erased))
            }
            ProveCheck::Locked { retry_after } => {
                Err(ServiceError::CredentialLocked { retry_after })
            }
            ProveCheck::Disabled => Err(ServiceError::CredentialDisabled),
        }
    }

    /// Checks `value` as the PIN (if the user has one and it has the PIN's shape), then as a
    /// device TOTP (if the user has devices); each check under its factor's attempt limit. A wrong
    /// prove is counted for the reset, and the 4th is `Exhausted`.
    pub(crate) async fn check_prove(
        &self,
        sub: &Subject,
        value: &SecretString,
        options: ProveOptions,
    ) -> Result<ProveCheck, ServiceError> {
        let text = value.expose_secret();
        let mut blocked = None;
        if options.pin && text.len() == self.pin_policy.length {
            let stored = self.store.credentials(sub).await?;
            let proof = Proof {
                pin: Attempt::bounded(value.clone(), crate::domain::credential::MAX_PIN_BYTES),
                password: None,
            };
            match self
                .check_proof(sub, &stored, &proof, ResetAfterSuccess::Now)
                .await
            {
                Ok(_) => return self.prove_passed(sub).await,
                Err(ServiceError::InvalidCredentials | ServiceError::CredentialNotSet) => {}
                Err(ServiceError::CredentialLocked { retry_after }) => {
                    blocked = Some(ProveCheck::Locked { retry_after });
                }
                Err(ServiceError::CredentialDisabled) => blocked = Some(ProveCheck::Disabled),
                Err(e) => return Err(e),
            }
        }
        let device_types = OtpTypes {
            device_totp: true,
            ..OtpTypes::NONE
        };
        if options.devices > 0 && OtpCode::parse(text).is_some() {
            match self.redeem_otp(sub, value, device_types).await {
                Ok(_) => return self.prove_passed(sub).await,
                Err(ServiceError::InvalidOtp) => blocked = None,
                Err(ServiceError::CredentialLocked { retry_after }) => {
                    blocked.get_or_insert(ProveCheck::Locked { retry_after });
                }
                Err(ServiceError::CredentialDisabled) => {
                    blocked.get_or_insert(ProveCheck::Disabled);
                }
                Err(e) => return Err(e),
            }
        }
        // A factor that could not be checked is no wrong prove: only a check that failed counts.
        if let Some(refusal) = blocked {
            return Ok(refusal);
        }
        let window = i64::try_from(PROVE_WINDOW.as_millis()).unwrap_or(i64::MAX);
        let wrong = self
            .store
            .count_wrong_prove(sub, to_millis(self.clock.now()), window)
            .await?;
        tracing::info!(wrong, "wrong prove during a password reset");
        // A check that raced with an erasure (a parallel 4th wrong prove, or a skip) compared with
        // a PIN that is gone by now: its answer is the erasure, not "wrong".
        if wrong <= MAX_WRONG_PROVES && self.prove_options(sub).await?.is_empty() {
            self.store.clear_wrong_proves(sub).await?;
            return Ok(ProveCheck::Exhausted);
        }
        Ok(if wrong > MAX_WRONG_PROVES {
            ProveCheck::Exhausted
        } else {
            ProveCheck::Wrong {
                tries_left: MAX_WRONG_PROVES + 1 - wrong,
            }
        })
    }

    async fn prove_passed(&self, sub: &Subject) -> Result<ProveCheck, ServiceError> {
        self.store.clear_wrong_proves(sub).await?;
        Ok(ProveCheck::Passed)
    }

    /// Erases the PIN and every device TOTP now, in one transaction with its audit row.
    pub(crate) async fn erase_for_reset(
        &self,
        sub: &Subject,
        reason: EraseReason,
        via: &str,
    ) -> Result<Erased, ServiceError> {
        let detail = format!("{} via={via}", reason.as_str());
        let erased = self
            .store
            .erase_pin_and_devices(sub, &detail, to_millis(self.clock.now()))
            .await?;
        self.watch.changed(sub);
        tracing::info!(
            reason = reason.as_str(),
            pin = erased.pin,
            devices = erased.devices,
            "PIN and device TOTPs erased during a password reset"
        );
        Ok(erased)
    }
}
