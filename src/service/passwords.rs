//! New passwords: the policy's settings (minimum length, the operator's blocklist file), the
//! user's context words, and setting a password from the operator's command line.

use super::credentials::NewCredential;
use super::{ServiceError, Services};
use crate::domain::password::{LOWEST_MIN_PASSWORD_CHARS, blocklist_entry};
use crate::domain::{Password, PasswordPolicy, PasswordRejection, Subject};
use secrecy::SecretString;
use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;

/// `password_min_length` and `password_blocklist_file`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasswordSettings {
    pub min_length: usize,
    pub blocklist_file: Option<PathBuf>,
}

impl PasswordSettings {
    /// The policy in force: reads the operator's blocklist file (one password per line, `#`
    /// comments). The error names the file, never a line of it.
    pub fn policy(&self) -> Result<PasswordPolicy, String> {
        let min_chars = self.min_length.max(LOWEST_MIN_PASSWORD_CHARS);
        let extra = match &self.blocklist_file {
            None => HashSet::new(),
            Some(path) => std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read {}: {e}", path.display()))?
                .lines()
                .filter_map(blocklist_entry)
                .collect(),
        };
        Ok(PasswordPolicy {
            min_chars,
            extra_blocklist: Arc::new(extra),
        })
    }
}

/// The words a user's password must not be: the user id, the email address and its local part,
/// and the service's name.
pub fn context_words<'a>(
    sub: &'a Subject,
    email: Option<&'a str>,
    service_name: &'a str,
) -> Vec<&'a str> {
    let mut words = vec![sub.as_str(), service_name];
    if let Some(email) = email {
        words.push(email);
        if let Some((local, _)) = email.split_once('@') {
            words.push(local);
        }
    }
    words
}

impl Services {
    /// Checks a new password against the policy and the user's context words.
    pub fn new_password(
        &self,
        sub: &Subject,
        email: Option<&str>,
        raw: SecretString,
    ) -> Result<Password, PasswordRejection> {
        let words = context_words(sub, email, &self.links.service_name);
        Password::parse(raw, &self.password_policy, &words)
    }

    /// `otpd user set-password`: the same policy as the pages, then hashed and stored.
    pub async fn set_password(&self, sub: &Subject, raw: SecretString) -> Result<(), ServiceError> {
        let password = self
            .new_password(sub, None, raw)
            .map_err(ServiceError::PasswordRejected)?;
        self.set_credential(sub, NewCredential::Password(password))
            .await
    }
}
