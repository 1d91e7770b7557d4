//! The `appgate://` link and its QR code: payload byte for byte, SPA keys, `exported`.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hyper::Method;
use serde_json::{Value, json};

use crate::client_profiles::{PROFILES, create, get, profile};
use crate::helpers::*;

fn settings(host: &str, spa_mode: &str) -> Value {
    json!({"claimsTokenExpiration": 1440, "entitlementTokenExpiration": 180, "administrationTokenExpiration": 720, "vpnCertificateExpiration": 525600, "auditLogPersistenceMode": "Default", "profileHostname": host, "spaMode": spa_mode})
}

async fn put_settings(s: &TestServer, t: &str, body: Value) {
    let r = s
        .appgate(Method::PUT, "/admin/global-settings", Some(t), Some(body))
        .await;
    assert_eq!(r.status, 204);
}

async fn export_url(s: &TestServer, t: &str, id: &str) -> String {
    let r = s
        .appgate(Method::GET, &format!("{PROFILES}/{id}/url"), Some(t), None)
        .await;
    assert_eq!(r.status, 200, "{:?}", r.json());
    r.json()["url"].as_str().unwrap().to_string()
}

/// Host and decoded payload, checking the payload is padded standard base64 of compact JSON.
fn decode(url: &str) -> (String, String) {
    let rest = url.strip_prefix("appgate://").expect("appgate scheme");
    let (host, payload) = rest.split_once('/').unwrap();
    let json =
        String::from_utf8(STANDARD.decode(payload).expect("padded standard base64")).unwrap();
    assert_eq!(STANDARD.encode(&json), payload, "re-encodes byte for byte");
    (host.to_string(), json)
}

fn spa_key(url: &str) -> String {
    let (_, json) = decode(url);
    let v: Value = serde_json::from_str(&json).unwrap();
    v["spa"]["key"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn the_link_carries_the_payload_key_by_key() {
    let s = TestServer::start().await;
    let t = s.admin_token().await;
    let p = create(
        &s,
        &t,
        json!({"name": "Main Office", "identityProviderName": "ldap"}),
    )
    .await;
    let id = p["id"].as_str().unwrap();
    let r = s
        .appgate(Method::GET, &format!("{PROFILES}/{id}/url"), Some(&t), None)
        .await;
    assert_eq!(r.status, 422, "no host name anywhere");
    assert_eq!(r.json()["errors"][0]["field"], "hostname");

    put_settings(&s, &t, settings("sdp.example.com", "UDP-TCP")).await;
    let url = export_url(&s, &t, id).await;
    let (host, json) = decode(&url);
    assert_eq!(host, "sdp.example.com");
    let v: Value = serde_json::from_str(&json).unwrap();
    let key = v["spa"]["key"].as_str().unwrap();
    assert_eq!(key.len(), 64);
    assert!(
        key.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    );
    assert_eq!(
        json,
        format!(
            r#"{{"profileName":"Main Office","spa":{{"mode":"UDP-TCP","name":"MainOffice","key":"{key}"}},"identityProviderName":"ldap"}}"#
        ),
        "keys in order, compact, no caFingerprint without a CA"
    );
    assert_eq!(
        get(&s, &t, id).await.json()["globalHostname"],
        "sdp.example.com"
    );

    // The profile's own host name wins over the global one.
    let r = s
        .appgate(Method::PUT, &format!("{PROFILES}/{id}"), Some(&t), Some(json!({"name": "Main Office", "identityProviderName": "ldap", "hostname": "own.example.com:444", "spaKeyName": "shared"})))
        .await;
    assert_eq!(r.status, 200);
    let url = export_url(&s, &t, id).await;
    assert!(url.starts_with("appgate://own.example.com:444/"), "{url}");
    let (_, json) = decode(&url);
    assert!(
        json.contains(r#""mode":"UDP-TCP","name":"shared""#),
        "{json}"
    );
}

#[tokio::test]
async fn same_key_name_same_key_also_after_delete_and_recreate() {
    let s = TestServer::start().await;
    let t = s.admin_token().await;
    put_settings(&s, &t, settings("sdp.example.com", "TCP")).await;
    let a = create(
        &s,
        &t,
        json!({"name": "A", "identityProviderName": "local", "spaKeyName": "k"}),
    )
    .await;
    let b = create(
        &s,
        &t,
        json!({"name": "B", "identityProviderName": "local", "spaKeyName": "k"}),
    )
    .await;
    let c = create(
        &s,
        &t,
        json!({"name": "C", "identityProviderName": "local"}),
    )
    .await;
    let key_a = spa_key(&export_url(&s, &t, a["id"].as_str().unwrap()).await);
    assert_eq!(
        key_a,
        spa_key(&export_url(&s, &t, b["id"].as_str().unwrap()).await)
    );
    assert_ne!(
        key_a,
        spa_key(&export_url(&s, &t, c["id"].as_str().unwrap()).await)
    );
    for p in [&a, &b] {
        let id = p["id"].as_str().unwrap();
        s.appgate(Method::DELETE, &format!("{PROFILES}/{id}"), Some(&t), None)
            .await;
    }
    let again = create(
        &s,
        &t,
        json!({"name": "A", "identityProviderName": "local", "spaKeyName": "k"}),
    )
    .await;
    let s = s.restart().await;
    let t = s.admin_token().await;
    assert_eq!(
        key_a,
        spa_key(&export_url(&s, &t, again["id"].as_str().unwrap()).await)
    );

    // Another installation derives another key from the same name.
    let other = TestServer::start().await;
    let ot = other.admin_token().await;
    put_settings(&other, &ot, settings("sdp.example.com", "TCP")).await;
    let o = create(
        &other,
        &ot,
        json!({"name": "A", "identityProviderName": "local", "spaKeyName": "k"}),
    )
    .await;
    assert_ne!(
        key_a,
        spa_key(&export_url(&other, &ot, o["id"].as_str().unwrap()).await)
    );
}

#[tokio::test]
async fn exports_stamp_exported_but_not_updated() {
    let s = TestServer::start().await;
    let t = s.admin_token().await;
    put_settings(&s, &t, settings("sdp.example.com", "TCP")).await;
    let p = create(&s, &t, profile("Stamp")).await;
    let id = p["id"].as_str().unwrap();
    assert!(p.get("exported").is_none());
    export_url(&s, &t, id).await;
    let after_url = get(&s, &t, id).await.json();
    let first = after_url["exported"]
        .as_str()
        .expect("exported is set")
        .to_string();
    assert_eq!(first.len(), 27);
    assert_eq!(after_url["updated"], p["updated"]);
    let r = s
        .appgate(
            Method::GET,
            &format!("{PROFILES}/{id}/barcode"),
            Some(&t),
            None,
        )
        .await;
    assert_eq!(r.status, 200);
    let after_barcode = get(&s, &t, id).await.json();
    assert!(after_barcode["exported"].as_str().unwrap() > first.as_str());
    assert_eq!(after_barcode["updated"], p["updated"]);
    // A replacement keeps the stamp, whatever the body says.
    let r = s
        .appgate(
            Method::PUT,
            &format!("{PROFILES}/{id}"),
            Some(&t),
            Some(json!({"name": "Stamp", "identityProviderName": "local", "exported": null})),
        )
        .await;
    assert_eq!(r.json()["exported"], after_barcode["exported"]);
}

#[tokio::test]
async fn the_barcode_is_a_qr_code_of_the_link() {
    let s = TestServer::start().await;
    let t = s.admin_token().await;
    put_settings(&s, &t, settings("sdp.example.com", "TCP")).await;
    let p = create(
        &s,
        &t,
        json!({"name": "Scan me", "identityProviderName": "local"}),
    )
    .await;
    let id = p["id"].as_str().unwrap();
    let r = s
        .appgate(
            Method::GET,
            &format!("{PROFILES}/{id}/barcode"),
            Some(&t),
            None,
        )
        .await;
    assert_eq!(r.status, 200);
    let png_bytes = STANDARD
        .decode(r.json()["barcode"].as_str().unwrap())
        .unwrap();
    assert_eq!(decode_qr_png(&png_bytes), export_url(&s, &t, id).await);

    let g = create(&s, &t, json!({"name": "G", "type": "Group"})).await;
    let gid = g["id"].as_str().unwrap();
    let r = s
        .appgate(
            Method::GET,
            &format!("{PROFILES}/{gid}/barcode"),
            Some(&t),
            None,
        )
        .await;
    assert_eq!(r.status, 422, "a group has no link of its own");
}

#[tokio::test]
async fn a_configured_ca_adds_its_fingerprint() {
    use sha2::Digest;
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = params.self_signed(&key).unwrap();
    let der = ca.der().to_vec();
    let ca_dir = tempfile::tempdir().unwrap();
    std::fs::write(ca_dir.path().join("ca.pem"), ca.pem()).unwrap();
    let path = ca_dir.path().join("ca.pem");
    let s = TestServer::start_with(|c| c.ca_cert = Some(path)).await;
    let t = s.admin_token().await;
    put_settings(&s, &t, settings("sdp.example.com", "TCP")).await;
    let p = create(&s, &t, profile("With CA")).await;
    let (_, json) = decode(&export_url(&s, &t, p["id"].as_str().unwrap()).await);
    let fp: String = sha2::Sha256::digest(&der)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let v: Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["caFingerprint"], fp.as_str());
    let keys: Vec<&String> = v.as_object().unwrap().keys().collect();
    assert_eq!(
        keys,
        [
            "profileName",
            "spa",
            "caFingerprint",
            "identityProviderName"
        ]
    );
}
