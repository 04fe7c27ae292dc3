//! The text people read: the password pages, the mails with links, and the pages' stylesheet and
//! script. English ones are built in (`templates/` in the source tree); an operator replaces any of
//! them by putting a file of the same name under `templates_dir` (brand, wording, language; see
//! docs/pages.md). Templates are minijinja; `.html` files are HTML-escaped automatically.
//!
//! Every template is compiled at start-up, so a broken one stops the service with its name instead
//! of failing a user's request later.

use minijinja::Environment;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// `templates_dir`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TemplateSettings {
    pub dir: Option<PathBuf>,
}

/// Every built-in template and asset, by the name an override must have.
const BUILT_IN: &[(&str, &str)] = &[
    (
        "pages/base.html",
        include_str!("../templates/pages/base.html"),
    ),
    (
        "pages/messages.html",
        include_str!("../templates/pages/messages.html"),
    ),
    (
        "pages/form.html",
        include_str!("../templates/pages/form.html"),
    ),
    (
        "pages/done.html",
        include_str!("../templates/pages/done.html"),
    ),
    (
        "pages/problem.html",
        include_str!("../templates/pages/problem.html"),
    ),
    (
        "mail/password-set.txt",
        include_str!("../templates/mail/password-set.txt"),
    ),
    (
        "mail/password-reset.txt",
        include_str!("../templates/mail/password-reset.txt"),
    ),
    (
        "mail/phone-changed.txt",
        include_str!("../templates/mail/phone-changed.txt"),
    ),
    (
        "sms/phone-code.txt",
        include_str!("../templates/sms/phone-code.txt"),
    ),
];

const ASSETS: &[(&str, &str, &str)] = &[
    (
        "otpd.css",
        "text/css; charset=utf-8",
        include_str!("../templates/assets/otpd.css"),
    ),
    (
        "otpd.js",
        "text/javascript; charset=utf-8",
        include_str!("../templates/assets/otpd.js"),
    ),
];

#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error("cannot read {path}: {cause}")]
    Read {
        path: PathBuf,
        cause: std::io::Error,
    },
    #[error("template {name}: {cause}")]
    Compile {
        name: String,
        cause: minijinja::Error,
    },
}

/// A static file the pages load.
#[derive(Debug, Clone)]
pub struct Asset {
    pub content_type: &'static str,
    pub body: Vec<u8>,
}

pub struct Templates {
    env: Environment<'static>,
    assets: HashMap<&'static str, Asset>,
}

/// The override of `name` in `dir`, if the operator put one there.
fn read_override(dir: Option<&Path>, name: &str) -> Result<Option<Vec<u8>>, TemplateError> {
    let Some(dir) = dir else { return Ok(None) };
    let path = dir.join(name);
    match std::fs::read(&path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(cause) => Err(TemplateError::Read { path, cause }),
    }
}

impl Templates {
    pub fn load(settings: &TemplateSettings) -> Result<Self, TemplateError> {
        let dir = settings.dir.as_deref();
        if let Some(dir) = dir
            && !dir.is_dir()
        {
            return Err(TemplateError::Read {
                path: dir.to_owned(),
                cause: std::io::Error::new(std::io::ErrorKind::NotFound, "not a directory"),
            });
        }
        let mut env = Environment::new();
        for (name, built_in) in BUILT_IN {
            let source = match read_override(dir, name)? {
                Some(bytes) => String::from_utf8(bytes).map_err(|e| TemplateError::Read {
                    path: dir.map(|d| d.join(name)).unwrap_or_default(),
                    cause: std::io::Error::new(std::io::ErrorKind::InvalidData, e),
                })?,
                None => (*built_in).to_owned(),
            };
            env.add_template_owned(*name, source)
                .map_err(|cause| TemplateError::Compile {
                    name: (*name).to_owned(),
                    cause,
                })?;
        }
        let mut assets = HashMap::new();
        for (name, content_type, built_in) in ASSETS {
            let body = read_override(dir.map(|d| d.join("assets")).as_deref(), name)?
                .unwrap_or_else(|| built_in.as_bytes().to_vec());
            assets.insert(*name, Asset { content_type, body });
        }
        Ok(Self { env, assets })
    }

    /// The built-in set: what tests and commands without pages use.
    pub fn built_in() -> Self {
        Self::load(&TemplateSettings::default()).expect("the built-in templates compile")
    }

    pub fn render(&self, name: &str, ctx: minijinja::Value) -> Result<String, minijinja::Error> {
        self.env.get_template(name)?.render(ctx)
    }

    pub fn asset(&self, name: &str) -> Option<&Asset> {
        self.assets.get(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_is_escaped_and_text_mails_are_not() {
        let t = Templates::built_in();
        let page = t
            .render(
                "pages/problem.html",
                minijinja::context! { problem => "unknown", service_name => "<b>Acme</b>" },
            )
            .unwrap();
        assert!(page.contains("&lt;b&gt;Acme&lt;&#x2f;b&gt;") || page.contains("&lt;b&gt;Acme"));
        assert!(!page.contains("<b>Acme</b>"));
        let mail = t
            .render(
                "mail/password-set.txt",
                minijinja::context! { service_name => "A&B", link => "https://x/?token=a&b", hours => 24, expires => "then" },
            )
            .unwrap();
        assert!(mail.starts_with("Subject: "));
        assert!(mail.contains("https://x/?token=a&b"));
    }

    #[test]
    fn an_override_replaces_one_template_and_a_broken_one_stops_loading() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("mail")).unwrap();
        std::fs::write(
            dir.path().join("mail/password-set.txt"),
            "Subject: Passwort\n\nHallo {{ link }}",
        )
        .unwrap();
        let settings = TemplateSettings {
            dir: Some(dir.path().to_owned()),
        };
        let t = Templates::load(&settings).unwrap();
        let mail = t
            .render("mail/password-set.txt", minijinja::context! { link => "L" })
            .unwrap();
        assert_eq!(mail, "Subject: Passwort\n\nHallo L");
        assert!(t.asset("otpd.css").is_some(), "the rest stays built in");
        std::fs::write(dir.path().join("mail/password-set.txt"), "{% if %}").unwrap();
        let e = Templates::load(&settings).err().unwrap();
        assert!(e.to_string().contains("mail/password-set.txt"), "{e}");
    }
}
