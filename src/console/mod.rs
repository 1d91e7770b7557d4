//! The web console: `GET /` redirects to `/ui/`, and `/ui/` serves a hand-written page, its
//! script and its style sheet, embedded in the binary. The page signs in and works through
//! the public API only (no route of its own beyond these files). Every answer carries a
//! strict Content-Security-Policy (no inline script or style), `X-Frame-Options: DENY`,
//! `nosniff`, `no-referrer`, and an ETag so browsers revalidate cheaply.

use std::sync::LazyLock;

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{
    CACHE_CONTROL, CONTENT_TYPE, ETAG, HeaderMap, HeaderName, HeaderValue, IF_NONE_MATCH, LOCATION,
};
use hyper::{Method, Response, StatusCode};
use sha2::{Digest, Sha256};

use crate::error::{ApiError, Dialect};
use crate::http::Resp;
use crate::routes::Access::Public;
use crate::routes::{Cx, Route, Table, buffered};

/// `/ui` and its files, and `/` alone (the prefix `/` matches only the path `/`).
pub static TABLE: Table = Table {
    dialect: Dialect::Appgate,
    prefixes: &["/ui", "/"],
    routes: ROUTES,
    precheck,
    not_found: "No such resource.",
    unmatched: "console.unmatched",
    on_error: |_, _| {},
};

const ROUTES: &[Route] = &[
    Route::new(
        Method::GET,
        "",
        "console.index",
        Public(|cx| buffered(index(cx))),
    ),
    Route::new(
        Method::HEAD,
        "",
        "console.index.head",
        Public(|cx| buffered(index(cx))),
    ),
    Route::new(
        Method::GET,
        "{file}",
        "console.asset",
        Public(|cx| buffered(asset(cx))),
    ),
    Route::new(
        Method::HEAD,
        "{file}",
        "console.asset.head",
        Public(|cx| buffered(asset(cx))),
    ),
];

fn precheck(_rest: &str, _headers: &HeaderMap) -> Result<(), ApiError> {
    Ok(())
}

/// The policy every console answer carries: everything from this origin only, no inline
/// script or style, images also from `data:`/`blob:` (the QR codes), no framing.
pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
img-src 'self' data: blob:; connect-src 'self'; object-src 'none'; frame-ancestors 'none'; \
base-uri 'none'; form-action 'self'";

/// One embedded file: its name under `/ui/`, media type and bytes.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    bytes: &'static [u8],
}

const ASSETS: &[Asset] = &[
    Asset {
        name: "index.html",
        content_type: "text/html; charset=utf-8",
        bytes: include_bytes!("assets/index.html"),
    },
    Asset {
        name: "app.js",
        content_type: "text/javascript; charset=utf-8",
        bytes: include_bytes!("assets/app.js"),
    },
    Asset {
        name: "style.css",
        content_type: "text/css; charset=utf-8",
        bytes: include_bytes!("assets/style.css"),
    },
];

/// Each asset's ETag: a quoted prefix of its SHA-256, computed once.
static ETAGS: LazyLock<Vec<String>> = LazyLock::new(|| {
    ASSETS
        .iter()
        .map(|a| {
            let digest = Sha256::digest(a.bytes);
            let hex: String = digest[..12].iter().map(|b| format!("{b:02x}")).collect();
            format!("\"{hex}\"")
        })
        .collect()
});

/// The headers every console answer carries.
fn secure(resp: &mut Resp) {
    let h = resp.headers_mut();
    let fixed: [(HeaderName, &'static str); 5] = [
        (HeaderName::from_static("content-security-policy"), CSP),
        (HeaderName::from_static("x-frame-options"), "DENY"),
        (HeaderName::from_static("x-content-type-options"), "nosniff"),
        (HeaderName::from_static("referrer-policy"), "no-referrer"),
        (
            HeaderName::from_static("cross-origin-opener-policy"),
            "same-origin",
        ),
    ];
    for (name, value) in fixed {
        h.insert(name, HeaderValue::from_static(value));
    }
}

/// `/ui/` serves the page; `/` and `/ui` (no slash: the page's relative links need it)
/// redirect there.
async fn index(cx: Cx) -> Result<Resp, ApiError> {
    if cx.head.uri.path() == "/ui/" {
        return serve(&cx, 0);
    }
    let mut resp = Response::new(Full::new(Bytes::new()));
    *resp.status_mut() = StatusCode::FOUND;
    resp.headers_mut()
        .insert(LOCATION, HeaderValue::from_static("/ui/"));
    secure(&mut resp);
    Ok(resp)
}

/// `/ui/{file}`: an embedded file, or 404.
async fn asset(cx: Cx) -> Result<Resp, ApiError> {
    match ASSETS.iter().position(|a| a.name == cx.id()) {
        Some(i) => serve(&cx, i),
        None => Err(ApiError::not_found("No such resource.")),
    }
}

/// The asset, or 304 when the browser's copy is current. `no-cache`: browsers keep the file
/// but ask each time, so a new binary's console is picked up at once.
fn serve(cx: &Cx, i: usize) -> Result<Resp, ApiError> {
    let asset = &ASSETS[i];
    let etag = &ETAGS[i];
    let fresh = cx
        .headers()
        .get_all(IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim() == etag || t.trim() == "*");
    let mut resp = if fresh {
        let mut r = Response::new(Full::new(Bytes::new()));
        *r.status_mut() = StatusCode::NOT_MODIFIED;
        r
    } else {
        let mut r = Response::new(Full::new(Bytes::from_static(asset.bytes)));
        r.headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static(asset.content_type));
        r
    };
    let h = resp.headers_mut();
    h.insert(
        ETAG,
        HeaderValue::from_str(etag).map_err(ApiError::internal)?,
    );
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    secure(&mut resp);
    Ok(resp)
}
