//! Settings are validated once, at load: a bad value stops start-up with a message that names the
//! setting both ways an operator may have written it (the TOML key and the `OTPD_` variable).
//! Only the public `Config::load` and `SETTINGS` are used, so the tests hold however the loader
//! is split up inside.

use otpd::config::{Config, SETTINGS};
use std::collections::BTreeSet;

type Env = Vec<(String, String)>;
/// (setting, value) pairs, by TOML name.
type Settings = &'static [(&'static str, &'static str)];

fn var(setting: &str) -> String {
    format!("OTPD_{}", setting.to_uppercase())
}

/// For every setting whose value is constrained: values it must refuse. The third member lists
/// settings that must accompany the bad value for it to be looked at at all (an introspection
/// cache only exists with an introspection endpoint).
const BAD_VALUES: &[(&str, &[&str], Settings)] = &[
    ("listen", &["nowhere", "127.0.0.1", "127.0.0.1:99999"], &[]),
    ("log", &["otpd=verbose", "[unclosed"], &[]),
    ("database_url", &["mysql://db/otpd", "otpd.db"], &[]),
    ("database_max_connections", &["0", "1001", "ten"], &[]),
    ("database_acquire_timeout_ms", &["49", "60001", "-1"], &[]),
    ("base_path", &["user/2022-1"], &[]),
    (
        "oidc_issuer",
        &["id.example.com", "ftp://id.example.com"],
        &[],
    ),
    ("jwks_url", &["file:///etc/jwks.json"], &[]),
    ("allow_insecure_idp_urls", &["yes", "1", "TRUE "], &[]),
    ("introspection_max_per_second", &["0", "100001", "-1"], &[]),
    ("token_leeway_seconds", &["301", "-1", "30s"], &[]),
    ("introspection_url", &["id.example.com/introspect"], &[]),
    (
        "introspection_cache_seconds",
        &["301", "-5"],
        &[
            ("introspection_url", "https://id.example.com/introspect"),
            ("introspection_client_id", "otpd"),
            ("introspection_client_secret_file", "/run/secrets/otpd"),
        ],
    ),
    ("pepper_id", &["key-1", "p123456789", "ключ"], &[]),
    (
        "pepper_old_files",
        &["p0", "p-0:/x", "p0:/x,p0:/y", "p1:/x", "p0:"],
        &[],
    ),
    ("totp_key_id", &["pepper:p1", "t123456789"], &[]),
    (
        "totp_old_key_files",
        &["t0", "t1:/x", "t0:/a,t0:/b", "t-0:/x"],
        &[],
    ),
    (
        "argon2",
        &[
            "m=19456,t=2",
            "m=19456,t=0,p=1",
            "m=19456,t=2,p=17",
            "m=7,t=1,p=1",
            "m=19456,t=2,p=1,x=3",
            "fast",
        ],
        &[],
    ),
    ("hash_concurrency", &["0", "257"], &[]),
    ("hash_queue", &["10001", "-1"], &[]),
    ("pin_lock_from", &["1001", "-1"], &[]),
    ("pin_disable_after", &["1001"], &[]),
    ("password_lock_from", &["10001"], &[]),
    ("password_disable_after", &["10001"], &[]),
    ("otp_revoke_after", &["1001"], &[]),
    ("otp_disable_after", &["10001", "-1"], &[]),
    ("audit_retention_days", &["36501", "-1"], &[]),
    ("retention_interval_seconds", &["86401", "-1", "soon"], &[]),
    ("lock_base_seconds", &["0", "3601"], &[]),
    ("lock_max_seconds", &["0", "86401"], &[]),
    (
        "rate_limit_per_client",
        &["5/day", "many", "0/s", "1000001/s", "5"],
        &[],
    ),
    ("rate_limit_per_address", &["20/week", "-3/s"], &[]),
    ("otp_digits", &["5", "11"], &[]),
    ("otp_ttl_seconds", &["0", "601"], &[]),
    ("otp_max_live", &["0", "11"], &[]),
    ("pin_length", &["3", "13"], &[]),
    ("totp_digits", &["5", "9"], &[]),
    ("totp_period_seconds", &["0", "301"], &[]),
    ("totp_algorithm", &["MD5", "SHA3"], &[]),
    ("after_login_window_seconds", &["3601"], &[]),
    ("max_body_bytes", &["1023", "1048577"], &[]),
    ("metrics_listen", &["nowhere", "9090"], &[]),
    ("admin_api", &["yes", "listener"], &[]),
    ("admin_scope", &["two scopes", "user:otp:create"], &[]),
    ("header_read_timeout_seconds", &["0", "301"], &[]),
    ("request_timeout_seconds", &["0", "601"], &[]),
    ("max_requests_per_connection", &["0", "1000001"], &[]),
    ("max_connections", &["0", "100001"], &[]),
    ("first_request_timeout_seconds", &["0", "301", "3s"], &[]),
    ("idle_timeout_seconds", &["0", "3601"], &[]),
    ("max_connections_per_address", &["0", "100001", "none"], &[]),
    ("long_poll_max_per_user", &["1001", "-1"], &[]),
    ("long_poll_max_total", &["100001", "-1"], &[]),
    ("shutdown_grace_seconds", &["601"], &[]),
    (
        "smtp_url",
        &["http://mail.example.com", "mail.example.com:25"],
        &[("mail_from", "otpd@example.com")],
    ),
    ("mail_per_hour", &["0", "1001"], &[]),
    ("log_format", &["xml", "JSON "], &[]),
    (
        "log_rejected_requests",
        &["lots", "100", "10/day", "0/min", "1000001/s"],
        &[],
    ),
    ("password_min_length", &["7", "65", "eight"], &[]),
    (
        "password_blocklist_file",
        &["/nonexistent/blocklist.txt"],
        &[],
    ),
    (
        "public_url",
        &[
            "account.example.com",
            "ftp://x",
            "https://x/?a=b",
            "https://u@x",
        ],
        &[],
    ),
    (
        "service_name",
        &["nnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnn"],
        &[],
    ),
    ("password_link_ttl_seconds", &["299", "604801", "-1"], &[]),
    ("templates_dir", &["/nonexistent/templates"], &[]),
    (
        "session_ttl_seconds",
        &["299", "2592001", "-1", "a day"],
        &[],
    ),
    // Phone and the SMS gateway (docs/phone.md).
    ("phone_lock_from", &["1001", "-1"], &[]),
    (
        "sms_url",
        &["ftp://sms.example.com", "sms.example.com"],
        &[],
    ),
    ("sms_method", &["GET", "DELETE"], &[]),
    ("sms_auth", &["digest", "header:bad name", "header:"], &[]),
    ("sms_headers", &["[1]", r#"{"X":1}"#, "not json"], &[]),
    ("sms_body_format", &["xml"], &[]),
    ("sms_body", &[r#"{"to":"{to}"}"#, "[]", "x"], &[]),
    ("sms_timeout_seconds", &["0", "61"], &[]),
    ("sms_per_user_per_hour", &["0", "101"], &[]),
    ("sms_per_number_per_hour", &["0", "101"], &[]),
    ("phone_code_ttl_seconds", &["59", "3601"], &[]),
];

/// Settings that must be given together, or in a certain relation: the combination that is
/// refused and the setting the message must name.
const BAD_COMBINATIONS: &[(Settings, &str)] = &[
    (
        &[("introspection_url", "https://id.example.com/introspect")],
        "introspection_client_id",
    ),
    (
        &[
            ("introspection_url", "https://id.example.com/introspect"),
            ("introspection_client_id", "otpd"),
        ],
        "introspection_client_secret_file",
    ),
    (&[("smtp_url", "smtp://mail.example.com:25")], "mail_from"),
    (&[("admin_api", "admin-listener")], "admin_api"),
    (
        &[("lock_base_seconds", "60"), ("lock_max_seconds", "59")],
        "lock_max_seconds",
    ),
    (&[("sms_auth", "basic")], "sms_username"),
    (&[("sms_auth", "bearer")], "sms_secret_file"),
];

/// Settings whose value is free text or a path read later (`totp_key_file`, `pepper_file` and the
/// introspection secret are checked when read: see totp_key.rs and cli.rs), so no value of theirs
/// is refused at load.
const UNCONSTRAINED: &[&str] = &[
    "audience",
    "linked_identity_claim",
    "introspection_client_secret_file",
    "pepper_file",
    "totp_key_file",
    "registration_claim",
];

fn load_env(pairs: &[(&str, &str)]) -> Result<Config, String> {
    let vars: Env = pairs
        .iter()
        .map(|(k, v)| (var(k), (*v).to_owned()))
        .collect();
    Config::load(None, vars, false).map_err(|e| e.to_string())
}

fn load_toml(pairs: &[(&str, &str)]) -> Result<Config, String> {
    let mut table = toml::Table::new();
    for (k, v) in pairs {
        table.insert((*k).to_owned(), toml::Value::String((*v).to_owned()));
    }
    load_file(&table.to_string())
}

fn load_file(text: &str) -> Result<Config, String> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("otpd.toml");
    std::fs::write(&path, text).unwrap();
    Config::load(Some(&path), Env::new(), false).map_err(|e| e.to_string())
}

/// Checks that loading failed and that the message names `setting` as TOML key and variable.
fn assert_names(result: Result<Config, String>, setting: &str, case: &str) -> Vec<String> {
    let mut problems = vec![];
    match result {
        Ok(_) => problems.push(format!("{case}: accepted")),
        Err(message) => {
            for name in [format!("`{setting}`"), var(setting)] {
                if !message.contains(&name) {
                    problems.push(format!("{case}: `{message}` does not name {name}"));
                }
            }
        }
    }
    problems
}

#[test]
fn every_bad_value_of_a_constrained_setting_is_refused_naming_the_setting() {
    let mut problems = vec![];
    for (setting, bad_values, prerequisites) in BAD_VALUES {
        // The prerequisites alone are fine: the refusal is about the bad value.
        assert!(
            load_env(prerequisites).is_ok(),
            "{setting}: prerequisites {prerequisites:?} refused"
        );
        for bad in *bad_values {
            let mut pairs = prerequisites.to_vec();
            pairs.push((setting, bad));
            let case = format!("{}={bad:?}", var(setting));
            problems.extend(assert_names(load_env(&pairs), setting, &case));
            let case = format!("TOML {setting} = {bad:?}");
            problems.extend(assert_names(load_toml(&pairs), setting, &case));
        }
    }
    assert!(problems.is_empty(), "{problems:#?}");
}

#[test]
fn a_refused_combination_of_settings_names_the_setting_to_fix() {
    let mut problems = vec![];
    for (pairs, named) in BAD_COMBINATIONS {
        let case = format!("{pairs:?}");
        problems.extend(assert_names(load_env(pairs), named, &case));
        problems.extend(assert_names(
            load_toml(pairs),
            named,
            &format!("TOML {case}"),
        ));
    }
    assert!(problems.is_empty(), "{problems:#?}");
}

#[test]
fn every_setting_is_either_validated_by_these_tests_or_known_to_be_free() {
    let listed: BTreeSet<&str> = BAD_VALUES
        .iter()
        .map(|(s, _, _)| *s)
        .chain(BAD_COMBINATIONS.iter().map(|(_, named)| *named))
        .chain(UNCONSTRAINED.iter().copied())
        .collect();
    let settings: BTreeSet<&str> = SETTINGS.iter().map(|(name, _, _)| *name).collect();
    let untested: Vec<_> = settings.difference(&listed).collect();
    let unknown: Vec<_> = listed.difference(&settings).collect();
    assert!(
        untested.is_empty(),
        "settings without a validation case: {untested:?}"
    );
    assert!(
        unknown.is_empty(),
        "cases for settings that do not exist: {unknown:?}"
    );
    // The free ones really are free: any text loads.
    for setting in UNCONSTRAINED {
        assert!(
            load_env(&[(setting, "anything at all")]).is_ok(),
            "{setting}"
        );
    }
}

#[test]
fn the_edges_of_every_range_are_accepted() {
    for (setting, good) in [
        ("database_max_connections", "1"),
        ("database_max_connections", "1000"),
        ("database_acquire_timeout_ms", "50"),
        ("database_acquire_timeout_ms", "60000"),
        ("token_leeway_seconds", "0"),
        ("token_leeway_seconds", "300"),
        ("introspection_max_per_second", "1"),
        ("introspection_max_per_second", "100000"),
        ("allow_insecure_idp_urls", "true"),
        ("hash_concurrency", "256"),
        ("hash_queue", "0"),
        ("pin_lock_from", "0"),
        ("password_disable_after", "10000"),
        ("lock_base_seconds", "1"),
        ("lock_max_seconds", "86400"),
        ("otp_digits", "6"),
        ("otp_digits", "10"),
        ("otp_ttl_seconds", "1"),
        ("otp_ttl_seconds", "600"),
        ("otp_max_live", "1"),
        ("otp_max_live", "10"),
        ("pin_length", "4"),
        ("pin_length", "12"),
        ("totp_digits", "6"),
        ("totp_digits", "8"),
        ("totp_period_seconds", "1"),
        ("totp_period_seconds", "300"),
        ("after_login_window_seconds", "0"),
        ("after_login_window_seconds", "3600"),
        ("max_body_bytes", "1024"),
        ("max_body_bytes", "1048576"),
        ("header_read_timeout_seconds", "300"),
        ("request_timeout_seconds", "600"),
        ("max_requests_per_connection", "1000000"),
        ("max_connections", "100000"),
        ("shutdown_grace_seconds", "0"),
        ("mail_per_hour", "1000"),
        ("password_min_length", "64"),
        ("password_link_ttl_seconds", "300"),
        ("session_ttl_seconds", "300"),
        ("session_ttl_seconds", "2592000"),
        ("public_url", "http://127.0.0.1:8080/otpd/"),
        ("service_name", "Acme Pay"),
        ("rate_limit_per_client", "1000000/h"),
        ("rate_limit_per_address", "off"),
        ("log_rejected_requests", "off"),
        ("log_rejected_requests", "5/min"),
        ("argon2", "m=8,t=1,p=1"),
        ("pepper_id", "abcd1234"),
        ("totp_algorithm", "SHA512"),
        ("metrics_listen", "[::1]:9090"),
        ("admin_api", "off"),
        ("admin_scope", "https://otpd.example/admin"),
        ("phone_lock_from", "0"),
        ("sms_method", "put"),
        ("sms_body_format", "form"),
        ("sms_timeout_seconds", "60"),
        ("sms_per_user_per_hour", "100"),
        ("sms_per_number_per_hour", "1"),
        ("phone_code_ttl_seconds", "60"),
        ("phone_code_ttl_seconds", "3600"),
    ] {
        if let Err(e) = load_env(&[(setting, good)]) {
            panic!("{}={good:?} refused: {e}", var(setting));
        }
        if let Err(e) = load_toml(&[(setting, good)]) {
            panic!("TOML {setting} = {good:?} refused: {e}");
        }
    }
}

#[test]
fn an_unknown_key_in_the_config_file_is_refused_by_name() {
    for (text, key) in [
        ("otp_digitz = 8\n", "otp_digitz"),
        ("OTP_DIGITS = 8\n", "OTP_DIGITS"),
        ("otpd_otp_digits = 8\n", "otpd_otp_digits"),
        ("[server]\nlisten = \"127.0.0.1:8080\"\n", "server"),
    ] {
        let e = load_file(text).expect_err(text);
        assert!(e.contains(&format!("`{key}`")), "{text:?}: {e}");
        assert!(e.contains("otpd.toml"), "the message names the file: {e}");
    }
}

#[test]
fn a_value_of_the_wrong_type_in_the_config_file_is_refused_by_name() {
    for (text, key) in [
        ("otp_digits = 6.5\n", "otp_digits"),
        ("otp_digits = [6]\n", "otp_digits"),
        ("otp_digits = { value = 6 }\n", "otp_digits"),
        ("listen = 2026-12-01T10:00:00Z\n", "listen"),
        ("otp_digits = true\n", "otp_digits"),
        ("otp_ttl_seconds = \"five minutes\"\n", "otp_ttl_seconds"),
        ("log_format = false\n", "log_format"),
    ] {
        let e = load_file(text).expect_err(text);
        assert!(e.contains(&format!("`{key}`")), "{text:?}: {e}");
    }
    // Numbers may be written as numbers or strings.
    let c = load_file("otp_digits = 8\notp_ttl_seconds = \"120\"\n").unwrap();
    assert_eq!((c.otp.digits, c.otp.ttl.as_secs()), (8, 120));
}

#[test]
fn a_config_file_that_is_not_toml_is_refused_naming_the_file() {
    let e = load_file("otp_digits = = 8\n").unwrap_err();
    assert!(e.contains("otpd.toml"), "{e}");
    let e = Config::load(
        Some(std::path::Path::new("/nonexistent/otpd.toml")),
        Env::new(),
        false,
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("/nonexistent/otpd.toml"), "{e}");
}

#[test]
fn a_malformed_log_filter_is_refused_naming_the_setting() {
    let bad = "otpd=verbose";
    assert!(
        tracing_subscriber::EnvFilter::try_new(bad).is_err(),
        "the filter syntax refuses {bad:?}"
    );
    let problems = assert_names(load_env(&[("log", bad)]), "log", "OTPD_LOG");
    assert!(problems.is_empty(), "{problems:#?}");
}

#[test]
fn a_bad_value_of_a_setting_not_in_use_yet_is_still_refused() {
    let problems = assert_names(
        load_env(&[("introspection_cache_seconds", "9999")]),
        "introspection_cache_seconds",
        "OTPD_INTROSPECTION_CACHE_SECONDS=9999",
    );
    assert!(problems.is_empty(), "{problems:#?}");
}

#[test]
fn an_empty_value_means_the_default_not_an_error() {
    let c = load_env(&[("otp_digits", ""), ("listen", "")]).unwrap();
    assert_eq!(c.otp.digits, 6);
    assert_eq!(c.server.listen.to_string(), "127.0.0.1:8080");
}
