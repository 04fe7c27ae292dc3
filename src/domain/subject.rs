//! The user a request acts for: the access token's `sub`, validated once.

use std::fmt;

/// A user identifier as issued by the identity provider (the token's `sub`).
///
/// Not secret, but bounded and printable so it is safe to store and to show in audit output.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Subject(String);

/// Longest `sub` accepted; OpenID Connect caps it at 255 ASCII characters.
pub const MAX_SUBJECT_LEN: usize = 255;

impl Subject {
    pub fn parse(raw: &str) -> Option<Self> {
        let ok =
            !raw.is_empty() && raw.len() <= MAX_SUBJECT_LEN && raw.chars().all(|c| !c.is_control());
        ok.then(|| Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Subject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Subject({:?})", self.0)
    }
}

impl fmt::Display for Subject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_overlong_and_control_characters_are_refused() {
        assert!(Subject::parse("").is_none());
        assert!(Subject::parse(&"a".repeat(256)).is_none());
        assert!(Subject::parse("a\nb").is_none());
        assert_eq!(Subject::parse("user-1").unwrap().as_str(), "user-1");
    }
}
