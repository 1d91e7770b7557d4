//! Encrypted backups (`backupPassphrase`), the passphrase kept nowhere in clear, and
//! `profiled export -o` replacing a file only once complete.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use hyper::Method;
use serde_json::{Value, json};

use crate::backup::enable_backup_api;
use crate::helpers::*;

const PASSPHRASE: &str = "Correct-Horse-Battery-4711";
const MAGIC: &[u8] = b"PRFLDENC";
/// profiled-backup's encrypted header and one sealed chunk (64 KiB + tag).
const HEADER_LEN: usize = 93;
const SEALED_CHUNK: usize = 64 * 1024 + 16;

/// Client profiles enough for a backup of several chunks.
const PROFILES: usize = 600;

async fn call(
    p: &Process,
    auth: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> TestResponse {
    send(
        p.addr,
        method,
        path,
        &[
            ("authorization", auth),
            ("accept", ACCEPT_V23),
            ("content-type", "application/json"),
        ],
        body.map(|b| Bytes::from(b.to_string())).unwrap_or_default(),
    )
    .await
}

async fn bearer(p: &Process) -> String {
    let r = p.login(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    format!("Bearer {}", r.json()["access_token"].as_str().unwrap())
}

/// Turns the backup API on with `PASSPHRASE` through the API of a running binary.
async fn set_passphrase(p: &Process, auth: &str) {
    let path = "/admin/global-settings";
    let mut settings = call(p, auth, Method::GET, path, None).await.json();
    settings["backupApiEnabled"] = true.into();
    settings["backupPassphrase"] = PASSPHRASE.into();
    let r = call(p, auth, Method::PUT, path, Some(settings)).await;
    assert_eq!(r.status, 204, "{:?}", r.body);
}

/// A way to damage a backup file's bytes.
type Damage = Box<dyn Fn(&mut Vec<u8>)>;

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn import(target: &Path, file: &Path, args: &[&str], env: &[(&str, &str)]) -> (bool, String) {
    let mut all = vec!["import", "--data-dir", target.to_str().unwrap()];
    all.extend_from_slice(args);
    all.push(file.to_str().unwrap());
    let out = run_bin(&all, env);
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[tokio::test]
async fn an_encrypted_backup_restores_only_with_its_passphrase() {
    let dir = populated_dir(1, PROFILES).await;
    let p = Process::start(dir.path(), None);
    let auth = bearer(&p).await;
    set_passphrase(&p, &auth).await;
    // Write-only: never returned.
    let r = call(&p, &auth, Method::GET, "/admin/global-settings", None).await;
    assert_eq!(r.status, 200);
    assert!(r.json().get("backupPassphrase").is_none());
    assert!(!contains(&r.body, PASSPHRASE.as_bytes()));
    assert!(!contains(&r.body, b"backupKey"), "the key stays inside");

    let r = call(&p, &auth, Method::GET, "/admin/backup", None).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/octet-stream"));
    assert_eq!(
        r.header("content-disposition"),
        Some("attachment; filename=\"profiled-backup.jsonl.enc\"")
    );
    let backup = r.body.to_vec();
    assert!(backup.starts_with(MAGIC));
    assert!(
        backup.len() > HEADER_LEN + 2 * SEALED_CHUNK,
        "{}",
        backup.len()
    );
    assert!(!contains(&backup, b"\"kind\""), "nothing in clear");
    assert!(!contains(&backup, b"Profile 1"), "nothing in clear");
    p.signal("-TERM");
    let (_, log) = p.wait();
    assert!(log.contains("backup started"), "{log}");
    assert!(!log.contains(PASSPHRASE), "{log}");
    for (path, bytes) in dir_contents(dir.path()) {
        assert!(
            !contains(&bytes, PASSPHRASE.as_bytes()),
            "{} holds the passphrase",
            path.display()
        );
    }

    let root = tempfile::tempdir().unwrap();
    let file = root.path().join("backup.jsonl.enc");
    std::fs::write(&file, &backup).unwrap();
    let target = root.path().join("restored");
    let refused = |file: &Path, env: &[(&str, &str)], expect: &str| {
        let (ok, err) = import(&target, file, &[], env);
        assert!(!ok, "{expect}: imported");
        assert!(err.contains(expect), "{expect}: {err}");
        assert!(
            !target.exists(),
            "{expect}: a failed import left the target"
        );
    };
    let right = [("PROFILED_BACKUP_PASSPHRASE", PASSPHRASE)];
    refused(&file, &[], "--passphrase-file");
    refused(
        &file,
        &[("PROFILED_BACKUP_PASSPHRASE", "Correct-Horse-Battery-4712")],
        "wrong passphrase",
    );
    // Damage early, at the very end (after every record went in) and at a chunk boundary.
    let damaged = root.path().join("damaged.enc");
    let cases: [(&str, Damage); 5] = [
        ("a flipped byte", Box::new(|b| b[HEADER_LEN + 1000] ^= 1)),
        (
            "a flipped last byte",
            Box::new(|b| *b.last_mut().unwrap() ^= 0x80),
        ),
        ("a cut tail", Box::new(|b| b.truncate(b.len() - 20))),
        (
            "a cut at a chunk boundary",
            Box::new(|b| b.truncate(HEADER_LEN + 2 * SEALED_CHUNK)),
        ),
        ("a byte more", Box::new(|b| b.push(b'\n'))),
    ];
    for (what, damage) in cases {
        let mut bytes = backup.clone();
        damage(&mut bytes);
        std::fs::write(&damaged, &bytes).unwrap();
        let (ok, err) = import(&target, &damaged, &[], &right);
        assert!(!ok, "{what}: imported");
        assert!(
            err.contains("the encrypted backup is damaged"),
            "{what}: {err}"
        );
        assert!(!target.exists(), "{what}: a failed import left the target");
        assert_eq!(
            names(root.path()),
            ["backup.jsonl.enc", "damaged.enc"],
            "{what}"
        );
    }

    // The right passphrase, from the environment and from a file (its line end ignored).
    let (ok, err) = import(&target, &file, &[], &right);
    assert!(ok, "{err}");
    assert!(
        err.contains(&format!("{PROFILES} client profile(s)")),
        "{err}"
    );
    let secret_file = root.path().join("passphrase");
    std::fs::write(&secret_file, format!("{PASSPHRASE}\n")).unwrap();
    let second = root.path().join("second");
    let (ok, err) = import(
        &second,
        &file,
        &["--passphrase-file", secret_file.to_str().unwrap()],
        &[],
    );
    assert!(ok, "{err}");
    assert_checks_clean(&second);

    // The restored store serves the data and still encrypts with the same passphrase.
    let p = Process::start(&target, None);
    let auth = bearer(&p).await;
    let r = call(&p, &auth, Method::GET, "/admin/client-profiles", None).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["data"].as_array().unwrap().len(), PROFILES);
    let r = call(&p, &auth, Method::GET, "/admin/backup", None).await;
    assert_eq!(r.status, 200);
    assert!(r.body.starts_with(MAGIC));
    p.signal("-TERM");
    p.wait();
    let again = root.path().join("again.enc");
    std::fs::write(&again, &r.body).unwrap();
    let (ok, err) = import(&root.path().join("third"), &again, &[], &right);
    assert!(ok, "{err}");
}

#[tokio::test]
async fn clearing_the_passphrase_goes_back_to_plain_json_lines() {
    let s = TestServer::start().await;
    let t = s.admin_token().await;
    enable_backup_api(&s, &t, Some(PASSPHRASE)).await;
    let r = s
        .appgate(Method::GET, "/admin/backup", Some(&t), None)
        .await;
    assert!(r.body.starts_with(MAGIC));
    // Sending back what was read keeps the passphrase; "" clears it.
    enable_backup_api(&s, &t, None).await;
    let r = s
        .appgate(Method::GET, "/admin/backup", Some(&t), None)
        .await;
    assert!(r.body.starts_with(MAGIC));
    enable_backup_api(&s, &t, Some("")).await;
    let r = s
        .appgate(Method::GET, "/admin/backup", Some(&t), None)
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/x-ndjson"));
    assert!(r.body.starts_with(b"{\"kind\":\"header\""));
}

fn export(dir: &Path, file: &Path) -> (bool, String) {
    let out = run_bin(
        &[
            "export",
            "--data-dir",
            dir.to_str().unwrap(),
            "-o",
            file.to_str().unwrap(),
        ],
        &[],
    );
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn export_encrypts_and_replaces_a_file_only_once_complete() {
    let dir = populated_dir(0, 200).await;
    let p = Process::start(dir.path(), None);
    let auth = bearer(&p).await;
    set_passphrase(&p, &auth).await;
    p.signal("-TERM");
    p.wait();

    let root = tempfile::tempdir().unwrap();
    let file: PathBuf = root.path().join("backup.enc");
    std::fs::write(&file, b"yesterday's backup").unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let (ok, err) = export(dir.path(), &file);
    assert!(ok, "{err}");
    assert_eq!(names(root.path()), ["backup.enc"], "no temporary file left");
    assert_eq!(
        std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let good = std::fs::read(&file).unwrap();
    assert!(good.starts_with(MAGIC), "encrypted as the API would");
    let (ok, err) = import(
        &root.path().join("restored"),
        &file,
        &[],
        &[("PROFILED_BACKUP_PASSPHRASE", PASSPHRASE)],
    );
    assert!(ok, "{err}");
    assert!(err.contains("200 client profile(s)"), "{err}");
    std::fs::remove_dir_all(root.path().join("restored")).unwrap();

    // A damaged store is refused: the earlier backup stays as it was, nothing is left over.
    let db = dir.path().join("db");
    let bytes = std::fs::read(&db).unwrap();
    let used = bytes.iter().rposition(|b| *b != 0).unwrap() + 1;
    std::fs::write(&db, &bytes[..used * 3 / 5]).unwrap();
    let (ok, err) = export(dir.path(), &file);
    assert!(!ok);
    assert!(err.contains("damaged"), "{err}");
    assert_eq!(std::fs::read(&file).unwrap(), good);
    assert_eq!(names(root.path()), ["backup.enc"]);
}

/// A settings record as versions before encrypted backups wrote it: the passphrase in clear.
fn legacy_settings(s: &TestServer) -> Value {
    let mut v = serde_json::to_value(s.app.store.settings().unwrap()).unwrap();
    v["backupApiEnabled"] = true.into();
    v["backupPassphrase"] = PASSPHRASE.into();
    v
}

fn decrypts_with_passphrase(backup: &[u8]) {
    let dir = tempfile::tempdir().unwrap();
    let pass = || Ok(zeroize::Zeroizing::new(PASSPHRASE.to_string()));
    let counts = profiled::commands::import(&dir.path().join("db"), backup, pass).unwrap();
    assert_eq!(counts.0, 1);
}

#[tokio::test]
async fn a_passphrase_stored_in_clear_by_an_older_version_is_sealed() {
    // In the database: replaced by its key at start-up.
    let s = TestServer::start().await;
    let legacy = legacy_settings(&s);
    let (dir, config) = s.stop().await;
    {
        let db = open_raw_sled(dir.path());
        let tree = db.open_tree("settings").unwrap();
        tree.insert("global", serde_json::to_vec(&legacy).unwrap())
            .unwrap();
        db.flush().unwrap();
    }
    let s = TestServer::start_in(dir, config).await;
    let settings = s.app.store.settings().unwrap();
    assert!(settings.legacy_backup_passphrase.is_none());
    assert!(settings.backup_key.is_some());
    let t = s.admin_token().await;
    let r = s
        .appgate(Method::GET, "/admin/backup", Some(&t), None)
        .await;
    assert!(r.body.starts_with(MAGIC));
    decrypts_with_passphrase(&r.body);

    // In a plain backup written by such a version: only the key is restored.
    let s2 = TestServer::start().await;
    let t2 = s2.admin_token().await;
    let plain = crate::backup::take_backup(&s2, &t2).await;
    let legacy = legacy_settings(&s2);
    let text: String = String::from_utf8(plain.to_vec())
        .unwrap()
        .lines()
        .map(|l| {
            let mut v: Value = serde_json::from_str(l).unwrap();
            if v["kind"] == "settings" {
                v = json!({"kind": "settings", "value": legacy});
            }
            format!("{v}\n")
        })
        .collect();
    assert!(text.contains(PASSPHRASE));
    let (target, restored) = import_backup(text.as_bytes());
    for (path, bytes) in dir_contents(&restored) {
        assert!(
            !contains(&bytes, PASSPHRASE.as_bytes()),
            "{} holds the passphrase",
            path.display()
        );
    }
    drop(s2);
    let s3 = TestServer::start_in(target, test_config(&restored)).await;
    let t3 = s3.admin_token().await;
    let r = s3
        .appgate(Method::GET, "/admin/backup", Some(&t3), None)
        .await;
    assert!(r.body.starts_with(MAGIC));
    decrypts_with_passphrase(&r.body);
}
