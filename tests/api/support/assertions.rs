//! The assertions every test shares: the JSON:API error shape, and a refused token whose reason
//! is in its request's log line only.

use super::logs::{log_lines_with, request_id};
use serde_json::Value;

/// Checks that `res` is a JSON:API error with `status` and `code`, whose `id` is the response's
/// `Request-Id`, and returns the error object.
pub async fn assert_error(res: reqwest::Response, status: u16, code: &str) -> Value {
    assert_eq!(res.status().as_u16(), status, "status");
    assert_eq!(
        res.headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("application/vnd.api+json"),
        "content type"
    );
    let request_id = request_id(&res);
    let body: Value = res.json().await.expect("JSON body");
    let error = body["errors"][0].clone();
    assert_eq!(error["code"], code, "code in {body}");
    assert_eq!(
        error["status"],
        status.to_string(),
        "status member in {body}"
    );
    assert_eq!(error["id"], request_id.as_str(), "id member in {body}");
    assert!(
        error["title"].is_string() && error["detail"].is_string(),
        "{body}"
    );
    error
}

const GENERIC_TOKEN_DETAIL: &str =
    "The access token is malformed, expired, not yet valid, or not issued for this service.";

/// Checks that `res` is the generic 401 for a bad token, and that its request's log line gives
/// `reason` (which the body must not).
pub async fn assert_refused(res: reqwest::Response, reason: &str) {
    let id = request_id(&res);
    assert_eq!(
        res.headers()["www-authenticate"],
        "Bearer error=\"invalid_token\""
    );
    let err = assert_error(res, 401, "invalid-token").await;
    assert_eq!(err["detail"], GENERIC_TOKEN_DETAIL, "a generic detail only");
    let lines = log_lines_with(&id);
    assert!(
        lines
            .iter()
            .any(|l| l.contains("access token refused") && l.contains(reason)),
        "`{reason}` not in the log of request {id}: {lines:#?}"
    );
}
