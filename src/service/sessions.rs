//! Login sessions (`PUT /sessions/{sessionId}`, docs/sessions.md): the identity provider creates a
//! session for a user, otpd issues a login OTP for it and mails it where it knows a verified
//! address; later the provider reports the OTP passed.

use super::clock::to_millis;
use super::otp::IssuedOtp;
use super::{ServiceError, Services};
use crate::domain::{EmailAddress, OtpCode, SessionId, Subject};
use crate::request_span::in_current_request;
use crate::store::{MailQuota, NewSession, SessionCreated, SessionPassed};
use anyhow::anyhow;
use std::sync::Arc;

/// How many times a freshly drawn login OTP may collide with a stored digest (as in `otp.rs`).
const MAX_DRAWS: usize = 3;

/// What a session update came to.
#[derive(Debug)]
pub enum SessionAnswer {
    /// A new session: its login OTP (200 `{otp, expiresAt}`).
    Created(IssuedOtp),
    /// A known session of this user: recorded or already so (204).
    Updated,
}

/// Why a login OTP was or was not mailed (the `result` label of `otpd_mails_total`).
enum Mailed {
    Sent,
    Skipped(&'static str),
}

impl Services {
    /// `passed`: the provider reports the session's login OTP passed; else it asks for the
    /// session. Runs to its end even if the request is dropped, like `mail_otp`: a login OTP
    /// whose mail failed must be withdrawn.
    pub async fn update_session(
        self: Arc<Self>,
        id: SessionId,
        user: Subject,
        passed: bool,
    ) -> Result<SessionAnswer, ServiceError> {
        tokio::spawn(in_current_request(async move {
            let answer = self.session_update(&id, &user, passed).await;
            if let Err(outcome) = answer.as_ref().map_err(outcome_of) {
                self.metrics.session(outcome);
            }
            answer
        }))
        .await
        .map_err(|e| ServiceError::Internal(anyhow!("session task failed: {e}")))?
    }

    async fn session_update(
        &self,
        id: &SessionId,
        user: &Subject,
        passed: bool,
    ) -> Result<SessionAnswer, ServiceError> {
        let label = id.audit_label();
        let digest = id.digest();
        let now = self.clock.now();
        if passed {
            return match self
                .store
                .pass_session(user, &digest, &label, to_millis(now))
                .await?
            {
                SessionPassed::Passed => {
                    self.metrics.session("passed");
                    Ok(SessionAnswer::Updated)
                }
                SessionPassed::AlreadyPassed => {
                    self.metrics.session("unchanged");
                    Ok(SessionAnswer::Updated)
                }
                SessionPassed::Mismatch => Err(ServiceError::SessionMismatch),
                // A session must be created (and its OTP issued) before it can be passed.
                SessionPassed::Unknown => Err(ServiceError::SessionNotFound),
            };
        }
        let expires_at = (now + self.otp.ttl)
            .replace_nanosecond(0)
            .map_err(|e| anyhow!("expiry out of range: {e}"))?;
        let session_ttl = i64::try_from(self.session_ttl.0.as_millis()).unwrap_or(i64::MAX);
        for _ in 0..MAX_DRAWS {
            let code = OtpCode::generate(self.otp.digits, &mut rand::rng());
            let otp_digest = self.otp_key.digest(user.as_str(), code.expose());
            let new = NewSession {
                id_digest: &digest,
                label: &label,
                created_at: to_millis(now),
                expires_at: to_millis(now).saturating_add(session_ttl),
                otp_digest: &otp_digest,
                otp_expires_at: to_millis(expires_at),
                max_live: self.otp.max_live,
            };
            match self.store.create_session(user, new).await? {
                SessionCreated::Created => {
                    self.metrics.session("created");
                    self.metrics.otp_issued("login");
                    let issued = IssuedOtp { code, expires_at };
                    self.mail_login_otp(user, &issued, id, &otp_digest).await?;
                    return Ok(SessionAnswer::Created(issued));
                }
                // A repeated or concurrent creation: one OTP per session, the others get 204.
                SessionCreated::Exists { same_user: true } => {
                    self.metrics.session("unchanged");
                    return Ok(SessionAnswer::Updated);
                }
                SessionCreated::Exists { same_user: false } => {
                    return Err(ServiceError::SessionMismatch);
                }
                SessionCreated::UnknownUser => return Err(ServiceError::UnknownUser),
                SessionCreated::DigestTaken => {}
            }
        }
        Err(anyhow!("{MAX_DRAWS} login OTP draws in a row collided with stored digests").into())
    }

    /// Mails the login OTP if otpd can: a mailer, a remembered address, room in the user's hourly
    /// mail limit. Without one of them the OTP is only in the answer (docs/sessions.md). A mail
    /// server that refuses withdraws the session and its OTP: `LoginMailFailed`.
    async fn mail_login_otp(
        &self,
        user: &Subject,
        issued: &IssuedOtp,
        id: &SessionId,
        otp_digest: &[u8],
    ) -> Result<(), ServiceError> {
        let result = match self.try_mail_login_otp(user, issued).await {
            Ok(Mailed::Sent) => "sent",
            Ok(Mailed::Skipped(why)) => why,
            Err(cause) => {
                self.metrics.mail("failed");
                let now = to_millis(self.clock.now());
                let withdrawn = self
                    .store
                    .withdraw_session(user, &id.digest(), otp_digest, &id.audit_label(), now)
                    .await;
                if let Err(e) = withdrawn {
                    // Nobody received the code and it expires on its own; still worth an alarm.
                    tracing::error!(error = %e, "could not withdraw a session whose login OTP mail failed");
                }
                return Err(ServiceError::LoginMailFailed(cause));
            }
        };
        self.metrics.mail(result);
        Ok(())
    }

    /// Remembers where login OTPs of `sub` go (docs/sessions.md): an address the identity
    /// provider vouched for on the user's own token (`email_verified`) and the mail server just
    /// took a message for (an OTP or a password link). Best effort: that mail went out either way.
    pub(super) async fn remember_mailed_address(&self, sub: &Subject, to: &EmailAddress) {
        let now = to_millis(self.clock.now());
        if let Err(e) = self.store.remember_email(sub, to.as_str(), now).await {
            tracing::warn!(error = %e, "could not remember the address a mail went to");
        }
    }

    async fn try_mail_login_otp(
        &self,
        user: &Subject,
        issued: &IssuedOtp,
    ) -> anyhow::Result<Mailed> {
        let Some(mailer) = self.mailer.as_ref() else {
            return Ok(Mailed::Skipped("not-configured"));
        };
        let address = self.store.known_email(user).await?;
        let Some(to) = address.as_deref().and_then(EmailAddress::parse) else {
            return Ok(Mailed::Skipped("no-address"));
        };
        let now = to_millis(self.clock.now());
        let window = i64::try_from(super::mail::MAIL_WINDOW.as_millis()).unwrap_or(i64::MAX);
        let quota = self
            .store
            .reserve_mail(user, now, window, self.mail_per_hour)
            .await?;
        if let MailQuota::Exhausted { .. } = quota {
            return Ok(Mailed::Skipped("limited"));
        }
        mailer
            .send(super::mail::compose(&to, issued, self.otp.ttl))
            .await?;
        Ok(Mailed::Sent)
    }
}

/// The `otpd_sessions_total` outcome of an update that failed (`withdrawn`: created, then taken
/// back because its mail failed, so it was counted `created` too).
fn outcome_of(e: &ServiceError) -> &'static str {
    match e {
        ServiceError::UnknownUser => "unknown-user",
        ServiceError::SessionMismatch => "mismatch",
        ServiceError::SessionNotFound => "unknown-session",
        ServiceError::LoginMailFailed(_) => "withdrawn",
        _ => "error",
    }
}
