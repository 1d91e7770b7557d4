//! `/ccadmin/v1/login`, `/refresh`, `/logout` and `/verify`.

use serde_json::json;

use super::DIALECT;
use crate::app::App;
use crate::auth::Login;
use crate::error::ApiError;
use crate::http::{self, Req, Resp};

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

pub async fn login(app: &App, req: Req) -> Result<Resp, ApiError> {
    let peer = http::peer_ip(&req);
    http::require_form(req.headers())?;
    let body = http::read_body(req, app.config.body_timeout).await?;
    let form = http::parse_query(&String::from_utf8_lossy(&body));
    let field = |name: &str| {
        form.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    match field("grant_type") {
        Some("password") => {}
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

pub async fn refresh(app: &App, req: Req) -> Result<Resp, ApiError> {
    let caller = app.auth.authenticate(req.headers())?;
    let login = app.auth.refresh(&caller).await?;
    Ok(token_body(&login))
}

pub async fn logout(app: &App, req: Req) -> Result<Resp, ApiError> {
    let caller = app.auth.authenticate(req.headers())?;
    app.auth.logout(&caller).await?;
    Ok(http::ok_json(&json!({"result": true}), DIALECT))
}

pub async fn verify(app: &App, req: Req) -> Result<Resp, ApiError> {
    app.auth.authenticate(req.headers())?;
    Ok(http::ok_json(&json!({"success": true}), DIALECT))
}
