//! Time-based one-time passwords (RFC 6238 over RFC 4226): HMAC-SHA-1, 6 digits, 30-second
//! steps, a code accepted for the step before and after the current one as well. The seed is
//! 20 random bytes, shown to people in base32 (RFC 4648, no padding) as authenticator apps
//! expect.

use hmac::{Hmac, Mac};
use sha1::Sha1;

pub const STEP_SECS: i64 = 30;
const DIGITS: u32 = 6;
const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/// A new seed: 20 bytes from the OS (RFC 4226 recommends 160 bits), in base32.
pub fn new_secret() -> String {
    let mut raw = [0u8; 20];
    getrandom::fill(&mut raw).expect("the OS random source is available");
    base32(&raw)
}

pub fn base32(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(5) * 8);
    let (mut buffer, mut bits) = (0u32, 0u32);
    for &b in bytes {
        buffer = (buffer << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(ALPHABET[((buffer >> bits) & 31) as usize] as char);
        }
    }
    if bits > 0 {
        out.push(ALPHABET[((buffer << (5 - bits)) & 31) as usize] as char);
    }
    out
}

/// Decodes base32, ignoring case, spaces and padding; `None` for any other character.
pub fn from_base32(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() * 5 / 8);
    let (mut buffer, mut bits) = (0u32, 0u32);
    for c in text.bytes().filter(|c| !matches!(c, b' ' | b'=')) {
        let value = ALPHABET.iter().position(|&a| a == c.to_ascii_uppercase())? as u32;
        buffer = (buffer << 5) | value;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((buffer >> bits) as u8);
        }
    }
    Some(out)
}

/// The code of `step` (RFC 4226's HOTP with the step as counter).
pub fn code_at(key: &[u8], step: u64) -> u32 {
    let mut mac = Hmac::<Sha1>::new_from_slice(key).expect("HMAC takes a key of any size");
    mac.update(&step.to_be_bytes());
    let digest = mac.finalize().into_bytes();
    let offset = (digest[19] & 0x0f) as usize;
    let value = u32::from_be_bytes([
        digest[offset] & 0x7f,
        digest[offset + 1],
        digest[offset + 2],
        digest[offset + 3],
    ]);
    value % 10u32.pow(DIGITS)
}

/// The step of a Unix time in seconds.
pub fn step_of(unix_secs: i64) -> u64 {
    (unix_secs.max(0) / STEP_SECS) as u64
}

/// The step whose code `code` is, among the steps around `now_step` (±1), if any. The code
/// must be exactly six digits; the comparison does not stop early.
pub fn verify(secret_b32: &str, code: &str, now_step: u64) -> Option<u64> {
    let code = code.trim();
    if code.len() != DIGITS as usize || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let given: u32 = code.parse().ok()?;
    let key = from_base32(secret_b32)?;
    let mut found = None;
    for step in [now_step.saturating_sub(1), now_step, now_step + 1] {
        // Every candidate is computed and compared; which one matched decides nothing else.
        if code_at(&key, step) == given && found.is_none() {
            found = Some(step);
        }
    }
    found
}

/// The six digits of a code, with leading zeros.
pub fn format(code: u32) -> String {
    format!("{code:06}")
}

/// The `otpauth://` link authenticator apps read (Google's Key Uri Format).
pub fn otpauth_url(issuer: &str, account: &str, secret_b32: &str) -> String {
    let label = format!("{}:{}", encode(issuer), encode(account));
    format!(
        "otpauth://totp/{label}?secret={secret_b32}&issuer={}&algorithm=SHA1&digits={DIGITS}&period={STEP_SECS}",
        encode(issuer)
    )
}

/// Percent-encodes everything but unreserved characters (RFC 3986).
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'@' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238, appendix B: the SHA-1 seed "12345678901234567890" and its 8-digit codes,
    /// of which the last six digits are the 6-digit codes.
    #[test]
    fn rfc_6238_test_vectors() {
        let key = b"12345678901234567890";
        for (time, eight) in [
            (59i64, 94287082u32),
            (1111111109, 7081804),
            (1111111111, 14050471),
            (1234567890, 89005924),
            (2000000000, 69279037),
            (20000000000, 65353130),
        ] {
            assert_eq!(code_at(key, step_of(time)), eight % 1_000_000, "{time}");
        }
    }

    #[test]
    fn base32_round_trips_and_matches_rfc_4648() {
        assert_eq!(base32(b"foobar"), "MZXW6YTBOI");
        assert_eq!(base32(b"f"), "MY");
        assert_eq!(from_base32("mzxw 6ytb oi==").unwrap(), b"foobar");
        assert_eq!(from_base32("MZ1"), None);
        let s = new_secret();
        assert_eq!(s.len(), 32);
        assert_eq!(from_base32(&s).unwrap().len(), 20);
    }

    #[test]
    fn a_code_is_good_for_one_step_either_side_only() {
        let secret = base32(b"12345678901234567890");
        let key = from_base32(&secret).unwrap();
        let now = 1_000_000u64;
        for (step, ok) in [
            (now - 2, false),
            (now - 1, true),
            (now, true),
            (now + 1, true),
            (now + 2, false),
        ] {
            let code = format(code_at(&key, step));
            assert_eq!(verify(&secret, &code, now), ok.then_some(step), "{step}");
        }
        for bad in ["", "12345", "1234567", "12345a", "abcdef"] {
            assert_eq!(verify(&secret, bad, now), None, "{bad}");
        }
    }

    #[test]
    fn otpauth_links_encode_the_label() {
        assert_eq!(
            otpauth_url("profiled", "a b@x", "ABC"),
            "otpauth://totp/profiled:a%20b@x?secret=ABC&issuer=profiled&algorithm=SHA1&digits=6&period=30"
        );
    }
}
