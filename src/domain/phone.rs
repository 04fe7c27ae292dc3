//! Phone numbers and the codes sent to them by SMS: a number is parsed and validated by
//! libphonenumber's rules (the `phonenumber` crate) and kept in E.164; a code is a string of
//! digits. See docs/phone.md.

use secrecy::{ExposeSecret, SecretString};
use std::fmt;

/// Digits of a code sent by SMS (PACE's example has 6).
pub const PHONE_CODE_DIGITS: usize = 6;

/// The longest number text accepted before parsing (E.164 has at most 15 digits; spaces,
/// dashes and brackets make it longer).
const MAX_NUMBER_INPUT: usize = 64;

/// A valid phone number in E.164 (`+4915123456789`). Only `parse` builds one.
#[derive(Clone, PartialEq, Eq)]
pub struct PhoneNumber(String);

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PhoneNumberRejection {
    #[error("the phone number must start with + and the country code")]
    NotInternational,
    #[error("the phone number cannot be read")]
    Unreadable,
    #[error("the phone number is not a valid number of its country")]
    Invalid,
}

impl PhoneNumber {
    /// International form only (`+` and the country code): otpd has no region to assume.
    pub fn parse(raw: &str) -> Result<Self, PhoneNumberRejection> {
        let raw = raw.trim();
        if raw.len() > MAX_NUMBER_INPUT {
            return Err(PhoneNumberRejection::Unreadable);
        }
        if !raw.starts_with('+') {
            return Err(PhoneNumberRejection::NotInternational);
        }
        let parsed = phonenumber::parse(None, raw).map_err(|_| PhoneNumberRejection::Unreadable)?;
        if !phonenumber::is_valid(&parsed) {
            return Err(PhoneNumberRejection::Invalid);
        }
        let e164 = parsed.format().mode(phonenumber::Mode::E164).to_string();
        Ok(Self(e164))
    }

    /// A number read back from the database, already in E.164.
    pub fn from_stored(e164: String) -> Self {
        Self(e164)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `+49151******89`: enough for a user to recognise their number in a mail, not enough to
    /// learn it.
    pub fn masked(&self) -> String {
        let n = self.0.chars().count();
        self.0
            .chars()
            .enumerate()
            .map(|(i, c)| if i >= 6 && i + 2 < n { '*' } else { c })
            .collect()
    }
}

/// A number is personal data: logs and `Debug` show it masked.
impl fmt::Debug for PhoneNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PhoneNumber({})", self.masked())
    }
}

/// A code as typed into `PUT /user/phone/verify`: digits of the right length, else it cannot be
/// a code we sent (and costs no database work beyond the attempt count).
pub struct PhoneCode(SecretString);

impl PhoneCode {
    pub fn parse(raw: SecretString) -> Option<Self> {
        let v = raw.expose_secret();
        (v.len() == PHONE_CODE_DIGITS && v.bytes().all(|b| b.is_ascii_digit())).then_some(Self(raw))
    }

    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

impl fmt::Debug for PhoneCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PhoneCode([REDACTED])")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_normalised_to_e164() {
        let n = PhoneNumber::parse("+49 151 23456789").unwrap();
        assert_eq!(n.as_str(), "+4915123456789");
        let same = PhoneNumber::parse(" +49 (151) 234-567-89 ").unwrap();
        assert_eq!(same, n);
        assert_eq!(
            PhoneNumber::parse("+1 201 555 0123").unwrap().as_str(),
            "+12015550123"
        );
    }

    #[test]
    fn paces_example_and_other_bad_numbers_are_refused() {
        assert_eq!(
            PhoneNumber::parse("+49 170 888 999 000"),
            Err(PhoneNumberRejection::Invalid)
        );
        assert_eq!(
            PhoneNumber::parse("0151 23456789"),
            Err(PhoneNumberRejection::NotInternational)
        );
        for bad in ["+", "+abc", "+49", &format!("+{}", "1".repeat(80))] {
            assert!(PhoneNumber::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn masked_numbers_keep_the_country_and_the_last_two_digits() {
        let n = PhoneNumber::parse("+49 151 23456789").unwrap();
        assert_eq!(n.masked(), "+49151******89");
        assert!(!format!("{n:?}").contains("234567"));
    }

    #[test]
    fn codes_are_six_digits() {
        assert!(PhoneCode::parse(SecretString::from("012345")).is_some());
        for bad in ["12345", "1234567", "12a456", ""] {
            assert!(PhoneCode::parse(SecretString::from(bad)).is_none(), "{bad}");
        }
    }
}
