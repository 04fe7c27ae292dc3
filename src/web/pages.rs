//! The handlers of the password pages: a GET shows the form (and never consumes the link), a POST
//! checks the origin, reads the form, calls `Services::use_password_link` once and renders what
//! came of it. Every state has its page and status; none shows internals.

use super::WebState;
use super::guard::same_origin;
use crate::domain::{LinkProblem, LinkPurpose, LinkToken};
use crate::http::context::RequestNotes;
use crate::http::error::{ApiError, ErrorCause};
use crate::service::ServiceError;
use crate::service::password_page::{OpenLink, PageError, PasswordForm, PasswordSet};
use axum::Extension;
use axum::extract::rejection::{FormRejection, QueryRejection};
use axum::extract::{Form, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::sync::Arc;

#[derive(Deserialize)]
pub struct TokenQuery {
    #[serde(default)]
    token: Option<String>,
}

/// The form's fields. Every one is optional here: a missing field is a message on the page, not a
/// rejection in another format.
#[derive(Deserialize)]
pub struct FormBody {
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    password: Option<SecretString>,
    #[serde(default)]
    confirm: Option<SecretString>,
    #[serde(default)]
    prove: Option<SecretString>,
    #[serde(default)]
    skip: Option<String>,
}

pub async fn show_set(
    State(w): State<WebState>,
    rid: Option<Extension<Arc<RequestNotes>>>,
    query: Result<Query<TokenQuery>, QueryRejection>,
) -> Response {
    show(&w, LinkPurpose::Set, query.ok(), rid).await
}

pub async fn show_reset(
    State(w): State<WebState>,
    rid: Option<Extension<Arc<RequestNotes>>>,
    query: Result<Query<TokenQuery>, QueryRejection>,
) -> Response {
    show(&w, LinkPurpose::Reset, query.ok(), rid).await
}

pub async fn submit_set(
    State(w): State<WebState>,
    rid: Option<Extension<Arc<RequestNotes>>>,
    headers: HeaderMap,
    form: Result<Form<FormBody>, FormRejection>,
) -> Response {
    submit(&w, LinkPurpose::Set, &headers, form.ok(), rid).await
}

pub async fn submit_reset(
    State(w): State<WebState>,
    rid: Option<Extension<Arc<RequestNotes>>>,
    headers: HeaderMap,
    form: Result<Form<FormBody>, FormRejection>,
) -> Response {
    submit(&w, LinkPurpose::Reset, &headers, form.ok(), rid).await
}

pub async fn asset(State(w): State<WebState>, Path(file): Path<String>) -> Response {
    match w.services.templates.asset(&file) {
        Some(asset) => (
            [
                (header::CONTENT_TYPE, asset.content_type),
                (header::CACHE_CONTROL, "public, max-age=3600"),
            ],
            asset.body.clone(),
        )
            .into_response(),
        None => ApiError::NotFound.into_response(),
    }
}

async fn show(
    w: &WebState,
    purpose: LinkPurpose,
    query: Option<Query<TokenQuery>>,
    rid: Option<Extension<Arc<RequestNotes>>>,
) -> Response {
    let text = query.and_then(|Query(q)| q.token).unwrap_or_default();
    let Some(token) = LinkToken::parse(&text) else {
        return problem_page(w, LinkProblem::Unknown.code(), StatusCode::NOT_FOUND, None);
    };
    match w.services.open_password_link(&token, purpose).await {
        Ok(link) => form_page(w, &link, &token, &Errors::default(), StatusCode::OK),
        Err(e) => error_page(w, e, rid),
    }
}

async fn submit(
    w: &WebState,
    purpose: LinkPurpose,
    headers: &HeaderMap,
    form: Option<Form<FormBody>>,
    rid: Option<Extension<Arc<RequestNotes>>>,
) -> Response {
    if !same_origin(headers, w.origin.as_deref()) {
        tracing::info!("password form posted from another origin; refused");
        return problem_page(w, "forbidden", StatusCode::FORBIDDEN, None);
    }
    let Some(Form(body)) = form else {
        return problem_page(
            w,
            LinkProblem::Unknown.code(),
            StatusCode::BAD_REQUEST,
            None,
        );
    };
    let Some(token) = body.token.as_deref().and_then(LinkToken::parse) else {
        return problem_page(w, LinkProblem::Unknown.code(), StatusCode::NOT_FOUND, None);
    };
    // Opened first, so a refusal can show the form again with what the link is for.
    let link = match w.services.open_password_link(&token, purpose).await {
        Ok(link) => link,
        Err(e) => return error_page(w, e, rid),
    };
    let password = body.password.filter(|p| !p.expose_secret().is_empty());
    let Some(password) = password else {
        let errors = Errors::at("password", "missing");
        return form_page(w, &link, &token, &errors, StatusCode::UNPROCESSABLE_ENTITY);
    };
    let confirm = body.confirm.as_ref().map(|c| c.expose_secret());
    if confirm != Some(password.expose_secret()) {
        let errors = Errors::at("confirm", "mismatch");
        return form_page(w, &link, &token, &errors, StatusCode::UNPROCESSABLE_ENTITY);
    }
    let form = PasswordForm {
        password,
        prove: body.prove.filter(|p| !p.expose_secret().trim().is_empty()),
        skip: body.skip.is_some(),
    };
    let refusal = match w.services.use_password_link(&token, purpose, form).await {
        Ok(set) => return done_page(w, set),
        Err(e) => e,
    };
    let (errors, status) = match refusal {
        PageError::Rejected(r) => (
            Errors::at("password", r.code()),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        PageError::ProveMissing => (
            Errors::at("prove", "missing"),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        PageError::WrongProve { tries_left } => (
            Errors {
                tries_left,
                ..Errors::at("prove", "wrong")
            },
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        PageError::ProveLocked { retry_after } => (
            Errors {
                retry_after: retry_after.as_secs().max(1),
                ..Errors::at("prove", "locked")
            },
            StatusCode::TOO_MANY_REQUESTS,
        ),
        PageError::ProveDisabled => (
            Errors::at("prove", "disabled"),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        other => return error_page(w, other, rid),
    };
    form_page(w, &link, &token, &errors, status)
}

/// Messages by field, keyed by the codes `pages/messages.html` knows.
#[derive(Default)]
struct Errors {
    fields: BTreeMap<&'static str, &'static str>,
    tries_left: u32,
    retry_after: u64,
}

impl Errors {
    fn at(field: &'static str, code: &'static str) -> Self {
        Self {
            fields: BTreeMap::from([(field, code)]),
            ..Self::default()
        }
    }
}

/// "PIN and 2 paired devices": what a prove keeps, in words for the page.
fn keep_words(pin: bool, devices: usize) -> String {
    let devices = match devices {
        0 => None,
        1 => Some("paired device".to_owned()),
        n => Some(format!("{n} paired devices")),
    };
    match (pin, devices) {
        (true, Some(d)) => format!("PIN and {d}"),
        (true, None) => "PIN".to_owned(),
        (false, Some(d)) => d,
        (false, None) => String::new(),
    }
}

fn form_page(
    w: &WebState,
    link: &OpenLink,
    token: &LinkToken,
    errors: &Errors,
    status: StatusCode,
) -> Response {
    let purpose = link.purpose.as_str();
    let ctx = minijinja::context! {
        service_name => w.services.links.service_name.as_str(),
        purpose,
        action => purpose,
        email => link.email.as_str(),
        min_length => link.min_length,
        token => token.encode(),
        prove => !link.prove.is_empty(),
        pin => link.prove.pin,
        devices => link.prove.devices,
        keep => keep_words(link.prove.pin, link.prove.devices),
        errors => minijinja::Value::from_pairs(errors.fields.iter().map(|(k, v)| (*k, *v))),
        tries_left => errors.tries_left,
        retry_after => errors.retry_after,
    };
    render(w, "pages/form.html", ctx, status)
}

fn done_page(w: &WebState, set: PasswordSet) -> Response {
    let (reason, erased) = match set.erased {
        Some((reason, erased)) => (Some(reason.as_str()), Some(erased)),
        None => (None, None),
    };
    let ctx = minijinja::context! {
        service_name => w.services.links.service_name.as_str(),
        purpose => set.purpose.as_str(),
        erased => erased.is_some(),
        reason,
        erased_pin => erased.is_some_and(|e| e.pin),
        erased_devices => erased.map_or(0, |e| e.devices),
    };
    render(w, "pages/done.html", ctx, StatusCode::OK)
}

fn problem_page(
    w: &WebState,
    problem: &str,
    status: StatusCode,
    request_id: Option<&str>,
) -> Response {
    let ctx = minijinja::context! {
        service_name => w.services.links.service_name.as_str(),
        problem,
        request_id,
    };
    render(w, "pages/problem.html", ctx, status)
}

/// The page for a refusal that is not about a field.
fn error_page(w: &WebState, e: PageError, rid: Option<Extension<Arc<RequestNotes>>>) -> Response {
    let (problem, status) = match e {
        PageError::Link(LinkProblem::Unknown) => ("unknown", StatusCode::NOT_FOUND),
        PageError::Link(p) => (p.code(), StatusCode::GONE),
        PageError::PasswordAlreadySet => ("already-set", StatusCode::CONFLICT),
        PageError::Service(ServiceError::Overloaded | ServiceError::Unavailable(_)) => {
            ("unavailable", StatusCode::SERVICE_UNAVAILABLE)
        }
        PageError::Service(cause) => {
            let id = rid.map(|Extension(notes)| notes.span.id().to_owned());
            let mut res =
                problem_page(w, "error", StatusCode::INTERNAL_SERVER_ERROR, id.as_deref());
            // The cause goes to the request's log line (see http::context), never to the page.
            res.extensions_mut()
                .insert(ErrorCause(Arc::new(anyhow::anyhow!(cause))));
            return res;
        }
        // Field refusals are rendered with the form; reaching here would be a bug, shown safely.
        _ => ("error", StatusCode::INTERNAL_SERVER_ERROR),
    };
    problem_page(w, problem, status, None)
}

fn render(w: &WebState, name: &str, ctx: minijinja::Value, status: StatusCode) -> Response {
    match w.services.templates.render(name, ctx) {
        Ok(html) => {
            let mut res = (status, html).into_response();
            res.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            );
            res
        }
        Err(e) => {
            let mut res = (
                StatusCode::INTERNAL_SERVER_ERROR,
                [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
                "<!doctype html><title>Error</title><p>Something went wrong. Nothing was changed.</p>",
            )
                .into_response();
            res.extensions_mut()
                .insert(ErrorCause(Arc::new(anyhow::anyhow!(
                    "rendering template {name}: {e:#}"
                ))));
            res
        }
    }
}

#[cfg(test)]
mod tests {
    use super::keep_words;

    #[test]
    fn what_a_prove_keeps_in_words() {
        assert_eq!(keep_words(true, 2), "PIN and 2 paired devices");
        assert_eq!(keep_words(true, 1), "PIN and paired device");
        assert_eq!(keep_words(false, 3), "3 paired devices");
        assert_eq!(keep_words(true, 0), "PIN");
    }
}
