//! Issue 15's defects in the API itself: one's own password, the last administrator, a caller
//! deactivated while its request is in flight, links too long for a QR code, echoed input,
//! and names that show nothing or hide controls.

use std::time::Duration;

use hyper::Method;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::client_profile_validation::error_fields;
use crate::helpers::*;

const PASSWORD: &str = ACCOUNT_PASSWORD;

async fn put_profile(s: &TestServer, token: &str, id: &str, body: Value) -> TestResponse {
    s.occ(
        Method::PUT,
        &format!("/ccadmin/v1/adminProfiles/{id}"),
        Some(token),
        Some(body),
    )
    .await
}

async fn own_id(s: &TestServer, token: &str) -> String {
    let r = s
        .occ(
            Method::GET,
            "/ccadmin/v1/adminProfiles/current",
            Some(token),
            None,
        )
        .await;
    r.json()["id"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn changing_ones_own_password_by_id_needs_the_current_one() {
    let s = TestServer::start().await;
    let t = s.admin_token().await;
    let me = own_id(&s, &t).await;
    let new = "another-good-password-2";
    let r = put_profile(&s, &t, &me, json!({"password": new})).await;
    assert_eq!(r.status, 400, "{:?}", r.json());
    assert_eq!(r.json()["o:errorPath"], "currentPassword");
    let r = put_profile(
        &s,
        &t,
        &me,
        json!({"password": new, "currentPassword": "wrong-password-000"}),
    )
    .await;
    assert_eq!(r.status, 400, "{:?}", r.json());
    assert_eq!(r.json()["o:errorPath"], "currentPassword");
    // Neither changed anything: the old password still works, the new one does not.
    assert_eq!(s.occ_login_response(ADMIN_EMAIL, new).await.status, 401);
    s.login(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let r = put_profile(
        &s,
        &t,
        &me,
        json!({"password": new, "currentPassword": ADMIN_PASSWORD}),
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.json());
    s.login(ADMIN_EMAIL, new).await;
    // Another account's password is still set by an administrator without it.
    let other = add_account(&s, "other@example.com", "clientProfileViewerRole").await;
    let r = put_profile(&s, &t, &other, json!({"password": new})).await;
    assert_eq!(r.status, 200, "{:?}", r.json());
    s.login("other@example.com", new).await;
}

#[tokio::test]
async fn the_last_active_administrator_cannot_remove_its_own_role() {
    let s = TestServer::start().await;
    let t = s.admin_token().await;
    let me = own_id(&s, &t).await;
    let demote = json!({"roles": [{"repositoryId": "clientProfileManagerRole"}]});
    let r = put_profile(&s, &t, &me, demote.clone()).await;
    assert_eq!(r.status, 409, "{:?}", r.json());
    assert!(
        r.json()["message"]
            .as_str()
            .unwrap()
            .contains("no active administrator"),
        "{:?}",
        r.json()
    );
    // Still an administrator.
    let r = s
        .occ(Method::GET, "/ccadmin/v1/adminProfiles", Some(&t), None)
        .await;
    assert_eq!(r.status, 200);
    // With a second administrator, the first may step down.
    add_account(&s, "second@example.com", "adminRole").await;
    assert_eq!(put_profile(&s, &t, &me, demote).await.status, 200);
    let r = s
        .occ(Method::GET, "/ccadmin/v1/adminProfiles", Some(&t), None)
        .await;
    assert_eq!(r.status, 403);
}

#[tokio::test]
async fn two_administrators_deactivating_each_other_at_once_leave_one() {
    let s = TestServer::start().await;
    for round in 0..8 {
        let a_email = format!("a{round}@example.com");
        let b_email = format!("b{round}@example.com");
        let a = add_account(&s, &a_email, "adminRole").await;
        let b = add_account(&s, &b_email, "adminRole").await;
        // The built-in administrator steps aside so that A and B are the only ones.
        let boot = s.admin_token().await;
        let boot_id = own_id(&s, &boot).await;
        let ta = s.login(&a_email, PASSWORD).await;
        let tb = s.login(&b_email, PASSWORD).await;
        let r = put_profile(&s, &ta, &boot_id, json!({"active": false})).await;
        assert_eq!(r.status, 200, "{:?}", r.json());
        let off = json!({"active": false});
        let (ra, rb) = tokio::join!(
            put_profile(&s, &ta, &b, off.clone()),
            put_profile(&s, &tb, &a, off.clone())
        );
        let wins = [ra.status, rb.status].iter().filter(|s| **s == 200).count();
        assert_eq!(wins, 1, "round {round}: {} and {}", ra.status, rb.status);
        let loser = if ra.status == 200 { &rb } else { &ra };
        assert!(
            [401, 409].contains(&loser.status),
            "round {round}: {}",
            loser.status
        );
        let accounts = s.app.store.accounts().unwrap();
        let admins = accounts
            .iter()
            .filter(|a| profiled::store::administers(a))
            .count();
        assert_eq!(admins, 1, "round {round}");
        // Put things back for the next round: the survivor reactivates the built-in
        // administrator, which then deactivates the survivor.
        let (survivor, survivor_id) = if ra.status == 200 {
            (&ta, &a)
        } else {
            (&tb, &b)
        };
        let r = put_profile(&s, survivor, &boot_id, json!({"active": true})).await;
        assert_eq!(r.status, 200, "{:?}", r.json());
        let boot = s.admin_token().await;
        let r = put_profile(&s, &boot, survivor_id, json!({"active": false})).await;
        assert_eq!(r.status, 200, "{:?}", r.json());
    }
}

/// Sends a request head with a `Content-Length`, and the body only after `between` ran.
async fn slow_body(
    s: &TestServer,
    head: &str,
    body: &str,
    between: impl std::future::Future<Output = ()>,
) -> u16 {
    let mut conn = TcpStream::connect(s.addr).await.unwrap();
    let head = format!(
        "{head}\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    conn.write_all(head.as_bytes()).await.unwrap();
    // Let the server authenticate and start waiting for the body.
    tokio::time::sleep(Duration::from_millis(200)).await;
    between.await;
    conn.write_all(body.as_bytes()).await.unwrap();
    let mut answer = String::new();
    tokio::time::timeout(Duration::from_secs(10), conn.read_to_string(&mut answer))
        .await
        .expect("an answer in time")
        .unwrap();
    answer
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status line: {answer:?}"))
}

#[tokio::test]
async fn a_caller_deactivated_while_its_request_is_in_flight_cannot_write() {
    let s = TestServer::start().await;
    let admin = s.admin_token().await;
    let id = add_account(&s, "manager@example.com", "clientProfileManagerRole").await;
    let manager = s.login("manager@example.com", PASSWORD).await;
    let deactivate = async {
        let r = put_profile(&s, &admin, &id, json!({"active": false})).await;
        assert_eq!(r.status, 200, "{:?}", r.json());
    };
    let status = slow_body(
        &s,
        &format!("POST /admin/client-profiles HTTP/1.1\r\naccept: {ACCEPT_V23}\r\nauthorization: Bearer {manager}"),
        r#"{"name":"in flight","identityProviderName":"local"}"#,
        deactivate,
    )
    .await;
    assert_eq!(status, 401);
    let r = s
        .appgate(Method::GET, "/admin/client-profiles", Some(&admin), None)
        .await;
    assert_eq!(r.json()["data"], json!([]), "nothing was created");

    // The same for an account write: an administrator whose role is withdrawn mid-request.
    let boss = add_account(&s, "boss@example.com", "adminRole").await;
    let boss_token = s.login("boss@example.com", PASSWORD).await;
    let victim = add_account(&s, "victim@example.com", "clientProfileViewerRole").await;
    let demote = async {
        let r = put_profile(
            &s,
            &admin,
            &boss,
            json!({"roles": [{"repositoryId": "clientProfileViewerRole"}]}),
        )
        .await;
        assert_eq!(r.status, 200, "{:?}", r.json());
    };
    let status = slow_body(
        &s,
        &format!(
            "PUT /ccadmin/v1/adminProfiles/{victim} HTTP/1.1\r\nauthorization: Bearer {boss_token}"
        ),
        r#"{"roles":[{"repositoryId":"adminRole"}]}"#,
        demote,
    )
    .await;
    assert_eq!(status, 403);
    let victim = s.app.store.account(&victim).unwrap().unwrap();
    assert_eq!(victim.roles, ["clientProfileViewerRole"]);
}

#[tokio::test]
async fn a_link_too_long_for_a_qr_code_is_422_and_stamps_nothing() {
    let s = TestServer::start().await;
    let t = s.admin_token().await;
    let r = s
        .appgate(
            Method::PUT,
            "/admin/global-settings",
            Some(&t),
            Some(json!({"claimsTokenExpiration": 1440, "entitlementTokenExpiration": 180,
                        "administrationTokenExpiration": 720, "vpnCertificateExpiration": 525600,
                        "auditLogPersistenceMode": "Default", "profileHostname": "sdp.example.com"})),
        )
        .await;
    assert_eq!(r.status, 204, "{:?}", String::from_utf8_lossy(&r.body));
    let wide = "𝕏".repeat(256);
    let r = s
        .appgate(
            Method::POST,
            "/admin/client-profiles",
            Some(&t),
            Some(json!({"name": wide, "spaKeyName": wide, "identityProviderName": wide})),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.json());
    let id = r.json()["id"].as_str().unwrap().to_string();
    let r = s
        .appgate(
            Method::GET,
            &format!("/admin/client-profiles/{id}/barcode"),
            Some(&t),
            None,
        )
        .await;
    assert_eq!(error_fields(&r), ["name"]);
    let message = r.json()["errors"][0]["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(message.contains("more than a QR code holds"), "{message}");
    let exported = || async {
        s.appgate(
            Method::GET,
            &format!("/admin/client-profiles/{id}"),
            Some(&t),
            None,
        )
        .await
        .json()["exported"]
            .clone()
    };
    assert!(
        exported().await.is_null(),
        "a refused export stamped the profile"
    );
    // The link itself can still be handed out, and that stamps it.
    let r = s
        .appgate(
            Method::GET,
            &format!("/admin/client-profiles/{id}/url"),
            Some(&t),
            None,
        )
        .await;
    assert_eq!(r.status, 200);
    assert!(exported().await.is_string());
}

#[tokio::test]
async fn a_huge_accept_header_is_not_echoed_whole() {
    let s = TestServer::start().await;
    // Below the 16 KiB cap on request heads, far above what is worth repeating.
    let accept = format!("text/{}", "x".repeat(12_000));
    let r = s
        .request(
            Method::GET,
            "/admin/client-profiles",
            &[("accept", &accept)],
            "",
        )
        .await;
    assert_eq!(r.status, 406);
    let message = r.json()["message"].as_str().unwrap().to_string();
    assert!(message.len() < 1_000, "{} bytes echoed", message.len());
    assert!(message.contains("Received: text/xxx"), "{message}");
}

#[tokio::test]
async fn names_that_show_nothing_or_hide_controls_are_refused() {
    let s = TestServer::start().await;
    let t = s.admin_token().await;
    for name in [
        "\u{200B}\u{200B}",
        "\u{FEFF}",
        "a\u{0}b",
        "invoice\u{202E}fdp.exe",
        "x\ny",
    ] {
        let r = s
            .appgate(
                Method::POST,
                "/admin/client-profiles",
                Some(&t),
                Some(json!({"name": name, "identityProviderName": "local"})),
            )
            .await;
        assert_eq!(error_fields(&r), ["name"], "{name:?}");
    }
    for (field, value, code) in [
        ("firstName", "\u{200B}", "22007"),
        ("lastName", "a\u{1b}[31m", "22007"),
        ("email", "\u{2066}x@example.com", "23006"),
        ("email", "\u{200B}", "23006"),
    ] {
        let mut body = json!({"firstName": "F", "lastName": "L", "email": "n@example.com",
                              "roles": [{"repositoryId": "clientProfileViewerRole"}]});
        body[field] = json!(value);
        let r = s
            .occ(
                Method::POST,
                "/ccadmin/v1/adminProfiles",
                Some(&t),
                Some(body),
            )
            .await;
        assert_eq!(r.status, 400, "{field} {value:?}");
        assert_eq!(r.json()["o:errorPath"], field, "{:?}", r.json());
        assert_eq!(r.json()["errors"][0]["errorCode"], code, "{:?}", r.json());
    }
}

#[tokio::test]
async fn a_host_header_that_is_no_host_name_is_not_repeated_in_links() {
    let s = TestServer::start().await;
    let t = s.admin_token().await;
    let auth = format!("Bearer {t}");
    let href = |host: &str| {
        let (auth, host) = (auth.clone(), host.to_string());
        let addr = s.addr;
        async move {
            let r = send(
                addr,
                Method::GET,
                "/ccadmin/v1/adminProfiles?limit=1",
                &[("authorization", &auth), ("host", &host)],
                bytes::Bytes::new(),
            )
            .await;
            r.json()["links"][0]["href"].as_str().unwrap().to_string()
        }
    };
    assert_eq!(
        href("admin.example.com:8080").await,
        "http://admin.example.com:8080/ccadmin/v1/adminProfiles?limit=1"
    );
    for bad in ["evil.example/\"><script>", "a b", &"h".repeat(300), "x@y"] {
        assert_eq!(
            href(bad).await,
            format!("http://{}/ccadmin/v1/adminProfiles?limit=1", s.addr),
            "{bad}"
        );
    }
}
