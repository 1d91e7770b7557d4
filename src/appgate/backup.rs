//! `GET /admin/backup`: a consistent export of everything, streamed as JSON lines while the
//! server keeps serving (profiled's extension; administrators only).

use hyper::header::{CONTENT_DISPOSITION, CONTENT_TYPE, HeaderValue};
use hyper::{Response, StatusCode};

use crate::auth::Caller;
use crate::error::ApiError;
use crate::http::{self, Body};
use crate::routes::Cx;

pub async fn backup(cx: Cx, caller: Caller) -> Result<Response<Body>, ApiError> {
    let store = cx.app.store.clone();
    let snapshot = tokio::task::spawn_blocking(move || store.snapshot())
        .await
        .map_err(ApiError::internal)??;
    let (accounts, profiles) = snapshot.counts();
    tracing::info!(by = %caller.account_id, accounts, profiles, "backup started");
    let mut resp = Response::new(http::stream_lines(snapshot.into_lines()));
    *resp.status_mut() = StatusCode::OK;
    let headers = resp.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/x-ndjson"),
    );
    headers.insert(
        CONTENT_DISPOSITION,
        HeaderValue::from_static("attachment; filename=\"profiled-backup.jsonl\""),
    );
    Ok(resp)
}
