//! One-time passwords: how they are made and what shape they have.

use rand::{CryptoRng, Rng};
use secrecy::{ExposeSecret, SecretString};
use std::fmt;
use std::time::Duration;

pub const MIN_OTP_DIGITS: u8 = 6;
pub const MAX_OTP_DIGITS: u8 = 10;
pub const MAX_OTP_TTL: Duration = Duration::from_secs(600);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OtpSettings {
    pub digits: u8,
    pub ttl: Duration,
    /// How many unexpired, unused OTPs of one kind (account, login) a user may hold; issuing one
    /// more retires the oldest of that kind.
    pub max_live: u32,
}

impl Default for OtpSettings {
    fn default() -> Self {
        Self {
            digits: 6,
            ttl: Duration::from_secs(300),
            max_live: 3,
        }
    }
}

/// A one-time password in clear: exists only between generation and the response, or between
/// the request and its digest. `Debug` prints nothing.
pub struct OtpCode(SecretString);

impl OtpCode {
    /// Draws `digits` decimal digits from a cryptographic RNG.
    ///
    /// Each digit comes from one random byte; bytes of 250 and above are redrawn, so every digit
    /// is exactly equally likely (a plain `byte % 10` would favour 0..5).
    pub fn generate<R: Rng + CryptoRng + ?Sized>(digits: u8, rng: &mut R) -> Self {
        let mut out = String::with_capacity(usize::from(digits));
        let mut byte = [0u8; 1];
        while out.len() < usize::from(digits) {
            rng.fill_bytes(&mut byte);
            if byte[0] < 250 {
                out.push(char::from(b'0' + byte[0] % 10));
            }
        }
        Self(SecretString::from(out))
    }

    /// A code as a client sent it: `None` unless it is 6..=10 ASCII digits.
    pub fn parse(raw: &str) -> Option<Self> {
        let ok = (usize::from(MIN_OTP_DIGITS)..=usize::from(MAX_OTP_DIGITS)).contains(&raw.len())
            && raw.bytes().all(|b| b.is_ascii_digit());
        ok.then(|| Self(SecretString::from(raw)))
    }

    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

impl fmt::Debug for OtpCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("OtpCode([REDACTED])")
    }
}

/// Which kinds of one-time password a redemption accepts (`types` of `POST /user/otp/verify`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OtpTypes {
    /// Issued by `POST /user/otp` (or mailed): single use, stored as a digest.
    pub account: bool,
    /// RFC 6238 codes from a secret issued by `POST /user/devices/totp`.
    pub device_totp: bool,
    /// Login OTPs (`PUT /sessions/{sessionId}`): only when named, never by default.
    pub login: bool,
    /// A user's own authenticator app: PACE names the type, but API 2022-1 has no enrolment for
    /// it, so it is accepted as a name and never matches (docs/sessions.md).
    pub totp: bool,
}

impl OtpTypes {
    /// PACE's default (`["device-totp","account"]`), and what every other endpoint that takes an
    /// OTP accepts: a login OTP proves a mailbox at login, not the account's PIN or password.
    pub const ALL: OtpTypes = OtpTypes {
        account: true,
        device_totp: true,
        login: false,
        totp: false,
    };
    pub const NONE: OtpTypes = OtpTypes {
        account: false,
        device_totp: false,
        login: false,
        totp: false,
    };

    /// Adds one type by its API name; `None` for an unknown name.
    pub fn with(self, name: &str) -> Option<Self> {
        match name {
            "account" => Some(Self {
                account: true,
                ..self
            }),
            "device-totp" => Some(Self {
                device_totp: true,
                ..self
            }),
            "login" => Some(Self {
                login: true,
                ..self
            }),
            "totp" => Some(Self { totp: true, ..self }),
            _ => None,
        }
    }

    /// Whether any named type can match at all (`totp` alone cannot).
    pub fn can_match(self) -> bool {
        self.account || self.device_totp || self.login
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_codes_have_the_requested_number_of_digits() {
        let mut rng = rand::rng();
        for digits in MIN_OTP_DIGITS..=MAX_OTP_DIGITS {
            let code = OtpCode::generate(digits, &mut rng);
            assert_eq!(code.expose().len(), usize::from(digits));
            assert!(code.expose().bytes().all(|b| b.is_ascii_digit()));
        }
    }

    #[test]
    fn every_digit_value_turns_up_about_equally_often() {
        let mut rng = rand::rng();
        let mut counts = [0u32; 10];
        for _ in 0..10_000 {
            for b in OtpCode::generate(10, &mut rng).expose().bytes() {
                counts[usize::from(b - b'0')] += 1;
            }
        }
        // 100,000 digits: each expected 10,000, standard deviation ~95. Modulo bias on bytes would
        // put 0..5 near 10,150 and 6..9 near 9,770; a 6-sigma window still catches a stuck digit.
        for c in counts {
            assert!((9_400..=10_600).contains(&c), "digit counts {counts:?}");
        }
    }

    #[test]
    fn parse_accepts_only_digit_strings_of_allowed_length() {
        assert!(OtpCode::parse("123456").is_some());
        assert!(OtpCode::parse("1234567890").is_some());
        assert!(OtpCode::parse("12345").is_none());
        assert!(OtpCode::parse("12345678901").is_none());
        assert!(OtpCode::parse("12345a").is_none());
    }

    #[test]
    fn login_is_named_only_and_totp_never_matches() {
        let default = OtpTypes::ALL;
        assert!(default.account && default.device_totp && !default.login);
        let login = OtpTypes::NONE.with("login").unwrap();
        assert!(login.login && !login.account && login.can_match());
        let totp = OtpTypes::NONE.with("totp").unwrap();
        assert!(totp != OtpTypes::NONE && !totp.can_match());
        assert!(OtpTypes::NONE.with("sms").is_none());
    }

    #[test]
    fn debug_output_hides_the_code() {
        let code = OtpCode::parse("987654").unwrap();
        assert!(!format!("{code:?}").contains("987654"));
    }
}
