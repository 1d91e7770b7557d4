//! `/ccadmin/v1/applicationIds`: registered applications and their keys, and the
//! `grant_type=client_credentials` login that exchanges a key for an access token.
//!
//! A key is 32 random bytes (standard base64), shown once: in the answer that creates it
//! (`POST /applicationIds`, `genAuthToken`). The store keeps only its SHA-256, so reads of an
//! application leave `token` out.

use std::net::IpAddr;

use hyper::header::HeaderMap;
use serde_json::{Value, json};

use super::DIALECT;
use super::profile_input::{Mode, role_list};
use crate::app::App;
use crate::auth::roles::ADMIN_ROLE;
use crate::auth::{self, Caller, Login};
use crate::clock;
use crate::error::{ApiError, FieldError, Kind};
use crate::http::{self, Resp};
use crate::routes::Cx;
use crate::store::{Application, StoreError, hex};

/// Longest application name, in characters.
const MAX_NAME_CHARS: usize = 255;
/// Oracle's ceiling on `lifetimeDays`.
const MAX_LIFETIME_DAYS: i64 = 365;
const DAY_MS: i64 = 24 * 60 * 60 * 1000;

const APPLICATION: &str = "application";
const EXTENSION: &str = "extension";

/// `POST /login` with `grant_type=client_credentials` and `Authorization: Bearer <key>`.
/// A refusal carries the OAuth `error` member besides Oracle's body: occ-tools recognises a
/// failed login by it alone.
pub async fn client_credentials(
    app: &App,
    headers: &HeaderMap,
    peer: Option<IpAddr>,
) -> Result<Login, ApiError> {
    app.auth
        .application_login(auth::bearer(headers), peer)
        .await
        .map_err(with_oauth_error)
}

/// A refused key is the client's failure (`invalid_client`); every other error gets its
/// `error` member from the sign-in routes' `login::oauth_error`.
fn with_oauth_error(mut e: ApiError) -> ApiError {
    if matches!(e.kind, Kind::LoginFailed | Kind::Unauthorized) {
        e.extra
            .insert("error".into(), Value::from("invalid_client"));
    }
    e
}

fn no_application(id: &str) -> ApiError {
    let shown: String = id.chars().take(64).collect();
    ApiError::not_found(format!("No application with id '{shown}'."))
}

/// Turns a store error of an application write into the answer.
fn write_error(id: &str) -> impl Fn(StoreError) -> ApiError + '_ {
    move |e| match e {
        StoreError::NotFound => no_application(id),
        other => other.into(),
    }
}

fn invalid(field: &str, message: impl Into<String>) -> FieldError {
    FieldError::new(field, message).code("22007")
}

/// When a key issued now with `lifetime_days` stops (`None`: never).
fn expiry(lifetime_days: i64, now_ms: i64) -> Option<i64> {
    (lifetime_days >= 0).then(|| now_ms + lifetime_days * DAY_MS)
}

/// A new key and the hash the store keeps of it.
fn new_key() -> (String, String) {
    let (key, hash) = auth::new_token();
    (key, hex(&hash))
}

/// An application as Oracle shows it; `expirationTime` (seconds) on single reads, `token`
/// only where a key was just made.
fn render(app: &App, a: &Application, detail: bool, key: Option<&str>) -> Value {
    let creator = a
        .created_by
        .as_deref()
        .and_then(|id| app.store.account(id).ok().flatten());
    let mut v = json!({
        "repositoryId": a.id,
        "id": a.id,
        "name": a.name,
        "type": a.kind,
        "creationTime": clock::occ(a.created),
        "createdBy": {
            "repositoryId": a.created_by,
            "firstName": creator.as_ref().map(|c| c.first_name.as_str()),
            "lastName": creator.as_ref().map(|c| c.last_name.as_str()),
        },
        "inUse": a.in_use,
        "external": false,
        "lifetimeDays": a.lifetime_days,
        "roles": a.roles.iter().map(|r| json!({"repositoryId": r})).collect::<Vec<_>>(),
    });
    if detail && a.kind == APPLICATION {
        v["expirationTime"] = json!(a.expires.map(|ms| ms.div_euclid(1000)));
    }
    if let Some(key) = key {
        v["token"] = json!(key);
    }
    v
}

/// `lifetimeDays`: absent, null or -1 for ever; 0 not at all; above 365 lowered to 365.
fn lifetime(body: &Value, errors: &mut Vec<FieldError>) -> Option<i64> {
    match body.get("lifetimeDays") {
        None | Some(Value::Null) => None,
        Some(v) => match v.as_i64() {
            Some(d) if d >= -1 => Some(d.min(MAX_LIFETIME_DAYS)),
            _ => {
                errors.push(invalid(
                    "lifetimeDays",
                    "lifetimeDays must be an integer of at least -1.",
                ));
                None
            }
        },
    }
}

fn name(body: &Value, required: bool, errors: &mut Vec<FieldError>) -> Option<String> {
    match body.get("name") {
        None | Some(Value::Null) if !required => None,
        Some(Value::String(s))
            if !s.trim().is_empty() && s.trim().chars().count() <= MAX_NAME_CHARS =>
        {
            Some(s.trim().to_string())
        }
        _ => {
            errors.push(invalid(
                "name",
                format!("name is required: a string of 1 to {MAX_NAME_CHARS} characters."),
            ));
            None
        }
    }
}

fn done(errors: Vec<FieldError>) -> Result<(), ApiError> {
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ApiError::validation(errors))
    }
}

pub async fn list(cx: Cx, _caller: Caller) -> Result<Resp, ApiError> {
    let pairs = http::query_pairs(&cx.head);
    let kind = pairs.iter().find(|(k, _)| k == "type").map(|(_, v)| v);
    let items: Vec<Value> = cx
        .app
        .store
        .applications()?
        .iter()
        .filter(|a| kind.is_none_or(|k| k.is_empty() || *k == a.kind))
        .map(|a| render(&cx.app, a, false, None))
        .collect();
    Ok(http::ok_json(&json!({"items": items}), DIALECT))
}

pub async fn create(mut cx: Cx, caller: Caller) -> Result<Resp, ApiError> {
    let body = cx.json().await?;
    super::object(&body)?;
    let mut errors = Vec::new();
    let name = name(&body, true, &mut errors);
    let kind = match body.get("type").and_then(Value::as_str) {
        Some(k @ (APPLICATION | EXTENSION)) => Some(k.to_string()),
        _ => {
            errors.push(invalid(
                "type",
                "type must be 'application' or 'extension'.",
            ));
            None
        }
    };
    let lifetime_days = lifetime(&body, &mut errors).unwrap_or(-1);
    let roles = role_list(&body, Mode::Update, &mut errors);
    done(errors)?;
    let kind = kind.expect("checked");
    let now = clock::now();
    let now_ms = clock::millis(now);
    let key = (kind == APPLICATION).then(new_key);
    let application = Application {
        id: crate::ids::new_v7().simple().to_string(),
        name: name.expect("checked"),
        key_hash: key.as_ref().map(|(_, h)| h.clone()),
        key_generation: 1,
        lifetime_days,
        expires: key.as_ref().and_then(|_| expiry(lifetime_days, now_ms)),
        created: now,
        created_by: Some(caller.account_id.clone()),
        roles: roles.unwrap_or_else(|| vec![ADMIN_ROLE.to_string()]),
        in_use: false,
        kind,
    };
    cx.recheck()?;
    cx.app.store.create_application(&application).await?;
    let key = key.map(|(k, _)| k);
    Ok(http::ok_json(
        &render(&cx.app, &application, true, key.as_deref()),
        DIALECT,
    ))
}

pub async fn get(cx: Cx, _caller: Caller) -> Result<Resp, ApiError> {
    let id = cx.id();
    let a = cx
        .app
        .store
        .application(id)?
        .ok_or_else(|| no_application(id))?;
    Ok(http::ok_json(&render(&cx.app, &a, true, None), DIALECT))
}

/// Renames, or narrows the roles (profiled's extension); `type` and keys do not change here.
pub async fn update(mut cx: Cx, _caller: Caller) -> Result<Resp, ApiError> {
    let id = cx.id().to_string();
    if cx.app.store.application(&id)?.is_none() {
        return Err(no_application(&id));
    }
    let body = cx.json().await?;
    super::object(&body)?;
    let mut errors = Vec::new();
    let name = name(&body, false, &mut errors);
    let roles = role_list(&body, Mode::Update, &mut errors);
    done(errors)?;
    let a = cx
        .app
        .store
        .update_application(&id, |a| {
            if let Some(n) = name {
                a.name = n;
            }
            if let Some(r) = roles {
                a.roles = r;
            }
            Ok::<(), StoreError>(())
        })
        .await
        .map_err(write_error(&id))?;
    Ok(http::ok_json(&render(&cx.app, &a, true, None), DIALECT))
}

pub async fn delete(cx: Cx, _caller: Caller) -> Result<Resp, ApiError> {
    let id = cx.id();
    cx.recheck()?;
    if cx.app.store.delete_application(id).await? {
        Ok(http::no_content())
    } else {
        Err(no_application(id))
    }
}

/// `POST /applicationIds/{id}` with `{"op": "genAuthToken", "type": "application",
/// "lifetimeDays": N}`: a new key, which ends the old key and every token issued with it.
pub async fn operation(mut cx: Cx, _caller: Caller) -> Result<Resp, ApiError> {
    let id = cx.id().to_string();
    let current = cx
        .app
        .store
        .application(&id)?
        .ok_or_else(|| no_application(&id))?;
    let body = cx.json().await?;
    super::object(&body)?;
    let mut errors = Vec::new();
    if body.get("op").and_then(Value::as_str) != Some("genAuthToken") {
        errors.push(invalid("op", "op must be 'genAuthToken'."));
    }
    match body.get("type") {
        None | Some(Value::Null) => {}
        Some(t) if t.as_str() == Some(APPLICATION) => {}
        Some(_) => errors.push(invalid("type", "type must be 'application'.")),
    }
    let lifetime_days = lifetime(&body, &mut errors);
    if current.kind != APPLICATION {
        errors.push(invalid(
            "type",
            "Only applications of type 'application' have keys.",
        ));
    }
    done(errors)?;
    let (key, hash) = new_key();
    let now_ms = clock::millis(clock::now());
    cx.app
        .store
        .update_application(&id, |a| {
            let days = lifetime_days.unwrap_or(a.lifetime_days);
            a.lifetime_days = days;
            a.key_hash = Some(hash);
            a.key_generation += 1;
            a.expires = expiry(days, now_ms);
            a.in_use = false;
            Ok::<(), StoreError>(())
        })
        .await
        .map_err(write_error(&id))?;
    Ok(http::ok_json(&json!({"token": key}), DIALECT))
}
