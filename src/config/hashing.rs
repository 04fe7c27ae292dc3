//! The hashing settings: the pepper (file and id), the Argon2id parameters, and the size of the
//! hashing pool (`pepper_*`, `argon2`, `hash_*`).

use super::{ConfigError, Lines, Source, invalid, secret_path};
use crate::service::{Argon2Settings, HashingSettings, Pepper};
use std::path::PathBuf;

impl HashingSettings {
    pub(super) fn from_source(src: &Source) -> Result<Self, ConfigError> {
        let pepper_file = src.get("pepper_file").map(PathBuf::from);
        let pepper_id = src.get("pepper_id").unwrap_or("p1").to_owned();
        if pepper_id.is_empty()
            || pepper_id.len() > 8
            || !pepper_id.bytes().all(|b| b.is_ascii_alphanumeric())
        {
            return Err(invalid("pepper_id", "must be 1..8 ASCII letters or digits"));
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

    pub(super) fn describe(&self, out: &mut Lines) {
        out.extend([
            ("pepper_file", secret_path(self.pepper_file.as_ref())),
            ("pepper_id", self.pepper_id.clone()),
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
