//! ES256 and ES384 signature checks through ring instead of RustCrypto: the same verification
//! (fixed-size `r ‖ s` signatures over the SEC1 point of the JWKS key), about four times cheaper.
//! Measured on the redemption path: ES256 verification with RustCrypto's `p256` was a third of
//! otpd's CPU time per request (docs/benchmark.md). Every other algorithm stays with
//! jsonwebtoken's RustCrypto provider; ring is already in the build for TLS.

use jsonwebtoken::crypto::{CryptoProvider, JwtVerifier, rust_crypto};
use jsonwebtoken::errors::Result;
use jsonwebtoken::signature::{Error as SignatureError, Verifier};
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey};
use ring::signature::{
    ECDSA_P256_SHA256_FIXED, ECDSA_P384_SHA384_FIXED, EcdsaVerificationAlgorithm, UnparsedPublicKey,
};
use std::sync::LazyLock;

/// Installs the provider for the process (first caller wins; a second call changes nothing).
pub fn install() {
    static PROVIDER: LazyLock<CryptoProvider> = LazyLock::new(|| CryptoProvider {
        signer_factory: rust_crypto::DEFAULT_PROVIDER.signer_factory,
        verifier_factory: new_verifier,
        key_utils: rust_crypto::DEFAULT_PROVIDER.key_utils.clone(),
    });
    let _ = PROVIDER.install_default();
}

fn new_verifier(algorithm: &Algorithm, key: &DecodingKey) -> Result<Box<dyn JwtVerifier>> {
    let (curve, point_len): (&'static EcdsaVerificationAlgorithm, usize) = match algorithm {
        Algorithm::ES256 => (&ECDSA_P256_SHA256_FIXED, 65),
        Algorithm::ES384 => (&ECDSA_P384_SHA384_FIXED, 97),
        _ => return (rust_crypto::DEFAULT_PROVIDER.verifier_factory)(algorithm, key),
    };
    let point = key.try_get_as_bytes()?;
    // ring takes the uncompressed SEC1 point `DecodingKey::from_jwk` builds; any other form (a
    // compressed point from a PEM file) is left to RustCrypto, which decides as before.
    if key.family() != AlgorithmFamily::Ec || point.len() != point_len || point[0] != 4 {
        return (rust_crypto::DEFAULT_PROVIDER.verifier_factory)(algorithm, key);
    }
    Ok(Box::new(RingEcdsa {
        algorithm: *algorithm,
        key: UnparsedPublicKey::new(curve, point.to_vec()),
    }))
}

struct RingEcdsa {
    algorithm: Algorithm,
    key: UnparsedPublicKey<Vec<u8>>,
}

impl Verifier<Vec<u8>> for RingEcdsa {
    fn verify(&self, msg: &[u8], signature: &Vec<u8>) -> std::result::Result<(), SignatureError> {
        self.key
            .verify(msg, signature)
            .map_err(|_| SignatureError::new())
    }
}

impl JwtVerifier for RingEcdsa {
    fn algorithm(&self) -> Algorithm {
        self.algorithm
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use p256::ecdsa::{Signature, SigningKey, signature::Signer};

    fn key_and_signature(msg: &[u8]) -> (DecodingKey, Vec<u8>) {
        let signing = SigningKey::from_bytes(&[7u8; 32].into()).unwrap();
        let point = signing.verifying_key().to_encoded_point(false);
        let key = DecodingKey::from_ec_components(
            &URL_SAFE_NO_PAD.encode(point.x().unwrap()),
            &URL_SAFE_NO_PAD.encode(point.y().unwrap()),
        )
        .unwrap();
        let signature: Signature = signing.sign(msg);
        (key, signature.to_bytes().to_vec())
    }

    #[test]
    fn es256_signatures_are_checked_by_ring_as_by_rustcrypto() {
        let msg = b"header.payload";
        let (key, signature) = key_and_signature(msg);
        let ring = new_verifier(&Algorithm::ES256, &key).unwrap();
        let rust_crypto =
            (rust_crypto::DEFAULT_PROVIDER.verifier_factory)(&Algorithm::ES256, &key).unwrap();
        for verifier in [&ring, &rust_crypto] {
            assert!(verifier.verify(msg, &signature).is_ok());
            let mut altered = signature.clone();
            altered[10] ^= 1;
            assert!(verifier.verify(msg, &altered).is_err());
            assert!(verifier.verify(b"header.other", &signature).is_err());
            assert!(verifier.verify(msg, &signature[..63].to_vec()).is_err());
        }
        // The key of one curve is no key of the other.
        assert!(
            new_verifier(&Algorithm::ES384, &key)
                .map(|v| v.verify(msg, &signature).is_err())
                .unwrap_or(true)
        );
    }
}
