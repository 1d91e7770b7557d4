//! What a client device is handed: the `appgate://` onboarding link (and its QR code), the SPA
//! key inside it, and the CA fingerprint. Also the inverse, reading such a link into a group.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use hmac::{Hmac, Mac};
use qrcode::{Color, EcLevel, QrCode};
use serde_json::{Map, Value};
use sha2::Sha256;

use crate::store::{ClientProfile, SpaMode};

pub const SCHEME: &str = "appgate://";

/// The 32-byte SPA key of a key name, as 64 lowercase hex characters. Derived rather than
/// stored, so that the same name gives the same key (after a delete and re-create too) and
/// another installation, with another secret, gives another key.
pub fn spa_key(secret: &[u8; 32], key_name: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes a key of any size");
    // A label keeps these MACs apart from anything else ever derived from the same secret.
    mac.update(b"profiled spa key\0");
    mac.update(key_name.as_bytes());
    crate::certs::hex(&mac.finalize().into_bytes())
}

/// `appgate://<host>/<payload>`: the payload is standard padded base64 of compact JSON with
/// the keys in the order real controllers write them.
pub fn profile_url(
    profile: &ClientProfile,
    host: &str,
    spa_mode: SpaMode,
    secret: &[u8; 32],
    ca_fingerprint: Option<&str>,
) -> String {
    let mode = match spa_mode {
        SpaMode::Tcp => "TCP",
        SpaMode::UdpTcp => "UDP-TCP",
    };
    let mut spa = Map::new();
    spa.insert("mode".into(), mode.into());
    spa.insert("name".into(), profile.spa_key_name.clone().into());
    spa.insert("key".into(), spa_key(secret, &profile.spa_key_name).into());
    let mut payload = Map::new();
    payload.insert("profileName".into(), profile.name.clone().into());
    payload.insert("spa".into(), Value::Object(spa));
    if let Some(fp) = ca_fingerprint {
        payload.insert("caFingerprint".into(), fp.into());
    }
    payload.insert(
        "identityProviderName".into(),
        profile.identity_provider_name.clone().into(),
    );
    let json = serde_json::to_vec(&Value::Object(payload)).expect("plain JSON serialises");
    format!("{SCHEME}{host}/{}", STANDARD.encode(json))
}

/// What a group keeps of a member link.
#[derive(Debug, PartialEq)]
pub struct ParsedUrl {
    pub hostname: String,
    pub profile_name: String,
}

/// Reads an exported link. The payload must be base64 (padded or not, either alphabet) of a
/// JSON object; `profileName` is taken from it when present (the vendor's own example link
/// has none).
pub fn parse_profile_url(url: &str) -> Result<ParsedUrl, &'static str> {
    let rest = url
        .strip_prefix(SCHEME)
        .ok_or("must be an appgate:// link")?;
    let (host, payload) = rest
        .split_once('/')
        .ok_or("must be appgate://<host>/<payload>")?;
    if !crate::appgate::profile_body::is_hostname(host) {
        return Err("the link's host is not a valid host name");
    }
    let bytes = [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD]
        .iter()
        .find_map(|engine| engine.decode(payload).ok())
        .ok_or("the link's payload is not base64")?;
    let Ok(Value::Object(fields)) = serde_json::from_slice::<Value>(&bytes) else {
        return Err("the link's payload is not a JSON object");
    };
    let profile_name = match fields.get("profileName") {
        Some(Value::String(s)) => s.clone(),
        _ => String::new(),
    };
    Ok(ParsedUrl {
        hostname: host.to_string(),
        profile_name,
    })
}

/// Pixels per QR module, and modules of white border (the standard's quiet zone).
const SCALE: usize = 4;
const QUIET: usize = 4;

/// Why a QR code could not be made.
#[derive(Debug)]
pub enum QrError {
    /// The text does not fit the largest QR code (version 40) at level M.
    TooLong,
    Other(String),
}

/// The most bytes a QR code holds at level M (version 40, byte mode).
pub const QR_MAX_BYTES: usize = 2331;

/// A PNG (1-bit greyscale) of the QR code of `text`.
pub fn qr_png(text: &str) -> Result<Vec<u8>, QrError> {
    let code =
        QrCode::with_error_correction_level(text.as_bytes(), EcLevel::M).map_err(|e| match e {
            qrcode::types::QrError::DataTooLong => QrError::TooLong,
            e => QrError::Other(format!("cannot encode a QR code: {e}")),
        })?;
    let modules = code.width();
    let colors = code.into_colors();
    let side = (modules + 2 * QUIET) * SCALE;
    let row_bytes = side.div_ceil(8);
    let mut pixels = vec![0xffu8; row_bytes * side];
    for y in 0..modules {
        for x in 0..modules {
            if colors[y * modules + x] != Color::Dark {
                continue;
            }
            for dy in 0..SCALE {
                let row = ((y + QUIET) * SCALE + dy) * row_bytes;
                for dx in 0..SCALE {
                    let px = (x + QUIET) * SCALE + dx;
                    pixels[row + px / 8] &= !(0x80 >> (px % 8));
                }
            }
        }
    }
    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, side as u32, side as u32);
    encoder.set_color(png::ColorType::Grayscale);
    encoder.set_depth(png::BitDepth::One);
    encoder.set_compression(png::Compression::Best);
    let png_error = |e: png::EncodingError| QrError::Other(e.to_string());
    let mut writer = encoder.write_header().map_err(png_error)?;
    writer.write_image_data(&pixels).map_err(png_error)?;
    writer.finish().map_err(png_error)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spa_keys_depend_on_name_and_secret_only() {
        let a = [1u8; 32];
        let b = [2u8; 32];
        assert_eq!(spa_key(&a, "Main"), spa_key(&a, "Main"));
        assert_ne!(spa_key(&a, "Main"), spa_key(&a, "Other"));
        assert_ne!(spa_key(&a, "Main"), spa_key(&b, "Main"));
        assert_eq!(spa_key(&a, "Main").len(), 64);
    }

    #[test]
    fn the_vendor_example_link_parses() {
        let url = "appgate://appgate.company.com/eyJjYUZpbmdlcnByaW50IjoiMmM4ZTBiNTM5YTM4NjRkYmVkYzhiOWRkMTcwYzM0NGFhMjZjZTVhNjA4MmY3YTI0YzRkZTU4ZGQ3NWRjNWZhMCIsImlkZW50aXR5UHJvdmlkZXJOYW1lIjoibG9jYWwifQ==";
        assert_eq!(
            parse_profile_url(url),
            Ok(ParsedUrl {
                hostname: "appgate.company.com".into(),
                profile_name: String::new()
            })
        );
        assert!(parse_profile_url("https://x/eyJ9").is_err());
        assert!(parse_profile_url("appgate://x/!!!").is_err());
        assert!(parse_profile_url("appgate:///e30=").is_err());
        assert!(
            parse_profile_url("appgate://x/WzFd").is_err(),
            "[1] is no object"
        );
    }
}
