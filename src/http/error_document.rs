//! The JSON:API error document: the body we give a status that a layer produced without one of
//! ours, and the rendering of one error with its request id. `error.rs` decides which error a
//! request gets; this file only writes it down.

use super::error::{ErrorBody, ErrorSource};
use axum::http::StatusCode;
use serde::Serialize;
use std::borrow::Cow;
use std::cell::RefCell;

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
///
/// Most errors are made of static text only (every cheap rejection is): what follows their id
/// is rendered once per thread and kept ([`STATIC_TAILS`]), so a flood of 401s does not escape
/// the same title and detail through serde_json on every request (docs/benchmark.md).
pub fn render(body: &ErrorBody, request_id: &str) -> Vec<u8> {
    let Some(key) = StaticKey::of(body) else {
        return with_id(request_id, &render_tail(body));
    };
    STATIC_TAILS.with_borrow_mut(|tails| {
        if let Some((_, tail)) = tails.iter().find(|(kept, _)| *kept == key) {
            return with_id(request_id, tail);
        }
        let tail = render_tail(body).into_boxed_slice();
        let out = with_id(request_id, &tail);
        tails.push((key, tail));
        out
    })
}

/// The document around its id: `{"errors":[{"id":` id `,` tail `]}`.
fn with_id(request_id: &str, tail: &[u8]) -> Vec<u8> {
    // Exactly the length of the document (ids need no escaping, `context::request_id`): a `Vec` that is
    // full becomes the body's `Bytes` as it is, where one with room to spare costs an allocation.
    let mut out =
        Vec::with_capacity(HEAD.len() + request_id.len() + 2 + 1 + tail.len() + TAIL.len());
    out.extend_from_slice(HEAD);
    // Ids are plain tokens (`context::request_id`) that JSON takes as they are; anything else
    // would be escaped by serde_json.
    if request_id.bytes().all(is_plain) {
        out.push(b'"');
        out.extend_from_slice(request_id.as_bytes());
        out.push(b'"');
    } else if serde_json::to_writer(&mut out, request_id).is_err() {
        out.extend_from_slice(br#""""#);
    }
    out.push(b',');
    out.extend_from_slice(tail);
    out.extend_from_slice(TAIL);
    out
}

/// A byte JSON writes in a string as it is: printable ASCII other than `"` and `\\`.
fn is_plain(b: u8) -> bool {
    (b' '..=b'~').contains(&b) && b != b'"' && b != b'\\'
}

const HEAD: &[u8] = br#"{"errors":[{"id":"#;
const TAIL: &[u8] = b"]}";

/// The error's fields after its id, as the rest of its JSON object (`"status":…}`).
fn render_tail(body: &ErrorBody) -> Vec<u8> {
    // The body's fields spelled out rather than `#[serde(flatten)]`, which serializes through a
    // map.
    #[derive(Serialize)]
    struct Tail<'a> {
        status: &'a str,
        code: &'a str,
        title: &'a str,
        detail: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        source: Option<&'a ErrorSource>,
    }
    let tail = Tail {
        status: body.status.as_str(),
        code: body.code,
        title: body.title,
        detail: &body.detail,
        source: body.source.as_ref(),
    };
    let mut out = serde_json::to_vec(&tail).unwrap_or_else(|_| br#"{"status":"500"}"#.to_vec());
    // Without its opening brace: the id's field opened the object.
    out.remove(0);
    out
}

/// An error made only of static text, by where that text is: the same strings always render
/// the same tail. Errors with a source or a detail made at run time are rendered each time.
#[derive(Clone, Copy, PartialEq, Eq)]
struct StaticKey {
    status: u16,
    code: (usize, usize),
    title: (usize, usize),
    detail: (usize, usize),
}

impl StaticKey {
    fn of(body: &ErrorBody) -> Option<Self> {
        let at = |s: &'static str| (s.as_ptr() as usize, s.len());
        match (&body.detail, &body.source) {
            (Cow::Borrowed(detail), None) => Some(Self {
                status: body.status.as_u16(),
                code: at(body.code),
                title: at(body.title),
                detail: at(detail),
            }),
            _ => None,
        }
    }
}

thread_local! {
    /// Rendered tails of the static errors, per thread: no lock and no hashing on the way to
    /// one, and a few dozen at most (one per error this build can give), found by a short scan.
    static STATIC_TAILS: RefCell<Vec<(StaticKey, Box<[u8]>)>> = const { RefCell::new(Vec::new()) };
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The document as one serde_json value, the way it was written before tails were kept.
    fn whole(body: &ErrorBody, id: &str) -> serde_json::Value {
        let mut entry = serde_json::json!({
            "id": id,
            "status": body.status.as_str(),
            "code": body.code,
            "title": body.title,
            "detail": body.detail,
        });
        if let Some(source) = &body.source {
            entry["source"] = serde_json::to_value(source).unwrap();
        }
        serde_json::json!({ "errors": [entry] })
    }

    #[test]
    fn kept_tails_render_the_same_document_as_a_fresh_one() {
        let not_found = for_status(StatusCode::NOT_FOUND);
        let first = render(&not_found, "dc7p7jqjueqpn5dkn4cg");
        let again = render(&not_found, "other.id:2");
        assert_eq!(
            String::from_utf8(first).unwrap(),
            r#"{"errors":[{"id":"dc7p7jqjueqpn5dkn4cg","status":"404","code":"not-found","title":"Not found","detail":"No such resource."}]}"#
        );
        let parsed: serde_json::Value = serde_json::from_slice(&again).unwrap();
        assert_eq!(parsed, whole(&not_found, "other.id:2"));

        // A detail made at run time and a source are never kept; an id is escaped.
        let mut owned = for_status(StatusCode::BAD_REQUEST);
        owned.detail = Cow::Owned(format!("Field {} is \"odd\".", 3));
        owned.source = Some(ErrorSource::Pointer("/data/x".into()));
        for id in ["a", "quote\"d", "back\\slash", "tab\there", "é"] {
            let parsed: serde_json::Value = serde_json::from_slice(&render(&owned, id)).unwrap();
            assert_eq!(parsed, whole(&owned, id));
        }
        owned.detail = Cow::Owned("Another detail.".into());
        let parsed: serde_json::Value = serde_json::from_slice(&render(&owned, "b")).unwrap();
        assert_eq!(parsed, whole(&owned, "b"));
        assert!(StaticKey::of(&owned).is_none());
        assert!(StaticKey::of(&not_found).is_some());
    }

    #[test]
    fn a_document_fills_its_buffer_exactly() {
        // The body's `Bytes` takes a full `Vec` without an allocation of its own (`with_id`).
        let mut owned = for_status(StatusCode::BAD_REQUEST);
        owned.source = Some(ErrorSource::Pointer("/pin".into()));
        for body in [for_status(StatusCode::NOT_FOUND), owned] {
            for id in ["dc7p7jqjueqpn5dkn4cg", "x", "3f2b-11:aa.b_c"] {
                let doc = render(&body, id);
                assert_eq!(
                    doc.len(),
                    doc.capacity(),
                    "{}",
                    String::from_utf8_lossy(&doc)
                );
            }
        }
    }
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
