//! `/ccadmin/v1/login`, `/refresh`, `/logout` and `/verify`.

use serde_json::json;

use super::DIALECT;
use crate::auth::{Caller, Login};
use crate::error::ApiError;
use crate::http::{self, Resp};
use crate::routes::Cx;

fn token_body(login: &Login) -> Resp {
    http::ok_json(
        &json!({
            "access_token": login.token,
            "token_type": "bearer",
            "expires_in": login.lifetime_secs,
        }),
        DIALECT,
    )
}

pub async fn login(mut cx: Cx) -> Result<Resp, ApiError> {
    let peer = cx.peer_ip();
    http::require_form(cx.headers())?;
    let body = cx.body().await?;
    let app = &cx.app;
    let form = http::parse_query(&String::from_utf8_lossy(&body));
    let field = |name: &str| {
        form.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    match field("grant_type") {
        Some("password") => {}
        Some("client_credentials") => {
            return super::applications::client_credentials(app, cx.headers(), peer).await;
        }
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "Unsupported grant_type '{other}': only 'password' is supported."
            )));
        }
        None => return Err(ApiError::bad_request("grant_type is required.")),
    }
    let (Some(username), Some(password)) = (field("username"), field("password")) else {
        return Err(ApiError::bad_request("username and password are required."));
    };
    let login = app.auth.login(username, password, peer).await?;
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
