//! The JSON:API error document: the body we give a status that a layer produced without one of
//! ours, and the rendering of one error with its request id. `error.rs` decides which error a
//! request gets; this file only writes it down.

use super::error::{ErrorBody, ErrorSource};
use axum::http::StatusCode;
use serde::Serialize;

/// The error we answer for a status that some layer produced without our body.
pub fn for_status(status: StatusCode) -> ErrorBody {
    let (code, title, detail) = match status {
        StatusCode::NOT_FOUND => ("not-found", "Not found", "No such resource."),
        StatusCode::METHOD_NOT_ALLOWED => (
            "method-not-allowed",
            "Method not allowed",
            "This resource does not support the request method.",
        ),
        StatusCode::PAYLOAD_TOO_LARGE => (
            "payload-too-large",
            "Payload too large",
            "The request body exceeds the size limit.",
        ),
        StatusCode::REQUEST_TIMEOUT => (
            "request-timeout",
            "Request timeout",
            "The request took too long.",
        ),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => (
            "unsupported-media-type",
            "Unsupported media type",
            "The request body has an unsupported media type.",
        ),
        StatusCode::SERVICE_UNAVAILABLE => (
            "service-unavailable",
            "Service unavailable",
            "The service is temporarily unavailable; retry shortly.",
        ),
        s if s.is_server_error() => (
            "internal-error",
            "Internal server error",
            "Something went wrong on our side. The request id identifies it in our logs.",
        ),
        _ => (
            "bad-request",
            "Bad request",
            "The request cannot be processed.",
        ),
    };
    ErrorBody {
        status,
        code,
        title,
        detail: detail.into(),
        source: None,
    }
}

pub const JSON_API: &str = "application/vnd.api+json";

/// Renders the final JSON:API document of one error.
pub fn render(body: &ErrorBody, request_id: &str) -> Vec<u8> {
    // The body's fields spelled out rather than `#[serde(flatten)]`, which serializes through a
    // map and costs a cheap rejection more than the rest of its body.
    #[derive(Serialize)]
    struct Entry<'a> {
        id: &'a str,
        status: &'a str,
        code: &'a str,
        title: &'a str,
        detail: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        source: Option<&'a ErrorSource>,
    }
    #[derive(Serialize)]
    struct Document<'a> {
        errors: [Entry<'a>; 1],
    }
    let doc = Document {
        errors: [Entry {
            id: request_id,
            status: body.status.as_str(),
            code: body.code,
            title: body.title,
            detail: &body.detail,
            source: body.source.as_ref(),
        }],
    };
    serde_json::to_vec(&doc).unwrap_or_else(|_| b"{\"errors\":[{\"status\":\"500\"}]}".to_vec())
}

#[cfg(test)]
mod readme_tests {
    /// Every error code this module can send is documented in the README's one table.
    #[test]
    fn the_readme_documents_every_error_code() {
        let readme = include_str!("../../README.md");
        let source = [
            include_str!("error.rs"),
            include_str!("error_document.rs"),
            include_str!("phone_errors.rs"),
        ]
        .concat();
        let codes = source.split('"').skip(1).step_by(2).filter(|lit| {
            let parts: Vec<&str> = lit.split('-').collect();
            parts.len() > 1
                && parts
                    .iter()
                    .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase()))
        });
        let mut seen = 0;
        for code in codes {
            seen += 1;
            assert!(
                readme.contains(&format!("| `{code}` |")),
                "README's error table lacks `{code}`"
            );
        }
        assert!(seen > 20, "found only {seen} codes: the scan is broken");
    }
}
