//! The OpenAPI 3.1 document, generated from the handlers' `#[utoipa::path]` annotations as they
//! are registered in the router (so a route cannot exist without its documentation), plus the
//! JSON:API error responses of each operation and the bearer-token scheme.

use super::error::JSON_API;
use super::{
    AppState, devices, dispatch, otp, password, phone, pin, sendmail, sessions, user, verify,
};
use axum::Router;
use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::server::Server;
use utoipa::openapi::{ContentBuilder, OpenApi, Ref, ResponseBuilder};
use utoipa::{OpenApi as _, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "otpd: PACE Cloud User API 2022-1 (credentials)",
        description = "Passwords, PINs, one-time passwords and device TOTPs. Every operation but ResetPassword (501) needs \
            `Authorization: Bearer <access token>` whose `scope` holds the operation's scope; the user is the \
            token's `sub`. Every error is a JSON:API document (`application/vnd.api+json`) whose `code` is stable. \
            The admin API (tag Admin) sits at `/admin/v1`, outside the base path, and needs the admin scope \
            (`admin_scope`, default `otpd:admin`) instead.",
    ),
    tags((name = "Sessions", description = "The identity provider's login flow: a new session gets a \
        login OTP (mailed where otpd knows a verified address), later marked passed. See docs/sessions.md."),
        (name = "Admin", description = "Support and identity-provider automation: show, unlock and erase \
        users, revoke a device, read the audit trail. Served at the root (`/admin/v1`), not under the base \
        path; every call is audited with the caller's `sub` and client. Answers are JSON:API documents.")),
    components(schemas(ErrorDocument))
)]
struct ApiDoc;

/// A JSON:API error document.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct ErrorDocument {
    errors: Vec<ErrorObject>,
}

#[derive(ToSchema)]
#[allow(dead_code)]
pub struct ErrorObject {
    /// The request id (also the `Request-Id` header).
    id: String,
    /// The HTTP status, as a string.
    status: String,
    /// Stable kebab-case code, e.g. `invalid-otp`.
    code: String,
    title: String,
    detail: String,
    source: Option<ErrorSourceObject>,
}

#[derive(ToSchema)]
#[allow(dead_code)]
pub struct ErrorSourceObject {
    /// RFC 6901 pointer into the request document.
    pointer: Option<String>,
    /// Name of the offending query parameter.
    parameter: Option<String>,
}

/// The operations' routes with their documentation, before state and base path are applied.
pub fn api_routes(operations: &[dispatch::Operation]) -> OpenApiRouter<AppState> {
    operations.iter().fold(
        OpenApiRouter::with_openapi(ApiDoc::openapi()),
        |router, operation| router.routes(operation.docs.clone()),
    )
}

/// The API's routes with `base_path` in front of every path. Each is registered at its full path
/// rather than nested under the base path: a nested router rewrites every request's URI to strip
/// the prefix, which even a cheap rejection paid for (docs/benchmark.md).
pub fn api_router(base_path: &str, operations: &[dispatch::Operation]) -> Router<AppState> {
    let mut router = Router::new();
    for operation in operations {
        let (_, paths, method_router) = &operation.docs;
        for path in paths.paths.keys() {
            router = router.route(&format!("{base_path}{path}"), method_router.clone());
        }
    }
    router
}

/// One operation per handler: its `utoipa::path` documentation and route, and the handler itself
/// for the API's own dispatch (`dispatch.rs`).
macro_rules! operations {
    ($($module:ident :: $handler:ident),* $(,)?) => {
        vec![$(dispatch::Operation::new(routes!($module::$handler), $module::$handler)),*]
    };
}

/// The API's operations, with the paths and schemas their `utoipa::path` attributes document.
pub fn operations() -> Vec<dispatch::Operation> {
    operations![
        otp::create,
        verify::verify,
        sendmail::send,
        pin::update,
        pin::check_pin,
        pin::check_password,
        password::create,
        password::reset_link,
        password::callback,
        password::reset,
        pin::pin_or_password,
        devices::create,
        user::delete,
        sessions::update,
        phone::check,
        phone::update,
        phone::verify,
    ]
}

/// Statuses every operation can answer with, besides its own: no/bad token, missing scope, rate
/// limit or locked credential, our fault, database down or overloaded.
const COMMON: &[u16] = &[401, 403, 429, 500, 503];
/// Statuses of operations that read a body and answer one.
const WITH_BODY: &[u16] = &[400, 406, 413, 415, 422];

/// Operations that take no request body (and answer none).
const BODYLESS: &[&str] = &[
    "/user/otp/sendmail",
    "/user/password",
    "/user/password/reset-link",
    "/user/password/reset",
];

/// Paths served at the root rather than under the base path.
const ADMIN_PREFIX: &str = "/admin/";

/// The error statuses of each operation beyond `COMMON`, as SPEC §2 lists them.
fn error_statuses(method: &str, path: &str) -> Vec<u16> {
    let own: &[u16] = match (method, path) {
        ("post", "/user/otp") => &[404, 423],
        ("post", "/user/otp/verify") => &[404],
        ("post", "/user/devices/totp") => &[423],
        ("get", "/user/pin") | ("get", "/user/password") => &[400, 404],
        ("get", "/user/pin-or-password") => &[406],
        ("post", "/user/otp/sendmail") => &[422, 429],
        ("put", "/user/password") => &[409, 422],
        ("post", "/user/password/reset-link") => &[404, 422],
        ("post", "/callbacks/password-reset") => &[404, 410, 423],
        ("put", "/user/password/reset") => &[501],
        ("put", "/sessions/{sessionId}") => &[404],
        // Phone (docs/phone.md): 404 none set / wrong code; 422, 429, 503 come with the rest.
        ("get", "/user/phone") | ("put", "/user/phone/verify") => &[404],
        ("get", "/admin/v1/users/{sub}") => &[404, 406],
        ("get", "/admin/v1/users/{sub}/audit") => &[400, 404, 406],
        ("post", "/admin/v1/users/{sub}/unlock") => &[400, 404],
        ("delete", "/admin/v1/users/{sub}") | ("delete", "/admin/v1/users/{sub}/devices/{id}") => {
            &[404]
        }
        _ => &[],
    };
    let takes_body = !BODYLESS.contains(&path) && !path.starts_with(ADMIN_PREFIX);
    let body: &[u16] = if matches!(method, "post" | "put" | "delete") && takes_body {
        WITH_BODY
    } else {
        &[]
    };
    let mut all: Vec<u16> = COMMON.iter().chain(own).chain(body).copied().collect();
    all.sort_unstable();
    all.dedup();
    all
}

fn status_description(status: u16) -> &'static str {
    match status {
        400 => {
            "Malformed JSON body, or an invalid path or query parameter (`invalid-parameter`, `source.parameter`)."
        }
        401 => {
            "Access token missing or invalid, or the linked identity is missing (`missing-linked-identity`)."
        }
        403 => {
            "Scope missing (`insufficient-scope`), or the OTP/credential is not valid for this change."
        }
        404 => {
            "Not found: the OTP is not valid (`invalid-otp`), the credential (password, PIN) is not set, or (admin) \
             the device does not exist (`device-not-found`) or the `sub` is one no token can carry (`not-found`); \
             (phone) no number is set (`phone-not-set`) or the code is wrong, expired or used (`phone-code-invalid`)."
        }
        406 => {
            "The Accept header excludes the response's media type, or the new PIN is not secure (`pin-not-secure`)."
        }
        409 => "The user already has a password (`password-already-set`).",
        410 => {
            "The prove was skipped or wrong more than 3 times: the PIN and device TOTPs are erased (`credentials-erased`)."
        }
        413 => "The body exceeds the size limit.",
        415 => "The Content-Type is not the operation's media type.",
        422 => {
            "Valid JSON that cannot be followed (`source.pointer` names the field); for sendmail, no usable verified `email` claim."
        }
        423 => {
            "The credential is disabled after too many failures (`credential-disabled`) until it is set anew."
        }
        429 => {
            "The credential is locked after consecutive failures and was not checked (`credential-locked`), the \
             client or address exceeds its rate limit (`rate-limited`), or (sendmail) the user's hourly mail limit \
             is spent (`mail-limit`), or (phone) the SMS limit of the user or number is spent (`sms-limit`); retry \
             after `Retry-After` seconds."
        }
        500 => "Internal error; the request id identifies it in the logs.",
        501 => "Not implemented (`not-implemented`).",
        503 => {
            "Database unreachable, overloaded, request timeout, or (mail) mail or public URL not configured or the mail not sent, \
             or (phone) no SMS gateway configured (`sms-not-configured`) or the SMS not sent (`sms-failed`); retry after `Retry-After` seconds."
        }
        _ => "Error.",
    }
}

fn add_errors(method: &str, path: &str, operation: &mut Operation) {
    for status in error_statuses(method, path) {
        let response = ResponseBuilder::new()
            .description(status_description(status))
            .content(
                JSON_API,
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name("ErrorDocument")))
                    .build(),
            )
            .build();
        operation
            .responses
            .responses
            .entry(status.to_string())
            .or_insert_with(|| response.into());
    }
}

/// Adds what the handler annotations do not say: error responses, the security scheme, and the
/// server (the configured base path).
pub fn finish(mut api: OpenApi, base_path: &str) -> OpenApi {
    for (path, item) in api.paths.paths.iter_mut() {
        if path.starts_with(ADMIN_PREFIX) {
            // Outside the base path that the document's `servers` names.
            item.servers = Some(vec![Server::new("/")]);
        }
        for (method, op) in [
            ("get", &mut item.get),
            ("put", &mut item.put),
            ("post", &mut item.post),
            ("delete", &mut item.delete),
        ] {
            if let Some(op) = op {
                add_errors(method, path, op);
            }
        }
    }
    if let Some(components) = api.components.as_mut() {
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(
                        "An OAuth2 access token (JWT) from the configured issuer. The operation's scope must \
                         be in the token's space-separated `scope` claim.",
                    ))
                    .build(),
            ),
        );
    }
    api.servers = Some(vec![Server::new(if base_path.is_empty() {
        "/"
    } else {
        base_path
    })]);
    api.info.version = env!("CARGO_PKG_VERSION").to_owned();
    api
}

/// The whole document for a base path, as `GET /openapi.json` serves it: the user API and the
/// admin API.
pub fn document(base_path: &str) -> OpenApi {
    let admin = super::admin::routes().into_openapi();
    finish(
        api_routes(&operations()).into_openapi().merge_from(admin),
        base_path,
    )
}

pub fn document_json(base_path: &str) -> String {
    document(base_path)
        .to_pretty_json()
        .unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
}
