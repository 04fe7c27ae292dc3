//! Opaque access tokens: RFC 7662 introspection at the provider, with a short cache.
//!
//! The cache is keyed by a SHA-256 digest of the token (the token itself is not kept), holds an
//! answer for at most the configured lifetime and never past the token's own `exp`, and remembers
//! `active: false` too so a replayed dead token does not cost a provider round trip each time. A
//! provider that cannot answer is not a verdict on the token: that is `ProviderUnavailable` (503),
//! not 401.

use super::TokenError;
use crate::clock::Clock;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use time::OffsetDateTime;

const TIMEOUT: Duration = Duration::from_secs(5);
/// Entries kept at most; beyond it expired ones are dropped, then the oldest half.
const MAX_ENTRIES: usize = 10_000;
const MAX_RESPONSE_BYTES: usize = 64 * 1024;

pub struct IntrospectionSettings {
    pub url: String,
    pub client_id: String,
    pub client_secret: SecretString,
    pub cache_ttl: Duration,
}

#[derive(Clone)]
struct Entry {
    /// The active token's claims; `None` for an inactive one.
    claims: Option<Arc<Map<String, Value>>>,
    until: OffsetDateTime,
}

pub struct Introspector {
    settings: IntrospectionSettings,
    issuer: String,
    audience: Option<String>,
    leeway: Duration,
    http: reqwest::Client,
    clock: Arc<dyn Clock>,
    cache: Mutex<HashMap<[u8; 32], Entry>>,
}

impl Introspector {
    pub fn new(
        settings: IntrospectionSettings,
        issuer: String,
        audience: Option<String>,
        leeway: Duration,
        clock: Arc<dyn Clock>,
    ) -> anyhow::Result<Self> {
        Ok(Self {
            settings,
            issuer,
            audience,
            leeway,
            http: reqwest::Client::builder().timeout(TIMEOUT).build()?,
            clock,
            cache: Mutex::new(HashMap::new()),
        })
    }

    /// The claims of an active `token`, from the cache or the provider.
    pub async fn introspect(&self, token: &str) -> Result<Arc<Map<String, Value>>, TokenError> {
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let now = self.clock.now();
        let cached = self
            .cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&digest)
            .filter(|e| now < e.until)
            .cloned();
        let entry = match cached {
            Some(entry) => entry,
            None => {
                let answer = self.ask(token).await?;
                let entry = self.judge(answer, now)?;
                self.remember(digest, entry.clone(), now);
                entry
            }
        };
        entry.claims.ok_or(TokenError::Inactive)
    }

    async fn ask(&self, token: &str) -> Result<Map<String, Value>, TokenError> {
        let unavailable =
            |e: String| TokenError::ProviderUnavailable(format!("introspection: {e}"));
        // RFC 6749 §2.3.1: the client id and secret are form-encoded before Basic encoding.
        let id = form_encode(&self.settings.client_id);
        let secret = form_encode(self.settings.client_secret.expose_secret());
        let res = self
            .http
            .post(&self.settings.url)
            .basic_auth(id, Some(secret))
            .header(http::header::ACCEPT, "application/json")
            .header(
                http::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .body(format!(
                "token={}&token_type_hint=access_token",
                form_encode(token)
            ))
            .send()
            .await
            // reqwest's error text names the URL, never the form body or the credentials.
            .map_err(|e| unavailable(e.without_url().to_string()))?;
        let status = res.status();
        if !status.is_success() {
            // 401/403 here mean *our* client credentials are wrong: an operator problem, not the
            // caller's.
            return Err(unavailable(format!("the provider answered {status}")));
        }
        let body = res
            .bytes()
            .await
            .map_err(|e| unavailable(e.without_url().to_string()))?;
        if body.len() > MAX_RESPONSE_BYTES {
            return Err(unavailable("response too large".into()));
        }
        serde_json::from_slice(&body).map_err(|e| unavailable(format!("not a JSON object: {e}")))
    }

    /// Turns a provider answer into a cache entry, or refuses it.
    fn judge(&self, answer: Map<String, Value>, now: OffsetDateTime) -> Result<Entry, TokenError> {
        let short = now + self.settings.cache_ttl;
        if answer.get("active") != Some(&Value::Bool(true)) {
            return Ok(Entry {
                claims: None,
                until: short,
            });
        }
        let reject = |why: String| Err(TokenError::Rejected(format!("introspection: {why}")));
        let exp = answer
            .get("exp")
            .and_then(Value::as_i64)
            .and_then(|s| OffsetDateTime::from_unix_timestamp(s).ok());
        if let Some(exp) = exp
            && exp + self.leeway <= now
        {
            return reject("token expired".into());
        }
        if let Some(iss) = answer.get("iss")
            && iss.as_str().map(|s| s.trim_end_matches('/')) != Some(self.issuer.as_str())
        {
            return reject(format!("issuer {iss} is not the configured one"));
        }
        if let Some(aud) = &self.audience {
            let ok = match answer.get("aud") {
                Some(Value::String(a)) => a == aud,
                Some(Value::Array(list)) => list.iter().any(|a| a.as_str() == Some(aud)),
                _ => false,
            };
            if !ok {
                return reject("the token is not for this audience".into());
            }
        }
        if let Some(kind) = answer.get("token_type")
            && !kind
                .as_str()
                .is_some_and(|k| k.eq_ignore_ascii_case("bearer") || k == "access_token")
        {
            return reject(format!("token type {kind} is not a bearer access token"));
        }
        let until = match exp {
            Some(exp) => short.min(exp),
            None => short,
        };
        Ok(Entry {
            claims: Some(Arc::new(answer)),
            until,
        })
    }

    fn remember(&self, digest: [u8; 32], entry: Entry, now: OffsetDateTime) {
        if entry.until <= now {
            return;
        }
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if cache.len() >= MAX_ENTRIES {
            cache.retain(|_, e| now < e.until);
        }
        if cache.len() >= MAX_ENTRIES {
            let mut ends: Vec<OffsetDateTime> = cache.values().map(|e| e.until).collect();
            ends.sort_unstable();
            let cut = ends[ends.len() / 2];
            cache.retain(|_, e| e.until > cut);
        }
        cache.insert(digest, entry);
    }
}

/// `application/x-www-form-urlencoded` encoding of one value.
fn form_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'*' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::form_encode;

    #[test]
    fn client_credentials_are_form_encoded() {
        assert_eq!(form_encode("otpd"), "otpd");
        assert_eq!(form_encode("a b:c%/é"), "a+b%3Ac%25%2F%C3%A9");
    }
}
