//! `/admin/admin-mfa-settings`: administrator MFA on (the built-in TOTP provider) or off, and
//! the accounts exempted from it.

use serde_json::{Value, json};
use uuid::Uuid;

use super::ok;
use crate::auth::{BUILTIN_TOTP_PROVIDER, Caller};
use crate::error::{ApiError, FieldError};
use crate::http::{self, Resp};
use crate::routes::Cx;
use crate::store::AdminMfa;

/// Most exemptions kept, and the longest one.
const MAX_EXEMPTED: usize = 1000;
const MAX_EXEMPTED_CHARS: usize = 512;

pub async fn get(cx: Cx, _caller: Caller) -> Result<Resp, ApiError> {
    let mfa = cx.app.store.admin_mfa()?;
    // Off is a missing `providerId`: the vendor's schema has it as a string, never null.
    let mut body = json!({"exemptedUsers": mfa.exempted_users});
    if let Some(id) = mfa.provider_id {
        body["providerId"] = json!(id);
    }
    Ok(ok(&body))
}

pub async fn put(mut cx: Cx, _caller: Caller) -> Result<Resp, ApiError> {
    let body = cx.json().await?;
    let Value::Object(body) = body else {
        return Err(ApiError::bad_request("The body must be a JSON object."));
    };
    let mut errors = Vec::new();
    let provider_id = match body.get("providerId") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => match Uuid::parse_str(s) {
            Ok(id) if id == BUILTIN_TOTP_PROVIDER => Some(id),
            Ok(_) => {
                errors.push(FieldError::new(
                    "providerId",
                    format!(
                        "unknown MFA provider; the only one is the built-in TOTP provider {BUILTIN_TOTP_PROVIDER}"
                    ),
                ));
                None
            }
            Err(_) => {
                errors.push(FieldError::new("providerId", "must be a UUID"));
                None
            }
        },
        Some(_) => {
            errors.push(FieldError::new("providerId", "must be a UUID"));
            None
        }
    };
    let mut exempted_users = Vec::new();
    match body.get("exemptedUsers") {
        None | Some(Value::Null) => {}
        Some(Value::Array(items)) if items.len() > MAX_EXEMPTED => errors.push(FieldError::new(
            "exemptedUsers",
            format!("size must be at most {MAX_EXEMPTED}"),
        )),
        Some(Value::Array(items)) => {
            for (i, item) in items.iter().enumerate() {
                match item.as_str().map(str::trim) {
                    Some(s)
                        if !s.is_empty()
                            && s.chars().count() <= MAX_EXEMPTED_CHARS
                            && crate::text::name_problem(s).is_none() =>
                    {
                        exempted_users.push(s.to_string())
                    }
                    _ => errors.push(FieldError::new(
                        format!("exemptedUsers.{i}"),
                        format!(
                            "must be a user name (`CN=<e-mail>,OU=local` or the e-mail) of at most {MAX_EXEMPTED_CHARS} characters"
                        ),
                    )),
                }
            }
        }
        Some(_) => errors.push(FieldError::new("exemptedUsers", "must be an array")),
    }
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    let mfa = AdminMfa {
        provider_id,
        exempted_users,
    };
    cx.app.store.put_admin_mfa(Some(&mfa)).await?;
    Ok(http::no_content())
}

pub async fn delete(cx: Cx, _caller: Caller) -> Result<Resp, ApiError> {
    cx.app.store.put_admin_mfa(None).await?;
    Ok(http::no_content())
}
