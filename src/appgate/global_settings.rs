//! `/admin/global-settings`: view, replace (204) and reset (204). `backupPassphrase` is
//! write-only (only its public key is kept: see `backup_crypt`) and `collectiveId` read-only.

use serde_json::{Map, Number, Value, json};

use super::ok;
use super::profile_body::is_hostname;
use crate::auth::Caller;
use crate::backup_crypt::BackupKey;
use crate::error::{ApiError, FieldError};
use crate::http::{self, Resp};
use crate::routes::Cx;
use crate::store::{AuditLogPersistenceMode, GlobalSettings, SpaMode, Store};

/// Length limits (characters) of the free-text settings.
pub const MAX_MESSAGE: usize = 4096;
pub const MAX_COLLECTIVE_NAME: usize = 256;
pub const MAX_PASSPHRASE: usize = 1024;

fn spa_mode_name(m: SpaMode) -> &'static str {
    match m {
        SpaMode::Tcp => "TCP",
        SpaMode::UdpTcp => "UDP-TCP",
    }
}

fn audit_mode_name(m: AuditLogPersistenceMode) -> &'static str {
    match m {
        AuditLogPersistenceMode::Default => "Default",
        AuditLogPersistenceMode::Guaranteed => "Guaranteed",
        AuditLogPersistenceMode::Performance => "Performance",
    }
}

pub fn to_json(s: &GlobalSettings) -> Value {
    json!({
        "claimsTokenExpiration": s.claims_token_expiration,
        "entitlementTokenExpiration": s.entitlement_token_expiration,
        "administrationTokenExpiration": s.administration_token_expiration,
        "vpnCertificateExpiration": s.vpn_certificate_expiration,
        "registeredDeviceExpirationDays": s.registered_device_expiration_days,
        "spaMode": spa_mode_name(s.spa_mode),
        "spaTimeWindowSeconds": s.spa_time_window_seconds,
        "loginBannerMessage": s.login_banner_message,
        "messageOfTheDay": s.message_of_the_day,
        "backupApiEnabled": s.backup_api_enabled,
        "geoIpUpdates": s.geo_ip_updates,
        "auditLogPersistenceMode": audit_mode_name(s.audit_log_persistence_mode),
        "profileHostname": s.profile_hostname,
        "collectiveName": s.collective_name,
        "collectiveId": s.collective_id,
    })
}

/// A change of the write-only passphrase asked for by a body.
enum Passphrase {
    Keep,
    Clear,
    Set(String),
}

/// Reads a body over the current settings. Required fields must be present; an optional
/// field that is absent (or null) keeps its current value, which is what keeps the
/// write-only passphrase when a client sends back what it read.
fn apply(body: &Map<String, Value>, s: &mut GlobalSettings) -> (Vec<FieldError>, Passphrase) {
    let mut errors = Vec::new();
    let present = |key: &str| body.get(key).filter(|v| !v.is_null());
    let mut number = |key: &str, required: bool, slot: &mut Number| match present(key) {
        None if required => errors.push(FieldError::new(key, "may not be null")),
        None => {}
        Some(Value::Number(n)) if n.as_f64().is_some_and(|f| f >= 0.0) => *slot = n.clone(),
        Some(Value::Number(_)) => errors.push(FieldError::new(key, "must be at least 0")),
        Some(_) => errors.push(FieldError::new(key, "must be a number")),
    };
    number(
        "claimsTokenExpiration",
        true,
        &mut s.claims_token_expiration,
    );
    number(
        "entitlementTokenExpiration",
        true,
        &mut s.entitlement_token_expiration,
    );
    number(
        "administrationTokenExpiration",
        true,
        &mut s.administration_token_expiration,
    );
    number(
        "vpnCertificateExpiration",
        true,
        &mut s.vpn_certificate_expiration,
    );
    number(
        "registeredDeviceExpirationDays",
        false,
        &mut s.registered_device_expiration_days,
    );
    number(
        "spaTimeWindowSeconds",
        false,
        &mut s.spa_time_window_seconds,
    );

    let mut text = |key: &str, max: usize, slot: &mut String| match present(key) {
        None => {}
        Some(Value::String(v)) if v.chars().count() > max => errors.push(FieldError::new(
            key,
            format!("size must be at most {max} characters"),
        )),
        Some(Value::String(v)) => *slot = v.clone(),
        Some(_) => errors.push(FieldError::new(key, "must be a string")),
    };
    text(
        "loginBannerMessage",
        MAX_MESSAGE,
        &mut s.login_banner_message,
    );
    text("messageOfTheDay", MAX_MESSAGE, &mut s.message_of_the_day);
    text(
        "collectiveName",
        MAX_COLLECTIVE_NAME,
        &mut s.collective_name,
    );
    let mut host = s.profile_hostname.clone();
    text(
        "profileHostname",
        super::profile_body::MAX_HOSTNAME,
        &mut host,
    );
    let mut passphrase = None;
    if let Some(p) = present("backupPassphrase") {
        let mut given = String::new();
        text("backupPassphrase", MAX_PASSPHRASE, &mut given);
        passphrase = Some(given).filter(|_| p.is_string());
    }

    let mut flag = |key: &str, slot: &mut bool| match present(key) {
        None => {}
        Some(Value::Bool(b)) => *slot = *b,
        Some(_) => errors.push(FieldError::new(key, "must be a boolean")),
    };
    flag("backupApiEnabled", &mut s.backup_api_enabled);
    flag("geoIpUpdates", &mut s.geo_ip_updates);

    match present("spaMode").map(Value::as_str) {
        None => {}
        Some(Some("TCP")) => s.spa_mode = SpaMode::Tcp,
        Some(Some("UDP-TCP")) => s.spa_mode = SpaMode::UdpTcp,
        Some(_) => errors.push(FieldError::new("spaMode", "must be one of TCP, UDP-TCP")),
    }
    match present("auditLogPersistenceMode").map(Value::as_str) {
        None => errors.push(FieldError::new(
            "auditLogPersistenceMode",
            "may not be null",
        )),
        Some(Some("Default")) => s.audit_log_persistence_mode = AuditLogPersistenceMode::Default,
        Some(Some("Guaranteed")) => {
            s.audit_log_persistence_mode = AuditLogPersistenceMode::Guaranteed
        }
        Some(Some("Performance")) => {
            s.audit_log_persistence_mode = AuditLogPersistenceMode::Performance
        }
        Some(_) => errors.push(FieldError::new(
            "auditLogPersistenceMode",
            "must be one of Default, Guaranteed, Performance",
        )),
    }
    if !host.is_empty() && !is_hostname(&host) {
        errors.push(FieldError::new(
            "profileHostname",
            "must be a host name or address (letters, digits and - . _ : [ ])",
        ));
    }
    s.profile_hostname = host;
    let passphrase = match passphrase {
        None => Passphrase::Keep,
        Some(p) if p.is_empty() => Passphrase::Clear,
        Some(p) => Passphrase::Set(p),
    };
    (errors, passphrase)
}

/// The key of a new passphrase, derived off the async threads (Argon2id, 64 MiB), one at a
/// time so that a burst of PUTs cannot take 64 MiB each at once.
async fn backup_key(passphrase: String) -> Result<BackupKey, ApiError> {
    static DERIVING: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(1);
    let _one_at_a_time = DERIVING.acquire().await.map_err(ApiError::internal)?;
    tokio::task::spawn_blocking(move || BackupKey::from_passphrase(&passphrase))
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::internal)
}

/// Replaces a passphrase that a version before encrypted backups stored in clear by its key.
/// Returns whether there was one.
pub async fn seal_legacy_passphrase(store: &Store) -> Result<bool, ApiError> {
    let mut settings = store.settings()?;
    let Some(passphrase) = settings.legacy_backup_passphrase.take() else {
        return Ok(false);
    };
    settings.backup_key = Some(backup_key(passphrase).await?);
    store.put_settings(settings).await?;
    Ok(true)
}

pub async fn get(cx: Cx, _caller: Caller) -> Result<Resp, ApiError> {
    Ok(ok(&to_json(&cx.app.store.settings()?)))
}

pub async fn put(mut cx: Cx, _caller: Caller) -> Result<Resp, ApiError> {
    let body = cx.json().await?;
    let app = &cx.app;
    let Value::Object(body) = body else {
        return Err(ApiError::bad_request("The body must be a JSON object."));
    };
    let mut settings = app.store.settings()?;
    let (errors, passphrase) = apply(&body, &mut settings);
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    match passphrase {
        Passphrase::Keep => {}
        Passphrase::Clear => settings.backup_key = None,
        Passphrase::Set(p) => settings.backup_key = Some(backup_key(p).await?),
    }
    app.store.put_settings(settings).await?;
    Ok(http::no_content())
}

pub async fn delete(cx: Cx, _caller: Caller) -> Result<Resp, ApiError> {
    cx.app.store.reset_settings().await?;
    Ok(http::no_content())
}
