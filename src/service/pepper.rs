//! The pepper: the secret mixed into every password and PIN hash (and the root of the OTP and TOTP
//! keys), kept outside the database, and how it is read from its file. Several can be loaded at
//! once (`PepperRing`): the current one for new hashes, older ones so hashes made under them still
//! verify until they are re-hashed (docs/key-rotation.md).

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

/// The current pepper and the older ones still loaded, by id.
pub struct PepperRing {
    current: Pepper,
    old: Vec<Pepper>,
}

impl fmt::Debug for PepperRing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let old: Vec<&str> = self.old.iter().map(|p| p.id.as_str()).collect();
        write!(
            f,
            "PepperRing {{ current: {:?}, old: {old:?} }}",
            self.current.id
        )
    }
}

impl PepperRing {
    /// Refuses two peppers with the same id: a hash must name exactly one pepper.
    pub fn new(current: Pepper, old: Vec<Pepper>) -> Result<Self, String> {
        let mut ids = vec![current.id.as_str()];
        for p in &old {
            if ids.contains(&p.id.as_str()) {
                return Err(format!("pepper id `{}` is loaded twice", p.id));
            }
            ids.push(&p.id);
        }
        Ok(Self { current, old })
    }

    /// A ring of one pepper (no rotation in progress).
    pub fn single(current: Pepper) -> Self {
        Self {
            current,
            old: Vec::new(),
        }
    }

    /// The pepper new hashes are made with.
    pub fn current(&self) -> &Pepper {
        &self.current
    }

    pub fn get(&self, id: &str) -> Option<&Pepper> {
        self.all().find(|p| p.id == id)
    }

    /// The current pepper first, then the older ones in the order they were configured.
    pub fn all(&self) -> impl Iterator<Item = &Pepper> {
        std::iter::once(&self.current).chain(&self.old)
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
    fn a_ring_finds_peppers_by_id_and_refuses_a_duplicate_id() {
        let p = |id: &str, b: u8| Pepper::new(id.into(), vec![b; 32]).unwrap();
        let ring = PepperRing::new(p("p2", 2), vec![p("p1", 1), p("p0", 0)]).unwrap();
        assert_eq!(ring.current().id, "p2");
        assert_eq!(ring.get("p0").unwrap().bytes()[0], 0);
        assert!(ring.get("p9").is_none());
        let ids: Vec<&str> = ring.all().map(|p| p.id.as_str()).collect();
        assert_eq!(ids, ["p2", "p1", "p0"]);
        let e = PepperRing::new(p("p2", 2), vec![p("p2", 3)]).unwrap_err();
        assert!(e.contains("`p2` is loaded twice"), "{e}");
        assert!(!format!("{ring:?}").contains('\u{2}'));
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
