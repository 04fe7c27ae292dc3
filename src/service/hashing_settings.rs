//! The settings of the hashing pool: Argon2id parameters, how many hashes run and wait at once,
//! and which pepper (file and id) goes into each hash. Read by `Hasher` and by `app`.

use std::fmt;
use std::path::PathBuf;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HashingSettings {
    /// `None` outside dev mode stops `serve`; in dev mode the dev kit holds the pepper.
    pub pepper_file: Option<PathBuf>,
    /// Written into each hash (`keyid=`) so a later pepper can be introduced.
    pub pepper_id: String,
    /// Older peppers by id (`pepper_old_files`): they verify hashes made under them until those
    /// are re-hashed under the current one.
    pub pepper_old_files: Vec<(String, PathBuf)>,
    pub argon2: Argon2Settings,
    /// Hashes computed at the same time.
    pub concurrency: usize,
    /// Requests that may wait for a slot; beyond it `Overloaded`.
    pub queue: usize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Argon2Settings {
    pub m_kib: u32,
    pub t: u32,
    pub p: u32,
}

impl Default for Argon2Settings {
    fn default() -> Self {
        Self {
            m_kib: 19456,
            t: 2,
            p: 1,
        }
    }
}

impl fmt::Display for Argon2Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "m={},t={},p={}", self.m_kib, self.t, self.p)
    }
}

impl Argon2Settings {
    /// `m=…,t=…,p=…`, all three, within the bounds Argon2 and a sane memory budget allow.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let mut out = Self::default();
        let mut seen = [false; 3];
        for part in raw.split(',') {
            let (key, value) = part
                .trim()
                .split_once('=')
                .ok_or_else(|| format!("`{part}` is not key=value"))?;
            let value: u32 = value
                .parse()
                .map_err(|_| format!("`{value}` is not a whole number"))?;
            let slot = match key {
                "m" => (&mut out.m_kib, 0),
                "t" => (&mut out.t, 1),
                "p" => (&mut out.p, 2),
                other => return Err(format!("unknown parameter `{other}` (expected m, t, p)")),
            };
            *slot.0 = value;
            seen[slot.1] = true;
        }
        if seen != [true; 3] {
            return Err("expected all of m=…,t=…,p=…".into());
        }
        if out.p == 0 || out.p > 16 || out.t == 0 || out.t > 16 {
            return Err("t and p must be 1..16".into());
        }
        if out.m_kib < 8 * out.p || out.m_kib > 4 * 1024 * 1024 {
            return Err("m must be at least 8*p KiB and at most 4 GiB".into());
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argon2_parameters_round_trip_and_bad_ones_say_why() {
        let s = Argon2Settings::parse("m=64, t=1, p=1").unwrap();
        assert_eq!(s.to_string(), "m=64,t=1,p=1");
        assert_eq!(
            Argon2Settings::parse(&Argon2Settings::default().to_string()),
            Ok(Argon2Settings::default())
        );
        for (raw, why) in [
            ("m=19456,t=2", "expected all"),
            ("m=19456,t=2,p=0", "t and p"),
            ("m=4,t=1,p=1", "at least 8*p"),
            ("m=64,t=1,x=1", "unknown parameter"),
            ("m=64;t=1", "not a whole number"),
        ] {
            let e = Argon2Settings::parse(raw).unwrap_err();
            assert!(e.contains(why), "{raw}: {e}");
        }
    }
}
