//! What a stored password or PIN hash is, read without checking any secret: otpd's own peppered
//! Argon2id (and under which pepper id and parameters), or a hash imported from another system.
//! The hasher dispatches on it; `otpd keys status` counts by it.

use super::hasher::HashError;
use super::imported_hash::ImportedHash;
use argon2::password_hash::phc::PasswordHash;

/// What a stored password or PIN hash is, read without checking any secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoredHash {
    /// otpd's own: Argon2id keyed with the pepper named `pepper_id`.
    Peppered {
        pepper_id: String,
        /// `m=…,t=…,p=…`
        params: String,
    },
    /// Made by another system and imported; checked as that system did (`imported_hash`).
    Imported(ImportedHash),
}

impl StoredHash {
    /// otpd writes every hash as Argon2id with a `keyid`; an imported Argon2 hash never has one
    /// (the importer refuses keyed hashes), so the `keyid` tells the two apart.
    pub fn parse(phc: &str) -> Result<Self, HashError> {
        let bad = |why: &str| HashError::BadStoredHash(why.to_owned());
        if phc.starts_with("$argon2id$") {
            let parsed = PasswordHash::new(phc).map_err(|_| bad("not a PHC string"))?;
            let params = argon2::Params::try_from(&parsed).map_err(|_| bad("bad parameters"))?;
            if !params.keyid().is_empty() {
                let pepper_id = std::str::from_utf8(params.keyid())
                    .map_err(|_| bad("pepper id is not text"))?
                    .to_owned();
                return Ok(StoredHash::Peppered {
                    pepper_id,
                    params: format!(
                        "m={},t={},p={}",
                        params.m_cost(),
                        params.t_cost(),
                        params.p_cost()
                    ),
                });
            }
        }
        ImportedHash::parse(phc)
            .map(StoredHash::Imported)
            .map_err(|r| HashError::BadStoredHash(r.0))
    }
}

/// One line about a stored hash for operators (`otpd user show`): scheme and parameters, and the
/// pepper id of otpd's own hashes; never salt or hash.
pub fn describe(phc: &str) -> String {
    match StoredHash::parse(phc) {
        Ok(StoredHash::Peppered { pepper_id, params }) => {
            format!("argon2id {params} pepper={pepper_id}")
        }
        Ok(StoredHash::Imported(h)) => format!("imported {h} (re-hashed at the next login)"),
        Err(_) => "unreadable".to_owned(),
    }
}
