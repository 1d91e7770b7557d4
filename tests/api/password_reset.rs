//! Password reset: `requestPasswordReset` sends a token by mail (a real SMTP server, Python's
//! aiosmtpd, or the outbox folder), `sendPasswordReset` checks it and sets the new password.

use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hyper::Method;
use serde_json::{Value, json};

use crate::helpers::*;

const NEW_PASSWORD: &str = "a-brand-new-password-2";

/// aiosmtpd on a free port of 127.0.0.1, printing every message it receives to its standard
/// output, which is collected here.
struct SmtpServer {
    child: Child,
    port: u16,
    output: Arc<Mutex<String>>,
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl SmtpServer {
    /// `None` (with a note) when aiosmtpd is not installed and this is not CI; under CI
    /// (`CI=true`, where `.ci/run` installs it) its absence fails the test.
    fn start() -> Option<SmtpServer> {
        let present = Command::new("python3")
            .args(["-c", "import aiosmtpd"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !present {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "aiosmtpd is missing under CI: `.ci/run` installs it with pip"
            );
            eprintln!("SKIPPED: python3 -m aiosmtpd is not installed (pip install aiosmtpd)");
            return None;
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut child = Command::new("python3")
            .args(["-u", "-m", "aiosmtpd", "-n", "-l"])
            .arg(format!("127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 runs");
        let output = collect_lines(child.stdout.take().unwrap());
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "aiosmtpd did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(SmtpServer {
            child,
            port,
            output,
        })
    }

    fn output(&self) -> String {
        self.output.lock().unwrap().clone()
    }

    /// A profiled that sends its mail here.
    async fn profiled(&self) -> TestServer {
        profiled_sending_to(self.port, Duration::from_secs(30)).await
    }
}

/// A profiled that sends its mail to 127.0.0.1:`port`, giving each message `timeout`.
async fn profiled_sending_to(port: u16, timeout: Duration) -> TestServer {
    TestServer::start_with(|c| {
        c.smtp_url = Some(profiled::mail::SmtpUrl(format!("smtp://127.0.0.1:{port}")));
        c.smtp_from = Some("profiled@example.com".into());
        c.mail_timeout = timeout;
    })
    .await
}

/// The tokens of the messages in `text`, in order.
fn tokens(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("token: "))
        .map(|t| t.trim().to_string())
        .collect()
}

/// Waits until `text()` holds `n` tokens; the last.
async fn wait_for_token(n: usize, text: impl Fn() -> String) -> String {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let found = tokens(&text());
        if found.len() >= n {
            return found[n - 1].clone();
        }
        assert!(Instant::now() < deadline, "no message arrived: {}", text());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn request_reset(s: &TestServer, email: &str) {
    let r = s
        .occ(
            Method::POST,
            "/ccadmin/v1/adminProfiles/requestPasswordReset",
            None,
            Some(json!({"email": email})),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.json());
    assert_eq!(r.json(), json!({"success": true}));
}

async fn send_reset(s: &TestServer, body: Value) -> TestResponse {
    s.occ(
        Method::POST,
        "/ccadmin/v1/adminProfiles/sendPasswordReset",
        None,
        Some(body),
    )
    .await
}

fn confirm(token: &str, email: &str, password: &str) -> Value {
    json!({"op": "confirmPasswordReset", "token": token, "email": email,
           "password": password, "confirmPassword": password})
}

fn assert_token_refused(r: &TestResponse) {
    assert_eq!(r.status, 400, "{:?}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["errorCode"], "60004");
}

/// The outbox's files (name, mode, content), oldest first.
fn outbox(s: &TestServer) -> Vec<(String, u32, String)> {
    use std::os::unix::fs::PermissionsExt;
    let Ok(dir) = std::fs::read_dir(s.dir.path().join("outbox")) else {
        return Vec::new();
    };
    let mut files: Vec<_> = dir
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                e.metadata().unwrap().permissions().mode() & 0o777,
                std::fs::read_to_string(e.path()).unwrap(),
            )
        })
        .collect();
    files.sort();
    files
}

fn outbox_text(s: &TestServer) -> String {
    outbox(s).into_iter().map(|(_, _, c)| c).collect()
}

#[tokio::test]
async fn a_reset_by_smtp_sets_a_new_password_once_and_ends_the_sessions() {
    let Some(smtp) = SmtpServer::start() else {
        return;
    };
    let s = smtp.profiled().await;
    add_account(&s, "amber@example.com", "adminRole").await;
    let old_session = s.occ_login("amber@example.com", ACCOUNT_PASSWORD).await;

    request_reset(&s, "Amber@Example.com").await;
    let token = wait_for_token(1, || smtp.output()).await;
    let mail = smtp.output();
    assert!(mail.contains("To: amber@example.com"), "{mail}");
    assert!(mail.contains("From: profiled@example.com"), "{mail}");
    assert!(outbox(&s).is_empty(), "SMTP mode writes no outbox file");

    let r = send_reset(&s, json!({"op": "validateToken", "token": token})).await;
    assert_eq!(r.status, 200, "{:?}", r.json());
    assert_eq!(r.json(), json!({"success": true}));
    let r = send_reset(&s, confirm(&token, "amber@example.com", NEW_PASSWORD)).await;
    assert_eq!(r.status, 200, "{:?}", r.json());
    assert_eq!(r.json(), json!({"success": true}));

    // The new password works, the old one does not, and the old session has ended.
    assert_eq!(
        s.occ_login_response("amber@example.com", ACCOUNT_PASSWORD)
            .await
            .status,
        401
    );
    s.occ_login("amber@example.com", NEW_PASSWORD).await;
    let r = s
        .occ(Method::POST, "/ccadmin/v1/verify", Some(&old_session), None)
        .await;
    assert_eq!(r.status, 401);

    // The token works once.
    assert_token_refused(&send_reset(&s, json!({"op": "validateToken", "token": token})).await);
    assert_token_refused(
        &send_reset(
            &s,
            confirm(&token, "amber@example.com", "yet-another-password-3"),
        )
        .await,
    );
    s.occ_login("amber@example.com", NEW_PASSWORD).await;
}

#[tokio::test]
async fn an_unknown_or_inactive_account_gets_the_same_answer_and_no_message() {
    let Some(smtp) = SmtpServer::start() else {
        return;
    };
    let s = smtp.profiled().await;
    let id = add_account(&s, "gone@example.com", "adminRole").await;
    s.app
        .store
        .update_account(&id, |a| {
            a.active = false;
            Ok::<(), profiled::store::StoreError>(())
        })
        .await
        .unwrap();
    request_reset(&s, "nobody@example.com").await;
    request_reset(&s, "gone@example.com").await;
    // A known account afterwards: its message is the first and only one.
    add_account(&s, "known@example.com", "adminRole").await;
    request_reset(&s, "known@example.com").await;
    wait_for_token(1, || smtp.output()).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mail = smtp.output();
    assert_eq!(tokens(&mail).len(), 1, "{mail}");
    assert!(mail.contains("To: known@example.com"));
    assert!(!mail.contains("nobody@example.com") && !mail.contains("gone@example.com"));
}

#[tokio::test]
async fn the_outbox_keeps_each_message_in_a_private_file() {
    let s = TestServer::start().await;
    add_account(&s, "amber@example.com", "adminRole").await;
    request_reset(&s, "amber@example.com").await;
    let token = wait_for_token(1, || outbox_text(&s)).await;
    {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::fs::metadata(s.dir.path().join("outbox")).unwrap();
        assert_eq!(dir.permissions().mode() & 0o777, 0o700);
    }
    let files = outbox(&s);
    assert_eq!(files.len(), 1);
    let (name, mode, content) = &files[0];
    assert!(name.ends_with(".eml"), "{name}");
    assert_eq!(*mode, 0o600);
    assert!(content.contains("To: amber@example.com"), "{content}");
    assert!(content.contains("Subject: Reset your profiled password"));
    // A second request replaces the first token.
    request_reset(&s, "amber@example.com").await;
    let second = wait_for_token(2, || outbox_text(&s)).await;
    assert_token_refused(&send_reset(&s, json!({"op": "validateToken", "token": token})).await);
    let r = send_reset(&s, json!({"op": "validateToken", "token": second})).await;
    assert_eq!(r.status, 200);
}

#[tokio::test]
async fn an_expired_reset_token_is_refused() {
    let s = TestServer::start_with(|c| c.password_reset_lifetime = Duration::from_secs(1)).await;
    add_account(&s, "amber@example.com", "adminRole").await;
    request_reset(&s, "amber@example.com").await;
    let token = wait_for_token(1, || outbox_text(&s)).await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_token_refused(&send_reset(&s, json!({"op": "validateToken", "token": token})).await);
    assert_token_refused(&send_reset(&s, confirm(&token, "amber@example.com", NEW_PASSWORD)).await);
    s.occ_login("amber@example.com", ACCOUNT_PASSWORD).await;
}

#[tokio::test]
async fn bad_input_gets_oracle_errors_and_changes_nothing() {
    let s = TestServer::start().await;
    add_account(&s, "amber@example.com", "adminRole").await;
    add_account(&s, "other@example.com", "adminRole").await;
    request_reset(&s, "amber@example.com").await;
    let token = wait_for_token(1, || outbox_text(&s)).await;

    let r = s
        .occ(
            Method::POST,
            "/ccadmin/v1/adminProfiles/requestPasswordReset",
            None,
            Some(json!({})),
        )
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["errorCode"], "83004");

    let cases = [
        (
            json!({"op": "confirmPasswordReset", "token": token, "password": NEW_PASSWORD,
                "confirmPassword": NEW_PASSWORD}),
            "83004",
        ),
        (
            json!({"op": "confirmPasswordReset", "token": token, "email": "amber@example.com",
                "password": NEW_PASSWORD, "confirmPassword": "something-else-1"}),
            "22005",
        ),
        (confirm(&token, "amber@example.com", "short"), "22005"),
        (json!({"op": "resetEverything", "token": token}), "22007"),
        (json!({"op": "validateToken"}), "22007"),
        (
            json!({"op": "validateToken", "token": "not a token"}),
            "60004",
        ),
        // The token is amber's, not other's.
        (confirm(&token, "other@example.com", NEW_PASSWORD), "60004"),
    ];
    for (body, code) in cases {
        let r = send_reset(&s, body.clone()).await;
        assert_eq!(r.status, 400, "{body}");
        let b = r.json();
        assert_eq!(b["errorCode"], code, "{body}: {b}");
        assert!(!b.to_string().contains(NEW_PASSWORD));
    }
    // None of that used the token or changed a password.
    s.occ_login("amber@example.com", ACCOUNT_PASSWORD).await;
    s.occ_login("other@example.com", ACCOUNT_PASSWORD).await;
    let r = send_reset(&s, confirm(&token, "amber@example.com", NEW_PASSWORD)).await;
    assert_eq!(r.status, 200, "{:?}", r.json());
    s.occ_login("amber@example.com", NEW_PASSWORD).await;
}

/// Words that look like a reset token (43 characters of URL-safe base64).
fn token_like_words(text: &str) -> Vec<&str> {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_'))
        .filter(|w| w.len() == 43)
        .collect()
}

async fn wait_for_log(p: &Process, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !p.stderr.lock().unwrap().contains(what) {
        assert!(
            Instant::now() < deadline,
            "no '{what}' in the log: {}",
            p.stderr.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The binary, told through its environment to send mail to 127.0.0.1:`port`.
fn process_sending_to(dir: &std::path::Path, port: u16) -> Process {
    let url = format!("smtp://127.0.0.1:{port}");
    Process::start_with_env(
        dir,
        Some(ADMIN_PASSWORD),
        &[
            ("PROFILED_SMTP_URL", &url),
            ("PROFILED_SMTP_FROM", "reset@example.com"),
        ],
    )
}

async fn process_reset(p: &Process, email: &str) {
    let r = send(
        p.addr,
        Method::POST,
        "/ccadmin/v1/adminProfiles/requestPasswordReset",
        &[("content-type", "application/json")],
        serde_json::to_vec(&json!({"email": email})).unwrap().into(),
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json(), json!({"success": true}));
}

#[tokio::test]
async fn the_binary_sends_through_the_smtp_server_its_environment_names() {
    let Some(smtp) = SmtpServer::start() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let p = process_sending_to(dir.path(), smtp.port);
    process_reset(&p, ADMIN_EMAIL).await;
    let token = wait_for_token(1, || smtp.output()).await;
    assert!(smtp.output().contains("From: reset@example.com"));
    wait_for_log(&p, "message sent").await;
    p.signal("-TERM");
    let (_, log) = p.wait();
    assert!(!log.contains(&token), "the reset token reached the log");
    assert!(!dir.path().join("outbox").exists());
}

#[tokio::test]
async fn a_failed_send_is_logged_without_the_token_and_the_answer_is_the_same() {
    // A port nothing listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = tempfile::tempdir().unwrap();
    let p = process_sending_to(dir.path(), closed);
    process_reset(&p, ADMIN_EMAIL).await;
    wait_for_log(&p, "the message could not be sent").await;
    p.signal("-TERM");
    let (status, log) = p.wait();
    assert!(status.success(), "{log}");
    assert!(!log.contains("token: "), "{log}");
    assert!(token_like_words(&log).is_empty(), "{log}");
}

#[test]
fn an_smtp_url_without_a_sender_stops_the_start_and_its_password_stays_hidden() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .args(["--smtp-url", "smtp://mailer:s3cret-pass@127.0.0.1:25"])
        .env_remove("PROFILED_SMTP_FROM")
        .env("PROFILED_ADMIN_PASSWORD", ADMIN_PASSWORD)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("--smtp-from"), "{err}");
    assert!(!err.contains("s3cret-pass"), "{err}");
}

/// Every key and value of every tree of a stopped server's database.
fn raw_database(dir: &std::path::Path) -> Vec<Vec<u8>> {
    let db = open_raw_sled(dir);
    let mut all = Vec::new();
    for name in db.tree_names() {
        for entry in db.open_tree(name).unwrap().iter() {
            let (k, v) = entry.unwrap();
            all.push(k.to_vec());
            all.push(v.to_vec());
        }
    }
    all
}

#[tokio::test]
async fn keys_and_reset_tokens_are_stored_only_as_hashes() {
    use base64::Engine;
    use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
    let s = TestServer::start().await;
    add_account(&s, "amber@example.com", "adminRole").await;
    request_reset(&s, "amber@example.com").await;
    let reset = wait_for_token(1, || outbox_text(&s)).await;
    let admin = s.occ_login(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let r = s
        .occ(
            Method::POST,
            "/ccadmin/v1/applicationIds",
            Some(&admin),
            Some(json!({"name": "k", "type": "application"})),
        )
        .await;
    let key = r.json()["token"].as_str().unwrap().to_string();
    let (dir, _) = s.stop().await;
    let secrets = [
        key.as_bytes().to_vec(),
        STANDARD.decode(&key).unwrap(),
        reset.as_bytes().to_vec(),
        URL_SAFE_NO_PAD.decode(&reset).unwrap(),
    ];
    let stored = raw_database(dir.path());
    assert!(stored.len() > 10);
    for secret in &secrets {
        assert!(
            !stored
                .iter()
                .any(|b| b.windows(secret.len()).any(|w| w == secret.as_slice())),
            "a secret is stored as it is"
        );
    }
}

/// A TCP server that accepts connections and never says anything: an SMTP server that hangs.
/// Counts the connections it holds.
async fn silent_server() -> (u16, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let count = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let seen = count.clone();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            held.push(stream);
        }
    });
    (port, count)
}

#[tokio::test]
async fn sending_is_off_the_request_path_and_bounded() {
    let (port, connections) = silent_server().await;
    let s = profiled_sending_to(port, Duration::from_secs(30)).await;
    add_account(&s, "amber@example.com", "adminRole").await;
    // The server never answers, yet every request is answered at once; no more than 16
    // messages are ever in flight.
    let started = Instant::now();
    for _ in 0..24 {
        request_reset(&s, "amber@example.com").await;
    }
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while connections.load(std::sync::atomic::Ordering::SeqCst) < 16 {
        assert!(Instant::now() < deadline, "the messages did not go out");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(connections.load(std::sync::atomic::Ordering::SeqCst), 16);
}

#[tokio::test]
async fn a_hanging_smtp_server_is_given_up_on_after_the_timeout() {
    let (port, connections) = silent_server().await;
    let s = profiled_sending_to(port, Duration::from_millis(300)).await;
    add_account(&s, "amber@example.com", "adminRole").await;
    // Given up on after the timeout, each send frees its place: all 24 get through one by
    // one rather than 16 staying stuck.
    for _ in 0..24 {
        request_reset(&s, "amber@example.com").await;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while connections.load(std::sync::atomic::Ordering::SeqCst) < 17 {
        assert!(Instant::now() < deadline, "sends were never given up on");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_restore_keeps_application_keys_and_pending_resets() {
    use crate::applications::{key_login, register};
    let s = TestServer::start().await;
    let admin = s.occ_login(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let (_, key) = register(&s, &admin, json!({"name": "deploy", "type": "application"})).await;
    let key = key.expect("an application has a key");
    add_account(&s, "amber@example.com", "clientProfileViewerRole").await;
    request_reset(&s, "amber@example.com").await;
    let token = wait_for_token(1, || outbox_text(&s)).await;
    let backup = crate::backup::take_backup(&s, &admin).await;
    let text = String::from_utf8_lossy(&backup).to_string();
    assert!(!text.contains(&key), "a backup holds no key");
    assert!(!text.contains(&token), "a backup holds no reset token");
    let (target, restored) = import_backup(&backup);
    assert_checks_clean(&restored);
    drop(s);
    let r = TestServer::start_in(target, test_config(&restored)).await;
    assert_eq!(key_login(&r, Some(&key)).await.status, 200);
    let new_password = "restored-and-reset-42";
    let resp = send_reset(&r, confirm(&token, "amber@example.com", new_password)).await;
    assert_eq!(resp.status, 200, "{:?}", resp.json());
    r.occ_login("amber@example.com", new_password).await;
}
