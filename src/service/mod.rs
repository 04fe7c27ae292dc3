//! The use cases: one function per thing a caller can ask for. Owns the order of checks, the clock
//! and the hashing pool; knows nothing of HTTP or SQL.

pub mod account;
pub mod admin;
pub mod attempts;
pub mod credentials;
pub mod devices;
pub mod digest;
pub mod hasher;
pub mod hashing_settings;
pub mod import;
pub mod imported_hash;
pub mod keycloak_hash;
pub mod keys;
pub mod mail;
pub mod otp;
pub mod password_links;
pub mod password_page;
pub mod password_reset;
pub mod passwords;
pub mod pepper;
pub mod phone;
pub mod redeem;
pub mod retention;
pub mod sessions;
pub mod sms;
pub mod stored_hash;
pub mod totp_cipher;
pub mod totp_keys;
pub mod watch;

/// The clock lives at the crate root (identity reads it too); re-exported where use cases find it.
pub use crate::clock::{self, Clock, ManualClock, SystemClock};
use crate::domain::{
    LockoutPolicies, OtpSettings, PasswordPolicy, PasswordRejection, PinPolicy, PinRejection,
    SessionTtl, TotpSettings,
};
use crate::metrics::Metrics;
use crate::store::{Store, StoreError};
use crate::templates::Templates;
pub use devices::DeviceTotpSettings;
pub use digest::OtpKey;
pub use hasher::{HashError, Hasher};
pub use hashing_settings::{Argon2Settings, HashingSettings};
pub use mail::Mailer;
pub use password_links::{LinkKey, LinkSettings, PublicUrl};
pub use passwords::PasswordSettings;
pub use pepper::{Pepper, PepperRing};
pub use phone::{PhoneRefusal, PhoneSettings, PhoneStatus, PhoneUpdate};
pub use retention::RetentionSettings;
pub use sms::SmsSender;
use std::sync::Arc;
use std::time::Duration;
pub use totp_cipher::TotpCipher;
pub use totp_keys::TotpKeyRing;
pub use watch::CredentialWatch;

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
    pub lockout: LockoutPolicies,
    /// Parameters of new device TOTPs (stored devices keep their own).
    pub totp: TotpSettings,
    /// Seals new device secrets under the current key, opens them under any loaded one.
    pub totp_keys: TotpKeyRing,
    /// How long after registration the after-login grant allows a device TOTP without proof.
    pub after_login_window: Duration,
    pub watch: CredentialWatch,
    pub retention: RetentionSettings,
    /// The rules every new password must meet (pages and the operator command alike).
    pub password_policy: PasswordPolicy,
    /// Where password links point, how long they work, the service's name.
    pub links: LinkSettings,
    pub link_key: LinkKey,
    /// Pages and mails, built in or the operator's.
    pub templates: Arc<Templates>,
    /// How long a login session is known (`session_ttl_seconds`).
    pub session_ttl: SessionTtl,
    /// `None` when no SMS gateway is configured (docs/phone.md).
    pub sms: Option<Arc<dyn SmsSender>>,
    pub phone: PhoneSettings,
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
    #[error("the one-time password is not valid")]
    InvalidOtp,
    #[error("the user has no such device")]
    DeviceNotFound,
    #[error("none of the offered proofs is valid")]
    NoValidProof,
    #[error("the new PIN breaks the PIN policy: {0}")]
    PinRejected(PinRejection),
    #[error("the new password breaks the password policy: {0}")]
    PasswordRejected(PasswordRejection),
    /// `PUT /user/password`: the user has a password; PACE answers 409.
    #[error("the user already has a password")]
    PasswordAlreadySet,
    /// No `public_url`: no link can be made.
    #[error("no public URL is configured for links")]
    PublicUrlNotConfigured,
    #[error("too many hashing requests waiting")]
    Overloaded,
    #[error("mail is not configured")]
    MailNotConfigured,
    #[error("too many mails; retry in {retry_after} s")]
    MailLimit { retry_after: u64 },
    #[error("the mail could not be sent: {0:#}")]
    MailFailed(anyhow::Error),
    /// `PUT /sessions/{sessionId}`: otpd has no record of the body's `userId`.
    #[error("unknown user")]
    UnknownUser,
    /// The live session with this id belongs to another user.
    #[error("the session belongs to another user")]
    SessionMismatch,
    /// No live session with this id (to be passed it must have been created).
    #[error("no such session")]
    SessionNotFound,
    /// The login OTP's mail was refused; the session and its OTP were withdrawn.
    #[error("the login OTP could not be mailed: {0:#}")]
    LoginMailFailed(anyhow::Error),
    #[error("database unavailable")]
    Unavailable(#[source] StoreError),
    /// A stored hash or device secret names a key that is not loaded: it cannot be checked until
    /// the operator loads that key. Nothing was counted.
    #[error("{0}")]
    KeyUnavailable(String),
    /// The phone number use cases' own refusals (docs/phone.md).
    #[error(transparent)]
    Phone(PhoneRefusal),
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
            HashError::UnknownPepper(id) => ServiceError::KeyUnavailable(format!(
                "a stored hash was made under pepper id `{id}`, which is not loaded: add it to pepper_old_files"
            )),
            other => ServiceError::Internal(other.into()),
        }
    }
}
