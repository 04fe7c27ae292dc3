//! The integration suite: boots the real app on port 0 and talks HTTP to it, with real signed
//! tokens from a test issuer whose keys are served over HTTP.
//!
//! The database is SQLite in a temporary directory unless `OTPD_TEST_DATABASE_URL` names a
//! PostgreSQL server, in which case every test app gets a database of its own there.

mod support;

mod admin_api;
mod admin_audit;
mod backup;
mod browser;
mod cli;
mod client_mistakes;
mod connection_slots;
mod connections;
mod copy_data;
mod copy_data_more;
mod create_otp;
mod credential_errors;
mod delete_race;
mod delete_user;
mod dev_cli;
mod device_revocation;
mod device_totp;
mod durability;
mod errors;
mod import_users;
mod introspection;
mod introspection_limits;
mod key_cache;
mod key_rotation;
mod lockout;
mod lockout_refusals;
mod lockout_reset;
mod log_forging;
mod long_polls;
mod metrics;
mod openapi;
mod otp_attempts;
mod outage;
mod overload;
mod packaging;
mod password_links;
mod password_pages;
mod password_reset;
mod phone;
mod phone_limits;
mod pin_api;
mod pin_change_cost;
mod provider_settings;
mod query_plans;
mod rate_limits;
mod real_provider;
mod replicas;
mod retention;
mod sdk_flows;
mod secrecy;
mod secrets_at_rest;
mod sendmail;
mod sessions;
mod settings_validation;
mod shutdown;
mod store_contract;
mod store_contract_attempts;
mod store_contract_group_commit;
mod store_contract_redeem;
mod token_claims;
mod token_edges;
mod tokens;
mod totp_interop;
mod totp_key;
mod verify_otp;
