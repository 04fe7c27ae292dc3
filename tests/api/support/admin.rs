//! The admin client: support staff or the identity provider's hook calling `/admin/v1` with a
//! token that carries the admin scope (`app.as_admin("support-1").erase("alice")`).

use super::app::TestApp;
use super::client::{Call, User};
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};

pub const ADMIN_SCOPE: &str = "otpd:admin";

/// A caller of the admin API: a `User` at the root (the admin API sits outside the base path)
/// whose token carries only the admin scope unless changed through `caller`.
pub struct Admin<'a> {
    pub caller: User<'a>,
}

impl TestApp {
    /// What `otpd user show` prints for `sub` (factors, hashes, locks, devices; never a secret).
    pub async fn user_status(&self, sub: &str) -> String {
        self.services()
            .await
            .user_status(
                &otpd::domain::Subject::parse(sub).unwrap(),
                &otpd::domain::Actor::Operator,
            )
            .await
            .unwrap()
            .to_string()
    }

    /// `sub` (a service account, say) calling the admin API on the main listener.
    pub fn as_admin(&self, sub: &str) -> Admin<'_> {
        self.admin_at(&self.root_url(""), sub)
    }

    /// `sub` calling the admin API at `root` (`http://host:port`, e.g. the admin listener).
    pub fn admin_at(&self, root: &str, sub: &str) -> Admin<'_> {
        let caller =
            User::new(&self.http, root.to_owned(), &self.issuer, sub).with_scope(ADMIN_SCOPE);
        Admin { caller }
    }
}

/// `/admin/v1/users/{sub}` with the sub percent-encoded, plus `rest`.
pub fn admin_path(sub: &str, rest: &str) -> String {
    format!(
        "/admin/v1/users/{}{rest}",
        utf8_percent_encode(sub, NON_ALPHANUMERIC)
    )
}

impl Admin<'_> {
    /// The same caller with a token holding exactly `scope`.
    pub fn with_scope(self, scope: &str) -> Self {
        Self {
            caller: self.caller.with_scope(scope),
        }
    }

    pub fn show_call(&self, sub: &str) -> Call {
        self.caller.get(&admin_path(sub, ""))
    }

    pub async fn show(&self, sub: &str) -> reqwest::Response {
        self.show_call(sub).send().await
    }

    /// `GET /admin/v1/users/{sub}`, which must succeed, as its JSON:API document.
    pub async fn show_ok(&self, sub: &str) -> serde_json::Value {
        let res = self.show(sub).await;
        assert_eq!(res.status(), 200);
        assert_eq!(res.headers()["content-type"], super::client::JSON_API);
        res.json().await.unwrap()
    }

    pub async fn unlock(&self, sub: &str, factor: Option<&str>) -> reqwest::Response {
        let query = factor.map(|f| format!("?factor={f}")).unwrap_or_default();
        self.caller
            .post(&admin_path(sub, &format!("/unlock{query}")))
            .send()
            .await
    }

    pub async fn erase(&self, sub: &str) -> reqwest::Response {
        self.caller.delete(&admin_path(sub, "")).send().await
    }

    pub async fn revoke_device(&self, sub: &str, device: &str) -> reqwest::Response {
        self.caller
            .delete(&admin_path(sub, &format!("/devices/{device}")))
            .send()
            .await
    }

    /// `GET /admin/v1/users/{sub}/audit` with `query` (`""` or `?page%5Bsize%5D=3` …).
    pub async fn audit(&self, sub: &str, query: &str) -> reqwest::Response {
        self.caller
            .get(&admin_path(sub, &format!("/audit{query}")))
            .send()
            .await
    }

    /// `GET` of a link the API handed out (`links.next`), relative to the root.
    pub async fn follow(&self, link: &str) -> reqwest::Response {
        self.caller.get(link).send().await
    }
}
