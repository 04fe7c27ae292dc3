//! Helpers for the credential-API tests (verify, PIN, device TOTP, deletion): requests with the
//! right media types, and TOTP codes computed like a device would.

#![allow(dead_code)]

use crate::support::*;
use otpd::domain::totp::{code_at, step_at};
use otpd::domain::{TotpAlgorithm, TotpSettings};
use serde_json::{Value, json};

pub const JSON_API: &str = "application/vnd.api+json";
pub const PASSWORD: &str = "correct horse battery";

impl TestApp {
    /// A fresh account OTP for `sub`, earned with the password (which is set first if needed).
    pub async fn account_otp(&self, sub: &str) -> String {
        self.set_password(sub, PASSWORD).await;
        let res = self.create_otp(sub, json!({ "password": PASSWORD })).await;
        assert_eq!(res.status(), 201);
        let body: Value = res.json().await.unwrap();
        body["otp"].as_str().unwrap().to_owned()
    }

    pub async fn verify(&self, sub: &str, body: Value) -> reqwest::Response {
        self.http
            .post(self.url("/user/otp/verify"))
            .bearer_auth(self.issuer.token(sub))
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    /// A JSON:API request with every scope, both media-type headers as the SDKs send them.
    pub fn json_api(
        &self,
        method: reqwest::Method,
        path: &str,
        sub: &str,
    ) -> reqwest::RequestBuilder {
        self.http
            .request(method, self.url(path))
            .bearer_auth(self.issuer.token(sub))
            .header("content-type", JSON_API)
            .header("accept", JSON_API)
    }

    pub async fn put_pin(&self, sub: &str, pin: &str, otp: &str) -> reqwest::Response {
        let doc = json!({"data": {"type": "pin", "attributes": {"pin": pin, "otp": otp}}});
        self.json_api(reqwest::Method::PUT, "/user/pin", sub)
            .body(doc.to_string())
            .send()
            .await
            .unwrap()
    }

    pub async fn create_device(
        &self,
        sub: &str,
        device: &str,
        attributes: Value,
    ) -> reqwest::Response {
        let doc = json!({"data": {"type": "deviceTOTP", "id": device, "attributes": attributes}});
        self.json_api(reqwest::Method::POST, "/user/devices/totp", sub)
            .body(doc.to_string())
            .send()
            .await
            .unwrap()
    }

    /// Creates a device TOTP with the password and returns its attributes.
    pub async fn device_secret(&self, sub: &str, device: &str) -> DeviceSecret {
        self.set_password(sub, PASSWORD).await;
        let res = self
            .create_device(sub, device, json!({ "password": PASSWORD }))
            .await;
        assert_eq!(res.status(), 201);
        DeviceSecret::from_response(res).await
    }

    pub async fn get_check(&self, path: &str, sub: &str) -> reqwest::Response {
        self.http
            .get(self.url(path))
            .bearer_auth(self.issuer.token(sub))
            .send()
            .await
            .unwrap()
    }

    pub async fn delete_user(&self, sub: &str, otp: &str) -> reqwest::Response {
        self.http
            .delete(self.url("/user"))
            .bearer_auth(self.issuer.token(sub))
            .json(&json!({ "otp": otp }))
            .send()
            .await
            .unwrap()
    }

    pub async fn audit_events(&self, sub: &str) -> Vec<String> {
        self.services()
            .await
            .store
            .audit_events(&otpd::domain::Subject::parse(sub).unwrap())
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.event)
            .collect()
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
