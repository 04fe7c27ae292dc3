//! Encryption at rest of device TOTP secrets: AES-256-GCM with a random nonce per secret.
//!
//! The key comes from `totp_key_file` when set, otherwise it is derived from the pepper; either way
//! it never lives in the database. The associated data binds each ciphertext to its user, device
//! and TOTP parameters, so a row copied to another user or edited to weaker parameters fails to open,
//! and (format 2) to the id of the key that sealed it, so a row relabelled to another key fails too.
//! Several keys are loaded at once by `totp_keys::TotpKeyRing`.

use super::pepper::{Pepper, read_key_file};
use crate::domain::{DeviceId, Subject, TotpSecret, TotpSettings};
use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use hmac::{Hmac, Mac};
use rand::Rng;
use secrecy::{ExposeSecret, SecretBox};
use sha2::Sha256;
use std::path::Path;

/// First byte of every ciphertext: lets a later format or key coexist with this one. Format 1 was
/// sealed before key ids (its key is unknown: any loaded key may open it); format 2 names its key.
const FORMAT_V1: u8 = 1;
const FORMAT_V2: u8 = 2;
const NONCE_LEN: usize = 12;
const DERIVATION_LABEL: &[u8] = b"otpd/totp-secret/v1";

pub struct TotpCipher(SecretBox<[u8; 32]>);

#[derive(Debug, thiserror::Error)]
pub enum CipherError {
    #[error("stored TOTP secret cannot be decrypted (wrong key or altered row)")]
    Unreadable,
    /// Sealed under a key id that is not loaded.
    #[error("stored TOTP secret sealed under key id `{0}`, which is not loaded")]
    UnknownKey(String),
    #[error("TOTP secret encryption failed")]
    Seal,
}

impl TotpCipher {
    /// A key derived from key material (the pepper, or the contents of `totp_key_file`) with a
    /// label of its own, so it never equals a key used for anything else.
    pub fn derive(material: &[u8]) -> Self {
        let mut mac = <Hmac<Sha256> as hmac::KeyInit>::new_from_slice(material)
            .expect("HMAC accepts keys of any length");
        mac.update(DERIVATION_LABEL);
        Self(SecretBox::new(Box::new(mac.finalize().into_bytes().into())))
    }

    pub fn from_pepper(pepper: &Pepper) -> Self {
        Self::derive(pepper.bytes())
    }

    /// A key derived from the contents of `totp_key_file` (at least 32 bytes, less trailing line
    /// breaks). The error names the file, never its contents.
    pub fn from_key_file(path: &Path) -> Result<Self, String> {
        let material = read_key_file(path)?;
        if material.len() < 32 {
            return Err("must hold at least 32 bytes".into());
        }
        Ok(Self::derive(&material))
    }

    fn cipher(&self) -> Aes256Gcm {
        Aes256Gcm::new(self.0.expose_secret().into())
    }

    /// `key_id` is `None` for format 1, whose associated data did not name the key.
    fn aad(
        key_id: Option<&str>,
        sub: &Subject,
        device: &DeviceId,
        settings: TotpSettings,
    ) -> Vec<u8> {
        let key = key_id.map(|k| format!("v2\0{k}\0")).unwrap_or_default();
        format!(
            "{key}{}\0{}\0{}\0{}\0{}",
            sub.as_str(),
            device.as_str(),
            settings.algorithm.as_str(),
            settings.digits,
            settings.period_secs
        )
        .into_bytes()
    }

    /// Seals under this key, labelled `key_id` (format 2).
    pub fn seal(
        &self,
        key_id: &str,
        sub: &Subject,
        device: &DeviceId,
        settings: TotpSettings,
        secret: &TotpSecret,
    ) -> Result<Vec<u8>, CipherError> {
        self.seal_as(Some(key_id), sub, device, settings, secret)
    }

    /// `None`: the format written before key ids (kept for tests of reading old rows).
    pub(crate) fn seal_as(
        &self,
        key_id: Option<&str>,
        sub: &Subject,
        device: &DeviceId,
        settings: TotpSettings,
        secret: &TotpSecret,
    ) -> Result<Vec<u8>, CipherError> {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rng().fill_bytes(&mut nonce);
        let aad = Self::aad(key_id, sub, device, settings);
        let sealed = self
            .cipher()
            .encrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: secret.bytes(),
                    aad: &aad,
                },
            )
            .map_err(|_| CipherError::Seal)?;
        let mut out = Vec::with_capacity(1 + NONCE_LEN + sealed.len());
        out.push(if key_id.is_some() {
            FORMAT_V2
        } else {
            FORMAT_V1
        });
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        Ok(out)
    }

    /// Opens a format 2 secret labelled `key_id`, or (with `None`) a format 1 secret.
    pub fn open(
        &self,
        key_id: Option<&str>,
        sub: &Subject,
        device: &DeviceId,
        settings: TotpSettings,
        stored: &[u8],
    ) -> Result<TotpSecret, CipherError> {
        let (&format, rest) = stored.split_first().ok_or(CipherError::Unreadable)?;
        let expected = if key_id.is_some() {
            FORMAT_V2
        } else {
            FORMAT_V1
        };
        if format != expected || rest.len() < NONCE_LEN {
            return Err(CipherError::Unreadable);
        }
        let (nonce, sealed) = rest.split_at(NONCE_LEN);
        let nonce: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| CipherError::Unreadable)?;
        let aad = Self::aad(key_id, sub, device, settings);
        self.cipher()
            .decrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: sealed,
                    aad: &aad,
                },
            )
            .map(TotpSecret::from_bytes)
            .map_err(|_| CipherError::Unreadable)
    }
}

impl std::fmt::Debug for TotpCipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TotpCipher([REDACTED])")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_secret_opens_only_for_its_user_device_and_parameters() {
        let cipher = TotpCipher::derive(b"some key material, 32 bytes long!");
        let alice = Subject::parse("alice").unwrap();
        let bob = Subject::parse("bob").unwrap();
        let device = DeviceId::parse("738e379f-fe30-45ab-819c-ba88804b6368").unwrap();
        let settings = TotpSettings::default();
        let secret = TotpSecret::generate(&mut rand::rng());
        let sealed = cipher
            .seal("k1", &alice, &device, settings, &secret)
            .unwrap();
        assert!(
            !sealed
                .windows(secret.bytes().len())
                .any(|w| w == secret.bytes())
        );
        let opened = cipher
            .open(Some("k1"), &alice, &device, settings, &sealed)
            .unwrap();
        assert_eq!(opened.bytes(), secret.bytes());
        assert!(
            cipher
                .open(Some("k1"), &bob, &device, settings, &sealed)
                .is_err()
        );
        let eight = TotpSettings {
            digits: 8,
            ..settings
        };
        assert!(
            cipher
                .open(Some("k1"), &alice, &device, eight, &sealed)
                .is_err()
        );
        let other = TotpCipher::derive(b"other key material, 32 bytes long");
        assert!(
            other
                .open(Some("k1"), &alice, &device, settings, &sealed)
                .is_err()
        );
        // Relabelled to another key id, or read as the old format: refused.
        assert!(
            cipher
                .open(Some("k2"), &alice, &device, settings, &sealed)
                .is_err()
        );
        assert!(
            cipher
                .open(None, &alice, &device, settings, &sealed)
                .is_err()
        );
    }
}
