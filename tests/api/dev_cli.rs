//! The operator commands as a newcomer meets them, run as the real binary in an empty directory
//! with no settings but a database: which need a pepper, what their errors tell to do, what
//! `--dev check-config` prints, and the development tokens.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

fn otpd(dir: &Path, args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_otpd"))
        .args(args)
        .current_dir(dir)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn read_only_commands_need_no_pepper_and_hashing_ones_say_how_to_get_one() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let out = otpd(d, &["user", "show", "alice"], "");
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("password  not set"),
        "{}",
        stdout(&out)
    );
    let out = otpd(d, &["user", "unlock", "alice"], "");
    assert!(out.status.success(), "{}", stderr(&out));

    let out = otpd(d, &["user", "set-password", "alice"], "a long password");
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("OTPD_PEPPER_FILE"), "{err}");
    assert!(
        err.contains("--dev"),
        "the error should offer dev mode: {err}"
    );
    let out = otpd(d, &["user", "set-pin", "alice"], "4378");
    assert!(stderr(&out).contains("--dev"), "{}", stderr(&out));

    // What the hint says works, and the commands without --dev see the same database.
    let out = otpd(
        d,
        &["--dev", "user", "set-password", "alice"],
        "a long password",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let out = otpd(d, &["user", "set-pin", "alice", "--dev"], "4378");
    assert!(out.status.success(), "{}", stderr(&out));
    for args in [
        &["user", "show", "alice"][..],
        &["--dev", "user", "show", "alice"],
    ] {
        let out = otpd(d, args, "");
        assert!(out.status.success(), "{}", stderr(&out));
        let text = stdout(&out);
        assert!(
            text.contains("password  set") && text.contains("pin       set"),
            "{text}"
        );
        assert!(
            !text.contains("4378") && !text.contains("long password"),
            "{text}"
        );
    }
    let out = otpd(d, &["audit", "alice"], "");
    let text = stdout(&out);
    assert!(
        text.contains("password.set") && text.contains("pin.set"),
        "{text}"
    );
}

#[test]
fn check_config_suggests_the_dev_flag_that_works_and_prints_the_effective_dev_values() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let out = otpd(d, &["check-config"], "");
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("otpd --dev check-config"), "{err}");

    let out = otpd(d, &["--dev", "check-config"], "");
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.lines().any(|l| l == "mode = DEVELOPMENT"), "{text}");
    assert!(
        text.lines()
            .any(|l| l.starts_with("oidc_issuer = urn:otpd:dev")),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with("pepper_file = ./.otpd-dev/pepper")),
        "{text}"
    );
}

fn claims(token: &str) -> serde_json::Value {
    let payload = token.split('.').nth(1).expect("a JWT");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

#[test]
fn dev_tokens_can_carry_an_email_for_sendmail() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let out = otpd(
        d,
        &[
            "dev",
            "token",
            "--sub",
            "alice",
            "--email",
            "alice@example.com",
        ],
        "",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let c = claims(stdout(&out).trim());
    assert_eq!(c["sub"], "alice");
    assert_eq!(c["email"], "alice@example.com");
    // sendmail mails only verified addresses: a dev token's address is verified unless told not.
    assert_eq!(c["email_verified"], true, "{c}");
    let out = otpd(
        d,
        &[
            "dev",
            "token",
            "--sub",
            "alice",
            "--email",
            "alice@example.com",
            "--email-verified",
            "false",
            "--scope",
            "user:otp:create",
            "--ttl",
            "60",
        ],
        "",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let c = claims(stdout(&out).trim());
    assert_eq!(c["email_verified"], false);
    assert_eq!(c["scope"], "user:otp:create");
    assert_eq!(c["exp"].as_i64().unwrap() - c["iat"].as_i64().unwrap(), 60);
}

#[test]
fn dev_tokens_that_could_never_work_are_refused_with_a_reason() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for (args, expected) in [
        (&["dev", "token", "--sub", ""][..], "--sub"),
        (
            &[
                "dev",
                "token",
                "--sub",
                "alice",
                "--scope",
                "user:otp:create user:otp:crate",
            ],
            "user:otp:crate",
        ),
        (
            &["dev", "token", "--sub", "alice", "--scope", ""],
            "--scope",
        ),
        (&["dev", "token", "--sub", "alice", "--ttl", "0"], "--ttl"),
        (
            &["dev", "token", "--sub", "alice", "--email-verified", "true"],
            "--email",
        ),
    ] {
        let out = otpd(d, args, "");
        assert!(!out.status.success(), "{args:?} minted {}", stdout(&out));
        assert!(stdout(&out).is_empty(), "{args:?}");
        let err = stderr(&out);
        assert!(err.contains(expected), "{args:?}: {err}");
    }
}
