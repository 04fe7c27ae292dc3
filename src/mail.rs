//! The SMTP side of OTP mail: `OTPD_SMTP_URL` names the server (plain, STARTTLS or TLS, with
//! optional AUTH credentials), `OTPD_MAIL_FROM` the sender. TLS uses rustls with ring and the
//! WebPKI roots, like every other TLS client in otpd.

use crate::config::redact_url_password;
use crate::service::mail::{Mailer, OutgoingMail};
use anyhow::Context;
use async_trait::async_trait;
use lettre::message::{Mailbox, header::ContentType};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use secrecy::ExposeSecret;
use std::fmt;
use std::time::Duration;

/// Longest a single delivery may take (connect, TLS, AUTH, DATA) before it counts as failed.
const SMTP_TIMEOUT: Duration = Duration::from_secs(10);

/// Where OTP mails go out. The URL may carry SMTP credentials: never print it unredacted.
#[derive(Clone)]
pub struct SmtpSettings {
    pub url: String,
    pub from: String,
}

impl fmt::Debug for SmtpSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmtpSettings")
            .field("url", &redact_url_password(&self.url))
            .field("from", &self.from)
            .finish()
    }
}

pub struct SmtpMailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

impl SmtpMailer {
    /// Builds the transport; connects lazily on the first mail.
    pub fn new(settings: &SmtpSettings) -> anyhow::Result<Self> {
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(&settings.url)
            .context("setting `smtp_url` (OTPD_SMTP_URL) is not a usable SMTP URL")?
            .timeout(Some(SMTP_TIMEOUT))
            .build();
        let from = settings
            .from
            .parse()
            .context("setting `mail_from` (OTPD_MAIL_FROM) is not a mail address")?;
        Ok(Self { transport, from })
    }
}

#[async_trait]
impl Mailer for SmtpMailer {
    async fn send(&self, mail: OutgoingMail) -> anyhow::Result<()> {
        let to: Mailbox = mail
            .to
            .as_str()
            .parse()
            .context("the recipient address is not usable")?;
        let message = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(mail.subject)
            .header(ContentType::TEXT_PLAIN)
            .body(mail.body.expose_secret().to_owned())
            .context("composing the mail")?;
        self.transport
            .send(message)
            .await
            .context("the SMTP server did not take the mail")?;
        Ok(())
    }
}

/// Development mode without `smtp_url`: each mail is printed on the standard error of
/// `otpd serve --dev` instead of being sent, so `POST /user/otp/sendmail` can be tried without a
/// mail server. Never used outside development mode: it shows the OTP.
pub struct ConsoleMailer;

#[async_trait]
impl Mailer for ConsoleMailer {
    async fn send(&self, mail: OutgoingMail) -> anyhow::Result<()> {
        eprintln!(
            "\n--- development mode: this mail was not sent ---\nTo: {}\nSubject: {}\n\n{}\n--- end of mail ---\n",
            mail.to.as_str(),
            mail.subject,
            mail.body.expose_secret()
        );
        Ok(())
    }
}
