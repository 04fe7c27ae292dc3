//! The use cases: one function per thing a caller can ask for. Owns the order of checks, the clock
//! and the hashing pool; knows nothing of HTTP or SQL.

pub mod clock;
pub mod credentials;
pub mod digest;
pub mod hasher;
pub mod mail;
pub mod otp;

use crate::domain::{OtpSettings, PinPolicy};
use crate::metrics::Metrics;
use crate::store::{Store, StoreError};
pub use clock::{Clock, ManualClock, SystemClock};
pub use digest::OtpKey;
pub use hasher::{HashError, Hasher};
pub use mail::Mailer;
use std::sync::Arc;

/// Everything the use cases need, built once by `app`.
pub struct Services {
    pub store: Arc<dyn Store>,
    pub hasher: Hasher,
    pub clock: Arc<dyn Clock>,
    pub otp_key: OtpKey,
    pub otp: OtpSettings,
    pub pin_policy: PinPolicy,
    /// The app's metrics recorder (see `crate::metrics` for why it is not global).
    pub metrics: Metrics,
    /// `None` when no SMTP server is configured.
    pub mailer: Option<Arc<dyn Mailer>>,
    pub mail_per_hour: u32,
}

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("none of the given credentials is valid")]
    InvalidCredentials,
    #[error("none of the given credentials is set for the user")]
    CredentialNotSet,
    #[error("too many hashing requests waiting")]
    Overloaded,
    #[error("mail is not configured")]
    MailNotConfigured,
    #[error("too many mails; retry in {retry_after} s")]
    MailLimit { retry_after: u64 },
    #[error("the mail could not be sent: {0:#}")]
    MailFailed(anyhow::Error),
    #[error("database unavailable")]
    Unavailable(#[source] StoreError),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<StoreError> for ServiceError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(_) => ServiceError::Unavailable(e),
            other => ServiceError::Internal(other.into()),
        }
    }
}

impl From<HashError> for ServiceError {
    fn from(e: HashError) -> Self {
        match e {
            HashError::Overloaded => ServiceError::Overloaded,
            other => ServiceError::Internal(other.into()),
        }
    }
}
