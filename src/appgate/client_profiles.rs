//! `/admin/client-profiles`: create, read, replace and delete one profile, and its two
//! exports (the `appgate://` link and its QR code). Listing is in `list.rs`.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::json;
use time::OffsetDateTime;
use uuid::Uuid;

use super::export;
use super::ok;
use super::profile_body::{self, ProfileInput, UrlInput};
use crate::auth::Caller;
use crate::clock;
use crate::error::{ApiError, FieldError};
use crate::http::{self, Resp};
use crate::routes::Cx;
use crate::store::{ClientProfile, ProfileType, ProfileUrl, StoreError, profile_json};

/// A path id that is not a UUID names nothing: 404, like an unknown one.
pub fn path_id(s: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(s).map_err(|_| not_found())
}

fn not_found() -> ApiError {
    ApiError::not_found("The requested client profile can not be found.")
}

fn name_taken(name: &str) -> ApiError {
    ApiError::conflict(format!(
        "The name '{name}' is already used by another client profile."
    ))
}

/// A 200 whose body is JSON already written (a profile or a list of them, as stored).
pub(crate) fn ok_raw(json: Vec<u8>) -> Resp {
    let mut resp = hyper::Response::new(http_body_util::Full::new(bytes::Bytes::from(json)));
    resp.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    resp
}

/// Default SPA key name: the profile name without white space, as real exported links show.
fn default_key_name(name: &str) -> String {
    name.chars().filter(|c| !c.is_whitespace()).collect()
}

/// The group members to store. A member without a link keeps the one stored under its id
/// in `old` (the links are write-only); with no such member it is refused.
fn resolve_urls(inputs: &[UrlInput], old: &[ProfileUrl]) -> Result<Vec<ProfileUrl>, ApiError> {
    let mut errors = Vec::new();
    let mut out = Vec::with_capacity(inputs.len());
    for (i, input) in inputs.iter().enumerate() {
        let id = input.id.unwrap_or_else(Uuid::new_v4);
        let (url, hostname, profile_name) = match &input.url {
            Some((url, parsed)) => (
                url.clone(),
                parsed.hostname.clone(),
                parsed.profile_name.clone(),
            ),
            None => match old.iter().find(|o| Some(o.id) == input.id) {
                Some(o) => (o.url.clone(), o.hostname.clone(), o.profile_name.clone()),
                None => {
                    errors.push(FieldError::new(
                        format!("profileUrls.{i}.url"),
                        "may not be null",
                    ));
                    continue;
                }
            },
        };
        if out.iter().any(|u: &ProfileUrl| u.id == id) {
            errors.push(FieldError::new(
                format!("profileUrls.{i}.id"),
                "is used by another member of this group",
            ));
            continue;
        }
        out.push(ProfileUrl {
            id,
            url,
            hostname,
            profile_name,
            weight: input.weight,
        });
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(ApiError::validation(errors))
    }
}

/// Writes `input` over `p`, leaving what the server owns (id, created, exported).
fn apply(p: &mut ClientProfile, input: &ProfileInput, now: OffsetDateTime) -> Result<(), ApiError> {
    p.profile_urls = match input.kind {
        ProfileType::Group => resolve_urls(&input.profile_urls, &p.profile_urls)?,
        ProfileType::Profile => Vec::new(),
    };
    p.name = input.name.clone();
    p.notes = input.notes.clone();
    p.tags = input.tags.clone();
    p.kind = input.kind;
    p.updated = now;
    (p.spa_key_name, p.identity_provider_name, p.hostname) = match input.kind {
        ProfileType::Profile => (
            if input.spa_key_name.is_empty() {
                default_key_name(&input.name)
            } else {
                input.spa_key_name.clone()
            },
            input.identity_provider_name.clone(),
            input.hostname.clone(),
        ),
        ProfileType::Group => Default::default(),
    };
    Ok(())
}

pub async fn create(mut cx: Cx, _caller: Caller) -> Result<Resp, ApiError> {
    let body = cx.json().await?;
    let app = &cx.app;
    let input = profile_body::parse(&body, None)?;
    let now = clock::now();
    let mut profile = ClientProfile {
        // Time-ordered: new records go to the end of the id-ordered tree instead of rewriting
        // pages all over it, which keeps the database compact (see docs/benchmarks.md).
        id: input.id.unwrap_or_else(crate::ids::new_v7),
        name: String::new(),
        notes: String::new(),
        tags: Vec::new(),
        created: now,
        updated: now,
        exported: None,
        kind: input.kind,
        spa_key_name: String::new(),
        identity_provider_name: String::new(),
        hostname: String::new(),
        profile_urls: Vec::new(),
    };
    apply(&mut profile, &input, now)?;
    match app.store.create_client_profile(&profile).await {
        Ok(()) => {}
        Err(StoreError::KeyTaken) => return Err(name_taken(&profile.name)),
        Err(StoreError::IdTaken) => {
            return Err(ApiError::conflict(format!(
                "A client profile with id {} already exists.",
                profile.id
            )));
        }
        Err(e) => return Err(e.into()),
    }
    let global = app.store.settings()?.profile_hostname;
    Ok(ok_raw(profile_json(&profile, &global)))
}

pub async fn get(cx: Cx, _caller: Caller) -> Result<Resp, ApiError> {
    let app = &cx.app;
    let id = path_id(cx.id())?;
    let global = app.store.settings()?.profile_hostname;
    let json = app
        .store
        .client_profile_json(&id, &global)?
        .ok_or_else(not_found)?;
    Ok(ok_raw(json))
}

/// Why a replacement failed: the body (already an API error) or the store.
enum PutError {
    Api(ApiError),
    Store(StoreError),
}

impl From<StoreError> for PutError {
    fn from(e: StoreError) -> Self {
        PutError::Store(e)
    }
}

pub async fn update(mut cx: Cx, _caller: Caller) -> Result<Resp, ApiError> {
    let id = path_id(cx.id())?;
    let body = cx.json().await?;
    let app = &cx.app;
    let input = profile_body::parse(&body, Some(id))?;
    let now = clock::now();
    let result = app
        .store
        .update_client_profile(&id, |p| apply(p, &input, now).map_err(PutError::Api))
        .await;
    let profile = match result {
        Ok(p) => p,
        Err(PutError::Api(e)) => return Err(e),
        Err(PutError::Store(StoreError::KeyTaken)) => return Err(name_taken(&input.name)),
        Err(PutError::Store(StoreError::NotFound)) => return Err(not_found()),
        Err(PutError::Store(e)) => return Err(e.into()),
    };
    let global = app.store.settings()?.profile_hostname;
    Ok(ok_raw(profile_json(&profile, &global)))
}

pub async fn delete(cx: Cx, _caller: Caller) -> Result<Resp, ApiError> {
    let id = path_id(cx.id())?;
    match cx.app.store.delete_client_profile(&id).await {
        Ok(()) => Ok(http::no_content()),
        Err(StoreError::NotFound) => Err(not_found()),
        Err(e) => Err(e.into()),
    }
}

/// Builds the profile's link, gives it to `render` (which may refuse it), and stamps
/// `exported` (leaving `updated` alone) only when both succeeded, in one write: a link that
/// cannot be handed out leaves no stamp.
async fn export<T>(
    cx: &Cx,
    mut render: impl FnMut(String) -> Result<T, ApiError>,
) -> Result<T, ApiError> {
    let app = &cx.app;
    let id = path_id(cx.id())?;
    let settings = app.store.settings()?;
    let now = clock::now();
    let mut rendered = None;
    app.store
        .update_client_profile(&id, |p| {
            if p.kind == ProfileType::Group {
                return Err(PutError::Api(ApiError::field(
                    "type",
                    "a Group has no link of its own; export its member profiles",
                )));
            }
            let host = if p.hostname.is_empty() {
                &settings.profile_hostname
            } else {
                &p.hostname
            };
            if host.is_empty() {
                return Err(PutError::Api(ApiError::field(
                    "hostname",
                    "no host name for the link: set the profile's hostname or the global profileHostname",
                )));
            }
            let url = export::profile_url(
                p,
                host,
                settings.spa_mode,
                app.store.secret(),
                app.ca_fingerprint.as_deref(),
            );
            rendered = Some(render(url).map_err(PutError::Api)?);
            p.exported = Some(now);
            Ok(())
        })
        .await
        .map_err(|e| match e {
            PutError::Api(e) => e,
            PutError::Store(StoreError::NotFound) => not_found(),
            PutError::Store(e) => e.into(),
        })?;
    Ok(rendered.expect("the written change rendered the link"))
}

pub async fn export_url(cx: Cx, _caller: Caller) -> Result<Resp, ApiError> {
    let url = export(&cx, Ok).await?;
    Ok(ok(&json!({ "url": url })))
}

pub async fn export_barcode(cx: Cx, _caller: Caller) -> Result<Resp, ApiError> {
    let png = export(&cx, |url| match export::qr_png(&url) {
        Ok(png) => Ok(png),
        Err(export::QrError::TooLong) => Err(ApiError::field(
            "name",
            format!(
                "the onboarding link is {} bytes, more than a QR code holds ({}): shorten the name, spaKeyName, identityProviderName or hostname",
                url.len(),
                export::QR_MAX_BYTES
            ),
        )),
        Err(export::QrError::Other(e)) => Err(ApiError::internal(e)),
    })
    .await?;
    Ok(ok(&json!({ "barcode": STANDARD.encode(png) })))
}
