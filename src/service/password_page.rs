//! What the password pages ask of a link: opening one (a GET, which never consumes it: mail
//! scanners fetch links) and using one (the form's POST: policy, the reset's prove, then the link
//! consumed and the password set in one transaction, so two tabs cannot both use it).

use super::clock::to_millis;
use super::password_reset::{EraseReason, ProveCheck, ProveOptions};
use super::{ServiceError, Services};
use crate::domain::password_link::link_problem;
use crate::domain::{LinkProblem, LinkPurpose, LinkToken, PasswordRejection, Subject};
use crate::store::{Erased, LinkUse, LinkUsed};
use secrecy::SecretString;
use std::time::Duration;

/// A usable link, as the page shows it.
#[derive(Debug, Clone)]
pub struct OpenLink {
    pub sub: Subject,
    pub purpose: LinkPurpose,
    pub email: String,
    /// What a reset would keep with a prove (empty for a set link).
    pub prove: ProveOptions,
    pub min_length: usize,
}

/// What the form sent.
pub struct PasswordForm {
    pub password: SecretString,
    pub prove: Option<SecretString>,
    /// "I don't have it": erase the PIN and device TOTPs.
    pub skip: bool,
}

/// The password is set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PasswordSet {
    pub purpose: LinkPurpose,
    pub erased: Option<(EraseReason, Erased)>,
}

/// Why the form was not followed; each is shown on the page.
#[derive(Debug)]
pub enum PageError {
    Link(LinkProblem),
    /// A set link, but the user has a password by now.
    PasswordAlreadySet,
    Rejected(PasswordRejection),
    /// The reset needs a prove or the skip.
    ProveMissing,
    WrongProve {
        tries_left: u32,
    },
    ProveLocked {
        retry_after: Duration,
    },
    ProveDisabled,
    Service(ServiceError),
}

impl From<crate::store::StoreError> for PageError {
    fn from(e: crate::store::StoreError) -> Self {
        PageError::Service(e.into())
    }
}

impl From<ServiceError> for PageError {
    fn from(e: ServiceError) -> Self {
        PageError::Service(e)
    }
}

impl Services {
    /// The link's state and what its page needs; changes nothing.
    pub async fn open_password_link(
        &self,
        token: &LinkToken,
        page: LinkPurpose,
    ) -> Result<OpenLink, PageError> {
        let digest = self.link_key.digest(token);
        let Some(row) = self.store.password_link(&digest).await? else {
            return Err(PageError::Link(LinkProblem::Unknown));
        };
        if !self.link_key.sealed(token, &row) {
            // Only a change made to the row without the key gets here.
            tracing::error!("a password link row does not match its seal; refused");
            return Err(PageError::Link(LinkProblem::Unknown));
        }
        let purpose = LinkPurpose::parse(&row.purpose).filter(|p| *p == page);
        let (Some(purpose), Some(sub)) = (purpose, Subject::parse(&row.sub)) else {
            return Err(PageError::Link(LinkProblem::Unknown));
        };
        let now = to_millis(self.clock.now());
        if let Some(problem) = link_problem(row.used_at, row.retired_at, row.expires_at, now) {
            return Err(PageError::Link(problem));
        }
        let prove = match purpose {
            LinkPurpose::Set => {
                if self.store.credentials(&sub).await?.password_hash.is_some() {
                    // Perhaps this very link set it since the row was read (another tab): the
                    // link's state, read again now, says so more precisely.
                    let again = self.store.password_link(&digest).await?;
                    let used = again
                        .and_then(|r| link_problem(r.used_at, r.retired_at, r.expires_at, now));
                    return Err(used.map_or(PageError::PasswordAlreadySet, PageError::Link));
                }
                ProveOptions::default()
            }
            LinkPurpose::Reset => self.prove_options(&sub).await?,
        };
        Ok(OpenLink {
            sub,
            purpose,
            email: row.email,
            prove,
            min_length: self.password_policy.min_chars,
        })
    }

    /// Sets the password through the link: policy first (a refusal leaves the link usable), then
    /// the reset's prove, then the hash, then one transaction that consumes the link, stores the
    /// password and (skip or too many wrong proves) erases the PIN and device TOTPs.
    pub async fn use_password_link(
        &self,
        token: &LinkToken,
        page: LinkPurpose,
        form: PasswordForm,
    ) -> Result<PasswordSet, PageError> {
        let link = self.open_password_link(token, page).await?;
        let password = self
            .new_password(&link.sub, Some(&link.email), form.password)
            .map_err(PageError::Rejected)?;
        let erase = if link.prove.is_empty() {
            None
        } else if form.skip {
            Some(EraseReason::Skipped)
        } else {
            let prove = form.prove.ok_or(PageError::ProveMissing)?;
            match self.check_prove(&link.sub, &prove, link.prove).await? {
                ProveCheck::Passed => None,
                ProveCheck::Exhausted => Some(EraseReason::WrongProves),
                ProveCheck::Wrong { tries_left } => {
                    return Err(PageError::WrongProve { tries_left });
                }
                ProveCheck::Locked { retry_after } => {
                    return Err(PageError::ProveLocked { retry_after });
                }
                ProveCheck::Disabled => return Err(PageError::ProveDisabled),
            }
        };
        let phc = self
            .hasher
            .hash(password.expose())
            .await
            .map_err(ServiceError::from)?;
        let digest = self.link_key.digest(token);
        let erase_detail = erase.map(|r| format!("{} via=reset-page", r.as_str()));
        let audit_detail = format!("via=link purpose={}", link.purpose.as_str());
        let used = self
            .store
            .use_password_link(
                &link.sub,
                LinkUse {
                    digest: &digest,
                    phc: &phc,
                    require_no_password: link.purpose == LinkPurpose::Set,
                    erase: erase_detail.as_deref(),
                    audit_detail: &audit_detail,
                    now: to_millis(self.clock.now()),
                },
            )
            .await
            .map_err(ServiceError::from)?;
        match used {
            LinkUsed::Done { erased } => {
                // Long polls on `GET /user/password` (and `/user/pin`) end now.
                self.watch.changed(&link.sub);
                Ok(PasswordSet {
                    purpose: link.purpose,
                    erased: erase.zip(erased),
                })
            }
            LinkUsed::PasswordAlreadySet => Err(PageError::PasswordAlreadySet),
            // Another request used (or a new mail retired) the link since we opened it.
            LinkUsed::NotUsable => match self.open_password_link(token, page).await {
                Err(e) => Err(e),
                Ok(_) => Err(PageError::Link(LinkProblem::Used)),
            },
        }
    }
}
