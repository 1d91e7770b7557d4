//! The account's authenticator (TOTP) seed, Oracle's way: `getAuthenticatorInfo` hands out a
//! seed not yet set up, for a token of the account; `resetAuthenticatorKey` lets an
//! administrator make an account set up a new one. The seed is the same one Appgate's
//! multi-step sign-in uses.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};

use super::DIALECT;
use crate::appgate::export::qr_png;
use crate::auth::{Caller, Seed, totp};
use crate::error::{ApiError, FieldError};
use crate::http::{self, Resp};
use crate::routes::Cx;

fn no_authenticator_info() -> ApiError {
    ApiError::bad_request("Unable to find authenticator information for this token.")
        .code("83045")
        .at_field("token")
}

fn string_member(body: &Value, name: &str) -> Result<String, ApiError> {
    match body.get(name) {
        Some(Value::String(s)) if !s.trim().is_empty() => Ok(s.trim().to_string()),
        _ => Err(ApiError::validation(vec![
            FieldError::new(name, format!("{name} is required.")).code("22007"),
        ])),
    }
}

fn png_data_url(text: &str) -> Result<String, ApiError> {
    let png =
        qr_png(text).map_err(|_| ApiError::internal("the authenticator link has no QR code"))?;
    Ok(format!("data:image/png;base64,{}", STANDARD.encode(png)))
}

/// `POST /adminProfiles/getAuthenticatorInfo` (`{token}`: a token of the account, also one
/// of an unfinished Appgate sign-in): the seed to set up, as Oracle Mobile Authenticator and
/// `otpauth://` links with their QR codes. A seed already set up is not shown again.
pub async fn get_info(mut cx: Cx) -> Result<Resp, ApiError> {
    let body = cx.json().await?;
    let token = string_member(&body, "token")?;
    let app = &cx.app;
    let partial = app
        .auth
        .partial_of(&token)
        .map_err(|_| no_authenticator_info())?;
    let secret = match app.auth.seed(&partial.account).await? {
        Seed::Secret(secret) => secret,
        Seed::AlreadySeeded => {
            return Err(ApiError::bad_request(
                "The authenticator of this account is set up already; an administrator can reset it with resetAuthenticatorKey.",
            )
            .code("83045"));
        }
    };
    let email = &partial.account.email;
    let issuer = crate::appgate::signin_issuer(&app.store.settings()?.collective_name);
    let oma = format!(
        "oraclemobileauthenticator://settings?AccountName::={issuer}/{email}&SharedSecretValue::={secret}"
    );
    let otpauth = totp::otpauth_url(&issuer, email, &secret);
    Ok(http::ok_json(
        &json!({
            "secretKey": secret,
            "omaLink": oma,
            "omaQRCodeLink": png_data_url(&oma)?,
            "qrCodeLink": png_data_url(&otpauth)?,
            "otpauthLink": otpauth,
        }),
        DIALECT,
    ))
}

/// `POST /adminProfiles/resetAuthenticatorKey` (`{email}`, administrators): the account's
/// seed is forgotten; its next sign-in with a one-time code sets up a new one.
pub async fn reset_key(mut cx: Cx, _caller: Caller) -> Result<Resp, ApiError> {
    let body = cx.json().await?;
    let email = string_member(&body, "email")?;
    let app = &cx.app;
    let account = app.store.account_by_email(&email)?.ok_or_else(|| {
        ApiError::bad_request("No admin profile with this e-mail address.")
            .code("83072")
            .at_field("email")
    })?;
    app.auth.reset_seed(&account.id).await?;
    Ok(http::ok_json(&json!({"success": true}), DIALECT))
}
