//! Encrypted backups. The server never holds the passphrase nor anything that decrypts: the
//! passphrase is turned (Argon2id, random salt) into an X25519 secret, and only its public key
//! is kept (with the salt and the Argon2 parameters). Each backup gets an ephemeral X25519
//! key; HKDF-SHA256 of the agreement gives the file key, and the content is ChaCha20-Poly1305
//! in the STREAM construction (chunks of 64 KiB, each authenticated, the last one flagged so
//! that a cut-off file is refused), with the whole header as associated data.
//!
//! ```text
//! header (93 bytes): "PRFLDENC" | version 1 | KDF 1 (Argon2id v0x13) | memory KiB u32 BE |
//!                    iterations u32 BE | parallelism u32 BE | salt (16) |
//!                    ephemeral public key (32) | key check (16) | nonce prefix (7)
//! then chunks:       ChaCha20-Poly1305 of 64 KiB of the JSON-lines backup + 16-byte tag
//!                    (the last one shorter or equal, flagged as last)
//! ```
//! The key check (HKDF of the agreement too) tells a wrong passphrase from a damaged file.

use std::io::{BufRead, Read};

use chacha20poly1305::ChaCha20Poly1305;
use chacha20poly1305::aead::generic_array::GenericArray;
use chacha20poly1305::aead::stream::{DecryptorBE32, EncryptorBE32};
use chacha20poly1305::aead::{KeyInit, Payload};
use hkdf::Hkdf;
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use x25519_dalek::{PublicKey, StaticSecret};
use zeroize::Zeroizing;

use crate::certs::hex;

pub const MAGIC: &[u8; 8] = b"PRFLDENC";
const VERSION: u8 = 1;
const KDF_ARGON2ID: u8 = 1;
const SALT_LEN: usize = 16;
const CHECK_LEN: usize = 16;
const NONCE_PREFIX_LEN: usize = 7;
pub const HEADER_LEN: usize = 8 + 1 + 1 + 12 + SALT_LEN + 32 + CHECK_LEN + NONCE_PREFIX_LEN;
/// Plaintext bytes per chunk.
const CHUNK: usize = 64 * 1024;
const TAG_LEN: usize = 16;

/// Argon2id cost of new keys: 64 MiB, 3 passes, 1 lane.
pub const MEMORY_KIB: u32 = 64 * 1024;
pub const ITERATIONS: u32 = 3;
pub const PARALLELISM: u32 = 1;
/// Upper bounds accepted from a file's header, so that a crafted file cannot make an import
/// allocate without limit or run for hours.
const MAX_MEMORY_KIB: u32 = 4 * 1024 * 1024;
const MAX_ITERATIONS: u32 = 64;
const MAX_PARALLELISM: u32 = 16;

/// What the settings keep of a backup passphrase: enough to encrypt, nothing to decrypt.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct BackupKey {
    /// "argon2id+x25519".
    pub kind: String,
    /// Hex of the X25519 public key.
    pub public_key: String,
    /// Hex of the Argon2id salt.
    pub salt: String,
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
}

const KEY_KIND: &str = "argon2id+x25519";

fn unhex<const N: usize>(s: &str) -> Option<[u8; N]> {
    if s.len() != 2 * N {
        return None;
    }
    let mut out = [0u8; N];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// The X25519 secret of `passphrase` under `salt` and the given Argon2id cost.
fn derive_secret(
    passphrase: &str,
    salt: &[u8],
    memory_kib: u32,
    iterations: u32,
    parallelism: u32,
) -> Result<StaticSecret, String> {
    let params = argon2::Params::new(memory_kib, iterations, parallelism, Some(32))
        .map_err(|e| format!("unusable key-derivation parameters: {e}"))?;
    let argon = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    let mut out = Zeroizing::new([0u8; 32]);
    argon
        .hash_password_into(passphrase.as_bytes(), salt, out.as_mut())
        .map_err(|e| format!("key derivation failed: {e}"))?;
    Ok(StaticSecret::from(*out))
}

fn random<const N: usize>() -> Result<[u8; N], String> {
    let mut b = [0u8; N];
    getrandom::fill(&mut b).map_err(|e| format!("no randomness: {e}"))?;
    Ok(b)
}

impl BackupKey {
    /// Derives the key of a new passphrase (slow on purpose: Argon2id, 64 MiB).
    pub fn from_passphrase(passphrase: &str) -> Result<BackupKey, String> {
        let salt: [u8; SALT_LEN] = random()?;
        let secret = derive_secret(passphrase, &salt, MEMORY_KIB, ITERATIONS, PARALLELISM)?;
        Ok(BackupKey {
            kind: KEY_KIND.into(),
            public_key: hex(PublicKey::from(&secret).as_bytes()),
            salt: hex(&salt),
            memory_kib: MEMORY_KIB,
            iterations: ITERATIONS,
            parallelism: PARALLELISM,
        })
    }

    fn parts(&self) -> Result<(PublicKey, [u8; SALT_LEN]), String> {
        let public = unhex::<32>(&self.public_key);
        let salt = unhex::<SALT_LEN>(&self.salt);
        match (self.kind.as_str(), public, salt) {
            (KEY_KIND, Some(p), Some(s)) => Ok((PublicKey::from(p), s)),
            _ => Err("the stored backup key is unreadable: set backupPassphrase again".into()),
        }
    }
}

/// The file key and the key check of an agreement.
fn file_keys(
    shared: &x25519_dalek::SharedSecret,
    ephemeral: &PublicKey,
    recipient: &PublicKey,
) -> Result<(Zeroizing<[u8; 32]>, [u8; CHECK_LEN]), String> {
    if !shared.was_contributory() {
        return Err("the ephemeral key is invalid".into());
    }
    let mut salt = [0u8; 64];
    salt[..32].copy_from_slice(ephemeral.as_bytes());
    salt[32..].copy_from_slice(recipient.as_bytes());
    let hk = Hkdf::<Sha256>::new(Some(&salt), shared.as_bytes());
    let mut key = Zeroizing::new([0u8; 32]);
    let mut check = [0u8; CHECK_LEN];
    hk.expand(b"profiled-backup v1 file key", key.as_mut())
        .and_then(|()| hk.expand(b"profiled-backup v1 key check", &mut check))
        .map_err(|e| e.to_string())?;
    Ok((key, check))
}

/// Encrypts a backup given as lines, lazily: the header first, then one chunk whenever 64 KiB
/// (or the end) is reached. Nothing but the current chunk is held in memory.
pub fn encrypt_lines<I>(key: &BackupKey, lines: I) -> Result<Encrypting<I>, String>
where
    I: Iterator<Item = Vec<u8>>,
{
    let (recipient, salt) = key.parts()?;
    let ephemeral = StaticSecret::from(random::<32>()?);
    let ephemeral_public = PublicKey::from(&ephemeral);
    let (file_key, check) = file_keys(
        &ephemeral.diffie_hellman(&recipient),
        &ephemeral_public,
        &recipient,
    )?;
    let prefix: [u8; NONCE_PREFIX_LEN] = random()?;
    let mut header = Vec::with_capacity(HEADER_LEN);
    header.extend_from_slice(MAGIC);
    header.extend_from_slice(&[VERSION, KDF_ARGON2ID]);
    for n in [key.memory_kib, key.iterations, key.parallelism] {
        header.extend_from_slice(&n.to_be_bytes());
    }
    header.extend_from_slice(&salt);
    header.extend_from_slice(ephemeral_public.as_bytes());
    header.extend_from_slice(&check);
    header.extend_from_slice(&prefix);
    debug_assert_eq!(header.len(), HEADER_LEN);
    let cipher = ChaCha20Poly1305::new(GenericArray::from_slice(file_key.as_ref()));
    Ok(Encrypting {
        lines,
        encryptor: Some(EncryptorBE32::from_aead(
            cipher,
            GenericArray::from_slice(&prefix),
        )),
        buf: Vec::with_capacity(2 * CHUNK),
        header_sent: false,
        header,
    })
}

pub struct Encrypting<I> {
    lines: I,
    encryptor: Option<EncryptorBE32<ChaCha20Poly1305>>,
    buf: Vec<u8>,
    header: Vec<u8>,
    header_sent: bool,
}

impl<I: Iterator<Item = Vec<u8>>> Iterator for Encrypting<I> {
    type Item = Vec<u8>;

    fn next(&mut self) -> Option<Vec<u8>> {
        if !self.header_sent {
            self.header_sent = true;
            return Some(self.header.clone());
        }
        // A chunk goes out as "not last" only once more content is known to follow it.
        while self.buf.len() <= CHUNK {
            match self.lines.next() {
                Some(l) => self.buf.extend_from_slice(&l),
                None => break,
            }
        }
        let aad = self.header.as_slice();
        let sealed = if self.buf.len() > CHUNK {
            let rest = self.buf.split_off(CHUNK);
            let chunk = std::mem::replace(&mut self.buf, rest);
            self.encryptor
                .as_mut()?
                .encrypt_next(Payload { msg: &chunk, aad })
        } else {
            let chunk = std::mem::take(&mut self.buf);
            self.encryptor
                .take()?
                .encrypt_last(Payload { msg: &chunk, aad })
        };
        match sealed {
            Ok(c) => Some(c),
            Err(_) => {
                // Only past 2^32 chunks (256 TiB): end here; the cut-off file is refused.
                tracing::error!("backup encryption failed: the backup is incomplete");
                self.encryptor = None;
                None
            }
        }
    }
}

/// Whether `start` (the first bytes of a file) is an encrypted backup.
pub fn is_encrypted(start: &[u8]) -> bool {
    start.starts_with(MAGIC)
}

/// Reads the plaintext of an encrypted backup, refusing (as an `InvalidData` error) any chunk
/// that fails authentication, and a file that ends before its last chunk.
pub struct Decrypting<R> {
    input: R,
    decryptor: Option<DecryptorBE32<ChaCha20Poly1305>>,
    header: Vec<u8>,
    out: Vec<u8>,
    pos: usize,
    chunk: u64,
}

/// Reads and checks the header of `input` and derives the file key from `passphrase`.
pub fn decrypt<R: BufRead>(mut input: R, passphrase: &str) -> Result<Decrypting<R>, String> {
    let mut header = vec![0u8; HEADER_LEN];
    input
        .read_exact(&mut header)
        .map_err(|_| "the encrypted backup is too short to hold its header".to_string())?;
    if !is_encrypted(&header) {
        return Err("not an encrypted profiled backup".into());
    }
    if header[8] != VERSION || header[9] != KDF_ARGON2ID {
        return Err(format!(
            "encrypted backup format {}/{} is unknown: it was written by a newer profiled",
            header[8], header[9]
        ));
    }
    let n = |i: usize| u32::from_be_bytes(header[i..i + 4].try_into().expect("4 bytes"));
    let (memory_kib, iterations, parallelism) = (n(10), n(14), n(18));
    if memory_kib > MAX_MEMORY_KIB || iterations > MAX_ITERATIONS || parallelism > MAX_PARALLELISM {
        return Err("the encrypted backup's header asks for an unreasonable key derivation: the file is damaged".into());
    }
    let salt = &header[22..22 + SALT_LEN];
    let ephemeral: [u8; 32] = header[38..70].try_into().expect("32 bytes");
    let ephemeral = PublicKey::from(ephemeral);
    let check = &header[70..70 + CHECK_LEN];
    let prefix = &header[86..HEADER_LEN];
    let secret = derive_secret(passphrase, salt, memory_kib, iterations, parallelism)?;
    let recipient = PublicKey::from(&secret);
    let (file_key, expected) =
        file_keys(&secret.diffie_hellman(&ephemeral), &ephemeral, &recipient)
            .map_err(|_| "the encrypted backup's header is damaged".to_string())?;
    // Not secret (it is in the file), but compared without an early exit all the same.
    if expected
        .iter()
        .zip(check)
        .fold(0u8, |acc, (a, b)| acc | (a ^ b))
        != 0
    {
        return Err(
            "wrong passphrase: this backup was encrypted with another one (or its header is damaged)"
                .into(),
        );
    }
    let cipher = ChaCha20Poly1305::new(GenericArray::from_slice(file_key.as_ref()));
    Ok(Decrypting {
        input,
        decryptor: Some(DecryptorBE32::from_aead(
            cipher,
            GenericArray::from_slice(prefix),
        )),
        header,
        out: Vec::new(),
        pos: 0,
        chunk: 0,
    })
}

impl<R: BufRead> Decrypting<R> {
    /// Decrypts the next chunk into `out`; false at the end (after the last chunk).
    fn next_chunk(&mut self) -> std::io::Result<bool> {
        if self.decryptor.is_none() {
            // After the last chunk: anything more is an addition.
            return if self.input.fill_buf()?.is_empty() {
                Ok(false)
            } else {
                Err(damaged("it goes on after its last part"))
            };
        }
        let mut sealed = Vec::with_capacity(CHUNK + TAG_LEN);
        (&mut self.input)
            .take((CHUNK + TAG_LEN) as u64)
            .read_to_end(&mut sealed)?;
        let last = self.input.fill_buf()?.is_empty();
        self.chunk += 1;
        let payload = Payload {
            msg: &sealed,
            aad: &self.header,
        };
        let opened = if last {
            self.decryptor
                .take()
                .and_then(|d| d.decrypt_last(payload).ok())
        } else {
            self.decryptor
                .as_mut()
                .and_then(|d| d.decrypt_next(payload).ok())
        };
        match opened {
            Some(plain) => {
                self.out = plain;
                self.pos = 0;
                Ok(true)
            }
            None => {
                self.decryptor = None;
                Err(damaged(&format!(
                    "part {} fails authentication (the file was truncated or altered)",
                    self.chunk
                )))
            }
        }
    }
}

fn damaged(what: &str) -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::InvalidData,
        format!("the encrypted backup is damaged: {what}"),
    )
}

impl<R: BufRead> Read for Decrypting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.pos == self.out.len() {
            if !self.next_chunk()? {
                return Ok(0);
            }
        }
        let n = buf.len().min(self.out.len() - self.pos);
        buf[..n].copy_from_slice(&self.out[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(passphrase: &str) -> BackupKey {
        // Cheap parameters: the format, not the cost, is under test here.
        let salt: [u8; SALT_LEN] = random().unwrap();
        let secret = derive_secret(passphrase, &salt, 64, 1, 1).unwrap();
        BackupKey {
            kind: KEY_KIND.into(),
            public_key: hex(PublicKey::from(&secret).as_bytes()),
            salt: hex(&salt),
            memory_kib: 64,
            iterations: 1,
            parallelism: 1,
        }
    }

    fn sealed(k: &BackupKey, plain: &[u8]) -> Vec<u8> {
        let lines = plain.chunks(1000).map(<[u8]>::to_vec).collect::<Vec<_>>();
        encrypt_lines(k, lines.into_iter())
            .unwrap()
            .flatten()
            .collect()
    }

    fn open(file: &[u8], passphrase: &str) -> Result<Vec<u8>, String> {
        let mut r = decrypt(file, passphrase)?;
        let mut out = Vec::new();
        r.read_to_end(&mut out).map_err(|e| e.to_string())?;
        Ok(out)
    }

    #[test]
    fn round_trips_at_every_chunk_boundary_and_refuses_changes() {
        let k = key("correct horse");
        for len in [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 2 * CHUNK, 2 * CHUNK + 7] {
            let plain: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            let file = sealed(&k, &plain);
            assert_eq!(open(&file, "correct horse").unwrap(), plain, "{len}");
            let wrong = open(&file, "wrong horse").unwrap_err();
            assert!(wrong.contains("wrong passphrase"), "{wrong}");
            // Cut at every chunk boundary and in the middle of the last chunk.
            for cut in (HEADER_LEN..file.len())
                .step_by(CHUNK + TAG_LEN)
                .chain([file.len() - 1])
            {
                let e = open(&file[..cut], "correct horse").unwrap_err();
                assert!(e.contains("damaged"), "{len} cut at {cut}: {e}");
            }
            let mut longer = file.clone();
            longer.push(0);
            assert!(open(&longer, "correct horse").is_err(), "{len}");
            // A flipped bit anywhere after the magic is refused.
            for at in (8..file.len()).step_by(997).chain([file.len() - 1]) {
                let mut bad = file.clone();
                bad[at] ^= 0x10;
                assert!(
                    open(&bad, "correct horse").is_err(),
                    "{len} flipped at {at}"
                );
            }
        }
    }

    #[test]
    fn chunks_may_not_be_reordered() {
        let k = key("p");
        let plain = vec![7u8; 3 * CHUNK];
        let file = sealed(&k, &plain);
        let c = CHUNK + TAG_LEN;
        let mut swapped = file[..HEADER_LEN].to_vec();
        swapped.extend_from_slice(&file[HEADER_LEN + c..HEADER_LEN + 2 * c]);
        swapped.extend_from_slice(&file[HEADER_LEN..HEADER_LEN + c]);
        swapped.extend_from_slice(&file[HEADER_LEN + 2 * c..]);
        assert!(open(&swapped, "p").unwrap_err().contains("part 1"));
    }
}
