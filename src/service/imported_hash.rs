//! Password and PIN hashes made by other systems (imported with `otpd user import`): parsing them,
//! refusing parameters that would make one check a denial of service, and checking a secret
//! exactly as the source system did: unpeppered, against the bytes as typed.
//!
//! Stored as the PHC string (`$argon2id$…`, `$pbkdf2-sha256$i=…,l=…$…`) or bcrypt's modular form
//! (`$2b$12$…`). Keycloak's PBKDF2 and Argon2 credentials are converted to the PHC form at import,
//! so a stored imported hash is always one self-describing string. The first successful check
//! replaces it by otpd's own peppered Argon2id hash (`Verification::outdated`).

use argon2::password_hash::phc::PasswordHash;
use base64::Engine;
use base64::engine::general_purpose::STANDARD_NO_PAD as PHC_B64;
use sha1::Sha1;
use sha2::{Sha256, Sha512};
use std::fmt;
use subtle::ConstantTimeEq;
use zeroize::Zeroize;

/// Limits on imported parameters (README, "Importing users"): one check of a hash at the limit
/// costs seconds of one hashing slot, never minutes or gigabytes.
pub mod limits {
    /// PBKDF2 block computations: iterations × ⌈key length / digest length⌉.
    pub const PBKDF2_MAX_WORK: u64 = 10_000_000;
    pub const BCRYPT_MAX_COST: u32 = 15;
    /// Argon2 memory in KiB (1 GiB).
    pub const ARGON2_MAX_M_KIB: u32 = 1024 * 1024;
    pub const ARGON2_MAX_T: u32 = 16;
    pub const ARGON2_MAX_P: u32 = 16;
}

/// Why an imported hash is refused; the text never contains the hash.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Refusal(pub String);

fn refuse(why: impl Into<String>) -> Refusal {
    Refusal(why.into())
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Prf {
    Sha1,
    Sha256,
    Sha512,
}

impl Prf {
    fn digest_len(self) -> usize {
        match self {
            Prf::Sha1 => 20,
            Prf::Sha256 => 32,
            Prf::Sha512 => 64,
        }
    }

    /// The PHC algorithm name (`pbkdf2` for SHA-1, as Keycloak names it).
    fn ident(self) -> &'static str {
        match self {
            Prf::Sha1 => "pbkdf2",
            Prf::Sha256 => "pbkdf2-sha256",
            Prf::Sha512 => "pbkdf2-sha512",
        }
    }
}

/// A parsed imported hash, checked against the limits.
#[derive(Clone, PartialEq, Eq)]
pub enum ImportedHash {
    Pbkdf2 {
        prf: Prf,
        iterations: u32,
        salt: Vec<u8>,
        hash: Vec<u8>,
    },
    Bcrypt {
        cost: u32,
        mcf: String,
    },
    Argon2 {
        algorithm: argon2::Algorithm,
        version: argon2::Version,
        params: argon2::Params,
        salt: Vec<u8>,
        hash: Vec<u8>,
    },
}

impl fmt::Debug for ImportedHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ImportedHash({self})")
    }
}

/// The scheme and parameters, never salt or hash: what `otpd keys status` groups by.
impl fmt::Display for ImportedHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ImportedHash::Pbkdf2 {
                prf,
                iterations,
                hash,
                ..
            } => write!(f, "{} i={iterations},l={}", prf.ident(), hash.len()),
            ImportedHash::Bcrypt { cost, .. } => write!(f, "bcrypt cost={cost}"),
            ImportedHash::Argon2 {
                algorithm, params, ..
            } => write!(
                f,
                "{algorithm} m={},t={},p={}",
                params.m_cost(),
                params.t_cost(),
                params.p_cost()
            ),
        }
    }
}

impl ImportedHash {
    /// Parses a PHC string (`$argon2id$`, `$argon2i$`, `$pbkdf2-sha256$`, `$pbkdf2-sha512$`,
    /// `$pbkdf2$` for SHA-1) or a bcrypt hash (`$2a$`, `$2b$`, `$2y$`).
    pub fn parse(stored: &str) -> Result<Self, Refusal> {
        if ["$2a$", "$2b$", "$2y$"]
            .iter()
            .any(|p| stored.starts_with(p))
        {
            return Self::bcrypt(stored);
        }
        let phc = PasswordHash::new(stored).map_err(|_| {
            refuse("not a PHC string ($argon2id$, $argon2i$, $pbkdf2-sha256$, $pbkdf2-sha512$) or bcrypt hash ($2a$, $2b$, $2y$)")
        })?;
        match phc.algorithm.as_str() {
            "argon2id" | "argon2i" => Self::argon2(&phc),
            "pbkdf2" => Self::pbkdf2(Prf::Sha1, &phc),
            "pbkdf2-sha256" => Self::pbkdf2(Prf::Sha256, &phc),
            "pbkdf2-sha512" => Self::pbkdf2(Prf::Sha512, &phc),
            other => Err(refuse(format!("unsupported algorithm `{other}`"))),
        }
    }

    fn bcrypt(mcf: &str) -> Result<Self, Refusal> {
        let parts: bcrypt::HashParts = mcf.parse().map_err(|_| refuse("malformed bcrypt hash"))?;
        let cost = parts.get_cost();
        if cost > limits::BCRYPT_MAX_COST {
            return Err(refuse(format!(
                "bcrypt cost {cost} is over the limit of {}",
                limits::BCRYPT_MAX_COST
            )));
        }
        Ok(ImportedHash::Bcrypt {
            cost,
            mcf: mcf.to_owned(),
        })
    }

    fn pbkdf2(prf: Prf, phc: &PasswordHash) -> Result<Self, Refusal> {
        for (name, _) in phc.params.iter() {
            if !matches!(name.as_str(), "i" | "l") {
                return Err(refuse(format!("unknown PBKDF2 parameter `{name}`")));
            }
        }
        let iterations = phc
            .params
            .get_decimal("i")
            .ok_or_else(|| refuse("PBKDF2 hash without iterations (i=)"))?;
        let salt = phc.salt.as_ref().ok_or_else(|| refuse("no salt"))?;
        let hash = phc.hash.as_ref().ok_or_else(|| refuse("no hash value"))?;
        if let Some(l) = phc.params.get_decimal("l")
            && usize::try_from(l).ok() != Some(hash.len())
        {
            return Err(refuse(
                "PBKDF2 key length (l=) differs from the hash value's length",
            ));
        }
        Self::pbkdf2_parts(prf, iterations, salt.as_ref(), hash.as_bytes())
    }

    fn pbkdf2_parts(prf: Prf, iterations: u32, salt: &[u8], hash: &[u8]) -> Result<Self, Refusal> {
        if iterations == 0 {
            return Err(refuse("PBKDF2 iterations must be at least 1"));
        }
        if !(10..=64).contains(&hash.len()) || salt.len() < 8 || salt.len() > 48 {
            return Err(refuse(
                "PBKDF2 key length must be 10..64 bytes and the salt 8..48 bytes",
            ));
        }
        let blocks = hash.len().div_ceil(prf.digest_len()) as u64;
        if u64::from(iterations) * blocks > limits::PBKDF2_MAX_WORK {
            return Err(refuse(format!(
                "PBKDF2 work {iterations} iterations x {blocks} blocks is over the limit of {}",
                limits::PBKDF2_MAX_WORK
            )));
        }
        Ok(ImportedHash::Pbkdf2 {
            prf,
            iterations,
            salt: salt.to_vec(),
            hash: hash.to_vec(),
        })
    }

    fn argon2(phc: &PasswordHash) -> Result<Self, Refusal> {
        let algorithm = argon2::Algorithm::new(phc.algorithm.as_str())
            .map_err(|_| refuse("unknown Argon2 variant"))?;
        let params = argon2::Params::try_from(phc).map_err(|_| refuse("bad Argon2 parameters"))?;
        if !params.keyid().is_empty() || !params.data().is_empty() {
            // The source's secret key is not ours to have; such a hash cannot be checked here.
            return Err(refuse(
                "keyed Argon2 hash (keyid= or data=): it cannot be checked without the source's secret",
            ));
        }
        let version = match phc.version {
            None => argon2::Version::V0x10,
            Some(v) => argon2::Version::try_from(v).map_err(|_| refuse("bad Argon2 version"))?,
        };
        let salt = phc.salt.as_ref().ok_or_else(|| refuse("no salt"))?;
        let hash = phc.hash.as_ref().ok_or_else(|| refuse("no hash value"))?;
        Self::argon2_parts(algorithm, version, params, salt.as_ref(), hash.as_bytes())
    }

    fn argon2_parts(
        algorithm: argon2::Algorithm,
        version: argon2::Version,
        params: argon2::Params,
        salt: &[u8],
        hash: &[u8],
    ) -> Result<Self, Refusal> {
        if params.m_cost() > limits::ARGON2_MAX_M_KIB
            || params.t_cost() > limits::ARGON2_MAX_T
            || params.p_cost() > limits::ARGON2_MAX_P
        {
            return Err(refuse(format!(
                "Argon2 parameters m={},t={},p={} are over the limits (m<={} KiB, t<={}, p<={})",
                params.m_cost(),
                params.t_cost(),
                params.p_cost(),
                limits::ARGON2_MAX_M_KIB,
                limits::ARGON2_MAX_T,
                limits::ARGON2_MAX_P
            )));
        }
        if !(10..=64).contains(&hash.len()) || !(8..=48).contains(&salt.len()) {
            return Err(refuse(
                "Argon2 hash length must be 10..64 bytes and the salt 8..48 bytes",
            ));
        }
        Ok(ImportedHash::Argon2 {
            algorithm,
            version,
            params,
            salt: salt.to_vec(),
            hash: hash.to_vec(),
        })
    }

    /// A Keycloak `password` credential: `secretData` `{"value","salt"}` (base64) and
    /// `credentialData` `{"hashIterations","algorithm","additionalParameters"}`, both JSON text.
    pub fn from_keycloak(secret_data: &str, credential_data: &str) -> Result<Self, Refusal> {
        crate::service::keycloak_hash::parse(secret_data, credential_data)
    }

    pub(crate) fn keycloak_pbkdf2(
        prf: Prf,
        iterations: u32,
        salt: &[u8],
        hash: &[u8],
    ) -> Result<Self, Refusal> {
        Self::pbkdf2_parts(prf, iterations, salt, hash)
    }

    pub(crate) fn keycloak_argon2(
        algorithm: argon2::Algorithm,
        version: argon2::Version,
        params: argon2::Params,
        salt: &[u8],
        hash: &[u8],
    ) -> Result<Self, Refusal> {
        Self::argon2_parts(algorithm, version, params, salt, hash)
    }

    /// The string stored in the database: parses back to the same hash.
    pub fn to_stored(&self) -> String {
        match self {
            ImportedHash::Pbkdf2 {
                prf,
                iterations,
                salt,
                hash,
            } => format!(
                "${}$i={iterations},l={}${}${}",
                prf.ident(),
                hash.len(),
                PHC_B64.encode(salt),
                PHC_B64.encode(hash)
            ),
            ImportedHash::Bcrypt { mcf, .. } => mcf.clone(),
            ImportedHash::Argon2 {
                algorithm,
                version,
                params,
                salt,
                hash,
            } => format!(
                "${algorithm}$v={}$m={},t={},p={}${}${}",
                u32::from(*version),
                params.m_cost(),
                params.t_cost(),
                params.p_cost(),
                PHC_B64.encode(salt),
                PHC_B64.encode(hash)
            ),
        }
    }

    /// Checks `typed` (the bytes as the user typed them: no normalization, no pepper) as the
    /// source system did. Runs the full KDF: call it on the hashing pool.
    pub fn verify(&self, typed: &[u8]) -> bool {
        match self {
            ImportedHash::Pbkdf2 {
                prf,
                iterations,
                salt,
                hash,
            } => {
                let mut out = vec![0u8; hash.len()];
                match prf {
                    Prf::Sha1 => pbkdf2::pbkdf2_hmac::<Sha1>(typed, salt, *iterations, &mut out),
                    Prf::Sha256 => {
                        pbkdf2::pbkdf2_hmac::<Sha256>(typed, salt, *iterations, &mut out)
                    }
                    Prf::Sha512 => {
                        pbkdf2::pbkdf2_hmac::<Sha512>(typed, salt, *iterations, &mut out)
                    }
                }
                let matches = bool::from(out.as_slice().ct_eq(hash));
                out.zeroize();
                matches
            }
            // Truncating at 72 bytes, as every bcrypt that made these hashes did.
            ImportedHash::Bcrypt { mcf, .. } => bcrypt::verify(typed, mcf).unwrap_or(false),
            ImportedHash::Argon2 {
                algorithm,
                version,
                params,
                salt,
                hash,
            } => {
                // A fresh work area, not the pool's reused one: imported parameters may ask for
                // far more memory than otpd's, and that must not stay resident in the thread.
                let ctx = argon2::Argon2::new(*algorithm, *version, params.clone());
                let mut out = vec![0u8; hash.len()];
                let ok = ctx.hash_password_into(typed, salt, &mut out).is_ok()
                    && bool::from(out.as_slice().ct_eq(hash));
                out.zeroize();
                ok
            }
        }
    }
}

#[cfg(test)]
#[path = "imported_hash_tests.rs"]
mod tests;
