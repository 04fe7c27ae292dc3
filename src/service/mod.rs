//! The use cases: one function per thing a caller can ask for. Owns the order of checks, the clock
//! and the hashing pool; knows nothing of HTTP or SQL.

pub mod attempts;
pub mod clock;
pub mod credentials;
pub mod digest;
pub mod hasher;
pub mod otp;

use crate::domain::{LockoutPolicies, OtpSettings, PinPolicy};
use crate::store::{Store, StoreError};
pub use clock::{Clock, ManualClock, SystemClock};
pub use digest::OtpKey;
pub use hasher::{HashError, Hasher};
use std::sync::Arc;

/// Everything the use cases need, built once by `app`.
pub struct Services {
    pub store: Arc<dyn Store>,
    pub hasher: Hasher,
    pub clock: Arc<dyn Clock>,
    pub otp_key: OtpKey,
    pub otp: OtpSettings,
    pub pin_policy: PinPolicy,
    pub lockout: LockoutPolicies,
}

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("none of the given credentials is valid")]
    InvalidCredentials,
    #[error("none of the given credentials is set for the user")]
    CredentialNotSet,
    /// Too many recent failures: the secret was not checked.
    #[error("credential locked for {retry_after:?}")]
    CredentialLocked { retry_after: std::time::Duration },
    /// Too many failures: the credential must be set anew.
    #[error("credential disabled")]
    CredentialDisabled,
    #[error("too many hashing requests waiting")]
    Overloaded,
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
