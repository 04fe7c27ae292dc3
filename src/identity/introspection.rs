//! Opaque access tokens: RFC 7662 introspection at the provider, with a short cache.
//!
//! Every unknown opaque token would cost a provider round trip before any other limit applies, so
//! the way to the provider is guarded three times: answers are cached by a SHA-256 digest of the
//! token (the token itself is not kept; see `answer_cache` for why active answers and refusals
//! are kept apart), identical tokens in flight share one call, and the calls per second are
//! bounded (`introspection_max_per_second`; beyond it the answer is 503, like a provider that is
//! down). An answer is kept for at most the configured lifetime and never past the token's own
//! `exp`; a refusal for at most `REFUSAL_TTL`. A provider that cannot answer is not a verdict on
//! the token: that is `ProviderUnavailable` (503), not 401, and it is not cached.

use super::TokenError;
use super::answer_cache::{AnswerCache, Entry, REFUSAL_TTL, TokenDigest, Verdict};
use crate::clock::Clock;
use governor::middleware::NoOpMiddleware;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use time::OffsetDateTime;
use tokio::sync::OnceCell;

const TIMEOUT: Duration = Duration::from_secs(5);
const MAX_RESPONSE_BYTES: usize = 64 * 1024;

pub struct IntrospectionSettings {
    pub url: String,
    pub client_id: String,
    pub client_secret: SecretString,
    pub cache_ttl: Duration,
    /// Provider calls per second at most, all of them allowed in one burst.
    pub max_per_second: NonZeroU32,
    /// Whether `http://` URLs (and redirects to them) may be followed.
    pub allow_insecure_urls: bool,
}

/// One provider call that every request for the same token waits on.
type Flight = Arc<OnceCell<Result<Verdict, TokenError>>>;

/// The injected clock as governor's time source, so tests move it instead of sleeping.
#[derive(Clone)]
struct LimiterClock(Arc<dyn Clock>);

impl governor::clock::Clock for LimiterClock {
    type Instant = Duration;
    fn now(&self) -> Duration {
        Duration::try_from(self.0.now() - OffsetDateTime::UNIX_EPOCH).unwrap_or_default()
    }
}

type CallLimiter = RateLimiter<NotKeyed, InMemoryState, LimiterClock, NoOpMiddleware<Duration>>;

pub struct Introspector {
    settings: IntrospectionSettings,
    issuer: String,
    audience: Option<String>,
    leeway: Duration,
    http: reqwest::Client,
    clock: Arc<dyn Clock>,
    cache: AnswerCache,
    in_flight: Mutex<HashMap<TokenDigest, Flight>>,
    calls: CallLimiter,
}

impl Introspector {
    pub fn new(
        settings: IntrospectionSettings,
        issuer: String,
        audience: Option<String>,
        leeway: Duration,
        clock: Arc<dyn Clock>,
    ) -> anyhow::Result<Self> {
        let calls = RateLimiter::direct_with_clock(
            Quota::per_second(settings.max_per_second),
            LimiterClock(Arc::clone(&clock)),
        );
        Ok(Self {
            http: reqwest::Client::builder()
                .timeout(TIMEOUT)
                .https_only(!settings.allow_insecure_urls)
                .build()?,
            settings,
            issuer: issuer.trim_end_matches('/').to_owned(),
            audience,
            leeway,
            clock,
            cache: AnswerCache::default(),
            in_flight: Mutex::new(HashMap::new()),
            calls,
        })
    }

    /// The claims of an active `token`, from the cache or the provider.
    pub async fn introspect(&self, token: &str) -> Result<Arc<Map<String, Value>>, TokenError> {
        let digest: TokenDigest = Sha256::digest(token.as_bytes()).into();
        let verdict = match self.cache.get(&digest, self.clock.now()) {
            Some(verdict) => verdict,
            None => {
                self.join(digest)
                    .outcome(self.ask_and_remember(token, digest))
                    .await?
            }
        };
        match verdict {
            Verdict::Active(claims) => Ok(claims),
            Verdict::Refused(why) => Err(why),
        }
    }

    /// The flight for `digest`: the one in the air, or a new one.
    fn join(&self, digest: TokenDigest) -> FlightTicket<'_> {
        let mut in_flight = self.in_flight.lock().unwrap_or_else(|p| p.into_inner());
        let cell = Arc::clone(in_flight.entry(digest).or_default());
        FlightTicket {
            owner: self,
            digest,
            cell: Some(cell),
        }
    }

    async fn ask_and_remember(
        &self,
        token: &str,
        digest: TokenDigest,
    ) -> Result<Verdict, TokenError> {
        let now = self.clock.now();
        // A flight that began just after the previous one landed: its answer is already here.
        if let Some(verdict) = self.cache.get(&digest, now) {
            return Ok(verdict);
        }
        if self.calls.check().is_err() {
            return Err(TokenError::ProviderUnavailable(format!(
                "introspection: more than {} provider calls a second (introspection_max_per_second)",
                self.settings.max_per_second
            )));
        }
        let answer = self.ask(token).await?;
        let entry = self.judge(answer, now);
        self.cache.put(digest, entry.clone(), now);
        Ok(entry.verdict)
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

    /// What a provider answer means, and until when it may be reused.
    fn judge(&self, answer: Map<String, Value>, now: OffsetDateTime) -> Entry {
        let short = now + self.settings.cache_ttl;
        let refused = |why: TokenError| Entry {
            verdict: Verdict::Refused(why),
            until: short.min(now + REFUSAL_TTL),
        };
        if answer.get("active") != Some(&Value::Bool(true)) {
            return refused(TokenError::Inactive);
        }
        let reject = |why: String| refused(TokenError::Rejected(format!("introspection: {why}")));
        let exp = answer
            .get("exp")
            .and_then(Value::as_i64)
            .and_then(|s| OffsetDateTime::from_unix_timestamp(s).ok());
        if let Some(exp) = exp
            && exp + self.leeway <= now
        {
            return reject("token expired".into());
        }
        // The provider's own endpoint speaks here, so a trailing slash is not worth a refusal.
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
        Entry {
            verdict: Verdict::Active(Arc::new(answer)),
            until,
        }
    }
}

/// A request's place in a flight. Dropped (answered or cancelled), the last one out takes the
/// flight off the board, so cancelled requests leave nothing behind.
struct FlightTicket<'a> {
    owner: &'a Introspector,
    digest: TokenDigest,
    cell: Option<Flight>,
}

impl FlightTicket<'_> {
    /// The flight's outcome: whoever comes first runs `ask`, the others wait for its answer. If
    /// that request is cancelled, a waiting one takes over (tokio's `OnceCell` hands the
    /// initialization on).
    async fn outcome(
        &self,
        ask: impl Future<Output = Result<Verdict, TokenError>>,
    ) -> Result<Verdict, TokenError> {
        match &self.cell {
            Some(cell) => cell.get_or_init(|| ask).await.clone(),
            // Only `drop` empties it.
            None => Err(TokenError::ProviderUnavailable(
                "introspection: no flight".into(),
            )),
        }
    }
}

impl Drop for FlightTicket<'_> {
    fn drop(&mut self) {
        let mut in_flight = self
            .owner
            .in_flight
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        // Our reference goes while the board is locked, so two tickets leaving at once cannot
        // both see the other still holding on.
        drop(self.cell.take());
        if in_flight
            .get(&self.digest)
            .is_some_and(|f| Arc::strong_count(f) == 1)
        {
            in_flight.remove(&self.digest);
        }
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
