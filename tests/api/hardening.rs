//! Issue 15 (hardening), through the real binary: the way back in when no administrator is
//! left, private files, imports that fail cleanly, and open errors that say what they are.

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hyper::Method;
use serde_json::json;

use crate::helpers::*;

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[tokio::test]
async fn reset_password_make_admin_restores_the_administrator_role_and_reactivates() {
    let s = TestServer::start().await;
    let token = s.admin_token().await;
    let body = json!({"firstName": "Vera", "lastName": "Viewer", "email": "vera@example.com",
                      "roles": ["clientProfileViewerRole"], "active": false,
                      "password": "vera-old-password"});
    let r = s
        .occ(
            Method::POST,
            "/ccadmin/v1/adminProfiles",
            Some(&token),
            Some(body),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.json());
    let (dir, _) = s.stop().await;
    let data_dir = dir.path().to_str().unwrap();

    let out = run_bin(
        &[
            "reset-password",
            "--data-dir",
            data_dir,
            "--email",
            "vera@example.com",
            "--make-admin",
        ],
        &[("PROFILED_NEW_PASSWORD", "vera-new-password")],
    );
    assert!(out.status.success(), "{}", stderr(&out));

    let p = Process::start(dir.path(), Some(ADMIN_PASSWORD));
    let r = p.login("vera@example.com", "vera-new-password").await;
    assert_eq!(r.status, 200, "reactivated with the new password");
    let auth = format!("Bearer {}", r.json()["access_token"].as_str().unwrap());
    let r = send(
        p.addr,
        Method::GET,
        "/ccadmin/v1/adminProfiles/current",
        &[("authorization", &auth)],
        Bytes::new(),
    )
    .await;
    let me = r.json();
    assert_eq!(me["active"], true);
    let roles: Vec<&str> = me["roles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["repositoryId"].as_str().unwrap())
        .collect();
    assert_eq!(roles, ["clientProfileViewerRole", "adminRole"]);
    // An administrator's privilege: listing the accounts.
    let r = send(
        p.addr,
        Method::GET,
        "/ccadmin/v1/adminProfiles",
        &[("authorization", &auth)],
        Bytes::new(),
    )
    .await;
    assert_eq!(r.status, 200);
    p.signal("-TERM");
    p.wait();
}

#[tokio::test]
async fn the_data_directory_and_every_file_are_private() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("data");
    let p = Process::start(&dir, Some(ADMIN_PASSWORD));
    p.signal("-TERM");
    let (status, err) = p.wait();
    assert!(status.success(), "{err}");
    assert_eq!(mode(&dir), 0o700);
    let files = dir_contents(&dir);
    assert!(files.len() >= 3, "{files:?}");
    for path in files.keys() {
        assert_eq!(mode(path), 0o600, "{}", path.display());
    }
    let backup = root.path().join("backup.jsonl");
    let out = run_bin(
        &[
            "export",
            "--data-dir",
            dir.to_str().unwrap(),
            "-o",
            backup.to_str().unwrap(),
        ],
        &[],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(mode(&backup), 0o600);
}

#[tokio::test]
async fn an_open_data_directory_and_its_files_are_tightened_with_a_warning() {
    let dir = populated_dir(0, 1).await;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(
        dir.path().join("db"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    let p = Process::start(dir.path(), Some(ADMIN_PASSWORD));
    p.signal("-TERM");
    let (_, err) = p.wait();
    assert!(err.contains("permissions were tightened"), "{err}");
    assert_eq!(mode(dir.path()), 0o700);
    assert_eq!(mode(&dir.path().join("db")), 0o600);
}

#[tokio::test]
async fn a_failed_import_leaves_nothing_that_check_or_serve_would_take() {
    let source = populated_dir(1, 5).await;
    let root = tempfile::tempdir().unwrap();
    let backup = root.path().join("backup.jsonl");
    let out = run_bin(
        &[
            "export",
            "--data-dir",
            source.path().to_str().unwrap(),
            "-o",
            backup.to_str().unwrap(),
        ],
        &[],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let full = std::fs::read_to_string(&backup).unwrap();
    // Damage the last line: the restore fails after most records went in.
    let cut = root.path().join("cut.jsonl");
    std::fs::write(&cut, &full[..full.len() - 10]).unwrap();

    let target = root.path().join("restored");
    let import = |file: &Path| {
        run_bin(
            &[
                "import",
                "--data-dir",
                target.to_str().unwrap(),
                file.to_str().unwrap(),
            ],
            &[],
        )
    };
    let out = import(&cut);
    assert!(!out.status.success());
    assert!(
        !target.exists(),
        "a failed import left {}",
        target.display()
    );
    let names: Vec<_> = std::fs::read_dir(root.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), 2, "leftovers: {names:?}");
    let check = offline_check_output(&target);
    assert!(!check.status.success());

    // Into an existing empty directory: it stays empty on failure, is filled on success.
    std::fs::create_dir(&target).unwrap();
    assert!(!import(&cut).status.success());
    assert_eq!(std::fs::read_dir(&target).unwrap().count(), 0);
    let out = import(&backup);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(offline_check_output(&target).status.success());
    let p = Process::start(&target, None);
    assert_eq!(
        p.login("user0@example.com", ADMIN_PASSWORD).await.status,
        200
    );
    p.signal("-TERM");
    p.wait();
}

#[tokio::test]
async fn a_database_in_use_is_reported_as_locked_by_another_profiled() {
    let dir = tempfile::tempdir().unwrap();
    let p = Process::start(dir.path(), Some(ADMIN_PASSWORD));
    // The server is up once it answers.
    assert_eq!(p.login(ADMIN_EMAIL, ADMIN_PASSWORD).await.status, 200);
    let data_dir = dir.path().to_str().unwrap();
    for args in [
        vec!["check", "--data-dir", data_dir],
        vec!["export", "--data-dir", data_dir],
    ] {
        let out = run_bin(&args, &[]);
        assert!(!out.status.success());
        let err = stderr(&out);
        assert!(
            err.contains("is another profiled running on this directory?"),
            "{args:?}: {err}"
        );
    }
    let err = match Process::try_start(dir.path(), None, &[], &[]) {
        Ok(second) => {
            let (_, err) = second.wait();
            err
        }
        Err(e) => e,
    };
    assert!(
        err.contains("is another profiled running on this directory?"),
        "{err}"
    );
    p.signal("-TERM");
    p.wait();
}

#[test]
fn a_data_dir_that_is_a_file_is_not_a_directory() {
    let root = tempfile::tempdir().unwrap();
    let file = root.path().join("plain-file");
    std::fs::write(&file, b"x").unwrap();
    let out = run_bin(&["check", "--data-dir", file.to_str().unwrap()], &[]);
    assert!(!out.status.success());
    let out = Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("is not a directory"),
        "{}",
        stderr(&out)
    );
    assert_eq!(std::fs::read(&file).unwrap(), b"x");
}

#[test]
fn a_cache_of_zero_is_refused_with_a_message_naming_its_source() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().to_str().unwrap();
    let out = run_bin(&["--cache-mb", "0", "--data-dir", data_dir], &[]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("at least 1 MiB"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(!err.contains("PROFILED_CACHE_MB"), "{err}");
    let out = run_bin(&["--data-dir", data_dir], &[("PROFILED_CACHE_MB", "0")]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("at least 1 MiB"), "{err}");
    assert!(err.contains("PROFILED_CACHE_MB"), "{err}");
}

#[test]
fn listen_takes_a_host_name_and_a_bad_value_from_the_environment_names_the_variable() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(BIN)
        .args(["--listen", &format!("localhost:{port}"), "--data-dir"])
        .arg(dir.path())
        .env("PROFILED_ADMIN_PASSWORD", ADMIN_PASSWORD)
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let connected = loop {
        if std::net::TcpStream::connect(("localhost", port)).is_ok() {
            break true;
        }
        if Instant::now() > deadline || child.try_wait().unwrap().is_some() {
            break false;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let _ = child.kill();
    let _ = child.wait();
    assert!(connected, "--listen localhost:{port} did not listen");

    let out = run_bin(
        &["--data-dir", dir.path().to_str().unwrap()],
        &[("PROFILED_LISTEN", "no-port-here")],
    );
    assert!(!out.status.success());
    assert!(stderr(&out).contains("PROFILED_LISTEN"), "{}", stderr(&out));
}

#[tokio::test]
async fn settings_ignored_on_an_existing_database_are_logged_without_the_password() {
    let dir = populated_dir(0, 0).await;
    let p = Process::try_start(
        dir.path(),
        Some("another-admin-password"),
        &["--admin-email", "boss@example.com"],
        &[],
    )
    .unwrap();
    assert_eq!(p.login(ADMIN_EMAIL, ADMIN_PASSWORD).await.status, 200);
    p.signal("-TERM");
    let (_, err) = p.wait();
    assert!(err.contains("PROFILED_ADMIN_PASSWORD is ignored"), "{err}");
    assert!(err.contains("--admin-email"), "{err}");
    assert!(err.contains("boss@example.com"), "{err}");
    assert!(!err.contains("another-admin-password"), "{err}");
}

#[test]
fn reset_password_help_names_the_variable() {
    let out = run_bin(&["reset-password", "--help"], &[]);
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(help.contains("PROFILED_NEW_PASSWORD"), "{help}");
    assert!(help.contains("--make-admin"), "{help}");
}

/// At a terminal (a pseudo-terminal from `script`), the prompt says how to finish and the
/// password typed is not echoed.
#[tokio::test]
async fn reset_password_at_a_terminal_prompts_and_does_not_echo() {
    if Command::new("script").arg("--version").output().is_err() {
        eprintln!("skipped: `script` (util-linux) is not installed");
        return;
    }
    let dir = populated_dir(0, 0).await;
    let command = format!(
        "{BIN} reset-password --data-dir {} --email {ADMIN_EMAIL}",
        dir.path().display()
    );
    let mut child = Command::new("script")
        .args(["-q", "-e", "-c", &command, "/dev/null"])
        .env_remove("PROFILED_NEW_PASSWORD")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = [0u8; 1024];
        while let Ok(n) = stdout.read(&mut buf) {
            if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !String::from_utf8_lossy(&seen).contains("finish with Enter") {
        assert!(
            Instant::now() < deadline,
            "no prompt: {:?}",
            String::from_utf8_lossy(&seen)
        );
        if let Ok(chunk) = rx.recv_timeout(Duration::from_millis(100)) {
            seen.extend(chunk);
        }
    }
    // Echo is off once the prompt is shown.
    std::thread::sleep(Duration::from_millis(200));
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"typed-at-the-terminal\n").unwrap();
    std::thread::sleep(Duration::from_millis(300));
    drop(stdin);
    let status = child.wait().unwrap();
    while let Ok(chunk) = rx.recv_timeout(Duration::from_millis(500)) {
        seen.extend(chunk);
    }
    let shown = String::from_utf8_lossy(&seen);
    assert!(status.success(), "{shown}");
    assert!(!shown.contains("typed-at-the-terminal"), "echoed: {shown}");
    let p = Process::start(dir.path(), None);
    assert_eq!(
        p.login(ADMIN_EMAIL, "typed-at-the-terminal").await.status,
        200
    );
    p.signal("-TERM");
    p.wait();
}
