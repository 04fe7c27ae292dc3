//! The set-password page behind a mailed link: GET never consumes, POST consumes once, every
//! refusal has its page and status, the headers that protect the token, and the password policy
//! as the page shows it.

use crate::password_links::*;
use crate::support::mail::SmtpSink;
use crate::support::*;
use futures::future::join_all;
use otpd::domain::Subject;
use otpd::domain::credential::MAX_PASSWORD_BYTES;
use std::time::Duration;

/// An app with mail and a set link for `sub`, taken from the mail.
macro_rules! with_set_link {
    ($sub:expr) => {{
        let mut smtp = smtp_sink!();
        let app = link_builder(&smtp).spawn().await;
        let res = mailable(&app, $sub).put("/user/password").send().await;
        assert_eq!(res.status(), 202);
        let link = mailed_link(&mut smtp).await;
        (app, link, smtp)
    }};
}

#[tokio::test]
async fn opening_the_link_never_uses_it_as_mail_scanners_prefetch() {
    let (app, link, _smtp) = with_set_link!("pia");
    for _ in 0..3 {
        assert_eq!(open(&app, &link).await.status, 200);
    }
    let head = app
        .http
        .head(app.root_url(link.strip_prefix(PUBLIC).unwrap()))
        .send()
        .await;
    assert_eq!(head.unwrap().status(), 200);
    assert_eq!(choose(&app, &link, NEW_PASSWORD).await.status, 200);
}

#[tokio::test]
async fn the_same_link_a_second_time_says_it_was_used() {
    let (app, link, _smtp) = with_set_link!("sam");
    assert_eq!(choose(&app, &link, NEW_PASSWORD).await.status, 200);
    let again = choose(&app, &link, "another good passphrase").await;
    assert_eq!(again.status, 410);
    assert!(again.says("This link was already used"), "{}", again.body);
    let page = open(&app, &link).await;
    assert_eq!(page.status, 410);
    // The first password stays.
    let sam = app.as_user("sam");
    assert_eq!(
        sam.create_otp_with_password(NEW_PASSWORD).await.status(),
        201
    );
}

#[tokio::test]
async fn an_unknown_or_mangled_token_is_404_with_a_helpful_page() {
    let (app, link, _smtp) = with_set_link!("tim");
    let cut = &link[..link.len() - 5];
    for bad in [
        cut.to_owned(),
        format!("{PUBLIC}/password/set?token={}", "A".repeat(43)),
        format!("{PUBLIC}/password/set"),
    ] {
        let page = open(&app, &bad).await;
        assert_eq!(page.status, 404, "{bad}");
        assert!(page.says("This link is not valid"));
        assert_eq!(
            page.headers["content-type"], "text/html; charset=utf-8",
            "a page, not an API error"
        );
    }
    assert_eq!(choose(&app, cut, NEW_PASSWORD).await.status, 404);
}

#[tokio::test]
async fn a_policy_failure_is_shown_next_to_the_field_and_the_link_stays_usable() {
    let (app, link, _smtp) = with_set_link!("lena.hoffmann");
    let cases: &[(&str, &str, &str)] = &[
        ("short", "short", "Use at least 8 characters"),
        ("Password1", "Password1", "commonly used or leaked"),
        (
            "lena.hoffmann",
            "lena.hoffmann",
            "Don't use your email address",
        ),
        ("Acme Pay", "Acme Pay", "Don't use your email address"),
        (
            "a good passphrase",
            "a good passfrase",
            "The two passwords are not the same",
        ),
        ("", "", "Please type your new password"),
    ];
    for (password, confirm, message) in cases {
        let page = submit(&app, &link, &[("password", password), ("confirm", confirm)]).await;
        assert_eq!(page.status, 422, "{password}");
        let field = if password == confirm {
            "password"
        } else {
            "confirm"
        };
        assert_eq!(
            error_at(&page, field)
                .as_deref()
                .map(|e| e.contains(message)),
            Some(true),
            "{message} at {field} in {}",
            page.body
        );
        assert!(page.says(&format!(r#"aria-describedby="{field}-error""#)) || field == "password");
        // The typed password is never sent back into the page.
        assert!(password.is_empty() || !page.says(&format!("value=\"{password}\"")));
    }
    let long = "x".repeat(MAX_PASSWORD_BYTES + 1);
    let page = choose(&app, &link, &long).await;
    assert!(page.says("at most 256 characters"));
    // 64 characters and more are fine; the link was not used by any refusal.
    let sixty_four = "the quick brown fox jumps over the lazy dog and keeps on running!";
    assert_eq!(sixty_four.chars().count(), 65);
    assert_eq!(choose(&app, &link, sixty_four).await.status, 200);
}

/// The error message shown next to `field`, if any.
pub fn error_at(page: &Page, field: &str) -> Option<String> {
    let start = format!(r#"<p class="error" id="{field}-error">"#);
    let (_, rest) = page.body.split_once(&start)?;
    Some(rest.split_once("</p>")?.0.to_owned())
}

#[tokio::test]
async fn the_minimum_length_is_the_operators() {
    let mut smtp = smtp_sink!();
    let app = link_builder(&smtp)
        .env("OTPD_PASSWORD_MIN_LENGTH", "15")
        .spawn()
        .await;
    mailable(&app, "max").put("/user/password").send().await;
    let link = mailed_link(&mut smtp).await;
    assert!(open(&app, &link).await.says("Use at least 15 characters"));
    let page = choose(&app, &link, "fourteen chars").await;
    assert!(page.says("Use at least 15 characters. Spaces count"));
    assert_eq!(choose(&app, &link, "fifteen chars!!").await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_parallel_posts_of_one_link_set_exactly_one_password() {
    let (app, link, _smtp) = with_set_link!("duo");
    // Four: within the hashing pool's slots and queue on two cores, so none is shed with a 503.
    let passwords: Vec<String> = (0..4).map(|i| format!("parallel passphrase {i}")).collect();
    let pages = join_all(passwords.iter().map(|p| choose(&app, &link, p))).await;
    let ok: Vec<usize> = (0..pages.len())
        .filter(|i| pages[*i].status == 200)
        .collect();
    assert_eq!(
        ok.len(),
        1,
        "{:?}",
        pages.iter().map(|p| p.status).collect::<Vec<_>>()
    );
    let statuses: Vec<u16> = pages.iter().map(|p| p.status).collect();
    assert!(
        statuses.iter().all(|s| *s == 200 || *s == 410),
        "{statuses:?}"
    );
    let set = app.audit_events("duo").await;
    assert_eq!(set.iter().filter(|e| *e == "password.set").count(), 1);
    let winner = &passwords[ok[0]];
    let duo = app.as_user("duo");
    assert_eq!(duo.create_otp_with_password(winner).await.status(), 201);
}

#[tokio::test]
async fn every_page_carries_the_security_headers() {
    let (app, link, _smtp) = with_set_link!("hedy");
    let form = open(&app, &link).await;
    let gone = open(&app, &format!("{PUBLIC}/password/set?token=x")).await;
    let refused = choose(&app, &link, "short").await;
    for page in [&form, &gone, &refused] {
        let h = &page.headers;
        let csp = h["content-security-policy"].to_str().unwrap();
        assert!(csp.contains("frame-ancestors 'none'") && csp.contains("script-src 'self'"));
        assert!(!csp.contains("unsafe-inline"));
        assert_eq!(h["referrer-policy"], "no-referrer");
        assert_eq!(h["cache-control"], "no-store");
        assert_eq!(h["x-content-type-options"], "nosniff");
        assert_eq!(h["x-frame-options"], "DENY");
        assert!(h.contains_key("request-id"));
        // No inline script or style: the page loads only its own files.
        assert!(!page.body.contains("<script>") && !page.body.contains("style="));
    }
    assert!(form.says(r#"<script src="assets/otpd.js" defer></script>"#));
    for (asset, kind) in [("otpd.css", "text/css"), ("otpd.js", "text/javascript")] {
        let res = app.get_root(&format!("/password/assets/{asset}")).await;
        assert_eq!(res.status(), 200);
        assert!(
            res.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with(kind)
        );
        assert!(res.headers().contains_key("content-security-policy"));
    }
}

#[tokio::test]
async fn a_form_posted_from_another_site_is_refused() {
    let (app, link, _smtp) = with_set_link!("cleo");
    let fields = [("password", NEW_PASSWORD), ("confirm", NEW_PASSWORD)];
    let page = submit_from(&app, &link, &fields, Some("https://evil.example")).await;
    assert_eq!(page.status, 403);
    assert!(page.says("sent from another website"));
    let cross_site = app
        .http
        .post(app.root_url("/password/set"))
        .header("origin", "null")
        .header("sec-fetch-site", "cross-site")
        .form(&[("token", token_of(&link).as_str()), fields[0], fields[1]])
        .send()
        .await
        .unwrap();
    assert_eq!(cross_site.status(), 403);
    // A browser too old for Sec-Fetch-Site: its Origin decides.
    let old_browser = app
        .http
        .post(app.root_url("/password/set"))
        .header("origin", "https://evil.example")
        .form(&[("token", token_of(&link).as_str()), fields[0], fields[1]])
        .send()
        .await
        .unwrap();
    assert_eq!(old_browser.status(), 403);
    assert_eq!(
        app.as_user("cleo").check("/user/password").await.status(),
        404
    );
    // The link still works from our own page.
    assert_eq!(submit(&app, &link, &fields).await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_long_poll_ends_when_the_page_sets_the_password() {
    let (app, link, _smtp) = with_set_link!("polly");
    let polly = app.as_user("polly");
    let started = tokio::time::Instant::now();
    let poll = polly.get("/user/password?timeout=30").send();
    let set = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        choose(&app, &link, NEW_PASSWORD).await
    };
    let (res, page) = tokio::join!(poll, set);
    assert_eq!(page.status, 200);
    assert_eq!(res.status(), 200);
    // Not a timing assertion on the service: a poll that waited out its 30 s would be a bug.
    assert!(started.elapsed() < Duration::from_secs(25));
}

#[tokio::test]
async fn the_token_never_appears_in_logs_or_metrics() {
    let (app, link, _smtp) = with_set_link!("tara");
    let token = token_of(&link);
    open(&app, &link).await;
    choose(&app, &link, "short").await;
    choose(&app, &link, NEW_PASSWORD).await;
    open(&app, &link).await;
    let logs = captured_logs();
    assert!(
        logs.contains("/password/set"),
        "the page's requests are logged"
    );
    assert!(!logs.contains(&token), "the link token is in the logs");
    assert!(!logs.contains(NEW_PASSWORD));
    let metrics = app.metrics_text().await;
    assert!(metrics.contains("route=\"/password/set\""));
    assert!(!metrics.contains(&token));
}

#[tokio::test]
async fn a_normalized_password_matches_every_way_of_typing_it() {
    let (app, link, _smtp) = with_set_link!("nina");
    // Full-width letters and a ligature: stored as their NFKC form.
    assert_eq!(
        choose(&app, &link, "ｆｕｌｌ width ﬁsh tank").await.status,
        200
    );
    let nina = app.as_user("nina");
    assert_eq!(
        nina.create_otp_with_password("full width fish tank")
            .await
            .status(),
        201
    );
    assert_eq!(
        nina.create_otp_with_password("ｆｕｌｌ width ﬁsh tank")
            .await
            .status(),
        201
    );
}

#[tokio::test]
async fn a_hash_made_from_unnormalized_input_still_verifies() {
    let app = TestApp::spawn().await;
    // A hash stored before normalization existed (or imported from a system that hashed the raw
    // input): only the raw form matches it.
    let raw = "ﬁne print and more";
    let services = app.services().await;
    let phc = services.hasher.hash(raw).await.unwrap();
    let sub = Subject::parse("old").unwrap();
    services
        .store
        .set_credential(&sub, otpd::domain::Factor::Password, &phc, 0)
        .await
        .unwrap();
    let old = app.as_user("old");
    assert_eq!(old.create_otp_with_password(raw).await.status(), 201);
    // One wrong check, counted once, for both forms tried.
    assert_error(
        old.create_otp_with_password("ﬁne print and less").await,
        422,
        "invalid-credentials",
    )
    .await;
    let refusals = app.audit_events("old").await;
    assert_eq!(
        refusals.iter().filter(|e| *e == "password.refused").count(),
        1
    );
}
