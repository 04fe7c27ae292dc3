//! Mailing an account OTP (`POST /user/otp/sendmail`): count the mail against the user's hourly
//! limit, issue the OTP, send it; if sending fails, withdraw the OTP so no valid code is left that
//! nobody received.

use super::clock::to_millis;
use super::otp::IssuedOtp;
use super::{ServiceError, Services};
use crate::domain::{EmailAddress, Subject};
use crate::request_span::in_current_request;
use crate::store::MailQuota;
use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};
use std::sync::Arc;
use std::time::Duration;
use time::OffsetDateTime;

/// The window of the per-user mail limit.
pub const MAIL_WINDOW: Duration = Duration::from_secs(3600);

/// A message to one recipient. The body holds the code, so it is a secret.
pub struct OutgoingMail {
    pub to: EmailAddress,
    pub subject: String,
    pub body: SecretString,
}

/// Where mail goes out (SMTP in production; see `crate::mail`).
#[async_trait]
pub trait Mailer: Send + Sync + 'static {
    /// Delivers to the mail server; `Err` when it did not take the message.
    async fn send(&self, mail: OutgoingMail) -> anyhow::Result<()>;
}

impl Services {
    /// Runs to its end even if the request is dropped (client gone, request timeout): otherwise an
    /// OTP could stay valid after its mail failed, or a sent mail could go uncounted.
    pub async fn mail_otp(
        self: Arc<Self>,
        sub: Subject,
        to: EmailAddress,
    ) -> Result<(), ServiceError> {
        tokio::spawn(in_current_request(async move {
            self.issue_and_mail(&sub, to).await
        }))
        .await
        .map_err(|e| ServiceError::Internal(anyhow::anyhow!("mail task failed: {e}")))?
    }

    async fn issue_and_mail(&self, sub: &Subject, to: EmailAddress) -> Result<(), ServiceError> {
        let mailer = self
            .mailer
            .as_ref()
            .ok_or(ServiceError::MailNotConfigured)?;
        let now = to_millis(self.clock.now());
        let window = i64::try_from(MAIL_WINDOW.as_millis()).unwrap_or(i64::MAX);
        if let MailQuota::Exhausted { window_ends } = self
            .store
            .reserve_mail(sub, now, window, self.mail_per_hour)
            .await?
        {
            self.metrics.mail("limited");
            let wait_ms = u64::try_from(window_ends - now).unwrap_or(0);
            return Err(ServiceError::MailLimit {
                retry_after: Duration::from_millis(wait_ms).as_secs().max(1),
            });
        }
        let issued = self.create_otp(sub, "via=mail", None, None).await?;
        let mail = compose(&to, &issued, self.otp.ttl);
        match mailer.send(mail).await {
            Ok(()) => {
                self.metrics.mail("sent");
                self.metrics.otp_issued("mail");
                self.remember_mailed_address(sub, &to).await;
                Ok(())
            }
            Err(cause) => {
                self.metrics.mail("failed");
                let digest = self.otp_key.digest(sub.as_str(), issued.code.expose());
                let revoked = self
                    .store
                    .revoke_otp(sub, &digest, "mail-failed", to_millis(self.clock.now()))
                    .await;
                if let Err(e) = revoked {
                    // Nobody knows the code and it expires on its own; still worth an alarm.
                    tracing::error!(error = %e, "could not withdraw an OTP whose mail failed");
                }
                Err(ServiceError::MailFailed(cause))
            }
        }
    }
}

/// The plain-text message: the code, when it stops working, and what to do if unexpected.
pub(super) fn compose(to: &EmailAddress, issued: &IssuedOtp, ttl: Duration) -> OutgoingMail {
    let minutes = ttl.as_secs().div_ceil(60);
    let body = format!(
        "Your one-time password is: {code}\n\
         \n\
         It is valid once, for {minutes} minute{s}, until {until}.\n\
         \n\
         If you did not ask for it, ignore this message; nobody can use the code without your account.\n",
        code = issued.code.expose(),
        s = if minutes == 1 { "" } else { "s" },
        until = mail_datetime(issued.expires_at),
    );
    OutgoingMail {
        to: to.clone(),
        subject: "Your one-time password".to_owned(),
        body: SecretString::from(body),
    }
}

/// `2026-11-25 20:31:00 UTC`: readable, unambiguous.
pub(super) fn mail_datetime(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    t.format(time::macros::format_description!(
        "[year]-[month]-[day] [hour]:[minute]:[second] UTC"
    ))
    .unwrap_or_default()
}

impl std::fmt::Debug for OutgoingMail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutgoingMail")
            .field("to", &self.to)
            .field("subject", &self.subject)
            .field("body_len", &self.body.expose_secret().len())
            .finish()
    }
}
