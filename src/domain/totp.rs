//! Device TOTPs (RFC 6238): secrets, their parameters, and which time step a code belongs to.
//!
//! Pure functions of the secret, the settings and `now`: no clock reads, no storage. Each accepted
//! step is remembered per device by the store, so a code is accepted at most once.

use hmac::{Hmac, KeyInit, Mac};
use rand::{CryptoRng, Rng};
use secrecy::{ExposeSecret, SecretBox};
use std::fmt;
use subtle::ConstantTimeEq;

/// Secret length in bytes: 160 bits, RFC 4226's recommended minimum and SHA1's block output.
pub const SECRET_BYTES: usize = 20;
pub const MIN_TOTP_DIGITS: u8 = 6;
pub const MAX_TOTP_DIGITS: u8 = 8;
/// Steps either side of the current one that are still accepted (clock skew of the device).
pub const SKEW_STEPS: i64 = 1;

/// The HMAC of RFC 6238. MD5 is deliberately absent: the PACE SDKs would compute SHA1 instead.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TotpAlgorithm {
    Sha1,
    Sha256,
    Sha512,
}

impl TotpAlgorithm {
    /// The name the SDKs read (`SHA1`, `SHA256`, `SHA512`).
    pub fn as_str(self) -> &'static str {
        match self {
            TotpAlgorithm::Sha1 => "SHA1",
            TotpAlgorithm::Sha256 => "SHA256",
            TotpAlgorithm::Sha512 => "SHA512",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        match raw.to_ascii_uppercase().replace('-', "").as_str() {
            "SHA1" => Some(TotpAlgorithm::Sha1),
            "SHA256" => Some(TotpAlgorithm::Sha256),
            "SHA512" => Some(TotpAlgorithm::Sha512),
            _ => None,
        }
    }
}

/// The parameters a new device TOTP gets (and each stored device keeps its own copy).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TotpSettings {
    pub period_secs: u32,
    pub digits: u8,
    pub algorithm: TotpAlgorithm,
}

impl Default for TotpSettings {
    fn default() -> Self {
        Self {
            period_secs: 30,
            digits: 6,
            algorithm: TotpAlgorithm::Sha1,
        }
    }
}

/// A TOTP secret in clear; `Debug` prints nothing and the memory is zeroed on drop.
pub struct TotpSecret(SecretBox<Vec<u8>>);

impl TotpSecret {
    pub fn generate<R: Rng + CryptoRng + ?Sized>(rng: &mut R) -> Self {
        let mut bytes = vec![0u8; SECRET_BYTES];
        rng.fill_bytes(&mut bytes);
        Self(SecretBox::new(Box::new(bytes)))
    }

    pub fn from_bytes(bytes: Vec<u8>) -> Self {
        Self(SecretBox::new(Box::new(bytes)))
    }

    pub fn bytes(&self) -> &[u8] {
        self.0.expose_secret()
    }

    /// RFC 4648 base32 without padding, as authenticator apps and the SDKs read it.
    pub fn base32(&self) -> String {
        data_encoding::BASE32_NOPAD.encode(self.bytes())
    }
}

impl fmt::Debug for TotpSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TotpSecret([REDACTED])")
    }
}

/// The time step `unix_secs` falls into.
pub fn step_at(unix_secs: i64, period_secs: u32) -> i64 {
    unix_secs.div_euclid(i64::from(period_secs.max(1)))
}

fn hmac_of<M: Mac + KeyInit>(key: &[u8], counter: [u8; 8]) -> Vec<u8> {
    let mut mac = <M as KeyInit>::new_from_slice(key).expect("HMAC accepts keys of any length");
    mac.update(&counter);
    mac.finalize().into_bytes().to_vec()
}

/// The code of `step` (RFC 4226 HOTP with the step as counter, RFC 6238 §4).
pub fn code_at(secret: &[u8], settings: TotpSettings, step: i64) -> String {
    let counter = step.to_be_bytes();
    let hash = match settings.algorithm {
        TotpAlgorithm::Sha1 => hmac_of::<Hmac<sha1::Sha1>>(secret, counter),
        TotpAlgorithm::Sha256 => hmac_of::<Hmac<sha2::Sha256>>(secret, counter),
        TotpAlgorithm::Sha512 => hmac_of::<Hmac<sha2::Sha512>>(secret, counter),
    };
    let offset = usize::from(hash[hash.len() - 1] & 0x0f);
    let binary = u32::from_be_bytes([
        hash[offset] & 0x7f,
        hash[offset + 1],
        hash[offset + 2],
        hash[offset + 3],
    ]);
    let digits = u32::from(settings.digits.clamp(MIN_TOTP_DIGITS, MAX_TOTP_DIGITS));
    let value = binary % 10u32.pow(digits);
    format!("{value:0width$}", width = digits as usize)
}

/// The steps around `unix_secs` whose code equals `code`, oldest first. Every candidate is
/// compared in constant time, so timing does not tell which step (if any) matched.
pub fn matching_steps(
    secret: &[u8],
    settings: TotpSettings,
    code: &str,
    unix_secs: i64,
) -> Vec<i64> {
    let now = step_at(unix_secs, settings.period_secs);
    (now - SKEW_STEPS..=now + SKEW_STEPS)
        .filter(|step| {
            let expected = code_at(secret, settings, *step);
            bool::from(expected.as_bytes().ct_eq(code.as_bytes()))
        })
        .collect()
}

/// A device id as the SDKs make it: a UUID, kept in lower-case hyphenated form.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct DeviceId(String);

impl DeviceId {
    pub fn parse(raw: &str) -> Option<Self> {
        uuid::Uuid::try_parse(raw)
            .ok()
            .map(|u| Self(u.hyphenated().to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for DeviceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(algorithm: TotpAlgorithm, digits: u8) -> TotpSettings {
        TotpSettings {
            period_secs: 30,
            digits,
            algorithm,
        }
    }

    /// RFC 6238 Appendix B: the seeds are the ASCII digits repeated to the hash's output length.
    #[test]
    fn the_rfc_6238_test_vectors_come_out() {
        let sha1 = b"12345678901234567890".to_vec();
        let sha256 = b"12345678901234567890123456789012".to_vec();
        let sha512 = b"1234567890123456789012345678901234567890123456789012345678901234".to_vec();
        let vectors: &[(i64, &str, &str, &str)] = &[
            (59, "94287082", "46119246", "90693936"),
            (1111111109, "07081804", "68084774", "25091201"),
            (1111111111, "14050471", "67062674", "99943326"),
            (1234567890, "89005924", "91819424", "93441116"),
            (2000000000, "69279037", "90698825", "38618901"),
            (20000000000, "65353130", "77737706", "47863826"),
        ];
        for (t, c1, c256, c512) in vectors {
            let step = step_at(*t, 30);
            assert_eq!(code_at(&sha1, settings(TotpAlgorithm::Sha1, 8), step), *c1);
            assert_eq!(
                code_at(&sha256, settings(TotpAlgorithm::Sha256, 8), step),
                *c256
            );
            assert_eq!(
                code_at(&sha512, settings(TotpAlgorithm::Sha512, 8), step),
                *c512
            );
        }
    }

    #[test]
    fn one_step_of_skew_either_way_is_accepted_and_two_are_not() {
        let secret = b"12345678901234567890";
        let s = settings(TotpAlgorithm::Sha1, 6);
        let now = 1_700_000_000;
        let step = step_at(now, 30);
        for (delta, accepted) in [(-2, false), (-1, true), (0, true), (1, true), (2, false)] {
            let code = code_at(secret, s, step + delta);
            assert_eq!(
                matching_steps(secret, s, &code, now) == vec![step + delta],
                accepted,
                "delta {delta}"
            );
        }
    }

    #[test]
    fn secrets_are_160_bits_of_base32_and_hidden_from_debug() {
        let secret = TotpSecret::generate(&mut rand::rng());
        assert_eq!(secret.bytes().len() * 8, 160);
        assert_eq!(secret.base32().len(), 32);
        assert!(!format!("{secret:?}").contains(&secret.base32()));
    }

    #[test]
    fn algorithms_parse_without_md5() {
        assert_eq!(TotpAlgorithm::parse("sha-256"), Some(TotpAlgorithm::Sha256));
        assert_eq!(TotpAlgorithm::parse("SHA512"), Some(TotpAlgorithm::Sha512));
        assert_eq!(TotpAlgorithm::parse("MD5"), None);
    }

    #[test]
    fn device_ids_are_uuids_in_lower_case() {
        let id = DeviceId::parse("738E379F-FE30-45AB-819C-BA88804B6368").unwrap();
        assert_eq!(id.as_str(), "738e379f-fe30-45ab-819c-ba88804b6368");
        assert!(DeviceId::parse("not-a-uuid").is_none());
    }
}
