//! `GET /admin/backup`: a consistent export of everything, streamed while the server keeps
//! serving (profiled's extension; administrators only). Off until `backupApiEnabled` is set,
//! as on a controller; encrypted (see `backup_crypt`) when a `backupPassphrase` is set.

use hyper::header::{CONTENT_DISPOSITION, CONTENT_TYPE, HeaderValue};
use hyper::{Response, StatusCode};

use crate::auth::Caller;
use crate::error::{ApiError, Kind};
use crate::http::{self, Body};
use crate::routes::Cx;

pub async fn backup(cx: Cx, caller: Caller) -> Result<Response<Body>, ApiError> {
    let settings = cx.app.store.settings()?;
    if !settings.backup_api_enabled {
        // What sdpctl takes for "the backup API is disabled".
        return Err(ApiError::new(
            Kind::Unavailable,
            "The backup API is disabled. Enable it with \"backupApiEnabled\": true in PUT /admin/global-settings.",
        ));
    }
    let store = cx.app.store.clone();
    let snapshot = tokio::task::spawn_blocking(move || store.snapshot())
        .await
        .map_err(ApiError::internal)??;
    let (accounts, profiles) = snapshot.counts();
    let encrypted = settings.backup_key.is_some();
    tracing::info!(by = %caller.account_id, accounts, profiles, encrypted, "backup started");
    let (body, content_type, file) = match &settings.backup_key {
        None => (
            http::stream_lines(snapshot.into_lines()),
            "application/x-ndjson",
            "attachment; filename=\"profiled-backup.jsonl\"",
        ),
        Some(key) => (
            http::stream_lines(
                crate::backup_crypt::encrypt_lines(key, snapshot.into_lines())
                    .map_err(ApiError::internal)?,
            ),
            "application/octet-stream",
            "attachment; filename=\"profiled-backup.jsonl.enc\"",
        ),
    };
    let mut resp = Response::new(body);
    *resp.status_mut() = StatusCode::OK;
    let headers = resp.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(CONTENT_DISPOSITION, HeaderValue::from_static(file));
    Ok(resp)
}
