//! Credential events written to the audit table. They name what happened, never a secret.

use std::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuditEvent {
    PasswordSet,
    PinSet,
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
    /// Every credential of the user was erased; this row and the earlier ones stay.
    UserDeleted,
}

impl AuditEvent {
    pub fn as_str(self) -> &'static str {
        match self {
            AuditEvent::PasswordSet => "password.set",
            AuditEvent::PinSet => "pin.set",
            AuditEvent::OtpIssued => "otp.issued",
            AuditEvent::OtpRefused => "otp.refused",
            AuditEvent::PasswordRefused => "password.refused",
            AuditEvent::PinRefused => "pin.refused",
            AuditEvent::OtpRevoked => "otp.revoked",
            AuditEvent::OtpRedeemed => "otp.redeemed",
            AuditEvent::PinPolicyRefused => "pin.policy-refused",
            AuditEvent::DeviceTotpCreated => "device-totp.created",
            AuditEvent::UserDeleted => "user.deleted",
        }
    }
}

impl fmt::Display for AuditEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
