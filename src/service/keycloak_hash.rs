//! Keycloak's `password` credentials as its exports write them: `secretData` and `credentialData`
//! are JSON documents inside JSON strings. Turned into an `ImportedHash` with the parameters
//! Keycloak used, so the check is the one Keycloak made.
//!
//! PBKDF2 (`pbkdf2` = HMAC-SHA1, `pbkdf2-sha256`, `pbkdf2-sha512`): iterations from
//! `hashIterations`; the key length is the stored value's length (older Keycloak releases wrote
//! 512-bit keys for every variant, newer ones 256 bits for SHA-256). Argon2 (`argon2`): type,
//! version, memory, parallelism and hash length from `additionalParameters` (lists of strings).

use super::imported_hash::{ImportedHash, Prf, Refusal};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;
use std::collections::HashMap;

#[derive(Deserialize)]
struct SecretData {
    value: String,
    salt: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CredentialData {
    hash_iterations: Option<i64>,
    algorithm: Option<String>,
    #[serde(default)]
    additional_parameters: HashMap<String, Vec<String>>,
}

fn refuse(why: impl Into<String>) -> Refusal {
    Refusal(why.into())
}

/// Keycloak's defaults for parameters an export may leave out.
const DEFAULT_PBKDF2_ITERATIONS: u32 = 27_500;
const DEFAULT_ARGON2_ITERATIONS: u32 = 5;

pub(super) fn parse(secret_data: &str, credential_data: &str) -> Result<ImportedHash, Refusal> {
    let secret: SecretData = serde_json::from_str(secret_data)
        .map_err(|_| refuse("secretData is not Keycloak's {\"value\",\"salt\"} JSON"))?;
    let cred: CredentialData = serde_json::from_str(credential_data).map_err(|_| {
        refuse("credentialData is not Keycloak's {\"hashIterations\",\"algorithm\"} JSON")
    })?;
    let value = STANDARD
        .decode(secret.value.trim())
        .map_err(|_| refuse("secretData.value is not base64"))?;
    let salt = STANDARD
        .decode(secret.salt.trim())
        .map_err(|_| refuse("secretData.salt is not base64"))?;
    let algorithm = cred.algorithm.as_deref().unwrap_or("pbkdf2-sha256");
    let iterations = |default: u32| -> Result<u32, Refusal> {
        match cred.hash_iterations {
            None => Ok(default),
            Some(i) => u32::try_from(i).map_err(|_| refuse("hashIterations out of range")),
        }
    };
    let prf = match algorithm {
        "pbkdf2" => Some(Prf::Sha1),
        "pbkdf2-sha256" => Some(Prf::Sha256),
        "pbkdf2-sha512" => Some(Prf::Sha512),
        _ => None,
    };
    if let Some(prf) = prf {
        return ImportedHash::keycloak_pbkdf2(
            prf,
            iterations(DEFAULT_PBKDF2_ITERATIONS)?,
            &salt,
            &value,
        );
    }
    if algorithm != "argon2" {
        return Err(refuse(format!(
            "unsupported Keycloak algorithm `{algorithm}`"
        )));
    }
    let param = |name: &str| -> Option<&str> {
        cred.additional_parameters
            .get(name)
            .and_then(|v| v.first())
            .map(String::as_str)
    };
    let number = |name: &str, default: u32| -> Result<u32, Refusal> {
        param(name).map_or(Ok(default), |raw| {
            raw.trim()
                .parse()
                .map_err(|_| refuse(format!("Argon2 {name} `{raw}` is not a number")))
        })
    };
    let variant = match param("type").unwrap_or("id") {
        "id" => argon2::Algorithm::Argon2id,
        "i" => argon2::Algorithm::Argon2i,
        "d" => argon2::Algorithm::Argon2d,
        other => return Err(refuse(format!("unknown Argon2 type `{other}`"))),
    };
    let version = match param("version").unwrap_or("1.3") {
        "1.3" => argon2::Version::V0x13,
        "1.0" => argon2::Version::V0x10,
        other => return Err(refuse(format!("unknown Argon2 version `{other}`"))),
    };
    let hash_length = number("hashLength", 32)?;
    if usize::try_from(hash_length).ok() != Some(value.len()) {
        return Err(refuse(
            "Argon2 hashLength differs from the stored value's length",
        ));
    }
    let params = argon2::Params::new(
        number("memory", 7168)?,
        iterations(DEFAULT_ARGON2_ITERATIONS)?,
        number("parallelism", 1)?,
        Some(value.len()),
    )
    .map_err(|e| refuse(format!("bad Argon2 parameters: {e}")))?;
    ImportedHash::keycloak_argon2(variant, version, params, &salt, &value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pbkdf2_credential(algorithm: &str, iterations: u32, value: &[u8]) -> (String, String) {
        let secret = serde_json::json!({
            "value": STANDARD.encode(value),
            "salt": STANDARD.encode([9u8; 16]),
            "additionalParameters": {}
        });
        let cred = serde_json::json!({
            "hashIterations": iterations,
            "algorithm": algorithm,
            "additionalParameters": {}
        });
        (secret.to_string(), cred.to_string())
    }

    #[test]
    fn the_key_length_follows_the_stored_value() {
        for (algorithm, len, shown) in [
            ("pbkdf2", 64, "pbkdf2 i=1000,l=64"),
            ("pbkdf2-sha256", 32, "pbkdf2-sha256 i=1000,l=32"),
            ("pbkdf2-sha256", 64, "pbkdf2-sha256 i=1000,l=64"),
            ("pbkdf2-sha512", 64, "pbkdf2-sha512 i=1000,l=64"),
        ] {
            let mut value = vec![0u8; len];
            match algorithm {
                "pbkdf2" => pbkdf2::pbkdf2_hmac::<sha1::Sha1>(b"pw", &[9; 16], 1000, &mut value),
                "pbkdf2-sha256" => {
                    pbkdf2::pbkdf2_hmac::<sha2::Sha256>(b"pw", &[9; 16], 1000, &mut value)
                }
                _ => pbkdf2::pbkdf2_hmac::<sha2::Sha512>(b"pw", &[9; 16], 1000, &mut value),
            }
            let (s, c) = pbkdf2_credential(algorithm, 1000, &value);
            let h = parse(&s, &c).unwrap();
            assert_eq!(h.to_string(), shown);
            assert!(h.verify(b"pw") && !h.verify(b"pW"));
            assert_eq!(ImportedHash::parse(&h.to_stored()).unwrap(), h);
        }
    }

    #[test]
    fn unknown_algorithms_and_broken_documents_are_refused() {
        let (s, c) = pbkdf2_credential("md5", 1, &[0; 32]);
        assert!(parse(&s, &c).unwrap_err().0.contains("`md5`"));
        assert!(parse("{}", &c).unwrap_err().0.contains("secretData"));
        let (s, c) = pbkdf2_credential("pbkdf2-sha256", 20_000_000, &[0; 32]);
        assert!(parse(&s, &c).unwrap_err().0.contains("over the limit"));
    }
}
