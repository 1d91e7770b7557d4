//! Signing in the way the vendors' clients do: sdpctl's multi-step sequence (with and without
//! MFA), administrator MFA settings, TOTP codes (wrong, replayed, locked out), and Oracle's
//! `/mfalogin`, `/ccadminui/v1`, trailing slashes, raw form values, `Set-Cookie` and the
//! `error` member occ-tools looks for.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hyper::Method;
use profiled::auth::{BUILTIN_TOTP_PROVIDER, totp};
use serde_json::{Value, json};

use crate::helpers::*;

const PEER_V5: &str = "application/vnd.appgate.peer-v5+json";
const FORM: &str = "application/x-www-form-urlencoded";

fn credentials(email: &str, password: &str) -> Value {
    json!({"providerName": "local", "deviceId": DEVICE_ID, "username": email, "password": password})
}

/// The current step's code (or a later step's) of a base32 seed.
fn code(secret: &str, steps_ahead: u64) -> String {
    let key = totp::from_base32(secret).unwrap();
    let now = totp::step_of(time::OffsetDateTime::now_utc().unix_timestamp());
    totp::format(totp::code_at(&key, now + steps_ahead))
}

/// sdpctl's sequence up to the authorization: stored-token check, version probe, provider
/// names, authentication. Returns the answer of `POST /authentication`.
async fn sdpctl_until_authorization(s: &TestServer, email: &str, password: &str) -> Value {
    // The version probe: an unknown version, to read the supported ones from the 406.
    let r = s
        .appgate_accepting(
            PEER_V5,
            Method::POST,
            "/admin/authentication",
            None,
            Some(json!({"providerName": "", "deviceId": DEVICE_ID})),
        )
        .await;
    assert_eq!(r.status, 406);
    let version = r.json()["maxSupportedVersion"].as_u64().unwrap();
    assert_eq!(version, 23);
    let accept = format!("application/vnd.appgate.peer-v{version}+json");
    let r = s
        .appgate_accepting(
            &accept,
            Method::GET,
            "/admin/identity-providers/names",
            None,
            None,
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.json()["data"],
        json!([{"name": "local", "type": "Credentials"}])
    );
    let r = s
        .appgate_accepting(
            &accept,
            Method::POST,
            "/admin/authentication",
            None,
            Some(credentials(email, password)),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.json());
    let body = r.json();
    assert!(body["expires"].as_str().unwrap().ends_with('Z'));
    assert_eq!(body["user"]["name"], email);
    body
}

async fn turn_mfa_on(s: &TestServer, admin: &str, exempted: &[&str]) {
    let r = s
        .appgate(
            Method::PUT,
            "/admin/admin-mfa-settings",
            Some(admin),
            Some(json!({"providerId": BUILTIN_TOTP_PROVIDER, "exemptedUsers": exempted})),
        )
        .await;
    assert_eq!(r.status, 204, "{:?}", String::from_utf8_lossy(&r.body));
}

#[tokio::test]
async fn sdpctl_signs_in_without_mfa() {
    let s = TestServer::start().await;
    // The stored-token check: a full token (from any login) is answered as it is.
    let stored = s.admin_token().await;
    let r = s
        .appgate_accepting(
            ACCEPT_V23,
            Method::GET,
            "/admin/authorization",
            Some(&stored),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.json());
    assert_eq!(r.json()["token"], stored);

    let body = sdpctl_until_authorization(&s, ADMIN_EMAIL, ADMIN_PASSWORD).await;
    assert_eq!(body["user"]["needTwoFactorAuth"], false);
    let partial = body["token"].as_str().unwrap().to_string();
    // Not yet authorized: it opens nothing else.
    let r = s
        .appgate(Method::GET, "/admin/client-profiles", Some(&partial), None)
        .await;
    assert_eq!(r.status, 401);
    // sdpctl authorizes twice with the same token and keeps the second answer's token.
    for _ in 0..2 {
        let r = s
            .appgate_accepting(
                ACCEPT_V23,
                Method::GET,
                "/admin/authorization",
                Some(&partial),
                None,
            )
            .await;
        assert_eq!(r.status, 200, "{:?}", r.json());
        assert_eq!(r.json()["token"], partial.as_str());
        assert_eq!(r.json()["expires"], body["expires"]);
    }
    let r = s
        .appgate(Method::GET, "/admin/client-profiles", Some(&partial), None)
        .await;
    assert_eq!(r.status, 200);
    // A wrong password is the login's 401.
    let r = s
        .appgate(
            Method::POST,
            "/admin/authentication",
            None,
            Some(credentials(ADMIN_EMAIL, "wrong-password-123")),
        )
        .await;
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["failureType"], "Login");
}

#[tokio::test]
async fn sdpctl_signs_in_with_mfa_and_codes_are_single_use() {
    let s = TestServer::start().await;
    let admin = s.admin_token().await;
    add_account(&s, "api@example.com", "adminRole").await;
    turn_mfa_on(&s, &admin, &["CN=api@example.com,OU=local"]).await;
    let r = s
        .appgate(Method::GET, "/admin/admin-mfa-settings", Some(&admin), None)
        .await;
    assert_eq!(
        r.json(),
        json!({"providerId": BUILTIN_TOTP_PROVIDER, "exemptedUsers": ["CN=api@example.com,OU=local"]})
    );

    // The simple login refuses an account that is not exempted, before looking at the
    // password; the exempted one signs in as before.
    let r = s.appgate_login_response(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    assert_eq!(r.status, 412, "{:?}", r.json());
    assert_eq!(r.json()["otpRequired"], true);
    s.login("api@example.com", ACCOUNT_PASSWORD).await;

    let body = sdpctl_until_authorization(&s, ADMIN_EMAIL, ADMIN_PASSWORD).await;
    assert_eq!(body["user"]["needTwoFactorAuth"], true);
    let partial = body["token"].as_str().unwrap().to_string();
    let authorize = |token: String| {
        let s = &s;
        async move {
            s.appgate_accepting(
                ACCEPT_V23,
                Method::GET,
                "/admin/authorization",
                Some(&token),
                None,
            )
            .await
        }
    };
    let r = authorize(partial.clone()).await;
    assert_eq!(r.status, 412);
    assert_eq!(r.json()["otpRequired"], true);

    let r = s
        .appgate_accepting(
            ACCEPT_V23,
            Method::POST,
            "/admin/authentication/otp/initialize",
            Some(&partial),
            Some(json!({"userPassword": ADMIN_PASSWORD})),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.json());
    let init = r.json();
    assert_eq!(init["type"], "Secret");
    let secret = init["secret"].as_str().unwrap().to_string();
    let url = init["otpAuthUrl"].as_str().unwrap();
    assert!(
        url.starts_with("otpauth://totp/profiled:admin@localhost?secret=") && url.contains(&secret),
        "{url}"
    );
    // The barcode is the QR code of that link.
    let png = STANDARD.decode(init["barcode"].as_str().unwrap()).unwrap();
    assert_eq!(decode_qr_png(&png), url);

    let otp = |token: String, code: String| {
        let s = &s;
        async move {
            s.appgate_accepting(
                ACCEPT_V23,
                Method::POST,
                "/admin/authentication/otp",
                Some(&token),
                Some(json!({"otp": code})),
            )
            .await
        }
    };
    let wrong = if code(&secret, 0) == "000000" {
        "111111"
    } else {
        "000000"
    };
    let r = otp(partial.clone(), wrong.into()).await;
    assert_eq!(r.status, 401, "{:?}", r.json());
    assert_eq!(authorize(partial.clone()).await.status, 412);
    let good = code(&secret, 0);
    let r = otp(partial.clone(), good.clone()).await;
    assert_eq!(r.status, 200, "{:?}", r.json());
    let r = authorize(partial.clone()).await;
    assert_eq!(r.status, 200, "{:?}", r.json());
    assert_eq!(r.json()["token"], partial.as_str());
    let r = s
        .appgate(Method::GET, "/admin/client-profiles", Some(&partial), None)
        .await;
    assert_eq!(r.status, 200);

    // The next sign-in: the seed is set up, and the code just used is spent.
    let body = sdpctl_until_authorization(&s, ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let second = body["token"].as_str().unwrap().to_string();
    let r = s
        .appgate_accepting(
            ACCEPT_V23,
            Method::POST,
            "/admin/authentication/otp/initialize",
            Some(&second),
            None,
        )
        .await;
    assert_eq!(r.json(), json!({"type": "AlreadySeeded"}));
    assert_eq!(otp(second.clone(), good).await.status, 401, "replayed");
    let next = code(&secret, 1);
    let r = otp(second.clone(), next.clone()).await;
    assert_eq!(r.status, 200, "{:?}", r.json());
    assert_eq!(authorize(second).await.status, 200);

    // The same seed serves Oracle's /mfalogin; /login with the password alone is refused
    // with an `error` member.
    let r = s.occ_login_response(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["error"], "invalid_grant");
    assert_eq!(r.json()["status"], "401");
    let mfalogin = |code: String| {
        let s = &s;
        async move {
            s.request(
                Method::POST,
                "/ccadmin/v1/mfalogin",
                &[("content-type", FORM)],
                format!(
                    "grant_type=password&username={}&password={}&totp_code={code}",
                    urlencode(ADMIN_EMAIL),
                    urlencode(ADMIN_PASSWORD)
                ),
            )
            .await
        }
    };
    // The code just used is spent in both dialects.
    let r = mfalogin(next).await;
    assert_eq!(r.status, 401, "a spent code: {:?}", r.json());
    assert_eq!(r.json()["error"], "invalid_grant");
    // Admin MFA off again: the simple logins work for everyone.
    let r = s
        .appgate(
            Method::DELETE,
            "/admin/admin-mfa-settings",
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(r.status, 204);
    let r = s
        .appgate(Method::GET, "/admin/admin-mfa-settings", Some(&admin), None)
        .await;
    assert!(r.json().get("providerId").is_none(), "{:?}", r.json());
    s.login(ADMIN_EMAIL, ADMIN_PASSWORD).await;
}

async fn form_login(s: &TestServer, path: &str, content_type: &str, body: &str) -> TestResponse {
    s.request(
        Method::POST,
        path,
        &[("content-type", content_type)],
        body.to_string(),
    )
    .await
}

#[tokio::test]
async fn oracle_clients_sign_in_on_every_path_they_use() {
    let s = TestServer::start().await;
    // occ-tools: /ccadmin/v1 and /ccadminui/v1, URL-encoded; DCU: a trailing slash, a charset
    // in the media type, and values sent as they are.
    let password = "p+ss%word&x=1";
    let admin = s.admin_token().await;
    let me = s
        .occ(
            Method::GET,
            "/ccadmin/v1/adminProfiles/current",
            Some(&admin),
            None,
        )
        .await
        .json()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let plus_password = "a+b+c-long-password";
    let r = s
        .occ(
            Method::PUT,
            &format!("/ccadmin/v1/adminProfiles/{me}"),
            Some(&admin),
            Some(json!({"password": plus_password, "currentPassword": ADMIN_PASSWORD})),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.json());
    let encoded = format!(
        "grant_type=password&username={}&password={}",
        urlencode(ADMIN_EMAIL),
        urlencode(plus_password)
    );
    let raw = format!("grant_type=password&username={ADMIN_EMAIL}&password={plus_password}");
    for (path, content_type, body) in [
        ("/ccadmin/v1/login", FORM, &encoded),
        ("/ccadminui/v1/login", FORM, &encoded),
        (
            "/ccadmin/v1/login/",
            "application/x-www-form-urlencoded; charset=UTF-8",
            &encoded,
        ),
        (
            "/ccadminui/v1/login/",
            "application/x-www-form-urlencoded; charset=UTF-8",
            &raw,
        ),
        ("/ccadminui/v1/login", FORM, &raw),
    ] {
        let r = form_login(&s, path, content_type, body).await;
        assert_eq!(r.status, 200, "{path} {body}: {:?}", r.json());
        let cookie = r.header("set-cookie").expect("a Set-Cookie header");
        assert!(
            cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
            "{cookie}"
        );
        let token = r.json()["access_token"].as_str().unwrap().to_string();
        assert!(!cookie.contains(&token), "the cookie holds no credential");
        // occ-tools refreshes and verifies under both prefixes.
        for prefix in ["/ccadmin/v1", "/ccadminui/v1"] {
            let r = s
                .occ(
                    Method::POST,
                    &format!("{prefix}/verify"),
                    Some(&token),
                    None,
                )
                .await;
            assert_eq!(r.json(), json!({"success": true}));
        }
        let r = s
            .occ(Method::POST, "/ccadminui/v1/refresh", Some(&token), None)
            .await;
        assert_eq!(r.status, 200);
        assert!(r.header("set-cookie").is_some());
        // The refreshed token replaced the old one: a failure carries `error` and the
        // string status occ-tools reads as "logged out".
        let r = s
            .occ(Method::POST, "/ccadmin/v1/refresh", Some(&token), None)
            .await;
        assert_eq!(r.status, 401);
        assert_eq!(r.json()["error"], "invalid_token");
        assert_eq!(r.json()["status"], "401");
    }
    // `password` itself is not the password: refused, with `error`.
    let r = form_login(
        &s,
        "/ccadmin/v1/login",
        FORM,
        &format!(
            "grant_type=password&username={}&password={}",
            urlencode(ADMIN_EMAIL),
            urlencode(password)
        ),
    )
    .await;
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["error"], "invalid_grant");
    let r = form_login(&s, "/ccadmin/v1/login", FORM, "grant_type=magic").await;
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["error"], "unsupported_grant_type");
    let r = form_login(&s, "/ccadmin/v1/login", "application/json", "{}").await;
    assert_eq!(r.status, 415);
    assert_eq!(r.json()["error"], "invalid_request");
    // Other routes' errors are Oracle's alone.
    let r = s
        .occ(Method::GET, "/ccadmin/v1/adminProfiles", None, None)
        .await;
    assert_eq!(r.status, 401);
    assert!(r.json().get("error").is_none());
}

#[tokio::test]
async fn mfalogin_uses_the_authenticator_oracle_hands_out() {
    let s = TestServer::start().await;
    let admin = s.admin_token().await;
    add_account(&s, "amber@example.com", "clientProfileViewerRole").await;
    let amber = s.occ_login("amber@example.com", ACCOUNT_PASSWORD).await;
    let info = |token: String| {
        let s = &s;
        async move {
            s.occ(
                Method::POST,
                "/ccadmin/v1/adminProfiles/getAuthenticatorInfo",
                None,
                Some(json!({"token": token})),
            )
            .await
        }
    };
    let r = info("not-a-token".into()).await;
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["errorCode"], "83045");
    let r = info(amber.clone()).await;
    assert_eq!(r.status, 200, "{:?}", r.json());
    let body = r.json();
    let secret = body["secretKey"].as_str().unwrap().to_string();
    assert!(
        body["omaLink"]
            .as_str()
            .unwrap()
            .starts_with("oraclemobileauthenticator://settings?AccountName::=profiled/amber@example.com&SharedSecretValue::="),
        "{body}"
    );
    let qr = body["qrCodeLink"].as_str().unwrap();
    let png = STANDARD
        .decode(qr.strip_prefix("data:image/png;base64,").unwrap())
        .unwrap();
    assert_eq!(decode_qr_png(&png), body["otpauthLink"].as_str().unwrap());

    let mfalogin = |code: String| {
        let s = &s;
        async move {
            form_login(
                s,
                "/ccadmin/v1/mfalogin",
                FORM,
                &format!(
                    "grant_type=password&username=amber%40example.com&password={ACCOUNT_PASSWORD}&totp_code={code}"
                ),
            )
            .await
        }
    };
    let first = code(&secret, 0);
    let r = mfalogin(first.clone()).await;
    assert_eq!(r.status, 200, "{:?}", r.json());
    assert!(r.header("set-cookie").is_some());
    let token = r.json()["access_token"].as_str().unwrap().to_string();
    let r = s
        .occ(Method::POST, "/ccadminui/v1/verify", Some(&token), None)
        .await;
    assert_eq!(r.status, 200);
    // Set up: not shown again; the code is spent; a wrong code fails with `error`.
    let r = info(token.clone()).await;
    assert_eq!(r.status, 400);
    let r = mfalogin(first).await;
    assert_eq!(r.status, 401, "replayed");
    assert_eq!(r.json()["error"], "invalid_grant");
    // Wrong codes count towards the lockout, shared with passwords: 429 soon.
    let mut statuses = Vec::new();
    for _ in 0..6 {
        statuses.push(mfalogin("000000".into()).await.status);
    }
    assert!(statuses.contains(&429), "{statuses:?}");
    // An administrator resets the authenticator: a new seed can be handed out.
    let r = s
        .occ(
            Method::POST,
            "/ccadmin/v1/adminProfiles/resetAuthenticatorKey",
            Some(&amber),
            Some(json!({"email": "amber@example.com"})),
        )
        .await;
    assert_eq!(r.status, 403);
    let r = s
        .occ(
            Method::POST,
            "/ccadmin/v1/adminProfiles/resetAuthenticatorKey",
            Some(&admin),
            Some(json!({"email": "amber@example.com"})),
        )
        .await;
    assert_eq!(r.json(), json!({"success": true}));
    let r = info(token).await;
    assert_eq!(r.status, 200);
    assert_ne!(r.json()["secretKey"], secret.as_str());
    let r = s
        .occ(
            Method::POST,
            "/ccadmin/v1/adminProfiles/resetAuthenticatorKey",
            Some(&admin),
            Some(json!({"email": "nobody@example.com"})),
        )
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["errorCode"], "83072");
}

#[tokio::test]
async fn bad_mfa_settings_and_otp_bodies_get_appgate_errors() {
    let s = TestServer::start().await;
    let admin = s.admin_token().await;
    for (body, field) in [
        (json!({"providerId": "not-a-uuid"}), "providerId"),
        (
            json!({"providerId": "4c07bc67-57ea-42dd-b702-c2d6c45419fc"}),
            "providerId",
        ),
        (json!({"providerId": 7}), "providerId"),
        (json!({"exemptedUsers": "x"}), "exemptedUsers"),
        (json!({"exemptedUsers": [""]}), "exemptedUsers.0"),
        (json!({"exemptedUsers": ["a\u{0}b"]}), "exemptedUsers.0"),
    ] {
        let r = s
            .appgate(
                Method::PUT,
                "/admin/admin-mfa-settings",
                Some(&admin),
                Some(body.clone()),
            )
            .await;
        assert_eq!(r.status, 422, "{body}");
        assert_eq!(r.json()["errors"][0]["field"], field, "{body}");
    }
    // Nothing was stored by the refused writes.
    let r = s
        .appgate(Method::GET, "/admin/admin-mfa-settings", Some(&admin), None)
        .await;
    assert_eq!(r.json(), json!({"exemptedUsers": []}));
    let partial = sdpctl_until_authorization(&s, ADMIN_EMAIL, ADMIN_PASSWORD).await["token"]
        .as_str()
        .unwrap()
        .to_string();
    for body in [json!({}), json!({"otp": true})] {
        let r = s
            .appgate(
                Method::POST,
                "/admin/authentication/otp",
                Some(&partial),
                Some(body.clone()),
            )
            .await;
        assert_eq!(r.status, 422, "{body}");
    }
    // No seed handed out yet: any code is wrong.
    let r = s
        .appgate(
            Method::POST,
            "/admin/authentication/otp",
            Some(&partial),
            Some(json!({"otp": "123456"})),
        )
        .await;
    assert_eq!(r.status, 401);
}

#[tokio::test]
async fn the_lockout_counts_failures_on_every_sign_in_path() {
    let s = TestServer::start().await;
    let wrong = "wrong-password-123";
    for _ in 0..2 {
        let r = s
            .appgate(
                Method::POST,
                "/admin/authentication",
                None,
                Some(credentials(ADMIN_EMAIL, wrong)),
            )
            .await;
        assert_eq!(r.status, 401);
    }
    let r = form_login(
        &s,
        "/ccadmin/v1/mfalogin",
        FORM,
        &format!("grant_type=password&username={ADMIN_EMAIL}&password={wrong}&totp_code=123456"),
    )
    .await;
    assert_eq!(r.status, 401);
    let r = form_login(
        &s,
        "/ccadminui/v1/login/",
        FORM,
        &format!("grant_type=password&username={ADMIN_EMAIL}&password={wrong}"),
    )
    .await;
    assert_eq!(r.status, 401);
    assert_eq!(
        s.appgate_login_response(ADMIN_EMAIL, wrong).await.status,
        401
    );
    // Five failures over four paths: the right password is now refused everywhere.
    let r = s
        .appgate(
            Method::POST,
            "/admin/authentication",
            None,
            Some(credentials(ADMIN_EMAIL, ADMIN_PASSWORD)),
        )
        .await;
    assert_eq!(r.status, 429);
    assert!(r.header("retry-after").is_some());
    let r = s.occ_login_response(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    assert_eq!(r.status, 429);
    assert_eq!(r.json()["error"], "temporarily_unavailable");
}
