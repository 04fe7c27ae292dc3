//! Request bodies: a declared length over the limit is refused before reading, and JSON is parsed
//! into our error format (400 for syntax, 422 with a pointer for shape, duplicate keys included).

use super::context::RequestNotes;
use super::error::ApiError;
use axum::body::HttpBody as _;
use axum::extract::{FromRequest, Request};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use serde::de::DeserializeOwned;
use std::sync::Arc;

/// A request whose `Content-Length` already exceeds the body limit is answered 413 at once: the
/// body limit alone would wait for bytes that a lying or huge request may never send, until the
/// request timeout. hyper's body reports the declared length as its size (read there rather than
/// from the header again: a header lookup and a parse that every request paid for).
pub fn declares_more_than(req: &Request, max_body_bytes: usize) -> bool {
    req.body().size_hint().lower() > max_body_bytes as u64
}

/// A JSON body parsed into `T`: 400 when it is not JSON, 422 with a pointer when it is JSON of the
/// wrong shape, 413 when it is larger than the request's body limit ([`RequestNotes`]).
///
/// The limit is applied here rather than by axum's `DefaultBodyLimit` layer, which every route
/// would pay for on every request, a body or not: a boxed future and a request extension
/// (docs/benchmark.md).
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, _: &S) -> Result<Self, ApiError> {
        let limit = req
            .extensions()
            .get::<Arc<RequestNotes>>()
            .map_or(FALLBACK_LIMIT, |notes| notes.body_limit);
        let bytes = match Limited::new(req.into_body(), limit).collect().await {
            Ok(collected) => collected.to_bytes(),
            Err(e) if e.is::<LengthLimitError>() => return Err(ApiError::PayloadTooLarge),
            // The client went away or sent a broken body.
            Err(_) => return Err(ApiError::MalformedJson),
        };
        parse_json(&bytes).map(JsonBody)
    }
}

/// The limit of a request that did not pass through `http::context` (none does in otpd).
const FALLBACK_LIMIT: usize = 64 * 1024;

pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    // Syntax first, for the whole body: a document that is not JSON is a 400 even when its
    // first fields would already be refused by the typed parse below. The same pass finds keys
    // given twice, which serde would either take silently (unknown keys) or refuse without
    // saying where.
    let duplicate = std::cell::RefCell::new(None);
    let seed = NoDuplicateKeys {
        pointer: String::new(),
        duplicate: &duplicate,
    };
    let mut de = serde_json::Deserializer::from_slice(bytes);
    if serde::de::DeserializeSeed::deserialize(seed, &mut de)
        .and_then(|()| de.end())
        .is_err()
    {
        return Err(ApiError::MalformedJson);
    }
    if let Some((pointer, key)) = duplicate.into_inner() {
        return Err(ApiError::invalid_field(
            &pointer,
            format!("The key `{key}` appears more than once in the same object."),
        ));
    }
    // Every body otpd takes is an object; serde would also read a struct from an array and
    // then blame its first element.
    if bytes.trim_ascii_start().first() != Some(&b'{') {
        return Err(ApiError::invalid_field(
            "",
            "The request body must be a JSON object.",
        ));
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut de);
    if value.is_ok() && de.end().is_err() {
        return Err(ApiError::MalformedJson);
    }
    value.map_err(|e| {
        let inner = e.inner();
        if inner.is_syntax() || inner.is_eof() {
            return ApiError::MalformedJson;
        }
        let pointer = json_pointer(e.path());
        // serde's messages quote the offending value ("invalid type: integer `1234`"), which may
        // be a secret: only the message for a missing field, which quotes our field name, is kept.
        let message = inner.to_string();
        let detail = match message.split(" at line ").next() {
            Some(m) if m.starts_with("missing field") => format!("{m}."),
            _ => "The value has the wrong type or is not allowed here.".to_owned(),
        };
        ApiError::invalid_field(&pointer, detail)
    })
}

/// Walks a whole JSON document and stops at the first object that holds a key twice, recording
/// that member's pointer and the key (shortened: it is client text).
struct NoDuplicateKeys<'a> {
    pointer: String,
    duplicate: &'a std::cell::RefCell<Option<(String, String)>>,
}

impl<'a> NoDuplicateKeys<'a> {
    fn child(&self, segment: &str) -> Self {
        Self {
            pointer: format!(
                "{}/{}",
                self.pointer,
                segment.replace('~', "~0").replace('/', "~1")
            ),
            duplicate: self.duplicate,
        }
    }
}

impl<'de> serde::de::DeserializeSeed<'de> for NoDuplicateKeys<'_> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for NoDuplicateKeys<'_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut index = 0usize;
        while seq
            .next_element_seed(self.child(&index.to_string()))?
            .is_some()
        {
            index += 1;
        }
        Ok(())
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut seen = std::collections::HashSet::new();
        while let Some(key) = map.next_key::<String>()? {
            let child = self.child(&key);
            if seen.contains(&key) {
                // Only the first is reported; the walk goes on so a later syntax error still wins.
                let mut duplicate = self.duplicate.borrow_mut();
                if duplicate.is_none() {
                    *duplicate = Some((child.pointer.clone(), key.chars().take(64).collect()));
                }
            } else {
                seen.insert(key);
            }
            map.next_value_seed(child)?;
        }
        Ok(())
    }
}

fn json_pointer(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    path.iter()
        .filter_map(|seg| match seg {
            Segment::Seq { index } => Some(index.to_string()),
            Segment::Map { key } => Some(key.replace('~', "~0").replace('/', "~1")),
            Segment::Enum { variant } => Some(variant.clone()),
            Segment::Unknown => None,
        })
        .map(|s| format!("/{s}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, Debug)]
    #[allow(dead_code)]
    struct Body {
        pin: Option<String>,
    }

    #[test]
    fn syntax_errors_are_400_and_type_errors_point_at_the_field() {
        assert!(matches!(
            parse_json::<Body>(b"{\"pin\":"),
            Err(ApiError::MalformedJson)
        ));
        assert!(matches!(
            parse_json::<Body>(b"{} x"),
            Err(ApiError::MalformedJson)
        ));
        match parse_json::<Body>(b"{\"pin\": \"1\", \"x\": {\"a/b\": 1, \"a/b\": 2}}") {
            Err(ApiError::InvalidField { pointer, detail }) => {
                assert_eq!(pointer, "/x/a~1b");
                assert!(detail.contains("`a/b`"), "{detail}");
            }
            other => panic!("{other:?}"),
        }
        match parse_json::<Body>(b" [{\"pin\": \"1\"}]") {
            Err(ApiError::InvalidField { pointer, detail }) => {
                assert_eq!(pointer, "");
                assert!(detail.contains("object"), "{detail}");
            }
            other => panic!("{other:?}"),
        }
        match parse_json::<Body>(b"{\"pin\": 1234}") {
            Err(ApiError::InvalidField { pointer, detail }) => {
                assert_eq!(pointer, "/pin");
                assert!(!detail.contains("1234"), "{detail}");
            }
            other => panic!("{other:?}"),
        }
    }
}
