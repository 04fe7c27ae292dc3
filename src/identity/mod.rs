//! Who is calling: a bearer string in, a verified [`Caller`] (or the reason why not) out.
//!
//! A client of the identity provider — signing keys from its JWKS (discovered or configured),
//! opaque tokens through RFC 7662 introspection — that knows nothing of our routes. `http` asks
//! [`Identity::verify`] and decides what a refusal means for the response; nothing else here is
//! public.

mod answer_cache;
mod ecdsa_ring;
mod introspection;
mod jwks;
mod jwt;
mod key_lifetime;
mod settings;
mod verifier;

pub use ecdsa_ring::install as install_jwt_crypto;
pub use introspection::IntrospectionSettings;
pub use settings::{Audience, AuthSettings, IntrospectionConfig};
pub use verifier::{Identity, MAX_TOKEN_BYTES};

use crate::domain::Subject;
use jsonwebtoken::Algorithm;

/// Who a valid token stands for, and what it allows.
#[derive(Debug, Clone)]
pub struct Caller {
    pub subject: Subject,
    pub scopes: Vec<String>,
    /// The client the token was issued to (`azp` or `client_id`).
    pub client_id: Option<String>,
    /// The OpenID `email` claim, when present and a string.
    pub email: Option<String>,
    /// The OpenID `email_verified` claim: a boolean, or the strings "true"/"false" some
    /// providers send. `None` when absent or anything else.
    pub email_verified: Option<bool>,
    /// When the user registered (unix seconds), from the configured `registration_claim`.
    pub registered_at: Option<i64>,
}

impl Caller {
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes.iter().any(|s| s == scope)
    }
}

/// Why a token was refused. Logged, never sent: the client gets a generic 401 (or a 503 for
/// `ProviderUnavailable`).
#[derive(Debug, Clone, thiserror::Error)]
pub enum TokenError {
    #[error("token larger than {MAX_TOKEN_BYTES} bytes")]
    Oversized,
    #[error("malformed token: {0}")]
    Malformed(String),
    #[error("algorithm {0:?} is not allowed")]
    AlgorithmNotAllowed(Algorithm),
    #[error("header parameter `{0}` is not accepted")]
    ForbiddenHeader(&'static str),
    #[error("token type `{0}` is not an access token")]
    WrongType(String),
    #[error("no {1:?} key for kid {0:?}")]
    UnknownKey(Option<String>, Algorithm),
    #[error("claims rejected: {0}")]
    Rejected(String),
    #[error("the provider says the token is not active")]
    Inactive,
    #[error("the linked identity claim is missing")]
    MissingLinkedIdentity,
    #[error("the identity provider cannot vouch for tokens now: {0}")]
    ProviderUnavailable(String),
}
