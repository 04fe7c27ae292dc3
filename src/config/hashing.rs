//! The hashing settings: the pepper (file and id) and older peppers still loaded, the Argon2id
//! parameters, and the size of the hashing pool (`pepper_*`, `argon2`, `hash_*`).

use super::{ConfigError, Lines, Source, invalid, secret_path};
use crate::service::{Argon2Settings, HashingSettings, Pepper, PepperRing};
use std::path::{Path, PathBuf};

/// A key id as operators write them: 1..8 ASCII letters or digits.
pub(super) fn valid_key_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 8 && id.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// `id:path,id:path` (spaces around entries ignored) into pairs, ids valid and distinct.
pub(super) fn parse_key_files(
    name: &'static str,
    raw: Option<&str>,
) -> Result<Vec<(String, PathBuf)>, ConfigError> {
    let mut out: Vec<(String, PathBuf)> = Vec::new();
    for entry in raw.unwrap_or("").split(',').map(str::trim) {
        if entry.is_empty() {
            continue;
        }
        let (id, path) = entry
            .split_once(':')
            .ok_or_else(|| invalid(name, format!("`{entry}` is not id:path")))?;
        if !valid_key_id(id) {
            return Err(invalid(
                name,
                format!("key id `{id}` must be 1..8 ASCII letters or digits"),
            ));
        }
        if path.is_empty() {
            return Err(invalid(name, format!("key id `{id}` has no path")));
        }
        if out.iter().any(|(known, _)| known == id) {
            return Err(invalid(name, format!("key id `{id}` is listed twice")));
        }
        out.push((id.to_owned(), PathBuf::from(path)));
    }
    Ok(out)
}

/// `check-config`'s line for a list of key files: ids and paths, never contents.
pub(super) fn describe_key_files(files: &[(String, PathBuf)]) -> String {
    files
        .iter()
        .map(|(id, path)| format!("{id}:{}", path.display()))
        .collect::<Vec<_>>()
        .join(",")
        + if files.is_empty() {
            ""
        } else {
            " (contents not shown)"
        }
}

fn read_old_peppers(files: &[(String, PathBuf)]) -> Result<Vec<Pepper>, ConfigError> {
    files
        .iter()
        .map(|(id, path): &(String, PathBuf)| {
            Pepper::read_file(id, Path::new(path)).map_err(|p| invalid("pepper_old_files", p))
        })
        .collect()
}

impl HashingSettings {
    pub(super) fn from_source(src: &Source) -> Result<Self, ConfigError> {
        let pepper_file = src.get("pepper_file").map(PathBuf::from);
        let pepper_id = src.get("pepper_id").unwrap_or("p1").to_owned();
        if !valid_key_id(&pepper_id) {
            return Err(invalid("pepper_id", "must be 1..8 ASCII letters or digits"));
        }
        let pepper_old_files = parse_key_files("pepper_old_files", src.get("pepper_old_files"))?;
        if pepper_old_files.iter().any(|(id, _)| *id == pepper_id) {
            return Err(invalid(
                "pepper_old_files",
                format!(
                    "`{pepper_id}` is the current pepper_id; an old pepper needs an id of its own"
                ),
            ));
        }
        let argon2 = match src.get("argon2") {
            None => Argon2Settings::default(),
            Some(raw) => Argon2Settings::parse(raw).map_err(|p| invalid("argon2", p))?,
        };
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        let concurrency = src.in_range("hash_concurrency", cores, 1..=256)?;
        let queue = src.in_range("hash_queue", 2 * concurrency, 0..=10_000)?;
        Ok(Self {
            pepper_file,
            pepper_id,
            pepper_old_files,
            argon2,
            concurrency,
            queue,
        })
    }

    /// Reads the pepper file named by `pepper_file`.
    pub fn read_pepper(&self) -> Result<Pepper, ConfigError> {
        let path = self
            .pepper_file
            .as_ref()
            .ok_or_else(|| {
                invalid(
                    "pepper_file",
                    "not set: set OTPD_PEPPER_FILE to the pepper file of the server this database belongs to \
                     (another pepper makes every stored hash useless), or add --dev to use the \
                     development pepper of `otpd serve --dev`",
                )
            })?;
        Pepper::read_file(&self.pepper_id, path).map_err(|p| invalid("pepper_file", p))
    }

    /// The current pepper (from `pepper_file`, or `current` in dev mode) with the older ones of
    /// `pepper_old_files`.
    pub fn read_peppers(&self, current: Option<Pepper>) -> Result<PepperRing, ConfigError> {
        let current = match current {
            Some(p) => p,
            None => self.read_pepper()?,
        };
        let old = read_old_peppers(&self.pepper_old_files)?;
        PepperRing::new(current, old).map_err(|p| invalid("pepper_old_files", p))
    }

    pub(super) fn describe(&self, out: &mut Lines) {
        out.extend([
            ("pepper_file", secret_path(self.pepper_file.as_ref())),
            ("pepper_id", self.pepper_id.clone()),
            (
                "pepper_old_files",
                describe_key_files(&self.pepper_old_files),
            ),
            ("argon2", self.argon2.to_string()),
            ("hash_concurrency", self.concurrency.to_string()),
            ("hash_queue", self.queue.to_string()),
        ]);
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{assert_refused, load};

    #[test]
    fn a_bad_hashing_setting_names_itself() {
        assert_refused(&[
            ("OTPD_ARGON2", "m=19456,t=2", "argon2"),
            ("OTPD_PEPPER_ID", "toolongid", "pepper_id"),
            ("OTPD_PEPPER_OLD_FILES", "p0", "pepper_old_files"),
            ("OTPD_PEPPER_OLD_FILES", "p-0:/x", "pepper_old_files"),
            ("OTPD_PEPPER_OLD_FILES", "p0:/x,p0:/y", "pepper_old_files"),
            ("OTPD_PEPPER_OLD_FILES", "p1:/x", "pepper_old_files"),
            ("OTPD_HASH_CONCURRENCY", "0", "hash_concurrency"),
            ("OTPD_HASH_QUEUE", "10001", "hash_queue"),
        ]);
    }

    #[test]
    fn the_queue_defaults_to_twice_the_concurrency() {
        let c = load(&[("OTPD_HASH_CONCURRENCY", "3")]).unwrap();
        assert_eq!((c.hashing.concurrency, c.hashing.queue), (3, 6));
    }

    #[test]
    fn old_peppers_load_by_id_next_to_the_current_one() {
        let dir = tempfile::tempdir().unwrap();
        let file = |name: &str, b: u8| {
            let path = dir.path().join(name);
            std::fs::write(&path, [b; 32]).unwrap();
            path.to_str().unwrap().to_owned()
        };
        let (cur, old) = (file("p2", 2), file("p1", 1));
        let c = load(&[
            ("OTPD_PEPPER_FILE", cur.as_str()),
            ("OTPD_PEPPER_ID", "p2"),
            ("OTPD_PEPPER_OLD_FILES", &format!(" p1:{old} ")),
        ])
        .unwrap();
        let ring = c.hashing.read_peppers(None).unwrap();
        assert_eq!(ring.current().id, "p2");
        assert_eq!(ring.get("p1").unwrap().bytes(), &[1; 32]);
        assert!(
            c.describe()
                .contains(&format!("pepper_old_files = p1:{old} (contents not shown)"))
        );
        let missing = load(&[
            ("OTPD_PEPPER_FILE", cur.as_str()),
            ("OTPD_PEPPER_OLD_FILES", "p0:/nonexistent/pepper"),
        ])
        .unwrap();
        let e = missing.hashing.read_peppers(None).unwrap_err().to_string();
        assert!(
            e.contains("pepper_old_files") && e.contains("cannot read"),
            "{e}"
        );
    }

    #[test]
    fn an_unusable_pepper_file_names_its_setting() {
        let dir = tempfile::tempdir().unwrap();
        let short = dir.path().join("short");
        std::fs::write(&short, "short\n").unwrap();
        let c = load(&[("OTPD_PEPPER_FILE", short.to_str().unwrap())]).unwrap();
        let e = c.hashing.read_pepper().unwrap_err().to_string();
        assert!(
            e.contains("pepper_file") && e.contains("at least 32 bytes, found 5"),
            "{e}"
        );
    }
}
