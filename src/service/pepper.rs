//! The pepper: the secret mixed into every password and PIN hash (and the root of the OTP and TOTP
//! keys), kept outside the database, and how it is read from its file.

use secrecy::{ExposeSecret, SecretBox};
use std::fmt;
use std::path::Path;

pub struct Pepper {
    pub id: String,
    pub key: SecretBox<Vec<u8>>,
}

impl fmt::Debug for Pepper {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Pepper {{ id: {:?}, key: [REDACTED] }}", self.id)
    }
}

impl Pepper {
    pub const MIN_LEN: usize = 32;

    pub fn new(id: String, key: Vec<u8>) -> Result<Self, String> {
        if key.len() < Self::MIN_LEN {
            return Err(format!(
                "the pepper must be at least {} bytes, found {}",
                Self::MIN_LEN,
                key.len()
            ));
        }
        Ok(Self {
            id,
            key: SecretBox::new(Box::new(key)),
        })
    }

    /// Reads the pepper from `path`. The error names the file, never its contents.
    pub fn read_file(id: &str, path: &Path) -> Result<Self, String> {
        let bytes = read_key_file(path)?;
        Self::new(id.to_owned(), bytes)
    }

    pub fn bytes(&self) -> &[u8] {
        self.key.expose_secret()
    }
}

/// The bytes of a key file, less trailing line breaks: a newline from `echo` or an editor is not
/// part of the secret. Shared by the pepper and the TOTP key file.
pub(crate) fn read_key_file(path: &Path) -> Result<Vec<u8>, String> {
    let mut bytes =
        std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    while bytes.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
        bytes.pop();
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_short_pepper_is_refused() {
        assert!(Pepper::new("p1".into(), vec![0; 31]).is_err());
        let p = Pepper::new("p1".into(), vec![7; 32]).unwrap();
        assert!(!format!("{p:?}").contains('7'));
    }

    #[test]
    fn a_trailing_newline_is_not_part_of_the_pepper() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pepper");
        std::fs::write(&path, [b"x".repeat(32), b"\r\n".to_vec()].concat()).unwrap();
        assert_eq!(Pepper::read_file("p1", &path).unwrap().bytes().len(), 32);
        let e = Pepper::read_file("p1", &dir.path().join("none")).unwrap_err();
        assert!(e.starts_with("cannot read "), "{e}");
    }
}
