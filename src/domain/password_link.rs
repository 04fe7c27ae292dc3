//! Mailed password links: what a link is for, the random token it carries, and whether a stored
//! link can still be used. Pure rules; the digests and the mail live in `service`.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use secrecy::{ExposeSecret, SecretBox};
use std::fmt;

/// Random bytes in a link token (at least 32: a guess is hopeless even with every link alive).
pub const LINK_TOKEN_BYTES: usize = 32;
/// Characters of the token in a URL: base64url without padding.
pub const LINK_TOKEN_CHARS: usize = 43;

/// What a link lets its holder do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkPurpose {
    /// Create the first password (PACE `PUT /user/password`).
    Set,
    /// Replace a forgotten password (`POST /user/password/reset-link`); asks for the PACE prove.
    Reset,
}

impl LinkPurpose {
    pub fn as_str(self) -> &'static str {
        match self {
            LinkPurpose::Set => "set",
            LinkPurpose::Reset => "reset",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "set" => Some(LinkPurpose::Set),
            "reset" => Some(LinkPurpose::Reset),
            _ => None,
        }
    }
}

/// The secret of one link. `Debug` prints nothing; the bytes are zeroed on drop.
pub struct LinkToken(SecretBox<[u8; LINK_TOKEN_BYTES]>);

impl LinkToken {
    pub fn from_bytes(bytes: [u8; LINK_TOKEN_BYTES]) -> Self {
        Self(SecretBox::new(Box::new(bytes)))
    }

    /// The token as it appears in a link; `None` for anything that is not exactly one.
    pub fn parse(text: &str) -> Option<Self> {
        if text.len() != LINK_TOKEN_CHARS {
            return None;
        }
        let bytes = URL_SAFE_NO_PAD.decode(text).ok()?;
        let bytes: [u8; LINK_TOKEN_BYTES] = bytes.try_into().ok()?;
        Some(Self::from_bytes(bytes))
    }

    pub fn bytes(&self) -> &[u8] {
        self.0.expose_secret()
    }

    /// The form that goes into a URL (and a hidden form field): a secret, never logged.
    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.bytes())
    }
}

impl fmt::Debug for LinkToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("LinkToken([REDACTED])")
    }
}

/// Why a stored link cannot be used (any more).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkProblem {
    /// No link has this token (or its row fails its seal).
    Unknown,
    Expired,
    /// It was used to set a password.
    Used,
    /// A newer link was sent to the user, which retires every earlier one.
    Retired,
}

impl LinkProblem {
    pub fn code(self) -> &'static str {
        match self {
            LinkProblem::Unknown => "unknown",
            LinkProblem::Expired => "expired",
            LinkProblem::Used => "used",
            LinkProblem::Retired => "retired",
        }
    }
}

/// The state of a stored link at `now` (Unix ms). Used outranks retired (it did its job), and
/// both outrank expired (they say more about what happened).
pub fn link_problem(
    used_at: Option<i64>,
    retired_at: Option<i64>,
    expires_at: i64,
    now: i64,
) -> Option<LinkProblem> {
    if used_at.is_some() {
        Some(LinkProblem::Used)
    } else if retired_at.is_some() {
        Some(LinkProblem::Retired)
    } else if expires_at <= now {
        Some(LinkProblem::Expired)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_nothing_else_parses() {
        let t = LinkToken::from_bytes([7; LINK_TOKEN_BYTES]);
        let text = t.encode();
        assert_eq!(text.len(), LINK_TOKEN_CHARS);
        assert_eq!(LinkToken::parse(&text).unwrap().bytes(), t.bytes());
        for bad in ["", "abc", &format!("{text}A"), &text.replace('B', "+")] {
            assert!(LinkToken::parse(bad).is_none(), "{bad}");
        }
        assert!(!format!("{t:?}").contains(&text));
    }

    #[test]
    fn used_beats_retired_beats_expired() {
        assert_eq!(link_problem(None, None, 10, 9), None);
        assert_eq!(link_problem(None, None, 10, 10), Some(LinkProblem::Expired));
        assert_eq!(
            link_problem(None, Some(5), 10, 11),
            Some(LinkProblem::Retired)
        );
        assert_eq!(
            link_problem(Some(6), Some(5), 10, 11),
            Some(LinkProblem::Used)
        );
    }

    #[test]
    fn purposes_have_stable_names() {
        for p in [LinkPurpose::Set, LinkPurpose::Reset] {
            assert_eq!(LinkPurpose::parse(p.as_str()), Some(p));
        }
        assert_eq!(LinkPurpose::parse("other"), None);
    }
}
