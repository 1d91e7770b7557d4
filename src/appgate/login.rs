//! `/admin/version`, `/admin/login` and `/admin/authentication/logout`, and what the
//! multi-step sign-in (`signin.rs`) shares with them: the login body and answer.

use serde_json::{Value, json};

use super::{DIALECT, ok};
use crate::auth::{Caller, Privilege, privileges};
use crate::clock;
use crate::error::{ApiError, FieldError};
use crate::http::{self, Resp};
use crate::routes::Cx;

/// The only identity provider (decision: accounts are local).
pub(super) const PROVIDER: &str = "local";

pub async fn version(_cx: Cx) -> Result<Resp, ApiError> {
    Ok(http::ok_json(&super::version_body(), DIALECT))
}

fn string_field<'a>(body: &'a Value, name: &str, errors: &mut Vec<FieldError>) -> Option<&'a str> {
    match body.get(name) {
        None | Some(Value::Null) => {
            errors.push(FieldError::new(name, "may not be null"));
            None
        }
        Some(Value::String(s)) => Some(s),
        Some(_) => {
            errors.push(FieldError::new(name, "must be a string"));
            None
        }
    }
}

pub async fn login(mut cx: Cx) -> Result<Resp, ApiError> {
    let peer = cx.peer_ip();
    let body = cx.json().await?;
    let (username, password) = credentials(&body)?;
    let login = cx.app.auth.login(&username, &password, peer).await?;
    answer(&cx.app, &login.token, login.expires, &login.account, false)
}

/// The user name and password of a login body (`LoginRequest`), checked.
pub(super) fn credentials(body: &Value) -> Result<(String, String), ApiError> {
    if !body.is_object() {
        return Err(ApiError::bad_request(
            "The login body must be a JSON object.",
        ));
    }
    let mut errors = Vec::new();
    let provider = string_field(body, "providerName", &mut errors);
    let device = string_field(body, "deviceId", &mut errors);
    let username = string_field(body, "username", &mut errors);
    let password = string_field(body, "password", &mut errors);
    if let Some(d) = device
        && uuid::Uuid::parse_str(d).is_err()
    {
        errors.push(FieldError::new("deviceId", "must be a UUID"));
    }
    if let Some(p) = provider
        && !p.eq_ignore_ascii_case(PROVIDER)
    {
        errors.push(FieldError::new(
            "providerName",
            format!("unknown identity provider; the only one is '{PROVIDER}'"),
        ));
    }
    let (Some(username), Some(password), true) = (username, password, errors.is_empty()) else {
        return Err(ApiError::validation(errors));
    };
    Ok((username.to_string(), password.to_string()))
}

/// Appgate's `LoginResponse` for a token of `account`.
pub(super) fn answer(
    app: &crate::app::App,
    token: &str,
    expires: time::OffsetDateTime,
    account: &crate::store::Account,
    need_two_factor: bool,
) -> Result<Resp, ApiError> {
    let motd = app.store.settings()?.message_of_the_day;
    Ok(ok(&json!({
        "token": token,
        "expires": clock::appgate(expires),
        "messageOfTheDay": motd,
        "user": {
            "name": account.email,
            "needTwoFactorAuth": need_two_factor,
            "canAccessAuditLogs": false,
            "privileges": appgate_privileges(&account.roles),
        },
    })))
}

/// The caller's privileges as Appgate items. An administrator holds `All/All`, as Appgate's
/// built-in admin role does; other roles list their client-profile and settings rights.
fn appgate_privileges(roles: &[String]) -> Vec<Value> {
    let all = json!({"all": true});
    if privileges(roles).any(|p| p == Privilege::Backup) {
        return vec![json!({"type": "All", "target": "All", "scope": all})];
    }
    let mut items: Vec<(&str, &str)> = privileges(roles).filter_map(Privilege::appgate).collect();
    items.sort();
    items.dedup();
    items
        .into_iter()
        .map(|(kind, target)| json!({"type": kind, "target": target, "scope": all}))
        .collect()
}

pub async fn logout(cx: Cx, caller: Caller) -> Result<Resp, ApiError> {
    cx.app.auth.logout(&caller).await?;
    Ok(http::no_content())
}
