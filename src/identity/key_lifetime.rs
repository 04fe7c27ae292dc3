//! How long a fetched key set may be trusted without asking again: the JWKS response's
//! `Cache-Control`, within bounds.

use std::time::Duration;

/// Cache lifetime when the JWKS response gives none.
pub const DEFAULT_TTL: Duration = Duration::from_secs(300);
/// Bounds on the provider's `max-age`: below, a `no-cache` provider would be fetched on every
/// request; above, a removed key would stay trusted for too long.
pub const MIN_TTL: Duration = Duration::from_secs(60);
pub const MAX_TTL: Duration = Duration::from_secs(24 * 3600);

/// The cache lifetime a JWKS response allows: `max-age` less `Age`, within `MIN_TTL..=MAX_TTL`;
/// `no-store`/`no-cache` mean the minimum; no header means `DEFAULT_TTL`.
pub fn cache_lifetime(headers: &http::HeaderMap) -> Duration {
    let directives: Vec<String> = headers
        .get_all(http::header::CACHE_CONTROL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|d| d.trim().to_ascii_lowercase())
        .collect();
    if directives
        .iter()
        .any(|d| d == "no-store" || d == "no-cache")
    {
        return MIN_TTL;
    }
    let max_age = directives
        .iter()
        .filter_map(|d| d.strip_prefix("max-age="))
        .find_map(|v| v.trim_matches('"').parse::<u64>().ok());
    let Some(max_age) = max_age else {
        return DEFAULT_TTL;
    };
    let age = headers
        .get(http::header::AGE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .unwrap_or(0);
    Duration::from_secs(max_age.saturating_sub(age)).clamp(MIN_TTL, MAX_TTL)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> http::HeaderMap {
        let mut h = http::HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        h
    }

    #[test]
    fn the_cache_lifetime_follows_max_age_within_bounds() {
        let secs = |h: &[(&str, &str)]| cache_lifetime(&headers(h)).as_secs();
        assert_eq!(secs(&[]), DEFAULT_TTL.as_secs());
        assert_eq!(secs(&[("cache-control", "public, max-age=600")]), 600);
        assert_eq!(
            secs(&[("cache-control", "max-age=600"), ("age", "100")]),
            500
        );
        assert_eq!(secs(&[("cache-control", "max-age=5")]), MIN_TTL.as_secs());
        assert_eq!(secs(&[("cache-control", "max-age=0")]), MIN_TTL.as_secs());
        assert_eq!(
            secs(&[("cache-control", "max-age=99999999")]),
            MAX_TTL.as_secs()
        );
        assert_eq!(secs(&[("cache-control", "no-cache")]), MIN_TTL.as_secs());
        assert_eq!(
            secs(&[("cache-control", "max-age=600, no-store")]),
            MIN_TTL.as_secs()
        );
        assert_eq!(
            secs(&[("cache-control", "max-age=junk")]),
            DEFAULT_TTL.as_secs()
        );
    }
}
