//! The Oracle Commerce admin-profile API (`/ccadmin/v1/adminProfiles`, `/adminRoles`) over
//! real HTTP, and the helpers its test modules share.

mod accounts;
mod concurrency;
mod errors;
mod lists;
mod passwords;

use hyper::Method;
use serde_json::{Value, json};

use crate::helpers::*;

pub const PASSWORD: &str = "a-perfectly-long-password";
pub const BASE: &str = "/ccadmin/v1/adminProfiles";

pub async fn create(s: &TestServer, token: &str, body: Value) -> TestResponse {
    s.occ(Method::POST, BASE, Some(token), Some(body)).await
}

/// Creates a profile and returns its id.
pub async fn new_profile(
    s: &TestServer,
    token: &str,
    email: &str,
    roles: &[&str],
    password: Option<&str>,
) -> String {
    let mut body = json!({"firstName": "Test", "lastName": "User", "email": email, "roles": roles});
    if let Some(p) = password {
        body["password"] = json!(p);
    }
    let r = create(s, token, body).await;
    assert_eq!(r.status, 200, "{:?}", r.json());
    r.json()["id"].as_str().unwrap().to_string()
}

pub async fn get(s: &TestServer, token: &str, id: &str) -> TestResponse {
    s.occ(Method::GET, &format!("{BASE}/{id}"), Some(token), None)
        .await
}

pub async fn put(s: &TestServer, token: &str, id: &str, body: Value) -> TestResponse {
    s.occ(
        Method::PUT,
        &format!("{BASE}/{id}"),
        Some(token),
        Some(body),
    )
    .await
}

/// An Oracle error: the status, and `errorCode`/`status` as JSON strings.
#[track_caller]
pub fn assert_error(r: &TestResponse, status: u16, code: &str) -> Value {
    let body = r.json();
    assert_eq!(r.status, status, "{body}");
    assert_eq!(body["errorCode"], json!(code), "{body}");
    assert_eq!(body["status"], json!(status.to_string()), "{body}");
    assert!(body["message"].is_string(), "{body}");
    assert_eq!(
        body["type"],
        json!(format!(
            "https://www.rfc-editor.org/rfc/rfc9110#status.{status}"
        ))
    );
    body
}

/// The admin's token (Oracle login) and id.
pub async fn admin(s: &TestServer) -> (String, String) {
    let token = s.occ_login(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let me = s
        .occ(Method::GET, &format!("{BASE}/current"), Some(&token), None)
        .await;
    (token, me.json()["id"].as_str().unwrap().to_string())
}
