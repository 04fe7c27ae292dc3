//! The TOTP encryption keys loaded at once, by id: the current one seals new device secrets, every
//! loaded one opens the secrets sealed under its id, so a key can be rotated without an outage
//! (docs/key-rotation.md).
//!
//! Ids: those of `totp_key_id` / `totp_old_key_files` (1..8 letters or digits), and `pepper:<id>`
//! for the key derived from each loaded pepper (what seals secrets when no `totp_key_file` is
//! set). The colon keeps the two kinds from ever colliding.

use super::pepper::PepperRing;
use super::totp_cipher::{CipherError, TotpCipher};
use crate::domain::{DeviceId, Subject, TotpSecret, TotpSettings};
use std::fmt;

pub struct TotpKeyRing {
    /// The current key first.
    keys: Vec<(String, TotpCipher)>,
}

impl fmt::Debug for TotpKeyRing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TotpKeyRing({:?})", self.ids().collect::<Vec<_>>())
    }
}

/// The id of the key derived from pepper `pepper_id`.
pub fn derived_key_id(pepper_id: &str) -> String {
    format!("pepper:{pepper_id}")
}

impl TotpKeyRing {
    /// `current` seals; `old` and a key derived from every pepper of `peppers` open. Two keys
    /// with the same id are refused.
    pub fn new(
        current: (String, TotpCipher),
        old: Vec<(String, TotpCipher)>,
        peppers: &PepperRing,
    ) -> Result<Self, String> {
        let mut keys = vec![current];
        for (id, cipher) in old {
            if keys.iter().any(|(k, _)| *k == id) {
                return Err(format!("TOTP key id `{id}` is loaded twice"));
            }
            keys.push((id, cipher));
        }
        for pepper in peppers.all() {
            let id = derived_key_id(&pepper.id);
            if !keys.iter().any(|(k, _)| *k == id) {
                keys.push((id, TotpCipher::from_pepper(pepper)));
            }
        }
        Ok(Self { keys })
    }

    /// Without a key file: the key derived from the current pepper is current.
    pub fn from_peppers(peppers: &PepperRing) -> Self {
        let current = peppers.current();
        let first = (
            derived_key_id(&current.id),
            TotpCipher::from_pepper(current),
        );
        Self::new(first, Vec::new(), peppers).unwrap_or_else(|_| unreachable_ring(peppers))
    }

    pub fn current_id(&self) -> &str {
        &self.keys[0].0
    }

    /// Every loaded id, current first.
    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.keys.iter().map(|(id, _)| id.as_str())
    }

    pub fn contains(&self, id: &str) -> bool {
        self.ids().any(|k| k == id)
    }

    /// Seals under the current key; returns its id with the ciphertext.
    pub fn seal(
        &self,
        sub: &Subject,
        device: &DeviceId,
        settings: TotpSettings,
        secret: &TotpSecret,
    ) -> Result<(String, Vec<u8>), CipherError> {
        let (id, cipher) = &self.keys[0];
        Ok((id.clone(), cipher.seal(id, sub, device, settings, secret)?))
    }

    /// Opens a secret sealed under `key_id`; one sealed before key ids (`None`) is tried with
    /// every loaded key (the authentication tag tells the right one).
    pub fn open(
        &self,
        key_id: Option<&str>,
        sub: &Subject,
        device: &DeviceId,
        settings: TotpSettings,
        stored: &[u8],
    ) -> Result<TotpSecret, CipherError> {
        match key_id {
            Some(id) => {
                let (_, cipher) = self
                    .keys
                    .iter()
                    .find(|(k, _)| k == id)
                    .ok_or_else(|| CipherError::UnknownKey(id.to_owned()))?;
                cipher.open(Some(id), sub, device, settings, stored)
            }
            None => self
                .keys
                .iter()
                .find_map(|(_, c)| c.open(None, sub, device, settings, stored).ok())
                .ok_or(CipherError::Unreadable),
        }
    }
}

/// `from_peppers` cannot collide (one current id, derived ids unique per pepper id); this keeps
/// that reasoning out of a panic.
fn unreachable_ring(peppers: &PepperRing) -> TotpKeyRing {
    let current = peppers.current();
    TotpKeyRing {
        keys: vec![(
            derived_key_id(&current.id),
            TotpCipher::from_pepper(current),
        )],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::Pepper;

    fn parts() -> (Subject, DeviceId, TotpSettings, TotpSecret) {
        (
            Subject::parse("alice").unwrap(),
            DeviceId::parse("738e379f-fe30-45ab-819c-ba88804b6368").unwrap(),
            TotpSettings::default(),
            TotpSecret::generate(&mut rand::rng()),
        )
    }

    #[test]
    fn an_old_key_opens_its_secrets_and_new_ones_go_under_the_current_key() {
        let peppers = PepperRing::single(Pepper::new("p1".into(), vec![1; 32]).unwrap());
        let k = |b: u8| TotpCipher::derive(&[b; 32]);
        let before = TotpKeyRing::new(("t1".into(), k(1)), vec![], &peppers).unwrap();
        let (sub, dev, settings, secret) = parts();
        let (id, ct) = before.seal(&sub, &dev, settings, &secret).unwrap();
        assert_eq!(id, "t1");
        let after =
            TotpKeyRing::new(("t2".into(), k(2)), vec![("t1".into(), k(1))], &peppers).unwrap();
        let opened = after.open(Some("t1"), &sub, &dev, settings, &ct).unwrap();
        assert_eq!(opened.bytes(), secret.bytes());
        assert_eq!(after.seal(&sub, &dev, settings, &secret).unwrap().0, "t2");
        let without = TotpKeyRing::new(("t2".into(), k(2)), vec![], &peppers).unwrap();
        assert!(matches!(
            without.open(Some("t1"), &sub, &dev, settings, &ct),
            Err(CipherError::UnknownKey(id)) if id == "t1"
        ));
        let dup = TotpKeyRing::new(("t2".into(), k(2)), vec![("t2".into(), k(3))], &peppers);
        assert!(dup.unwrap_err().contains("`t2` is loaded twice"));
    }

    #[test]
    fn a_secret_sealed_before_key_ids_opens_with_whichever_loaded_key_sealed_it() {
        let peppers = PepperRing::single(Pepper::new("p1".into(), vec![1; 32]).unwrap());
        let (sub, dev, settings, secret) = parts();
        let legacy = TotpCipher::from_pepper(peppers.current())
            .seal_as(None, &sub, &dev, settings, &secret)
            .unwrap();
        let ring = TotpKeyRing::new(
            ("t1".into(), TotpCipher::derive(&[9; 32])),
            vec![],
            &peppers,
        )
        .unwrap();
        assert_eq!(ring.ids().collect::<Vec<_>>(), ["t1", "pepper:p1"]);
        let opened = ring.open(None, &sub, &dev, settings, &legacy).unwrap();
        assert_eq!(opened.bytes(), secret.bytes());
        assert_eq!(
            TotpKeyRing::from_peppers(&peppers).current_id(),
            "pepper:p1"
        );
    }
}
