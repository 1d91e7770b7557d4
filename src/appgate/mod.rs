//! The Appgate SDP Controller Admin API dialect, under `/admin`.

pub mod backup;
mod client_profiles;
pub(crate) mod export;
mod global_settings;
mod list;
mod login;
mod profile_body;

use hyper::Method;
use hyper::header::{ACCEPT, HeaderMap};
use serde_json::{Value, json};

use crate::app::App;
use crate::error::{ApiError, Dialect, Kind};
use crate::http::{self, Req, Resp};

/// The API versions this server speaks (`Accept: application/vnd.appgate.peer-vNN+json`).
pub const MIN_VERSION: u32 = 18;
pub const MAX_VERSION: u32 = 23;

pub(crate) const DIALECT: Dialect = Dialect::Appgate;

pub async fn route(app: &App, req: Req, path: &str) -> Result<Resp, ApiError> {
    let segs = http::segments(path);
    let method = req.method().clone();
    if segs == ["version"] {
        return match method {
            Method::GET => Ok(login::version()),
            _ => Err(ApiError::method_not_allowed("GET")),
        };
    }
    // Before authentication, and on every route: clients discover the version from the 406.
    check_accept(req.headers())?;
    match segs.as_slice() {
        ["login"] => match method {
            Method::POST => login::login(app, req).await,
            _ => Err(ApiError::method_not_allowed("POST")),
        },
        ["authentication", "logout"] => match method {
            Method::POST => login::logout(app, req).await,
            _ => Err(ApiError::method_not_allowed("POST")),
        },
        ["client-profiles"] => match method {
            Method::GET => list::list(app, req).await,
            Method::POST => client_profiles::create(app, req).await,
            _ => Err(ApiError::method_not_allowed("GET, POST")),
        },
        ["client-profiles", id] => match method {
            Method::GET => client_profiles::get(app, req, id).await,
            Method::PUT => client_profiles::update(app, req, id).await,
            Method::DELETE => client_profiles::delete(app, req, id).await,
            _ => Err(ApiError::method_not_allowed("GET, PUT, DELETE")),
        },
        ["client-profiles", id, "url"] => match method {
            Method::GET => client_profiles::export_url(app, req, id).await,
            _ => Err(ApiError::method_not_allowed("GET")),
        },
        ["client-profiles", id, "barcode"] => match method {
            Method::GET => client_profiles::export_barcode(app, req, id).await,
            _ => Err(ApiError::method_not_allowed("GET")),
        },
        ["global-settings"] => match method {
            Method::GET => global_settings::get(app, req).await,
            Method::PUT => global_settings::put(app, req).await,
            Method::DELETE => global_settings::delete(app, req).await,
            _ => Err(ApiError::method_not_allowed("GET, PUT, DELETE")),
        },
        _ => Err(ApiError::not_found(
            "The requested resource can not be found.",
        )),
    }
}

/// The peer version the request asks for, or Appgate's exact 406.
pub fn check_accept(headers: &HeaderMap) -> Result<u32, ApiError> {
    let received = headers
        .get_all(ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect::<Vec<_>>()
        .join(", ");
    let version = received
        .split(',')
        .filter_map(|item| peer_version(item.split(';').next().unwrap_or("").trim()))
        .find(|v| (MIN_VERSION..=MAX_VERSION).contains(v));
    version.ok_or_else(|| {
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

fn peer_version(media: &str) -> Option<u32> {
    let media = media.to_ascii_lowercase();
    let digits = media
        .strip_prefix("application/vnd.appgate.peer-v")?
        .strip_suffix("+json")?;
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
