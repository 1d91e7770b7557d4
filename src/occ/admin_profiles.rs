//! `/ccadmin/v1/adminProfiles`: create, list, read and update admin profiles (the accounts),
//! including the caller's own (`/current`) and profiled's password extension.

use std::cmp::Ordering;

use serde_json::{Value, json};

use super::DIALECT;
use super::list::{self, ListQuery};
use super::profile_input::{Mode, ProfileInput};
use super::scim::{self, Filter};
use crate::app::App;
use crate::auth::Caller;
use crate::clock;
use crate::error::{ApiError, FieldError};
use crate::http::{self, Head, Resp};
use crate::routes::Cx;
use crate::store::{Account, NewAccount, StoreError};

/// Properties `sort` accepts; the first is the default.
const SORTABLE: &[&str] = &["id", "email", "firstName", "lastName", "registrationDate"];

/// A profile as Oracle shows it. The password hash never leaves the store.
pub fn render(a: &Account) -> Value {
    let roles: Vec<Value> = a.roles.iter().map(|r| json!({"repositoryId": r})).collect();
    json!({
        "id": a.id,
        "repositoryId": a.id,
        "firstName": a.first_name,
        "lastName": a.last_name,
        "email": a.email,
        "active": a.active,
        "roles": roles,
        "registrationDate": clock::occ(a.registration_date),
        "rolesLastModified": clock::occ(a.roles_last_modified),
        "lastLogin": a.last_login.map(clock::occ),
        "createdBy": a.created_by,
        "external": a.external,
        "tourComplete": a.tour_complete,
    })
}

fn email_taken() -> ApiError {
    ApiError::conflict("A profile with this email address already exists.")
        .code("22006")
        .at_field("email")
}

fn no_profile(id: &str) -> ApiError {
    let shown: String = id.chars().take(64).collect();
    ApiError::not_found(format!("No admin profile with id '{shown}'.")).code("22001")
}

/// `GET` or `PUT /adminProfiles/` (with the slash): a signed-in caller naming no profile.
pub async fn empty_id(_cx: Cx, _caller: Caller) -> Result<Resp, ApiError> {
    Err(ApiError::bad_request("The profile id must not be empty.").code("22000"))
}

fn self_deactivation() -> ApiError {
    ApiError::bad_request("You cannot deactivate your own profile.")
        .code("23037")
        .at_field("active")
}

/// Why an account write failed: the caller's re-check, or the store.
enum WriteError {
    Api(ApiError),
    Store(StoreError),
}

impl From<StoreError> for WriteError {
    fn from(e: StoreError) -> Self {
        WriteError::Store(e)
    }
}

fn last_administrator() -> ApiError {
    ApiError::conflict(
        "This change would leave no active administrator: give another active account the adminRole first.",
    )
}

/// Turns a store error of a profile write into Oracle's answer.
fn write_error(id: &str) -> impl Fn(StoreError) -> ApiError + '_ {
    move |e| match e {
        StoreError::KeyTaken => email_taken(),
        StoreError::NotFound => no_profile(id),
        StoreError::LastAdministrator => last_administrator(),
        other => other.into(),
    }
}

/// One profile, with `fields` applied when the request has it.
fn answer(req_fields: Option<Vec<String>>, account: &Account) -> Resp {
    http::ok_json(
        &list::keep_fields(render(account), req_fields.as_deref()),
        DIALECT,
    )
}

fn fields_param(head: &Head) -> Option<Vec<String>> {
    let pairs = http::query_pairs(head);
    list::fields_of(
        pairs
            .iter()
            .find(|(k, _)| k == "fields")
            .map(|(_, v)| v.as_str()),
    )
}

/// Hashes the body's new password off the runtime, if it has one. Before that work, an
/// e-mail that is plainly taken is refused; the store's reservation is what decides races (and
/// the only check when there is nothing to hash).
async fn hash_password(
    app: &App,
    input: &ProfileInput,
    own_id: Option<&str>,
) -> Result<Option<String>, ApiError> {
    let Some(password) = &input.password else {
        return Ok(None);
    };
    if let Some(email) = &input.email
        && app
            .store
            .account_by_email(email)?
            .is_some_and(|other| Some(other.id.as_str()) != own_id)
    {
        return Err(email_taken());
    }
    Ok(Some(app.auth.passwords().hash(password.clone()).await))
}

pub async fn create(mut cx: Cx, caller: Caller) -> Result<Resp, ApiError> {
    let body = cx.json().await?;
    let app = &cx.app;
    let input = ProfileInput::parse(&body, Mode::Create)?;
    let password_hash = hash_password(app, &input, None).await?;
    let account = app
        .store
        .create_account(NewAccount {
            first_name: input.first_name.expect("required on create"),
            last_name: input.last_name.expect("required on create"),
            email: input.email.expect("required on create"),
            active: input.active.unwrap_or(true),
            roles: input.roles.expect("required on create"),
            created_by: Some(caller.account_id.clone()),
            password_hash,
        })
        .await
        .map_err(write_error(""))?;
    Ok(http::ok_json(&json!({"id": account.id}), DIALECT))
}

pub async fn list(cx: Cx, _caller: Caller) -> Result<Resp, ApiError> {
    let query = ListQuery::parse(&cx.head, SORTABLE)?;
    let filter = filter(&query)?;
    let mut accounts = cx.app.store.accounts()?;
    if let Some(f) = &filter {
        accounts.retain(|a| f.matches(a));
    }
    query.sort(&mut accounts, compare);
    Ok(http::ok_json(&query.envelope(&accounts, render), DIALECT))
}

/// `q` with `queryFormat=SCIM`; no (or an empty) `q` filters nothing.
fn filter(query: &ListQuery) -> Result<Option<Filter>, ApiError> {
    let q = match query.param("q") {
        None => return Ok(None),
        Some(q) if q.trim().is_empty() => return Ok(None),
        Some(q) => q,
    };
    let invalid = |field: &str, message: String| {
        ApiError::validation(vec![FieldError::new(field, message).code("22007")])
    };
    match query.param("queryFormat") {
        Some(f) if f.eq_ignore_ascii_case("SCIM") => {}
        _ => {
            return Err(invalid(
                "queryFormat",
                "Only SCIM filters are supported: send queryFormat=SCIM with q.".into(),
            ));
        }
    }
    Filter::parse(q)
        .map(Some)
        .map_err(|e| invalid("q", e.to_string()))
}

fn compare(a: &Account, b: &Account, property: &str) -> Ordering {
    let text = |x: &str, y: &str| x.to_lowercase().cmp(&y.to_lowercase());
    match property {
        "email" => text(&a.email, &b.email),
        "firstName" => text(&a.first_name, &b.first_name),
        "lastName" => text(&a.last_name, &b.last_name),
        "registrationDate" => a.registration_date.cmp(&b.registration_date),
        _ => scim::id_order(&a.id, &b.id),
    }
}

pub async fn get(cx: Cx, _caller: Caller) -> Result<Resp, ApiError> {
    let id = cx.id();
    let account = cx.app.store.account(id)?.ok_or_else(|| no_profile(id))?;
    Ok(answer(fields_param(&cx.head), &account))
}

pub async fn get_current(cx: Cx, caller: Caller) -> Result<Resp, ApiError> {
    Ok(answer(
        fields_param(&cx.head),
        &cx.app.auth.account_of(&caller)?,
    ))
}

pub async fn update(mut cx: Cx, caller: Caller) -> Result<Resp, ApiError> {
    let id = cx.id().to_string();
    if cx.app.store.account(&id)?.is_none() {
        return Err(no_profile(&id));
    }
    let body = cx.json().await?;
    let input = ProfileInput::parse(&body, Mode::Update)?;
    if id == caller.account_id {
        if input.active == Some(false) {
            return Err(self_deactivation());
        }
        // One's own password, through either path, needs the current one.
        check_current_password(&cx, &caller, &input).await?;
    }
    write(&cx, &caller, &id, input).await
}

pub async fn update_current(mut cx: Cx, caller: Caller) -> Result<Resp, ApiError> {
    let body = cx.json().await?;
    let mut input = ProfileInput::parse(&body, Mode::Current)?;
    if input.active == Some(false) {
        return Err(self_deactivation());
    }
    // The caller is active (or authentication would have failed): nothing to change.
    input.active = None;
    check_current_password(&cx, &caller, &input).await?;
    let id = caller.account_id.clone();
    write(&cx, &caller, &id, input).await
}

/// A password change of the caller's own account must name the current password, and it
/// must be right (failures count towards the login lockout).
async fn check_current_password(
    cx: &Cx,
    caller: &Caller,
    input: &ProfileInput,
) -> Result<(), ApiError> {
    if input.password.is_none() {
        return Ok(());
    }
    let Some(current) = &input.current_password else {
        return Err(ApiError::validation(vec![
            super::profile_input::current_password_required(),
        ]));
    };
    let auth = &cx.app.auth;
    if auth
        .check_own_password(&auth.account_of(caller)?, current)
        .await?
    {
        Ok(())
    } else {
        Err(ApiError::validation(vec![
            FieldError::new("currentPassword", "The current password is not correct.")
                .code("22005"),
        ]))
    }
}

/// Applies a checked update. Setting a password ends the account's other sessions, in the
/// same acknowledged write; deactivation ends all of them (see `Store::update_account`).
/// The caller is checked again at the moment of the write, under the store's account gate.
async fn write(cx: &Cx, caller: &Caller, id: &str, input: ProfileInput) -> Result<Resp, ApiError> {
    let app = &cx.app;
    let password_hash = hash_password(app, &input, Some(id)).await?;
    let keep = password_hash.as_ref().map(|_| &caller.token_hash);
    let now = clock::now();
    let account = app
        .store
        .update_account_ending_sessions(
            id,
            keep,
            || cx.recheck().map_err(WriteError::Api),
            |a: &mut Account| {
                apply(a, &input, &password_hash, now);
                Ok::<(), WriteError>(())
            },
        )
        .await
        .map_err(|e| match e {
            WriteError::Api(e) => e,
            WriteError::Store(e) => write_error(id)(e),
        })?;
    Ok(http::ok_json(&render(&account), DIALECT))
}

fn apply(
    a: &mut Account,
    input: &ProfileInput,
    password_hash: &Option<String>,
    now: time::OffsetDateTime,
) {
    if let Some(v) = &input.first_name {
        a.first_name = v.clone();
    }
    if let Some(v) = &input.last_name {
        a.last_name = v.clone();
    }
    if let Some(v) = &input.email {
        a.email = v.clone();
    }
    if let Some(v) = input.active {
        a.active = v;
    }
    if let Some(roles) = &input.roles {
        let same = roles.len() == a.roles.len() && roles.iter().all(|r| a.roles.contains(r));
        if !same {
            a.roles = roles.clone();
            a.roles_last_modified = now;
        }
    }
    if let Some(h) = password_hash {
        a.password_hash = Some(h.clone());
    }
}
