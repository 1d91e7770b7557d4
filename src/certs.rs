//! The CA certificate an installation is configured with: its fingerprint goes into every
//! exported onboarding link (`caFingerprint`).

use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use sha2::{Digest, Sha256};

/// Lowercase hex SHA-256 of a certificate's DER bytes; the file may be PEM (the first
/// certificate counts) or DER, and must hold an X.509 certificate.
pub fn ca_fingerprint(path: &Path) -> Result<String, String> {
    let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
    let der = match pem_body(&bytes) {
        Some(b64) => STANDARD
            .decode(b64)
            .map_err(|e| format!("the PEM certificate is not valid base64: {e}"))?,
        None => bytes,
    };
    if der.is_empty() {
        return Err("the file holds no certificate".into());
    }
    use x509_parser::prelude::{FromDer, X509Certificate};
    X509Certificate::from_der(&der)
        .map_err(|e| format!("it is not an X.509 certificate (PEM or DER): {e}"))?;
    Ok(hex(&Sha256::digest(&der)))
}

/// The base64 text between the first BEGIN/END CERTIFICATE lines, white space removed.
fn pem_body(bytes: &[u8]) -> Option<String> {
    const BEGIN: &str = "-----BEGIN CERTIFICATE-----";
    const END: &str = "-----END CERTIFICATE-----";
    let text = std::str::from_utf8(bytes).ok()?;
    let start = text.find(BEGIN)? + BEGIN.len();
    let end = start + text[start..].find(END)?;
    Some(
        text[start..end]
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect(),
    )
}

/// Lowercase hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pem_and_der_give_the_same_fingerprint() {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["ca.test".to_string()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let der = cert.der().to_vec();
        let pem = format!(
            "junk\n-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
            STANDARD.encode(&der)
        );
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.der"), &der).unwrap();
        std::fs::write(dir.path().join("a.pem"), pem).unwrap();
        let fp = ca_fingerprint(&dir.path().join("a.der")).unwrap();
        assert_eq!(fp, hex(&Sha256::digest(&der)));
        assert_eq!(ca_fingerprint(&dir.path().join("a.pem")).unwrap(), fp);
    }

    #[test]
    fn bytes_that_are_no_certificate_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let pem = format!(
            "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
            STANDARD.encode(b"\x30\x03\x02\x01\x01")
        );
        for (name, bytes) in [
            ("der", b"\x30\x03\x02\x01\x01".to_vec()),
            ("pem", pem.into_bytes()),
            ("text", b"not a certificate\n".to_vec()),
        ] {
            let path = dir.path().join(name);
            std::fs::write(&path, bytes).unwrap();
            let e = ca_fingerprint(&path).unwrap_err();
            assert!(e.contains("not an X.509 certificate"), "{name}: {e}");
        }
    }
}
