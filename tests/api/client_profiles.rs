//! Appgate client profiles: create, read, replace, delete, client-chosen ids, name
//! uniqueness, groups. Also the helpers the other client-profile modules share.

use hyper::Method;
use serde_json::{Value, json};

use crate::client_profile_validation::error_fields;
use crate::helpers::*;

pub const PROFILES: &str = "/admin/client-profiles";

pub fn profile(name: &str) -> Value {
    json!({"name": name, "identityProviderName": "local"})
}

/// A link such as a controller exports, for a profile called `name` on `host`.
pub fn link(host: &str, name: &str) -> String {
    use base64::Engine;
    let payload = json!({"profileName": name, "identityProviderName": "local"});
    format!(
        "appgate://{host}/{}",
        base64::engine::general_purpose::STANDARD.encode(payload.to_string())
    )
}

pub async fn create(s: &TestServer, token: &str, body: Value) -> Value {
    let r = s
        .appgate(Method::POST, PROFILES, Some(token), Some(body))
        .await;
    assert_eq!(r.status, 200, "{:?}", r.json());
    r.json()
}

pub async fn get(s: &TestServer, token: &str, id: &str) -> TestResponse {
    s.appgate(Method::GET, &format!("{PROFILES}/{id}"), Some(token), None)
        .await
}

#[tokio::test]
async fn create_get_replace_delete() {
    let s = TestServer::start().await;
    let t = s.admin_token().await;
    let created = create(&s, &t, json!({"name": "Main Office", "identityProviderName": "local", "tags": ["AWS", "aws", "Dev"], "notes": null, "exported": "2020-01-01T00:00:00.000000Z", "created": "x", "unknown": 1})).await;
    let id = created["id"].as_str().unwrap().to_string();
    assert!(uuid::Uuid::parse_str(&id).is_ok());
    assert_eq!(created["name"], "Main Office");
    assert_eq!(created["notes"], "");
    assert_eq!(created["tags"], json!(["aws", "dev"]));
    assert_eq!(created["type"], "Profile");
    assert_eq!(created["spaKeyName"], "MainOffice");
    assert_eq!(created["globalHostname"], "");
    assert_eq!(created["created"], created["updated"]);
    assert!(
        created.get("exported").is_none(),
        "read-only fields are ignored"
    );
    let created_at = created["created"].as_str().unwrap();
    assert_eq!(created_at.len(), 27, "microseconds and Z: {created_at}");
    assert!(created_at.ends_with('Z'));

    let r = get(&s, &t, &id).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json(), created);

    let r = s
        .appgate(Method::PUT, &format!("{PROFILES}/{id}"), Some(&t), Some(json!({"name": "HQ", "identityProviderName": "ldap", "spaKeyName": "k1", "hostname": "hq.example.com", "notes": "n"})))
        .await;
    assert_eq!(r.status, 200, "{:?}", r.json());
    let put = r.json();
    assert_eq!(put["id"], id.as_str());
    assert_eq!(put["name"], "HQ");
    assert_eq!(put["identityProviderName"], "ldap");
    assert_eq!(put["spaKeyName"], "k1");
    assert_eq!(put["hostname"], "hq.example.com");
    assert_eq!(put["tags"], json!([]), "PUT replaces the whole object");
    assert_eq!(put["created"], created["created"]);
    assert_ne!(put["updated"], created["updated"]);
    assert_eq!(get(&s, &t, &id).await.json(), put);

    let r = s
        .appgate(Method::DELETE, &format!("{PROFILES}/{id}"), Some(&t), None)
        .await;
    assert_eq!(r.status, 204);
    assert!(r.body.is_empty());
    assert_eq!(get(&s, &t, &id).await.status, 404);
    let r = s
        .appgate(Method::DELETE, &format!("{PROFILES}/{id}"), Some(&t), None)
        .await;
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["id"], "not found");
}

#[tokio::test]
async fn client_chosen_ids_and_names_are_unique() {
    let s = TestServer::start().await;
    let t = s.admin_token().await;
    let id = "12699e27-b584-464a-81ee-5b4784b6d425";
    let mut body = profile("Alpha");
    body["id"] = json!(id);
    assert_eq!(create(&s, &t, body.clone()).await["id"], id);
    body["name"] = json!("Beta");
    let r = s
        .appgate(Method::POST, PROFILES, Some(&t), Some(body))
        .await;
    assert_eq!(r.status, 409, "an existing id");
    assert_eq!(r.json()["id"], "conflict");

    let r = s
        .appgate(Method::POST, PROFILES, Some(&t), Some(profile("ALPHA")))
        .await;
    assert_eq!(r.status, 409, "names compare case-insensitively");
    let beta = create(&s, &t, profile("Beta")).await;
    let beta_id = beta["id"].as_str().unwrap();
    let r = s
        .appgate(
            Method::PUT,
            &format!("{PROFILES}/{beta_id}"),
            Some(&t),
            Some(profile("alpha")),
        )
        .await;
    assert_eq!(r.status, 409, "a renaming PUT onto a taken name");
    // Renaming frees the old name; changing only the case keeps one's own.
    let r = s
        .appgate(
            Method::PUT,
            &format!("{PROFILES}/{id}"),
            Some(&t),
            Some(profile("Gamma")),
        )
        .await;
    assert_eq!(r.status, 200);
    let r = s
        .appgate(
            Method::PUT,
            &format!("{PROFILES}/{id}"),
            Some(&t),
            Some(profile("GAMMA")),
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["name"], "GAMMA");
    create(&s, &t, profile("alpha")).await;
    // Deleting frees the name.
    s.appgate(
        Method::DELETE,
        &format!("{PROFILES}/{beta_id}"),
        Some(&t),
        None,
    )
    .await;
    create(&s, &t, profile("beta")).await;

    // The index survives a restart as it was left.
    let s = s.restart().await;
    let t = s.admin_token().await;
    for taken in ["gamma", "ALPHA", "Beta"] {
        let r = s
            .appgate(Method::POST, PROFILES, Some(&t), Some(profile(taken)))
            .await;
        assert_eq!(r.status, 409, "{taken}");
    }
    let r = s
        .appgate(Method::GET, PROFILES, Some(&t), None)
        .await
        .json();
    assert_eq!(r["totalCount"], 3);
}

#[tokio::test]
async fn groups_parse_their_links_and_never_return_them() {
    let s = TestServer::start().await;
    let t = s.admin_token().await;
    let member = "5f0e3c52-8b5a-4d0e-9b1e-3f2b1c0d9e8a";
    let g = create(
        &s,
        &t,
        json!({"name": "Both", "type": "Group", "identityProviderName": "ignored", "profileUrls": [
            {"url": link("eu.example.com", "Europe")},
            {"id": member, "url": link("us.example.com:8443", "US"), "weight": 5},
        ]}),
    )
    .await;
    assert_eq!(g["type"], "Group");
    assert!(g.get("identityProviderName").is_none());
    let urls = g["profileUrls"].as_array().unwrap();
    assert_eq!(urls.len(), 2);
    assert!(urls.iter().all(|u| u.get("url").is_none()), "{urls:?}");
    assert_eq!(urls[0]["hostname"], "eu.example.com");
    assert_eq!(urls[0]["profileName"], "Europe");
    assert_eq!(urls[0]["weight"], 100);
    assert!(uuid::Uuid::parse_str(urls[0]["id"].as_str().unwrap()).is_ok());
    assert_eq!(
        urls[1],
        json!({"id": member, "hostname": "us.example.com:8443", "profileName": "US", "weight": 5})
    );
    // An update may refer to a stored member by id alone, since its link cannot be read back.
    let gid = g["id"].as_str().unwrap();
    let r = s
        .appgate(Method::PUT, &format!("{PROFILES}/{gid}"), Some(&t), Some(json!({"name": "Both", "type": "Group", "profileUrls": [{"id": member, "weight": 7}]})))
        .await;
    assert_eq!(r.status, 200, "{:?}", r.json());
    assert_eq!(
        r.json()["profileUrls"],
        json!([{"id": member, "hostname": "us.example.com:8443", "profileName": "US", "weight": 7}])
    );
    let r = s
        .appgate(
            Method::PUT,
            &format!("{PROFILES}/{gid}"),
            Some(&t),
            Some(json!({"name": "Both", "type": "Group", "profileUrls": [{"weight": 7}]})),
        )
        .await;
    assert_eq!(error_fields(&r), ["profileUrls.0.url"]);
}

#[tokio::test]
async fn the_example_bodies_in_data_are_accepted() {
    let s = TestServer::start().await;
    let t = s.admin_token().await;
    let read = |name: &str| -> Value {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("data")
            .join(name);
        serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
    };
    let r = s
        .appgate(
            Method::PUT,
            "/admin/global-settings",
            Some(&t),
            Some(read("global-settings.json")),
        )
        .await;
    assert_eq!(r.status, 204);
    let p = create(&s, &t, read("client-profile.json")).await;
    assert_eq!(p["spaKeyName"], "MainOffice");
    let g = create(&s, &t, read("client-profile-group.json")).await;
    assert_eq!(g["profileUrls"][1]["profileName"], "Americas");
}
