//! Client profiles: validation (422 items), ids that are no UUIDs, wrong methods, and the
//! privilege each route needs.

use hyper::Method;
use profiled::store::NewAccount;
use serde_json::{Value, json};

use crate::client_profiles::{PROFILES, create, link, profile};
use crate::helpers::*;

const ROLE_PASSWORD: &str = "role-password-0123456789";

/// A server with one extra account per role (e-mail `<role>@test`), and their tokens.
async fn server_with_roles(roles: &[&str]) -> (TestServer, Vec<String>) {
    let s = TestServer::start().await;
    let hash = profiled::auth::password::hash_blocking(ROLE_PASSWORD);
    for role in roles {
        s.app
            .store
            .create_account(NewAccount {
                first_name: "Role".into(),
                last_name: (*role).into(),
                email: format!("{role}@test"),
                active: true,
                roles: vec![(*role).into()],
                created_by: None,
                password_hash: Some(hash.clone()),
            })
            .await
            .unwrap();
    }
    let mut tokens = Vec::new();
    for role in roles {
        tokens.push(s.login(&format!("{role}@test"), ROLE_PASSWORD).await);
    }
    (s, tokens)
}

/// The `field` of each 422 item, after checking the envelope.
pub fn error_fields(r: &TestResponse) -> Vec<String> {
    let body = r.json();
    assert_eq!(r.status, 422, "{body}");
    assert_eq!(body["id"], "unprocessable entity");
    assert_eq!(body["message"], "Validation failed.");
    body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn validation_reports_every_problem() {
    let s = TestServer::start().await;
    let t = s.admin_token().await;
    let post = |body: Value| s.appgate(Method::POST, PROFILES, Some(&t), Some(body));
    assert_eq!(
        error_fields(&post(json!({})).await),
        ["name", "identityProviderName"]
    );
    assert_eq!(
        error_fields(&post(json!({"name": "", "identityProviderName": "local"})).await),
        ["name"]
    );
    assert_eq!(
        error_fields(&post(json!({"name": "x"})).await),
        ["identityProviderName"]
    );
    assert_eq!(
        error_fields(&post(json!({"name": "x", "type": "Folder"})).await),
        ["type"]
    );
    assert_eq!(
        error_fields(&post(json!({"name": 1, "notes": 2, "tags": "a", "identityProviderName": true, "hostname": "a/b"})).await),
        ["name", "notes", "tags", "identityProviderName", "hostname"]
    );
    assert_eq!(
        error_fields(
            &post(json!({"name": "x", "identityProviderName": "l", "tags": ["ok", "", " "]})).await
        ),
        ["tags.1", "tags.2"]
    );
    assert_eq!(
        error_fields(&post(json!({"name": "g", "type": "Group", "profileUrls": [
            {"url": link("h.example.com", "p")}, {"url": "https://h.example.com/x"}, {"url": "appgate://h/not*base64"}, {"id": "nope", "url": link("h", "p")}
        ]})).await),
        ["profileUrls.1.url", "profileUrls.2.url", "profileUrls.3.id"]
    );
    let long = "n".repeat(257);
    assert_eq!(
        error_fields(&post(json!({"name": long, "identityProviderName": "l"})).await),
        ["name"]
    );
    assert_eq!(
        create(
            &s,
            &t,
            json!({"name": "n".repeat(256), "identityProviderName": "l"})
        )
        .await["name"]
            .as_str()
            .unwrap()
            .len(),
        256
    );

    let r = s
        .request(
            Method::POST,
            PROFILES,
            &[
                ("accept", ACCEPT_V23),
                ("authorization", &format!("Bearer {t}")),
                ("content-type", "application/json"),
            ],
            "{nope",
        )
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["id"], "bad request");

    let p = create(&s, &t, profile("Edit me")).await;
    let id = p["id"].as_str().unwrap();
    let r = s
        .appgate(
            Method::PUT,
            &format!("{PROFILES}/{id}"),
            Some(&t),
            Some(
                json!({"id": uuid::Uuid::new_v4(), "name": "Edit me", "identityProviderName": "l"}),
            ),
        )
        .await;
    assert_eq!(error_fields(&r), ["id"]);
    let r = s
        .appgate(
            Method::PUT,
            &format!("{PROFILES}/{id}"),
            Some(&t),
            Some(json!({"id": id, "name": "Edited", "identityProviderName": "l"})),
        )
        .await;
    assert_eq!(r.status, 200, "the same id is fine");
}

#[tokio::test]
async fn ids_that_are_not_uuids_and_wrong_methods() {
    let s = TestServer::start().await;
    let t = s.admin_token().await;
    for path in [
        "/admin/client-profiles/not-a-uuid",
        "/admin/client-profiles/123/url",
        "/admin/client-profiles/x/barcode",
        "/admin/client-profiles/00000000-0000-0000-0000-000000000000",
    ] {
        let r = s.appgate(Method::GET, path, Some(&t), None).await;
        assert_eq!(r.status, 404, "{path}");
        assert_eq!(r.json()["id"], "not found");
    }
    let r = s
        .appgate(
            Method::PUT,
            "/admin/client-profiles/nope",
            Some(&t),
            Some(profile("x")),
        )
        .await;
    assert_eq!(r.status, 404);
    for (method, path, allow) in [
        (Method::DELETE, PROFILES.to_string(), "GET, POST"),
        (
            Method::POST,
            format!("{PROFILES}/{}", uuid::Uuid::nil()),
            "GET, PUT, DELETE",
        ),
        (
            Method::POST,
            format!("{PROFILES}/{}/url", uuid::Uuid::nil()),
            "GET",
        ),
        (
            Method::DELETE,
            format!("{PROFILES}/{}/barcode", uuid::Uuid::nil()),
            "GET",
        ),
        (
            Method::POST,
            "/admin/global-settings".to_string(),
            "GET, PUT, DELETE",
        ),
    ] {
        let r = s.appgate(method, &path, Some(&t), None).await;
        assert_eq!(r.status, 405, "{path}");
        assert_eq!(r.header("allow"), Some(allow));
    }
    let r = s
        .appgate(Method::GET, "/admin/client-profilez", Some(&t), None)
        .await;
    assert_eq!(r.status, 404);
    let r = s.appgate(Method::GET, PROFILES, None, None).await;
    assert_eq!(r.status, 401);
    let r = s
        .request(
            Method::GET,
            PROFILES,
            &[("authorization", &format!("Bearer {t}"))],
            "",
        )
        .await;
    assert_eq!(r.status, 406, "the Accept check covers the new routes");
}

#[tokio::test]
async fn each_route_needs_its_privilege() {
    let roles = [
        "clientProfileViewerRole",
        "clientProfileExporterRole",
        "clientProfileManagerRole",
        "catalogRole",
    ];
    let (s, tokens) = server_with_roles(&roles).await;
    let admin = s.admin_token().await;
    let settings = json!({"claimsTokenExpiration": 1440, "entitlementTokenExpiration": 180, "administrationTokenExpiration": 720, "vpnCertificateExpiration": 525600, "auditLogPersistenceMode": "Default", "profileHostname": "sdp.example.com"});
    let r = s
        .appgate(
            Method::PUT,
            "/admin/global-settings",
            Some(&admin),
            Some(settings.clone()),
        )
        .await;
    assert_eq!(r.status, 204);
    let id = create(&s, &admin, profile("Shared")).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let one = format!("{PROFILES}/{id}");
    // Each request with the role that may make it, in order viewer, exporter, manager, none.
    let cases: Vec<(Method, String, Option<Value>, [bool; 4])> = vec![
        (
            Method::GET,
            PROFILES.into(),
            None,
            [true, true, true, false],
        ),
        (Method::GET, one.clone(), None, [true, true, true, false]),
        (
            Method::GET,
            format!("{one}/url"),
            None,
            [false, true, true, false],
        ),
        (
            Method::GET,
            format!("{one}/barcode"),
            None,
            [false, true, true, false],
        ),
        (
            Method::POST,
            PROFILES.into(),
            Some(profile("New")),
            [false, false, true, false],
        ),
        (
            Method::PUT,
            one.clone(),
            Some(profile("Shared")),
            [false, false, true, false],
        ),
        (
            Method::GET,
            "/admin/global-settings".into(),
            None,
            [false, false, true, false],
        ),
        (
            Method::PUT,
            "/admin/global-settings".into(),
            Some(settings),
            [false, false, false, false],
        ),
        (
            Method::DELETE,
            "/admin/global-settings".into(),
            None,
            [false, false, false, false],
        ),
        (
            Method::DELETE,
            one.clone(),
            None,
            [false, false, true, false],
        ),
    ];
    for (method, path, body, allowed) in cases {
        for (i, token) in tokens.iter().enumerate() {
            let r = s
                .appgate(method.clone(), &path, Some(token), body.clone())
                .await;
            if allowed[i] {
                assert!(r.status < 300, "{} {method} {path}: {}", roles[i], r.status);
            } else {
                assert_eq!(r.status, 403, "{} {method} {path}", roles[i]);
                let body = r.json();
                assert_eq!(body["id"], "forbidden");
                assert_eq!(
                    body["message"],
                    "You don't have permission to access this resource."
                );
            }
        }
    }
}
