//! The mail settings: the SMTP server and sender of OTP mails (`smtp_url`, `mail_from`) and how
//! many a user may ask for (`mail_per_hour`).

use super::{ConfigError, Lines, Source, invalid, redact_url_password};
use crate::mail::SmtpSettings;

/// Sending (the SMTP adapter's part) and the per-user limit (the use case's part).
#[derive(Clone, Debug)]
pub struct MailSettings {
    /// `None` when `smtp_url` is empty: the mail endpoint answers 503.
    pub smtp: Option<SmtpSettings>,
    pub per_hour: u32,
}

impl MailSettings {
    pub(super) fn from_source(src: &Source) -> Result<Self, ConfigError> {
        let per_hour = src.in_range("mail_per_hour", 5u32, 1..=1000)?;
        let smtp = match src.get("smtp_url") {
            None => None,
            Some(url) => {
                if !["smtp://", "smtps://"].iter().any(|p| url.starts_with(p)) {
                    return Err(invalid("smtp_url", "must start with smtp:// or smtps://"));
                }
                let from = src
                    .get("mail_from")
                    .ok_or_else(|| invalid("mail_from", "required when smtp_url is set"))?;
                Some(SmtpSettings {
                    url: url.to_owned(),
                    from: from.to_owned(),
                })
            }
        };
        Ok(Self { smtp, per_hour })
    }

    pub(super) fn describe(&self, out: &mut Lines) {
        let smtp = self.smtp.as_ref();
        out.extend([
            (
                "smtp_url",
                smtp.map(|m| redact_url_password(&m.url))
                    .unwrap_or_default(),
            ),
            (
                "mail_from",
                smtp.map(|m| m.from.clone()).unwrap_or_default(),
            ),
            ("mail_per_hour", self.per_hour.to_string()),
        ]);
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{assert_refused, load};

    #[test]
    fn smtp_credentials_are_redacted_and_mail_needs_a_sender() {
        let url = "smtp://otpd:s3cr3t-pw@mail.example.com:587?tls=required";
        let e = load(&[("OTPD_SMTP_URL", url)]).unwrap_err();
        assert!(e.to_string().contains("mail_from"), "{e}");
        let c = load(&[
            ("OTPD_SMTP_URL", url),
            ("OTPD_MAIL_FROM", "otpd@example.com"),
        ])
        .unwrap();
        assert!(!c.describe().contains("s3cr3t"), "{}", c.describe());
        assert!(!format!("{c:?}").contains("s3cr3t"));
        assert!(!format!("{:?}", c.mail).contains("s3cr3t"));
        assert!(
            c.describe()
                .contains("smtp_url = smtp://otpd:***@mail.example.com:587?tls=required")
        );
        assert_refused(&[
            ("OTPD_SMTP_URL", "http://x", "smtp_url"),
            ("OTPD_MAIL_PER_HOUR", "0", "mail_per_hour"),
        ]);
    }
}
