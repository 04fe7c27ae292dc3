//! Key rotation as an operator sees it: which keys the stored data uses (`otpd keys status`, and
//! the check `otpd check-config` runs), and moving every device secret under the current TOTP key
//! (`otpd keys reencrypt-totp`) online, batch by batch.

use super::clock::to_millis;
use super::stored_hash::StoredHash;
use super::{ServiceError, Services};
use crate::domain::Subject;
use crate::store::Reseal;
use std::collections::BTreeMap;
use std::fmt;

/// Users read per query while counting hashes.
const HASH_PAGE: u32 = 1000;

/// How stored hashes and device secrets are spread over keys and schemes. Never holds a secret.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct KeyReport {
    /// Scheme line -> [passwords, PINs]. Scheme lines: `pepper p1 argon2id m=…,t=…,p=…`,
    /// `imported bcrypt cost=12`, `unreadable`.
    pub hashes: BTreeMap<String, [u64; 2]>,
    /// Device secrets per TOTP key id (`None`: sealed before key ids).
    pub devices: Vec<(Option<String>, i64)>,
    pub current_pepper: String,
    pub loaded_peppers: Vec<String>,
    pub current_totp_key: String,
    pub loaded_totp_keys: Vec<String>,
    /// Things that break logins now: keys in use that are not loaded.
    pub problems: Vec<String>,
}

impl KeyReport {
    /// No stored credential needs a key that is not loaded.
    pub fn is_healthy(&self) -> bool {
        self.problems.is_empty()
    }
}

/// What one run of `reencrypt_totp` did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ReencryptReport {
    /// Sealed anew under the current key.
    pub resealed: u64,
    /// Changed between reading and writing (e.g. a new secret for the device): left alone, and
    /// already under the current key if it was replaced.
    pub changed_meanwhile: u64,
    /// Could not be opened with any loaded key (listed in the log with the reason).
    pub unreadable: u64,
}

impl Services {
    /// Reads every stored hash (page by page) and the device secrets' key ids.
    pub async fn key_report(&self) -> Result<KeyReport, ServiceError> {
        let peppers = self.hasher.pepper_ids();
        let mut report = KeyReport {
            current_pepper: peppers[0].clone(),
            loaded_peppers: peppers,
            current_totp_key: self.totp_keys.current_id().to_owned(),
            loaded_totp_keys: self.totp_keys.ids().map(str::to_owned).collect(),
            ..KeyReport::default()
        };
        let mut missing_peppers: BTreeMap<String, u64> = BTreeMap::new();
        let mut after: Option<String> = None;
        loop {
            let page = self.store.hash_page(after.as_deref(), HASH_PAGE).await?;
            let Some(last) = page.last() else { break };
            after = Some(last.sub.clone());
            for row in &page {
                for (slot, phc) in [(0, &row.password_hash), (1, &row.pin_hash)] {
                    let Some(phc) = phc else { continue };
                    let scheme = match StoredHash::parse(phc) {
                        Ok(StoredHash::Peppered { pepper_id, params }) => {
                            if !report.loaded_peppers.contains(&pepper_id) {
                                *missing_peppers.entry(pepper_id.clone()).or_default() += 1;
                            }
                            format!("pepper {pepper_id} argon2id {params}")
                        }
                        Ok(StoredHash::Imported(h)) => format!("imported {h}"),
                        Err(_) => "unreadable".to_owned(),
                    };
                    report.hashes.entry(scheme).or_default()[slot] += 1;
                }
            }
        }
        for (id, n) in missing_peppers {
            report.problems.push(format!(
                "{n} password/PIN hashes were made under pepper id `{id}`, which is not loaded: those users get 503 key-unavailable until it is added to pepper_old_files"
            ));
        }
        report.devices = self.store.device_key_counts().await?;
        for (id, n) in &report.devices {
            if let Some(id) = id
                && !self.totp_keys.contains(id)
            {
                report.problems.push(format!(
                    "{n} device TOTP secrets are sealed under TOTP key id `{id}`, which is not loaded: their users get 503 key-unavailable on OTP checks until it is loaded"
                ));
            }
        }
        Ok(report)
    }

    /// Seals every device secret that is not under the current TOTP key anew under it, `batch`
    /// devices per transaction. Safe while serving: each row is replaced only if it still holds
    /// what was read, the last accepted step is kept (no replay), and the secret generation is
    /// unchanged (a code being redeemed meanwhile still redeems). Resumable: a new run picks up
    /// whatever is not yet under the current key.
    pub async fn reencrypt_totp(
        &self,
        batch: u32,
        mut progress: impl FnMut(&ReencryptReport),
    ) -> Result<ReencryptReport, ServiceError> {
        let current = self.totp_keys.current_id().to_owned();
        let mut report = ReencryptReport::default();
        let mut after: Option<(String, String)> = None;
        loop {
            let cursor = after.as_ref().map(|(s, d)| (s.as_str(), d.as_str()));
            let page = self
                .store
                .devices_to_reseal(&current, cursor, batch.max(1))
                .await?;
            let Some((last_sub, last_device)) = page.last() else {
                break;
            };
            after = Some((last_sub.clone(), last_device.device_id.clone()));
            let mut reseals = Vec::with_capacity(page.len());
            for (sub, device) in &page {
                match self.reseal(sub, device) {
                    Ok(r) => reseals.push(r),
                    Err(why) => {
                        report.unreadable += 1;
                        tracing::error!(sub, device = %device.device_id, problem = %why, "device TOTP secret not re-encrypted");
                    }
                }
            }
            let done = self
                .store
                .reseal_devices(&reseals, to_millis(self.clock.now()))
                .await?;
            report.resealed += done;
            report.changed_meanwhile += reseals.len() as u64 - done;
            progress(&report);
        }
        Ok(report)
    }

    fn reseal(&self, sub: &str, device: &crate::store::StoredDevice) -> Result<Reseal, String> {
        let subject = Subject::parse(sub).ok_or("stored user id is not valid")?;
        let (id, settings) =
            super::redeem::stored_settings(device).ok_or("stored TOTP parameters are unusable")?;
        let secret = self
            .totp_keys
            .open(
                device.key_id.as_deref(),
                &subject,
                &id,
                settings,
                &device.secret_ct,
            )
            .map_err(|e| e.to_string())?;
        let (key_id, new_ct) = self
            .totp_keys
            .seal(&subject, &id, settings, &secret)
            .map_err(|e| e.to_string())?;
        Ok(Reseal {
            sub: sub.to_owned(),
            device_id: device.device_id.clone(),
            secret_gen: device.secret_gen,
            old_ct: device.secret_ct.clone(),
            new_ct,
            key_id,
        })
    }
}

impl fmt::Display for KeyReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "peppers loaded: {} (current {})",
            self.loaded_peppers.join(", "),
            self.current_pepper
        )?;
        writeln!(
            f,
            "TOTP keys loaded: {} (current {})",
            self.loaded_totp_keys.join(", "),
            self.current_totp_key
        )?;
        writeln!(f, "\npassword and PIN hashes:")?;
        if self.hashes.is_empty() {
            writeln!(f, "  (none)")?;
        }
        for (scheme, [passwords, pins]) in &self.hashes {
            writeln!(f, "  {scheme:<48} password {passwords:>9}  pin {pins:>9}")?;
        }
        writeln!(f, "\ndevice TOTP secrets:")?;
        if self.devices.is_empty() {
            writeln!(f, "  (none)")?;
        }
        for (id, n) in &self.devices {
            let (name, note) = match id {
                None => ("(before key ids)", "any loaded key may open these"),
                Some(id) if *id == self.current_totp_key => (id.as_str(), "current"),
                Some(id) if self.loaded_totp_keys.contains(id) => (id.as_str(), "old, loaded"),
                Some(id) => (id.as_str(), "NOT LOADED"),
            };
            writeln!(f, "  key {name:<20} {n:>9}  ({note})")?;
        }
        for problem in &self.problems {
            writeln!(f, "\nPROBLEM: {problem}")?;
        }
        Ok(())
    }
}
