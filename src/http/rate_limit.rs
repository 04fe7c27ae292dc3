//! Request rate limits per token client (`azp`/`client_id`) and per source address, in process.
//!
//! They protect the service, not a user: a limited request is answered 429 `rate-limited` before
//! any secret is looked at and never counts as a failed attempt. Each replica limits on its own
//! (the limits are per replica, documented in docs/lockout.md); the attempt limits that protect a
//! user live in the database. Keys of idle callers are pruned periodically, so a flood of distinct
//! addresses or clients costs memory for a few seconds only.

use super::error::ApiError;
use crate::domain::lockout::retry_after_secs;
use governor::clock::{Clock, DefaultClock};
use governor::middleware::NoOpMiddleware;
use governor::state::keyed::DashMapStateStore;
use governor::{Quota, RateLimiter};
use std::fmt;
use std::hash::Hash;
use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::{Arc, Weak};
use std::time::Duration;

/// Longest client id used as a key; longer ones are cut (they come from signed tokens, but a
/// key's size should not be up to the identity provider).
const MAX_CLIENT_KEY: usize = 128;
/// How often idle keys are dropped.
const PRUNE_EVERY: Duration = Duration::from_secs(10);

type Keyed<K, C> = RateLimiter<K, DashMapStateStore<K>, C, NoOpMiddleware<<C as Clock>::Instant>>;

/// The limits of one replica (`rate_limit_per_client`, `rate_limit_per_address`); `None`: off.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimits {
    pub per_client: Option<RateQuota>,
    pub per_address: Option<RateQuota>,
}

/// A rate limit: `count` requests per `period`, all of them allowed in one burst.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateQuota {
    pub count: u32,
    pub period: Duration,
}

impl RateQuota {
    /// `N/s`, `N/min` or `N/h`; `off` (or `0`) is `None`.
    pub fn parse(raw: &str) -> Result<Option<Self>, String> {
        let raw = raw.trim();
        if raw == "off" || raw == "0" {
            return Ok(None);
        }
        let (count, unit) = raw
            .split_once('/')
            .ok_or_else(|| format!("`{raw}` is not N/s, N/min, N/h or off"))?;
        let count: u32 = count
            .trim()
            .parse()
            .ok()
            .filter(|c| (1..=1_000_000).contains(c))
            .ok_or_else(|| format!("`{count}` is not a count of 1..1000000"))?;
        let period = match unit.trim() {
            "s" => Duration::from_secs(1),
            "min" => Duration::from_secs(60),
            "h" => Duration::from_secs(3600),
            other => return Err(format!("unknown period `{other}` (expected s, min or h)")),
        };
        Ok(Some(Self { count, period }))
    }
}

impl fmt::Display for RateQuota {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let unit = match self.period.as_secs() {
            1 => "s",
            60 => "min",
            _ => "h",
        };
        write!(f, "{}/{unit}", self.count)
    }
}

/// One keyed limiter.
struct Limit<K: Hash + Eq + Clone, C: Clock> {
    limiter: Keyed<K, C>,
    clock: C,
}

impl<K: Hash + Eq + Clone, C: Clock + Clone> Limit<K, C> {
    fn new(quota: RateQuota, clock: C) -> Self {
        Self {
            limiter: RateLimiter::dashmap_with_clock(governor_quota(quota), clock.clone()),
            clock,
        }
    }

    fn check(&self, key: &K) -> Result<(), ApiError> {
        self.limiter.check_key(key).map_err(|not_until| {
            let wait = not_until.wait_time_from(self.clock.now());
            ApiError::RateLimited {
                retry_after_secs: retry_after_secs(wait),
            }
        })
    }

    fn prune(&self) {
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
    }

    fn len(&self) -> usize {
        self.limiter.len()
    }
}

pub(crate) fn governor_quota(q: RateQuota) -> Quota {
    let burst = NonZeroU32::new(q.count).unwrap_or(NonZeroU32::MIN);
    let interval = (q.period / burst.get()).max(Duration::from_nanos(1));
    Quota::with_period(interval)
        .unwrap_or_else(|| Quota::per_second(burst))
        .allow_burst(burst)
}

/// The rate limits of one replica.
pub struct RateLimiters<C: Clock = DefaultClock> {
    per_client: Option<Limit<String, C>>,
    per_address: Option<Limit<IpAddr, C>>,
}

impl RateLimiters<DefaultClock> {
    /// Builds the limiters and starts pruning them in the background for as long as they live.
    pub fn start(limits: RateLimits) -> Arc<Self> {
        let this = Arc::new(Self::with_clock(limits, DefaultClock::default()));
        let weak: Weak<Self> = Arc::downgrade(&this);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(PRUNE_EVERY);
            tick.tick().await;
            loop {
                tick.tick().await;
                let Some(limits) = weak.upgrade() else { break };
                limits.prune();
            }
        });
        this
    }
}

impl<C: Clock + Clone> RateLimiters<C> {
    pub fn with_clock(limits: RateLimits, clock: C) -> Self {
        Self {
            per_client: limits.per_client.map(|q| Limit::new(q, clock.clone())),
            per_address: limits.per_address.map(|q| Limit::new(q, clock)),
        }
    }

    pub fn check_client(&self, client_id: &str) -> Result<(), ApiError> {
        match &self.per_client {
            Some(limit) => {
                let key: String = client_id.chars().take(MAX_CLIENT_KEY).collect();
                limit.check(&key)
            }
            None => Ok(()),
        }
    }

    pub fn check_address(&self, ip: IpAddr) -> Result<(), ApiError> {
        match &self.per_address {
            Some(limit) => limit.check(&address_key(ip)),
            None => Ok(()),
        }
    }

    /// The per-address limit for a request's peer (requests without a peer address, as
    /// in-process tests send them, are not limited by address).
    pub fn check_peer(&self, peer: Option<SocketAddr>) -> Result<(), ApiError> {
        match peer {
            Some(peer) => self.check_address(peer.ip()),
            None => Ok(()),
        }
    }

    /// Drops the keys whose buckets are full again (indistinguishable from never seen).
    pub fn prune(&self) {
        if let Some(l) = &self.per_client {
            l.prune();
        }
        if let Some(l) = &self.per_address {
            l.prune();
        }
    }

    /// Keys held right now (for tests and metrics).
    pub fn keys(&self) -> usize {
        self.per_client.as_ref().map_or(0, Limit::len)
            + self.per_address.as_ref().map_or(0, Limit::len)
    }
}

/// An IPv6 host usually holds a whole /64, so that is what one key covers; IPv4-mapped IPv6
/// addresses count as the IPv4 address they are.
fn address_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let mut segments = v6.segments();
                segments[4..].fill(0);
                IpAddr::V6(segments.into())
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use governor::clock::FakeRelativeClock;

    fn limits(client: &str, address: &str) -> RateLimits {
        RateLimits {
            per_client: RateQuota::parse(client).unwrap(),
            per_address: RateQuota::parse(address).unwrap(),
        }
    }

    #[test]
    fn a_client_gets_its_burst_then_waits_and_others_are_unaffected() {
        let clock = FakeRelativeClock::default();
        let l = RateLimiters::with_clock(limits("3/min", "off"), clock.clone());
        for _ in 0..3 {
            assert!(l.check_client("app").is_ok());
        }
        match l.check_client("app") {
            Err(ApiError::RateLimited { retry_after_secs }) => assert_eq!(retry_after_secs, 20),
            other => panic!("{other:?}"),
        }
        assert!(l.check_client("other").is_ok());
        clock.advance(Duration::from_secs(20));
        assert!(l.check_client("app").is_ok());
        assert!(l.check_client("app").is_err());
    }

    #[test]
    fn a_flood_of_distinct_addresses_is_forgotten_once_idle() {
        let clock = FakeRelativeClock::default();
        let l = RateLimiters::with_clock(limits("off", "5/s"), clock.clone());
        for i in 0..20_000u32 {
            assert!(l.check_address(IpAddr::V4(i.into())).is_ok());
        }
        assert_eq!(l.keys(), 20_000);
        clock.advance(Duration::from_secs(1));
        l.prune();
        assert_eq!(l.keys(), 0);
    }

    #[test]
    fn one_ipv6_slash_64_is_one_key() {
        let clock = FakeRelativeClock::default();
        let l = RateLimiters::with_clock(limits("off", "2/min"), clock);
        let a: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let other: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert!(l.check_address(a).is_ok() && l.check_address(b).is_ok());
        assert!(l.check_address(a).is_err());
        assert!(l.check_address(other).is_ok());
        let mapped: IpAddr = "::ffff:10.0.0.1".parse().unwrap();
        assert_eq!(address_key(mapped), "10.0.0.1".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn off_means_no_limit() {
        let l = RateLimiters::with_clock(limits("off", "off"), FakeRelativeClock::default());
        for _ in 0..1000 {
            assert!(l.check_client("app").is_ok());
            assert!(l.check_address(IpAddr::V4(1.into())).is_ok());
        }
        assert_eq!(l.keys(), 0);
    }
}
