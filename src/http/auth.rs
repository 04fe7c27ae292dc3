//! The extractor that asks `identity` who is calling, and the scope each endpoint requires.

use super::AppState;
use super::context::RequestNotes;
use super::error::ApiError;
pub use crate::identity::Caller;
use crate::identity::TokenError;
use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;
use std::marker::PhantomData;
use std::sync::Arc;

/// The scopes an endpoint accepts (any one of them is enough).
pub trait ScopeRule {
    const ANY_OF: &'static [&'static str];
}

/// A caller holding one of `R`'s scopes: 401 without a valid token, 403 without the scope.
pub struct Authorized<R>(pub Caller, pub PhantomData<R>);

pub struct OtpCreate;
impl ScopeRule for OtpCreate {
    const ANY_OF: &'static [&'static str] = &["user:otp:create"];
}

pub struct OtpVerify;
impl ScopeRule for OtpVerify {
    const ANY_OF: &'static [&'static str] = &["user:otp:verify"];
}

/// Either scope reaches the endpoint; only the second allows creation without proof right after
/// registration.
pub struct DeviceTotpCreate;
impl ScopeRule for DeviceTotpCreate {
    const ANY_OF: &'static [&'static str] = &["user:device-totps:create", AFTER_LOGIN_SCOPE];
}
pub const AFTER_LOGIN_SCOPE: &str = "user:device-totps:create-after-login";

pub struct PinUpdate;
impl ScopeRule for PinUpdate {
    const ANY_OF: &'static [&'static str] = &["user:users.pin:update"];
}

/// `GET /user/pin` and `GET /user/pin-or-password`.
pub struct PinCheck;
impl ScopeRule for PinCheck {
    const ANY_OF: &'static [&'static str] = &["user:users.pin:check"];
}

pub struct PasswordCheck;
impl ScopeRule for PasswordCheck {
    const ANY_OF: &'static [&'static str] = &["user:users.password:check"];
}

/// `PUT /user/password` and otpd's `POST /user/password/reset-link`.
pub struct PasswordCreate;
impl ScopeRule for PasswordCreate {
    const ANY_OF: &'static [&'static str] = &["user:users.password:create"];
}

/// `POST /callbacks/password-reset`, called by the identity provider during its reset.
pub struct PasswordResetCallback;
impl ScopeRule for PasswordResetCallback {
    const ANY_OF: &'static [&'static str] = &["user:callbacks:password-reset"];
}

/// `PUT /sessions/{sessionId}`, called by the identity provider during a login.
pub struct SessionUpdate;
impl ScopeRule for SessionUpdate {
    const ANY_OF: &'static [&'static str] = &["user:sessions:update"];
}

pub struct UserDelete;
impl ScopeRule for UserDelete {
    const ANY_OF: &'static [&'static str] = &["user:user:delete"];
}

/// `GET /user/phone`.
pub struct PhoneCheck;
impl ScopeRule for PhoneCheck {
    const ANY_OF: &'static [&'static str] = &["user:users.phone:check"];
}

/// `PUT /user/phone` and `PUT /user/phone/verify`.
pub struct PhoneUpdate;
impl ScopeRule for PhoneUpdate {
    const ANY_OF: &'static [&'static str] = &["user:users.phone:update"];
}

/// The bearer token of the request: `Ok(None)` when there is none (no header, another scheme,
/// an empty token), an error when there is one that cannot be a token (bytes outside visible
/// ASCII): that token was sent, it is just invalid.
fn bearer_token(parts: &Parts) -> Result<Option<&str>, ApiError> {
    let Some(value) = parts.headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let bytes = value.as_bytes();
    let Some(space) = bytes.iter().position(|b| *b == b' ') else {
        return Ok(None);
    };
    if !bytes[..space].eq_ignore_ascii_case(b"bearer") {
        return Ok(None);
    }
    let token = value.to_str().map_err(|_| ApiError::InvalidToken)?[space + 1..].trim();
    Ok(Some(token).filter(|t| !t.is_empty()))
}

pub(super) async fn authenticate(parts: &Parts, state: &AppState) -> Result<Caller, ApiError> {
    let token = bearer_token(parts)?.ok_or(ApiError::MissingToken)?;
    let caller = state.identity.verify(token).await.map_err(|e| match e {
        TokenError::ProviderUnavailable(_) => {
            tracing::warn!(reason = %e, "access token not checked");
            ApiError::IdentityProviderUnavailable
        }
        TokenError::MissingLinkedIdentity => {
            tracing::info!(reason = %e, "access token refused");
            ApiError::MissingLinkedIdentity
        }
        _ => {
            tracing::info!(reason = %e, "access token refused");
            ApiError::InvalidToken
        }
    })?;
    // Per-client limit: after the signature, so nobody can spend another client's budget.
    if let Some(client) = &caller.client_id {
        state.limits.check_client(client)?;
    }
    if let (Some(notes), Some(client)) = (
        parts.extensions.get::<Arc<RequestNotes>>(),
        &caller.client_id,
    ) {
        let _ = notes.client_id.set(client.chars().take(128).collect());
    }
    Ok(caller)
}

impl<R: ScopeRule + Send + Sync> FromRequestParts<AppState> for Authorized<R> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let caller = authenticate(parts, state).await?;
        if R::ANY_OF.iter().any(|s| caller.has_scope(s)) {
            Ok(Authorized(caller, PhantomData))
        } else {
            Err(ApiError::InsufficientScope(R::ANY_OF[0]))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The size of the future `make` returns; `make` is never called.
    fn future_size<F: Future>(_make: impl FnOnce() -> F) -> usize {
        std::mem::size_of::<F>()
    }

    /// Every request's future holds its extractors' futures, and axum boxes (copies) it on every
    /// request, a 401 included. A full token check awaited inline made this one 7,464 bytes; it
    /// is boxed where it runs (`identity::jwt`, the introspection call) and this keeps it so.
    #[test]
    #[allow(unreachable_code)]
    fn the_token_check_keeps_the_request_future_small() {
        let size = future_size(|| authenticate(unreachable!(), unreachable!()));
        assert!(size <= 512, "authenticate's future is {size} bytes");
    }
}
