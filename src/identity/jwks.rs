//! The issuer's signing keys: discovered, fetched, cached for as long as the provider's
//! `Cache-Control` allows (within bounds), refreshed in the background and on expiry, and re-fetched
//! on an unknown `kid` at most once per `REFRESH_INTERVAL`.
//!
//! A failed fetch never empties the cache: while the provider is unreachable the last keys keep
//! serving (tokens signed by them still expire on their own), and only a successful fetch removes a
//! key. Until the first successful fetch the service reports not-ready.

use super::key_lifetime::{MAX_TTL, cache_lifetime};
use crate::clock::Clock;
use jsonwebtoken::jwk::PublicKeyUse;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, JwkSet, KeyAlgorithm};
use jsonwebtoken::{Algorithm, DecodingKey};
use serde::Deserialize;
use std::sync::{Arc, RwLock, Weak};
use std::time::Duration;
use time::OffsetDateTime;

/// The shortest gap between two fetches that a request can cause (unknown `kid`, expired cache).
pub const REFRESH_INTERVAL: Duration = Duration::from_secs(10);
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// Start-up retries while the provider is down: 1 s, 2 s, 4 s, … up to this.
const MAX_RETRY: Duration = Duration::from_secs(30);
/// A JWKS larger than this is not a key set.
const MAX_JWKS_BYTES: usize = 256 * 1024;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum KeyFamily {
    Rsa,
    P256,
    P384,
    Ed25519,
}

impl KeyFamily {
    fn of_jwk(jwk: &Jwk) -> Option<Self> {
        match &jwk.algorithm {
            AlgorithmParameters::RSA(_) => Some(KeyFamily::Rsa),
            AlgorithmParameters::EllipticCurve(ec) => match ec.curve {
                EllipticCurve::P256 => Some(KeyFamily::P256),
                EllipticCurve::P384 => Some(KeyFamily::P384),
                _ => None,
            },
            AlgorithmParameters::OctetKeyPair(okp) if okp.curve == EllipticCurve::Ed25519 => {
                Some(KeyFamily::Ed25519)
            }
            // Symmetric (`oct`) keys are never trusted: they would let HMAC tokens in.
            _ => None,
        }
    }

    /// Whether a key of this type can verify `alg` (so an ES256 header never meets an RSA key).
    fn signs(self, alg: Algorithm) -> bool {
        use Algorithm::*;
        match self {
            KeyFamily::Rsa => matches!(alg, RS256 | RS384 | RS512 | PS256 | PS384 | PS512),
            KeyFamily::P256 => alg == ES256,
            KeyFamily::P384 => alg == ES384,
            KeyFamily::Ed25519 => alg == EdDSA,
        }
    }
}

struct CachedKey {
    kid: Option<String>,
    /// The JWK's own `alg`, when it names one: the token must use exactly that.
    alg: Option<KeyAlgorithm>,
    family: KeyFamily,
    key: DecodingKey,
}

enum KeySource {
    Fixed,
    JwksUrl(String),
    Discovery(String),
}

#[derive(Default)]
struct CacheState {
    keys: Arc<Vec<CachedKey>>,
    loaded: bool,
    /// The issuer exactly as the discovery document spells it (trailing slash or not), which is
    /// how the provider writes `iss` into its tokens.
    published_issuer: Option<String>,
    /// When the keys stop being fresh (by the injected clock).
    expires_at: Option<OffsetDateTime>,
    /// The last fetch attempt, successful or not (by the injected clock).
    last_attempt: Option<OffsetDateTime>,
    failures: u32,
    /// Key-set fetches since start, for the metrics scrape.
    fetches_ok: u64,
    fetches_failed: u64,
    /// Bumped by every install: what was verified with an earlier key set is verified again.
    generation: u64,
}

/// Why a refresh is wanted; decides whether it is due.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Trigger {
    /// A token named a `kid` we do not have.
    UnknownKey,
    /// The cache lifetime has passed.
    Expired,
    /// The background task's schedule (skipped if a request refreshed in the meantime).
    Scheduled,
}

pub struct KeyCache {
    source: KeySource,
    http: reqwest::Client,
    clock: Arc<dyn Clock>,
    state: RwLock<CacheState>,
    /// One fetch at a time: a burst of unknown `kid`s waits for one fetch instead of causing many.
    fetching: tokio::sync::Mutex<()>,
}

impl KeyCache {
    /// Keys from `jwks_url`, or discovered from `issuer` when it is `None`. Unless
    /// `allow_insecure_urls`, only `https://` is fetched: a discovered `http://` key set, or a
    /// redirect to one, is refused.
    pub fn remote(
        issuer: &str,
        jwks_url: Option<&str>,
        allow_insecure_urls: bool,
        clock: Arc<dyn Clock>,
    ) -> anyhow::Result<Self> {
        let source = match jwks_url {
            Some(url) => KeySource::JwksUrl(url.to_owned()),
            None => KeySource::Discovery(issuer.to_owned()),
        };
        Self::build(source, !allow_insecure_urls, clock)
    }

    /// Exactly `keys`, never refreshed (dev mode).
    pub fn fixed(keys: &JwkSet, clock: Arc<dyn Clock>) -> anyhow::Result<Self> {
        let cache = Self::build(KeySource::Fixed, true, clock)?;
        cache.install(keys, MAX_TTL, None);
        Ok(cache)
    }

    fn build(source: KeySource, https_only: bool, clock: Arc<dyn Clock>) -> anyhow::Result<Self> {
        Ok(Self {
            source,
            http: reqwest::Client::builder()
                .timeout(FETCH_TIMEOUT)
                .https_only(https_only)
                .build()?,
            clock,
            state: RwLock::new(CacheState::default()),
            fetching: tokio::sync::Mutex::new(()),
        })
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, CacheState> {
        self.state.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, CacheState> {
        self.state.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether signing keys have been loaded at least once.
    pub fn ready(&self) -> bool {
        self.read().loaded
    }

    /// The issuer as the provider's discovery document published it; `None` before discovery,
    /// or when the keys come from `jwks_url` or are fixed.
    pub fn published_issuer(&self) -> Option<String> {
        self.read().published_issuer.clone()
    }

    /// Which key set is installed: changes whenever keys (or the published issuer) are installed,
    /// even when they are the same keys.
    pub fn generation(&self) -> u64 {
        self.read().generation
    }

    /// Key-set fetches so far: (succeeded, failed).
    pub fn fetch_counts(&self) -> (u64, u64) {
        let state = self.read();
        (state.fetches_ok, state.fetches_failed)
    }

    /// Fetches the key set now (at start-up).
    pub async fn load(&self) -> anyhow::Result<()> {
        if matches!(self.source, KeySource::Fixed) {
            return Ok(());
        }
        let _one = self.fetching.lock().await;
        self.fetch_and_install().await
    }

    /// The key for a token's `kid` and `alg`, with the generation of the key set it was found in:
    /// refreshes first when the cache has expired, and once more (rate-limited) when the `kid` is
    /// unknown.
    pub async fn key_for(&self, kid: Option<&str>, alg: Algorithm) -> Option<(DecodingKey, u64)> {
        if self.is_stale() {
            // Requests never queue behind a refresh that is already running: the cached keys
            // serve meanwhile.
            if let Ok(_one) = self.fetching.try_lock() {
                self.refresh_locked(Trigger::Expired).await;
            }
        }
        if let Some(key) = self.find(kid, alg) {
            return Some(key);
        }
        self.refresh(Trigger::UnknownKey).await;
        self.find(kid, alg)
    }

    /// Whether the key set has outlived its lifetime (a request should refresh it).
    pub fn is_stale(&self) -> bool {
        let state = self.read();
        !matches!(self.source, KeySource::Fixed)
            && state.expires_at.is_none_or(|t| self.clock.now() >= t)
    }

    fn find(&self, kid: Option<&str>, alg: Algorithm) -> Option<(DecodingKey, u64)> {
        let (keys, generation) = {
            let state = self.read();
            (Arc::clone(&state.keys), state.generation)
        };
        let usable = |k: &&CachedKey| {
            k.family.signs(alg) && k.alg.is_none_or(|a| a.to_string() == format!("{alg:?}"))
        };
        let mut candidates = keys.iter().filter(usable);
        match kid {
            Some(kid) => candidates
                .find(|k| k.kid.as_deref() == Some(kid))
                .map(|k| (k.key.clone(), generation)),
            // Without a kid, only an unambiguous key set is usable.
            None => {
                let first = candidates.next()?;
                candidates
                    .next()
                    .is_none()
                    .then(|| (first.key.clone(), generation))
            }
        }
    }

    async fn refresh(&self, trigger: Trigger) {
        if matches!(self.source, KeySource::Fixed) {
            return;
        }
        let _one = self.fetching.lock().await;
        self.refresh_locked(trigger).await;
    }

    /// Fetches if `trigger` is still due now that we hold the fetch lock (another caller may just
    /// have fetched).
    async fn refresh_locked(&self, trigger: Trigger) {
        let now = self.clock.now();
        let due = {
            let state = self.read();
            let rested = state
                .last_attempt
                .is_none_or(|t| now - t >= REFRESH_INTERVAL);
            match trigger {
                Trigger::UnknownKey => rested,
                Trigger::Expired => rested && state.expires_at.is_none_or(|t| now >= t),
                Trigger::Scheduled => !state.loaded || state.expires_at.is_none_or(|t| now >= t),
            }
        };
        if !due {
            return;
        }
        let was_loaded = self.ready();
        match self.fetch_and_install().await {
            Ok(()) if !was_loaded => tracing::info!("signing keys loaded; ready"),
            Ok(()) => tracing::debug!(?trigger, "signing keys refreshed"),
            Err(e) if was_loaded => tracing::warn!(
                error = format!("{e:#}"),
                ?trigger,
                "could not refresh signing keys; keeping the cached ones"
            ),
            Err(e) => tracing::warn!(
                error = format!("{e:#}"),
                ?trigger,
                "could not load signing keys; not ready until they load"
            ),
        }
    }

    async fn fetch_and_install(&self) -> anyhow::Result<()> {
        self.write().last_attempt = Some(self.clock.now());
        match self.fetch().await {
            Ok((set, ttl, issuer)) => {
                self.install(&set, ttl, issuer);
                self.write().fetches_ok += 1;
                Ok(())
            }
            Err(e) => {
                let mut state = self.write();
                state.failures += 1;
                state.fetches_failed += 1;
                Err(e)
            }
        }
    }

    /// The key set, how long it may be trusted, and the issuer as discovery published it.
    async fn fetch(&self) -> anyhow::Result<(JwkSet, Duration, Option<String>)> {
        let (jwks_url, issuer) = match &self.source {
            KeySource::Fixed => anyhow::bail!("fixed key set"),
            KeySource::JwksUrl(url) => (url.clone(), None),
            KeySource::Discovery(issuer) => {
                let (published, jwks_url) = self.discover(issuer).await?;
                (jwks_url, Some(published))
            }
        };
        let res = self.http.get(&jwks_url).send().await?.error_for_status()?;
        let ttl = cache_lifetime(res.headers());
        let body = res.bytes().await?;
        if body.len() > MAX_JWKS_BYTES {
            anyhow::bail!("the key set at {jwks_url} is larger than {MAX_JWKS_BYTES} bytes");
        }
        let set: JwkSet = serde_json::from_slice(&body)
            .map_err(|e| anyhow::anyhow!("the key set at {jwks_url} is not a JWKS: {e}"))?;
        Ok((set, ttl, issuer))
    }

    /// The issuer as published and the `jwks_uri`. The configured issuer may differ from the
    /// published one by a trailing slash only.
    async fn discover(&self, issuer: &str) -> anyhow::Result<(String, String)> {
        #[derive(Deserialize)]
        struct Discovery {
            issuer: String,
            jwks_uri: String,
        }
        let url = format!(
            "{}/.well-known/openid-configuration",
            issuer.trim_end_matches('/')
        );
        let doc: Discovery = self
            .http
            .get(&url)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        if doc.issuer.trim_end_matches('/') != issuer.trim_end_matches('/') {
            anyhow::bail!(
                "discovery document at {url} names issuer {:?}, expected {issuer:?}",
                doc.issuer
            );
        }
        Ok((doc.issuer, doc.jwks_uri))
    }

    fn install(&self, set: &JwkSet, ttl: Duration, published_issuer: Option<String>) {
        let keys: Vec<CachedKey> = set
            .keys
            .iter()
            .filter(|jwk| !matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption)))
            .filter_map(|jwk| {
                let family = KeyFamily::of_jwk(jwk)?;
                let key = DecodingKey::from_jwk(jwk).ok()?;
                Some(CachedKey {
                    kid: jwk.common.key_id.clone(),
                    alg: jwk.common.key_algorithm,
                    family,
                    key,
                })
            })
            .collect();
        let mut state = self.write();
        state.keys = Arc::new(keys);
        state.generation += 1;
        state.loaded = true;
        if published_issuer.is_some() {
            state.published_issuer = published_issuer;
        }
        state.failures = 0;
        state.expires_at = Some(self.clock.now() + ttl);
    }

    /// How long the background task sleeps before its next fetch.
    fn next_refresh_in(&self) -> Duration {
        let state = self.read();
        if !state.loaded {
            let exp = state.failures.saturating_sub(1).min(5);
            return Duration::from_secs(1u64 << exp).min(MAX_RETRY);
        }
        match state.expires_at {
            Some(t) => {
                let left = t - self.clock.now();
                Duration::try_from(left)
                    .unwrap_or(REFRESH_INTERVAL)
                    .max(REFRESH_INTERVAL)
            }
            None => REFRESH_INTERVAL,
        }
    }

    /// Refreshes the keys in the background: retries until the first load succeeds, then fetches
    /// again whenever the cache expires. Ends when the cache is dropped.
    pub fn spawn_refresh(self: &Arc<Self>) {
        if matches!(self.source, KeySource::Fixed) {
            return;
        }
        let weak: Weak<Self> = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                let wait = match weak.upgrade() {
                    Some(cache) => cache.next_refresh_in(),
                    None => return,
                };
                tokio::time::sleep(wait).await;
                match weak.upgrade() {
                    Some(cache) => cache.refresh(Trigger::Scheduled).await,
                    None => return,
                }
            }
        });
    }
}
