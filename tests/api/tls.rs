//! HTTPS through the real binary and a real TLS client (rustls): the generated certificate,
//! a certificate of one's own and its reload on SIGHUP, protocol versions, the handshake time
//! limit, self links, and the start-up checks.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hyper::Method;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls_pki_types::pem::PemObject;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::helpers::*;

/// The address the server logged it listens on for `scheme` (`http` or `https`).
pub fn logged_addr(log: &str, scheme: &str) -> Option<SocketAddr> {
    log.lines()
        .filter(|l| {
            l.contains("listening")
                && l.split_whitespace()
                    .any(|w| w == format!("scheme={scheme}"))
        })
        .find_map(|l| l.split_whitespace().find_map(|w| w.strip_prefix("addr=")))
        .and_then(|a| a.parse().ok())
}

/// The value of `field=` in the first log line holding `message`.
fn logged_field(log: &str, message: &str, field: &str) -> Option<String> {
    let line = log.lines().find(|l| l.contains(message))?;
    let value = line
        .split_whitespace()
        .find_map(|w| w.strip_prefix(field))?;
    Some(value.trim_matches('"').to_string())
}

/// `profiled serve` with HTTPS on a free port of 127.0.0.1, and plain HTTP on another when
/// `plain` (else `--listen none`); `addr` is the HTTPS address. Ready once it serves.
fn start_tls(dir: &Path, plain: bool, args: &[&str]) -> Result<Process, String> {
    let listen = if plain { "127.0.0.1:0" } else { "none" };
    let mut all = vec![
        "serve",
        "--listen",
        listen,
        "--tls-listen",
        "127.0.0.1:0",
        "--data-dir",
        dir.to_str().unwrap(),
    ];
    all.extend_from_slice(args);
    Process::spawn(&all, Some(ADMIN_PASSWORD), &[], |log| {
        // The certificate is loaded once the store is open: then the server accepts.
        if !log.contains("INFO profiled::tls: TLS certificate") {
            return None;
        }
        logged_addr(log, "https")
    })
}

/// SHA-256 as `openssl x509 -noout -fingerprint -sha256` prints it.
fn fingerprint(der: &[u8]) -> String {
    Sha256::digest(der)
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// `start_tls` on a new data directory (`<temp>/db`) with its generated certificate: the
/// directory's owner, the server and the certificate.
fn start_generated(
    plain: bool,
    args: &[&str],
) -> (tempfile::TempDir, Process, CertificateDer<'static>) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("db");
    let p = start_tls(&data, plain, args).unwrap();
    let cert = read_pem_cert(&data.join("tls-cert.pem"));
    (dir, p, cert)
}

fn read_pem_cert(path: &Path) -> CertificateDer<'static> {
    CertificateDer::from_pem_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// A TLS client connection: what the server presented, and HTTP on top.
struct TlsConn {
    addr: SocketAddr,
    served: String,
    version: rustls::ProtocolVersion,
    http: hyper::client::conn::http1::SendRequest<http_body_util::Full<Bytes>>,
}

impl TlsConn {
    /// A request on this connection (`Host` is the address unless given).
    async fn send(
        &mut self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: String,
    ) -> TestResponse {
        let mut req = hyper::Request::builder().method(method).uri(path);
        if !headers.iter().any(|(k, _)| *k == "host") {
            req = req.header("host", self.addr.to_string());
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = req
            .body(http_body_util::Full::new(Bytes::from(body)))
            .unwrap();
        request_on(&mut self.http, req)
            .await
            .expect("an answer over TLS")
    }

    async fn get(&mut self, path: &str, headers: &[(&str, &str)]) -> TestResponse {
        self.send(Method::GET, path, headers, String::new()).await
    }
}

/// Connects to `addr` as `name`, trusting only `trusted`, offering only `versions`.
async fn connect(
    addr: SocketAddr,
    name: &str,
    trusted: &CertificateDer<'static>,
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> Result<TlsConn, std::io::Error> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(trusted.clone()).unwrap();
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(versions)
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let stream = TcpStream::connect(addr).await?;
    let name = ServerName::try_from(name.to_string()).unwrap();
    let tls = TlsConnector::from(Arc::new(config))
        .connect(name, stream)
        .await?;
    let (_, session) = tls.get_ref();
    let served = fingerprint(&session.peer_certificates().unwrap()[0]);
    let version = session.protocol_version().unwrap();
    let http = open_http(tls).await.expect("HTTP over TLS");
    Ok(TlsConn {
        addr,
        served,
        version,
        http,
    })
}

const BOTH: &[&rustls::SupportedProtocolVersion] =
    &[&rustls::version::TLS13, &rustls::version::TLS12];

#[tokio::test]
async fn the_first_start_generates_a_certificate_a_client_can_trust_and_a_restart_reuses_it() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("db");
    let p = start_tls(&data, false, &[]).unwrap();
    let log = p.log();
    // HTTPS only: no plain listener.
    assert!(logged_addr(&log, "http").is_none(), "{log}");
    let cert_file = data.join("tls-cert.pem");
    let key_file = data.join("tls-key.pem");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&key_file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the key is the server user's alone");
    let cert = read_pem_cert(&cert_file);
    let logged = logged_field(&log, "generated a self-signed TLS certificate", "sha256=")
        .unwrap_or_else(|| panic!("no fingerprint logged:\n{log}"));
    assert_eq!(
        logged,
        fingerprint(&cert),
        "the log shows the file's fingerprint"
    );
    // The key's content never reaches the log.
    let key_pem = std::fs::read_to_string(&key_file).unwrap();
    let key_body = key_pem.lines().nth(1).unwrap();
    assert!(!log.contains(key_body));

    // The default names: the machine's, localhost and both loopback addresses.
    for name in ["localhost", "127.0.0.1", "::1"] {
        let mut c = connect(p.addr, name, &cert, BOTH).await.unwrap();
        assert_eq!(c.served, logged, "{name}");
        let r = c.get("/healthz", &[]).await;
        assert_eq!(r.status, 200);
    }
    // A name the certificate is not for is refused by the client.
    let e = connect(p.addr, "not-this-host.example", &cert, BOTH)
        .await
        .err()
        .expect("a name outside the certificate fails verification");
    assert!(e.to_string().contains("not valid for name"), "{e}");

    // What the README shows.
    let url = format!("https://localhost:{}/healthz", p.addr.port());
    if let Some(out) = curl_with_cacert(&cert_file, &url) {
        assert_eq!(out, r#"{"status":"ok"}"#);
    }

    // A restart reuses the pair.
    p.signal("-TERM");
    let (status, err) = p.wait();
    assert!(status.success(), "{err}");
    let p = start_tls(&data, false, &[]).unwrap();
    assert!(!p.log().contains("generated a self-signed"), "{}", p.log());
    assert_eq!(read_pem_cert(&cert_file), cert);
    let c = connect(p.addr, "localhost", &cert, BOTH).await.unwrap();
    assert_eq!(c.served, logged);
}

#[tokio::test]
async fn the_host_names_of_the_generated_certificate_come_from_the_flag_or_the_config_file() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("profiled.toml");
    std::fs::write(
        &config,
        "tls-hostname = [\"sdp.example.test\", \"192.0.2.7\"]\n",
    )
    .unwrap();
    let data = dir.path().join("db");
    let p = start_tls(&data, false, &["--config", config.to_str().unwrap()]).unwrap();
    let cert = read_pem_cert(&data.join("tls-cert.pem"));
    for name in ["sdp.example.test", "192.0.2.7"] {
        let mut c = connect(p.addr, name, &cert, BOTH).await.unwrap();
        assert_eq!(c.get("/healthz", &[]).await.status, 200);
    }
    assert!(connect(p.addr, "localhost", &cert, BOTH).await.is_err());
    drop(p);

    // The flag, repeated.
    let data = dir.path().join("other");
    let p = start_tls(
        &data,
        false,
        &[
            "--tls-hostname",
            "a.example.test",
            "--tls-hostname",
            "b.example.test",
        ],
    )
    .unwrap();
    let cert = read_pem_cert(&data.join("tls-cert.pem"));
    for name in ["a.example.test", "b.example.test"] {
        connect(p.addr, name, &cert, BOTH).await.unwrap();
    }
    assert!(
        connect(p.addr, "sdp.example.test", &cert, BOTH)
            .await
            .is_err()
    );
}

/// A new self-signed pair for `localhost`, written to `cert` and `key`; its certificate.
fn write_pair(cert: &Path, key: &Path) -> CertificateDer<'static> {
    let key_pair = rcgen::KeyPair::generate().unwrap();
    let c = rcgen::CertificateParams::new(vec!["localhost".to_string()])
        .unwrap()
        .self_signed(&key_pair)
        .unwrap();
    std::fs::write(cert, c.pem()).unwrap();
    std::fs::write(key, key_pair.serialize_pem()).unwrap();
    c.der().clone()
}

#[tokio::test]
async fn sighup_reloads_the_certificate_keeps_open_connections_and_a_bad_pair_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (cert_file, key_file) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let first = write_pair(&cert_file, &key_file);
    let data = dir.path().join("db");
    let p = start_tls(
        &data,
        false,
        &[
            "--tls-cert",
            cert_file.to_str().unwrap(),
            "--tls-key",
            key_file.to_str().unwrap(),
        ],
    )
    .unwrap();
    assert!(!data.join("tls-cert.pem").exists(), "nothing generated");
    let mut open = connect(p.addr, "localhost", &first, BOTH).await.unwrap();
    assert_eq!(open.served, fingerprint(&first));
    assert_eq!(open.get("/healthz", &[]).await.status, 200);

    let second = write_pair(&cert_file, &key_file);
    let seen = p.log().len();
    p.signal("-HUP");
    p.wait_for_log("reloaded the TLS certificate", seen);
    let logged = logged_field(&p.log()[seen..], "reloaded the TLS certificate", "sha256=");
    assert_eq!(logged.unwrap(), fingerprint(&second));
    // New handshakes get the new pair; the connection opened before goes on.
    let mut fresh = connect(p.addr, "localhost", &second, BOTH).await.unwrap();
    assert_eq!(fresh.served, fingerprint(&second));
    assert!(connect(p.addr, "localhost", &first, BOTH).await.is_err());
    assert_eq!(open.get("/healthz", &[]).await.status, 200);
    assert_eq!(fresh.get("/healthz", &[]).await.status, 200);

    // Garbage instead of a certificate: the reload fails, says why, and keeps the pair.
    std::fs::write(&cert_file, "not a certificate\n").unwrap();
    let seen = p.log().len();
    p.signal("-HUP");
    p.wait_for_log("TLS reload failed", seen);
    let log = p.log()[seen..].to_string();
    assert!(log.contains("holds no PEM certificate"), "{log}");
    let c = connect(p.addr, "localhost", &second, BOTH).await.unwrap();
    assert_eq!(c.served, fingerprint(&second));

    // A certificate with another pair's key: refused too.
    let other_dir = tempfile::tempdir().unwrap();
    let other_key = other_dir.path().join("key.pem");
    write_pair(&cert_file, &other_key);
    write_pair(&other_dir.path().join("cert.pem"), &key_file);
    let seen = p.log().len();
    p.signal("-HUP");
    p.wait_for_log("TLS reload failed", seen);
    assert!(
        p.log()[seen..].contains("does not fit the certificate"),
        "{}",
        p.log()
    );
    let mut c = connect(p.addr, "localhost", &second, BOTH).await.unwrap();
    assert_eq!(c.served, fingerprint(&second));
    assert_eq!(c.get("/healthz", &[]).await.status, 200);
}

#[tokio::test]
async fn tls_1_2_and_1_3_negotiate_and_older_versions_are_refused() {
    let (_dir, p, cert) = start_generated(false, &[]);
    for (version, expected) in [
        (&rustls::version::TLS12, rustls::ProtocolVersion::TLSv1_2),
        (&rustls::version::TLS13, rustls::ProtocolVersion::TLSv1_3),
    ] {
        let mut c = connect(p.addr, "localhost", &cert, &[version])
            .await
            .unwrap();
        assert_eq!(c.version, expected);
        assert_eq!(c.get("/healthz", &[]).await.status, 200);
    }
    // rustls has no code for TLS 1.1 and older (no client here can even offer them): a
    // ClientHello of TLS 1.1, written by hand, is answered with an alert and the end.
    let mut hello = vec![0x03, 0x02]; // client_version TLS 1.1
    hello.extend([7u8; 32]); // random
    hello.push(0); // no session id
    hello.extend([0x00, 0x04, 0x00, 0x2f, 0x00, 0x35]); // two RSA+AES-CBC suites
    hello.extend([0x01, 0x00]); // no compression
    let mut handshake = vec![0x01, 0x00, 0x00, hello.len() as u8];
    handshake.extend(hello);
    let mut record = vec![0x16, 0x03, 0x01, 0x00, handshake.len() as u8];
    record.extend(handshake);
    let mut s = TcpStream::connect(p.addr).await.unwrap();
    s.write_all(&record).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut answer))
        .await
        .expect("the server closes")
        .unwrap();
    assert_eq!(answer.first(), Some(&0x15), "an alert record: {answer:?}");
    assert_eq!(answer.get(5), Some(&0x02), "a fatal one: {answer:?}");
}

/// Waits for the server to close `stream` without sending a byte, at most `limit`.
async fn closed_within(stream: &mut TcpStream, limit: Duration, when: &str) {
    let mut buf = [0u8; 16];
    let n = tokio::time::timeout(limit, stream.read(&mut buf))
        .await
        .unwrap_or_else(|_| panic!("not closed {when}"))
        .unwrap_or(0);
    assert_eq!(n, 0, "closed without a byte {when}");
}

#[tokio::test]
async fn an_idle_handshake_is_closed_at_the_time_limit_and_counts_against_the_address_limit() {
    let args = [
        "--tls-handshake-timeout",
        "1",
        "--max-connections-per-address",
        "1",
    ];
    let (_dir, p, cert) = start_generated(false, &args);
    let started = Instant::now();
    let mut idle = TcpStream::connect(p.addr).await.unwrap();
    // The address's one slot is taken by the idle handshake: a second connection is closed
    // at once.
    let mut second = TcpStream::connect(p.addr).await.unwrap();
    closed_within(
        &mut second,
        Duration::from_millis(900),
        "before the handshake limit",
    )
    .await;
    closed_within(&mut idle, Duration::from_secs(5), "at the handshake limit").await;
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(4),
        "{took:?}"
    );
    // The slot is free again (once the server's side of the close is done).
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut c = connect(p.addr, "localhost", &cert, BOTH).await.unwrap();
    assert_eq!(c.get("/healthz", &[]).await.status, 200);
}

#[tokio::test]
async fn sigterm_closes_tls_connections_gracefully_and_does_not_wait_for_a_handshake() {
    let (_dir, p, cert) = start_generated(false, &[]);
    let mut c = connect(p.addr, "localhost", &cert, BOTH).await.unwrap();
    assert_eq!(c.get("/healthz", &[]).await.status, 200);
    // Connected, never a byte: the handshake limit (10 s by default) has not passed.
    let mut idle = TcpStream::connect(p.addr).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = Instant::now();
    p.signal("-TERM");
    closed_within(&mut idle, Duration::from_secs(5), "at the shutdown").await;
    let (status, err) = p.wait();
    assert!(status.success(), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert!(err.contains("stopped"), "{err}");
    assert!(!err.contains("did not finish in time"), "{err}");
}

#[tokio::test]
async fn self_links_say_https_over_tls_and_http_over_the_plain_listener() {
    let (_dir, p, cert) = start_generated(true, &[]);
    let log = p.log();
    let plain = logged_addr(&log, "http").expect("a plain listener too");
    // Loopback only: no warning about plain HTTP.
    assert!(!log.contains("plain HTTP on an address"), "{log}");
    let mut c = connect(p.addr, "localhost", &cert, BOTH).await.unwrap();
    let (path, headers, form) = occ_login_request(ADMIN_EMAIL, ADMIN_PASSWORD);
    let login = c.send(Method::POST, path, headers, form).await;
    assert_eq!(login.status, 200);
    let auth = format!("Bearer {}", login.json()["access_token"].as_str().unwrap());
    let host = format!("localhost:{}", p.addr.port());
    let r = c
        .get(
            "/ccadmin/v1/adminProfiles?limit=1",
            &[("authorization", &auth), ("host", &host)],
        )
        .await;
    assert_eq!(
        r.json()["links"][0]["href"],
        format!("https://{host}/ccadmin/v1/adminProfiles?limit=1")
    );
    let r = send(
        plain,
        Method::GET,
        "/ccadmin/v1/adminProfiles?limit=1",
        &[("authorization", &auth)],
        Bytes::new(),
    )
    .await;
    assert_eq!(
        r.json()["links"][0]["href"],
        format!("http://{plain}/ccadmin/v1/adminProfiles?limit=1")
    );
}

#[tokio::test]
async fn plain_http_on_an_address_other_machines_reach_logs_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let p = Process::spawn(
        &[
            "serve",
            "--listen",
            "0.0.0.0:0",
            "--data-dir",
            dir.path().join("db").to_str().unwrap(),
        ],
        Some(ADMIN_PASSWORD),
        &[],
        |log| logged_addr(log, "http"),
    )
    .unwrap();
    p.wait_for_log("plain HTTP on an address other machines reach", 0);
}

#[test]
fn the_start_fails_for_no_listener_half_a_pair_or_a_ca_cert_that_is_no_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("db");
    let data = data.to_str().unwrap();
    let garbage = dir.path().join("garbage.pem");
    std::fs::write(
        &garbage,
        "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let garbage = garbage.to_str().unwrap();
    for (args, code, expected) in [
        (
            vec!["--listen", "none"],
            2,
            "nothing to listen on: --listen none needs --tls-listen",
        ),
        (
            vec![
                "--listen",
                "127.0.0.1:0",
                "--tls-listen",
                "127.0.0.1:0",
                "--tls-cert",
                garbage,
            ],
            2,
            "--tls-cert and --tls-key go together",
        ),
        (
            vec!["--listen", "127.0.0.1:0", "--ca-cert", garbage],
            1,
            "not an X.509 certificate",
        ),
    ] {
        let mut all = vec!["serve", "--data-dir", data];
        all.extend(args);
        let out = run_bin(&all, &[("PROFILED_ADMIN_PASSWORD", ADMIN_PASSWORD)]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(code), "{all:?}: {err}");
        assert!(err.contains(expected), "{all:?}: {err}");
    }
    assert!(
        !Path::new(data).exists(),
        "refused before the data directory is made"
    );
    // A broken certificate of one's own stops the start too, naming the file.
    let key = dir.path().join("key.pem");
    std::fs::write(&key, "no key\n").unwrap();
    let out = run_bin(
        &[
            "serve",
            "--data-dir",
            data,
            "--listen",
            "none",
            "--tls-listen",
            "127.0.0.1:0",
            "--tls-cert",
            garbage,
            "--tls-key",
            key.to_str().unwrap(),
        ],
        &[("PROFILED_ADMIN_PASSWORD", ADMIN_PASSWORD)],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("HTTPS (--tls-listen)") && err.contains(garbage),
        "{err}"
    );
}
