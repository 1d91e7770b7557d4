//! The Appgate SDP Controller Admin API dialect, under `/admin`.

pub mod backup;
mod client_profiles;
pub(crate) mod export;
mod global_settings;
mod list;
mod login;
mod mfa_settings;
mod profile_body;
pub mod routes;
mod signin;
pub(crate) use global_settings::seal_legacy_passphrase;
pub(crate) use signin::issuer as signin_issuer;

use hyper::header::{ACCEPT, HeaderMap};
use serde_json::{Value, json};

use crate::error::{ApiError, Dialect, Kind};
use crate::http::{self, Resp};

/// The API versions this server speaks (`Accept: application/vnd.appgate.peer-vNN+json`).
pub const MIN_VERSION: u32 = 18;
pub const MAX_VERSION: u32 = 23;

pub(crate) const DIALECT: Dialect = Dialect::Appgate;

/// The most characters of a request's `Accept` header a 406 repeats.
const MAX_ECHO: usize = 256;

/// The peer version the request asks for, or Appgate's exact 406.
pub fn check_accept(headers: &HeaderMap) -> Result<u32, ApiError> {
    let values = || {
        headers
            .get_all(ACCEPT)
            .iter()
            .filter_map(|v| v.to_str().ok())
    };
    let version = values()
        .flat_map(|v| v.split(','))
        .filter_map(|item| peer_version(item.split(';').next().unwrap_or("").trim()))
        .find(|v| (MIN_VERSION..=MAX_VERSION).contains(v));
    version.ok_or_else(|| {
        let mut received = values().collect::<Vec<_>>().join(", ");
        // Echoed for the client's sake, not without bound: a header can be ~64 KB.
        if let Some((cut, _)) = received.char_indices().nth(MAX_ECHO) {
            received.truncate(cut);
            received.push('…');
        }
        let mut e = ApiError::new(
            Kind::NotAcceptable,
            format!(
                "Invalid 'Accept' header. Current version: application/vnd.appgate.peer-v{MAX_VERSION}+json, Received: {received}"
            ),
        );
        e.extra.insert("minSupportedVersion".into(), Value::from(MIN_VERSION));
        e.extra.insert("maxSupportedVersion".into(), Value::from(MAX_VERSION));
        e
    })
}

/// The version of `application/vnd.appgate.peer-vNN+json` (any case), if that is `media`.
fn peer_version(media: &str) -> Option<u32> {
    const PREFIX: &str = "application/vnd.appgate.peer-v";
    const SUFFIX: &str = "+json";
    let head = media.get(..PREFIX.len())?;
    let tail = media.get(media.len().checked_sub(SUFFIX.len())?..)?;
    if !head.eq_ignore_ascii_case(PREFIX) || !tail.eq_ignore_ascii_case(SUFFIX) {
        return None;
    }
    let digits = media.get(PREFIX.len()..media.len() - SUFFIX.len())?;
    if digits.is_empty() || digits.len() > 3 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

pub(crate) fn ok(body: &Value) -> Resp {
    http::ok_json(body, DIALECT)
}

pub(crate) fn version_body() -> Value {
    json!({"peerVersion": MAX_VERSION, "lowestPeerVersionSupported": MIN_VERSION})
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::header::HeaderValue;

    #[test]
    fn the_accept_header_is_read_without_regard_to_case_lists_or_parameters() {
        assert_eq!(
            peer_version("Application/VND.Appgate.Peer-V21+JSON"),
            Some(21)
        );
        for bad in [
            "application/vnd.appgate.peer-v+json",
            "application/vnd.appgate.peer-v1234+json",
            "application/vnd.appgate.peer-v2x+json",
            "application/vnd.appgate.peer-v23",
            "application/json",
            "",
        ] {
            assert_eq!(peer_version(bad), None, "{bad}");
        }
        let mut headers = HeaderMap::new();
        headers.append(ACCEPT, HeaderValue::from_static("text/html, */*;q=0.1"));
        headers.append(
            ACCEPT,
            HeaderValue::from_static("application/vnd.appgate.peer-v30+json, application/vnd.appgate.peer-v19+json; q=0.9"),
        );
        assert_eq!(check_accept(&headers).unwrap(), 19);
        headers.remove(ACCEPT);
        headers.append(ACCEPT, HeaderValue::from_static("a/b"));
        headers.append(ACCEPT, HeaderValue::from_static("c/d"));
        let e = check_accept(&headers).unwrap_err();
        assert!(e.message.ends_with("Received: a/b, c/d"), "{}", e.message);
    }
}
