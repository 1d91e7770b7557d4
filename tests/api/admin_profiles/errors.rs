//! Every error code of the admin-profile table, with Oracle's body, and e-mail uniqueness.

use hyper::Method;
use serde_json::{Value, json};

use super::*;
use crate::helpers::*;

fn valid() -> Value {
    json!({"firstName": "A", "lastName": "B", "email": "ok@example.com", "roles": ["adminRole"]})
}

fn with(changes: Value) -> Value {
    let mut body = valid();
    for (k, v) in changes.as_object().unwrap() {
        if v.is_null() && k.starts_with('-') {
            body.as_object_mut().unwrap().remove(&k[1..]);
        } else {
            body[k] = v.clone();
        }
    }
    body
}

#[tokio::test]
async fn create_validation_codes() {
    let s = TestServer::start().await;
    let (token, _) = admin(&s).await;
    let long_email = format!("{}@example.com", "e".repeat(250));
    let cases: Vec<(Value, &str, &str)> = vec![
        (with(json!({"-email": null})), "22003", "email"),
        (with(json!({"email": ""})), "22003", "email"),
        (with(json!({"email": null})), "22003", "email"),
        (with(json!({"email": "no-at-sign"})), "23006", "email"),
        (with(json!({"email": "two@@example.com"})), "23006", "email"),
        (
            with(json!({"email": "sp ace@example.com"})),
            "23006",
            "email",
        ),
        (with(json!({"email": long_email})), "23006", "email"),
        (with(json!({"email": 42})), "22007", "email"),
        (with(json!({"-firstName": null})), "23013", "firstName"),
        (with(json!({"lastName": "   "})), "23012", "lastName"),
        (
            with(json!({"firstName": "n".repeat(256)})),
            "22007",
            "firstName",
        ),
        (with(json!({"lastName": ["B"]})), "22007", "lastName"),
        (with(json!({"-roles": null})), "89002", "roles"),
        (with(json!({"roles": []})), "89002", "roles"),
        (with(json!({"roles": "adminRole"})), "22007", "roles"),
        (
            with(json!({"roles": ["adminRole", "noSuchRole"]})),
            "89001",
            "roles.1",
        ),
        (
            with(json!({"roles": [{"repositoryId": "nope"}]})),
            "89001",
            "roles.0",
        ),
        (with(json!({"roles": [7]})), "22007", "roles.0"),
        (
            with(json!({"roles": [{"id": "adminRole"}]})),
            "22007",
            "roles.0",
        ),
        (with(json!({"active": "yes"})), "22007", "active"),
        (with(json!({"password": ""})), "22005", "password"),
        (with(json!({"password": "short"})), "22005", "password"),
        (
            with(json!({"password": "x".repeat(20)})),
            "22005",
            "password",
        ),
        (
            with(json!({"password": 123456789012345u64})),
            "22007",
            "password",
        ),
    ];
    for (body, code, path) in cases {
        let r = create(&s, &token, body.clone()).await;
        let e = assert_error(&r, 400, code);
        assert_eq!(e["o:errorPath"], json!(path), "{body}: {e}");
        assert_eq!(e["errors"][0]["errorCode"], json!(code));
        assert_eq!(e["errors"][0]["status"], "400");
        assert!(!e.to_string().contains("short"), "no password echoed: {e}");
    }
    // Several problems at once are all listed.
    let r = create(
        &s,
        &token,
        json!({"firstName": "", "email": "bad", "roles": []}),
    )
    .await;
    let e = assert_error(&r, 400, "23013");
    let codes: Vec<&str> = e["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["errorCode"].as_str().unwrap())
        .collect();
    assert_eq!(codes, ["23013", "23012", "23006", "89002"]);
    // Not an object, malformed JSON, no JSON content type.
    assert_error(&create(&s, &token, json!(["x"])).await, 400, "22007");
    let auth = format!("Bearer {token}");
    let headers = [
        ("authorization", auth.as_str()),
        ("content-type", "application/json"),
    ];
    let r = s
        .request(Method::POST, BASE, &headers, "{\"firstName\":")
        .await;
    assert_error(&r, 400, "22007");
    let r = s
        .request(
            Method::POST,
            BASE,
            &[
                ("authorization", auth.as_str()),
                ("content-type", "text/plain"),
            ],
            "{}",
        )
        .await;
    assert_error(&r, 415, "415");
    // Nothing was created by any of these.
    let list = s.occ(Method::GET, BASE, Some(&token), None).await.json();
    assert_eq!(list["total"], 1);
    // The default administrator's address stays valid (it is re-submittable).
    let me = s
        .occ(
            Method::PUT,
            &format!("{BASE}/current"),
            Some(&token),
            Some(json!({"email": "admin@localhost"})),
        )
        .await;
    assert_eq!(me.status, 200, "{:?}", me.json());
}

#[tokio::test]
async fn update_codes_and_ids() {
    let s = TestServer::start().await;
    let (token, _) = admin(&s).await;
    let id = new_profile(&s, &token, "u@example.com", &["adminRole"], None).await;
    for (body, code, path) in [
        (json!({"firstName": ""}), "23013", "firstName"),
        (json!({"firstName": null}), "23013", "firstName"),
        (json!({"lastName": " "}), "23012", "lastName"),
        (json!({"email": ""}), "22003", "email"),
        (json!({"email": "a@"}), "23006", "email"),
        (json!({"roles": []}), "89002", "roles"),
        (json!({"roles": null}), "89002", "roles"),
        (json!({"roles": ["ghostRole"]}), "89001", "roles.0"),
        (json!({"active": 1}), "22007", "active"),
        (json!({"password": "tiny"}), "22005", "password"),
    ] {
        let e = assert_error(&put(&s, &token, &id, body.clone()).await, 400, code);
        assert_eq!(e["o:errorPath"], json!(path), "{body}");
    }
    assert_eq!(
        get(&s, &token, &id).await.json()["firstName"],
        "Test",
        "nothing changed"
    );

    let e = assert_error(&get(&s, &token, "iuser99999999").await, 404, "22001");
    assert!(e["message"].as_str().unwrap().contains("iuser99999999"));
    assert_error(
        &put(&s, &token, "nobody", json!({"firstName": "x"})).await,
        404,
        "22001",
    );
    for method in [Method::GET, Method::PUT] {
        let r = s
            .occ(method, &format!("{BASE}/"), Some(&token), Some(json!({})))
            .await;
        assert_error(&r, 400, "22000");
    }
    let r = s.occ(Method::GET, &format!("{BASE}/"), None, None).await;
    assert_error(&r, 401, "401");
}

#[tokio::test]
async fn emails_are_unique_ignoring_case_and_a_change_frees_the_old_one() {
    let s = TestServer::start().await;
    let (token, admin_id) = admin(&s).await;
    let a = new_profile(&s, &token, "Alice@Example.com", &["adminRole"], None).await;
    let b = new_profile(&s, &token, "bob@example.com", &["adminRole"], None).await;

    let taken = |r: &TestResponse| {
        let e = assert_error(r, 409, "22006");
        assert_eq!(e["o:errorPath"], "email");
    };
    taken(&create(&s, &token, with(json!({"email": "alice@EXAMPLE.com"}))).await);
    taken(&create(&s, &token, with(json!({"email": " ADMIN@localhost "}))).await);
    taken(&put(&s, &token, &b, json!({"email": "ALICE@example.com"})).await);
    taken(&put(&s, &token, &admin_id, json!({"email": "Bob@Example.com"})).await);
    let r = s
        .occ(
            Method::PUT,
            &format!("{BASE}/current"),
            Some(&token),
            Some(json!({"email": "bob@example.COM"})),
        )
        .await;
    taken(&r);

    // Changing only the case of one's own address is no conflict.
    let r = put(&s, &token, &a, json!({"email": "alice@example.com"})).await;
    assert_eq!(r.json()["email"], "alice@example.com");
    // Moving an address frees the old one, and the new one is taken.
    let r = put(&s, &token, &a, json!({"email": "alice@new.example.com"})).await;
    assert_eq!(r.status, 200);
    assert_eq!(
        create(&s, &token, with(json!({"email": "ALICE@example.com"})))
            .await
            .status,
        200
    );
    taken(&create(&s, &token, with(json!({"email": "alice@new.example.com"}))).await);
    // Still so after a restart (the index is stored, not rebuilt from memory).
    let s = s.restart().await;
    taken(&create(&s, &token, with(json!({"email": "Alice@New.Example.com"}))).await);
    assert_eq!(
        create(&s, &token, with(json!({"email": "carol@example.com"})))
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn no_delete_and_other_methods_are_405_with_allow() {
    let s = TestServer::start().await;
    let (token, id) = admin(&s).await;
    for (method, path, allow) in [
        (Method::DELETE, format!("{BASE}/{id}"), "GET, PUT"),
        (Method::DELETE, format!("{BASE}/current"), "GET, PUT"),
        (Method::DELETE, BASE.to_string(), "GET, POST"),
        (Method::PATCH, format!("{BASE}/{id}"), "GET, PUT"),
        (Method::PUT, BASE.to_string(), "GET, POST"),
        (Method::POST, "/ccadmin/v1/adminRoles".to_string(), "GET"),
    ] {
        let r = s.occ(method, &path, Some(&token), None).await;
        assert_error(&r, 405, "405");
        assert_eq!(r.header("allow"), Some(allow), "{path}");
    }
    assert_eq!(get(&s, &token, &id).await.status, 200, "still there");
}
