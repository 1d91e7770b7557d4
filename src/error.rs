//! The one place that turns an error into a status code and a body, in each dialect's format:
//! Appgate's `{id, message[, errors]}` under `/admin`, Oracle's `{errorCode, message, status,
//! type[, errors]}` under `/ccadmin`. Internal detail is logged here, once, and never sent.

use std::borrow::Cow;

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{ALLOW, CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use hyper::{Response, StatusCode};
use serde::Serialize;
use serde_json::{Map, Value};

use crate::store::{Outage, StoreError};

/// The seconds a client is asked to wait before trying again when the store cannot be
/// reached: long enough for an etcd cluster to elect a leader (about a second by default).
pub const STORE_RETRY_AFTER_SECS: u64 = 5;

/// Which vendor's error format a request is answered in; chosen by its path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialect {
    Appgate,
    Occ,
}

impl Dialect {
    pub fn of(path: &str) -> Dialect {
        if path == "/ccadmin" || path.starts_with("/ccadmin/") {
            Dialect::Occ
        } else {
            Dialect::Appgate
        }
    }
}

/// One problem with one field of a request body.
#[derive(Clone, Debug, PartialEq)]
pub struct FieldError {
    /// Dotted JSON path, e.g. `profileUrls.0.url`.
    pub field: String,
    pub message: String,
    /// Oracle's errorCode for this problem (Appgate ignores it).
    pub code: Option<&'static str>,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        FieldError {
            field: field.into(),
            message: message.into(),
            code: None,
        }
    }

    pub fn code(mut self, code: &'static str) -> Self {
        self.code = Some(code);
        self
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    BadRequest,
    Unauthorized,
    /// Wrong credentials at login (Appgate adds `failureType`).
    LoginFailed,
    Forbidden,
    NotFound,
    MethodNotAllowed,
    NotAcceptable,
    RequestTimeout,
    Conflict,
    PayloadTooLarge,
    UnsupportedMediaType,
    /// Appgate's 422; Oracle answers validation problems with 400.
    Validation,
    TooManyRequests,
    /// The account must give a one-time code first: Appgate's 412 (what sdpctl waits for),
    /// Oracle's 401.
    MfaRequired,
    Internal,
    Unavailable,
    /// The store is full (etcd's quota): 507, in both dialects.
    InsufficientStorage,
}

impl Kind {
    fn status(self, dialect: Dialect) -> StatusCode {
        match self {
            Kind::BadRequest => StatusCode::BAD_REQUEST,
            Kind::Unauthorized | Kind::LoginFailed => StatusCode::UNAUTHORIZED,
            Kind::Forbidden => StatusCode::FORBIDDEN,
            Kind::NotFound => StatusCode::NOT_FOUND,
            Kind::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Kind::NotAcceptable => StatusCode::NOT_ACCEPTABLE,
            Kind::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            Kind::Conflict => StatusCode::CONFLICT,
            Kind::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Kind::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Kind::Validation => match dialect {
                Dialect::Appgate => StatusCode::UNPROCESSABLE_ENTITY,
                Dialect::Occ => StatusCode::BAD_REQUEST,
            },
            Kind::TooManyRequests => StatusCode::TOO_MANY_REQUESTS,
            Kind::MfaRequired => match dialect {
                Dialect::Appgate => StatusCode::PRECONDITION_FAILED,
                Dialect::Occ => StatusCode::UNAUTHORIZED,
            },
            Kind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            Kind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            Kind::InsufficientStorage => StatusCode::INSUFFICIENT_STORAGE,
        }
    }
}

/// An error on its way to the client. Handlers build these; `into_response` renders them.
/// Boxed so that `Result<_, ApiError>` stays one pointer wide on the happy path.
#[derive(Debug)]
pub struct ApiError(Box<ErrorDetails>);

impl std::ops::Deref for ApiError {
    type Target = ErrorDetails;
    fn deref(&self) -> &ErrorDetails {
        &self.0
    }
}

impl std::ops::DerefMut for ApiError {
    fn deref_mut(&mut self) -> &mut ErrorDetails {
        &mut self.0
    }
}

#[derive(Debug)]
pub struct ErrorDetails {
    pub kind: Kind,
    pub message: String,
    /// Oracle's errorCode; defaults to the status number.
    pub code: Option<&'static str>,
    pub errors: Vec<FieldError>,
    pub retry_after: Option<u64>,
    pub allow: Option<String>,
    /// Extra top-level members (Appgate's 406 carries the version window).
    pub extra: Map<String, Value>,
}

impl ApiError {
    pub fn new(kind: Kind, message: impl Into<String>) -> Self {
        ApiError(Box::new(ErrorDetails {
            kind,
            message: message.into(),
            code: None,
            errors: Vec::new(),
            retry_after: None,
            allow: None,
            extra: Map::new(),
        }))
    }

    pub fn code(mut self, code: &'static str) -> Self {
        self.code = Some(code);
        self
    }

    /// Names the request member the error is about (Oracle's `o:errorPath`), keeping the
    /// error's message and code.
    pub fn at_field(mut self, field: impl Into<String>) -> Self {
        let item = FieldError {
            field: field.into(),
            message: self.message.clone(),
            code: self.code,
        };
        self.errors = vec![item];
        self
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(Kind::BadRequest, message)
    }

    pub fn unauthorized() -> Self {
        Self::new(Kind::Unauthorized, "Token error. Login again.")
    }

    pub fn login_failed() -> Self {
        Self::new(Kind::LoginFailed, "Invalid username or password.")
    }

    /// Sign-in needs a one-time code: Appgate's multi-step login, or Oracle's `/mfalogin`.
    pub fn mfa_required() -> Self {
        let mut e = Self::new(
            Kind::MfaRequired,
            "Administrative authorization requires two-factor authentication.",
        );
        e.extra.insert("otpRequired".into(), Value::Bool(true));
        e
    }

    pub fn forbidden() -> Self {
        Self::new(
            Kind::Forbidden,
            "You don't have permission to access this resource.",
        )
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(Kind::NotFound, message)
    }

    pub fn method_not_allowed(allow: String) -> Self {
        let mut e = Self::new(
            Kind::MethodNotAllowed,
            format!("Method not allowed here. Allowed: {allow}."),
        );
        e.allow = Some(allow);
        e
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(Kind::Conflict, message)
    }

    /// Several problems at once: Appgate 422 `Validation failed.`, Oracle 400 with `errors`.
    pub fn validation(errors: Vec<FieldError>) -> Self {
        let mut e = Self::new(Kind::Validation, "Validation failed.");
        e.code = errors.first().and_then(|f| f.code);
        if e.code.is_some() && errors.len() == 1 {
            e.message = errors[0].message.clone();
        }
        e.errors = errors;
        e
    }

    pub fn field(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::validation(vec![FieldError::new(field, message)])
    }

    pub fn too_many_requests(retry_after: u64) -> Self {
        let mut e = Self::new(
            Kind::TooManyRequests,
            "Too many failed login attempts. Try again later.",
        );
        e.retry_after = Some(retry_after);
        e
    }

    pub fn internal(detail: impl std::fmt::Display) -> Self {
        tracing::error!(%detail, "internal error");
        Self::new(Kind::Internal, "An unexpected error occurred.")
    }

    pub fn unavailable() -> Self {
        Self::new(
            Kind::Unavailable,
            "The server cannot store data right now. Nothing was changed by this request.",
        )
    }

    /// The store cannot be reached: 503 with `Retry-After`.
    pub fn store_unreachable() -> Self {
        let mut e = Self::new(
            Kind::Unavailable,
            "The server cannot reach its data store right now. Try again later.",
        );
        e.retry_after = Some(STORE_RETRY_AFTER_SECS);
        e
    }

    /// The store is full: 507, no `Retry-After` (an operator must free space first).
    pub fn store_full() -> Self {
        Self::new(
            Kind::InsufficientStorage,
            "The server's data store is full. Nothing was changed by this request; reading still works.",
        )
    }

    /// The write is larger than the store takes in one request: 413.
    pub fn too_large_for_store() -> Self {
        Self::new(
            Kind::PayloadTooLarge,
            "The request is larger than the server's data store accepts. Nothing was changed by this request.",
        )
    }

    pub fn payload_too_large(limit: usize) -> Self {
        Self::new(
            Kind::PayloadTooLarge,
            format!("The request body is larger than {limit} bytes."),
        )
    }

    pub fn status(&self, dialect: Dialect) -> StatusCode {
        self.kind.status(dialect)
    }

    pub fn into_response(self, dialect: Dialect) -> Response<Full<Bytes>> {
        let status = self.kind.status(dialect);
        let mut resp = match dialect {
            Dialect::Appgate => {
                crate::http::json_response(status, &self.appgate_body(status), dialect)
            }
            Dialect::Occ => crate::http::json_response(status, &self.occ_body(status), dialect),
        };
        let headers = resp.headers_mut();
        if let Some(v) = self
            .allow
            .as_deref()
            .and_then(|a| HeaderValue::from_str(a).ok())
        {
            headers.insert(ALLOW, v);
        }
        if let Some(secs) = self.retry_after {
            headers.insert(RETRY_AFTER, HeaderValue::from(secs));
        }
        if status == StatusCode::UNAUTHORIZED && dialect == Dialect::Occ {
            headers.insert(
                hyper::header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer"),
            );
        }
        debug_assert!(resp.headers().contains_key(CONTENT_TYPE));
        resp
    }

    fn appgate_body(&self, status: StatusCode) -> AppgateBody<'_> {
        let validation = self.kind == Kind::Validation && !self.errors.is_empty();
        AppgateBody {
            id: status
                .canonical_reason()
                .unwrap_or("error")
                .to_ascii_lowercase(),
            message: if validation {
                "Validation failed."
            } else {
                &self.message
            },
            errors: validation.then(|| {
                self.errors
                    .iter()
                    .map(|e| AppgateField {
                        field: &e.field,
                        message: &e.message,
                    })
                    .collect()
            }),
            failure_type: (self.kind == Kind::LoginFailed).then_some("Login"),
            extra: &self.extra,
        }
    }

    fn occ_body(&self, status: StatusCode) -> OccBody<'_> {
        let status_s = status.as_u16().to_string();
        let code = match (self.code, self.kind) {
            (Some(code), _) => Cow::Borrowed(code),
            (None, Kind::BadRequest | Kind::Validation) => Cow::Borrowed("22007"),
            (None, _) => Cow::Owned(status_s.clone()),
        };
        let type_url = format!(
            "https://www.rfc-editor.org/rfc/rfc9110#status.{}",
            status.as_u16()
        );
        let errors = (!self.errors.is_empty()).then(|| {
            self.errors
                .iter()
                .map(|e| OccField {
                    error_code: e.code.map_or_else(|| code.clone(), Cow::Borrowed),
                    message: &e.message,
                    status: status_s.clone(),
                    type_url: type_url.clone(),
                    error_path: &e.field,
                })
                .collect()
        });
        OccBody {
            error_code: code,
            message: &self.message,
            status: status_s,
            type_url,
            error_path: match self.errors.as_slice() {
                [one] => Some(&one.field),
                _ => None,
            },
            errors,
            extra: &self.extra,
        }
    }
}

/// Appgate's error body, written straight from the error without building a JSON tree.
#[derive(Serialize)]
struct AppgateBody<'a> {
    id: String,
    message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    errors: Option<Vec<AppgateField<'a>>>,
    #[serde(rename = "failureType", skip_serializing_if = "Option::is_none")]
    failure_type: Option<&'static str>,
    #[serde(flatten)]
    extra: &'a Map<String, Value>,
}

#[derive(Serialize)]
struct AppgateField<'a> {
    field: &'a str,
    message: &'a str,
}

/// Oracle's error body; every member is a string, as Oracle sends them.
#[derive(Serialize)]
struct OccBody<'a> {
    #[serde(rename = "errorCode")]
    error_code: Cow<'a, str>,
    message: &'a str,
    status: String,
    #[serde(rename = "type")]
    type_url: String,
    #[serde(rename = "o:errorPath", skip_serializing_if = "Option::is_none")]
    error_path: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    errors: Option<Vec<OccField<'a>>>,
    /// Extra top-level members (the login's OAuth `error`, which occ-tools looks for).
    #[serde(flatten)]
    extra: &'a Map<String, Value>,
}

#[derive(Serialize)]
struct OccField<'a> {
    #[serde(rename = "errorCode")]
    error_code: Cow<'a, str>,
    message: &'a str,
    status: String,
    #[serde(rename = "type")]
    type_url: String,
    #[serde(rename = "o:errorPath")]
    error_path: &'a str,
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::KeyTaken | StoreError::IdTaken => {
                ApiError::conflict("The submitted resource conflicts with another.")
            }
            StoreError::NotFound => ApiError::not_found("The requested resource can not be found."),
            StoreError::LastAdministrator => {
                ApiError::conflict("This change would leave no active administrator.")
            }
            StoreError::Unavailable => ApiError::unavailable(),
            // Logged once here, with the database's own words (they name no secret).
            other => match other.outage() {
                Some(Outage::Unreachable) => {
                    tracing::warn!(cause = %other, "the store cannot be reached: answered 503");
                    ApiError::store_unreachable()
                }
                Some(Outage::Full) => {
                    tracing::error!(cause = %other, "the store is full: a write was refused (507)");
                    ApiError::store_full()
                }
                Some(Outage::TooLarge) => {
                    tracing::warn!(cause = %other, "a write larger than the store accepts was refused (413)");
                    ApiError::too_large_for_store()
                }
                None => ApiError::internal(other),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(resp: Response<Full<Bytes>>) -> (u16, Value) {
        use http_body_util::BodyExt;
        let status = resp.status().as_u16();
        let bytes = futures_util::FutureExt::now_or_never(resp.into_body().collect())
            .expect("a full body is ready")
            .expect("infallible")
            .to_bytes();
        (status, serde_json::from_slice(&bytes).unwrap())
    }

    #[test]
    fn a_refused_write_is_503_in_both_dialects() {
        let (status, b) =
            body(ApiError::from(StoreError::Unavailable).into_response(Dialect::Appgate));
        assert_eq!(status, 503);
        assert_eq!(b["id"], "service unavailable");
        let (status, b) = body(ApiError::from(StoreError::Unavailable).into_response(Dialect::Occ));
        assert_eq!(status, 503);
        assert_eq!(b["errorCode"], "503");
        assert_eq!(b["status"], "503");
    }

    #[test]
    fn store_outages_answer_in_each_dialect() {
        for dialect in [Dialect::Appgate, Dialect::Occ] {
            let resp = ApiError::store_unreachable().into_response(dialect);
            assert_eq!(resp.headers()[RETRY_AFTER], "5");
            let (status, b) = body(resp);
            assert_eq!(status, 503);
            assert!(b["message"].as_str().unwrap().contains("Try again later"));

            let resp = ApiError::store_full().into_response(dialect);
            assert!(!resp.headers().contains_key(RETRY_AFTER));
            let (status, b) = body(resp);
            assert_eq!(status, 507);
            assert!(b["message"].as_str().unwrap().contains("full"));

            let (status, _) = body(ApiError::too_large_for_store().into_response(dialect));
            assert_eq!(status, 413);
        }
        let (_, b) = body(ApiError::store_full().into_response(Dialect::Appgate));
        assert_eq!(b["id"], "insufficient storage");
        let (_, b) = body(ApiError::store_full().into_response(Dialect::Occ));
        assert_eq!(
            (&b["errorCode"], &b["status"]),
            (&"507".into(), &"507".into())
        );
    }

    #[cfg(feature = "etcd")]
    #[test]
    fn etcd_failures_reach_clients_by_what_they_mean() {
        use crate::store::engine::Error as E;
        let status = |e: E| ApiError::from(StoreError::Engine(e)).status(Dialect::Appgate);
        let cause = || "secret detail".to_string();
        assert_eq!(status(E::EtcdUnavailable(cause())), 503);
        assert_eq!(status(E::EtcdNoSpace(cause())), 507);
        assert_eq!(status(E::EtcdTooLarge(cause())), 413);
        assert_eq!(status(E::Etcd(cause())), 500);
        for e in [E::EtcdUnavailable(cause()), E::EtcdNoSpace(cause())] {
            let (_, b) = body(ApiError::from(StoreError::Engine(e)).into_response(Dialect::Occ));
            assert!(!b.to_string().contains("secret"), "{b}");
        }
    }

    #[test]
    fn internal_errors_never_carry_their_detail() {
        for dialect in [Dialect::Appgate, Dialect::Occ] {
            let e = ApiError::from(StoreError::Corrupt("secret detail at /var/lib/x".into()));
            let (status, b) = body(e.into_response(dialect));
            assert_eq!(status, 500);
            assert!(!b.to_string().contains("secret detail"), "{b}");
        }
    }

    fn raw(resp: Response<Full<Bytes>>) -> String {
        use http_body_util::BodyExt;
        let bytes = futures_util::FutureExt::now_or_never(resp.into_body().collect())
            .expect("a full body is ready")
            .expect("infallible")
            .to_bytes();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    #[test]
    fn bodies_keep_their_member_order_byte_for_byte() {
        let two = || {
            ApiError::validation(vec![
                FieldError::new("name", "may not be null"),
                FieldError::new("tags.1", "bad \"tag\"").code("23006"),
            ])
        };
        assert_eq!(
            raw(two().into_response(Dialect::Appgate)),
            r#"{"id":"unprocessable entity","message":"Validation failed.","errors":[{"field":"name","message":"may not be null"},{"field":"tags.1","message":"bad \"tag\""}]}"#
        );
        assert_eq!(
            raw(two().into_response(Dialect::Occ)),
            r#"{"errorCode":"22007","message":"Validation failed.","status":"400","type":"https://www.rfc-editor.org/rfc/rfc9110#status.400","errors":[{"errorCode":"22007","message":"may not be null","status":"400","type":"https://www.rfc-editor.org/rfc/rfc9110#status.400","o:errorPath":"name"},{"errorCode":"23006","message":"bad \"tag\"","status":"400","type":"https://www.rfc-editor.org/rfc/rfc9110#status.400","o:errorPath":"tags.1"}]}"#
        );
        assert_eq!(
            raw(ApiError::login_failed().into_response(Dialect::Appgate)),
            r#"{"id":"unauthorized","message":"Invalid username or password.","failureType":"Login"}"#
        );
        let mut e = ApiError::new(Kind::NotAcceptable, "No.");
        e.extra
            .insert("minSupportedVersion".into(), Value::from(18));
        e.extra
            .insert("maxSupportedVersion".into(), Value::from(23));
        assert_eq!(
            raw(e.into_response(Dialect::Appgate)),
            r#"{"id":"not acceptable","message":"No.","minSupportedVersion":18,"maxSupportedVersion":23}"#
        );
        assert_eq!(
            raw(ApiError::conflict("Taken.")
                .code("22006")
                .at_field("email")
                .into_response(Dialect::Occ)),
            r#"{"errorCode":"22006","message":"Taken.","status":"409","type":"https://www.rfc-editor.org/rfc/rfc9110#status.409","o:errorPath":"email","errors":[{"errorCode":"22006","message":"Taken.","status":"409","type":"https://www.rfc-editor.org/rfc/rfc9110#status.409","o:errorPath":"email"}]}"#
        );
    }

    #[test]
    fn oracle_errors_carry_strings_and_field_paths() {
        let e = ApiError::validation(vec![FieldError::new("email", "bad").code("23006")]);
        let (status, b) = body(e.into_response(Dialect::Occ));
        assert_eq!(status, 400);
        assert_eq!(b["errorCode"], "23006");
        assert_eq!(b["status"], "400");
        assert_eq!(b["o:errorPath"], "email");
        assert_eq!(b["errors"][0]["errorCode"], "23006");
    }
}
