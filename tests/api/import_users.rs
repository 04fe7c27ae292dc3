//! `otpd user import`: hashes made by independent implementations (Python's `hashlib`, `bcrypt`,
//! `argon2-cffi`, from the test venv) and a Keycloak-shaped export built from them are imported,
//! log in with the original password, are re-hashed under otpd's pepper, and log in again.

use crate::support::process::run_otpd;
use crate::support::*;
use std::path::Path;
use std::process::Command;

/// Typed as is; NFKC would turn the ligature into "fi" and the fullwidth A into "A", so a check
/// that normalized before an imported hash would fail.
const TYPED: &str = "\u{FB01}rst P\u{FF21}ss w\u{f6}rd";

const MAKE_HASHES: &str = r#"
import base64, hashlib, json, os, sys
import bcrypt, argon2
from argon2.low_level import Type, hash_secret_raw
out, pw = sys.argv[1], sys.argv[2].encode()
b64 = lambda b: base64.b64encode(b).decode()
phc = lambda b: base64.b64encode(b).decode().rstrip('=')
salt = os.urandom(16)
lines = []
for name, digest, length in [('pbkdf2-sha256', 'sha256', 32), ('pbkdf2-sha512', 'sha512', 64)]:
    dk = hashlib.pbkdf2_hmac(digest, pw, salt, 1000, length)
    lines.append({'sub': 'u-' + name, 'password_hash': f'${name}$i=1000,l={length}${phc(salt)}${phc(dk)}'})
for prefix in ['2a', '2b']:
    lines.append({'sub': 'u-bcrypt-' + prefix, 'password_hash': bcrypt.hashpw(pw, bcrypt.gensalt(rounds=4, prefix=prefix.encode())).decode()})
lines.append({'sub': 'u-bcrypt-2y', 'password_hash': '$2y$' + bcrypt.hashpw(pw, bcrypt.gensalt(rounds=4)).decode()[4:]})
lines.append({'sub': 'u-argon2id', 'password_hash': argon2.PasswordHasher(time_cost=1, memory_cost=64, parallelism=1).hash(pw)})
lines.append({'sub': 'u-argon2i', 'password_hash': argon2.PasswordHasher(time_cost=2, memory_cost=128, parallelism=2, type=Type.I).hash(pw)})
lines.append({'sub': 'u-pin', 'pin_hash': bcrypt.hashpw(b'4378', bcrypt.gensalt(rounds=4)).decode()})
with open(os.path.join(out, 'users.jsonl'), 'w') as f:
    for l in lines:
        f.write(json.dumps(l) + '\n')
def credential(algorithm, iterations, value, extra):
    return {'type': 'password', 'createdDate': 1700000000000,
            'secretData': json.dumps({'value': b64(value), 'salt': b64(salt), 'additionalParameters': {}}),
            'credentialData': json.dumps({'hashIterations': iterations, 'algorithm': algorithm, 'additionalParameters': extra})}
users = []
for algorithm, digest, length in [('pbkdf2', 'sha1', 64), ('pbkdf2-sha256', 'sha256', 64), ('pbkdf2-sha256', 'sha256', 32), ('pbkdf2-sha512', 'sha512', 64)]:
    dk = hashlib.pbkdf2_hmac(digest, pw, salt, 1000, length)
    users.append({'id': f'k-{algorithm}-{length}', 'username': f'kc-{algorithm}-{length}', 'enabled': True,
                  'credentials': [credential(algorithm, 1000, dk, {})]})
raw = hash_secret_raw(pw, salt, time_cost=3, memory_cost=256, parallelism=1, hash_len=32, type=Type.ID, version=19)
users.append({'id': 'k-argon2', 'username': 'kc-argon2', 'credentials': [credential('argon2', 3, raw,
    {'hashLength': ['32'], 'memory': ['256'], 'type': ['id'], 'version': ['1.3'], 'parallelism': ['1']})]})
users.append({'id': 'k-social', 'username': 'kc-social', 'credentials': []})
with open(os.path.join(out, 'realm.json'), 'w') as f:
    json.dump({'id': 'acme', 'realm': 'acme', 'roles': {'realm': []}, 'users': users, 'clients': []}, f)
"#;

fn make_hashes(python: &Path, dir: &Path) {
    let out = Command::new(python)
        .args(["-c", MAKE_HASHES, dir.to_str().unwrap(), TYPED])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

async fn hash_line(app: &TestApp, user: &str) -> String {
    app.user_status(user)
        .await
        .lines()
        .find(|l| l.contains("hash:"))
        .unwrap_or_default()
        .to_owned()
}

fn text(out: &std::process::Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Logs in with the original password, sees the hash upgraded, logs in again.
async fn logs_in_and_is_upgraded(app: &TestApp, user: &str, scheme: &str) {
    assert!(
        hash_line(app, user)
            .await
            .contains(&format!("imported {scheme}")),
        "{user}: {}",
        hash_line(app, user).await
    );
    let client = app.as_user(user);
    assert_eq!(
        client
            .create_otp_with_password(&TYPED.replace('\u{FB01}', "fi"))
            .await
            .status(),
        422,
        "{user}: the normalized form is not what the source hashed"
    );
    assert_eq!(
        client.create_otp_with_password(TYPED).await.status(),
        201,
        "{user}"
    );
    let upgraded = hash_line(app, user).await;
    assert!(
        upgraded.contains("argon2id m=256,t=1,p=1 pepper=p1"),
        "{user}: {upgraded}"
    );
    assert_eq!(
        client.create_otp_with_password(TYPED).await.status(),
        201,
        "{user}"
    );
}

#[tokio::test]
async fn hashes_from_independent_implementations_import_log_in_and_are_upgraded() {
    let Some(python) = python_with("argon2") else {
        skip!(tool: "no Python with bcrypt and argon2-cffi (run scripts/test.sh, or set OTPD_TEST_PYTHON)")
    };
    let app = TestApp::spawn().await;
    make_hashes(&python, app.dir.path());
    let file = app.dir.path().join("users.jsonl");
    let out = run_otpd(&app.env, &["user", "import", file.to_str().unwrap()], "");
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("hashes imported     8"), "{stdout}");
    for (user, scheme) in [
        ("u-pbkdf2-sha256", "pbkdf2-sha256 i=1000,l=32"),
        ("u-pbkdf2-sha512", "pbkdf2-sha512 i=1000,l=64"),
        ("u-bcrypt-2a", "bcrypt cost=4"),
        ("u-bcrypt-2b", "bcrypt cost=4"),
        ("u-bcrypt-2y", "bcrypt cost=4"),
        ("u-argon2id", "argon2id m=64,t=1,p=1"),
        ("u-argon2i", "argon2i m=128,t=2,p=2"),
    ] {
        logs_in_and_is_upgraded(&app, user, scheme).await;
    }
    let pin = app.as_user("u-pin");
    assert_eq!(pin.create_otp_with_pin("4378").await.status(), 201);
    assert_eq!(pin.create_otp_with_pin("4378").await.status(), 201);
    assert!(
        app.audit_events("u-bcrypt-2a")
            .await
            .contains(&"password.imported".to_owned())
    );

    // A re-run changes nothing; --overwrite puts the imported hashes back.
    let again = run_otpd(&app.env, &["user", "import", file.to_str().unwrap()], "");
    let (stdout, _) = text(&again);
    assert!(again.status.success());
    assert!(
        stdout.contains("hashes imported     0") && stdout.contains("kept (already set)  8"),
        "{stdout}"
    );
    assert!(hash_line(&app, "u-argon2i").await.contains("pepper=p1"));
    let args = ["user", "import", "--overwrite", file.to_str().unwrap()];
    let (stdout, _) = text(&run_otpd(&app.env, &args, ""));
    assert!(stdout.contains("hashes replaced     8"), "{stdout}");
    assert!(
        hash_line(&app, "u-argon2i")
            .await
            .contains("imported argon2i")
    );
}

#[tokio::test]
async fn a_keycloak_export_imports_every_password_algorithm_keycloak_writes() {
    let Some(python) = python_with("argon2") else {
        skip!(tool: "no Python with bcrypt and argon2-cffi (run scripts/test.sh, or set OTPD_TEST_PYTHON)")
    };
    let app = TestApp::spawn().await;
    make_hashes(&python, app.dir.path());
    let realm = app.dir.path().join("realm.json");
    let out = run_otpd(
        &app.env,
        &["user", "import", "--keycloak", realm.to_str().unwrap()],
        "",
    );
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("hashes imported     5"), "{stdout}");
    assert!(stdout.contains("no credential       1"), "{stdout}");
    for (user, scheme) in [
        ("k-pbkdf2-64", "pbkdf2 i=1000,l=64"),
        ("k-pbkdf2-sha256-64", "pbkdf2-sha256 i=1000,l=64"),
        ("k-pbkdf2-sha256-32", "pbkdf2-sha256 i=1000,l=32"),
        ("k-pbkdf2-sha512-64", "pbkdf2-sha512 i=1000,l=64"),
        ("k-argon2", "argon2id m=256,t=3,p=1"),
    ] {
        logs_in_and_is_upgraded(&app, user, scheme).await;
    }
    // By username instead of id.
    let args = [
        "user",
        "import",
        "--keycloak",
        realm.to_str().unwrap(),
        "--sub-from",
        "username",
    ];
    assert!(run_otpd(&app.env, &args, "").status.success());
    assert!(
        hash_line(&app, "kc-argon2")
            .await
            .contains("imported argon2id")
    );
}

#[tokio::test]
async fn bad_lines_are_reported_with_line_number_and_reason_and_the_rest_is_imported() {
    let app = TestApp::spawn().await;
    let good = bcrypt::hash_with_salt("a good password", 4, [5u8; 16])
        .unwrap()
        .to_string();
    let costly = good.replacen("$04$", "$16$", 1);
    let salt = "c2FsdHNhbHRzYWx0c2FsdA";
    let value = "aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g";
    let lines = [
        format!(r#"{{"sub":"ok-1","password_hash":"{good}"}}"#),
        "{not json".to_owned(),
        format!(r#"{{"password_hash":"{good}"}}"#),
        format!(r#"{{"sub":"cost","password_hash":"{costly}"}}"#),
        format!(
            r#"{{"sub":"pbkdf2","password_hash":"$pbkdf2-sha256$i=20000000,l=32${salt}${value}"}}"#
        ),
        format!(
            r#"{{"sub":"argon","password_hash":"$argon2id$v=19$m=2097152,t=1,p=1${salt}${value}"}}"#
        ),
        r#"{"sub":"plain","password":"hunter2 in clear"}"#.to_owned(),
        String::new(),
        format!(
            r#"{{"sub":"{}","password_hash":"{good}"}}"#,
            "x".repeat(70_000)
        ),
        format!(r#"{{"sub":"ok-2","password_hash":"{good}","pin_hash":"{good}"}}"#),
    ];
    let file = app.dir.path().join("mixed.jsonl");
    std::fs::write(&file, lines.join("\n")).unwrap();
    let out = run_otpd(&app.env, &["user", "import", file.to_str().unwrap()], "");
    let (stdout, stderr) = text(&out);
    assert!(!out.status.success(), "refusals make the command fail");
    for expected in [
        "line 2: refused: not valid JSON",
        "line 3: refused: not a {\"sub\", \"password_hash\"?, \"pin_hash\"?} object: missing field `sub`",
        "line 4 (user cost): refused: password: bcrypt cost 16 is over the limit of 15",
        "line 5 (user pbkdf2): refused: password: PBKDF2 work 20000000 iterations x 1 blocks is over the limit of 10000000",
        "line 6 (user argon): refused: password: Argon2 parameters m=2097152,t=1,p=1 are over the limits",
        "line 7: refused: not a {\"sub\", \"password_hash\"?, \"pin_hash\"?} object: unknown field `password`",
        "line 9: refused: line longer than 65536 bytes",
        "7 entries refused",
    ] {
        assert!(
            stderr.contains(expected),
            "`{expected}` missing from:\n{stderr}"
        );
    }
    assert!(stdout.contains("hashes imported     3"), "{stdout}");
    for secret in [good.as_str(), value, "hunter2"] {
        assert!(
            !stderr.contains(secret) && !stdout.contains(secret),
            "a hash or secret was printed"
        );
    }
    assert_eq!(
        app.as_user("ok-2")
            .create_otp_with_password("a good password")
            .await
            .status(),
        201
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parallel_first_logins_all_pass_and_leave_one_upgraded_hash() {
    let app = TestApp::builder()
        .env("OTPD_HASH_QUEUE", "32")
        .spawn()
        .await;
    let imported = bcrypt::hash_with_salt(TYPED, 4, [6u8; 16])
        .unwrap()
        .to_string();
    let file = app.dir.path().join("one.jsonl");
    std::fs::write(
        &file,
        format!("{{\"sub\":\"wim\",\"password_hash\":\"{imported}\"}}\n"),
    )
    .unwrap();
    assert!(
        run_otpd(&app.env, &["user", "import", file.to_str().unwrap()], "")
            .status
            .success()
    );
    // Four: reserved attempts count as failures until they succeed, and a fifth at once would
    // start the password lock (OTPD_PASSWORD_LOCK_FROM), which is the lockout's business, not this.
    let logins = (0..4).map(|_| async {
        app.as_user("wim")
            .create_otp_with_password(TYPED)
            .await
            .status()
    });
    let statuses = futures::future::join_all(logins).await;
    assert_eq!(
        statuses.iter().filter(|s| s.as_u16() == 201).count(),
        4,
        "{statuses:?}"
    );
    assert!(hash_line(&app, "wim").await.contains("pepper=p1"));
    assert_eq!(
        app.as_user("wim")
            .create_otp_with_password(TYPED)
            .await
            .status(),
        201
    );
}
