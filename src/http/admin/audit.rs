//! `GET /admin/v1/users/{sub}/audit`: the user's audit trail, a page at a time (cursor-based).

use super::documents::AuditPageDocument;
use super::{AdminCaller, target};
use crate::http::AppState;
use crate::http::error::{ApiError, JSON_API};
use crate::http::negotiate::AcceptsJsonApi;
use crate::service::admin::{AuditPageRequest, DEFAULT_AUDIT_PAGE, MAX_AUDIT_PAGE};
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde::Deserialize;
use utoipa::IntoParams;

/// Everything but RFC 3986's unreserved characters is encoded in a path segment.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// Events per page, 1..200 (default 50).
    #[serde(rename = "page[size]")]
    #[param(rename = "page[size]", value_type = Option<u32>, minimum = 1, maximum = 200)]
    size: Option<String>,
    /// Cursor: only events after the event with this id (the `id` of the last event already
    /// seen, or the `page[after]` of `links.next`). Absent: from the first event.
    #[serde(rename = "page[after]")]
    #[param(rename = "page[after]", value_type = Option<i64>, minimum = 0)]
    after: Option<String>,
}

impl AuditQuery {
    fn parse(&self) -> Result<AuditPageRequest, ApiError> {
        let size = match self.size.as_deref() {
            None => DEFAULT_AUDIT_PAGE,
            Some(raw) => raw
                .parse::<u32>()
                .ok()
                .filter(|n| (1..=MAX_AUDIT_PAGE).contains(n))
                .ok_or_else(|| ApiError::InvalidParameter {
                    parameter: "page[size]",
                    detail: format!("page[size] must be a number from 1 to {MAX_AUDIT_PAGE}."),
                })?,
        };
        let after = match self.after.as_deref() {
            None => None,
            Some(raw) => Some(raw.parse::<i64>().ok().filter(|n| *n >= 0).ok_or_else(|| {
                ApiError::InvalidParameter {
                    parameter: "page[after]",
                    detail: "page[after] must be an event id from an earlier page.".into(),
                }
            })?),
        };
        Ok(AuditPageRequest { after, size })
    }
}

/// List a user's audit events
///
/// Oldest first, `page[size]` at a time. Follow `links.next` until it is null; events written
/// later get larger ids, so `page[after]` set to the last id seen returns only what is new. Each
/// call is itself audited (`admin.audit-read`). Details never carry a secret.
#[utoipa::path(
    get,
    path = "/admin/v1/users/{sub}/audit",
    tag = "Admin",
    operation_id = "AdminListAuditEvents",
    params(("sub" = String, Path, description = "The user's `sub` (percent-encoded); one no token can carry (over 255 bytes, control characters) is 404", min_length = 1, max_length = 255, pattern = r"^[^\u0000-\u001F\u007F-\u009F]+$"), AuditQuery),
    responses((status = 200, description = "One page of audit events.", body = AuditPageDocument, content_type = "application/vnd.api+json")),
    security(("bearer" = ["otpd:admin"]))
)]
pub async fn list(
    State(state): State<AppState>,
    _: AcceptsJsonApi,
    AdminCaller(actor): AdminCaller,
    Path(sub): Path<String>,
    Query(query): Query<AuditQuery>,
) -> Result<Response, ApiError> {
    let sub = target(&sub)?;
    let request = query.parse()?;
    let page = state.services.audit_page(&sub, request, &actor).await?;
    let path = format!(
        "/admin/v1/users/{}/audit",
        utf8_percent_encode(sub.as_str(), SEGMENT)
    );
    let doc = AuditPageDocument::new(page, &path, request.after, request.size);
    let mut res = Json(doc).into_response();
    res.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(JSON_API));
    Ok(res)
}
