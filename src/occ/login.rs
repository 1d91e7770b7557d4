//! Signing in to Oracle's API: `/login` (password, or an application key), `/mfalogin`
//! (password and one-time code), `/refresh`, `/logout` and `/verify`, under `/ccadmin/v1` and
//! `/ccadminui/v1`, with or without a trailing slash on the logins: what occ-tools, the Design
//! Code Utility and admin scripts call.

use hyper::header::{HeaderValue, SET_COOKIE};
use serde_json::{Value, json};

use super::DIALECT;
use crate::auth::{Caller, Login};
use crate::error::{ApiError, Kind};
use crate::http::{self, Resp};
use crate::routes::Cx;

/// A token answer. It carries a cookie too, which holds no credential (tokens are accepted
/// only as bearer tokens): occ-tools stores a successful login's `Set-Cookie` and fails when
/// there is none.
fn token_body(login: &Login) -> Resp {
    let mut resp = http::ok_json(
        &json!({
            "access_token": login.token,
            "token_type": "bearer",
            "expires_in": login.lifetime_secs,
        }),
        DIALECT,
    );
    let cookie = format!(
        "profiled_signed_in=1; Path=/; Max-Age={}; HttpOnly; SameSite=Strict",
        login.lifetime_secs
    );
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        resp.headers_mut().insert(SET_COOKIE, v);
    }
    resp
}

/// A form's fields, decoded, and also as sent when that differs: the Design Code Utility
/// sends user names and passwords without URL-encoding them.
struct Form {
    decoded: Vec<(String, String)>,
    raw: Option<Vec<(String, String)>>,
}

impl Form {
    fn parse(body: &[u8]) -> Form {
        let text = String::from_utf8_lossy(body);
        let decoded = http::parse_query(&text);
        let raw: Vec<(String, String)> = text
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|pair| {
                let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                (k.to_string(), v.to_string())
            })
            .collect();
        let raw = (raw != decoded).then_some(raw);
        Form { decoded, raw }
    }

    fn field<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
        pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    fn get(&self, name: &str) -> Option<&str> {
        Self::field(&self.decoded, name)
    }

    /// The user name and password as decoded, then as sent (when that differs).
    fn credentials(&self) -> Result<Vec<(&str, &str)>, ApiError> {
        fn pair(pairs: &[(String, String)]) -> Option<(&str, &str)> {
            Some((
                Form::field(pairs, "username")?,
                Form::field(pairs, "password")?,
            ))
        }
        let first = pair(&self.decoded)
            .ok_or_else(|| ApiError::bad_request("username and password are required."))?;
        let mut all = vec![first];
        if let Some(second) = self.raw.as_deref().and_then(pair)
            && second != first
        {
            all.push(second);
        }
        Ok(all)
    }
}

/// Tries each reading of the credentials in turn; the first that signs in wins. Each
/// failure counts towards the lockouts as a failed login.
async fn with_each<'a, F, Fut>(
    tries: Vec<(&'a str, &'a str)>,
    mut sign_in: F,
) -> Result<Login, ApiError>
where
    F: FnMut(&'a str, &'a str) -> Fut,
    Fut: std::future::Future<Output = Result<Login, ApiError>>,
{
    let mut last = None;
    for (username, password) in tries {
        match sign_in(username, password).await {
            Err(e) if e.kind == Kind::LoginFailed => last = Some(e),
            other => return other,
        }
    }
    Err(last.unwrap_or_else(ApiError::login_failed))
}

async fn read_form(cx: &mut Cx) -> Result<Form, ApiError> {
    http::require_form(cx.headers())?;
    let body = cx.body().await?;
    Ok(Form::parse(&body))
}

fn unsupported_grant(given: Option<&str>, supported: &str) -> ApiError {
    let mut e = match given {
        Some(other) => ApiError::bad_request(format!(
            "Unsupported grant_type '{}': use {supported}.",
            other.chars().take(64).collect::<String>()
        )),
        None => ApiError::bad_request("grant_type is required."),
    };
    e.extra
        .insert("error".into(), Value::from("unsupported_grant_type"));
    e
}

pub async fn login(mut cx: Cx) -> Result<Resp, ApiError> {
    let peer = cx.peer_ip();
    let form = read_form(&mut cx).await?;
    let auth = &cx.app.auth;
    match form.get("grant_type") {
        Some("password") => {}
        Some("client_credentials") => {
            let login =
                super::applications::client_credentials(&cx.app, cx.headers(), peer).await?;
            return Ok(token_body(&login));
        }
        other => {
            return Err(unsupported_grant(
                other,
                "'password' or 'client_credentials'",
            ));
        }
    }
    let login = with_each(form.credentials()?, |u, p| auth.login(u, p, peer)).await?;
    Ok(token_body(&login))
}

/// `/mfalogin`: `grant_type=password`, `username`, `password` and `totp_code`.
pub async fn mfa_login(mut cx: Cx) -> Result<Resp, ApiError> {
    let peer = cx.peer_ip();
    let form = read_form(&mut cx).await?;
    let auth = &cx.app.auth;
    match form.get("grant_type") {
        Some("password") => {}
        other => return Err(unsupported_grant(other, "'password'")),
    }
    let code = form.get("totp_code").unwrap_or("").to_string();
    let login = with_each(form.credentials()?, |u, p| {
        auth.login_with_code(u, p, &code, peer)
    })
    .await?;
    Ok(token_body(&login))
}

pub async fn refresh(cx: Cx, caller: Caller) -> Result<Resp, ApiError> {
    let login = cx.app.auth.refresh(&caller).await?;
    Ok(token_body(&login))
}

pub async fn logout(cx: Cx, caller: Caller) -> Result<Resp, ApiError> {
    cx.app.auth.logout(&caller).await?;
    Ok(http::ok_json(&json!({"result": true}), DIALECT))
}

/// The dispatcher has already checked the token: reaching here means it is valid.
pub async fn verify(_cx: Cx, _caller: Caller) -> Result<Resp, ApiError> {
    Ok(http::ok_json(&json!({"success": true}), DIALECT))
}

/// The sign-in routes' errors carry an OAuth 2 `error` member (RFC 6749 §5.2, RFC 6750 §3.1)
/// next to Oracle's: occ-tools takes an answer without one for a successful login.
pub fn oauth_error(route: &'static str, e: &mut ApiError) {
    let signing_in = route.starts_with("occ.login") || route.starts_with("occ.mfalogin");
    let token_route = matches!(route, "occ.refresh" | "occ.verify" | "occ.logout");
    if !(signing_in || token_route) || e.extra.contains_key("error") {
        return;
    }
    let code = match e.kind {
        Kind::LoginFailed | Kind::MfaRequired => "invalid_grant",
        Kind::Unauthorized if signing_in => "invalid_client",
        Kind::Unauthorized => "invalid_token",
        Kind::TooManyRequests | Kind::Unavailable => "temporarily_unavailable",
        Kind::Internal | Kind::InsufficientStorage => "server_error",
        _ => "invalid_request",
    };
    e.extra.insert("error".into(), Value::from(code));
}
