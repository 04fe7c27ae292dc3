//! Mailed password links (`PUT /user/password`, `POST /user/password/reset-link`): a random token,
//! stored only as HMAC digests bound to user, purpose, email and expiry; a mail built from a
//! template with a link under the operator's public URL (never from request headers); earlier links
//! of the user retired in the same transaction.

use super::clock::to_millis;
use super::mail::{MAIL_WINDOW, OutgoingMail};
use super::pepper::Pepper;
use super::{ServiceError, Services};
use crate::domain::password_link::LINK_TOKEN_BYTES;
use crate::domain::{EmailAddress, LinkPurpose, LinkToken, Subject};
use crate::request_span::in_current_request;
use crate::store::{MailQuota, NewLink, StoredLink};
use hmac::{Hmac, KeyInit, Mac};
use rand::Rng;
use secrecy::{ExposeSecret, SecretBox, SecretString};
use sha2::Sha256;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;
use subtle::ConstantTimeEq;

/// Where users reach otpd's pages: `https://host[:port][/prefix]`, without a trailing slash.
#[derive(Clone, PartialEq, Eq)]
pub struct PublicUrl(String);

impl PublicUrl {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let url = raw.trim().trim_end_matches('/');
        let rest = url
            .strip_prefix("https://")
            .or_else(|| url.strip_prefix("http://"))
            .ok_or("must start with https:// (or http:// for a local test)")?;
        let host = rest.split('/').next().unwrap_or("");
        if host.is_empty() || host.contains('@') {
            return Err("must name a host (and no user info)".into());
        }
        if url.contains(['?', '#', ' ', '"', '<', '>', '\\']) {
            return Err("must not have a query, a fragment or unsafe characters".into());
        }
        Ok(Self(url.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `scheme://host[:port]`: what a browser sends as `Origin` from our pages.
    pub fn origin(&self) -> &str {
        let after_scheme = self.0.find("://").map_or(0, |i| i + 3);
        match self.0[after_scheme..].find('/') {
            Some(i) => &self.0[..after_scheme + i],
            None => &self.0,
        }
    }

    /// The page a link of `purpose` opens, with the token.
    fn link(&self, purpose: LinkPurpose, token: &LinkToken) -> SecretString {
        SecretString::from(format!(
            "{}{}?token={}",
            self.0,
            page_path(purpose),
            token.encode()
        ))
    }
}

impl fmt::Debug for PublicUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicUrl({:?})", self.0)
    }
}

/// The path of the page for `purpose`, below the public URL.
pub fn page_path(purpose: LinkPurpose) -> &'static str {
    match purpose {
        LinkPurpose::Set => "/password/set",
        LinkPurpose::Reset => "/password/reset",
    }
}

/// `public_url`, `service_name` and `password_link_ttl_seconds`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkSettings {
    /// `None`: no links can be made; the endpoints that mail one answer 503.
    pub public_url: Option<PublicUrl>,
    pub service_name: String,
    pub ttl: Duration,
}

/// The key of link digests, derived from the pepper: a copy of the database alone cannot tell
/// which token belongs to a row, nor forge one.
pub struct LinkKey(SecretBox<[u8; 32]>);

const LINK_KEY_LABEL: &[u8] = b"otpd/password-link/v1";

impl LinkKey {
    pub fn derive(pepper: &Pepper) -> Self {
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(pepper.bytes())
            .expect("HMAC accepts keys of any length");
        mac.update(LINK_KEY_LABEL);
        Self(SecretBox::new(Box::new(mac.finalize().into_bytes().into())))
    }

    fn mac(&self, parts: &[&[u8]]) -> [u8; 32] {
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(self.0.expose_secret())
            .expect("HMAC accepts keys of any length");
        for part in parts {
            // Length-prefixed, so no two different tuples feed the same bytes.
            mac.update(&(part.len() as u64).to_be_bytes());
            mac.update(part);
        }
        mac.finalize().into_bytes().into()
    }

    /// The lookup key of a token.
    pub fn digest(&self, token: &LinkToken) -> [u8; 32] {
        self.mac(&[b"lookup", token.bytes()])
    }

    /// Binds a token to what its row says: a row re-pointed at another user, purpose, address or
    /// expiry no longer matches.
    pub fn seal(
        &self,
        token: &LinkToken,
        sub: &str,
        purpose: &str,
        email: &str,
        expires_at: i64,
    ) -> [u8; 32] {
        self.mac(&[
            b"seal",
            token.bytes(),
            sub.as_bytes(),
            purpose.as_bytes(),
            email.as_bytes(),
            &expires_at.to_be_bytes(),
        ])
    }

    /// Whether `row` is the row `token` was stored with.
    pub fn sealed(&self, token: &LinkToken, row: &StoredLink) -> bool {
        let expected = self.seal(token, &row.sub, &row.purpose, &row.email, row.expires_at);
        expected.ct_eq(row.seal.as_slice()).into()
    }
}

impl fmt::Debug for LinkKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("LinkKey([REDACTED])")
    }
}

impl Services {
    /// Mails a link of `purpose` to `to`. Runs to its end even if the request is dropped, like
    /// `mail_otp`: a link must not stay valid after its mail failed, nor a mail go uncounted.
    pub async fn mail_password_link(
        self: Arc<Self>,
        sub: Subject,
        to: EmailAddress,
        purpose: LinkPurpose,
    ) -> Result<(), ServiceError> {
        tokio::spawn(in_current_request(async move {
            self.issue_and_mail_link(&sub, to, purpose).await
        }))
        .await
        .map_err(|e| ServiceError::Internal(anyhow::anyhow!("mail task failed: {e}")))?
    }

    async fn issue_and_mail_link(
        &self,
        sub: &Subject,
        to: EmailAddress,
        purpose: LinkPurpose,
    ) -> Result<(), ServiceError> {
        // The user's state first: PACE answers 409 whatever the mail set-up.
        let has_password = self.store.credentials(sub).await?.password_hash.is_some();
        match purpose {
            LinkPurpose::Set if has_password => return Err(ServiceError::PasswordAlreadySet),
            LinkPurpose::Reset if !has_password => return Err(ServiceError::CredentialNotSet),
            _ => {}
        }
        let mailer = self
            .mailer
            .as_ref()
            .ok_or(ServiceError::MailNotConfigured)?;
        let public_url = self
            .links
            .public_url
            .as_ref()
            .ok_or(ServiceError::PublicUrlNotConfigured)?;
        let now = self.clock.now();
        let now_ms = to_millis(now);
        let window = i64::try_from(MAIL_WINDOW.as_millis()).unwrap_or(i64::MAX);
        if let MailQuota::Exhausted { window_ends } = self
            .store
            .reserve_mail(sub, now_ms, window, self.mail_per_hour)
            .await?
        {
            self.metrics.mail("limited");
            let wait_ms = u64::try_from(window_ends - now_ms).unwrap_or(0);
            return Err(ServiceError::MailLimit {
                retry_after: Duration::from_millis(wait_ms).as_secs().max(1),
            });
        }
        let mut bytes = [0u8; LINK_TOKEN_BYTES];
        rand::rng().fill_bytes(&mut bytes);
        let token = LinkToken::from_bytes(bytes);
        let expires = now + self.links.ttl;
        let expires_ms = to_millis(expires);
        let digest = self.link_key.digest(&token);
        let seal = self.link_key.seal(
            &token,
            sub.as_str(),
            purpose.as_str(),
            to.as_str(),
            expires_ms,
        );
        self.store
            .insert_password_link(
                sub,
                NewLink {
                    digest: &digest,
                    seal: &seal,
                    purpose,
                    email: to.as_str(),
                    created_at: now_ms,
                    expires_at: expires_ms,
                },
            )
            .await?;
        let link = public_url.link(purpose, &token);
        let mail = self.compose_link_mail(&to, purpose, &link, expires)?;
        match mailer.send(mail).await {
            Ok(()) => {
                self.metrics.mail("sent");
                self.remember_mailed_address(sub, &to).await;
                Ok(())
            }
            Err(cause) => {
                self.metrics.mail("failed");
                let withdrawn = self
                    .store
                    .withdraw_password_link(sub, &digest, to_millis(self.clock.now()))
                    .await;
                if let Err(e) = withdrawn {
                    tracing::error!(error = %e, "could not withdraw a password link whose mail failed");
                }
                Err(ServiceError::MailFailed(cause))
            }
        }
    }

    /// The mail from `mail/password-<purpose>.txt`: its first line is `Subject: …`, the rest the
    /// body. The body holds the link, so it is a secret.
    fn compose_link_mail(
        &self,
        to: &EmailAddress,
        purpose: LinkPurpose,
        link: &SecretString,
        expires: time::OffsetDateTime,
    ) -> Result<OutgoingMail, ServiceError> {
        let name = format!("mail/password-{}.txt", purpose.as_str());
        let text = self
            .templates
            .render(
                &name,
                minijinja::context! {
                    service_name => self.links.service_name.as_str(),
                    link => link.expose_secret(),
                    email => to.as_str(),
                    expires => super::mail::mail_datetime(expires),
                    hours => self.links.ttl.as_secs().div_ceil(3600),
                },
            )
            .map_err(|e| ServiceError::Internal(anyhow::anyhow!("mail template {name}: {e}")))?;
        let (subject, body) = match text.split_once('\n') {
            Some((first, rest)) if first.starts_with("Subject:") => (
                first["Subject:".len()..].trim().to_owned(),
                rest.trim_start_matches(['\r', '\n']),
            ),
            _ => (
                format!("{} password", self.links.service_name),
                text.as_str(),
            ),
        };
        Ok(OutgoingMail {
            to: to.clone(),
            subject,
            body: SecretString::from(body.to_owned()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_urls_are_absolute_http_urls_without_query() {
        let u = PublicUrl::parse("https://id.example.com/otpd/").unwrap();
        assert_eq!(u.as_str(), "https://id.example.com/otpd");
        assert_eq!(u.origin(), "https://id.example.com");
        assert_eq!(
            PublicUrl::parse("http://127.0.0.1:8080").unwrap().origin(),
            "http://127.0.0.1:8080"
        );
        for bad in [
            "",
            "id.example.com",
            "ftp://x",
            "https://",
            "https://a@b",
            "https://x/?a=1",
        ] {
            assert!(PublicUrl::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_seal_binds_user_purpose_email_and_expiry() {
        let key = LinkKey::derive(&Pepper::new("p".into(), vec![3; 32]).unwrap());
        let token = LinkToken::from_bytes([9; LINK_TOKEN_BYTES]);
        let row = StoredLink {
            sub: "u".into(),
            purpose: "set".into(),
            email: "u@example.com".into(),
            seal: key.seal(&token, "u", "set", "u@example.com", 1000).to_vec(),
            expires_at: 1000,
            used_at: None,
            retired_at: None,
        };
        assert!(key.sealed(&token, &row));
        for changed in [
            StoredLink {
                sub: "v".into(),
                ..row.clone()
            },
            StoredLink {
                purpose: "reset".into(),
                ..row.clone()
            },
            StoredLink {
                email: "x@example.com".into(),
                ..row.clone()
            },
            StoredLink {
                expires_at: 2000,
                ..row.clone()
            },
        ] {
            assert!(!key.sealed(&token, &changed));
        }
        assert_ne!(
            key.digest(&token),
            key.digest(&LinkToken::from_bytes([8; 32]))
        );
    }
}
