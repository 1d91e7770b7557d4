//! Start-up, restart, shutdown and the command line, partly through the real binary.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::Duration;

use hyper::Method;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::*;

#[tokio::test]
async fn a_restart_keeps_accounts_and_sessions_and_creates_no_second_admin() {
    let s = TestServer::start().await;
    let token = s.admin_token().await;
    let s = s.restart().await;
    assert_eq!(
        s.occ(Method::POST, "/ccadmin/v1/verify", Some(&token), None)
            .await
            .status,
        200
    );
    assert_eq!(s.app.store.account_count(), 1);
    s.admin_token().await;
}

#[tokio::test]
async fn in_flight_requests_finish_during_a_graceful_shutdown() {
    let s = TestServer::start().await;
    let mut stream = TcpStream::connect(s.addr).await.unwrap();
    let form = format!("grant_type=password&username={ADMIN_EMAIL}&password={ADMIN_PASSWORD}");
    let head = format!(
        "POST /ccadmin/v1/login HTTP/1.1\r\nhost: x\r\ncontent-type: application/x-www-form-urlencoded\r\ncontent-length: {}\r\n\r\n",
        form.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(&form.as_bytes()[..5]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let stopping = tokio::spawn(s.stop());
    tokio::time::sleep(Duration::from_millis(200)).await;
    stream.write_all(&form.as_bytes()[5..]).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    let answer = String::from_utf8_lossy(&buf[..n]);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    stopping.await.unwrap();
}

#[tokio::test]
async fn a_database_from_a_newer_version_is_refused_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    {
        let db = sled::open(dir.path()).unwrap();
        db.open_tree("meta")
            .unwrap()
            .insert("schema_version", &99u64.to_be_bytes())
            .unwrap();
        db.flush().unwrap();
    }
    let err = match profiled::App::open(test_config(dir.path())).await {
        Ok(_) => panic!("opened a newer database"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("newer profiled"), "{err}");
    let out = Command::new(BIN)
        .args(["--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .env("PROFILED_ADMIN_PASSWORD", ADMIN_PASSWORD)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("schema 99"));
}

#[tokio::test]
async fn sigterm_stops_the_binary_cleanly_with_exit_status_0() {
    let dir = tempfile::tempdir().unwrap();
    let p = Process::start(dir.path(), Some(ADMIN_PASSWORD));
    p.signal("-TERM");
    let (status, err) = p.wait();
    assert!(status.success(), "{status:?}\n{err}");
    assert!(err.contains("stopped"), "{err}");
}

#[tokio::test]
async fn a_generated_password_is_stored_once_in_a_private_file_and_never_logged() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("initial-admin-password");
    let p = Process::start(dir.path(), None);
    // The listener is bound before the administrator is created: wait for the log line.
    let mut logged = false;
    for _ in 0..400 {
        logged = p.stderr.lock().unwrap().contains("generated password");
        if logged {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(logged, "the log says where the password is");
    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "{mode:o}");
    let password = std::fs::read_to_string(&file)
        .unwrap()
        .trim_end()
        .to_string();
    assert!(password.len() >= 20, "{password}");
    let r = p.login(ADMIN_EMAIL, &password).await;
    assert_eq!(r.status, 200);
    let token = r.json()["access_token"].as_str().unwrap().to_string();
    p.signal("-INT");
    let (status, err) = p.wait();
    assert!(status.success());
    // Standard error is a pipe here, as under a service manager: only the file's path.
    assert!(
        !err.contains(&password),
        "the password reached the log:\n{err}"
    );
    assert_eq!(err.matches(&file.display().to_string()).count(), 1, "{err}");
    assert!(!err.contains(&token), "the token reached the log");

    // A second start neither writes nor mentions it again; the file stays as it was.
    let p = Process::start(dir.path(), None);
    assert_eq!(p.login(ADMIN_EMAIL, &password).await.status, 200);
    p.signal("-TERM");
    let (_, err) = p.wait();
    assert!(!err.contains(&password));
    assert!(!err.contains("generated password"), "{err}");
    assert_eq!(std::fs::read_to_string(&file).unwrap().trim_end(), password);

    // A chosen password is never written to a file.
    let chosen = tempfile::tempdir().unwrap();
    let p = Process::start(chosen.path(), Some(ADMIN_PASSWORD));
    p.signal("-TERM");
    p.wait();
    assert!(!chosen.path().join("initial-admin-password").exists());
}

#[test]
fn at_a_terminal_the_generated_password_is_also_shown_once() {
    // `script` (util-linux) runs the server on a pseudo-terminal and copies what it shows.
    let dir = tempfile::tempdir().unwrap();
    let listen = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let command = format!(
        "exec {BIN} --listen {listen} --data-dir {}",
        dir.path().display()
    );
    let mut child = Command::new("script")
        .args(["-qfec", &command, "/dev/null"])
        .env_remove("PROFILED_ADMIN_PASSWORD")
        .env_remove("PROFILED_CONFIG")
        .env("RUST_LOG", "info")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("script (util-linux) runs");
    let shown = collect_lines(child.stdout.take().unwrap());
    let file = dir.path().join("initial-admin-password");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let password = loop {
        if let Ok(p) = std::fs::read_to_string(&file)
            && shown.lock().unwrap().contains("to set a new one")
        {
            break p.trim_end().to_string();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "nothing shown: {}",
            shown.lock().unwrap()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    // Closing the terminal ends the server (SIGHUP).
    let _ = child.kill();
    let _ = child.wait();
    let shown = shown.lock().unwrap().clone();
    assert_eq!(shown.matches(&password).count(), 1, "{shown}");
    let log_line = shown
        .lines()
        .find(|l| l.contains("is in this file"))
        .expect("the log line");
    assert!(!log_line.contains(&password));
}

#[tokio::test]
async fn reset_password_sets_a_new_password_offline() {
    let dir = tempfile::tempdir().unwrap();
    let p = Process::start(dir.path(), Some(ADMIN_PASSWORD));
    p.signal("-TERM");
    p.wait();

    let reset = |email: &str, password: &str| {
        Command::new(BIN)
            .args(["reset-password", "--data-dir"])
            .arg(dir.path())
            .args(["--email", email])
            .env("PROFILED_NEW_PASSWORD", password)
            .output()
            .unwrap()
    };
    let out = reset(ADMIN_EMAIL, "short");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("at least 12"));
    let out = reset("nobody@example.com", "a-long-enough-password");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no account"));

    // From standard input when the variable is unset.
    let mut child = Command::new(BIN)
        .args(["reset-password", "--data-dir"])
        .arg(dir.path())
        .args(["--email", "ADMIN@localhost"])
        .env_remove("PROFILED_NEW_PASSWORD")
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(b"the-new-admin-password\n").unwrap();
    }
    let status = child.wait().unwrap();
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(status.success(), "{err}");

    let p = Process::start(dir.path(), Some(ADMIN_PASSWORD));
    assert_eq!(p.login(ADMIN_EMAIL, ADMIN_PASSWORD).await.status, 401);
    assert_eq!(
        p.login(ADMIN_EMAIL, "the-new-admin-password").await.status,
        200
    );
    p.signal("-TERM");
    p.wait();
}

#[tokio::test]
async fn an_acknowledged_login_survives_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let p = Process::start(dir.path(), Some(ADMIN_PASSWORD));
    let mut tokens = Vec::new();
    for _ in 0..5 {
        let r = p.login(ADMIN_EMAIL, ADMIN_PASSWORD).await;
        assert_eq!(r.status, 200);
        tokens.push(r.json()["access_token"].as_str().unwrap().to_string());
    }
    // No grace: the process dies right after the last acknowledgement.
    p.signal("-KILL");
    p.wait();
    let p = Process::start(dir.path(), Some(ADMIN_PASSWORD));
    for t in &tokens {
        let auth = format!("Bearer {t}");
        let r = send(
            p.addr,
            Method::POST,
            "/ccadmin/v1/verify",
            &[("authorization", &auth)],
            bytes::Bytes::new(),
        )
        .await;
        assert_eq!(r.status, 200);
        assert_eq!(r.json(), json!({"success": true}));
    }
    p.signal("-TERM");
    p.wait();
}

#[test]
fn help_explains_every_flag_and_variable() {
    let out = Command::new(BIN).arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    for needle in [
        "--listen",
        "PROFILED_LISTEN",
        "--data-dir",
        "PROFILED_DATA_DIR",
        "--admin-email",
        "PROFILED_ADMIN_EMAIL",
        "PROFILED_ADMIN_PASSWORD",
        "RUST_LOG",
        "reset-password",
    ] {
        assert!(help.contains(needle), "--help lacks {needle}:\n{help}");
    }
}

#[tokio::test]
async fn a_damaged_database_is_refused_not_reinitialised() {
    let s = TestServer::start().await;
    let (dir, config) = s.stop().await;
    // Flip bytes all over sled's log: sled recovers such a log as empty.
    let path = dir.path().join("db");
    let mut bytes = std::fs::read(&path).unwrap();
    for b in bytes.iter_mut().step_by(97) {
        *b ^= 0xFF;
    }
    std::fs::write(&path, bytes).unwrap();
    let err = match profiled::App::open(config).await {
        Ok(_) => panic!("a damaged database was opened (and would get a new administrator)"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("damaged"), "{err}");
    assert!(err.contains("restore it from a backup"), "{err}");
}

#[tokio::test]
async fn two_records_claiming_one_key_stop_the_server_from_starting() {
    let s = TestServer::start().await;
    let admin = s.app.store.account_by_email(ADMIN_EMAIL).unwrap().unwrap();
    let (dir, config) = s.stop().await;
    {
        // A second record with the administrator's e-mail: no repair can choose between them.
        let db = open_raw_sled(dir.path());
        let mut twin = serde_json::to_value(&admin).unwrap();
        twin["id"] = json!("iuser99999");
        db.open_tree("accountid_account")
            .unwrap()
            .insert("iuser99999", serde_json::to_vec(&twin).unwrap())
            .unwrap();
        // As after a crash: no clean-shutdown marker, so start-up runs the full check.
        db.open_tree("meta")
            .unwrap()
            .remove("clean_shutdown")
            .unwrap();
        db.flush().unwrap();
    }
    let err = match profiled::App::open(config).await {
        Ok(_) => panic!("started on an inconsistent database"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("both claim email"), "{err}");
    assert!(err.contains("restore from a backup"), "{err}");
    let out = offline_check_output(dir.path());
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("damaged:"));
}
