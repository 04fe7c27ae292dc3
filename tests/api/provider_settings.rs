//! Defaults that must not fail open outside dev mode: the identity provider is reached over
//! https unless the operator says otherwise, the audience is a decision, and `check-config`
//! names every risky choice that remains.

use crate::support::process::{run_otpd, with_env};
use crate::support::*;

/// The test app's settings without `names`.
fn without(app: &TestApp, names: &[&str]) -> Vec<(String, String)> {
    let mut env = app.env.clone();
    env.retain(|(k, _)| !names.contains(&k.as_str()));
    env
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[tokio::test]
async fn http_provider_urls_are_refused_unless_explicitly_allowed() {
    let app = TestApp::spawn().await;
    // The test issuer is http on loopback: without the permission, neither serve nor check-config.
    let env = without(&app, &["OTPD_ALLOW_INSECURE_IDP_URLS"]);
    for command in ["serve", "check-config"] {
        let out = run_otpd(&env, &[command], "");
        assert!(!out.status.success(), "{command} started");
        let err = stderr(&out);
        assert!(
            err.contains("oidc_issuer") && err.contains("OTPD_ALLOW_INSECURE_IDP_URLS=true"),
            "{command}: {err}"
        );
    }
    // An https issuer with an http introspection endpoint: the endpoint is named.
    let env = with_env(&env, "OTPD_OIDC_ISSUER", "https://id.example.com");
    let env = with_env(
        &env,
        "OTPD_INTROSPECTION_URL",
        "http://id.example.com/introspect",
    );
    let env = with_env(&env, "OTPD_INTROSPECTION_CLIENT_ID", "otpd");
    let env = with_env(
        &env,
        "OTPD_INTROSPECTION_CLIENT_SECRET_FILE",
        "/nonexistent",
    );
    let out = run_otpd(&env, &["check-config"], "");
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("introspection_url"),
        "{}",
        stderr(&out)
    );

    // Allowed: it runs, and check-config says what the permission lets through.
    let out = run_otpd(&app.env, &["check-config"], "");
    assert!(out.status.success(), "{}", stderr(&out));
    let warnings = stderr(&out);
    assert!(
        warnings.contains(&format!("warning: oidc_issuer = {}", app.issuer.url)),
        "{warnings}"
    );
}

#[tokio::test]
async fn an_audience_is_required_and_any_is_a_warned_about_choice() {
    let app = TestApp::spawn().await;
    let env = without(&app, &["OTPD_AUDIENCE"]);
    let out = run_otpd(&env, &["check-config"], "");
    assert!(!out.status.success());
    assert!(stderr(&out).contains("OTPD_AUDIENCE"), "{}", stderr(&out));

    let out = run_otpd(
        &with_env(&env, "OTPD_AUDIENCE", "any"),
        &["check-config"],
        "",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("warning: audience = any"),
        "{}",
        stderr(&out)
    );

    // A real audience over https: nothing to warn about.
    let env = with_env(&env, "OTPD_AUDIENCE", "otpd");
    let env = with_env(&env, "OTPD_OIDC_ISSUER", "https://id.example.com/");
    let env = without_pairs(&env, "OTPD_ALLOW_INSECURE_IDP_URLS");
    let out = run_otpd(&env, &["check-config"], "");
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!stderr(&out).contains("warning"), "{}", stderr(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout
            .lines()
            .any(|l| l == "oidc_issuer = https://id.example.com/"),
        "the issuer is kept as written:\n{stdout}"
    );
}

#[tokio::test]
async fn dev_mode_needs_neither() {
    let dir = tempfile::tempdir().unwrap();
    let env = vec![(
        "OTPD_DATABASE_URL".to_owned(),
        format!("sqlite://{}/otpd.db", dir.path().display()),
    )];
    let out = run_otpd(&env, &["--dev", "check-config"], "");
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("warning: development mode"));
}

fn without_pairs(env: &[(String, String)], name: &str) -> Vec<(String, String)> {
    env.iter().filter(|(k, _)| k != name).cloned().collect()
}
