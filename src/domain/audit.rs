//! Credential events written to the audit table. They name what happened, never a secret.

use super::lockout::GuardedFactor;
use std::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuditEvent {
    PasswordSet,
    PinSet,
    /// A hash made by another system was imported (`otpd user import`; detail: its scheme).
    PasswordImported,
    PinImported,
    OtpIssued,
    OtpRefused,
    PasswordRefused,
    PinRefused,
    /// An issued OTP withdrawn before anyone could see it (its mail could not be sent).
    OtpRevoked,
    /// An account OTP or a device TOTP was redeemed (detail: which kind, which device).
    OtpRedeemed,
    /// A new PIN broke the PIN policy (`PUT /user/pin`).
    PinPolicyRefused,
    DeviceTotpCreated,
    /// One device TOTP was revoked (detail: the device, and who asked or the failure count):
    /// by the admin API, or because too many failed redemptions checked its codes.
    DeviceTotpRevoked,
    /// The admin API showed the user's state (detail: who asked).
    AdminUserShown,
    /// The admin API listed the user's audit events (detail: who asked).
    AdminAuditRead,
    /// Every credential of the user was erased; this row and the earlier ones stay.
    UserDeleted,
    /// A failure locked the factor for a while (detail: failures and lock end).
    Locked(GuardedFactor),
    /// A failure disabled the factor until it is set anew.
    Disabled(GuardedFactor),
    /// Too many failed redemptions: every live account OTP of the user was revoked.
    OtpsRevoked,
    /// An operator or admin cleared the factor's counters (detail: who asked).
    Unlocked(GuardedFactor),
    /// A password link was mailed (detail: its purpose; earlier links were retired).
    PasswordLinkIssued,
    /// A password link was withdrawn before anyone could use it (its mail could not be sent).
    PasswordLinkWithdrawn,
    /// The PIN and device TOTPs were erased during a password reset (detail: why, and what).
    CredentialsErased,
    /// A login session was created and its login OTP issued (detail: session label, mailed or not).
    SessionCreated,
    /// The identity provider reported the session's login OTP passed (detail: session label).
    SessionPassed,
    /// A new session was withdrawn with its login OTP because the OTP's mail failed.
    SessionWithdrawn,
    /// Phone (docs/phone.md): a new number awaits its code, which was sent by SMS (detail: whether
    /// it replaces a verified number; never the number).
    PhoneChanged,
    /// The code sent by SMS was entered: the pending number is now the verified one.
    PhoneVerified,
    /// A wrong or expired code was entered (counted under the phone factor's attempt limit).
    PhoneCodeRefused,
    /// The SMS could not be sent: the code and the pending change were withdrawn.
    PhoneCodeWithdrawn,
    /// The verified number was put again: a pending change was cancelled.
    PhoneChangeCancelled,
}

impl AuditEvent {
    pub fn as_str(self) -> &'static str {
        use GuardedFactor as G;
        match self {
            AuditEvent::PasswordSet => "password.set",
            AuditEvent::PinSet => "pin.set",
            AuditEvent::PasswordImported => "password.imported",
            AuditEvent::PinImported => "pin.imported",
            AuditEvent::OtpIssued => "otp.issued",
            AuditEvent::OtpRefused => "otp.refused",
            AuditEvent::PasswordRefused => "password.refused",
            AuditEvent::PinRefused => "pin.refused",
            AuditEvent::OtpRevoked => "otp.revoked",
            AuditEvent::OtpRedeemed => "otp.redeemed",
            AuditEvent::PinPolicyRefused => "pin.policy-refused",
            AuditEvent::DeviceTotpCreated => "device-totp.created",
            AuditEvent::DeviceTotpRevoked => "device-totp.revoked",
            AuditEvent::AdminUserShown => "admin.user-shown",
            AuditEvent::AdminAuditRead => "admin.audit-read",
            AuditEvent::UserDeleted => "user.deleted",
            AuditEvent::Locked(G::Password) => "password.locked",
            AuditEvent::Locked(G::Pin) => "pin.locked",
            AuditEvent::Locked(G::Otp) => "otp.locked",
            AuditEvent::Disabled(G::Password) => "password.disabled",
            AuditEvent::Disabled(G::Pin) => "pin.disabled",
            AuditEvent::Disabled(G::Otp) => "otp.disabled",
            AuditEvent::OtpsRevoked => "otp.revoked",
            AuditEvent::Unlocked(G::Password) => "password.unlocked",
            AuditEvent::Unlocked(G::Pin) => "pin.unlocked",
            AuditEvent::Unlocked(G::Otp) => "otp.unlocked",
            AuditEvent::PasswordLinkIssued => "password-link.issued",
            AuditEvent::PasswordLinkWithdrawn => "password-link.withdrawn",
            AuditEvent::CredentialsErased => "credentials.erased",
            AuditEvent::SessionCreated => "session.created",
            AuditEvent::SessionPassed => "session.passed",
            AuditEvent::SessionWithdrawn => "session.withdrawn",
            AuditEvent::PhoneChanged => "phone.changed",
            AuditEvent::PhoneVerified => "phone.verified",
            AuditEvent::PhoneCodeRefused => "phone.code-refused",
            AuditEvent::PhoneCodeWithdrawn => "phone.code-withdrawn",
            AuditEvent::PhoneChangeCancelled => "phone.change-cancelled",
            AuditEvent::Locked(G::Phone) => "phone.locked",
            AuditEvent::Disabled(G::Phone) => "phone.disabled",
            AuditEvent::Unlocked(G::Phone) => "phone.unlocked",
        }
    }

    /// The event a failed check of `factor` writes.
    pub fn refused(factor: GuardedFactor) -> Self {
        match factor {
            GuardedFactor::Password => AuditEvent::PasswordRefused,
            GuardedFactor::Pin => AuditEvent::PinRefused,
            GuardedFactor::Otp => AuditEvent::OtpRefused,
            GuardedFactor::Phone => AuditEvent::PhoneCodeRefused,
        }
    }
}

impl fmt::Display for AuditEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
