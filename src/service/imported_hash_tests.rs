//! Tests of `imported_hash`: round trips, known vectors, limits.

use super::*;

#[test]
fn a_pbkdf2_phc_string_round_trips_and_verifies_the_rfc_6070_vector() {
    // RFC 6070: PBKDF2-HMAC-SHA1("password", "salt", 4096, 20).
    let hash = hex("4b007901b765489abead49d926f721d065a429c1");
    let stored = ImportedHash::pbkdf2_parts(Prf::Sha1, 4096, b"saltsalt", &hash);
    assert!(stored.is_ok());
    let h = ImportedHash::pbkdf2_parts(Prf::Sha1, 4096, b"salt\0\0\0\0", &hash).unwrap();
    assert!(!h.verify(b"password"), "a different salt must not match");
    let mut out = [0u8; 20];
    pbkdf2::pbkdf2_hmac::<Sha1>(b"password", b"salt", 4096, &mut out);
    assert_eq!(out.to_vec(), hash, "the crate computes RFC 6070's value");
    let text = h.to_stored();
    assert!(text.starts_with("$pbkdf2$i=4096,l=20$"), "{text}");
    assert_eq!(ImportedHash::parse(&text).unwrap(), h);
}

#[test]
fn parameters_over_the_limits_are_refused_with_the_reason() {
    let salt = PHC_B64.encode([1u8; 16]);
    let val = PHC_B64.encode([2u8; 32]);
    for (stored, why) in [
        (
            format!("$pbkdf2-sha256$i=10000001,l=32${salt}${val}"),
            "PBKDF2 work",
        ),
        (
            format!(
                "$pbkdf2-sha256$i=6000000,l=64${salt}${}",
                PHC_B64.encode([2u8; 64])
            ),
            "x 2 blocks",
        ),
        (
            format!("$argon2id$v=19$m=1048577,t=1,p=1${salt}${val}"),
            "over the limits",
        ),
        (
            format!("$argon2id$v=19$m=64,t=17,p=1${salt}${val}"),
            "over the limits",
        ),
        (
            format!("$argon2id$v=19$m=64,t=1,p=1,keyid=AAAA${salt}${val}"),
            "keyed Argon2",
        ),
        (
            format!("$scrypt$ln=16,r=8,p=1${salt}${val}"),
            "unsupported algorithm",
        ),
        (
            "$2b$16$L6Bc/AlTQHyd9liGgGEZyOFLPHNgyxeEPfgYfBCVxJ7JIlwxyVU3u".to_owned(),
            "cost 16",
        ),
        ("plain text".to_owned(), "not a PHC string"),
    ] {
        let e = ImportedHash::parse(&stored).unwrap_err().0;
        assert!(e.contains(why), "{stored}: {e}");
        assert!(!e.contains(&val), "the refusal shows no hash value");
    }
}

#[test]
fn bcrypt_variants_verify_with_the_crate_and_keep_their_form() {
    let made = bcrypt::hash_with_salt(b"correct horse", 4, [7u8; 16]).unwrap();
    for version in [
        bcrypt::Version::TwoA,
        bcrypt::Version::TwoB,
        bcrypt::Version::TwoY,
    ] {
        let mcf = made.format_for_version(version);
        let h = ImportedHash::parse(&mcf).unwrap();
        assert_eq!(h.to_stored(), mcf);
        assert_eq!(h.to_string(), "bcrypt cost=4");
        assert!(h.verify(b"correct horse"));
        assert!(!h.verify(b"correct horsf"));
    }
}

#[test]
fn argon2_round_trips_through_the_stored_form() {
    let params = argon2::Params::new(64, 1, 1, Some(32)).unwrap();
    let ctx = argon2::Argon2::new(
        argon2::Algorithm::Argon2i,
        argon2::Version::V0x13,
        params.clone(),
    );
    let mut out = [0u8; 32];
    ctx.hash_password_into(b"pw\xc3\xa9", b"saltsaltsalt", &mut out)
        .unwrap();
    let h = ImportedHash::argon2_parts(
        argon2::Algorithm::Argon2i,
        argon2::Version::V0x13,
        params,
        b"saltsaltsalt",
        &out,
    )
    .unwrap();
    let stored = h.to_stored();
    assert!(
        stored.starts_with("$argon2i$v=19$m=64,t=1,p=1$"),
        "{stored}"
    );
    let back = ImportedHash::parse(&stored).unwrap();
    assert!(back.verify("pwé".as_bytes()));
    // The same text in decomposed form (e + combining acute) is a different password.
    assert!(!back.verify("pwe\u{301}".as_bytes()));
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}
