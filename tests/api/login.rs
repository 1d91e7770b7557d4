//! Logins in both dialects, tokens across dialects, the 401 cases and the lockout.

use std::time::Duration;

use base64::Engine;
use hyper::Method;
use profiled::store::{NewAccount, StoreError};
use serde_json::json;

use crate::helpers::*;

#[tokio::test]
async fn appgate_login_answers_token_expiry_and_privileges() {
    let s = TestServer::start().await;
    let r = s.appgate_login_response(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    assert_eq!(r.status, 200);
    let body = r.json();
    let token = body["token"].as_str().unwrap();
    let raw = base64::engine::general_purpose::STANDARD
        .decode(token)
        .expect("standard base64");
    assert_eq!(raw.len(), 32);
    let expires = body["expires"].as_str().unwrap();
    let parsed =
        time::OffsetDateTime::parse(expires, &time::format_description::well_known::Rfc3339)
            .unwrap();
    let minutes = (parsed - time::OffsetDateTime::now_utc()).whole_minutes();
    assert!((715..=720).contains(&minutes), "{expires}");
    // Microseconds and Z, as Appgate writes them.
    assert_eq!(
        expires.len(),
        "2022-05-20T13:35:31.836392Z".len(),
        "{expires}"
    );
    assert!(expires.ends_with('Z'));
    assert_eq!(body["messageOfTheDay"], "");
    assert_eq!(
        body["user"],
        json!({
            "name": ADMIN_EMAIL,
            "needTwoFactorAuth": false,
            "canAccessAuditLogs": false,
            "privileges": [{"type": "All", "target": "All", "scope": {"all": true}}],
        })
    );
}

#[tokio::test]
async fn a_non_admin_role_reports_its_own_privileges() {
    let s = TestServer::start().await;
    let hash = profiled::auth::password::hash_blocking("viewer-password-123");
    s.app
        .store
        .create_account(NewAccount {
            first_name: "V".into(),
            last_name: "Iewer".into(),
            email: "viewer@example.com".into(),
            active: true,
            roles: vec!["clientProfileExporterRole".into()],
            created_by: None,
            password_hash: Some(hash),
        })
        .await
        .unwrap();
    let r = s
        .appgate_login_response("Viewer@Example.com", "viewer-password-123")
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.json()["user"]["privileges"],
        json!([
            {"type": "Export", "target": "ClientProfile", "scope": {"all": true}},
            {"type": "View", "target": "ClientProfile", "scope": {"all": true}},
        ])
    );
}

#[tokio::test]
async fn bad_credentials_look_the_same_whether_or_not_the_account_exists() {
    let s = TestServer::start().await;
    let expected = json!({"id": "unauthorized", "message": "Invalid username or password.", "failureType": "Login"});
    let r = s
        .appgate_login_response(ADMIN_EMAIL, "wrong-password-1")
        .await;
    assert_eq!(r.status, 401);
    assert_eq!(r.json(), expected);
    let r = s
        .appgate_login_response("nobody@example.com", "wrong-password-1")
        .await;
    assert_eq!(r.status, 401);
    assert_eq!(r.json(), expected);

    let r = s.occ_login_response(ADMIN_EMAIL, "wrong-password-1").await;
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["errorCode"], "401");
    assert_eq!(r.json()["status"], "401");
}

#[tokio::test]
async fn appgate_login_validates_its_body() {
    let s = TestServer::start().await;
    let r = s
        .appgate(
            Method::POST,
            "/admin/login",
            None,
            Some(json!({"username": ADMIN_EMAIL, "password": ADMIN_PASSWORD})),
        )
        .await;
    assert_eq!(r.status, 422);
    let body = r.json();
    assert_eq!(body["id"], "unprocessable entity");
    assert_eq!(body["message"], "Validation failed.");
    let fields: Vec<_> = body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(fields, ["providerName", "deviceId"]);

    let r = s
        .appgate(
            Method::POST,
            "/admin/login",
            None,
            Some(json!({"providerName": "ldap", "deviceId": "not-a-uuid", "username": ADMIN_EMAIL, "password": 5})),
        )
        .await;
    assert_eq!(r.status, 422);
    let fields: Vec<_> = r.json()["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(fields, ["password", "deviceId", "providerName"]);
}

#[tokio::test]
async fn occ_login_answers_an_oauth_token_and_checks_the_grant() {
    let s = TestServer::start().await;
    let r = s.occ_login_response(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    assert_eq!(r.status, 200);
    let body = r.json();
    assert_eq!(body["token_type"], "bearer");
    assert_eq!(body["expires_in"], 720 * 60);
    assert!(body["access_token"].is_string());

    let r = s
        .request(
            Method::POST,
            "/ccadmin/v1/login",
            &[("content-type", "application/x-www-form-urlencoded")],
            format!(
                "grant_type=authorization_code&username={ADMIN_EMAIL}&password={ADMIN_PASSWORD}"
            ),
        )
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["status"], "400");
}

#[tokio::test]
async fn a_token_from_either_login_works_in_both_dialects() {
    let s = TestServer::start().await;
    let appgate_token = s.admin_token().await;
    let r = s
        .occ(
            Method::POST,
            "/ccadmin/v1/verify",
            Some(&appgate_token),
            None,
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json(), json!({"success": true}));

    let occ_token = s.occ_login(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let r = s
        .appgate(
            Method::POST,
            "/admin/authentication/logout",
            Some(&occ_token),
            None,
        )
        .await;
    assert_eq!(r.status, 204);
    assert!(r.body.is_empty());
    // Logged out through Appgate: dead in Oracle's dialect too, at once.
    let r = s
        .occ(Method::POST, "/ccadmin/v1/verify", Some(&occ_token), None)
        .await;
    assert_eq!(r.status, 401);
    // The other session is untouched.
    let r = s
        .occ(
            Method::POST,
            "/ccadmin/v1/verify",
            Some(&appgate_token),
            None,
        )
        .await;
    assert_eq!(r.status, 200);
}

#[tokio::test]
async fn refresh_issues_a_new_token_and_revokes_the_old_one() {
    let s = TestServer::start().await;
    let old = s.occ_login(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let r = s
        .occ(Method::POST, "/ccadmin/v1/refresh", Some(&old), None)
        .await;
    assert_eq!(r.status, 200);
    let new = r.json()["access_token"].as_str().unwrap().to_string();
    assert_ne!(new, old);
    assert_eq!(
        s.occ(Method::POST, "/ccadmin/v1/verify", Some(&old), None)
            .await
            .status,
        401
    );
    assert_eq!(
        s.occ(Method::POST, "/ccadmin/v1/verify", Some(&new), None)
            .await
            .status,
        200
    );

    let r = s
        .occ(Method::POST, "/ccadmin/v1/logout", Some(&new), None)
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json(), json!({"result": true}));
    assert_eq!(
        s.occ(Method::POST, "/ccadmin/v1/verify", Some(&new), None)
            .await
            .status,
        401
    );
}

#[tokio::test]
async fn missing_malformed_unknown_and_revoked_tokens_are_401() {
    let s = TestServer::start().await;
    let unknown = base64::engine::general_purpose::STANDARD.encode([7u8; 32]);
    let cases = [
        None,
        Some("Bearer".to_string()),
        Some("Bearer not-base64!".to_string()),
        Some(format!(
            "Bearer {}",
            base64::engine::general_purpose::STANDARD.encode([1u8; 16])
        )),
        Some(format!("Basic {unknown}")),
        Some(format!("Bearer {unknown}")),
    ];
    for auth in cases {
        let headers: Vec<(&str, &str)> =
            auth.iter().map(|a| ("authorization", a.as_str())).collect();
        let r = s
            .request(Method::POST, "/ccadmin/v1/verify", &headers, "")
            .await;
        assert_eq!(r.status, 401, "{auth:?}");
        assert_eq!(r.json()["errorCode"], "401");
        let mut h = headers.clone();
        h.push(("accept", ACCEPT_V23));
        let r = s
            .request(Method::POST, "/admin/authentication/logout", &h, "")
            .await;
        assert_eq!(r.status, 401, "{auth:?}");
        assert_eq!(
            r.json(),
            json!({"id": "unauthorized", "message": "Token error. Login again."})
        );
    }
}

#[tokio::test]
async fn an_expired_token_is_401() {
    let s = TestServer::start().await;
    let mut settings = s.app.store.settings().unwrap();
    // The setting is in minutes and may be fractional: 0.02 min = 1.2 s.
    settings.administration_token_expiration = serde_json::Number::from_f64(0.02).unwrap();
    s.app.store.put_settings(settings).await.unwrap();
    let token = s.admin_token().await;
    assert_eq!(
        s.occ(Method::POST, "/ccadmin/v1/verify", Some(&token), None)
            .await
            .status,
        200
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        s.occ(Method::POST, "/ccadmin/v1/verify", Some(&token), None)
            .await
            .status,
        401
    );
    // Purging removes it from the store. On etcd its lease does, and purging has nothing
    // to do (etcd_cluster::sessions_end_with_their_etcd_lease).
    let now = profiled::clock::millis(profiled::clock::now());
    let purged = s.app.store.purge_expired_sessions(now).unwrap();
    if s.app.store.shared() {
        assert_eq!(purged, 0);
    } else {
        assert!(purged >= 1);
    }
}

#[tokio::test]
async fn a_deactivated_account_is_refused_at_once_in_both_dialects() {
    let s = TestServer::start().await;
    let token = s.admin_token().await;
    let admin = s.app.store.account_by_email(ADMIN_EMAIL).unwrap().unwrap();
    // Another administrator, so that this one may be deactivated.
    s.app
        .store
        .create_account(NewAccount {
            first_name: "Second".into(),
            last_name: "Admin".into(),
            email: "second@example.com".into(),
            active: true,
            roles: vec!["adminRole".into()],
            created_by: None,
            password_hash: None,
        })
        .await
        .unwrap();
    s.app
        .store
        .update_account(&admin.id, |a| {
            a.active = false;
            Ok::<(), StoreError>(())
        })
        .await
        .unwrap();
    assert_eq!(
        s.occ(Method::POST, "/ccadmin/v1/verify", Some(&token), None)
            .await
            .status,
        401
    );
    let r = s
        .appgate(
            Method::POST,
            "/admin/authentication/logout",
            Some(&token),
            None,
        )
        .await;
    assert_eq!(r.status, 401);
    // And it cannot log in again, with the same answer as a wrong password.
    let r = s.appgate_login_response(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["message"], "Invalid username or password.");
}

#[tokio::test]
async fn five_failures_lock_the_account_until_the_lock_expires() {
    let s = TestServer::start_with(|c| c.lockout = Duration::from_secs(2)).await;
    for _ in 0..5 {
        let r = s
            .appgate_login_response(ADMIN_EMAIL, "wrong-password-1")
            .await;
        assert_eq!(r.status, 401);
    }
    // Locked: even the right password is refused, in both dialects.
    let r = s.appgate_login_response(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    assert_eq!(r.status, 429);
    assert_eq!(r.json()["id"], "too many requests");
    let retry: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=2).contains(&retry), "{retry}");
    let r = s
        .occ_login_response(&ADMIN_EMAIL.to_uppercase(), ADMIN_PASSWORD)
        .await;
    assert_eq!(r.status, 429);
    assert_eq!(r.json()["errorCode"], "429");
    assert!(r.header("retry-after").is_some());

    tokio::time::sleep(Duration::from_millis(2100)).await;
    let r = s.appgate_login_response(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    assert_eq!(r.status, 200);
}

#[tokio::test]
async fn unknown_accounts_lock_like_real_ones() {
    let s = TestServer::start_with(|c| c.lockout = Duration::from_secs(30)).await;
    for _ in 0..5 {
        let r = s
            .appgate_login_response("ghost@example.com", "wrong-password-1")
            .await;
        assert_eq!(r.status, 401);
    }
    let r = s
        .appgate_login_response("ghost@example.com", "wrong-password-1")
        .await;
    assert_eq!(r.status, 429);
    // Another account is not affected.
    assert_eq!(
        s.appgate_login_response(ADMIN_EMAIL, ADMIN_PASSWORD)
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn a_success_resets_the_failure_count() {
    let s = TestServer::start().await;
    for _ in 0..4 {
        assert_eq!(
            s.appgate_login_response(ADMIN_EMAIL, "wrong-password-1")
                .await
                .status,
            401
        );
    }
    assert_eq!(
        s.appgate_login_response(ADMIN_EMAIL, ADMIN_PASSWORD)
            .await
            .status,
        200
    );
    for _ in 0..4 {
        assert_eq!(
            s.appgate_login_response(ADMIN_EMAIL, "wrong-password-1")
                .await
                .status,
            401
        );
    }
    assert_eq!(
        s.appgate_login_response(ADMIN_EMAIL, ADMIN_PASSWORD)
            .await
            .status,
        200
    );
}
