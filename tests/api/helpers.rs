//! A real server on 127.0.0.1:0 with a temporary data directory, and a small HTTP client.
// Not every test module uses every helper.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::HeaderMap;
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use profiled::{App, Config};
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub const ADMIN_EMAIL: &str = "admin@localhost";
pub const ADMIN_PASSWORD: &str = "correct-horse-battery-staple";
pub const ACCEPT_V23: &str = "application/vnd.appgate.peer-v23+json";
pub const DEVICE_ID: &str = "4c07bc67-57ea-42dd-b702-c2d6c45419fc";

pub struct TestServer {
    pub addr: SocketAddr,
    pub dir: TempDir,
    /// The running application, for tests that change the store behind the API's back.
    pub app: App,
    config: Config,
    shutdown: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

pub struct TestResponse {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl TestResponse {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "status {} body is not JSON ({e}): {:?}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// The configuration tests start from: fast lockout, short timeouts, a known password.
pub fn test_config(dir: &std::path::Path) -> Config {
    let mut c = Config::new(dir);
    c.admin_password = Some(ADMIN_PASSWORD.into());
    c.header_timeout = Duration::from_secs(2);
    c.body_timeout = Duration::from_secs(2);
    c.shutdown_timeout = Duration::from_secs(5);
    c.store.cache_capacity = 16 * 1024 * 1024;
    // The harness switch: PROFILED_TEST_STORE=etcd://… runs every server on that cluster, each
    // under a key prefix of its own (one installation per test).
    #[cfg(feature = "etcd")]
    if let Ok(url) = std::env::var("PROFILED_TEST_STORE") {
        let mut etcd = profiled::store::EtcdOptions::parse(&url).expect("PROFILED_TEST_STORE");
        etcd.prefix = format!("test-{}", uuid::Uuid::new_v4());
        c.store.etcd = Some(etcd);
    }
    c
}

impl TestServer {
    pub async fn start() -> TestServer {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(adjust: impl FnOnce(&mut Config)) -> TestServer {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut config = test_config(dir.path());
        adjust(&mut config);
        Self::start_in(dir, config).await
    }

    /// Starts on an existing data directory (for restarts and prepared databases).
    pub async fn start_in(dir: TempDir, config: Config) -> TestServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let app = App::open(config.clone()).await.expect("app opens");
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(profiled::run(app.clone(), listener, async {
            let _ = rx.await;
        }));
        TestServer {
            addr,
            dir,
            app,
            config,
            shutdown: tx,
            task,
        }
    }

    /// Graceful shutdown and a final flush; returns the data directory and configuration.
    pub async fn stop(self) -> (TempDir, Config) {
        let _ = self.shutdown.send(());
        tokio::time::timeout(Duration::from_secs(30), self.task)
            .await
            .expect("server stops in time")
            .expect("server task does not panic");
        // As `serve` ends: the final flush, and the clean-shutdown marker.
        self.app.store.close_cleanly().expect("final flush");
        // Dropping the last handle closes sled and releases its lock on the directory.
        drop(self.app);
        (self.dir, self.config)
    }

    /// Stops the server and starts a new one on the same data directory.
    pub async fn restart(self) -> TestServer {
        let (dir, config) = self.stop().await;
        Self::start_in(dir, config).await
    }

    pub async fn request(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: impl Into<Bytes>,
    ) -> TestResponse {
        send(self.addr, method, path, headers, body.into()).await
    }

    /// An Appgate call: v23 Accept header, optional token, optional JSON body.
    pub async fn appgate(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> TestResponse {
        self.appgate_accepting(ACCEPT_V23, method, path, token, body)
            .await
    }

    /// An Appgate call with the given Accept header.
    pub async fn appgate_accepting(
        &self,
        accept: &str,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> TestResponse {
        let auth = token.map(|t| format!("Bearer {t}"));
        let mut headers = vec![("accept", accept)];
        if let Some(a) = &auth {
            headers.push(("authorization", a));
        }
        let bytes = match &body {
            Some(b) => {
                headers.push(("content-type", "application/json"));
                serde_json::to_vec(b).unwrap()
            }
            None => Vec::new(),
        };
        self.request(method, path, &headers, bytes).await
    }

    /// An Oracle Commerce call: optional token, optional JSON body.
    pub async fn occ(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> TestResponse {
        let auth = token.map(|t| format!("Bearer {t}"));
        let mut headers = vec![];
        if let Some(a) = &auth {
            headers.push(("authorization", a.as_str()));
        }
        let bytes = match &body {
            Some(b) => {
                headers.push(("content-type", "application/json"));
                serde_json::to_vec(b).unwrap()
            }
            None => Vec::new(),
        };
        self.request(method, path, &headers, bytes).await
    }

    pub async fn appgate_login_response(&self, email: &str, password: &str) -> TestResponse {
        self.appgate(
            Method::POST,
            "/admin/login",
            None,
            Some(json!({"providerName": "local", "deviceId": DEVICE_ID, "username": email, "password": password})),
        )
        .await
    }

    pub async fn occ_login_response(&self, email: &str, password: &str) -> TestResponse {
        let (path, headers, form) = occ_login_request(email, password);
        self.request(Method::POST, path, headers, form).await
    }

    /// Logs in through Appgate and returns the token.
    pub async fn login(&self, email: &str, password: &str) -> String {
        let r = self.appgate_login_response(email, password).await;
        assert_eq!(r.status, 200, "login failed: {:?}", r.json());
        r.json()["token"].as_str().unwrap().to_string()
    }

    pub async fn occ_login(&self, email: &str, password: &str) -> String {
        let r = self.occ_login_response(email, password).await;
        assert_eq!(r.status, 200, "login failed: {:?}", r.json());
        r.json()["access_token"].as_str().unwrap().to_string()
    }

    pub async fn admin_token(&self) -> String {
        self.login(ADMIN_EMAIL, ADMIN_PASSWORD).await
    }
}

/// The password of accounts made by `add_account`.
pub const ACCOUNT_PASSWORD: &str = "a-good-password-1";

/// An account with one role, made in the store directly (no request needed); its id.
pub async fn add_account(s: &TestServer, email: &str, role: &str) -> String {
    s.app
        .store
        .create_account(profiled::store::NewAccount {
            first_name: "F".into(),
            last_name: "L".into(),
            email: email.into(),
            active: true,
            roles: vec![role.into()],
            created_by: None,
            password_hash: Some(profiled::auth::password::hash_blocking(ACCOUNT_PASSWORD)),
        })
        .await
        .unwrap()
        .id
}

/// Restores a backup with `profiled import` into a new directory: the directory's owner and
/// the database path in it.
pub fn import_backup(backup: &[u8]) -> (TempDir, std::path::PathBuf) {
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), backup).unwrap();
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
    (target, restored)
}

/// The text of the one QR code in a greyscale PNG.
pub fn decode_qr_png(png_bytes: &[u8]) -> String {
    let mut decoder = png::Decoder::new(png_bytes);
    decoder.set_transformations(png::Transformations::EXPAND);
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    assert_eq!(info.color_type, png::ColorType::Grayscale);
    let (w, h) = (info.width as usize, info.height as usize);
    let mut img =
        rqrr::PreparedImage::prepare_from_greyscale(w, h, |x, y| buf[y * info.line_size + x]);
    let grids = img.detect_grids();
    assert_eq!(grids.len(), 1);
    grids[0].decode().unwrap().1
}

/// The path, headers and form of an Oracle Commerce password login (a POST).
pub fn occ_login_request(
    email: &str,
    password: &str,
) -> (
    &'static str,
    &'static [(&'static str, &'static str)],
    String,
) {
    let form = format!(
        "grant_type=password&username={}&password={}",
        urlencode(email),
        urlencode(password)
    );
    let headers = &[("content-type", "application/x-www-form-urlencoded")];
    ("/ccadmin/v1/login", headers, form)
}

pub fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// One request on a fresh connection; panics when there is no answer.
pub async fn send(
    addr: SocketAddr,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: Bytes,
) -> TestResponse {
    try_send(addr, method, path, headers, body)
        .await
        .unwrap_or_else(|| panic!("no answer from {addr}{path}"))
}

/// The compiled binary.
pub const BIN: &str = env!("CARGO_BIN_EXE_profiled");

/// Opens a stopped server's directory with sled itself (to plant damage), as profiled creates
/// it (2 MiB segments), retrying while sled's background thread still holds the lock.
pub fn open_raw_sled(dir: &Path) -> sled::Db {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match sled::Config::new()
            .path(dir)
            .segment_size(2 * 1024 * 1024)
            .open()
        {
            Ok(db) => return db,
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => panic!("cannot open {}: {e}", dir.display()),
        }
    }
}

/// `profiled check --data-dir <dir>`, run to completion.
pub fn offline_check_output(dir: impl AsRef<Path>) -> std::process::Output {
    Command::new(BIN)
        .args(["check", "--data-dir"])
        .arg(dir.as_ref())
        .output()
        .expect("profiled check runs")
}

/// `profiled check` on a stopped server's directory finds nothing wrong.
pub fn assert_checks_clean(dir: impl AsRef<Path>) {
    let out = offline_check_output(dir);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

/// The binary, started on a free port; its stderr is collected on a thread.
pub struct Process {
    pub child: Child,
    pub addr: std::net::SocketAddr,
    pub stderr: std::sync::Arc<std::sync::Mutex<String>>,
}

/// A test that fails half-way must not leave its server running.
impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Process {
    pub fn start(dir: &Path, password: Option<&str>) -> Process {
        Self::try_start(dir, password, &[], &[]).unwrap_or_else(|e| panic!("{e}"))
    }

    /// The same, with more environment variables.
    pub fn start_with_env(dir: &Path, password: Option<&str>, env: &[(&str, &str)]) -> Process {
        Self::try_start(dir, password, &[], env).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Starts `profiled serve` with `args` after the usual flags and `env` set; `Err` with the
    /// exit status and stderr when it ends instead of listening.
    pub fn try_start(
        dir: &Path,
        password: Option<&str>,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Result<Process, String> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let listen = addr.to_string();
        let mut all = vec!["serve", "--listen", &listen, "--data-dir"];
        let dir = dir.to_str().unwrap();
        all.push(dir);
        all.extend_from_slice(args);
        Self::spawn(&all, password, env, |_| {
            std::net::TcpStream::connect(addr).ok().map(|_| addr)
        })
    }

    /// Starts `profiled` with exactly `args` (and `env`, and the password), and waits until
    /// `ready` (given what it logged so far) gives the address to talk to; `Err` with the exit
    /// status and stderr when it ends first.
    pub fn spawn(
        args: &[&str],
        password: Option<&str>,
        env: &[(&str, &str)],
        ready: impl Fn(&str) -> Option<SocketAddr>,
    ) -> Result<Process, String> {
        let mut cmd = Command::new(BIN);
        cmd.args(args)
            .env_remove("PROFILED_ADMIN_PASSWORD")
            .env("RUST_LOG", "info,profiled=debug")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        if let Some(p) = password {
            cmd.env("PROFILED_ADMIN_PASSWORD", p);
        }
        cmd.envs(env.iter().copied());
        let mut child = cmd.spawn().unwrap();
        let stderr = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let pipe = child.stderr.take().unwrap();
        let sink = stderr.clone();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                let mut s = sink.lock().unwrap();
                s.push_str(&line);
                s.push('\n');
            }
        });
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let logged = stderr.lock().unwrap().clone();
            if let Some(addr) = ready(&logged) {
                return Ok(Process {
                    child,
                    addr,
                    stderr,
                });
            }
            if let Some(status) = child.try_wait().unwrap() {
                let _ = reader.join();
                return Err(format!("{status}\n{}", stderr.lock().unwrap()));
            }
            assert!(Instant::now() < deadline, "server did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// What the server has logged so far.
    pub fn log(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Waits up to 10 s for the log to hold `text` (after the first `skip` bytes); panics
    /// with the log otherwise.
    pub fn wait_for_log(&self, text: &str, skip: usize) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.log().get(skip..).is_some_and(|l| l.contains(text)) {
            assert!(Instant::now() < deadline, "no {text:?} in\n{}", self.log());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok);
    }

    pub fn wait(mut self) -> (std::process::ExitStatus, String) {
        let status = self.child.wait().unwrap();
        std::thread::sleep(Duration::from_millis(100));
        let err = self.stderr.lock().unwrap().clone();
        (status, err)
    }

    pub async fn login(&self, email: &str, password: &str) -> TestResponse {
        let (path, headers, form) = occ_login_request(email, password);
        send(self.addr, Method::POST, path, headers, form.into()).await
    }
}

/// Everything `pipe` says, line by line, collected on a thread of its own.
pub fn collect_lines(
    pipe: impl std::io::Read + Send + 'static,
) -> std::sync::Arc<std::sync::Mutex<String>> {
    let text = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let sink = text.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines().map_while(Result::ok) {
            let mut s = sink.lock().unwrap();
            s.push_str(&line);
            s.push('\n');
        }
    });
    text
}

/// One request on a fresh connection; `None` when the connection fails or drops (a server
/// killed mid-request).
pub async fn try_send(
    addr: SocketAddr,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: Bytes,
) -> Option<TestResponse> {
    let stream = TcpStream::connect(addr).await.ok()?;
    try_send_on(stream, addr, method, path, headers, body).await
}

/// One request on an open connection to `addr` (TCP, or TLS over it); `None` when it fails or
/// drops.
pub async fn try_send_on(
    stream: impl tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    addr: SocketAddr,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: Bytes,
) -> Option<TestResponse> {
    let mut sender = open_http(stream).await?;
    let mut req = Request::builder().method(method).uri(path);
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
        req = req.header("host", addr.to_string());
    }
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    request_on(&mut sender, req.body(Full::new(body)).ok()?).await
}

/// An HTTP/1.1 client connection over `stream`, kept alive for several requests.
pub async fn open_http(
    stream: impl tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
) -> Option<hyper::client::conn::http1::SendRequest<Full<Bytes>>> {
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .ok()?;
    tokio::spawn(conn);
    Some(sender)
}

/// One request on an open client connection; `None` when it fails or drops.
pub async fn request_on(
    sender: &mut hyper::client::conn::http1::SendRequest<Full<Bytes>>,
    req: Request<Full<Bytes>>,
) -> Option<TestResponse> {
    let resp = tokio::time::timeout(Duration::from_secs(30), sender.send_request(req))
        .await
        .ok()?
        .ok()?;
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp.into_body().collect().await.ok()?.to_bytes();
    Some(TestResponse {
        status,
        headers,
        body,
    })
}

/// What `curl --cacert <cacert> <url>` prints (what the README shows for HTTPS), or `None`
/// when curl is not installed (CI installs it).
pub fn curl_with_cacert(cacert: &Path, url: &str) -> Option<String> {
    let out = match Command::new("curl")
        .args(["-sS", "--cacert"])
        .arg(cacert)
        .arg(url)
        .output()
    {
        Ok(out) => out,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => panic!("curl: {e}"),
    };
    assert!(
        out.status.success(),
        "curl {url}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The binary with `args` and `env` (PROFILED_* variables of the test's environment removed),
/// run to completion.
pub fn run_bin(args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let mut cmd = Command::new(BIN);
    cmd.args(args).stdin(Stdio::null());
    for (k, _) in std::env::vars() {
        if k.starts_with("PROFILED_") {
            cmd.env_remove(k);
        }
    }
    cmd.envs(env.iter().copied())
        .output()
        .expect("profiled runs")
}

/// Copies a (stopped) data directory, files and sub-directories.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// Every file under `dir` with its content, to tell whether anything changed.
pub fn dir_contents(dir: &Path) -> std::collections::BTreeMap<std::path::PathBuf, Vec<u8>> {
    let mut out = std::collections::BTreeMap::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_dir() {
            out.extend(dir_contents(&entry.path()));
        } else {
            out.insert(entry.path(), std::fs::read(entry.path()).unwrap());
        }
    }
    out
}

/// A stopped data directory with the administrator, `accounts` more admin profiles and
/// `profiles` client profiles, written through the real binary and stopped cleanly.
pub async fn populated_dir(accounts: usize, profiles: usize) -> TempDir {
    let dir = tempfile::tempdir().unwrap();
    let p = Process::start(dir.path(), Some(ADMIN_PASSWORD));
    let r = p.login(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let auth = format!("Bearer {}", r.json()["access_token"].as_str().unwrap());
    for i in 0..accounts {
        let body = json!({"firstName": "F", "lastName": "L", "email": format!("user{i}@example.com"),
                          "roles": ["clientProfileViewerRole"], "password": ADMIN_PASSWORD});
        let r = send(
            p.addr,
            Method::POST,
            "/ccadmin/v1/adminProfiles",
            &[
                ("authorization", &auth),
                ("content-type", "application/json"),
            ],
            Bytes::from(body.to_string()),
        )
        .await;
        assert_eq!(r.status, 200, "{:?}", r.body);
    }
    for i in 0..profiles {
        let body = json!({"name": format!("Profile {i}"), "identityProviderName": "local"});
        let r = send(
            p.addr,
            Method::POST,
            "/admin/client-profiles",
            &[
                ("authorization", &auth),
                ("accept", ACCEPT_V23),
                ("content-type", "application/json"),
            ],
            Bytes::from(body.to_string()),
        )
        .await;
        assert_eq!(r.status, 200, "{:?}", r.body);
    }
    p.signal("-TERM");
    let (status, err) = p.wait();
    assert!(status.success(), "{err}");
    dir
}

/// One request on a fresh connection opened from `local` (any address of 127.0.0.0/8 works on
/// Linux: the tests use 127.0.0.2 as a second client); panics when there is no answer.
pub async fn send_from(
    local: std::net::IpAddr,
    addr: SocketAddr,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: Bytes,
) -> TestResponse {
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket
        .bind(SocketAddr::new(local, 0))
        .expect("bind the client address");
    let stream = socket.connect(addr).await.expect("connect");
    try_send_on(stream, addr, method, path, headers, body)
        .await
        .unwrap_or_else(|| panic!("no answer from {addr}{path}"))
}

impl TestServer {
    /// An Appgate login sent from the client address `local`.
    pub async fn appgate_login_from(
        &self,
        local: std::net::IpAddr,
        email: &str,
        password: &str,
    ) -> TestResponse {
        let body = json!({"providerName": "local", "deviceId": DEVICE_ID, "username": email, "password": password});
        send_from(
            local,
            self.addr,
            Method::POST,
            "/admin/login",
            &[("accept", ACCEPT_V23), ("content-type", "application/json")],
            serde_json::to_vec(&body).unwrap().into(),
        )
        .await
    }
}
