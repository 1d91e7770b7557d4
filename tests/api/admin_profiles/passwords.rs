//! profiled's password extension: set on create, by an administrator, and by the owner.

use hyper::Method;
use serde_json::json;

use super::*;
use crate::helpers::*;

const NEW_PASSWORD: &str = "an-even-longer-new-password";

#[tokio::test]
async fn an_account_created_with_a_password_logs_in_through_both_dialects() {
    let s = TestServer::start().await;
    let (token, _) = admin(&s).await;
    let id = new_profile(
        &s,
        &token,
        "Pat@Example.com",
        &["clientProfileViewerRole"],
        Some(PASSWORD),
    )
    .await;
    let occ = s.occ_login("pat@example.com", PASSWORD).await;
    let appgate = s.login("PAT@example.com", PASSWORD).await;
    // Either token works on the other dialect's routes.
    for t in [&occ, &appgate] {
        let me = s
            .occ(Method::GET, &format!("{BASE}/current"), Some(t), None)
            .await;
        assert_eq!(me.json()["id"], json!(id));
    }
    // The password never comes back, in any answer.
    for r in [
        get(&s, &token, &id).await,
        s.occ(Method::GET, BASE, Some(&token), None).await,
        put(&s, &token, &id, json!({"password": NEW_PASSWORD})).await,
    ] {
        let text = String::from_utf8_lossy(&r.body).to_lowercase();
        assert!(
            !text.contains("password") && !text.contains("argon2"),
            "{text}"
        );
    }
    let r = s.occ_login_response("pat@example.com", PASSWORD).await;
    assert_eq!(r.status, 401, "the administrator replaced the password");
}

#[tokio::test]
async fn without_a_password_an_account_cannot_log_in_until_one_is_set() {
    let s = TestServer::start().await;
    let (token, _) = admin(&s).await;
    let id = new_profile(&s, &token, "np@example.com", &["adminRole"], None).await;
    assert_eq!(s.occ_login_response("np@example.com", "").await.status, 401);
    assert_eq!(
        s.occ_login_response("np@example.com", PASSWORD)
            .await
            .status,
        401
    );
    assert_eq!(
        s.appgate_login_response("np@example.com", PASSWORD)
            .await
            .status,
        401
    );

    let r = put(&s, &token, &id, json!({"password": PASSWORD})).await;
    assert_eq!(r.status, 200);
    let first = s.occ_login("np@example.com", PASSWORD).await;
    let second = s.login("np@example.com", PASSWORD).await;

    // An administrator resetting the password ends the account's sessions.
    let r = put(&s, &token, &id, json!({"password": NEW_PASSWORD})).await;
    assert_eq!(r.status, 200);
    for t in [&first, &second] {
        let r = s
            .occ(Method::POST, "/ccadmin/v1/verify", Some(t), None)
            .await;
        assert_eq!(r.status, 401);
    }
    assert_eq!(
        s.occ_login_response("np@example.com", PASSWORD)
            .await
            .status,
        401
    );
    s.occ_login("np@example.com", NEW_PASSWORD).await;
    // The administrator's own session is untouched.
    assert_eq!(get(&s, &token, &id).await.status, 200);
}

#[tokio::test]
async fn the_owner_changes_their_password_with_the_current_one() {
    let s = TestServer::start().await;
    let (token, _) = admin(&s).await;
    new_profile(
        &s,
        &token,
        "self@example.com",
        &["clientProfileViewerRole"],
        Some(PASSWORD),
    )
    .await;
    let mine = s.occ_login("self@example.com", PASSWORD).await;
    let other = s.login("self@example.com", PASSWORD).await;
    let current = format!("{BASE}/current");
    let change = |body| s.occ(Method::PUT, &current, Some(&mine), Some(body));

    let e = assert_error(
        &change(json!({"password": NEW_PASSWORD})).await,
        400,
        "22005",
    );
    assert_eq!(e["o:errorPath"], "currentPassword");
    let e = assert_error(
        &change(json!({"password": NEW_PASSWORD, "currentPassword": "not-the-password"})).await,
        400,
        "22005",
    );
    assert_eq!(e["o:errorPath"], "currentPassword");
    let e = assert_error(
        &change(json!({"password": "weak", "currentPassword": PASSWORD})).await,
        400,
        "22005",
    );
    assert_eq!(e["o:errorPath"], "password");
    assert_eq!(
        s.occ_login_response("self@example.com", NEW_PASSWORD)
            .await
            .status,
        401
    );

    let r =
        change(json!({"password": NEW_PASSWORD, "currentPassword": PASSWORD, "firstName": "Me"}))
            .await;
    assert_eq!(r.status, 200, "{:?}", r.json());
    assert_eq!(r.json()["firstName"], "Me");
    // The caller's own token goes on working; the account's other sessions end.
    let r = s.occ(Method::GET, &current, Some(&mine), None).await;
    assert_eq!(r.status, 200);
    let r = s.occ(Method::GET, &current, Some(&other), None).await;
    assert_eq!(r.status, 401);
    assert_eq!(
        s.occ_login_response("self@example.com", PASSWORD)
            .await
            .status,
        401
    );
    s.login("self@example.com", NEW_PASSWORD).await;
}

#[tokio::test]
async fn guessing_the_current_password_counts_towards_the_lockout() {
    let s = TestServer::start().await;
    let (token, _) = admin(&s).await;
    new_profile(
        &s,
        &token,
        "guess@example.com",
        &["clientProfileViewerRole"],
        Some(PASSWORD),
    )
    .await;
    let t = s.occ_login("guess@example.com", PASSWORD).await;
    let current = format!("{BASE}/current");
    let guess = json!({"password": NEW_PASSWORD, "currentPassword": "wrong-guess-123"});
    for _ in 0..5 {
        let r = s
            .occ(Method::PUT, &current, Some(&t), Some(guess.clone()))
            .await;
        assert_error(&r, 400, "22005");
    }
    let r = s.occ(Method::PUT, &current, Some(&t), Some(guess)).await;
    assert_error(&r, 429, "429");
    assert!(r.header("retry-after").is_some());
    assert_eq!(
        s.occ_login_response("guess@example.com", PASSWORD)
            .await
            .status,
        429
    );
}
