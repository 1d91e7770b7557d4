//! Registered applications (`/ccadmin/v1/applicationIds`) and the client_credentials login
//! with their keys, as DCU and occ-tools send it.

use std::time::Duration;

use hyper::Method;
use serde_json::{Value, json};

use crate::helpers::*;

async fn occ_admin(s: &TestServer) -> String {
    s.occ_login(ADMIN_EMAIL, ADMIN_PASSWORD).await
}

/// Registers an application; its id and key.
pub async fn register(s: &TestServer, token: &str, body: Value) -> (String, Option<String>) {
    let r = s
        .occ(
            Method::POST,
            "/ccadmin/v1/applicationIds",
            Some(token),
            Some(body),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.json());
    let b = r.json();
    (
        b["repositoryId"].as_str().unwrap().to_string(),
        b["token"].as_str().map(str::to_string),
    )
}

/// `POST /ccadmin/v1/login` with `grant_type=client_credentials`, as DCU sends it.
pub async fn key_login(s: &TestServer, key: Option<&str>) -> TestResponse {
    let auth = key.map(|k| format!("Bearer {k}"));
    let mut headers = vec![(
        "content-type",
        "application/x-www-form-urlencoded; charset=UTF-8",
    )];
    if let Some(a) = &auth {
        headers.push(("authorization", a.as_str()));
    }
    s.request(
        Method::POST,
        "/ccadmin/v1/login",
        &headers,
        "grant_type=client_credentials",
    )
    .await
}

async fn key_token(s: &TestServer, key: &str) -> String {
    let r = key_login(s, Some(key)).await;
    assert_eq!(r.status, 200, "{:?}", r.json());
    let b = r.json();
    assert_eq!(b["token_type"], "bearer");
    assert!(b["expires_in"].as_i64().unwrap() > 0);
    b["access_token"].as_str().unwrap().to_string()
}

async fn verify(s: &TestServer, token: &str) -> u16 {
    s.occ(Method::POST, "/ccadmin/v1/verify", Some(token), None)
        .await
        .status
}

fn assert_refused(r: &TestResponse) {
    assert_eq!(r.status, 401, "{:?}", String::from_utf8_lossy(&r.body));
    let b = r.json();
    assert_eq!(b["error"], "invalid_client", "{b}");
    assert_eq!(b["errorCode"], "401");
    assert_eq!(b["status"], "401");
}

#[tokio::test]
async fn an_application_key_logs_in_and_acts_as_an_administrator() {
    let s = TestServer::start().await;
    let admin = occ_admin(&s).await;
    let r = s
        .occ(
            Method::POST,
            "/ccadmin/v1/applicationIds",
            Some(&admin),
            Some(json!({"name": "DCU", "type": "application"})),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.json());
    let created = r.json();
    let id = created["repositoryId"].as_str().unwrap().to_string();
    let key = created["token"].as_str().unwrap().to_string();
    assert_eq!(created["id"], id.as_str());
    assert_eq!(created["name"], "DCU");
    assert_eq!(created["type"], "application");
    assert_eq!(created["inUse"], false);
    assert_eq!(created["external"], false);
    assert!(created["expirationTime"].is_null(), "{created}");
    assert!(created["creationTime"].as_str().unwrap().ends_with('Z'));
    assert_eq!(created["createdBy"]["firstName"], "Admin");
    assert_eq!(created["createdBy"]["lastName"], "Administrator");

    // The key is shown once: reads leave it out, and the store keeps only its hash.
    let got = s
        .occ(
            Method::GET,
            &format!("/ccadmin/v1/applicationIds/{id}"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(got.status, 200);
    assert!(got.json().get("token").is_none(), "{:?}", got.json());
    let list = s
        .occ(
            Method::GET,
            "/ccadmin/v1/applicationIds",
            Some(&admin),
            None,
        )
        .await
        .json();
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    assert!(list["items"][0].get("token").is_none());
    let stored = s.app.store.applications().unwrap();
    let record = serde_json::to_string(&stored).unwrap();
    assert!(!record.contains(&key), "the key is stored in clear");

    // occ-tools sends a TOTP code along even with a key (and no charset): it is ignored.
    let r = s
        .request(
            Method::POST,
            "/ccadmin/v1/login",
            &[
                ("content-type", "application/x-www-form-urlencoded"),
                ("authorization", &format!("Bearer {key}")),
            ],
            "grant_type=client_credentials&totp_code=123456",
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.json());
    assert!(r.json().get("error").is_none());

    // The key buys an access token that acts with administrative rights.
    let token = key_token(&s, &key).await;
    assert_eq!(verify(&s, &token).await, 200);
    let r = s
        .occ(
            Method::POST,
            "/ccadmin/v1/adminProfiles",
            Some(&token),
            Some(
                json!({"firstName": "Ann", "lastName": "Bot", "email": "ann@example.com",
                        "roles": ["adminRole"]}),
            ),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.json());
    let r = s
        .occ(
            Method::GET,
            "/ccadmin/v1/applicationIds",
            Some(&token),
            None,
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["items"][0]["inUse"], true);
    // It has no profile of its own.
    let r = s
        .occ(
            Method::GET,
            "/ccadmin/v1/adminProfiles/current",
            Some(&token),
            None,
        )
        .await;
    assert_eq!(r.status, 403);
    // The key itself is no access token.
    assert_eq!(verify(&s, &key).await, 401);

    // occ-tools refreshes every minute: the application's token refreshes too.
    let r = s
        .occ(Method::POST, "/ccadmin/v1/refresh", Some(&token), None)
        .await;
    assert_eq!(r.status, 200, "{:?}", r.json());
    let refreshed = r.json()["access_token"].as_str().unwrap().to_string();
    assert_eq!(verify(&s, &refreshed).await, 200);
    assert_eq!(verify(&s, &token).await, 401);
}

#[tokio::test]
async fn a_failed_key_login_is_401_with_an_error_member() {
    let s = TestServer::start().await;
    assert_refused(&key_login(&s, None).await);
    assert_refused(&key_login(&s, Some("not-a-key")).await);
    // Well-formed, but no application has it.
    assert_refused(&key_login(&s, Some("QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo3ODkwMTI=")).await);
    // An account's access token is no application key.
    let admin = occ_admin(&s).await;
    assert_refused(&key_login(&s, Some(&admin)).await);
    // Nothing secret in the answer.
    let r = key_login(&s, Some("QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo3ODkwMTI=")).await;
    assert!(!String::from_utf8_lossy(&r.body).contains("QUJDREVG"));
}

#[tokio::test]
async fn failed_key_logins_count_against_the_client_address() {
    let s = TestServer::start_with(|c| {
        c.login_limit_loopback = true;
        c.login_address_burst = 3;
        c.login_address_interval = Duration::from_secs(60);
    })
    .await;
    let admin = occ_admin(&s).await;
    let (_, key) = register(&s, &admin, json!({"name": "k", "type": "application"})).await;
    for _ in 0..3 {
        assert_refused(&key_login(&s, Some("QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo3ODkwMTI=")).await);
    }
    // The budget is spent: even the right key waits now.
    let r = key_login(&s, Some(key.as_deref().unwrap())).await;
    assert_eq!(r.status, 429, "{:?}", r.json());
    assert!(r.header("retry-after").is_some());
    assert!(r.json()["error"].as_str().is_some());
}

#[tokio::test]
async fn a_new_key_ends_the_old_key_and_every_token_issued_with_it() {
    let s = TestServer::start().await;
    let admin = occ_admin(&s).await;
    let (id, key) = register(
        &s,
        &admin,
        json!({"name": "occ-tools", "type": "application"}),
    )
    .await;
    let old_key = key.unwrap();
    let old_token = key_token(&s, &old_key).await;
    let r = s
        .occ(
            Method::POST,
            &format!("/ccadmin/v1/applicationIds/{id}"),
            Some(&admin),
            Some(json!({"op": "genAuthToken", "type": "application", "lifetimeDays": 30})),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.json());
    let b = r.json();
    assert_eq!(b.as_object().unwrap().len(), 1, "{b}");
    let new_key = b["token"].as_str().unwrap().to_string();
    assert_ne!(new_key, old_key);
    assert_refused(&key_login(&s, Some(&old_key)).await);
    assert_eq!(verify(&s, &old_token).await, 401);
    let new_token = key_token(&s, &new_key).await;
    assert_eq!(verify(&s, &new_token).await, 200);
    // The new lifetime shows as the expiry, in seconds.
    let got = s
        .occ(
            Method::GET,
            &format!("/ccadmin/v1/applicationIds/{id}"),
            Some(&admin),
            None,
        )
        .await
        .json();
    let expires = got["expirationTime"].as_i64().unwrap();
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    assert!((expires - now - 30 * 86400).abs() < 60, "{got}");
    assert_eq!(got["lifetimeDays"], 30);

    // A bad operation changes nothing.
    let r = s
        .occ(
            Method::POST,
            &format!("/ccadmin/v1/applicationIds/{id}"),
            Some(&admin),
            Some(json!({"op": "somethingElse"})),
        )
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["errorCode"], "22007");
    assert_eq!(verify(&s, &new_token).await, 200);
}

#[tokio::test]
async fn deleting_an_application_ends_its_key_and_tokens() {
    let s = TestServer::start().await;
    let admin = occ_admin(&s).await;
    let (id, key) = register(&s, &admin, json!({"name": "gone", "type": "application"})).await;
    let key = key.unwrap();
    let token = key_token(&s, &key).await;
    let path = format!("/ccadmin/v1/applicationIds/{id}");
    let r = s.occ(Method::DELETE, &path, Some(&admin), None).await;
    assert_eq!(r.status, 204);
    assert_eq!(verify(&s, &token).await, 401);
    assert_refused(&key_login(&s, Some(&key)).await);
    assert_eq!(
        s.occ(Method::GET, &path, Some(&admin), None).await.status,
        404
    );
    assert_eq!(
        s.occ(Method::DELETE, &path, Some(&admin), None)
            .await
            .status,
        404
    );
}

#[tokio::test]
async fn lifetimes_follow_oracle_and_an_expired_key_stops_its_tokens() {
    let s = TestServer::start().await;
    let admin = occ_admin(&s).await;
    // 0: the key cannot log in.
    let (_, key) = register(
        &s,
        &admin,
        json!({"name": "zero", "type": "application", "lifetimeDays": 0}),
    )
    .await;
    assert_refused(&key_login(&s, key.as_deref()).await);
    // Above 365 is lowered to 365.
    let r = s
        .occ(
            Method::POST,
            "/ccadmin/v1/applicationIds",
            Some(&admin),
            Some(json!({"name": "long", "type": "application", "lifetimeDays": 1000})),
        )
        .await
        .json();
    assert_eq!(r["lifetimeDays"], 365);
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    assert!((r["expirationTime"].as_i64().unwrap() - now - 365 * 86400).abs() < 60);

    // A key that expires while its token is in use: the token stops with it.
    let (id, key) = register(&s, &admin, json!({"name": "short", "type": "application"})).await;
    let token = key_token(&s, key.as_deref().unwrap()).await;
    let soon = time::OffsetDateTime::now_utc().unix_timestamp() * 1000 + 1000;
    s.app
        .store
        .update_application(&id, |a| {
            a.expires = Some(soon);
            Ok::<(), profiled::store::StoreError>(())
        })
        .await
        .unwrap();
    assert_eq!(verify(&s, &token).await, 200);
    tokio::time::sleep(Duration::from_millis(1300)).await;
    assert_eq!(verify(&s, &token).await, 401);
    assert_refused(&key_login(&s, key.as_deref()).await);
}

#[tokio::test]
async fn roles_narrow_what_an_application_token_may_do() {
    let s = TestServer::start().await;
    let admin = occ_admin(&s).await;
    let (id, key) = register(
        &s,
        &admin,
        json!({"name": "viewer", "type": "application", "roles": ["clientProfileViewerRole"]}),
    )
    .await;
    let token = key_token(&s, key.as_deref().unwrap()).await;
    let r = s
        .occ(Method::GET, "/ccadmin/v1/adminProfiles", Some(&token), None)
        .await;
    assert_eq!(r.status, 403);
    let r = s
        .appgate(Method::GET, "/admin/client-profiles", Some(&token), None)
        .await;
    assert_eq!(r.status, 200, "{:?}", r.json());
    // Widening applies at once, to the token already held.
    let r = s
        .occ(
            Method::PUT,
            &format!("/ccadmin/v1/applicationIds/{id}"),
            Some(&admin),
            Some(json!({"name": "renamed", "roles": [{"repositoryId": "adminRole"}]})),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.json());
    assert_eq!(r.json()["name"], "renamed");
    let r = s
        .occ(Method::GET, "/ccadmin/v1/adminProfiles", Some(&token), None)
        .await;
    assert_eq!(r.status, 200);
}

#[tokio::test]
async fn extensions_have_no_key_and_bad_input_gets_oracle_errors() {
    let s = TestServer::start().await;
    let admin = occ_admin(&s).await;
    let (id, key) = register(&s, &admin, json!({"name": "ext", "type": "extension"})).await;
    assert!(key.is_none());
    let r = s
        .occ(
            Method::POST,
            &format!("/ccadmin/v1/applicationIds/{id}"),
            Some(&admin),
            Some(json!({"op": "genAuthToken", "type": "application"})),
        )
        .await;
    assert_eq!(r.status, 400);
    for (body, field) in [
        (json!({"type": "application"}), "name"),
        (json!({"name": "x", "type": "robot"}), "type"),
        (
            json!({"name": "x", "type": "application", "lifetimeDays": -5}),
            "lifetimeDays",
        ),
        (
            json!({"name": "x", "type": "application", "lifetimeDays": "7"}),
            "lifetimeDays",
        ),
        (
            json!({"name": "x", "type": "application", "roles": ["nope"]}),
            "roles.0",
        ),
    ] {
        let r = s
            .occ(
                Method::POST,
                "/ccadmin/v1/applicationIds",
                Some(&admin),
                Some(body.clone()),
            )
            .await;
        assert_eq!(r.status, 400, "{body}");
        let b = r.json();
        assert_eq!(b["o:errorPath"], field, "{b}");
    }
    // `type` filters the list.
    register(&s, &admin, json!({"name": "app", "type": "application"})).await;
    let list = s
        .occ(
            Method::GET,
            "/ccadmin/v1/applicationIds?type=extension",
            Some(&admin),
            None,
        )
        .await
        .json();
    let items = list["items"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["type"], "extension");
    let r = s
        .occ(
            Method::GET,
            "/ccadmin/v1/applicationIds/nope",
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(r.status, 404);
}

#[tokio::test]
async fn dcu_and_occ_tools_log_in_with_a_key_on_each_path_they_use() {
    let s = TestServer::start().await;
    let admin = occ_admin(&s).await;
    let (_, key) = register(&s, &admin, json!({"name": "DCU", "type": "application"})).await;
    let key = key.unwrap();
    let auth = format!("Bearer {key}");
    for path in [
        "/ccadmin/v1/login/",
        "/ccadminui/v1/login",
        "/ccadminui/v1/login/",
    ] {
        let r = s
            .request(
                Method::POST,
                path,
                &[
                    (
                        "content-type",
                        "application/x-www-form-urlencoded; charset=UTF-8",
                    ),
                    ("authorization", &auth),
                ],
                "grant_type=client_credentials",
            )
            .await;
        assert_eq!(r.status, 200, "{path}: {:?}", r.json());
        assert!(r.header("set-cookie").is_some(), "{path}");
        let token = r.json()["access_token"].as_str().unwrap().to_string();
        let r = s
            .occ(
                Method::GET,
                "/ccadminui/v1/adminProfiles",
                Some(&token),
                None,
            )
            .await;
        assert_eq!(r.status, 200, "{path}");
    }
}
