//! Running as a service: the configuration file (`--config`) and readiness notification
//! (`NOTIFY_SOCKET`), through the real binary.

use std::net::SocketAddr;
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::helpers::*;

fn free_addr() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// Starts the binary with exactly `args` and `env` (no PROFILED_* variable of the test's own
/// environment) and waits until `addr` answers.
fn start(args: &[&str], env: &[(&str, &str)], addr: SocketAddr) -> Process {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for (k, _) in std::env::vars() {
        if k.starts_with("PROFILED_") || k == "NOTIFY_SOCKET" {
            cmd.env_remove(k);
        }
    }
    cmd.env("PROFILED_ADMIN_PASSWORD", ADMIN_PASSWORD)
        .envs(env.iter().copied());
    let mut child = cmd.spawn().unwrap();
    let stderr = collect_lines(child.stderr.take().unwrap());
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(addr).is_err() {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("{status}\n{}", stderr.lock().unwrap());
        }
        assert!(Instant::now() < deadline, "server did not start on {addr}");
        std::thread::sleep(Duration::from_millis(50));
    }
    Process {
        child,
        addr,
        stderr,
    }
}

fn write_config(dir: &Path, text: &str) -> String {
    let path = dir.join("profiled.toml");
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

async fn stop(p: Process) {
    p.signal("-TERM");
    let (status, err) = p.wait();
    assert!(status.success(), "{err}");
}

#[tokio::test]
async fn a_config_file_sets_the_listen_address_and_the_data_directory() {
    let dir = tempfile::tempdir().unwrap();
    let addr = free_addr();
    let data = dir.path().join("data");
    let config = write_config(
        dir.path(),
        &format!(
            "# profiled\nlisten = \"{addr}\"\ndata-dir = \"{}\"\ncache-mb = 16\nlogin-limit-loopback = false\n",
            data.display()
        ),
    );
    let p = start(&["--config", &config], &[], addr);
    assert_eq!(p.login(ADMIN_EMAIL, ADMIN_PASSWORD).await.status, 200);
    stop(p).await;
    assert!(
        data.join("db").exists(),
        "the database is in the file's data-dir"
    );

    // The same through PROFILED_CONFIG and `serve`.
    let p = start(&["serve"], &[("PROFILED_CONFIG", &config)], addr);
    assert_eq!(p.login(ADMIN_EMAIL, ADMIN_PASSWORD).await.status, 200);
    stop(p).await;
}

#[tokio::test]
async fn a_flag_and_an_environment_variable_win_over_the_config_file() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let config = write_config(
        dir.path(),
        &format!(
            "listen = \"{}\"\ndata-dir = \"{}\"\n",
            free_addr(),
            data.display()
        ),
    );
    let flag = free_addr().to_string();
    let p = start(
        &["--config", &config, "--listen", &flag],
        &[],
        flag.parse().unwrap(),
    );
    assert_eq!(p.login(ADMIN_EMAIL, ADMIN_PASSWORD).await.status, 200);
    stop(p).await;

    let env = free_addr().to_string();
    let other = dir.path().join("other");
    let p = start(
        &["--config", &config],
        &[
            ("PROFILED_LISTEN", &env),
            ("PROFILED_DATA_DIR", other.to_str().unwrap()),
        ],
        env.parse().unwrap(),
    );
    assert_eq!(p.login(ADMIN_EMAIL, ADMIN_PASSWORD).await.status, 200);
    stop(p).await;
    assert!(other.join("db").exists(), "PROFILED_DATA_DIR won");
}

#[test]
fn an_unknown_key_or_a_wrong_type_in_the_config_file_stops_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data = data.to_str().unwrap();
    for (text, expected) in [
        ("lissten = \"127.0.0.1:0\"\n", "unknown key `lissten`"),
        ("data_dir = \"x\"\n", "unknown key `data_dir`"),
        ("cache-mb = \"64\"\n", "`cache-mb` must be an integer"),
        ("listen = 8080\n", "`listen` must be a string"),
        (
            "login-limit-loopback = 1\n",
            "`login-limit-loopback` must be a boolean",
        ),
        ("config = \"other.toml\"\n", "unknown key `config`"),
        (
            "tls-hostname = [\"a.test\", 5]\n",
            "`tls-hostname` must be an array of strings, found an array holding integer",
        ),
        ("listen = \n", "configuration file"),
    ] {
        let config = write_config(dir.path(), text);
        let out = run_bin(&["--config", &config, "--data-dir", data], &[]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{text}: {err}");
        assert!(err.contains(expected), "{text}: {err}");
        assert!(err.contains(&config), "the message names the file: {err}");
    }
    // A value the flag refuses names the file too.
    let config = write_config(dir.path(), "cache-mb = 0\n");
    let out = run_bin(&["--config", &config, "--data-dir", data], &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("--cache-mb"), "{err}");
    assert!(
        err.contains(&format!("configuration file {config}")),
        "{err}"
    );
    // A missing file.
    let missing = dir.path().join("missing.toml");
    let out = run_bin(&["--config", missing.to_str().unwrap()], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing.toml"));
    assert!(!Path::new(data).exists(), "nothing was started");
}

/// Receives one datagram, waiting at most 20 s.
fn receive(socket: &UnixDatagram) -> String {
    let mut buf = [0u8; 256];
    let n = socket
        .recv(&mut buf)
        .expect("a notification within the timeout");
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

#[tokio::test]
async fn the_service_manager_is_told_ready_once_the_server_answers_and_stopping_at_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notify");
    let socket = UnixDatagram::bind(&path).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let addr = free_addr();
    let data = dir.path().join("data");
    let mut child = Command::new(BIN)
        .args(["--listen", &addr.to_string(), "--data-dir"])
        .arg(&data)
        .env("PROFILED_ADMIN_PASSWORD", ADMIN_PASSWORD)
        .env("NOTIFY_SOCKET", &path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = collect_lines(child.stderr.take().unwrap());
    let p = Process {
        child,
        addr,
        stderr,
    };
    assert_eq!(receive(&socket), "READY=1");
    // Ready means ready: the store is open and the first request is answered.
    assert_eq!(p.login(ADMIN_EMAIL, ADMIN_PASSWORD).await.status, 200);
    p.signal("-TERM");
    assert_eq!(receive(&socket), "STOPPING=1");
    let (status, err) = p.wait();
    assert!(status.success(), "{err}");
    assert!(!err.contains("cannot notify"), "{err}");
}

#[test]
fn an_abstract_notify_socket_is_told_too_and_a_failed_start_is_never_ready() {
    use std::os::linux::net::SocketAddrExt;
    let name = format!("profiled-test-{}-{}", std::process::id(), line!());
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
    let socket = UnixDatagram::bind_addr(&addr).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let listen = free_addr().to_string();
    let data = dir.path().join("data");
    let data = data.to_str().unwrap();
    let notify = format!("@{name}");
    let mut child = Command::new(BIN)
        .args(["--listen", &listen, "--data-dir", data])
        .env("PROFILED_ADMIN_PASSWORD", ADMIN_PASSWORD)
        .env("NOTIFY_SOCKET", &notify)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    assert_eq!(receive(&socket), "READY=1");
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    assert_eq!(receive(&socket), "STOPPING=1");
    assert!(child.wait().unwrap().success());

    // A weak administrator password fails the start after the listener is bound: no READY.
    let other = dir.path().join("fresh");
    let out = Command::new(BIN)
        .args(["--listen", &free_addr().to_string(), "--data-dir"])
        .arg(&other)
        .env("PROFILED_ADMIN_PASSWORD", "short")
        .env("NOTIFY_SOCKET", &notify)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    socket.set_nonblocking(true).unwrap();
    let mut buf = [0u8; 64];
    assert!(socket.recv(&mut buf).is_err(), "a failed start said READY");
}

#[tokio::test]
async fn the_shipped_example_settings_file_starts_the_server_as_the_unit_runs_it() {
    let dir = tempfile::tempdir().unwrap();
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/deploy/profiled.toml");
    let addr = free_addr();
    let https = free_addr().to_string();
    // As ExecStart= has it, with the test's own addresses and directory (flags win).
    let p = start(
        &[
            "serve",
            "--data-dir",
            dir.path().to_str().unwrap(),
            "--config",
            example,
            "--listen",
            &addr.to_string(),
            "--tls-listen",
            &https,
        ],
        &[],
        addr,
    );
    assert_eq!(
        p.login("admin@example.com", ADMIN_PASSWORD).await.status,
        200
    );
    // HTTPS with the generated certificate, which curl trusts when told to.
    let port = https.rsplit(':').next().unwrap();
    let url = format!("https://localhost:{port}/healthz");
    if let Some(out) = curl_with_cacert(&dir.path().join("tls-cert.pem"), &url) {
        assert_eq!(out, r#"{"status":"ok"}"#);
    }
    stop(p).await;
}
