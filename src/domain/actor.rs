//! Who asked for a change that is not the user's own: an operator at the command line, or a caller
//! of the admin API. Written into the audit row of every such change.

use super::subject::Subject;
use std::fmt::Write;

/// Longest client id kept in an audit row; longer ones are cut (a token's `azp` is not ours to trust
/// for size).
const MAX_CLIENT_CHARS: usize = 128;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    /// `otpd user …` on the server: whoever holds a shell and the database URL.
    Operator,
    /// A bearer token with the admin scope: its `sub` and the client it was issued to.
    Admin {
        sub: Subject,
        client_id: Option<String>,
    },
}

impl Actor {
    /// `via=cli`, or `via=admin-api by=<sub> client=<client_id>`. Values with spaces, quotes, `=`
    /// or other unusual characters are quoted and escaped, so one field can never pose as another.
    pub fn audit_detail(&self) -> String {
        match self {
            Actor::Operator => "via=cli".to_owned(),
            Actor::Admin { sub, client_id } => {
                let mut out = format!("via=admin-api by={}", field(sub.as_str()));
                if let Some(client) = client_id {
                    let client: String = client.chars().take(MAX_CLIENT_CHARS).collect();
                    let _ = write!(out, " client={}", field(&client));
                }
                out
            }
        }
    }

    /// Reads by an operator at the shell are not audited (the shell has its own trail); every
    /// admin API call is.
    pub fn audits_reads(&self) -> bool {
        matches!(self, Actor::Admin { .. })
    }
}

fn field(value: &str) -> String {
    let plain = !value.is_empty()
        && value
            .chars()
            .all(|c| c.is_ascii_graphic() && c != '"' && c != '=' && c != '\\');
    if plain {
        value.to_owned()
    } else {
        format!("{value:?}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn admin(sub: &str, client: Option<&str>) -> Actor {
        Actor::Admin {
            sub: Subject::parse(sub).unwrap(),
            client_id: client.map(str::to_owned),
        }
    }

    #[test]
    fn the_detail_names_the_caller_and_quotes_what_could_pose_as_another_field() {
        assert_eq!(Actor::Operator.audit_detail(), "via=cli");
        assert_eq!(
            admin("svc-1", Some("keycloak-hook")).audit_detail(),
            "via=admin-api by=svc-1 client=keycloak-hook"
        );
        assert_eq!(admin("svc", None).audit_detail(), "via=admin-api by=svc");
        assert_eq!(
            admin("a b", Some("x client=evil")).audit_detail(),
            r#"via=admin-api by="a b" client="x client=evil""#
        );
        let long = "c".repeat(500);
        assert!(admin("s", Some(&long)).audit_detail().len() < 200);
    }
}
