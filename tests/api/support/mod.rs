//! The test harness, one peer or concern a module: the app booted in-process (`app`), the token
//! issuer (`issuer`), databases on either backend (`databases`), the user client (`client`), the
//! SMTP sink (`mail`), the real binary as a child process (`process`), captured logs (`logs`),
//! shared assertions, and skipping out loud (`skip`).

#![allow(dead_code, unused_imports)]

mod admin;
mod app;
mod assertions;
mod client;
mod clock;
mod databases;
mod issuer;
mod logs;
pub mod mail;
pub mod process;
mod skip;
pub mod sms;

pub use admin::{ADMIN_SCOPE, Admin, admin_path};
pub use app::{TEST_ARGON2, TestApp, TestAppBuilder};
pub use assertions::{assert_error, assert_refused};
pub use client::{Call, DeviceSecret, JSON_API, PASSWORD, User, content_type, otp_of};
pub use clock::{manual_clock, mid_step_clock};
pub(crate) use databases::on_database;
pub use databases::{
    count_live_digest, execute, fresh_database_url, is_sqlite, postgres_server, scalar,
    schema_snapshot, sqlite_file_bytes, stored_bytes, stored_otp_digests, unique_name,
};
pub use issuer::{ALL_SCOPES, EC_KID, RSA_KID, TestIssuer, fixture, public_jwk, rsa_key};
pub use logs::{assert_logged, captured_logs, log_lines_with, request_id};
pub(crate) use skip::skip;
pub use skip::{in_ci, python_with, report_missing_tool, report_skip};
pub use sms::{ReceivedSms, SmsGateway};
