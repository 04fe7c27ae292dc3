//! The introspection answer cache: active answers and refusals kept apart, so that a flood of
//! made-up tokens (each a refusal) can never push out the answers that real users depend on.
//!
//! Each side is bounded on its own and evicts only its own entries: expired ones first, then the
//! half that would expire soonest. Refusals live briefly (`REFUSAL_TTL` at most); with the
//! provider calls bounded per second, their side holds at most rate × lifetime entries anyway.

use super::TokenError;
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use time::OffsetDateTime;

/// Entries kept at most on each side.
const MAX_ENTRIES: usize = 10_000;
/// The longest a refusal is remembered: long enough that a replayed dead token costs no provider
/// call, short enough that the side turns over quickly.
pub const REFUSAL_TTL: Duration = Duration::from_secs(10);

/// A SHA-256 digest of the token: the token itself is never kept.
pub type TokenDigest = [u8; 32];

/// What the provider's answer means for the token.
#[derive(Clone, Debug)]
pub enum Verdict {
    Active(Arc<Map<String, Value>>),
    /// Inactive, or active but not for us (issuer, audience, type, expiry).
    Refused(TokenError),
}

#[derive(Clone, Debug)]
pub struct Entry {
    pub verdict: Verdict,
    pub until: OffsetDateTime,
}

#[derive(Default)]
pub struct AnswerCache {
    active: Mutex<HashMap<TokenDigest, Entry>>,
    refused: Mutex<HashMap<TokenDigest, Entry>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl AnswerCache {
    /// The verdict on `digest` still valid at `now`, if any.
    pub fn get(&self, digest: &TokenDigest, now: OffsetDateTime) -> Option<Verdict> {
        let fresh = |side: &Mutex<HashMap<TokenDigest, Entry>>| {
            lock(side)
                .get(digest)
                .filter(|e| now < e.until)
                .map(|e| e.verdict.clone())
        };
        fresh(&self.active).or_else(|| fresh(&self.refused))
    }

    /// Keeps `entry` on its side (a verdict replaces the token's earlier one on the other side).
    pub fn put(&self, digest: TokenDigest, entry: Entry, now: OffsetDateTime) {
        if entry.until <= now {
            return;
        }
        let (own, other) = match entry.verdict {
            Verdict::Active(_) => (&self.active, &self.refused),
            Verdict::Refused(_) => (&self.refused, &self.active),
        };
        lock(other).remove(&digest);
        let mut side = lock(own);
        if side.len() >= MAX_ENTRIES && !side.contains_key(&digest) {
            make_room(&mut side, now);
        }
        side.insert(digest, entry);
    }

    /// Entries held on each side: (active, refused).
    #[cfg(test)]
    fn sizes(&self) -> (usize, usize) {
        (lock(&self.active).len(), lock(&self.refused).len())
    }
}

fn make_room(side: &mut HashMap<TokenDigest, Entry>, now: OffsetDateTime) {
    side.retain(|_, e| now < e.until);
    if side.len() >= MAX_ENTRIES {
        let mut ends: Vec<OffsetDateTime> = side.values().map(|e| e.until).collect();
        ends.sort_unstable();
        let cut = ends[ends.len() / 2];
        side.retain(|_, e| e.until > cut);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest(n: usize) -> TokenDigest {
        let mut d = [0u8; 32];
        d[..8].copy_from_slice(&(n as u64).to_be_bytes());
        d
    }

    #[test]
    fn a_flood_of_refusals_never_evicts_an_active_answer() {
        let cache = AnswerCache::default();
        let now = OffsetDateTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let active = Entry {
            verdict: Verdict::Active(Arc::new(Map::new())),
            until: now + Duration::from_secs(30),
        };
        cache.put(digest(0), active, now);
        for n in 1..=3 * MAX_ENTRIES {
            let refused = Entry {
                verdict: Verdict::Refused(TokenError::Inactive),
                // Every refusal outlives the active answer: eviction by expiry would pick it.
                until: now + Duration::from_secs(60),
            };
            cache.put(digest(n), refused, now);
        }
        assert!(matches!(
            cache.get(&digest(0), now),
            Some(Verdict::Active(_))
        ));
        let (active, refused) = cache.sizes();
        assert_eq!(active, 1);
        assert!(refused <= MAX_ENTRIES, "{refused}");
    }

    #[test]
    fn expired_answers_are_not_served() {
        let cache = AnswerCache::default();
        let now = OffsetDateTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let refused = Entry {
            verdict: Verdict::Refused(TokenError::Inactive),
            until: now + Duration::from_secs(5),
        };
        cache.put(digest(1), refused, now);
        assert!(
            cache
                .get(&digest(1), now + Duration::from_secs(4))
                .is_some()
        );
        assert!(
            cache
                .get(&digest(1), now + Duration::from_secs(5))
                .is_none()
        );
    }
}
