//! Request and response plumbing shared by both dialects: bounded body reading, JSON and form
//! decoding, query strings, and response builders.

use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Either, Full, Limited, StreamBody};
use hyper::body::Frame;
use hyper::body::Incoming;
use hyper::header::{CONTENT_LENGTH, CONTENT_TYPE, HeaderMap, HeaderValue};
use hyper::{Request, Response, StatusCode};
use serde::Serialize;

use crate::error::{ApiError, Dialect, Kind};

pub type Req = Request<Incoming>;
/// A request's method, URI and headers, once its body is held apart.
pub type Head = hyper::http::request::Parts;
pub type Resp = Response<Full<Bytes>>;

/// The address of the client that sent a request; the server puts it in every request's
/// extensions.
#[derive(Clone, Copy, Debug)]
pub struct PeerAddr(pub std::net::SocketAddr);

/// Who a request was authenticated as (an account id, or an application's holder), kept in
/// the response's extensions for the request log.
#[derive(Clone, Debug)]
pub struct CallerId(pub String);

/// The server address a connection came in on, kept in each request's extensions: the host
/// of self links when the request's `Host` header is missing or not a host name.
#[derive(Clone, Copy, Debug)]
pub struct LocalAddr(pub std::net::SocketAddr);

/// In the extensions of every request that came over TLS (`--tls-listen`): self links then
/// say `https://`.
#[derive(Clone, Copy, Debug)]
pub struct OverTls;

/// The client's IP address (`None` only for requests built outside the server).
pub fn peer_ip(extensions: &hyper::http::Extensions) -> Option<std::net::IpAddr> {
    extensions.get::<PeerAddr>().map(|p| p.0.ip())
}

/// Largest request body accepted. sled writes a log message over ~128 KiB to a blob file
/// that it never fsyncs, so records must stay well below that.
pub const MAX_BODY: usize = 64 * 1024;

pub fn json_response<T: Serialize + ?Sized>(
    status: StatusCode,
    body: &T,
    dialect: Dialect,
) -> Resp {
    // Most answers (a profile, an error) fit: no regrowing while writing.
    let mut bytes = Vec::with_capacity(512);
    serde_json::to_writer(&mut bytes, body).expect("response bodies are plain data");
    let mut resp = Response::new(Full::new(Bytes::from(bytes)));
    *resp.status_mut() = status;
    let ct = match dialect {
        Dialect::Appgate => "application/json",
        Dialect::Occ => "application/json; charset=UTF-8",
    };
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(ct));
    resp
}

pub fn ok_json<T: Serialize + ?Sized>(body: &T, dialect: Dialect) -> Resp {
    json_response(StatusCode::OK, body, dialect)
}

pub fn no_content() -> Resp {
    let mut resp = Response::new(Full::new(Bytes::new()));
    *resp.status_mut() = StatusCode::NO_CONTENT;
    resp
}

/// Reads the whole body, refusing more than `MAX_BODY` bytes (413) or a client that takes
/// longer than `timeout` to send it (408).
pub async fn read_body(
    headers: &HeaderMap,
    body: Incoming,
    timeout: Duration,
) -> Result<Bytes, ApiError> {
    if let Some(len) = headers.get(CONTENT_LENGTH) {
        let len: u64 = len
            .to_str()
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| ApiError::bad_request("Invalid Content-Length header."))?;
        if len > MAX_BODY as u64 {
            return Err(ApiError::payload_too_large(MAX_BODY));
        }
    }
    let limited = Limited::new(body, MAX_BODY);
    match tokio::time::timeout(timeout, limited.collect()).await {
        Err(_) => Err(ApiError::new(
            Kind::RequestTimeout,
            "The request body was not received in time.",
        )),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => {
            Err(ApiError::payload_too_large(MAX_BODY))
        }
        Ok(Err(_)) => Err(ApiError::bad_request("The request body could not be read.")),
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
    }
}

/// The media type of the request without parameters, lower-cased.
fn media_type(headers: &HeaderMap) -> Option<String> {
    let ct = headers.get(CONTENT_TYPE)?.to_str().ok()?;
    Some(ct.split(';').next()?.trim().to_ascii_lowercase())
}

/// `application/json` or any `+json` type (Appgate clients send their vendor type).
pub fn require_json(headers: &HeaderMap) -> Result<(), ApiError> {
    match media_type(headers) {
        Some(t)
            if t == "application/json"
                || (t.starts_with("application/") && t.ends_with("+json")) =>
        {
            Ok(())
        }
        _ => Err(ApiError::new(
            Kind::UnsupportedMediaType,
            "Content-Type must be application/json.",
        )),
    }
}

pub fn require_form(headers: &HeaderMap) -> Result<(), ApiError> {
    match media_type(headers).as_deref() {
        Some("application/x-www-form-urlencoded") => Ok(()),
        _ => Err(ApiError::new(
            Kind::UnsupportedMediaType,
            "Content-Type must be application/x-www-form-urlencoded.",
        )),
    }
}

/// Reads a JSON body: 415 for another media type, 413 when too large, 400 when malformed
/// or missing altogether.
pub async fn read_json(
    headers: &HeaderMap,
    body: Incoming,
    timeout: Duration,
) -> Result<serde_json::Value, ApiError> {
    if !headers.contains_key(CONTENT_TYPE) {
        // No body at all is a missing JSON body (400), not a body of the wrong type (415).
        let body = read_body(headers, body, timeout).await?;
        if body.is_empty() {
            return Err(ApiError::bad_request("A JSON body is required."));
        }
        return Err(ApiError::new(
            Kind::UnsupportedMediaType,
            "Content-Type must be application/json.",
        ));
    }
    require_json(headers)?;
    let body = read_body(headers, body, timeout).await?;
    parse_json(&body)
}

pub fn parse_json(body: &[u8]) -> Result<serde_json::Value, ApiError> {
    serde_json::from_slice(body).map_err(|e| ApiError::bad_request(format!("Malformed JSON: {e}.")))
}

/// Parses `a=1&b=x+y%21` into pairs, decoding `+` and percent escapes. Invalid escapes are
/// kept literally rather than refused, as most servers do.
pub fn parse_query(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (decode_component(k), decode_component(v))
        })
        .collect()
}

fn decode_component(s: &str) -> String {
    fn hex(b: u8) -> Option<u8> {
        (b as char).to_digit(16).map(|d| d as u8)
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => match (
                bytes.get(i + 1).copied().and_then(hex),
                bytes.get(i + 2).copied().and_then(hex),
            ) {
                (Some(hi), Some(lo)) => {
                    out.push(hi << 4 | lo);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The query pairs of a request.
pub fn query_pairs(head: &Head) -> Vec<(String, String)> {
    head.uri.query().map(parse_query).unwrap_or_default()
}

/// Splits a path into its segments: `/a/b/` gives `["a", "b", ""]`.
pub fn segments(path: &str) -> Vec<&str> {
    path.strip_prefix('/').unwrap_or(path).split('/').collect()
}

/// Frames of a streamed body, produced lazily.
pub type Frames = Box<dyn Iterator<Item = Result<Frame<Bytes>, Infallible>> + Send>;

/// The body type the server sends: buffered JSON for almost everything, a stream for backups.
pub type Body = Either<Full<Bytes>, StreamBody<futures_util::stream::Iter<Frames>>>;

/// Batches `lines` into frames of about 64 KiB.
pub fn stream_lines(lines: impl Iterator<Item = Vec<u8>> + Send + 'static) -> Body {
    let mut lines = lines.peekable();
    let frames = std::iter::from_fn(move || {
        let mut buf = Vec::with_capacity(64 * 1024);
        while buf.len() < 64 * 1024 {
            match lines.next() {
                Some(l) => buf.extend_from_slice(&l),
                None => break,
            }
        }
        (!buf.is_empty()).then(|| Ok(Frame::data(Bytes::from(buf))))
    });
    Either::Right(StreamBody::new(futures_util::stream::iter(
        Box::new(frames) as Frames,
    )))
}
