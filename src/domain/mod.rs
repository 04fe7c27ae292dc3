//! Pure rules and types of the credential domain: no I/O, no clock reads, no framework types.

pub mod actor;
pub mod audit;
pub mod credential;
pub mod email;
pub mod lockout;
pub mod otp;
pub mod password;
pub mod password_link;
pub mod phone;
pub mod session;
pub mod subject;
pub mod totp;

pub use actor::Actor;
pub use audit::AuditEvent;
pub use credential::{Attempt, Factor, Pin, PinPolicy, PinRejection};
pub use email::EmailAddress;
pub use lockout::{Admission, AttemptState, GuardedFactor, LockPolicy, LockoutPolicies};
pub use otp::{OtpCode, OtpSettings, OtpTypes};
pub use password::{Password, PasswordPolicy, PasswordRejection};
pub use password_link::{LinkProblem, LinkPurpose, LinkToken};
pub use phone::{PhoneCode, PhoneNumber, PhoneNumberRejection};
pub use session::{SessionId, SessionTtl, session_user};
pub use subject::Subject;
pub use totp::{DeviceId, TotpAlgorithm, TotpSecret, TotpSettings};
