//! Creating, reading and updating profiles; `/current`; privileges; deactivation.

use hyper::Method;
use serde_json::{Value, json};

use super::*;
use crate::helpers::*;

fn is_occ_date(v: &Value) -> bool {
    // 2026-11-22T10:00:00.000Z
    v.as_str().is_some_and(|s| {
        s.len() == 24 && s.ends_with('Z') && s.as_bytes()[10] == b'T' && s.as_bytes()[19] == b'.'
    })
}

#[tokio::test]
async fn create_answers_only_the_id_and_the_profile_reads_back() {
    let s = TestServer::start().await;
    let (token, admin_id) = admin(&s).await;
    let r = create(
        &s,
        &token,
        json!({"firstName": "Amber", "lastName": "Admin", "email": "Amber@Example.com",
               "roles": ["clientProfileViewerRole"], "ignored": {"x": 1}}),
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("content-type"),
        Some("application/json; charset=UTF-8")
    );
    let body = r.json();
    assert_eq!(body.as_object().unwrap().len(), 1, "{body}");
    let id = body["id"].as_str().unwrap().to_string();
    assert!(
        id.starts_with("iuser") && id[5..].parse::<u64>().is_ok(),
        "{id}"
    );

    // The slash form, roles as objects; ids only grow.
    let r = s
        .occ(
            Method::POST,
            &format!("{BASE}/"),
            Some(&token),
            Some(
                json!({"firstName": "B", "lastName": "C", "email": "b@example.com",
                        "active": false, "roles": [{"repositoryId": "adminRole"}]}),
            ),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.json());
    let second = r.json()["id"].as_str().unwrap().to_string();
    assert!(second[5..].parse::<u64>().unwrap() > id[5..].parse::<u64>().unwrap());

    let p = get(&s, &token, &id).await;
    assert_eq!(p.status, 200);
    let p = p.json();
    let keys: Vec<&str> = p.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            "id",
            "repositoryId",
            "firstName",
            "lastName",
            "email",
            "active",
            "roles",
            "registrationDate",
            "rolesLastModified",
            "lastLogin",
            "createdBy",
            "external",
            "tourComplete"
        ]
    );
    assert_eq!(p["id"], json!(id));
    assert_eq!(p["repositoryId"], json!(id));
    assert_eq!(p["firstName"], "Amber");
    assert_eq!(p["email"], "Amber@Example.com", "kept as given");
    assert_eq!(p["active"], true);
    assert_eq!(
        p["roles"],
        json!([{"repositoryId": "clientProfileViewerRole"}])
    );
    assert!(is_occ_date(&p["registrationDate"]), "{p}");
    assert_eq!(p["rolesLastModified"], p["registrationDate"]);
    assert_eq!(p["lastLogin"], Value::Null);
    assert_eq!(p["createdBy"], json!(admin_id));
    assert_eq!(
        (p["external"].clone(), p["tourComplete"].clone()),
        (json!(false), json!(false))
    );

    let p2 = get(&s, &token, &second).await.json();
    assert_eq!(p2["active"], false);
    assert_eq!(p2["roles"], json!([{"repositoryId": "adminRole"}]));

    // fields on a single profile.
    let r = s
        .occ(
            Method::GET,
            &format!("{BASE}/{id}?fields=id,email"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(r.json(), json!({"id": id, "email": "Amber@Example.com"}));
}

#[tokio::test]
async fn update_is_partial_and_tracks_role_changes() {
    let s = TestServer::start().await;
    let (token, _) = admin(&s).await;
    let id = new_profile(
        &s,
        &token,
        "p@example.com",
        &["clientProfileViewerRole"],
        None,
    )
    .await;
    let before = get(&s, &token, &id).await.json();

    let r = put(
        &s,
        &token,
        &id,
        json!({"firstName": "  New  ", "id": "iuser1"}),
    )
    .await;
    assert_eq!(r.status, 200);
    let after = r.json();
    assert_eq!(after["firstName"], "New");
    assert_eq!(after["id"], json!(id), "the body cannot change the id");
    for same in [
        "lastName",
        "email",
        "roles",
        "active",
        "registrationDate",
        "rolesLastModified",
    ] {
        assert_eq!(after[same], before[same], "{same}");
    }
    assert_eq!(
        get(&s, &token, &id).await.json(),
        after,
        "stored as answered"
    );

    // The same role set in another form is no change.
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let r = put(
        &s,
        &token,
        &id,
        json!({"roles": [{"repositoryId": "clientProfileViewerRole"}]}),
    )
    .await;
    assert_eq!(r.json()["rolesLastModified"], before["rolesLastModified"]);
    let r = put(
        &s,
        &token,
        &id,
        json!({"roles": ["clientProfileViewerRole", "catalogRole"]}),
    )
    .await;
    let changed = r.json();
    assert_eq!(
        changed["roles"],
        json!([{"repositoryId": "clientProfileViewerRole"}, {"repositoryId": "catalogRole"}])
    );
    assert!(changed["rolesLastModified"].as_str() > before["rolesLastModified"].as_str());
    let r = put(
        &s,
        &token,
        &id,
        json!({"roles": ["catalogRole", "clientProfileViewerRole"]}),
    )
    .await;
    assert_eq!(r.json()["rolesLastModified"], changed["rolesLastModified"]);
}

#[tokio::test]
async fn privileges_apply_on_the_next_request() {
    let s = TestServer::start().await;
    let (admin_token, admin_id) = admin(&s).await;
    let id = new_profile(
        &s,
        &admin_token,
        "v@example.com",
        &["clientProfileViewerRole"],
        Some(PASSWORD),
    )
    .await;
    let token = s.occ_login("v@example.com", PASSWORD).await;

    // Without the privilege: 403 with errorCode "403" on every admin-profile operation.
    let body = json!({"firstName": "X", "lastName": "Y", "email": "x@y.z", "roles": ["adminRole"]});
    for r in [
        s.occ(Method::GET, BASE, Some(&token), None).await,
        get(&s, &token, &admin_id).await,
        create(&s, &token, body.clone()).await,
        put(&s, &token, &admin_id, json!({"firstName": "Z"})).await,
        put(&s, &token, &id, json!({"roles": ["adminRole"]})).await,
    ] {
        assert_error(&r, 403, "403");
    }
    // Everyone reads and updates their own profile, and reads the role catalogue.
    let me = s
        .occ(Method::GET, &format!("{BASE}/current"), Some(&token), None)
        .await;
    assert_eq!(me.json()["id"], json!(id));
    let r = s
        .occ(
            Method::PUT,
            &format!("{BASE}/current"),
            Some(&token),
            Some(json!({"lastName": "Viewer", "roles": ["adminRole"], "active": true})),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.json());
    assert_eq!(r.json()["lastName"], "Viewer");
    assert_eq!(
        r.json()["roles"],
        json!([{"repositoryId": "clientProfileViewerRole"}]),
        "roles are not self-service"
    );
    let r = s
        .occ(Method::GET, "/ccadmin/v1/adminRoles", Some(&token), None)
        .await;
    assert_eq!(r.status, 200);

    // Promotion and demotion take effect on the very next request with the same token.
    assert_eq!(
        put(&s, &admin_token, &id, json!({"roles": ["adminRole"]}))
            .await
            .status,
        200
    );
    assert_eq!(
        s.occ(Method::GET, BASE, Some(&token), None).await.status,
        200
    );
    assert_eq!(create(&s, &token, body).await.status, 200);
    let made = s
        .occ(
            Method::GET,
            &format!(
                "{BASE}?q={}&queryFormat=SCIM",
                urlencode("email eq \"x@y.z\"")
            ),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(
        made.json()["items"][0]["createdBy"],
        json!(id),
        "createdBy is the caller"
    );
    assert_eq!(
        put(&s, &admin_token, &id, json!({"roles": ["catalogRole"]}))
            .await
            .status,
        200
    );
    assert_error(
        &s.occ(Method::GET, BASE, Some(&token), None).await,
        403,
        "403",
    );

    // Without a token: 401 with errorCode "401".
    for r in [
        s.occ(Method::GET, BASE, None, None).await,
        s.occ(Method::GET, &format!("{BASE}/current"), None, None)
            .await,
        s.occ(
            Method::GET,
            "/ccadmin/v1/adminRoles",
            Some("bm90LWEtdG9rZW4="),
            None,
        )
        .await,
    ] {
        assert_error(&r, 401, "401");
    }
}

#[tokio::test]
async fn deactivation_revokes_tokens_of_both_dialects_at_once() {
    let s = TestServer::start().await;
    let (admin_token, admin_id) = admin(&s).await;
    let id = new_profile(
        &s,
        &admin_token,
        "d@example.com",
        &["clientProfileViewerRole"],
        Some(PASSWORD),
    )
    .await;
    let appgate_token = s.login("d@example.com", PASSWORD).await;
    let occ_token = s.occ_login("D@EXAMPLE.COM", PASSWORD).await;
    for t in [&appgate_token, &occ_token] {
        let r = s
            .occ(Method::POST, "/ccadmin/v1/verify", Some(t), None)
            .await;
        assert_eq!(r.status, 200);
    }
    let p = get(&s, &admin_token, &id).await.json();
    assert!(p["lastLogin"].is_string(), "logins stamp lastLogin: {p}");

    // Deactivating oneself is refused, through either path.
    let r = put(&s, &admin_token, &admin_id, json!({"active": false})).await;
    assert_eq!(assert_error(&r, 400, "23037")["o:errorPath"], "active");
    let r = s
        .occ(
            Method::PUT,
            &format!("{BASE}/current"),
            Some(&occ_token),
            Some(json!({"active": false})),
        )
        .await;
    assert_error(&r, 400, "23037");

    let r = put(&s, &admin_token, &id, json!({"active": false})).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["active"], false);
    for t in [&appgate_token, &occ_token] {
        let r = s
            .occ(Method::POST, "/ccadmin/v1/verify", Some(t), None)
            .await;
        assert_error(&r, 401, "401");
        let r = s
            .appgate(Method::POST, "/admin/authentication/logout", Some(t), None)
            .await;
        assert_eq!(r.status, 401);
    }
    assert_eq!(
        s.occ_login_response("d@example.com", PASSWORD).await.status,
        401
    );
    assert_eq!(
        s.appgate_login_response("d@example.com", PASSWORD)
            .await
            .status,
        401
    );

    // Revoked, not merely refused: reactivation does not bring the old tokens back.
    assert_eq!(
        put(&s, &admin_token, &id, json!({"active": true}))
            .await
            .status,
        200
    );
    for t in [&appgate_token, &occ_token] {
        let r = s
            .occ(Method::GET, &format!("{BASE}/current"), Some(t), None)
            .await;
        assert_eq!(r.status, 401);
    }
    let fresh = s.occ_login("d@example.com", PASSWORD).await;
    let r = s
        .occ(Method::GET, &format!("{BASE}/current"), Some(&fresh), None)
        .await;
    assert_eq!(r.json()["id"], json!(id));

    // Survives a restart.
    let s = s.restart().await;
    let r = s
        .occ(
            Method::GET,
            &format!("{BASE}/current"),
            Some(&occ_token),
            None,
        )
        .await;
    assert_eq!(r.status, 401);
    assert_eq!(get(&s, &admin_token, &id).await.json()["active"], true);
}
