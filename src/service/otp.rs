//! Issuing account OTPs (`POST /user/otp`): check the password, then the PIN; one valid is enough.

use super::attempts::Checked;
use super::clock::to_millis;
use super::{ServiceError, Services};
use crate::domain::password::check_candidates;
use crate::domain::{Attempt, Factor, GuardedFactor, OtpCode, Subject};
use crate::store::{NewOtp, OtpInsert, StoredCredentials};
use anyhow::anyhow;
use secrecy::{ExposeSecret, SecretString};
use std::time::Duration;
use time::OffsetDateTime;

/// Who resets a factor's attempt counter after it passed `check_proof`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum ResetAfterSuccess {
    /// `check_proof` itself, in its own write.
    Now,
    /// The caller, in the transaction that stores what the success earned.
    ByCaller,
}

/// What the caller offered as proof; either may be absent.
#[derive(Debug, Default)]
pub struct Proof {
    pub password: Option<Attempt>,
    pub pin: Option<Attempt>,
}

#[derive(Debug)]
pub struct IssuedOtp {
    pub code: OtpCode,
    /// Whole seconds: what the client is told is never later than the real expiry.
    pub expires_at: OffsetDateTime,
}

/// Why no offered factor passed. A wrong secret outweighs a lock (a guess was evaluated), and a
/// lock outweighs disabling (the locked factor will be usable again).
#[derive(Default)]
struct Refusals {
    failed: bool,
    locked: Option<Duration>,
    disabled: bool,
}

impl Refusals {
    fn into_error(self) -> ServiceError {
        match self {
            Refusals { failed: true, .. } => ServiceError::InvalidCredentials,
            Refusals {
                locked: Some(retry_after),
                ..
            } => ServiceError::CredentialLocked { retry_after },
            Refusals { disabled: true, .. } => ServiceError::CredentialDisabled,
            Refusals { .. } => ServiceError::CredentialNotSet,
        }
    }
}

/// The forms of an offered secret to check, in order. A password: its NFKC form (what this
/// version hashes), then, if different, the raw input (hashes set before normalization, or imported
/// from systems that hashed the raw input); see `domain::password::check_candidates`. A PIN: as is.
fn check_forms(factor: Factor, attempt: &Attempt) -> Vec<SecretString> {
    match factor {
        Factor::Password => check_candidates(attempt.expose()),
        Factor::Pin => vec![SecretString::from(attempt.expose())],
    }
}

/// How many times a freshly drawn code may collide with a stored digest before we give up. With a
/// handful of live OTPs per user a collision is a one-in-100,000 event; three in a row is a bug.
const MAX_DRAWS: usize = 3;

impl Services {
    pub async fn issue_otp(&self, sub: &Subject, proof: Proof) -> Result<IssuedOtp, ServiceError> {
        let stored = self.store.credentials(sub).await?;
        let factor = self
            .check_proof(sub, &stored, &proof, ResetAfterSuccess::ByCaller)
            .await?;
        // The counter of the factor that passed is reset in the OTP's own transaction, which
        // stores the OTP only while that factor is still set.
        let detail = format!("factor={}", factor.as_str());
        let issued = self
            .create_otp(sub, &detail, Some(factor), Some(factor.into()))
            .await?;
        self.metrics.otp_issued("credential");
        Ok(issued)
    }

    /// Checks the offered factors in PACE order (password first, then PIN) and returns the first
    /// that matches. Each check runs under its factor's attempt limit; a locked or disabled factor
    /// is skipped without being checked, so the other one still can succeed. With
    /// `ResetAfterSuccess::ByCaller` the passing factor's counter is left for the caller to reset
    /// in its own write.
    pub(super) async fn check_proof(
        &self,
        sub: &Subject,
        stored: &StoredCredentials,
        proof: &Proof,
        reset: ResetAfterSuccess,
    ) -> Result<Factor, ServiceError> {
        let offered: Vec<(Factor, &Attempt, &str)> = [
            (Factor::Password, proof.password.as_ref()),
            (Factor::Pin, proof.pin.as_ref()),
        ]
        .into_iter()
        .filter_map(|(factor, attempt)| Some((factor, attempt?, stored.hash(factor)?)))
        .collect();
        if offered.is_empty() {
            return Err(ServiceError::CredentialNotSet);
        }
        // A hash under a pepper that is not loaded cannot be checked: 503 before anything is
        // counted, like a full queue.
        for (_, _, phc) in &offered {
            self.hasher.check_usable(phc)?;
        }
        // A full hashing queue is answered before anything is counted: a 503 is no guess.
        let permit = self.hasher.admit()?;
        let mut refusals = Refusals::default();
        for (factor, attempt, phc) in offered {
            let forms = check_forms(factor, attempt);
            let check = || async {
                // One attempt, however many forms of it are tried (see `check_forms`).
                for (i, form) in forms.iter().enumerate() {
                    let v = permit.verify(form.expose_secret(), phc).await?;
                    if v.matches {
                        return Ok(Some((v, i)));
                    }
                }
                Ok(None)
            };
            let checked = match reset {
                ResetAfterSuccess::Now => self.guarded(sub, factor.into(), check).await?,
                ResetAfterSuccess::ByCaller => {
                    self.guarded_until_success(sub, factor.into(), check)
                        .await?
                }
            };
            match checked {
                Checked::Passed((v, i)) => {
                    drop(permit);
                    // A hash of the raw input is replaced by one of its normalized form, so the
                    // next check needs one hash only.
                    if v.outdated || i > 0 {
                        self.upgrade_hash(sub, factor, &forms[0], phc).await;
                    }
                    return Ok(factor);
                }
                Checked::Failed => refusals.failed = true,
                Checked::Locked { retry_after } => {
                    refusals.locked =
                        Some(refusals.locked.map_or(retry_after, |w| w.min(retry_after)));
                }
                Checked::Disabled => refusals.disabled = true,
            }
        }
        Err(refusals.into_error())
    }

    /// Re-hashes with the current parameters after a successful check. Best effort: a failure
    /// here must not fail the login, and the old hash stays valid.
    async fn upgrade_hash(&self, sub: &Subject, factor: Factor, secret: &SecretString, old: &str) {
        let result = async {
            let new = self.hasher.hash(secret.expose_secret()).await?;
            self.store
                .upgrade_hash(sub, factor, old, &new, to_millis(self.clock.now()))
                .await?;
            Ok::<_, ServiceError>(())
        }
        .await;
        if let Err(e) = result {
            tracing::warn!(factor = factor.as_str(), error = %e, "could not upgrade a hash to the current parameters");
        }
    }

    /// Benchmarks only (`otpd dev bench-otps`, development mode): `count` live OTPs for `sub`
    /// without any proof, as their digits.
    pub async fn issue_bench_otps(
        &self,
        sub: &Subject,
        count: usize,
    ) -> Result<Vec<String>, ServiceError> {
        let mut codes = Vec::with_capacity(count);
        for _ in 0..count {
            let issued = self.create_otp(sub, "factor=bench", None, None).await?;
            codes.push(issued.code.expose().to_owned());
        }
        Ok(codes)
    }

    /// Draws a code, stores its digest, and returns it with its expiry; with `requires`, only while
    /// that factor is still set; resets the attempt counter of `reset_attempts` in the same
    /// transaction.
    pub(crate) async fn create_otp(
        &self,
        sub: &Subject,
        audit_detail: &str,
        requires: Option<Factor>,
        reset_attempts: Option<GuardedFactor>,
    ) -> Result<IssuedOtp, ServiceError> {
        let now = self.clock.now();
        let expires_at = (now + self.otp.ttl)
            .replace_nanosecond(0)
            .map_err(|e| anyhow!("expiry out of range: {e}"))?;
        for _ in 0..MAX_DRAWS {
            let code = OtpCode::generate(self.otp.digits, &mut rand::rng());
            let digest = self.otp_key.digest(sub.as_str(), code.expose());
            let new = NewOtp {
                digest: &digest,
                created_at: to_millis(now),
                expires_at: to_millis(expires_at),
                max_live: self.otp.max_live,
                audit_detail,
                requires,
                reset_attempts,
            };
            match self.store.insert_otp(sub, new).await? {
                OtpInsert::Inserted => return Ok(IssuedOtp { code, expires_at }),
                OtpInsert::DigestTaken => {}
                // Erased (DELETE /user) or reset since it was checked: as if it had not been set.
                OtpInsert::CredentialGone => return Err(ServiceError::CredentialNotSet),
            }
        }
        Err(anyhow!("{MAX_DRAWS} OTP draws in a row collided with stored digests").into())
    }
}
