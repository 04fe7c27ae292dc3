//! Login sessions of the identity provider (`PUT /sessions/{sessionId}`): the shapes of their ids
//! and how long a session lives. See docs/sessions.md.

use super::Subject;
use sha2::{Digest, Sha256};
use std::fmt;
use std::time::Duration;

/// Longest session id accepted. Keycloak's are 36 characters; the bound only keeps rows small.
pub const MAX_SESSION_ID_LEN: usize = 128;

/// A session id as the identity provider names it in the path: 1..=128 characters of
/// `A-Z a-z 0-9 . _ ~ : -`. Kept only as its SHA-256 digest, and `Debug` prints only a prefix of
/// that: a live session id must not turn up in a log or the audit trail.
#[derive(Clone, PartialEq, Eq)]
pub struct SessionId(String);

impl SessionId {
    pub fn parse(raw: &str) -> Option<Self> {
        let ok = !raw.is_empty()
            && raw.len() <= MAX_SESSION_ID_LEN
            && raw
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._~:-".contains(&b));
        ok.then(|| Self(raw.to_owned()))
    }

    /// What the store keeps and looks the session up by.
    pub fn digest(&self) -> [u8; 32] {
        Sha256::digest(self.0.as_bytes()).into()
    }

    /// 16 hex digits of the digest: enough to follow one session through the audit trail.
    pub fn audit_label(&self) -> String {
        self.digest()[..8]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

impl fmt::Debug for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SessionId({})", self.audit_label())
    }
}

/// The user a session is for: the body's `userId`, a UUID, as the subject otpd stores it — the
/// hyphenated lower-case form, the way Keycloak writes `sub`. `None` for anything that is not a
/// UUID.
pub fn session_user(raw: &str) -> Option<Subject> {
    let id = uuid::Uuid::try_parse(raw).ok()?;
    Subject::parse(&id.hyphenated().to_string())
}

/// How long a session is known after its creation (`session_ttl_seconds`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionTtl(pub Duration);

impl Default for SessionTtl {
    fn default() -> Self {
        Self(Duration::from_secs(24 * 3600))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_ids_are_url_safe_and_bounded() {
        assert!(SessionId::parse("6f1c2a9e-2d0b-4c11-9a3e-0c5b7f3d9e21").is_some());
        assert!(SessionId::parse("abc.DEF_~:-9").is_some());
        for bad in ["", "a b", "a/b", "a%2Fb", "ä", &"a".repeat(129)] {
            assert!(SessionId::parse(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn debug_and_audit_show_a_digest_prefix_not_the_id() {
        let id = SessionId::parse("secret-session-42").unwrap();
        let shown = format!("{id:?} {}", id.audit_label());
        assert!(!shown.contains("secret-session-42"));
        assert_eq!(id.audit_label().len(), 16);
    }

    #[test]
    fn user_ids_are_uuids_in_lower_case() {
        let s = session_user("6F1C2A9E-2D0B-4C11-9A3E-0C5B7F3D9E21").unwrap();
        assert_eq!(s.as_str(), "6f1c2a9e-2d0b-4c11-9a3e-0c5b7f3d9e21");
        assert!(session_user("mia").is_none());
        assert!(session_user("").is_none());
    }
}
