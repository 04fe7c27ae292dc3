//! The admin API's audit trail: cursor paging without gaps or repeats, its parameters, and that
//! no audit event ever carries a secret.

use crate::support::*;
use serde_json::Value;

/// Follows `links.next` from the first page of `sub`'s trail at `size` a page; every event seen.
async fn read_all(admin: &Admin<'_>, sub: &str, size: u32) -> Vec<Value> {
    let mut res = admin.audit(sub, &format!("?page%5Bsize%5D={size}")).await;
    let mut seen = Vec::new();
    loop {
        assert_eq!(res.status(), 200);
        assert_eq!(res.headers()["content-type"], JSON_API);
        let doc: Value = res.json().await.unwrap();
        let data = doc["data"].as_array().unwrap();
        assert!(data.len() <= size as usize, "{doc}");
        seen.extend(data.iter().cloned());
        match doc["links"]["next"].as_str() {
            Some(next) => {
                assert_eq!(
                    data.len(),
                    size as usize,
                    "only full pages have a next: {doc}"
                );
                res = admin.follow(next).await;
            }
            None => return seen,
        }
    }
}

#[tokio::test]
async fn the_trail_pages_by_cursor_without_gaps_or_repeats() {
    let app = TestApp::spawn().await;
    for _ in 0..7 {
        app.set_password("carol", PASSWORD).await;
    }
    app.set_pin("someone-else", "4378").await;
    let admin = app.as_admin("support-1");
    let seen = read_all(&admin, "carol", 3).await;
    // Every page read wrote its own `admin.audit-read` before reading, so the last page shows
    // the last read: the pages together are exactly the stored trail at the end.
    let stored = app.audit_trail("carol").await;
    let paged: Vec<(String, String)> = seen
        .iter()
        .map(|e| {
            assert_eq!(e["type"], "auditEvent");
            let a = &e["attributes"];
            assert!(a["at"].as_str().unwrap().ends_with('Z'));
            (
                a["event"].as_str().unwrap().to_owned(),
                a["detail"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(paged, stored);
    let reads = paged
        .iter()
        .filter(|(e, _)| e == "admin.audit-read")
        .count();
    assert_eq!(
        reads, 4,
        "7 sets + 4 reads = 11 events in pages of 3: {paged:?}"
    );
    let ids: Vec<i64> = seen
        .iter()
        .map(|e| e["id"].as_str().unwrap().parse().unwrap())
        .collect();
    assert!(
        ids.windows(2).all(|w| w[0] < w[1]),
        "ascending ids: {ids:?}"
    );
    // The last id is a cursor for what comes later.
    let last = ids.last().unwrap();
    app.set_pin("carol", "4378").await;
    let res = admin
        .audit("carol", &format!("?page%5Bafter%5D={last}"))
        .await;
    let doc: Value = res.json().await.unwrap();
    let events: Vec<&str> = doc["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["attributes"]["event"].as_str().unwrap())
        .collect();
    assert_eq!(events, ["pin.set", "admin.audit-read"]);
    assert_eq!(doc["links"]["next"], Value::Null);
}

#[tokio::test]
async fn bad_page_parameters_are_400_naming_the_parameter() {
    let app = TestApp::spawn().await;
    let admin = app.as_admin("support-1");
    for (query, parameter) in [
        ("?page%5Bsize%5D=0", "page[size]"),
        ("?page%5Bsize%5D=201", "page[size]"),
        ("?page%5Bsize%5D=ten", "page[size]"),
        ("?page%5Bafter%5D=-1", "page[after]"),
        ("?page%5Bafter%5D=abc", "page[after]"),
    ] {
        let error = assert_error(admin.audit("carol", query).await, 400, "invalid-parameter").await;
        assert_eq!(error["source"]["parameter"], parameter, "{query}");
    }
    let res = admin.audit("carol", "?page%5Bsize%5D=200").await;
    assert_eq!(res.status(), 200);
    let res = admin
        .caller
        .get(&admin_path("carol", "/audit"))
        .header("accept", "text/html")
        .send()
        .await;
    assert_error(res, 406, "not-acceptable").await;
}

#[tokio::test]
async fn no_audit_event_carries_a_secret() {
    let app = TestApp::spawn().await;
    let pin = "4378";
    app.set_pin("frank", pin).await;
    let device = app
        .device_secret("frank", "738e379f-fe30-45ab-819c-ba88804b6368")
        .await;
    let frank = app.as_user("frank");
    let otp = app.account_otp("frank").await;
    assert_eq!(frank.verify(&otp).await.status(), 204);
    let totp = device.now();
    assert_eq!(frank.verify(&totp).await.status(), 204);
    frank.create_otp_with_pin("5621").await;
    frank.create_otp_with_password("not the password").await;
    frank.verify("135790").await;
    let kept = app.account_otp("frank").await;
    let new_pin_otp = app.account_otp("frank").await;
    assert_eq!(frank.put_pin("1357", &new_pin_otp).await.status(), 200);
    let admin = app.as_admin("support-1");
    admin.show("frank").await;
    admin.unlock("frank", None).await;
    admin
        .revoke_device("frank", "738e379f-fe30-45ab-819c-ba88804b6368")
        .await;
    let trail = read_all(&admin, "frank", 200).await;
    let erase_otp = app.account_otp("frank").await;
    assert_eq!(frank.delete_user(&erase_otp).await.status(), 202);
    let everything = format!("{trail:?}{:?}", app.audit_trail("frank").await);
    let user_token = app.issuer.token("frank");
    let admin_token = app.issuer.token_with_scope("support-1", ADMIN_SCOPE);
    // Digits are compared as whole words: a timestamp may contain any four digits.
    let words: Vec<&str> = everything
        .split(|c: char| !c.is_ascii_alphanumeric())
        .collect();
    for secret in [
        pin,
        "1357",
        "5621",
        otp.as_str(),
        totp.as_str(),
        kept.as_str(),
        new_pin_otp.as_str(),
        erase_otp.as_str(),
    ] {
        assert!(
            !words.contains(&secret),
            "`{secret}` in the audit trail: {everything}"
        );
    }
    for secret in [
        PASSWORD,
        "not the password",
        device.secret.as_str(),
        user_token.as_str(),
        admin_token.as_str(),
        "test pepper",
    ] {
        assert!(
            !everything.contains(secret),
            "`{secret}` in the audit trail: {everything}"
        );
    }
    // The trail is not trivially empty: it has the events the flow above made.
    for event in [
        "pin.set",
        "otp.issued",
        "otp.redeemed",
        "pin.refused",
        "device-totp.revoked",
        "user.deleted",
    ] {
        assert!(everything.contains(event), "{event} missing: {everything}");
    }
}
