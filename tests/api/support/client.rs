//! The user client: requests that read as sentences (`app.as_user("alice").verify(&otp)`), each
//! with the media types the SDKs send, and `Call`, a request builder for the odd cases a test
//! spells out header by header. Also the device a TOTP test plays.

use super::app::TestApp;
use super::assertions::assert_error;
use super::issuer::TestIssuer;
use otpd::domain::totp::{code_at, step_at};
use otpd::domain::{TotpAlgorithm, TotpSettings};
use reqwest::Method;
use serde_json::{Value, json};

pub const JSON_API: &str = "application/vnd.api+json";
pub const PASSWORD: &str = "correct horse battery";

/// Someone calling the API: a subject with a token (every scope unless narrowed), or nobody.
pub struct User<'a> {
    http: &'a reqwest::Client,
    /// Scheme, host and base path: what a route's path is appended to.
    api: String,
    issuer: &'a TestIssuer,
    sub: String,
    /// `None`: no `Authorization` header at all.
    token: Option<String>,
}

impl<'a> User<'a> {
    /// A caller of the API at `api` (scheme, host and base path), with every scope.
    pub fn new(http: &'a reqwest::Client, api: String, issuer: &'a TestIssuer, sub: &str) -> Self {
        Self {
            http,
            api,
            issuer,
            sub: sub.to_owned(),
            token: Some(issuer.token(sub)),
        }
    }

    /// The same user with a token that has only `scope`.
    pub fn with_scope(mut self, scope: &str) -> Self {
        self.token = Some(self.issuer.token_with_scope(&self.sub, scope));
        self
    }

    /// The same user with every scope and `extra` claims (see `TestIssuer::token_with_claims`).
    pub fn with_claims(mut self, extra: Value) -> Self {
        self.token = Some(self.issuer.token_with_claims(&self.sub, extra));
        self
    }

    /// The same user presenting `token` as it is (forged, opaque, foreign…).
    pub fn with_token(mut self, token: &str) -> Self {
        self.token = Some(token.to_owned());
        self
    }

    /// No `Authorization` header.
    pub fn without_token(mut self) -> Self {
        self.token = None;
        self
    }

    /// A request to `path` (below the base path) with this user's token and nothing else.
    pub fn request(&self, method: Method, path: &str) -> Call {
        let req = self.http.request(method, format!("{}{path}", self.api));
        Call(match &self.token {
            Some(token) => req.bearer_auth(token),
            None => req,
        })
    }

    pub fn get(&self, path: &str) -> Call {
        self.request(Method::GET, path)
    }

    pub fn post(&self, path: &str) -> Call {
        self.request(Method::POST, path)
    }

    pub fn put(&self, path: &str) -> Call {
        self.request(Method::PUT, path)
    }

    pub fn delete(&self, path: &str) -> Call {
        self.request(Method::DELETE, path)
    }

    /// `POST /user/otp` with `body` as JSON.
    pub async fn create_otp(&self, body: Value) -> reqwest::Response {
        self.post("/user/otp").json(&body).send().await
    }

    pub async fn create_otp_with_password(&self, password: &str) -> reqwest::Response {
        self.create_otp(json!({ "password": password })).await
    }

    pub async fn create_otp_with_pin(&self, pin: &str) -> reqwest::Response {
        self.create_otp(json!({ "pin": pin })).await
    }

    /// `n` guesses of `body` at `POST /user/otp`, one after another, each evaluated and refused
    /// (422).
    pub async fn refused_guesses(&self, body: &Value, n: usize) {
        for i in 1..=n {
            let res = self.create_otp(body.clone()).await;
            assert_eq!(res.status(), 422, "guess {i} of {n}: {body}");
        }
    }

    /// The OTP of a `POST /user/otp` with `body`, which must succeed.
    pub async fn new_otp(&self, body: Value) -> String {
        otp_of(self.create_otp(body).await).await
    }

    /// `POST /user/otp/verify` of `otp`, any type.
    pub async fn verify(&self, otp: &str) -> reqwest::Response {
        self.verify_body(json!({ "otp": otp })).await
    }

    /// `POST /user/otp/verify` of `otp`, counting only the OTP `types`.
    pub async fn verify_as(&self, otp: &str, types: &[&str]) -> reqwest::Response {
        self.verify_body(json!({ "otp": otp, "types": types }))
            .await
    }

    pub async fn verify_body(&self, body: Value) -> reqwest::Response {
        self.post("/user/otp/verify").json(&body).send().await
    }

    /// `PUT /user/pin` with the JSON:API document the SDKs send.
    pub async fn put_pin(&self, pin: &str, otp: &str) -> reqwest::Response {
        let doc = json!({"data": {"type": "pin", "attributes": {"pin": pin, "otp": otp}}});
        self.put("/user/pin").json_api(&doc).send().await
    }

    /// `POST /user/devices/totp` for `device` with the proof in `attributes`.
    pub async fn create_device(&self, device: &str, attributes: Value) -> reqwest::Response {
        let doc = json!({"data": {"type": "deviceTOTP", "id": device, "attributes": attributes}});
        self.post("/user/devices/totp").json_api(&doc).send().await
    }

    pub async fn delete_user(&self, otp: &str) -> reqwest::Response {
        self.delete("/user")
            .json(&json!({ "otp": otp }))
            .send()
            .await
    }

    pub async fn sendmail(&self) -> reqwest::Response {
        self.post("/user/otp/sendmail").send().await
    }

    /// `GET` of a check (`/user/pin`, `/user/password`, `/user/pin-or-password`, with a query).
    pub async fn check(&self, path: &str) -> reqwest::Response {
        self.get(path).send().await
    }

    /// `GET /user/pin-or-password`, which must succeed, as `{"pin": _, "password": _}`.
    pub async fn pin_or_password(&self) -> Value {
        let res = self.check("/user/pin-or-password").await;
        assert_eq!(res.status(), 200);
        res.json().await.unwrap()
    }
}

/// A request being built: reqwest's builder, whose `send` cannot fail to reach the app.
pub struct Call(reqwest::RequestBuilder);

impl Call {
    pub fn header(self, name: &str, value: &str) -> Self {
        Self(self.0.header(name, value))
    }

    pub fn json(self, body: &Value) -> Self {
        Self(self.0.json(body))
    }

    pub fn body(self, body: impl Into<reqwest::Body>) -> Self {
        Self(self.0.body(body))
    }

    /// A JSON:API document (or any text), with both media-type headers as the SDKs send them.
    pub fn json_api(self, doc: impl ToString) -> Self {
        self.header("content-type", JSON_API)
            .header("accept", JSON_API)
            .body(doc.to_string())
    }

    pub async fn send(self) -> reqwest::Response {
        self.0.send().await.expect("the request reaches the app")
    }

    /// `send` for a test in which the app may be gone (killed on purpose).
    pub async fn try_send(self) -> reqwest::Result<reqwest::Response> {
        self.0.send().await
    }
}

/// The `otp` of a 201 from `POST /user/otp`.
pub async fn otp_of(res: reqwest::Response) -> String {
    assert_eq!(res.status(), 201);
    let body: Value = res.json().await.unwrap();
    body["otp"].as_str().expect("an otp").to_owned()
}

impl TestApp {
    /// `sub` calling this app with a token that has every scope.
    pub fn as_user(&self, sub: &str) -> User<'_> {
        User::new(&self.http, self.url(""), &self.issuer, sub)
    }

    /// A caller without a token.
    pub fn anonymous(&self) -> User<'_> {
        self.as_user("anonymous").without_token()
    }

    /// A request without a token, for the odd case (a raw body, a root path via `root_url`…).
    pub fn request(&self, method: Method, path: &str) -> Call {
        self.anonymous().request(method, path)
    }

    /// Checks that what `call` builds is 401 `missing-token` without a token and 403
    /// `insufficient-scope` with a token that has only `other_scope`.
    pub async fn assert_guarded(&self, other_scope: &str, call: impl Fn(&User<'_>) -> Call) {
        let res = call(&self.anonymous()).send().await;
        assert_eq!(res.headers()["www-authenticate"], "Bearer");
        assert_error(res, 401, "missing-token").await;
        let narrow = self.as_user("guarded").with_scope(other_scope);
        assert_error(call(&narrow).send().await, 403, "insufficient-scope").await;
    }

    /// `POST /user/otp` with a JSON body and a token for `sub` with every scope.
    pub async fn create_otp(&self, sub: &str, body: Value) -> reqwest::Response {
        self.as_user(sub).create_otp(body).await
    }

    /// A fresh account OTP for `sub`, earned with the password (which is set first).
    pub async fn account_otp(&self, sub: &str) -> String {
        self.set_password(sub, PASSWORD).await;
        self.as_user(sub)
            .new_otp(json!({ "password": PASSWORD }))
            .await
    }

    /// Creates a device TOTP with the password (set first) and returns what the device keeps.
    pub async fn device_secret(&self, sub: &str, device: &str) -> DeviceSecret {
        self.set_password(sub, PASSWORD).await;
        let res = self
            .as_user(sub)
            .create_device(device, json!({ "password": PASSWORD }))
            .await;
        assert_eq!(res.status(), 201);
        DeviceSecret::from_response(res).await
    }
}

/// A device TOTP as the device keeps it.
#[derive(Debug, Clone)]
pub struct DeviceSecret {
    pub secret: String,
    pub settings: TotpSettings,
}

impl DeviceSecret {
    pub async fn from_response(res: reqwest::Response) -> Self {
        assert_eq!(res.headers()["content-type"], JSON_API);
        let doc: Value = res.json().await.unwrap();
        assert_eq!(doc["data"]["type"], "deviceTOTP", "{doc}");
        let a = &doc["data"]["attributes"];
        Self {
            secret: a["secret"].as_str().unwrap().to_owned(),
            settings: TotpSettings {
                period_secs: a["period"].as_u64().unwrap() as u32,
                digits: a["digits"].as_u64().unwrap() as u8,
                algorithm: TotpAlgorithm::parse(a["algorithm"].as_str().unwrap()).unwrap(),
            },
        }
    }

    pub fn bytes(&self) -> Vec<u8> {
        data_encoding::BASE32_NOPAD
            .decode(self.secret.as_bytes())
            .expect("base32 secret")
    }

    /// The code for `unix_secs` plus `steps` time steps.
    pub fn code(&self, unix_secs: i64, steps: i64) -> String {
        let step = step_at(unix_secs, self.settings.period_secs) + steps;
        code_at(&self.bytes(), self.settings, step)
    }

    pub fn now(&self) -> String {
        self.code(time::OffsetDateTime::now_utc().unix_timestamp(), 0)
    }
}

/// The content type of a response, if any.
pub fn content_type(res: &reqwest::Response) -> Option<String> {
    res.headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
}
