//! Claims an attacker with a token of their own controls, read the way the documentation says:
//! the linked identity counts only when it names something, an absurd registration time is
//! simply not recent, and the issuer is compared as the provider publishes it.

use crate::support::*;
use serde_json::{Value, json};
use std::sync::Arc;

#[tokio::test]
async fn a_linked_identity_counts_only_when_it_names_something() {
    let app = TestApp::builder()
        .env("OTPD_LINKED_IDENTITY_CLAIM", "pace_linked")
        .spawn()
        .await;
    app.set_pin("kim", "1235").await;
    let linked = |value: Value| {
        app.as_user("kim")
            .with_claims(json!({"pace_linked": value}))
    };
    for value in [
        json!(false),
        json!(0),
        json!(1),
        json!(0.5),
        json!(""),
        json!([]),
        json!({}),
    ] {
        let res = linked(value.clone()).create_otp_with_pin("1235").await;
        assert_eq!(res.status(), 401, "{value}");
        assert_error(res, 401, "missing-linked-identity").await;
    }
    // Absent (a null removes the claim from the token).
    let res = linked(Value::Null).create_otp_with_pin("1235").await;
    assert_error(res, 401, "missing-linked-identity").await;
    for value in [
        json!(true),
        json!("idp-42"),
        json!(["idp-42"]),
        json!({"idp": "42"}),
    ] {
        let res = linked(value.clone()).create_otp_with_pin("1235").await;
        assert_eq!(res.status(), 201, "{value}");
    }
}

const AFTER_LOGIN: &str = "user:device-totps:create-after-login";
const DEVICE: &str = "0f6b2d4e-3c1a-4e8b-9a7d-5b2c1e0f9a84";

#[tokio::test]
async fn an_absurd_registration_time_is_not_recent_and_never_a_500() {
    let app = TestApp::spawn().await;
    for created_at in [
        json!(i64::MIN),
        json!(i64::MIN + 1),
        json!(i64::MAX),
        json!(u64::MAX),
        json!(-1e300),
        json!(1e300),
        json!(i64::MIN.to_string()),
        json!("-99999999999999999999999"),
    ] {
        let newbie = app
            .as_user("newbie")
            .with_claims(json!({"scope": AFTER_LOGIN, "created_at": created_at}));
        let res = newbie.create_device(DEVICE, json!({})).await;
        assert_eq!(res.status(), 403, "created_at {created_at}");
        assert_error(res, 403, "invalid-proof").await;
    }
    // The grant itself still works for a real registration time.
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let newbie = app
        .as_user("newbie")
        .with_claims(json!({"scope": AFTER_LOGIN, "created_at": now - 10}));
    assert_eq!(newbie.create_device(DEVICE, json!({})).await.status(), 201);
}

/// A provider whose discovery document spells its issuer with a trailing slash (as Auth0 does),
/// with the test issuer's keys. Returns its issuer as published.
async fn slash_publishing_provider(keys_from: &TestIssuer) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let published = format!("http://{}/", listener.local_addr().unwrap());
    let doc = json!({"issuer": published, "jwks_uri": format!("{}/jwks.json", keys_from.url)});
    let router = axum::Router::new().route(
        "/.well-known/openid-configuration",
        axum::routing::get(move || async move { axum::Json(doc) }),
    );
    tokio::spawn(async move { axum::serve(listener, router).await });
    published
}

#[tokio::test]
async fn the_issuer_is_compared_as_the_provider_publishes_it() {
    let keys = Arc::new(TestIssuer::start().await);
    let published = slash_publishing_provider(&keys).await;
    let without_slash = published.trim_end_matches('/').to_owned();
    // Configured as published, and configured without the slash: discovery decides either way.
    for configured in [&published, &without_slash] {
        let app = TestApp::builder()
            .issuer(Arc::clone(&keys))
            .env("OTPD_OIDC_ISSUER", configured)
            .spawn()
            .await;
        app.set_pin("kim", "1235").await;
        let kim = app.as_user("kim").with_claims(json!({"iss": published}));
        let res = kim.create_otp_with_pin("1235").await;
        assert_eq!(res.status(), 201, "configured {configured}");
        // A token that spells it differently from the provider is not the provider's.
        let other = app
            .as_user("kim")
            .with_claims(json!({"iss": without_slash}));
        assert_refused(other.create_otp_with_pin("1235").await, "InvalidIssuer").await;
    }
}
