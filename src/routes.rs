//! The top of the routing tree: a path prefix picks the dialect.

use http_body_util::Either;
use hyper::{Method, Response};

use crate::app::App;
use crate::error::{ApiError, Dialect};
use crate::http::{Body, Req};

pub async fn route(app: App, req: Req) -> Response<Body> {
    // The URI shares the request's bytes: the path outlives `req` without a copy.
    let uri = req.uri().clone();
    let path = uri.path();
    let dialect = Dialect::of(path);
    // The one streamed answer; everything else is a buffered JSON body.
    if path == "/admin/backup" {
        let result = match *req.method() {
            Method::GET => crate::appgate::backup::backup(&app, req).await,
            _ => Err(ApiError::method_not_allowed("GET")),
        };
        return result.unwrap_or_else(|e| e.into_response(dialect).map(Either::Left));
    }
    let result = if let Some(rest) = sub_path(path, "/admin") {
        crate::appgate::route(&app, req, rest).await
    } else if let Some(rest) = sub_path(path, "/ccadmin/v1") {
        crate::occ::route(&app, req, rest).await
    } else {
        Err(ApiError::not_found("No such resource."))
    };
    result
        .unwrap_or_else(|e| e.into_response(dialect))
        .map(Either::Left)
}

/// `path` below `prefix` (`""` or starting with `/`), if it is below it.
fn sub_path<'a>(path: &'a str, prefix: &str) -> Option<&'a str> {
    let rest = path.strip_prefix(prefix)?;
    (rest.is_empty() || rest.starts_with('/')).then_some(rest)
}
