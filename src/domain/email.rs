//! An email address taken from an access token, checked once so that mail code can trust it.

use std::fmt;

/// Longest address accepted (RFC 5321 path limit).
pub const MAX_EMAIL_LEN: usize = 254;

/// A plausible mailbox address: one `@`, non-empty local part and domain, no spaces, control or
/// header-breaking characters. The mail transport parses it again by its own rules.
#[derive(Clone, PartialEq, Eq)]
pub struct EmailAddress(String);

impl EmailAddress {
    pub fn parse(raw: &str) -> Option<Self> {
        let (local, domain) = raw.split_once('@')?;
        let ok = raw.len() <= MAX_EMAIL_LEN
            && !local.is_empty()
            && !domain.is_empty()
            && !domain.contains('@')
            && domain.contains('.')
            && !domain.starts_with('.')
            && !domain.ends_with('.')
            && raw
                .chars()
                .all(|c| !c.is_whitespace() && !c.is_control() && !"<>,;:\"()[]\\".contains(c));
        ok.then(|| Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Addresses are personal data: logs and Debug output show only the domain.
impl fmt::Debug for EmailAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let domain = self.0.rsplit_once('@').map_or("", |(_, d)| d);
        write!(f, "EmailAddress(…@{domain})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plausible_addresses_only() {
        assert!(EmailAddress::parse("lena@example.com").is_some());
        assert!(EmailAddress::parse("lena+otp@mail.example.de").is_some());
        for bad in [
            "",
            "lena",
            "@example.com",
            "lena@",
            "lena@localhost",
            "a@b@example.com",
            "lena @example.com",
            "lena@example.com\r\nBcc: x@y.z",
            "<lena@example.com>",
            "lena@.example.com",
        ] {
            assert!(EmailAddress::parse(bad).is_none(), "{bad:?}");
        }
        assert!(EmailAddress::parse(&format!("{}@example.com", "a".repeat(250))).is_none());
    }

    #[test]
    fn debug_hides_the_local_part() {
        let a = EmailAddress::parse("lena@example.com").unwrap();
        assert_eq!(format!("{a:?}"), "EmailAddress(…@example.com)");
    }
}
