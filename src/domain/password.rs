//! The password policy after NIST SP 800-63B-4: a minimum length counted in Unicode code points
//! after NFKC normalization, a generous maximum, no composition rules, and a whole-password,
//! case-insensitive blocklist of commonly used and breached passwords plus the user's own context
//! words. docs/passwords.md explains each rule and what the blocklist costs.
//!
//! `Password::parse` is the only way to build a `Password`, so a value that breaks the policy cannot
//! reach the hashing code; what it holds is the NFKC form, which is what gets hashed.

use super::credential::MAX_PASSWORD_BYTES;
use secrecy::{ExposeSecret, SecretString};
use std::collections::HashSet;
use std::fmt;
use std::sync::{Arc, OnceLock};
use unicode_normalization::UnicodeNormalization;

/// The built-in blocklist: the union of two lists shipped by crates.io packages, NFKC-normalized,
/// lower-cased, sorted, one per line (`scripts/make-blocklist.py`; sources in data/README.md).
const COMMON_PASSWORDS: &str = include_str!("../../data/common-passwords.txt");

/// NIST's floor for a password used inside multi-factor authentication; see docs/passwords.md for
/// why 15 is advised where a password is the only factor.
pub const DEFAULT_MIN_PASSWORD_CHARS: usize = 8;
/// The lowest minimum an operator may configure (NIST: SHALL be at least 8).
pub const LOWEST_MIN_PASSWORD_CHARS: usize = 8;
/// The longest password accepted, in code points after normalization (NIST: at least 64).
pub const MAX_PASSWORD_CHARS: usize = 256;

/// The password rules in force: the minimum length and the operator's extra blocklist.
#[derive(Clone)]
pub struct PasswordPolicy {
    pub min_chars: usize,
    /// Entries of `OTPD_PASSWORD_BLOCKLIST_FILE`, already normalized like the built-in list.
    pub extra_blocklist: Arc<HashSet<String>>,
}

impl Default for PasswordPolicy {
    fn default() -> Self {
        Self {
            min_chars: DEFAULT_MIN_PASSWORD_CHARS,
            extra_blocklist: Arc::default(),
        }
    }
}

impl fmt::Debug for PasswordPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PasswordPolicy")
            .field("min_chars", &self.min_chars)
            .field("extra_blocklist_entries", &self.extra_blocklist.len())
            .finish()
    }
}

impl PartialEq for PasswordPolicy {
    fn eq(&self, other: &Self) -> bool {
        self.min_chars == other.min_chars && self.extra_blocklist == other.extra_blocklist
    }
}

/// Which rule a new password breaks. The `code` is what pages and templates key their messages on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PasswordRejection {
    #[error("the password must have at least {min} characters")]
    TooShort { min: usize },
    #[error("the password must have at most {MAX_PASSWORD_CHARS} characters")]
    TooLong,
    #[error("the password is on a list of commonly used or breached passwords")]
    Common,
    #[error("the password is one of the user's own details (email, user id) or the service's name")]
    Personal,
}

impl PasswordRejection {
    pub fn code(self) -> &'static str {
        match self {
            PasswordRejection::TooShort { .. } => "too-short",
            PasswordRejection::TooLong => "too-long",
            PasswordRejection::Common => "common",
            PasswordRejection::Personal => "personal",
        }
    }
}

/// The NFKC form of a password: what is counted, looked up and hashed, so that the same password
/// typed on two keyboards (full-width digits, a ligature, a composed or decomposed accent) is one
/// password.
pub fn normalize(raw: &str) -> String {
    raw.nfkc().collect()
}

/// How a password is compared with list entries: its NFKC form, lower-cased.
fn folded(normalized: &str) -> String {
    normalized.to_lowercase()
}

/// The built-in list as a hash set over the embedded text: built on first use, shared after.
fn common_passwords() -> &'static HashSet<&'static str> {
    static SET: OnceLock<HashSet<&'static str>> = OnceLock::new();
    SET.get_or_init(|| COMMON_PASSWORDS.lines().collect())
}

/// How many entries the built-in list has (for `check-config` and the docs' numbers).
pub fn builtin_blocklist_len() -> usize {
    common_passwords().len()
}

/// Normalizes one line of an operator's blocklist file the way a password is compared; `None` for a
/// blank line or a `#` comment.
pub fn blocklist_entry(line: &str) -> Option<String> {
    let line = line.trim_end_matches(['\r', '\n']);
    if line.trim().is_empty() || line.starts_with('#') {
        return None;
    }
    Some(folded(&normalize(line)))
}

/// A new password that meets the policy, held in its NFKC form.
pub struct Password(SecretString);

impl Password {
    /// Checks `raw` against `policy` and the user's `context` words (email, local part, user id,
    /// service name; each compared case-insensitively with the whole password).
    pub fn parse(
        raw: SecretString,
        policy: &PasswordPolicy,
        context: &[&str],
    ) -> Result<Self, PasswordRejection> {
        if raw.expose_secret().len() > MAX_PASSWORD_BYTES {
            return Err(PasswordRejection::TooLong);
        }
        let normalized = SecretString::from(normalize(raw.expose_secret()));
        let value = normalized.expose_secret();
        let chars = value.chars().count();
        if chars < policy.min_chars {
            return Err(PasswordRejection::TooShort {
                min: policy.min_chars,
            });
        }
        if chars > MAX_PASSWORD_CHARS || value.len() > MAX_PASSWORD_BYTES {
            return Err(PasswordRejection::TooLong);
        }
        let key = SecretString::from(folded(value));
        let key = key.expose_secret();
        if common_passwords().contains(key) || policy.extra_blocklist.contains(key) {
            return Err(PasswordRejection::Common);
        }
        if context
            .iter()
            .map(|word| folded(&normalize(word)))
            .any(|word| !word.is_empty() && word == *key)
        {
            return Err(PasswordRejection::Personal);
        }
        Ok(Self(normalized))
    }

    /// The NFKC form: what gets hashed.
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password([REDACTED])")
    }
}

/// The forms of a typed password to try against a stored hash, in order: the NFKC form (what every
/// password set by this version was hashed from), then, only if it differs, the raw input (hashes
/// set before normalization, and hashes imported from systems that hashed the raw input).
pub fn check_candidates(raw: &str) -> Vec<SecretString> {
    let normalized = normalize(raw);
    if normalized == raw {
        vec![SecretString::from(normalized)]
    } else {
        vec![SecretString::from(normalized), SecretString::from(raw)]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Password, PasswordRejection> {
        Password::parse(SecretString::from(s), &PasswordPolicy::default(), &[])
    }

    #[test]
    fn length_counts_code_points_after_nfkc() {
        assert_eq!(
            parse("short").unwrap_err(),
            PasswordRejection::TooShort { min: 8 }
        );
        assert!(parse("äöüßäöüß").is_ok(), "characters, not bytes");
        // "ﬁ" (one code point) becomes "fi" (two) under NFKC: 7 typed, 8 counted.
        assert!(parse("ﬁxed-up").is_ok());
        // A decomposed "é" (e + combining accent) is one code point after NFKC.
        assert_eq!(
            parse("cafe\u{301}tie").unwrap_err(),
            PasswordRejection::TooShort { min: 8 }
        );
    }

    #[test]
    fn sixty_four_characters_and_more_are_accepted_and_there_is_a_ceiling() {
        assert!(parse(&"correct horse battery staple ".repeat(3)).is_ok());
        assert!(parse(&"ab3".repeat(85)).is_ok(), "255 characters");
        assert_eq!(
            parse(&"ab3".repeat(90)).unwrap_err(),
            PasswordRejection::TooLong
        );
        assert_eq!(
            parse(&"x".repeat(1025)).unwrap_err(),
            PasswordRejection::TooLong
        );
    }

    #[test]
    fn no_composition_rules() {
        assert!(parse("all lower case words here").is_ok());
        assert!(parse("84729561038").is_ok());
    }

    #[test]
    fn common_passwords_are_refused_whole_and_case_insensitively() {
        assert!(builtin_blocklist_len() >= 100_000);
        for bad in [
            "password",
            "PASSWORD",
            "Password1",
            "qwertyuiop",
            "iloveyou",
        ] {
            assert_eq!(parse(bad).unwrap_err(), PasswordRejection::Common, "{bad}");
        }
        // Full-width letters are the same password after NFKC.
        assert_eq!(
            parse("ｐａｓｓｗｏｒｄ").unwrap_err(),
            PasswordRejection::Common
        );
        // Only whole passwords: a common one inside a longer one is fine.
        assert!(parse("password is not my password").is_ok());
    }

    #[test]
    fn the_operator_list_and_the_users_context_are_refused() {
        let policy = PasswordPolicy {
            min_chars: 8,
            extra_blocklist: Arc::new(
                ["AcmeCorp2026", "# comment", ""]
                    .iter()
                    .filter_map(|l| blocklist_entry(l))
                    .collect(),
            ),
        };
        let p = |s: &str, ctx: &[&str]| Password::parse(SecretString::from(s), &policy, ctx);
        assert_eq!(
            p("acmecorp2026", &[]).unwrap_err(),
            PasswordRejection::Common
        );
        assert_eq!(
            p("Lena.Hoffmann", &["lena.hoffmann", "user-1"]).unwrap_err(),
            PasswordRejection::Personal
        );
        assert!(p("lena.hoffmann!", &["lena.hoffmann"]).is_ok());
        assert_eq!(policy.extra_blocklist.len(), 1);
    }

    #[test]
    fn the_minimum_is_configurable() {
        let policy = PasswordPolicy {
            min_chars: 15,
            ..PasswordPolicy::default()
        };
        let r = Password::parse(SecretString::from("fourteen chars"), &policy, &[]);
        assert_eq!(r.unwrap_err(), PasswordRejection::TooShort { min: 15 });
    }

    #[test]
    fn the_stored_form_is_nfkc_and_checks_try_the_raw_input_only_when_it_differs() {
        let p = parse("ｃｏｒｒｅｃｔ horse").unwrap();
        assert_eq!(p.expose(), "correct horse");
        assert_eq!(check_candidates("plain ascii").len(), 1);
        let both = check_candidates("ﬁne print");
        assert_eq!(both[0].expose_secret(), "fine print");
        assert_eq!(both[1].expose_secret(), "ﬁne print");
    }

    #[test]
    fn debug_output_never_shows_the_secret() {
        let p = parse("correct horse").unwrap();
        assert!(!format!("{p:?}").contains("horse"));
    }
}
