//! The token issuer: a stand-in identity provider that publishes keys over HTTP (discovery and
//! JWKS) and signs real tokens with them.

use jsonwebtoken::jwk::{Jwk, JwkSet, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

pub const ALL_SCOPES: &str = otpd::dev::ALL_SCOPES;

/// A stand-in identity provider: publishes an RSA and an EC key over HTTP (JWKS and discovery)
/// and signs tokens with them. Tests can change the published keys, the JWKS `Cache-Control`,
/// take it down (503 on every path), and count JWKS fetches.
pub struct TestIssuer {
    pub url: String,
    rsa: EncodingKey,
    ec: EncodingKey,
    keys: Arc<Mutex<JwkSet>>,
    served: Arc<Served>,
}

#[derive(Default)]
struct Served {
    down: AtomicBool,
    jwks_fetches: AtomicUsize,
    cache_control: Mutex<Option<String>>,
}

pub const RSA_KID: &str = "test-rsa";
pub const EC_KID: &str = "test-ec";

pub fn fixture(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

pub fn rsa_key(name: &str) -> EncodingKey {
    EncodingKey::from_rsa_pem(&fixture(name)).expect("RSA fixture")
}

pub fn public_jwk(key: &EncodingKey, alg: Algorithm, kid: &str) -> Jwk {
    let mut jwk = Jwk::from_encoding_key(key, alg).expect("JWK from key");
    jwk.common.key_id = Some(kid.to_owned());
    jwk.common.public_key_use = Some(PublicKeyUse::Signature);
    jwk.common.key_algorithm = Some(match alg {
        Algorithm::ES256 => KeyAlgorithm::ES256,
        _ => KeyAlgorithm::RS256,
    });
    jwk
}

impl TestIssuer {
    pub async fn start() -> Self {
        // As `otpd` does first thing: the token checks in tests use the app's crypto provider.
        otpd::app::install_crypto_provider();
        let rsa = rsa_key("rsa-test-key.pem");
        let ec = EncodingKey::from_ec_pem(&fixture("ec-test-key.pem")).expect("EC fixture");
        let keys = Arc::new(Mutex::new(JwkSet {
            keys: vec![
                public_jwk(&rsa, Algorithm::RS256, RSA_KID),
                public_jwk(&ec, Algorithm::ES256, EC_KID),
            ],
        }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let url = format!("http://{addr}");
        let served_keys = Arc::clone(&keys);
        let served = Arc::new(Served::default());
        let issuer = url.clone();
        let jwks_served = Arc::clone(&served);
        let router = axum::Router::new()
            .route(
                "/.well-known/openid-configuration",
                axum::routing::get(move || {
                    let issuer = issuer.clone();
                    async move {
                        axum::Json(
                            json!({"issuer": issuer, "jwks_uri": format!("{issuer}/jwks.json")}),
                        )
                    }
                }),
            )
            .route(
                "/jwks.json",
                axum::routing::get(move || {
                    let keys = Arc::clone(&served_keys);
                    let served = Arc::clone(&jwks_served);
                    async move {
                        use axum::response::IntoResponse;
                        served.jwks_fetches.fetch_add(1, Ordering::SeqCst);
                        let body = axum::Json(keys.lock().unwrap().clone());
                        match served.cache_control.lock().unwrap().clone() {
                            Some(cc) => ([("cache-control", cc)], body).into_response(),
                            None => body.into_response(),
                        }
                    }
                }),
            );
        let down = Arc::clone(&served);
        let router = router.layer(axum::middleware::from_fn(
            move |req: axum::extract::Request, next: axum::middleware::Next| {
                let down = down.down.load(Ordering::SeqCst);
                async move {
                    use axum::response::IntoResponse;
                    if down {
                        axum::http::StatusCode::SERVICE_UNAVAILABLE.into_response()
                    } else {
                        next.run(req).await
                    }
                }
            },
        ));
        tokio::spawn(async move { axum::serve(listener, router).await });
        Self {
            url,
            rsa,
            ec,
            keys,
            served,
        }
    }

    /// Takes the issuer down (every path answers 503) or brings it back.
    pub fn set_down(&self, down: bool) {
        self.served.down.store(down, Ordering::SeqCst);
    }

    /// How many times the JWKS has been served.
    pub fn jwks_fetches(&self) -> usize {
        self.served.jwks_fetches.load(Ordering::SeqCst)
    }

    /// The `Cache-Control` header of JWKS responses (none by default).
    pub fn set_cache_control(&self, value: Option<&str>) {
        *self.served.cache_control.lock().unwrap() = value.map(str::to_owned);
    }

    /// Publishes `jwk` in addition to the current keys.
    pub fn publish(&self, jwk: Jwk) {
        self.keys.lock().unwrap().keys.push(jwk);
    }

    /// Stops publishing the key `kid`.
    pub fn withdraw(&self, kid: &str) {
        self.keys
            .lock()
            .unwrap()
            .keys
            .retain(|k| k.common.key_id.as_deref() != Some(kid));
    }

    /// Standard claims for `sub` with `scope`, valid for an hour.
    pub fn claims(&self, sub: &str, scope: &str) -> Value {
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        json!({"iss": self.url, "sub": sub, "scope": scope, "azp": "test-client", "iat": now, "nbf": now, "exp": now + 3600})
    }

    pub fn sign_rs256(&self, claims: &Value) -> String {
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(RSA_KID.to_owned());
        jsonwebtoken::encode(&header, claims, &self.rsa).unwrap()
    }

    pub fn sign_es256(&self, claims: &Value) -> String {
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(EC_KID.to_owned());
        header.typ = Some("at+jwt".to_owned());
        jsonwebtoken::encode(&header, claims, &self.ec).unwrap()
    }

    pub fn sign_with(&self, header: &Header, claims: &Value, key: &EncodingKey) -> String {
        jsonwebtoken::encode(header, claims, key).unwrap()
    }

    /// An RS256 token for `sub` with every scope.
    pub fn token(&self, sub: &str) -> String {
        self.sign_rs256(&self.claims(sub, ALL_SCOPES))
    }

    pub fn token_with_scope(&self, sub: &str, scope: &str) -> String {
        self.sign_rs256(&self.claims(sub, scope))
    }

    /// An RS256 token for `sub` with every scope and `extra` claims added (or, when null, removed).
    pub fn token_with_claims(&self, sub: &str, extra: Value) -> String {
        let mut claims = self.claims(sub, ALL_SCOPES);
        let object = claims.as_object_mut().expect("claims are an object");
        for (k, v) in extra.as_object().expect("extra claims are an object") {
            if v.is_null() {
                object.remove(k);
            } else {
                object.insert(k.clone(), v.clone());
            }
        }
        self.sign_rs256(&claims)
    }
}
