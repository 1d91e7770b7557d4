//! What an operator's tools call: `GET /healthz` (the process serves), `GET /readyz` (the
//! store accepts writes) and `GET /metrics` (Prometheus). No token and no vendor `Accept`.

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{CONTENT_TYPE, HeaderMap, HeaderValue};
use hyper::{Method, Response, StatusCode};
use serde_json::json;

use crate::error::{ApiError, Dialect};
use crate::http::{self, Resp};
use crate::routes::Access::Public;
use crate::routes::{Cx, Route, Table, buffered};
use crate::store::{Outage, StoreError};

/// Every path outside the two dialects; what matches none of these is Appgate-style 404.
pub static TABLE: Table = Table {
    dialect: Dialect::Appgate,
    prefixes: &[""],
    routes: ROUTES,
    precheck,
    not_found: "No such resource.",
    unmatched: "unmatched",
    on_error: |_, _| {},
};

const ROUTES: &[Route] = &[
    Route::new(
        Method::GET,
        "healthz",
        "ops.healthz",
        Public(|cx| buffered(healthz(cx))),
    ),
    Route::new(
        Method::GET,
        "readyz",
        "ops.readyz",
        Public(|cx| buffered(readyz(cx))),
    ),
    Route::new(
        Method::GET,
        "metrics",
        "ops.metrics",
        Public(|cx| buffered(metrics(cx))),
    ),
];

fn precheck(_rest: &str, _headers: &HeaderMap) -> Result<(), ApiError> {
    Ok(())
}

/// 200 while the process serves requests.
async fn healthz(_cx: Cx) -> Result<Resp, ApiError> {
    Ok(http::ok_json(&json!({"status": "ok"}), Dialect::Appgate))
}

/// 200 while the store accepts writes; 503 with the reason while it refuses them: after a
/// failed flush (until a restart), and over etcd while the cluster cannot be reached or its
/// database is full (until it is back, or an operator freed space; reads are served meanwhile).
async fn readyz(cx: Cx) -> Result<Resp, ApiError> {
    let reason = match cx.app.store.ready() {
        Ok(()) => return Ok(http::ok_json(&json!({"status": "ready"}), Dialect::Appgate)),
        Err(StoreError::Unavailable) => {
            "a flush failed: the store refuses writes until profiled is restarted and the disk is checked"
        }
        Err(e) => match e.outage() {
            Some(Outage::Full) => {
                "etcd's database is full (its NOSPACE alarm is raised): writes are refused, reads are served, until space is freed (compact, defragment) and the alarm disarmed"
            }
            Some(Outage::Unreachable) => {
                "etcd cannot be reached, or has no leader: the store refuses reads and writes until it is back"
            }
            _ => {
                tracing::error!(error = %e, "readiness: the store reports a failure");
                "the store reports a failure (see the log)"
            }
        },
    };
    Ok(http::json_response(
        StatusCode::SERVICE_UNAVAILABLE,
        &json!({"status": "unavailable", "reason": reason}),
        Dialect::Appgate,
    ))
}

/// The metrics in OpenMetrics text, which Prometheus scrapes; 404 with `--metrics false`.
async fn metrics(cx: Cx) -> Result<Resp, ApiError> {
    if !cx.app.config.metrics {
        return Err(ApiError::not_found("No such resource."));
    }
    let store = &cx.app.store;
    let text =
        crate::metrics::METRICS.render(store.client_profile_count(), store.account_count() as u64);
    let mut resp = Response::new(Full::new(Bytes::from(text)));
    resp.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
    );
    Ok(resp)
}
