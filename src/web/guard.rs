//! What protects the pages beyond the link token: security headers on every answer, and the check
//! that a form post comes from our own pages (docs/pages.md, "Forms and CSRF").

use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;

/// No inline script or style, nothing from elsewhere, never in a frame, forms only to us.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
                   form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

pub async fn security_headers(req: Request, next: Next) -> Response {
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    // The page URL holds the link token: no Referer may ever carry it anywhere.
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        "cross-origin-opener-policy",
        HeaderValue::from_static("same-origin"),
    );
    h.insert(
        "cross-origin-resource-policy",
        HeaderValue::from_static("same-origin"),
    );
    // Pages hold the token and personal data: never stored by a browser or a proxy. Assets set
    // their own caching.
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    res
}

/// Whether a form post may be from our page. The link token in the form is what protects it (a
/// forged post would need the token); this is defence in depth. Browsers say where a post comes
/// from in `Sec-Fetch-Site`, which a page cannot forge: it must be `same-origin` (or `none`: typed
/// by the user). Browsers too old to send it send `Origin`, which must then be the public URL's
/// origin, except `null`: our own `Referrer-Policy: no-referrer` makes a browser send
/// `Origin: null` for a form on our page. A client that sends neither is not a browser; it holds
/// the token itself.
pub fn same_origin(headers: &HeaderMap, origin: Option<&str>) -> bool {
    let value = |name: &str| headers.get(name).map(|v| v.to_str().unwrap_or("\u{0}"));
    if let Some(site) = value("sec-fetch-site") {
        return matches!(site, "same-origin" | "none");
    }
    match (value("origin"), origin) {
        (None | Some("null"), _) => true,
        (Some(sent), Some(ours)) => sent.eq_ignore_ascii_case(ours),
        // Without a public URL no link can exist, so nothing is at stake.
        (Some(_), None) => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn posts_from_other_sites_are_refused() {
        let ours = Some("https://id.example.com");
        assert!(same_origin(&headers(&[]), ours));
        // What Chrome sends from our page, whose Referrer-Policy is no-referrer.
        assert!(same_origin(
            &headers(&[("origin", "null"), ("sec-fetch-site", "same-origin")]),
            ours
        ));
        assert!(same_origin(
            &headers(&[("origin", "https://id.example.com")]),
            ours
        ));
        assert!(!same_origin(
            &headers(&[("origin", "https://evil.example")]),
            ours
        ));
        for site in ["cross-site", "same-site"] {
            assert!(!same_origin(
                &headers(&[("origin", "null"), ("sec-fetch-site", site)]),
                ours
            ));
        }
    }
}
