//! Appgate's multi-step sign-in, as sdpctl does it: the identity providers, the password
//! (`POST /authentication`: a token not yet authorized), the one-time code when the account
//! needs one (`/authentication/otp/initialize`, `/authentication/otp`), and the authorization
//! that makes the token a full one (`GET /authorization`: 412 while a code is owed).

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};

use super::login::{PROVIDER, answer, credentials};
use super::{export, ok};
use crate::auth::{Partial, Seed, totp};
use crate::clock;
use crate::error::{ApiError, FieldError};
use crate::http::Resp;
use crate::routes::Cx;

/// `GET /identity-providers/names`: the one local provider, of the type sdpctl treats as a
/// user name and password login, and the login banner.
pub async fn provider_names(cx: Cx) -> Result<Resp, ApiError> {
    let banner = cx.app.store.settings()?.login_banner_message;
    Ok(ok(&json!({
        "data": [{"name": PROVIDER, "type": "Credentials"}],
        "bannerMessage": banner,
    })))
}

/// `POST /authentication`: a right password gives a token that opens only the next steps.
/// `needTwoFactorAuth` says whether a one-time code is owed before authorization.
pub async fn authenticate(mut cx: Cx) -> Result<Resp, ApiError> {
    let peer = cx.peer_ip();
    let body = cx.json().await?;
    let (username, password) = credentials(&body)?;
    let auth = &cx.app.auth;
    let login = auth
        .authenticate_password(&username, &password, peer)
        .await?;
    let owes_code = auth.mfa_required(&login.account.email)?;
    answer(
        &cx.app,
        &login.token,
        login.expires,
        &login.account,
        owes_code,
    )
}

/// `GET /authorization`: the token becomes a full one, or 412 while a code is owed.
pub async fn authorize(cx: Cx, p: Partial) -> Result<Resp, ApiError> {
    cx.app.auth.authorize(&p).await?;
    answer_for(&cx, &p)
}

/// The answer of a later step: the same token, its expiry, no code owed any more.
fn answer_for(cx: &Cx, p: &Partial) -> Result<Resp, ApiError> {
    answer(
        &cx.app,
        &p.token,
        clock::from_millis(p.expires),
        &p.account,
        false,
    )
}

/// `POST /authentication/otp/initialize`: the seed to set up (its secret, `otpauth://` link
/// and QR code), or `AlreadySeeded`.
pub async fn otp_initialize(mut cx: Cx, p: Partial) -> Result<Resp, ApiError> {
    // The body is optional (`{userPassword}` serves RADIUS providers, which are not here).
    let _ = cx.body().await?;
    let app = &cx.app;
    match app.auth.seed(&p.account).await? {
        Seed::AlreadySeeded => Ok(ok(&json!({"type": "AlreadySeeded"}))),
        Seed::Secret(secret) => {
            let issuer = issuer(&app.store.settings()?.collective_name);
            let url = totp::otpauth_url(&issuer, &p.account.email, &secret);
            let png = export::qr_png(&url)
                .map_err(|_| ApiError::internal("the authenticator link has no QR code"))?;
            Ok(ok(&json!({
                "type": "Secret",
                "secret": secret,
                "otpAuthUrl": url,
                "barcode": STANDARD.encode(png),
            })))
        }
    }
}

/// The issuer authenticator apps show: the collective's name, else `profiled`.
pub fn issuer(collective_name: &str) -> String {
    match collective_name.trim() {
        "" => "profiled".into(),
        name => name.to_string(),
    }
}

/// `POST /authentication/otp` (`{otp}`): a right code lets the token be authorized; a wrong
/// or replayed one is 401 and counts towards the account's lockout.
pub async fn otp(mut cx: Cx, p: Partial) -> Result<Resp, ApiError> {
    let body = cx.json().await?;
    let code = match body.get("otp") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        None | Some(Value::Null) => {
            return Err(ApiError::validation(vec![FieldError::new(
                "otp",
                "may not be null",
            )]));
        }
        Some(_) => {
            return Err(ApiError::validation(vec![FieldError::new(
                "otp",
                "must be a string",
            )]));
        }
    };
    cx.app.auth.pass_mfa(&p, &code).await?;
    answer_for(&cx, &p)
}
