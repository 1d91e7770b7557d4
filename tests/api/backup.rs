//! Backup over HTTP, offline check, export and import.

use std::process::Command;

use hyper::Method;
use profiled::store::{NewAccount, StoreError};
use serde_json::Value;

use crate::helpers::*;

/// Turns the backup API on (it is off by default, as on a controller) through
/// PUT /admin/global-settings, setting `passphrase` too when given.
pub async fn enable_backup_api(s: &TestServer, token: &str, passphrase: Option<&str>) {
    let path = "/admin/global-settings";
    let mut settings = s.appgate(Method::GET, path, Some(token), None).await.json();
    settings["backupApiEnabled"] = true.into();
    if let Some(p) = passphrase {
        settings["backupPassphrase"] = p.into();
    }
    let r = s
        .appgate(Method::PUT, path, Some(token), Some(settings))
        .await;
    assert_eq!(r.status, 204, "{:?}", r.body);
}

/// `GET /admin/backup`, with the backup API enabled first.
pub async fn take_backup(s: &TestServer, token: &str) -> bytes::Bytes {
    enable_backup_api(s, token, None).await;
    let r = s
        .appgate(Method::GET, "/admin/backup", Some(token), None)
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    r.body
}

/// For imports of plain backups, which never ask.
fn no_passphrase() -> Result<zeroize::Zeroizing<String>, String> {
    panic!("a plain backup asks for no passphrase")
}

fn lines(body: &[u8]) -> Vec<Value> {
    body.split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice(l).expect("each line is JSON"))
        .collect()
}

#[tokio::test]
async fn backup_is_for_administrators_and_streams_json_lines() {
    let s = TestServer::start().await;
    let r = s.appgate(Method::GET, "/admin/backup", None, None).await;
    assert_eq!(r.status, 401);
    let r = s.request(Method::GET, "/admin/backup", &[], "").await;
    assert_eq!(r.status, 406);
    add_account(&s, "viewer@example.com", "clientProfileManagerRole").await;
    let viewer = s.login("viewer@example.com", "a-good-password-1").await;
    let r = s
        .appgate(Method::GET, "/admin/backup", Some(&viewer), None)
        .await;
    assert_eq!(r.status, 403);
    let r = s
        .appgate(Method::POST, "/admin/backup", Some(&viewer), None)
        .await;
    assert_eq!(r.status, 405);

    let token = s.admin_token().await;
    // Off by default: the vendor's answer for a disabled backup API, in Appgate's format.
    let r = s
        .appgate(Method::GET, "/admin/backup", Some(&token), None)
        .await;
    assert_eq!(r.status, 503);
    let body = r.json();
    assert_eq!(body["id"], "service unavailable", "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("\"backupApiEnabled\": true in PUT /admin/global-settings"),
        "{body}"
    );
    enable_backup_api(&s, &token, None).await;
    let r = s
        .appgate(Method::GET, "/admin/backup", Some(&token), None)
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/x-ndjson"));
    assert_eq!(
        r.header("content-disposition"),
        Some("attachment; filename=\"profiled-backup.jsonl\"")
    );
    let l = lines(&r.body);
    assert_eq!(l[0]["kind"], "header");
    assert_eq!(l[0]["format"], "profiled-backup");
    assert_eq!(l[1]["kind"], "secret");
    assert_eq!(l[1]["value"].as_str().unwrap().len(), 64);
    let accounts: Vec<_> = l.iter().filter(|v| v["kind"] == "account").collect();
    assert_eq!(accounts.len(), 2);
    // Password hashes are part of a backup (a restore must keep logins working).
    assert!(
        accounts[0]["value"]["passwordHash"]
            .as_str()
            .unwrap()
            .starts_with("$argon2id$")
    );
    let end = l.last().unwrap();
    assert_eq!(end["kind"], "end");
    assert_eq!(end["accounts"], 2);
}

#[tokio::test]
async fn a_backup_restores_into_a_fresh_directory_with_the_same_answers() {
    let s = TestServer::start().await;
    add_account(&s, "one@example.com", "clientProfileViewerRole").await;
    let token = s.admin_token().await;
    let mut settings = s.app.store.settings().unwrap();
    settings.profile_hostname = "sdp.example.com".into();
    s.app.store.put_settings(settings).await.unwrap();
    let profile = serde_json::json!({"name": "Main Office", "notes": "n", "tags": ["a"],
        "identityProviderName": "local"});
    let r = s
        .appgate(
            Method::POST,
            "/admin/client-profiles",
            Some(&token),
            Some(profile),
        )
        .await;
    assert_eq!(r.status, 200);
    let id = r.json()["id"].as_str().unwrap().to_string();
    let group = serde_json::json!({"name": "Group", "type": "Group", "profileUrls": [
        {"url": "appgate://sdp.example.com/eyJwcm9maWxlTmFtZSI6Ik1haW4gT2ZmaWNlIn0="}]});
    let r = s
        .appgate(
            Method::POST,
            "/admin/client-profiles",
            Some(&token),
            Some(group),
        )
        .await;
    assert_eq!(r.status, 200);
    // What a client sees before: the list, one profile and its exported link.
    let reads = [
        "/admin/client-profiles".to_string(),
        format!("/admin/client-profiles/{id}"),
    ];
    let mut before_reads = Vec::new();
    for path in &reads {
        before_reads.push(
            s.appgate(Method::GET, path, Some(&token), None)
                .await
                .json(),
        );
    }
    let backup = take_backup(&s, &token).await;
    let link = s
        .appgate(
            Method::GET,
            &format!("/admin/client-profiles/{id}/url"),
            Some(&token),
            None,
        )
        .await
        .json();
    let before_accounts = s.app.store.accounts().unwrap();
    let before_settings = s.app.store.settings().unwrap();
    let before_secret = *s.app.store.secret();

    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), &backup).unwrap();
    let target = tempfile::tempdir().unwrap();
    let restored = target.path().join("db");
    let out = Command::new(BIN)
        .args(["import", "--data-dir"])
        .arg(&restored)
        .arg(file.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("imported 2 admin profile(s)"));

    // A second import into the now non-empty directory is refused.
    let out = Command::new(BIN)
        .args(["import", "--data-dir"])
        .arg(&restored)
        .arg(file.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not empty"));

    let out = offline_check_output(&restored);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    let config = test_config(&restored);
    let (dir, _) = (target, ());
    let r = TestServer::start_in(dir, config).await;
    assert_eq!(r.app.store.accounts().unwrap(), before_accounts);
    assert_eq!(r.app.store.settings().unwrap(), before_settings);
    assert_eq!(*r.app.store.secret(), before_secret);
    r.login("one@example.com", "a-good-password-1").await;
    // The same answers: list, profile (the export stamp came after the backup), and the same
    // link (same secret, so the same SPA key).
    let t = r.admin_token().await;
    for (path, before) in reads.iter().zip(&before_reads) {
        assert_eq!(
            &r.appgate(Method::GET, path, Some(&t), None).await.json(),
            before,
            "{path}"
        );
    }
    let url = format!("/admin/client-profiles/{id}/url");
    assert_eq!(
        r.appgate(Method::GET, &url, Some(&t), None).await.json(),
        link
    );
    // New accounts never reuse a restored id.
    let id = add_account(&r, "two@example.com", "clientProfileViewerRole").await;
    let max_before = before_accounts
        .iter()
        .map(|a| a.id[5..].parse::<u64>().unwrap())
        .max()
        .unwrap();
    assert!(id[5..].parse::<u64>().unwrap() > max_before, "{id}");
}

#[tokio::test]
async fn damaged_or_truncated_backups_are_refused() {
    let s = TestServer::start().await;
    let token = s.admin_token().await;
    let backup = take_backup(&s, &token).await;
    let text = String::from_utf8(backup.to_vec()).unwrap();
    let truncated: String = text.lines().take(3).map(|l| format!("{l}\n")).collect();
    let miscounted = text.replace("\"accounts\":1", "\"accounts\":7");
    for (input, expect) in [
        (truncated.as_str(), "truncated"),
        (miscounted.as_str(), "do not match"),
        ("{\"kind\":\"account\"}\n", "not a profiled backup"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let err =
            profiled::commands::import(&dir.path().join("db"), input.as_bytes(), no_passphrase)
                .unwrap_err();
        assert!(err.contains(expect), "{err}");
    }
}

#[tokio::test]
async fn offline_export_matches_the_backup_endpoint() {
    let s = TestServer::start().await;
    add_account(&s, "x@example.com", "clientProfileViewerRole").await;
    let token = s.admin_token().await;
    let online = lines(&take_backup(&s, &token).await);
    let (dir, _) = s.stop().await;
    let out = Command::new(BIN)
        .args(["export", "--data-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let offline = lines(&out.stdout);
    // Same content apart from the header's time stamp.
    assert_eq!(online[1..], offline[1..]);
}

#[tokio::test]
async fn check_reports_stale_index_entries_and_start_up_repairs_them() {
    let s = TestServer::start().await;
    let (dir, config) = s.stop().await;
    {
        // What a crash between reserving an e-mail and writing the record leaves behind. A
        // crash leaves no clean-shutdown marker, so start-up runs its full check. (profiled
        // creates databases with 2 MiB segments, which sled requires to be given again.)
        let db = open_raw_sled(dir.path());
        db.open_tree("email_accountid")
            .unwrap()
            .insert("ghost@example.com", "iuser99999")
            .unwrap();
        db.open_tree("meta")
            .unwrap()
            .remove("clean_shutdown")
            .unwrap()
            .expect("the server stopped cleanly");
        db.flush().unwrap();
    }
    let out = offline_check_output(dir.path());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("stale") && stdout.contains("ghost@example.com"),
        "{stdout}"
    );

    let s = TestServer::start_in(dir, config).await;
    // The reservation is gone: the address can be taken.
    add_account(&s, "ghost@example.com", "clientProfileViewerRole").await;
    let (dir, _) = s.stop().await;
    assert_checks_clean(dir.path());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn backups_taken_during_concurrent_renames_always_restore() {
    let s = TestServer::start().await;
    // Renamers are spread between many other records, so a snapshot without the write gate
    // reads some of them before and some after a chain of renames, and holds one address twice.
    let mut renamers = Vec::new();
    for i in 0..16 {
        let store = s.app.store.clone();
        let created = futures_util::future::join_all((0..150).map(|j| {
            let store = store.clone();
            async move {
                store
                    .create_account(NewAccount {
                        first_name: "F".into(),
                        last_name: "L".into(),
                        email: format!("filler{i}-{j}@example.com"),
                        active: true,
                        roles: vec![],
                        created_by: None,
                        password_hash: None,
                    })
                    .await
                    .unwrap()
            }
        }))
        .await;
        renamers.push(created[75].id.clone());
    }
    let total = s.app.store.account_count();
    let token = s.admin_token().await;
    enable_backup_api(&s, &token, None).await;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut writers = Vec::new();
    for (w, id) in renamers.iter().enumerate() {
        let (store, id, stop) = (s.app.store.clone(), id.clone(), stop.clone());
        writers.push(tokio::spawn(async move {
            let mut n = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                // Every writer moves between addresses the others want too.
                let email = format!("shared{}@example.com", (n * 7 + w as u64) % 20);
                let _ = store
                    .update_account(&id, |a| {
                        a.email = email.clone();
                        Ok::<(), StoreError>(())
                    })
                    .await;
                n += 1;
            }
        }));
    }
    for _ in 0..15 {
        let r = s
            .appgate(Method::GET, "/admin/backup", Some(&token), None)
            .await;
        assert_eq!(r.status, 200);
        let dir = tempfile::tempdir().unwrap();
        let counts = profiled::commands::import(&dir.path().join("db"), &r.body[..], no_passphrase)
            .expect("every backup restores without index conflicts");
        assert_eq!(counts.0, total);
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for w in writers {
        w.await.unwrap();
    }
}

#[tokio::test]
async fn a_restore_keeps_authenticator_seeds_and_the_mfa_settings() {
    use profiled::auth::{BUILTIN_TOTP_PROVIDER, totp};
    let s = TestServer::start().await;
    let token = s.admin_token().await;
    // A seed handed out and set up through Appgate's steps.
    let seeded = s.app.store.account_by_email(ADMIN_EMAIL).unwrap().unwrap();
    let secret = match s.app.auth.seed(&seeded).await.unwrap() {
        profiled::auth::Seed::Secret(secret) => secret,
        profiled::auth::Seed::AlreadySeeded => panic!("a new account has no seed"),
    };
    let key = totp::from_base32(&secret).unwrap();
    let step = totp::step_of(time::OffsetDateTime::now_utc().unix_timestamp());
    s.app
        .auth
        .check_code(&seeded, &totp::format(totp::code_at(&key, step)))
        .await
        .unwrap();
    let r = s
        .appgate(
            Method::PUT,
            "/admin/admin-mfa-settings",
            Some(&token),
            Some(serde_json::json!({"providerId": BUILTIN_TOTP_PROVIDER, "exemptedUsers": ["x@example.com"]})),
        )
        .await;
    assert_eq!(r.status, 204);
    let backup = take_backup(&s, &token).await;
    let (target, restored) = import_backup(&backup);
    drop(s);
    let r = TestServer::start_in(target, test_config(&restored)).await;
    // The settings came back: the password alone is refused, the code (the next one; the
    // current one was spent before the backup) signs in.
    assert_eq!(
        r.occ_login_response(ADMIN_EMAIL, ADMIN_PASSWORD)
            .await
            .status,
        401
    );
    let form = format!(
        "grant_type=password&username={}&password={}&totp_code={}",
        urlencode(ADMIN_EMAIL),
        urlencode(ADMIN_PASSWORD),
        totp::format(totp::code_at(&key, step + 1))
    );
    let resp = r
        .request(
            Method::POST,
            "/ccadmin/v1/mfalogin",
            &[("content-type", "application/x-www-form-urlencoded")],
            form,
        )
        .await;
    assert_eq!(resp.status, 200, "{:?}", resp.json());
    let t = resp.json()["access_token"].as_str().unwrap().to_string();
    let m = r
        .appgate(Method::GET, "/admin/admin-mfa-settings", Some(&t), None)
        .await;
    assert_eq!(
        m.json()["exemptedUsers"],
        serde_json::json!(["x@example.com"])
    );
}

#[tokio::test]
async fn check_reports_an_unreadable_authenticator_seed() {
    let s = TestServer::start().await;
    let admin = s.app.store.account_by_email(ADMIN_EMAIL).unwrap().unwrap();
    s.app.auth.seed(&admin).await.unwrap();
    let (dir, _) = s.stop().await;
    assert_checks_clean(dir.path());
    {
        let db = open_raw_sled(dir.path());
        let accounts = db.open_tree("accountid_account").unwrap();
        let raw = accounts.get(admin.id.as_bytes()).unwrap().unwrap();
        let mut record: serde_json::Value = serde_json::from_slice(&raw).unwrap();
        record["totp"]["secret"] = serde_json::json!("not base32!");
        accounts
            .insert(admin.id.as_bytes(), serde_json::to_vec(&record).unwrap())
            .unwrap();
        db.flush().unwrap();
    }
    let out = offline_check_output(dir.path());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{stdout}");
    assert!(
        stdout.contains("authenticator seed is unreadable"),
        "{stdout}"
    );
}

#[tokio::test]
async fn check_reports_unreadable_applications_and_stale_key_entries() {
    let s = TestServer::start().await;
    let admin = s.occ_login(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    crate::applications::register(
        &s,
        &admin,
        serde_json::json!({"name": "deploy", "type": "application"}),
    )
    .await;
    let (dir, _) = s.stop().await;
    assert_checks_clean(dir.path());
    {
        let db = open_raw_sled(dir.path());
        db.open_tree("appkeyhash_applicationid")
            .unwrap()
            .insert("00".repeat(32), "gone")
            .unwrap();
        let apps = db.open_tree("applicationid_application").unwrap();
        let (id, _) = apps.iter().next().unwrap().unwrap();
        apps.insert(id, "{not json").unwrap();
        db.flush().unwrap();
    }
    let out = offline_check_output(dir.path());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{stdout}");
    assert!(stdout.contains("its record is unreadable"), "{stdout}");
    assert!(stdout.contains("application gone"), "{stdout}");
}
