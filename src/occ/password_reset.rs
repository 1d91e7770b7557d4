//! `POST /ccadmin/v1/adminProfiles/requestPasswordReset` and `…/sendPasswordReset`: a reset
//! token sent by mail, then checked and used to set a new password.
//!
//! The request always answers `{"success": true}` at once: looking the account up, storing
//! the token and sending the message all happen afterwards, so neither the answer nor its
//! timing says whether the account exists.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::DIALECT;
use super::profile_input::valid_email;
use crate::app::App;
use crate::auth::password;
use crate::clock;
use crate::error::{ApiError, FieldError};
use crate::http::{self, Resp};
use crate::routes::Cx;
use crate::store::{PasswordReset, StoreError};

fn success() -> Resp {
    http::ok_json(&json!({"success": true}), DIALECT)
}

fn login_id_required() -> FieldError {
    FieldError::new("email", "User login ID is required.").code("83004")
}

/// One answer for a token that is unknown, used up, expired, or not the e-mail's.
fn token_refused() -> ApiError {
    ApiError::bad_request(
        "Resetting this account's password is not allowed: the reset token is invalid, used or expired.",
    )
    .code("60004")
    .at_field("token")
}

/// A new reset token: 32 bytes from the OS, URL-safe base64 without padding (it goes into a
/// mail body, where `=` would be escaped), and the hash that is stored.
fn new_token() -> (String, [u8; 32]) {
    let mut raw = [0u8; 32];
    getrandom::fill(&mut raw).expect("the OS random source is available");
    (URL_SAFE_NO_PAD.encode(raw), Sha256::digest(raw).into())
}

/// The stored hash of a presented token, or `None` when it cannot be one.
fn token_hash(token: &str) -> Option<[u8; 32]> {
    let raw = URL_SAFE_NO_PAD.decode(token.trim()).ok()?;
    (raw.len() == 32).then(|| Sha256::digest(&raw).into())
}

fn string<'a>(body: &'a Value, field: &str) -> Option<&'a str> {
    body.get(field)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

pub async fn request(mut cx: Cx) -> Result<Resp, ApiError> {
    let body = cx.json().await?;
    super::object(&body)?;
    let Some(email) = string(&body, "email").map(str::trim) else {
        return Err(ApiError::validation(vec![login_id_required()]));
    };
    if !valid_email(email) {
        return Err(ApiError::validation(vec![
            FieldError::new("email", "The e-mail address is not valid.").code("23006"),
        ]));
    }
    let app = cx.app.clone();
    let email = email.to_string();
    tokio::spawn(async move {
        if let Err(e) = issue(&app, &email).await {
            tracing::warn!(error = %e, "a password reset could not be issued");
        }
    });
    Ok(success())
}

/// Stores a new token for the active account with this e-mail (if there is one) and sends
/// it. The token is in the message only: never in a log line.
async fn issue(app: &App, email: &str) -> Result<(), StoreError> {
    let Some(account) = app.store.account_by_email(email)?.filter(|a| a.active) else {
        return Ok(());
    };
    let (token, hash) = new_token();
    let now = clock::millis(clock::now());
    let lifetime = app.config.password_reset_lifetime;
    app.store
        .put_password_reset(
            &hash,
            &PasswordReset {
                account_id: account.id.clone(),
                created: now,
                expires: now + lifetime.as_millis() as i64,
            },
        )
        .await?;
    app.mailer.send(
        "password_reset",
        &account.email,
        "Reset your profiled password",
        message(&account.email, &token, lifetime.as_secs() / 60),
    );
    Ok(())
}

/// The message: short lines of ASCII (apart from the address), so that it travels as
/// 7-bit text and the token stays on one line.
fn message(email: &str, token: &str, minutes: u64) -> String {
    format!(
        "Someone asked to reset the password of the account\r\n\
         {email}.\r\n\
         If it was you, set a new password within {minutes} minutes with this token:\r\n\
         \r\n\
         token: {token}\r\n\
         \r\n\
         Send it to POST /ccadmin/v1/adminProfiles/sendPasswordReset as\r\n\
         {{\"op\": \"confirmPasswordReset\", \"token\": \"<the token>\",\r\n\
          \"email\": \"<this address>\", \"password\": \"<new password>\",\r\n\
          \"confirmPassword\": \"<new password>\"}}\r\n\
         \r\n\
         The token works once. If you did not ask for this, ignore this message:\r\n\
         the token expires on its own and your password stays as it is.\r\n"
    )
}

/// `op` = `validateToken` (the token only) or `confirmPasswordReset` (all of `token`,
/// `email`, `password`, `confirmPassword`).
pub async fn send(mut cx: Cx) -> Result<Resp, ApiError> {
    let body = cx.json().await?;
    super::object(&body)?;
    let op = body.get("op").and_then(Value::as_str);
    let confirm = match op {
        Some("validateToken") => false,
        Some("confirmPasswordReset") => true,
        _ => {
            return Err(ApiError::validation(vec![
                FieldError::new(
                    "op",
                    "op must be 'validateToken' or 'confirmPasswordReset'.",
                )
                .code("22007"),
            ]));
        }
    };
    let token = string(&body, "token");
    let mut errors = Vec::new();
    if token.is_none() {
        errors.push(FieldError::new("token", "token is required.").code("22007"));
    }
    let email = string(&body, "email").map(str::trim);
    let new_password = string(&body, "password");
    if confirm {
        if email.is_none() {
            errors.push(login_id_required());
        }
        match new_password.map(password::check_strength) {
            None => errors.push(FieldError::new("password", "password is required.").code("22005")),
            Some(Err(m)) => errors.push(FieldError::new("password", m).code("22005")),
            Some(Ok(())) => {}
        }
        if string(&body, "confirmPassword") != new_password {
            errors.push(
                FieldError::new("confirmPassword", "confirmPassword must equal password.")
                    .code("22005"),
            );
        }
    }
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    let hash = token.and_then(token_hash).ok_or_else(token_refused)?;
    let store = &cx.app.store;
    // Checked before the costly hash; checked again, with the e-mail, when it is used.
    if store
        .password_reset(&hash, clock::millis(clock::now()))?
        .is_none()
    {
        return Err(token_refused());
    }
    if !confirm {
        return Ok(success());
    }
    let (email, new_password) = (email.expect("checked"), new_password.expect("checked"));
    let password_hash = cx.app.auth.passwords().hash(new_password.to_string()).await;
    match store
        .reset_password(&hash, email, password_hash, clock::millis(clock::now()))
        .await?
    {
        Some(account) => {
            tracing::info!(id = %account.id, "password reset");
            Ok(success())
        }
        None => Err(token_refused()),
    }
}
