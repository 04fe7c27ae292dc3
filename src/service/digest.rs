//! Keyed digests of OTPs: the database holds HMAC-SHA256(key, sub ‖ 0 ‖ code), never a code.
//!
//! The key is derived from the pepper, so a copy of the database alone cannot test guesses, and
//! binding the subject into the input means one user's code is worthless for another user. With
//! several peppers loaded, new OTPs are digested under the current one and a redemption looks for
//! the digest under each, so replicas part-way through a pepper rotation accept each other's OTPs.

use super::pepper::{Pepper, PepperRing};
use hmac::{Hmac, KeyInit, Mac};
use secrecy::{ExposeSecret, SecretBox};
use sha2::Sha256;

/// The current key first, then one per older pepper.
pub struct OtpKey(Vec<SecretBox<[u8; 32]>>);

const DERIVATION_LABEL: &[u8] = b"otpd/otp-digest/v1";

impl OtpKey {
    pub fn derive(pepper: &Pepper) -> Self {
        Self(vec![derive_one(pepper)])
    }

    /// Keys from every pepper of the ring, the current one first.
    pub fn derive_all(peppers: &PepperRing) -> Self {
        Self(peppers.all().map(derive_one).collect())
    }

    /// The digest a new OTP is stored under (current pepper).
    pub fn digest(&self, sub: &str, code: &str) -> [u8; 32] {
        digest_with(&self.0[0], sub, code)
    }

    /// The digests `code` may be stored under, one per loaded pepper, current first.
    pub fn candidate_digests(&self, sub: &str, code: &str) -> Vec<[u8; 32]> {
        self.0.iter().map(|k| digest_with(k, sub, code)).collect()
    }
}

fn derive_one(pepper: &Pepper) -> SecretBox<[u8; 32]> {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(pepper.bytes())
        .expect("HMAC accepts keys of any length");
    mac.update(DERIVATION_LABEL);
    SecretBox::new(Box::new(mac.finalize().into_bytes().into()))
}

fn digest_with(key: &SecretBox<[u8; 32]>, sub: &str, code: &str) -> [u8; 32] {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key.expose_secret())
        .expect("HMAC accepts keys of any length");
    mac.update(sub.as_bytes());
    mac.update(&[0]);
    mac.update(code.as_bytes());
    mac.finalize().into_bytes().into()
}

impl std::fmt::Debug for OtpKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OtpKey([REDACTED])")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_depend_on_key_subject_and_code() {
        let a = OtpKey::derive(&Pepper::new("p".into(), vec![1; 32]).unwrap());
        let b = OtpKey::derive(&Pepper::new("p".into(), vec![2; 32]).unwrap());
        assert_eq!(a.digest("u", "123456"), a.digest("u", "123456"));
        assert_ne!(a.digest("u", "123456"), b.digest("u", "123456"));
        assert_ne!(a.digest("u", "123456"), a.digest("v", "123456"));
        assert_ne!(a.digest("u1", "23456"), a.digest("u", "123456"));
    }
}
