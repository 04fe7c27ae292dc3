//! Bearer tokens: real signatures from the test issuer's published keys, and the ways tokens fail.

use crate::support::*;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use std::sync::Arc;

/// `POST /user/otp` with kim's PIN and `token`, whatever it is.
async fn post_with(app: &TestApp, token: &str) -> reqwest::Response {
    let kim = app.as_user("kim").with_token(token);
    kim.create_otp_with_pin("1235").await
}

async fn assert_unauthorized(res: reqwest::Response) {
    assert_eq!(
        res.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .split(' ')
            .next(),
        Some("Bearer")
    );
    assert_error(res, 401, "invalid-token").await;
}

#[tokio::test]
async fn rs256_and_es256_tokens_from_the_published_keys_are_accepted() {
    let app = TestApp::spawn().await;
    app.set_pin("kim", "1235").await;
    let claims = app.issuer.claims("kim", "user:otp:create");
    assert_eq!(
        post_with(&app, &app.issuer.sign_rs256(&claims))
            .await
            .status(),
        201
    );
    assert_eq!(
        post_with(&app, &app.issuer.sign_es256(&claims))
            .await
            .status(),
        201
    );
}

#[tokio::test]
async fn keys_are_discovered_from_the_issuer_or_taken_from_a_jwks_url() {
    // The issuer otpd trusts publishes no keys at the JWKS its discovery document names; another
    // host serves them. Only an app that uses OTPD_JWKS_URL instead of discovery can verify.
    let issuer = Arc::new(TestIssuer::start().await);
    let key_host = TestIssuer::start().await;
    issuer.withdraw(RSA_KID);
    issuer.withdraw(EC_KID);
    let direct = TestApp::builder()
        .issuer(Arc::clone(&issuer))
        .env("OTPD_JWKS_URL", &format!("{}/jwks.json", key_host.url))
        .spawn()
        .await;
    direct.set_pin("kim", "1235").await;
    assert_eq!(post_with(&direct, &issuer.token("kim")).await.status(), 201);
    assert!(key_host.jwks_fetches() >= 1);
    assert_eq!(
        issuer.jwks_fetches(),
        0,
        "the discovered JWKS was never asked"
    );
    // Without OTPD_JWKS_URL, the same app finds only the empty set discovery points at.
    let discovering = direct.sibling().without_env("OTPD_JWKS_URL").spawn().await;
    assert_refused(
        post_with(&discovering, &issuer.token("kim")).await,
        "no RS256 key for kid",
    )
    .await;
    assert!(
        issuer.jwks_fetches() >= 1,
        "discovery found the issuer's JWKS"
    );
}

#[tokio::test]
async fn a_missing_token_is_401_with_a_bearer_challenge() {
    let app = TestApp::spawn().await;
    let nobody = app.anonymous();
    let res = nobody.create_otp_with_pin("1235").await;
    assert_eq!(res.headers()["www-authenticate"], "Bearer");
    assert_error(res, 401, "missing-token").await;
    let basic = nobody
        .post("/user/otp")
        .header("authorization", "Basic dTpw");
    let res = basic.json(&json!({})).send().await;
    assert_error(res, 401, "missing-token").await;
}

#[tokio::test]
async fn expired_premature_and_garbled_tokens_are_401() {
    let app = TestApp::spawn().await;
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let mut expired = app.issuer.claims("kim", ALL_SCOPES);
    expired["exp"] = json!(now - 120);
    assert_unauthorized(post_with(&app, &app.issuer.sign_rs256(&expired)).await).await;
    let mut premature = app.issuer.claims("kim", ALL_SCOPES);
    premature["nbf"] = json!(now + 600);
    assert_unauthorized(post_with(&app, &app.issuer.sign_rs256(&premature)).await).await;
    let mut no_exp = app.issuer.claims("kim", ALL_SCOPES);
    no_exp.as_object_mut().unwrap().remove("exp");
    assert_unauthorized(post_with(&app, &app.issuer.sign_rs256(&no_exp)).await).await;
    assert_unauthorized(post_with(&app, "not.a.token").await).await;
    assert_unauthorized(post_with(&app, &"a".repeat(10_000)).await).await;
}

#[tokio::test]
async fn a_token_from_another_issuer_or_for_another_audience_is_401() {
    let app = TestApp::builder()
        .env("OTPD_AUDIENCE", "otpd")
        .spawn()
        .await;
    app.set_pin("kim", "1235").await;
    let mut claims = app.issuer.claims("kim", ALL_SCOPES);
    claims["aud"] = json!("otpd");
    assert_eq!(
        post_with(&app, &app.issuer.sign_rs256(&claims))
            .await
            .status(),
        201
    );
    let mut other_aud = claims.clone();
    other_aud["aud"] = json!("payments");
    assert_unauthorized(post_with(&app, &app.issuer.sign_rs256(&other_aud)).await).await;
    let mut no_aud = claims.clone();
    no_aud.as_object_mut().unwrap().remove("aud");
    assert_unauthorized(post_with(&app, &app.issuer.sign_rs256(&no_aud)).await).await;
    let mut other_iss = claims.clone();
    other_iss["iss"] = json!("https://evil.example");
    assert_unauthorized(post_with(&app, &app.issuer.sign_rs256(&other_iss)).await).await;
}

#[tokio::test]
async fn a_signature_by_an_unpublished_key_is_401() {
    let app = TestApp::spawn().await;
    let claims = app.issuer.claims("kim", ALL_SCOPES);
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(RSA_KID.to_owned());
    let forged = app
        .issuer
        .sign_with(&header, &claims, &rsa_key("rsa-other-key.pem"));
    assert_unauthorized(post_with(&app, &forged).await).await;
}

fn b64(v: &Value) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
}

#[tokio::test]
async fn alg_none_and_hmac_tokens_are_refused() {
    let app = TestApp::spawn().await;
    let claims = app.issuer.claims("kim", ALL_SCOPES);
    let none = format!(
        "{}.{}.",
        b64(&json!({"alg": "none", "typ": "JWT"})),
        b64(&claims)
    );
    assert_unauthorized(post_with(&app, &none).await).await;
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some(RSA_KID.to_owned());
    let hmac = app
        .issuer
        .sign_with(&header, &claims, &EncodingKey::from_secret(b"guessable"));
    assert_unauthorized(post_with(&app, &hmac).await).await;
}

#[tokio::test]
async fn a_token_naming_its_own_key_is_refused() {
    let app = TestApp::spawn().await;
    let claims = app.issuer.claims("kim", ALL_SCOPES);
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(RSA_KID.to_owned());
    header.jku = Some("https://evil.example/jwks.json".to_owned());
    assert_unauthorized(
        post_with(
            &app,
            &app.issuer
                .sign_with(&header, &claims, &rsa_key("rsa-test-key.pem")),
        )
        .await,
    )
    .await;
}

#[tokio::test]
async fn a_token_without_the_scope_is_403() {
    let app = TestApp::spawn().await;
    let token = app.issuer.token_with_scope("kim", "user:otp:verify openid");
    let res = post_with(&app, &token).await;
    assert_eq!(
        res.headers()["www-authenticate"],
        "Bearer error=\"insufficient_scope\""
    );
    assert_error(res, 403, "insufficient-scope").await;
}

#[tokio::test]
async fn a_token_without_the_linked_identity_gets_the_documented_401() {
    let app = TestApp::builder()
        .env("OTPD_LINKED_IDENTITY_CLAIM", "pace_linked")
        .spawn()
        .await;
    app.set_pin("kim", "1235").await;
    let err = assert_error(
        post_with(&app, &app.issuer.token("kim")).await,
        401,
        "missing-linked-identity",
    )
    .await;
    assert_eq!(
        err["title"],
        "Missing linked identity for authorized access"
    );
    assert_eq!(
        err["detail"],
        "Linked identity is needed to access this resource, please check why the user does not have a linked identity"
    );
    let mut claims = app.issuer.claims("kim", ALL_SCOPES);
    claims["pace_linked"] = json!("");
    assert_error(
        post_with(&app, &app.issuer.sign_rs256(&claims)).await,
        401,
        "missing-linked-identity",
    )
    .await;
    claims["pace_linked"] = json!("idp-42");
    assert_eq!(
        post_with(&app, &app.issuer.sign_rs256(&claims))
            .await
            .status(),
        201
    );
}

#[tokio::test]
async fn cheap_checks_come_before_the_token() {
    // A wrong content type is refused even with a garbage token: no signature work is spent on it.
    let app = TestApp::spawn().await;
    let garbage = app.as_user("kim").with_token("garbage");
    let res = garbage
        .post("/user/otp")
        .header("content-type", "text/plain")
        .body("x")
        .send()
        .await;
    assert_error(res, 415, "unsupported-media-type").await;
}

// ---------------------------------------------------------------------------------------------
// Crafted attacks: each is a generic 401 whose reason is in the request's log line, not the body.

/// Sends `token`, expects the generic 401, and checks that the request's log says `reason`.
async fn refused_because(app: &TestApp, token: &str, reason: &str) {
    assert_refused(post_with(app, token).await, reason).await;
}

fn header_with(alg: Algorithm, kid: &str) -> Header {
    let mut header = Header::new(alg);
    header.kid = Some(kid.to_owned());
    header
}

#[tokio::test]
async fn alg_none_in_any_spelling_is_refused() {
    let app = TestApp::spawn().await;
    let claims = app.issuer.claims("kim", ALL_SCOPES);
    for alg in ["none", "None", "NONE"] {
        let token = format!(
            "{}.{}.",
            b64(&json!({"alg": alg, "typ": "JWT", "kid": RSA_KID})),
            b64(&claims)
        );
        refused_because(&app, &token, "malformed token").await;
    }
}

#[tokio::test]
async fn an_hmac_token_keyed_with_the_issuers_public_rsa_key_is_refused() {
    // The classic confusion: a verifier that feeds "the key" to whatever `alg` says would check
    // this HMAC with the public key's bytes, which the attacker has.
    let app = TestApp::spawn().await;
    let claims = app.issuer.claims("kim", ALL_SCOPES);
    let public_pem = fixture("rsa-test-key.pub.pem");
    for alg in [Algorithm::HS256, Algorithm::HS384, Algorithm::HS512] {
        let token = app.issuer.sign_with(
            &header_with(alg, RSA_KID),
            &claims,
            &EncodingKey::from_secret(&public_pem),
        );
        refused_because(&app, &token, &format!("algorithm {alg:?} is not allowed")).await;
    }
}

#[tokio::test]
async fn an_algorithm_that_does_not_fit_the_keys_type_is_refused() {
    let app = TestApp::spawn().await;
    let claims = app.issuer.claims("kim", ALL_SCOPES);
    let ec = EncodingKey::from_ec_pem(&fixture("ec-test-key.pem")).unwrap();
    // ES256 header naming the RSA key.
    let token = app
        .issuer
        .sign_with(&header_with(Algorithm::ES256, RSA_KID), &claims, &ec);
    refused_because(&app, &token, "no ES256 key for kid").await;
    // RS256 and PS256 headers naming the EC key.
    let rsa = rsa_key("rsa-test-key.pem");
    for alg in [Algorithm::RS256, Algorithm::PS256] {
        let token = app
            .issuer
            .sign_with(&header_with(alg, EC_KID), &claims, &rsa);
        refused_because(&app, &token, &format!("no {alg:?} key for kid")).await;
    }
    // A real RS256 signature relabelled ES256.
    let genuine = app.issuer.sign_rs256(&claims);
    let (_, rest) = genuine.split_once('.').unwrap();
    let relabelled = format!(
        "{}.{rest}",
        b64(&json!({"alg": "ES256", "typ": "JWT", "kid": RSA_KID}))
    );
    refused_because(&app, &relabelled, "no ES256 key for kid").await;
}

#[tokio::test]
async fn headers_that_point_at_other_keys_are_refused_even_with_a_good_signature() {
    let app = TestApp::spawn().await;
    let claims = app.issuer.claims("kim", ALL_SCOPES);
    let rsa = rsa_key("rsa-test-key.pem");
    let attacker = rsa_key("rsa-other-key.pem");
    let mut jku = header_with(Algorithm::RS256, RSA_KID);
    jku.jku = Some("https://evil.example/jwks.json".into());
    let mut x5u = header_with(Algorithm::RS256, RSA_KID);
    x5u.x5u = Some("https://evil.example/cert.pem".into());
    let mut jwk = header_with(Algorithm::RS256, RSA_KID);
    jwk.jwk = Some(public_jwk(&attacker, Algorithm::RS256, RSA_KID));
    let mut x5c = header_with(Algorithm::RS256, RSA_KID);
    x5c.x5c = Some(vec!["MIIB".into()]);
    for (header, name) in [(jku, "jku"), (x5u, "x5u"), (jwk, "jwk"), (x5c, "x5c")] {
        let token = app.issuer.sign_with(&header, &claims, &rsa);
        refused_because(&app, &token, &format!("header parameter `{name}`")).await;
    }
    // The embedded key signing its own token is refused just the same.
    let mut own = header_with(Algorithm::RS256, "attacker");
    own.jwk = Some(public_jwk(&attacker, Algorithm::RS256, "attacker"));
    let token = app.issuer.sign_with(&own, &claims, &attacker);
    refused_because(&app, &token, "header parameter `jwk`").await;
}

#[tokio::test]
async fn an_oversized_token_is_refused_before_parsing_even_if_well_signed() {
    let app = TestApp::spawn().await;
    let mut claims = app.issuer.claims("kim", ALL_SCOPES);
    claims["padding"] = json!("x".repeat(9000));
    let token = app.issuer.sign_rs256(&claims);
    assert!(token.len() > 8 * 1024);
    refused_because(&app, &token, "token larger than 8192 bytes").await;
}

#[tokio::test]
async fn a_token_without_exp_is_refused() {
    let app = TestApp::spawn().await;
    let mut claims = app.issuer.claims("kim", ALL_SCOPES);
    claims.as_object_mut().unwrap().remove("exp");
    refused_because(&app, &app.issuer.sign_rs256(&claims), "exp").await;
}

#[tokio::test]
async fn only_jwt_and_at_jwt_token_types_are_accepted() {
    let app = TestApp::spawn().await;
    app.set_pin("kim", "1235").await;
    let claims = app.issuer.claims("kim", ALL_SCOPES);
    let rsa = rsa_key("rsa-test-key.pem");
    for typ in [
        Some("JWT"),
        Some("at+jwt"),
        Some("application/at+JWT"),
        None,
    ] {
        let mut header = header_with(Algorithm::RS256, RSA_KID);
        header.typ = typ.map(str::to_owned);
        let token = app.issuer.sign_with(&header, &claims, &rsa);
        assert_eq!(post_with(&app, &token).await.status(), 201, "typ {typ:?}");
    }
    for typ in ["dpop+jwt", "logout+jwt", "JWE", "secevent+jwt"] {
        let mut header = header_with(Algorithm::RS256, RSA_KID);
        header.typ = Some(typ.to_owned());
        let token = app.issuer.sign_with(&header, &claims, &rsa);
        refused_because(&app, &token, "is not an access token").await;
    }
}

#[tokio::test]
async fn an_opaque_token_without_introspection_configured_is_refused() {
    let app = TestApp::spawn().await;
    refused_because(
        &app,
        "Y2G2vrIaH7hX47kERgl3whVr2w9uwR2p4uDYGy_BYbS",
        "not a JWT",
    )
    .await;
}
