//! How client profiles are kept: answers written from the stored bytes, `globalHostname`
//! following the settings, time-ordered generated ids, and what a clean restart keeps.

use hyper::Method;
use serde_json::{Value, json};

use crate::client_profiles::{PROFILES, create, get, profile};
use crate::helpers::*;

async fn set_profile_hostname(s: &TestServer, t: &str, host: &str) {
    let mut settings = s
        .appgate(Method::GET, "/admin/global-settings", Some(t), None)
        .await
        .json();
    settings["profileHostname"] = json!(host);
    let r = s
        .appgate(
            Method::PUT,
            "/admin/global-settings",
            Some(t),
            Some(settings),
        )
        .await;
    assert_eq!(r.status, 204);
}

async fn list(s: &TestServer, t: &str, query: &str) -> Value {
    let r = s
        .appgate(Method::GET, &format!("{PROFILES}{query}"), Some(t), None)
        .await;
    assert_eq!(r.status, 200);
    r.json()
}

#[tokio::test]
async fn answers_show_the_current_global_hostname() {
    let s = TestServer::start().await;
    let t = s.admin_token().await;
    set_profile_hostname(&s, &t, "first.example.com").await;
    let mut body = profile("Quote \" and \\ and é");
    body["notes"] = json!("line\nbreak");
    let created = create(&s, &t, body).await;
    assert_eq!(created["globalHostname"], "first.example.com");
    let id = created["id"].as_str().unwrap();
    let r = get(&s, &t, id).await;
    assert_eq!(r.json(), created, "GET shows what the create answered");
    assert_eq!(r.header("content-type"), Some("application/json"));

    set_profile_hostname(&s, &t, "second.example.com").await;
    let mut expected = created.clone();
    expected["globalHostname"] = json!("second.example.com");
    assert_eq!(get(&s, &t, id).await.json(), expected);
    assert_eq!(list(&s, &t, "").await["data"], json!([expected]));
    assert_eq!(
        list(&s, &t, "?query=quote").await["data"],
        json!([expected])
    );
    let group = create(
        &s,
        &t,
        json!({"name": "g", "type": "Group", "profileUrls": []}),
    )
    .await;
    assert!(group.get("globalHostname").is_none(), "{group}");
}

#[tokio::test]
async fn generated_ids_are_time_ordered() {
    let s = TestServer::start().await;
    let t = s.admin_token().await;
    let mut ids = Vec::new();
    for n in 0..3 {
        let p = create(&s, &t, profile(&format!("p{n}"))).await;
        let id = uuid::Uuid::parse_str(p["id"].as_str().unwrap()).unwrap();
        assert_eq!(id.get_version_num(), 7, "{id}");
        ids.push(id);
    }
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
}

#[tokio::test]
async fn a_clean_restart_keeps_counts_lists_and_search() {
    let s = TestServer::start().await;
    let t = s.admin_token().await;
    for name in ["alpha", "beta needle", "gamma"] {
        create(&s, &t, profile(name)).await;
    }
    let doomed = create(&s, &t, profile("delta needle")).await;
    let r = s
        .appgate(
            Method::DELETE,
            &format!("{PROFILES}/{}", doomed["id"].as_str().unwrap()),
            Some(&t),
            None,
        )
        .await;
    assert_eq!(r.status, 204);
    let before = list(&s, &t, "?query=needle").await;
    let s = s.restart().await;
    let t = s.admin_token().await;
    let all = list(&s, &t, "?range=0-2").await;
    assert_eq!(
        (all["range"].as_str(), all["totalCount"].as_u64()),
        (Some("0-2/3"), Some(3))
    );
    let after = list(&s, &t, "?query=needle").await;
    assert_eq!(after, before);
    assert_eq!(after["range"], "0-1/1");
    // Writes go on after the restart, and the search follows them.
    create(&s, &t, profile("epsilon needle")).await;
    assert_eq!(list(&s, &t, "?query=needle").await["range"], "0-2/2");
    assert_eq!(list(&s, &t, "").await["totalCount"], 4);
}
