//! Content negotiation, answered in our error format.
//!
//! Header checks are separate extractors so that handlers can run them before token validation:
//! refusing a wrong media type costs nothing, verifying a signature does not.

use super::error::{ApiError, JSON_API};
use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;

pub const APPLICATION_JSON: &str = "application/json";

/// Does an `Accept` header admit `wanted` (`type/subtype`)? Absent means anything goes; `q=0`
/// means "not this one".
pub fn accepts(accept: Option<&str>, wanted: &str) -> bool {
    let Some(accept) = accept else { return true };
    let (wanted_type, _) = wanted.split_once('/').unwrap_or((wanted, ""));
    accept.split(',').any(|range| {
        let mut parts = range.split(';');
        let media = parts.next().unwrap_or("").trim();
        let refused = parts.any(|p| {
            p.trim()
                .strip_prefix("q=")
                .and_then(|q| q.trim().parse::<f32>().ok())
                .is_some_and(|q| q <= 0.0)
        });
        let any_subtype = media.split_once('/').is_some_and(|(t, sub)| {
            sub == "*" && (t == "*" || t.eq_ignore_ascii_case(wanted_type))
        });
        !refused && (any_subtype || media.eq_ignore_ascii_case(wanted))
    })
}

/// Is `content_type` (with any parameters) the media type `wanted`?
pub fn is_media_type(content_type: Option<&str>, wanted: &str) -> bool {
    content_type
        .and_then(|ct| ct.split(';').next())
        .is_some_and(|media| media.trim().eq_ignore_ascii_case(wanted))
}

fn header_str(parts: &Parts, name: header::HeaderName) -> Option<&str> {
    parts
        .headers
        .get(name)
        .map(|v| v.to_str().unwrap_or("\u{0}invalid"))
}

/// The client accepts `application/json` answers (406 otherwise).
pub struct AcceptsJson;

impl<S: Send + Sync> FromRequestParts<S> for AcceptsJson {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        if accepts(header_str(parts, header::ACCEPT), APPLICATION_JSON) {
            Ok(AcceptsJson)
        } else {
            Err(ApiError::NotAcceptable(APPLICATION_JSON))
        }
    }
}

/// The request body is declared as `application/json` (415 otherwise).
pub struct JsonContentType;

impl<S: Send + Sync> FromRequestParts<S> for JsonContentType {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        if is_media_type(header_str(parts, header::CONTENT_TYPE), APPLICATION_JSON) {
            Ok(JsonContentType)
        } else {
            Err(ApiError::UnsupportedMediaType(APPLICATION_JSON))
        }
    }
}

/// The client accepts JSON:API answers (406 otherwise). Like `AcceptsJson`, an absent `Accept`,
/// `*/*` and `application/*` admit it.
pub struct AcceptsJsonApi;

impl<S: Send + Sync> FromRequestParts<S> for AcceptsJsonApi {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        if accepts(header_str(parts, header::ACCEPT), JSON_API) {
            Ok(AcceptsJsonApi)
        } else {
            Err(ApiError::NotAcceptable(JSON_API))
        }
    }
}

/// The client accepts `application/json`, or only JSON:API: the Android SDK sends its JSON:API
/// `Accept` on every request, also to the one plain-JSON GET. (406 for anything else.)
pub struct AcceptsJsonLeniently;

impl<S: Send + Sync> FromRequestParts<S> for AcceptsJsonLeniently {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let accept = header_str(parts, header::ACCEPT);
        if accepts(accept, APPLICATION_JSON) || accepts(accept, JSON_API) {
            Ok(AcceptsJsonLeniently)
        } else {
            Err(ApiError::NotAcceptable(APPLICATION_JSON))
        }
    }
}

/// The request body is declared as `application/vnd.api+json` (415 otherwise). JSON:API allows
/// only its `ext` and `profile` parameters on the media type; any other parameter is a 415 too.
pub struct JsonApiContentType;

impl<S: Send + Sync> FromRequestParts<S> for JsonApiContentType {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let content_type = header_str(parts, header::CONTENT_TYPE);
        let params_ok = content_type.is_some_and(|ct| {
            ct.split(';').skip(1).all(|p| {
                let name = p.split('=').next().unwrap_or("").trim();
                name.is_empty()
                    || name.eq_ignore_ascii_case("ext")
                    || name.eq_ignore_ascii_case("profile")
            })
        });
        if params_ok && is_media_type(content_type, JSON_API) {
            Ok(JsonApiContentType)
        } else {
            Err(ApiError::UnsupportedMediaType(JSON_API))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_values_the_pace_clients_send_admit_json() {
        for ok in [
            None,
            Some("*/*"),
            Some("application/*"),
            Some("application/json"),
            Some("application/json; charset=utf-8"),
            Some("text/html, application/json;q=0.5"),
            Some("Application/JSON"),
            Some("APPLICATION/*"),
        ] {
            assert!(accepts(ok, APPLICATION_JSON), "{ok:?}");
        }
        for bad in [
            Some("text/html"),
            Some("application/xml"),
            Some("application/json;q=0"),
            Some("application/vnd.api+json"),
            Some("text/*"),
            Some("*/json"),
        ] {
            assert!(!accepts(bad, APPLICATION_JSON), "{bad:?}");
        }
    }

    #[test]
    fn json_api_accept_values() {
        for ok in [None, Some("*/*"), Some("application/vnd.api+json")] {
            assert!(accepts(ok, JSON_API), "{ok:?}");
        }
        assert!(!accepts(Some("application/json"), JSON_API));
    }

    #[test]
    fn content_type_parameters_and_case_are_ignored() {
        assert!(is_media_type(
            Some("application/json; charset=utf-8"),
            APPLICATION_JSON
        ));
        assert!(is_media_type(Some("Application/JSON"), APPLICATION_JSON));
        assert!(!is_media_type(Some("text/plain"), APPLICATION_JSON));
        assert!(!is_media_type(None, APPLICATION_JSON));
    }
}
