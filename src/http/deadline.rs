//! The request timeout: every request is answered within `request_timeout`, plus the wait that a
//! long poll asks for (`GET …?timeout=N`, N up to `MAX_LONG_POLL_SECONDS`), so long polls are
//! never cut short and everything else cannot hang. A request over its deadline gets
//! 503 `request-timeout` (the server gave up; retrying later may work).

use axum::extract::Request;
use http::Method;
use std::time::Duration;

/// The longest wait a long-poll GET may ask for (SPEC: `?timeout=1..60`).
pub const MAX_LONG_POLL_SECONDS: u64 = 60;

/// The deadline of `req` (applied by `context::request_context`): `base`, plus a long poll's wait.
pub fn budget(base: Duration, req: &Request) -> Duration {
    base + long_poll_wait(req)
}

/// The wait a long-poll request asks for; zero for anything else (an invalid value is the
/// handler's to refuse).
fn long_poll_wait(req: &Request) -> Duration {
    if req.method() != Method::GET {
        return Duration::ZERO;
    }
    let seconds = req
        .uri()
        .query()
        .into_iter()
        .flat_map(|q| q.split('&'))
        .filter_map(|pair| pair.strip_prefix("timeout="))
        .filter_map(|v| v.parse::<u64>().ok())
        .map(|v| v.min(MAX_LONG_POLL_SECONDS))
        .max()
        .unwrap_or(0);
    Duration::from_secs(seconds)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wait(method: Method, uri: &str) -> u64 {
        let req = Request::builder()
            .method(method)
            .uri(uri)
            .body(axum::body::Body::empty())
            .unwrap();
        long_poll_wait(&req).as_secs()
    }

    #[test]
    fn long_polls_extend_the_deadline_by_what_they_ask_and_no_more() {
        assert_eq!(wait(Method::GET, "/user/pin?timeout=60"), 60);
        assert_eq!(wait(Method::GET, "/user/pin?x=1&timeout=5"), 5);
        assert_eq!(wait(Method::GET, "/user/pin?timeout=100000"), 60);
        assert_eq!(wait(Method::GET, "/user/pin?timeout=abc"), 0);
        assert_eq!(wait(Method::GET, "/user/pin"), 0);
        assert_eq!(wait(Method::POST, "/user/otp?timeout=60"), 0);
    }
}
