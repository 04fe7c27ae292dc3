//! Hot-path query plans on PostgreSQL: the test drives every hot path over HTTP (and the retention
//! job in process) under request ids of its own, takes the statements they ran from sqlx's
//! statement log (so a statement changed or added in the store is checked without anyone listing
//! it here), and EXPLAINs each one's generic plan with sequential scans priced out. A plan that
//! still reads a whole table, or a whole index without a LIMIT, means no usable index: at a million
//! users that statement reads millions of rows (docs/capacity.md).

use crate::support::*;
use serde_json::{Value, json};
use sqlx::Connection;
use std::collections::{BTreeMap, BTreeSet};
use tracing::Instrument;

const DEVICE: &str = "738e379f-fe30-45ab-819c-ba88804b6368";

/// The hot paths, each driven under request ids `plan-<run>-<path>`: issuing an OTP (password,
/// PIN, a refused PIN), redeeming one (account OTP, device TOTP, a refusal, the failures that
/// revoke and lock), the credential checks and their long poll, a login session and its login OTP,
/// the phone number and its code, the admin reads, and the retention job's deletes. Ana has a
/// device TOTP, so her redemptions take the full path, whose statements are also the ones the
/// one-call redemption of a user without devices runs server-side (checked below to be one call).
const HOT_PATHS: [&str; 19] = [
    "issue-password",
    "issue-pin",
    "pin-refused",
    "redeem",
    "redeem-device",
    "redeem-refused",
    "redeem-lockout",
    "checks",
    "long-poll",
    "session-new",
    "redeem-login",
    "redeem-one-call",
    "session-passed",
    "phone-put",
    "phone-verify",
    "phone-check",
    "admin-show",
    "admin-audit",
    "retention",
];

#[tokio::test]
async fn every_hot_path_statement_finds_its_rows_through_an_index() {
    if postgres_server().is_none() {
        skip!("PostgreSQL only: the plans checked are PostgreSQL's (set OTPD_TEST_DATABASE_URL)");
    }
    let gateway = SmsGateway::start().await;
    let app = crate::phone::phone_builder(&gateway)
        .env("OTPD_RETENTION_INTERVAL_SECONDS", "0")
        .spawn()
        .await;
    let run = unique_name("run");
    let tag = |path: &str| format!("plan-{run}-{path}");
    drive_hot_paths(&app, &tag).await;
    drive_login_and_phone(&app, &gateway, &tag).await;

    let by_path = logged_statements(&format!("plan-{run}-"));
    for path in HOT_PATHS {
        assert!(
            by_path.get(path).is_some_and(|s| !s.is_empty()),
            "no statement was logged for the hot path `{path}`: the test no longer sees what it runs \
             (logged: {by_path:#?})"
        );
    }

    // A user without device TOTPs redeems in one round trip: the server-side function, whose
    // statements are those of ana's full-path redemptions above (docs/decisions.md).
    for path in ["redeem-login", "redeem-one-call"] {
        let statements = &by_path[path];
        assert!(
            statements.len() == 1 && statements.iter().all(|s| s.contains("otpd_redeem_otp(")),
            "{path} should be one call of otpd_redeem_otp, ran {statements:#?}"
        );
    }

    let mut conn = sqlx::PgConnection::connect(&app.database_url)
        .await
        .unwrap();
    assert_eq!(
        full_scans(&mut conn, "SELECT id FROM audit_events WHERE detail = $1").await,
        vec!["Seq Scan on audit_events".to_owned()],
        "the check itself must see a scan where no index can help"
    );
    let mut scanning = Vec::new();
    for (path, statements) in &by_path {
        for sql in statements {
            let scans = full_scans(&mut conn, sql).await;
            if !scans.is_empty() {
                scanning.push(format!("{path}: {scans:?} in\n    {sql}"));
            }
        }
    }
    assert!(
        scanning.is_empty(),
        "hot-path statements without a usable index:\n{}",
        scanning.join("\n")
    );
}

/// One pass over every hot path, each request under its path's request id.
async fn drive_hot_paths(app: &TestApp, tag: &impl Fn(&str) -> String) {
    // The device first: with a PIN set, the password alone no longer proves enough to add one.
    let device = app.device_secret("ana", DEVICE).await;
    app.set_pin("ana", "4378").await;
    let ana = app.as_user("ana");
    let tagged = |path: &str, call: Call| call.header("request-id", &tag(path)).send();

    let by_password = tagged(
        "issue-password",
        ana.post("/user/otp").json(&json!({ "password": PASSWORD })),
    );
    let otp = otp_of(by_password.await).await;
    let by_pin = tagged(
        "issue-pin",
        ana.post("/user/otp").json(&json!({ "pin": "4378" })),
    );
    assert_eq!(by_pin.await.status(), 201);
    let wrong_pin = tagged(
        "pin-refused",
        ana.post("/user/otp").json(&json!({ "pin": "1235" })),
    );
    assert_eq!(wrong_pin.await.status(), 422);

    let verify = |otp: &str| ana.post("/user/otp/verify").json(&json!({ "otp": otp }));
    assert_eq!(tagged("redeem", verify(&otp)).await.status(), 204);
    assert_eq!(
        tagged("redeem-device", verify(&device.now()))
            .await
            .status(),
        204
    );
    assert_eq!(tagged("redeem-refused", verify(&otp)).await.status(), 404);
    // Four more failures in a row reach otp_revoke_after (5): the user's live OTPs are revoked and
    // redemption is locked.
    for _ in 0..4 {
        let status = tagged("redeem-lockout", verify(&otp)).await.status();
        assert!([404, 429].contains(&status.as_u16()), "{status}");
    }

    for check in ["/user/pin", "/user/password", "/user/pin-or-password"] {
        assert_eq!(tagged("checks", ana.get(check)).await.status(), 200);
    }
    // Bo has a password but no PIN: the poll waits its second, checks the store again, and
    // answers that there is still none.
    app.set_password("bo", PASSWORD).await;
    let poll = tagged("long-poll", app.as_user("bo").get("/user/pin?timeout=1"));
    assert_eq!(poll.await.status(), 404);

    let admin = app.as_admin("support-1");
    assert_eq!(
        tagged("admin-show", admin.show_call("ana")).await.status(),
        200
    );
    let audit = admin.caller.get(&admin_path("ana", "/audit"));
    assert_eq!(tagged("admin-audit", audit).await.status(), 200);

    let services = otpd::app::services(&app.config(), manual_clock())
        .await
        .unwrap();
    let span = tracing::info_span!("request", request_id = %tag("retention"));
    let report = services.prune_once().instrument(span).await.unwrap();
    assert!(report.is_some(), "the retention lease was free");
}

/// A login session with its login OTP (issue 17), and a phone number with its code. Session
/// creation and the phone PUT run in tasks of their own (they finish even if the client goes):
/// their statements are seen only because those tasks keep the request's span, which is also what
/// puts a failed send's cause on the request's log line.
async fn drive_login_and_phone(app: &TestApp, gateway: &SmsGateway, tag: &impl Fn(&str) -> String) {
    let tagged = |path: &str, call: Call| call.header("request-id", &tag(path)).send();
    const LENA: &str = "6f1c2a9e-2d0b-4c11-9a3e-0c5b7f3d9e21";
    app.set_password(LENA, PASSWORD).await;
    let idp = app.as_user("identity-provider");
    let session = |passed: bool| {
        idp.put("/sessions/plan-login-1")
            .json(&json!({ "userId": LENA, "passedLoginOTP": passed }))
    };
    let res = tagged("session-new", session(false)).await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    let otp = body["otp"].as_str().expect("a login OTP").to_owned();
    let lena = app.as_user(LENA);
    let login = lena
        .post("/user/otp/verify")
        .json(&json!({ "otp": otp, "types": ["login"] }));
    assert_eq!(tagged("redeem-login", login).await.status(), 204);
    let issued = lena
        .post("/user/otp")
        .json(&json!({ "password": PASSWORD }))
        .send();
    let otp = otp_of(issued.await).await;
    let redeem = lena.post("/user/otp/verify").json(&json!({ "otp": otp }));
    assert_eq!(tagged("redeem-one-call", redeem).await.status(), 204);
    assert_eq!(tagged("session-passed", session(true)).await.status(), 204);

    let put = lena
        .put("/user/phone")
        .json_api(crate::phone::phone_doc(crate::phone::NUMBER));
    assert_eq!(tagged("phone-put", put).await.status(), 201);
    let code = gateway.last().code();
    let verify = lena
        .put("/user/phone/verify")
        .json(&json!({ "code": code }));
    assert_eq!(tagged("phone-verify", verify).await.status(), 200);
    assert_eq!(
        tagged("phone-check", lena.get("/user/phone"))
            .await
            .status(),
        200
    );
}

/// The distinct statements sqlx logged under request ids starting with `prefix`, by the rest of
/// the id (the hot path). Transaction control and other statements without a plan are left out.
fn logged_statements(prefix: &str) -> BTreeMap<String, BTreeSet<String>> {
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for line in captured_logs().lines() {
        let Ok(event) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        if event["target"] != "sqlx::query" {
            continue;
        }
        let Some(path) = event["spans"].as_array().and_then(|spans| {
            spans.iter().find_map(|s| {
                s["request_id"]
                    .as_str()
                    .and_then(|id| id.strip_prefix(prefix))
            })
        }) else {
            continue;
        };
        // sqlx logs a short statement whole as its summary, a longer one in `db.statement`.
        let full = event["fields"]["db.statement"]
            .as_str()
            .unwrap_or("")
            .trim();
        let sql = if full.is_empty() {
            event["fields"]["summary"].as_str().unwrap_or("")
        } else {
            full
        };
        let verb = sql.split_whitespace().next().unwrap_or("").to_uppercase();
        if ["SELECT", "INSERT", "UPDATE", "DELETE", "WITH"].contains(&verb.as_str()) {
            out.entry(path.to_owned())
                .or_default()
                .insert(sql.to_owned());
        }
    }
    out
}

/// The nodes of `sql`'s generic plan that read a whole table (`Seq Scan on t`) or a whole index
/// outside a LIMIT (`Full Index Scan using i`), with sequential scans priced out: on these small
/// tables any scan left means no index fits the statement.
async fn full_scans(conn: &mut sqlx::PgConnection, sql: &str) -> Vec<String> {
    let params = parameter_count(sql);
    // Simple-protocol statements, so sqlx's own prepared statements on this connection stay.
    let prepare = format!(
        "SET enable_seqscan = off; SET plan_cache_mode = force_generic_plan;
         CREATE OR REPLACE FUNCTION pg_temp.plan_of(q text) RETURNS text LANGUAGE plpgsql AS $$
           DECLARE p text; BEGIN EXECUTE 'EXPLAIN (FORMAT JSON) ' || q INTO p; RETURN p; END $$;
         PREPARE hot AS {sql};"
    );
    sqlx::raw_sql(sqlx::AssertSqlSafe(prepare))
        .execute(&mut *conn)
        .await
        .unwrap_or_else(|e| panic!("cannot prepare {sql}: {e}"));
    // With a generic plan the values do not matter; NULL fits every parameter's type.
    let execute = if params == 0 {
        "EXECUTE hot".to_owned()
    } else {
        format!("EXECUTE hot({})", vec!["NULL"; params].join(", "))
    };
    let plan: String = sqlx::query_scalar("SELECT pg_temp.plan_of($1)")
        .bind(&execute)
        .fetch_one(&mut *conn)
        .await
        .unwrap_or_else(|e| panic!("cannot explain {sql}: {e}"));
    sqlx::raw_sql("DEALLOCATE hot")
        .execute(&mut *conn)
        .await
        .unwrap();
    let plan: Value = serde_json::from_str(&plan).unwrap();
    let mut scans = Vec::new();
    collect_full_scans(&plan[0]["Plan"], false, &mut scans);
    scans
}

fn collect_full_scans(node: &Value, under_limit: bool, scans: &mut Vec<String>) {
    let kind = node["Node Type"].as_str().unwrap_or("");
    let on = |key: &str| node[key].as_str().unwrap_or("?").to_owned();
    if kind == "Seq Scan" {
        scans.push(format!("Seq Scan on {}", on("Relation Name")));
    }
    let index_scan = ["Index Scan", "Index Only Scan", "Bitmap Index Scan"].contains(&kind);
    if index_scan && node.get("Index Cond").is_none() && !under_limit {
        scans.push(format!("Full Index Scan using {}", on("Index Name")));
    }
    let under_limit = under_limit || kind == "Limit";
    for child in node["Plans"].as_array().into_iter().flatten() {
        collect_full_scans(child, under_limit, scans);
    }
}

/// The highest `$n` placeholder in `sql`.
fn parameter_count(sql: &str) -> usize {
    sql.split('$')
        .skip(1)
        .filter_map(|rest| {
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            digits.parse::<usize>().ok()
        })
        .max()
        .unwrap_or(0)
}
