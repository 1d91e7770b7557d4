//! HTTPS: the server's certificate and key (given with `--tls-cert`/`--tls-key`, or generated
//! self-signed into the data directory on the first start), the rustls configuration (TLS 1.2
//! and 1.3 only, the ring provider, HTTP/1.1 by ALPN) and its reload on SIGHUP.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use sha2::{Digest, Sha256};
use tokio_rustls::TlsAcceptor;

use crate::config::Config;

/// The generated certificate in the data directory (PEM). Never overwritten: a restart reuses
/// it; delete it together with the key to have a new pair generated.
pub const CERT_FILE: &str = "tls-cert.pem";
/// The generated certificate's private key in the data directory (PEM, mode 600).
pub const KEY_FILE: &str = "tls-key.pem";
/// How long a generated certificate is valid: the most Apple's systems accept for a TLS
/// server certificate (825 days).
const GENERATED_DAYS: i64 = 825;

/// The running TLS setup: where the pair comes from, and what is served now.
pub struct Tls {
    cert: PathBuf,
    key: PathBuf,
    provider: Arc<CryptoProvider>,
    resolver: Arc<Resolver>,
    acceptor: TlsAcceptor,
}

/// Hands every handshake the pair loaded last; a reload swaps it.
#[derive(Debug)]
struct Resolver(RwLock<Arc<CertifiedKey>>);

impl Resolver {
    fn current(&self) -> Arc<CertifiedKey> {
        self.0.read().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

impl ResolvesServerCert for Resolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

/// The pair as loaded: the key for rustls, the fingerprint and expiry for the log.
struct Loaded {
    key: Arc<CertifiedKey>,
    fingerprint: String,
    expires: String,
    expired: bool,
}

impl Tls {
    /// Loads the configured pair, or (without `--tls-cert`/`--tls-key`) the generated one in
    /// the data directory, generating it first when it is not there. The data directory must
    /// already be open: opening checks that it holds nothing but a database.
    pub fn start(config: &Config) -> Result<Tls, String> {
        let (cert, key) = match (&config.tls_cert, &config.tls_key) {
            (Some(c), Some(k)) => (c.clone(), k.clone()),
            (None, None) => {
                let cert = config.data_dir.join(CERT_FILE);
                let key = config.data_dir.join(KEY_FILE);
                generate_if_missing(&cert, &key, &config.tls_hostnames)?;
                (cert, key)
            }
            _ => return Err("--tls-cert and --tls-key go together: give both or neither".into()),
        };
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let loaded = load(&cert, &key, &provider)?;
        let resolver = Arc::new(Resolver(RwLock::new(loaded.key.clone())));
        let mut server = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|e| format!("TLS setup: {e}"))?
            .with_no_client_auth()
            .with_cert_resolver(resolver.clone());
        // The server speaks HTTP/1.1 only; a client offering h2 as well gets HTTP/1.1.
        server.alpn_protocols = vec![b"http/1.1".to_vec()];
        log_loaded("TLS certificate", &cert, &loaded);
        Ok(Tls {
            cert,
            key,
            provider,
            resolver,
            acceptor: TlsAcceptor::from(Arc::new(server)),
        })
    }

    pub fn acceptor(&self) -> &TlsAcceptor {
        &self.acceptor
    }

    /// Reads the pair from disk again and serves it to new handshakes; open connections keep
    /// the one they began with. On failure the old pair stays and the reason is logged.
    pub fn reload(&self) -> bool {
        match load(&self.cert, &self.key, &self.provider) {
            Ok(loaded) => {
                *self.resolver.0.write().unwrap_or_else(|p| p.into_inner()) = loaded.key.clone();
                log_loaded("reloaded the TLS certificate", &self.cert, &loaded);
                true
            }
            Err(e) => {
                tracing::error!(
                    error = %e,
                    sha256 = %openssl_fingerprint(&self.resolver.current().cert[0]),
                    "TLS reload failed: still serving the previous certificate"
                );
                false
            }
        }
    }
}

fn log_loaded(what: &str, cert: &Path, loaded: &Loaded) {
    if loaded.expired {
        // Served all the same (clients will refuse it): the plain listener, if any, still
        // works, and the operator sees why HTTPS does not.
        tracing::warn!(
            file = %cert.display(),
            expired = %loaded.expires,
            "the TLS certificate has expired: install a new one and send SIGHUP (a generated one: delete it and its key, and restart)"
        );
    }
    tracing::info!(
        file = %cert.display(),
        sha256 = %loaded.fingerprint,
        expires = %loaded.expires,
        "{what}"
    );
}

/// Reads a PEM certificate chain (server certificate first) and its PEM private key, and
/// checks that they belong together.
fn load(cert: &Path, key: &Path, provider: &CryptoProvider) -> Result<Loaded, String> {
    let cert_pem = std::fs::read(cert)
        .map_err(|e| format!("cannot read the certificate {}: {e}", cert.display()))?;
    let chain = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{} is not a PEM certificate chain: {e}", cert.display()))?;
    let Some(first) = chain.first() else {
        return Err(format!("{} holds no PEM certificate", cert.display()));
    };
    let fingerprint = openssl_fingerprint(first);
    let (expires, expired) = expiry(first, cert)?;
    let key_pem =
        std::fs::read(key).map_err(|e| format!("cannot read the key {}: {e}", key.display()))?;
    // The key's bytes never reach a message: only the file's name and what is wrong.
    let private = PrivateKeyDer::from_pem_slice(&key_pem)
        .map_err(|e| format!("{} is not a PEM private key: {e}", key.display()))?;
    let certified = CertifiedKey::from_der(chain, private, provider).map_err(|e| {
        format!(
            "the key {} does not fit the certificate {}: {e}",
            key.display(),
            cert.display()
        )
    })?;
    Ok(Loaded {
        key: Arc::new(certified),
        fingerprint,
        expires,
        expired,
    })
}

/// When the certificate ends (RFC 3339), and whether that has passed; an error when it is not
/// an X.509 certificate.
fn expiry(der: &CertificateDer<'_>, file: &Path) -> Result<(String, bool), String> {
    use x509_parser::prelude::{FromDer, X509Certificate};
    let (_, parsed) = X509Certificate::from_der(der)
        .map_err(|e| format!("{} is not an X.509 certificate: {e}", file.display()))?;
    let not_after = parsed.validity().not_after;
    let text = not_after
        .to_datetime()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| not_after.to_string());
    let expired = not_after.timestamp() < time::OffsetDateTime::now_utc().unix_timestamp();
    Ok((text, expired))
}

/// SHA-256 of a certificate as `openssl x509 -noout -fingerprint -sha256` prints it:
/// uppercase hex pairs joined by colons.
pub fn openssl_fingerprint(der: &[u8]) -> String {
    Sha256::digest(der)
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// The host names a generated certificate is for when none are configured: the machine's
/// host name, `localhost`, `127.0.0.1` and `::1`.
pub fn default_hostnames() -> Vec<String> {
    let mut names = Vec::new();
    let host = rustix::system::uname()
        .nodename()
        .to_string_lossy()
        .into_owned();
    if !host.is_empty() && host != "(none)" {
        names.push(host);
    }
    for n in ["localhost", "127.0.0.1", "::1"] {
        if !names.iter().any(|h| h == n) {
            names.push(n.to_string());
        }
    }
    names
}

/// Generates a self-signed certificate for `hostnames` and its key, unless both files are
/// there (a restart reuses them). One without the other is an error: nothing is overwritten.
fn generate_if_missing(cert: &Path, key: &Path, hostnames: &[String]) -> Result<(), String> {
    match (cert.exists(), key.exists()) {
        (true, true) => return Ok(()),
        (false, false) => {}
        (has_cert, _) => {
            let (there, missing) = if has_cert { (cert, key) } else { (key, cert) };
            return Err(format!(
                "{} is there but {} is not: delete it to have a new pair generated, or restore the missing file",
                there.display(),
                missing.display()
            ));
        }
    }
    let hostnames = if hostnames.is_empty() {
        default_hostnames()
    } else {
        hostnames.to_vec()
    };
    let mut params = rcgen::CertificateParams::new(hostnames.clone())
        .map_err(|e| format!("cannot make a certificate for {hostnames:?}: {e}"))?;
    let now = time::OffsetDateTime::now_utc();
    // A little slack for clients whose clock is behind.
    params.not_before = now - time::Duration::hours(1);
    params.not_after = now + time::Duration::days(GENERATED_DAYS);
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, hostnames[0].clone());
    params
        .distinguished_name
        .push(rcgen::DnType::OrganizationName, "profiled (self-signed)");
    params.key_usages = vec![rcgen::KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    let key_pair = rcgen::KeyPair::generate().map_err(|e| format!("cannot make a key: {e}"))?;
    let certificate = params
        .self_signed(&key_pair)
        .map_err(|e| format!("cannot sign the certificate: {e}"))?;
    // The key first: a certificate without its key would stop the next start.
    write_new(key, key_pair.serialize_pem().as_bytes())?;
    if let Err(e) = write_new(cert, certificate.pem().as_bytes()) {
        let _ = std::fs::remove_file(key);
        return Err(e);
    }
    tracing::info!(
        file = %cert.display(),
        key = %key.display(),
        hostnames = %hostnames.join(", "),
        sha256 = %openssl_fingerprint(certificate.der()),
        "generated a self-signed TLS certificate; compare this fingerprint with what a client is shown"
    );
    Ok(())
}

/// Writes a new file readable by this user only (0600), atomically: a temporary file beside
/// it, synced, then linked into place, which fails rather than replace a file already there.
fn write_new(path: &Path, bytes: &[u8]) -> Result<(), String> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let fail = |e: std::io::Error| format!("cannot write {}: {e}", path.display());
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let _ = std::fs::remove_file(&tmp);
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .and_then(|mut f| {
            f.write_all(bytes)?;
            f.sync_all()
        })
        .and_then(|()| std::fs::hard_link(&tmp, path));
    let _ = std::fs::remove_file(&tmp);
    written.map_err(fail)?;
    if let Some(dir) = path.parent() {
        let _ = std::fs::File::open(dir).and_then(|d| d.sync_all());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fingerprint_reads_as_openssl_prints_it() {
        let fp = openssl_fingerprint(b"abc");
        assert_eq!(
            fp,
            "BA:78:16:BF:8F:01:CF:EA:41:41:40:DE:5D:AE:22:23:B0:03:61:A3:96:17:7A:9C:B4:10:FF:61:F2:00:15:AD"
        );
    }

    #[test]
    fn a_generated_pair_is_reused_and_never_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = (dir.path().join(CERT_FILE), dir.path().join(KEY_FILE));
        generate_if_missing(&cert, &key, &["example.test".into()]).unwrap();
        let first = std::fs::read(&cert).unwrap();
        generate_if_missing(&cert, &key, &["other.test".into()]).unwrap();
        assert_eq!(std::fs::read(&cert).unwrap(), first);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        // Half a pair is refused rather than completed.
        std::fs::remove_file(&key).unwrap();
        let e = generate_if_missing(&cert, &key, &[]).unwrap_err();
        assert!(e.contains("is there but"), "{e}");
        assert_eq!(std::fs::read(&cert).unwrap(), first);
    }
}
