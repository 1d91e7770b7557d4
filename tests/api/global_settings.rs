//! `/admin/global-settings`: stored, validated, reset, and driving login behaviour.

use std::time::Duration;

use hyper::Method;
use serde_json::{Value, json};

use crate::helpers::*;

const PATH: &str = "/admin/global-settings";

fn full() -> Value {
    json!({
        "claimsTokenExpiration": 60,
        "entitlementTokenExpiration": 30.5,
        "administrationTokenExpiration": 120,
        "vpnCertificateExpiration": 1000,
        "registeredDeviceExpirationDays": 7,
        "spaMode": "UDP-TCP",
        "spaTimeWindowSeconds": 300,
        "loginBannerMessage": "Authorized use only.",
        "messageOfTheDay": "Welcome to profiled.",
        "backupApiEnabled": true,
        "backupPassphrase": "tSW3!QBv(rj{UuLY",
        "geoIpUpdates": true,
        "auditLogPersistenceMode": "Guaranteed",
        "profileHostname": "sdp.example.com",
        "collectiveName": "Test Collective",
        "collectiveId": "4c07bc67-57ea-42dd-b702-c2d6c45419fc",
    })
}

#[tokio::test]
async fn defaults_replace_and_reset() {
    let s = TestServer::start().await;
    let t = s.admin_token().await;
    let r = s.appgate(Method::GET, PATH, Some(&t), None).await;
    assert_eq!(r.status, 200);
    let defaults = r.json();
    assert_eq!(defaults["administrationTokenExpiration"], 720);
    assert_eq!(defaults["spaMode"], "TCP");
    assert_eq!(defaults["auditLogPersistenceMode"], "Default");
    let collective = defaults["collectiveId"].as_str().unwrap().to_string();
    assert!(uuid::Uuid::parse_str(&collective).is_ok());
    assert!(defaults.get("backupPassphrase").is_none());

    let r = s.appgate(Method::PUT, PATH, Some(&t), Some(full())).await;
    assert_eq!(r.status, 204, "{:?}", r.body);
    assert!(r.body.is_empty());
    let s = s.restart().await;
    let t = s.admin_token().await;
    let stored = s.appgate(Method::GET, PATH, Some(&t), None).await.json();
    let mut expected = full();
    expected.as_object_mut().unwrap().remove("backupPassphrase");
    expected["collectiveId"] = json!(collective);
    assert_eq!(
        stored, expected,
        "stored, passphrase never returned, collectiveId read-only"
    );

    // What a client read back can be sent again: absent optional fields keep their values.
    let r = s.appgate(Method::PUT, PATH, Some(&t), Some(json!({"claimsTokenExpiration": 1, "entitlementTokenExpiration": 2, "administrationTokenExpiration": 3, "vpnCertificateExpiration": 4, "auditLogPersistenceMode": "Performance"}))).await;
    assert_eq!(r.status, 204);
    let partial = s.appgate(Method::GET, PATH, Some(&t), None).await.json();
    assert_eq!(partial["messageOfTheDay"], "Welcome to profiled.");
    assert_eq!(partial["auditLogPersistenceMode"], "Performance");

    let r = s.appgate(Method::DELETE, PATH, Some(&t), None).await;
    assert_eq!(r.status, 204);
    let reset = s.appgate(Method::GET, PATH, Some(&t), None).await.json();
    assert_eq!(reset, defaults, "defaults again, same collectiveId");
}

#[tokio::test]
async fn validation_lists_each_problem() {
    let s = TestServer::start().await;
    let t = s.admin_token().await;
    let r = s
        .appgate(Method::PUT, PATH, Some(&t), Some(json!({})))
        .await;
    assert_eq!(r.status, 422);
    let fields: Vec<String> = r.json()["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        fields,
        [
            "claimsTokenExpiration",
            "entitlementTokenExpiration",
            "administrationTokenExpiration",
            "vpnCertificateExpiration",
            "auditLogPersistenceMode"
        ]
    );

    let mut bad = full();
    bad["claimsTokenExpiration"] = json!(-1);
    bad["entitlementTokenExpiration"] = json!("180");
    bad["spaMode"] = json!("UDP");
    bad["geoIpUpdates"] = json!("yes");
    bad["messageOfTheDay"] = json!(5);
    bad["auditLogPersistenceMode"] = json!("Fast");
    bad["profileHostname"] = json!("has space");
    let r = s.appgate(Method::PUT, PATH, Some(&t), Some(bad)).await;
    assert_eq!(r.status, 422);
    let fields: Vec<String> = r.json()["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        fields,
        [
            "claimsTokenExpiration",
            "entitlementTokenExpiration",
            "messageOfTheDay",
            "geoIpUpdates",
            "spaMode",
            "auditLogPersistenceMode",
            "profileHostname"
        ]
    );
    let unchanged = s.appgate(Method::GET, PATH, Some(&t), None).await.json();
    assert_eq!(unchanged["claimsTokenExpiration"], 1440, "nothing stored");
}

#[tokio::test]
async fn login_shows_the_message_of_the_day_and_tokens_expire() {
    let s = TestServer::start().await;
    let t = s.admin_token().await;
    let mut body = full();
    body["administrationTokenExpiration"] = json!(0.05);
    let r = s.appgate(Method::PUT, PATH, Some(&t), Some(body)).await;
    assert_eq!(r.status, 204);
    let login = s
        .appgate_login_response(ADMIN_EMAIL, ADMIN_PASSWORD)
        .await
        .json();
    assert_eq!(login["messageOfTheDay"], "Welcome to profiled.");
    let short = login["token"].as_str().unwrap();
    assert_eq!(
        s.appgate(Method::GET, PATH, Some(short), None).await.status,
        200
    );
    tokio::time::sleep(Duration::from_millis(3500)).await;
    let r = s.appgate(Method::GET, PATH, Some(short), None).await;
    assert_eq!(r.status, 401, "a 3 s token is dead after 3.5 s");
    assert_eq!(
        s.appgate(Method::GET, PATH, Some(&t), None).await.status,
        200,
        "older tokens keep their lifetime"
    );
}
