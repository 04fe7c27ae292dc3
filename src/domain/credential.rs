//! PINs as parsed, policy-checked secrets, and the factors a user can hold (passwords have their
//! own module, `domain::password`).
//!
//! `Pin::parse` is the only way to build a `Pin`, so a value that breaks the policy cannot reach the
//! hashing or storage code. It wraps `SecretString`: `Debug` prints nothing and the memory is
//! zeroed on drop.

use secrecy::{ExposeSecret, SecretString};
use std::fmt;

/// The two knowledge factors a user can hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Factor {
    Password,
    Pin,
}

impl Factor {
    pub fn as_str(self) -> &'static str {
        match self {
            Factor::Password => "password",
            Factor::Pin => "pin",
        }
    }
}

/// Longest password accepted, in bytes: bounds the work a single request can ask of Argon2.
pub const MAX_PASSWORD_BYTES: usize = 1024;
/// Longest PIN accepted anywhere, in bytes, whatever the policy length.
pub const MAX_PIN_BYTES: usize = 64;

/// The PIN rules. The default is PACE's: exactly 4 digits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PinPolicy {
    pub length: usize,
}

impl Default for PinPolicy {
    fn default() -> Self {
        Self { length: 4 }
    }
}

/// The ascending sequence the PACE SDKs test against; a PIN may not be a run of it or of its reverse.
const PIN_SEQUENCE: &str = "0123456789012";
const MIN_DISTINCT_PIN_DIGITS: usize = 3;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PinRejection {
    #[error("the PIN must consist of exactly {0} digits")]
    WrongShape(usize),
    #[error("the PIN must contain at least {MIN_DISTINCT_PIN_DIGITS} different digits")]
    TooFewDistinctDigits,
    #[error("the PIN must not be an ascending or descending run of digits")]
    Sequence,
}

/// A PIN that meets the PIN policy.
pub struct Pin(SecretString);

impl Pin {
    pub fn parse(raw: SecretString, policy: PinPolicy) -> Result<Self, PinRejection> {
        let value = raw.expose_secret();
        if value.len() != policy.length || !value.bytes().all(|b| b.is_ascii_digit()) {
            return Err(PinRejection::WrongShape(policy.length));
        }
        let mut seen = [false; 10];
        for b in value.bytes() {
            seen[usize::from(b - b'0')] = true;
        }
        if seen.iter().filter(|s| **s).count() < MIN_DISTINCT_PIN_DIGITS {
            return Err(PinRejection::TooFewDistinctDigits);
        }
        let reversed: String = PIN_SEQUENCE.chars().rev().collect();
        if PIN_SEQUENCE.contains(value) || reversed.contains(value) {
            return Err(PinRejection::Sequence);
        }
        Ok(Self(raw))
    }

    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

impl fmt::Debug for Pin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Pin([REDACTED])")
    }
}

/// A PIN or password as typed into a check (not a new credential): only bounded in size, because
/// the policy in force today may be stricter than the one a stored credential was set under.
pub struct Attempt(SecretString);

impl Attempt {
    /// `None` when the value exceeds `max_bytes` (no stored credential can be that long).
    pub fn bounded(raw: SecretString, max_bytes: usize) -> Option<Self> {
        (raw.expose_secret().len() <= max_bytes).then_some(Self(raw))
    }

    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

impl fmt::Debug for Attempt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Attempt([REDACTED])")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pin(s: &str) -> Result<Pin, PinRejection> {
        Pin::parse(SecretString::from(s), PinPolicy::default())
    }

    #[test]
    fn the_pace_examples_of_valid_pins_are_accepted() {
        for ok in ["1235", "9875", "1012", "1123", "4378"] {
            assert!(pin(ok).is_ok(), "{ok} should be accepted");
        }
    }

    #[test]
    fn the_pace_examples_of_invalid_pins_are_refused() {
        for bad in [
            "1234", "9012", "0987", "6543", "1122", "1111", "123", "456123",
        ] {
            assert!(pin(bad).is_err(), "{bad} should be refused");
        }
    }

    #[test]
    fn non_digits_are_refused_even_with_the_right_length() {
        assert_eq!(pin("12a5").unwrap_err(), PinRejection::WrongShape(4));
        assert_eq!(pin("١٢٣٥").unwrap_err(), PinRejection::WrongShape(4));
    }

    #[test]
    fn a_longer_policy_length_is_honoured() {
        let six = PinPolicy { length: 6 };
        assert!(Pin::parse(SecretString::from("135790"), six).is_ok());
        assert!(Pin::parse(SecretString::from("1357"), six).is_err());
        assert!(Pin::parse(SecretString::from("345678"), six).is_err());
    }

    #[test]
    fn debug_output_never_shows_the_secret() {
        let n = pin("4378").unwrap();
        assert!(!format!("{n:?}").contains("4378"));
    }
}
