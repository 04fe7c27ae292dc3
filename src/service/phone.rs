//! The user's phone number (PACE CheckUserPhone, UpdateUserPhone, VerifyUserPhone): a new number
//! waits for the code sent to it by SMS; the code is stored only as an HMAC digest under the OTP
//! key, bound to user and number, lives `phone_code_ttl_seconds`, is consumed once, and wrong
//! codes count under the `phone` attempt limit. Sends are limited per user and per number. See
//! docs/phone.md for the decisions.

use super::attempts::Checked;
use super::clock::to_millis;
use super::mail::OutgoingMail;
use super::sms::{SMS_WINDOW, SmsFailure};
use super::{ServiceError, Services};
use crate::domain::{EmailAddress, GuardedFactor, OtpCode, PhoneCode, PhoneNumber, Subject};
use crate::request_span::in_current_request;
use crate::store::{NewPhoneCode, SmsLimits, SmsQuota, StoredPhone};
use secrecy::SecretString;
use std::sync::Arc;
use std::time::Duration;

/// PACE: "If the process is not completed within 24h the process is canceled."
pub const PHONE_CHANGE_LIFETIME: Duration = Duration::from_secs(24 * 3600);

/// `phone_code_ttl_seconds`, `sms_per_user_per_hour`, `sms_per_number_per_hour`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PhoneSettings {
    pub code_ttl: Duration,
    pub per_user_per_hour: u32,
    pub per_number_per_hour: u32,
}

impl Default for PhoneSettings {
    fn default() -> Self {
        Self {
            code_ttl: Duration::from_secs(600),
            per_user_per_hour: 5,
            per_number_per_hour: 3,
        }
    }
}

/// What `GET /user/phone` answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PhoneStatus {
    /// A verified number is in force (a change may be pending).
    Verified,
    /// A number awaits its code, and none is verified.
    Pending,
    None,
}

/// What `PUT /user/phone` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PhoneUpdate {
    /// The number is the verified one already: nothing sent (a pending change was cancelled).
    AlreadyVerified,
    /// A code went out by SMS; the number is set but not verified.
    CodeSent,
}

/// The refusals of the phone use cases (their statuses are the HTTP layer's).
#[derive(Debug, thiserror::Error)]
pub enum PhoneRefusal {
    #[error("the user has no phone number")]
    NotSet,
    #[error("the code is unknown, expired or used")]
    CodeInvalid,
    #[error("no SMS gateway is configured")]
    SmsNotConfigured,
    #[error("too many SMS; retry in {retry_after} s")]
    SmsLimit { retry_after: u64 },
    #[error("the SMS could not be sent: {0}")]
    SmsFailed(SmsFailure),
}

impl From<PhoneRefusal> for ServiceError {
    fn from(r: PhoneRefusal) -> Self {
        ServiceError::Phone(r)
    }
}

impl StoredPhone {
    /// The pending number, unless its change is older than 24 h (cancelled, even before the
    /// retention job clears it).
    fn live_pending(&self, now: i64) -> Option<&str> {
        let lifetime = i64::try_from(PHONE_CHANGE_LIFETIME.as_millis()).unwrap_or(i64::MAX);
        match (&self.pending_number, self.pending_since) {
            (Some(n), Some(since)) if since > now - lifetime => Some(n),
            _ => None,
        }
    }
}

/// The text a code's digest is computed over: user (by `OtpKey`), a label that keeps phone
/// codes apart from account OTPs, and the number the code was sent to.
fn digest_input(number: &str, code: &str) -> String {
    format!("phone\0{number}\0{code}")
}

impl Services {
    pub async fn phone_status(&self, sub: &Subject) -> Result<PhoneStatus, ServiceError> {
        let stored = self.store.phone(sub).await?;
        let now = to_millis(self.clock.now());
        Ok(if stored.verified_number.is_some() {
            PhoneStatus::Verified
        } else if stored.live_pending(now).is_some() {
            PhoneStatus::Pending
        } else {
            PhoneStatus::None
        })
    }

    /// Sets `number` as the user's pending number and sends it a code; `notify` is where the
    /// security notice goes when a verified number is being replaced. Runs to its end even if
    /// the request is dropped, like `mail_otp`: a code must not stay valid after its SMS failed.
    pub async fn update_phone(
        self: Arc<Self>,
        sub: Subject,
        number: PhoneNumber,
        notify: Option<EmailAddress>,
    ) -> Result<PhoneUpdate, ServiceError> {
        tokio::spawn(in_current_request(async move {
            self.change_phone(&sub, number, notify).await
        }))
        .await
        .map_err(|e| ServiceError::Internal(anyhow::anyhow!("phone task failed: {e}")))?
    }

    async fn change_phone(
        &self,
        sub: &Subject,
        number: PhoneNumber,
        notify: Option<EmailAddress>,
    ) -> Result<PhoneUpdate, ServiceError> {
        let stored = self.store.phone(sub).await?;
        if stored.verified_number.as_deref() == Some(number.as_str()) {
            self.store
                .cancel_phone_change(sub, to_millis(self.clock.now()))
                .await?;
            return Ok(PhoneUpdate::AlreadyVerified);
        }
        let sender = self.sms.as_ref().ok_or(PhoneRefusal::SmsNotConfigured)?;
        let now = self.clock.now();
        let now_ms = to_millis(now);
        let window = i64::try_from(SMS_WINDOW.as_millis()).unwrap_or(i64::MAX);
        let number_key = format!(
            "n:{}",
            data_encoding::HEXLOWER.encode(&self.otp_key.digest("sms-quota", number.as_str()))
        );
        let limits = SmsLimits {
            number_key: &number_key,
            window,
            per_user: self.phone.per_user_per_hour,
            per_number: self.phone.per_number_per_hour,
        };
        match self.store.reserve_sms(sub, limits, now_ms).await? {
            SmsQuota::Granted => {}
            limited @ (SmsQuota::UserExhausted { window_ends }
            | SmsQuota::NumberExhausted { window_ends }) => {
                let which = match limited {
                    SmsQuota::UserExhausted { .. } => "user",
                    _ => "number",
                };
                self.metrics.sms("limited", which);
                let wait_ms = u64::try_from(window_ends - now_ms).unwrap_or(0);
                return Err(PhoneRefusal::SmsLimit {
                    retry_after: Duration::from_millis(wait_ms).as_secs().max(1),
                }
                .into());
            }
        }
        let code = OtpCode::generate(
            crate::domain::phone::PHONE_CODE_DIGITS as u8,
            &mut rand::rng(),
        );
        let digest = self
            .otp_key
            .digest(sub.as_str(), &digest_input(number.as_str(), code.expose()));
        let replaces = stored.verified_number.is_some();
        let detail = format!("replaces_verified={}", u8::from(replaces));
        self.store
            .start_phone_change(
                sub,
                NewPhoneCode {
                    digest: &digest,
                    number: number.as_str(),
                    created_at: now_ms,
                    expires_at: now_ms
                        + i64::try_from(self.phone.code_ttl.as_millis()).unwrap_or(i64::MAX),
                    audit_detail: &detail,
                },
            )
            .await?;
        let sms = self.compose_code_sms(&number, code.expose())?;
        if let Err(failure) = sender.send(sms).await {
            self.metrics.sms("failed", failure.reason());
            let withdrawn = self
                .store
                .withdraw_phone_code(sub, &digest, now_ms, to_millis(self.clock.now()))
                .await;
            if let Err(e) = withdrawn {
                // Nobody knows the code and it expires on its own; still worth an alarm.
                tracing::error!(error = %e, "could not withdraw a phone code whose SMS failed");
            }
            return Err(PhoneRefusal::SmsFailed(failure).into());
        }
        self.metrics.sms("sent", "none");
        if let Some(old) = stored.verified_number {
            self.send_change_notice(notify, &PhoneNumber::from_stored(old), &number)
                .await;
        }
        Ok(PhoneUpdate::CodeSent)
    }

    /// PACE: "email to confirm the update" (omitted the first time). Best effort: the change
    /// itself needs the code anyway, so a missing address or a failed mail does not stop it.
    async fn send_change_notice(
        &self,
        to: Option<EmailAddress>,
        old: &PhoneNumber,
        new: &PhoneNumber,
    ) {
        let (Some(mailer), Some(to)) = (self.mailer.as_ref(), to) else {
            tracing::info!(
                "phone change of a verified number: no mailer or no verified address for the notice"
            );
            return;
        };
        let name = "mail/phone-changed.txt";
        let rendered = self.templates.render(
            name,
            minijinja::context! {
                service_name => self.links.service_name.as_str(),
                email => to.as_str(),
                old_number => old.masked(),
                new_number => new.masked(),
            },
        );
        let text = match rendered {
            Ok(text) => text,
            Err(e) => {
                tracing::error!(error = %e, "mail template {name}");
                return;
            }
        };
        let (subject, body) = match text.split_once('\n') {
            Some((first, rest)) if first.starts_with("Subject:") => (
                first["Subject:".len()..].trim().to_owned(),
                rest.trim_start_matches(['\r', '\n']).to_owned(),
            ),
            _ => ("Your phone number is being changed".to_owned(), text),
        };
        let mail = OutgoingMail {
            to,
            subject,
            body: SecretString::from(body),
        };
        match mailer.send(mail).await {
            Ok(()) => self.metrics.mail("sent"),
            Err(e) => {
                self.metrics.mail("failed");
                tracing::warn!(error = format!("{e:#}"), "phone change notice not sent");
            }
        }
    }

    /// Verifies the pending number with the code sent to it, under the `phone` attempt limit.
    pub async fn verify_phone(&self, sub: &Subject, raw: SecretString) -> Result<(), ServiceError> {
        let checked = self
            .guarded(sub, GuardedFactor::Phone, || async {
                let Some(code) = PhoneCode::parse(raw) else {
                    return Ok(None);
                };
                let stored = self.store.phone(sub).await?;
                let now = to_millis(self.clock.now());
                let Some(number) = stored.live_pending(now) else {
                    return Ok(None);
                };
                let digests = self
                    .otp_key
                    .candidate_digests(sub.as_str(), &digest_input(number, code.expose()));
                let verified = self.store.verify_phone_code(sub, &digests, now).await?;
                Ok(verified.then_some(()))
            })
            .await?;
        match checked {
            Checked::Passed(()) => Ok(()),
            Checked::Failed => Err(PhoneRefusal::CodeInvalid.into()),
            Checked::Locked { retry_after } => Err(ServiceError::CredentialLocked { retry_after }),
            Checked::Disabled => Err(ServiceError::CredentialDisabled),
        }
    }
}
