//! The Oracle Commerce Cloud Admin API dialect, under `/ccadmin/v1`.

mod login;

use hyper::Method;

use crate::app::App;
use crate::error::{ApiError, Dialect};
use crate::http::{self, Req, Resp};

pub(crate) const DIALECT: Dialect = Dialect::Occ;

pub async fn route(app: &App, req: Req, path: &str) -> Result<Resp, ApiError> {
    let segs = http::segments(path);
    let method = req.method().clone();
    let post_only = || Err(ApiError::method_not_allowed("POST"));
    match segs.as_slice() {
        ["login"] => match method {
            Method::POST => login::login(app, req).await,
            _ => post_only(),
        },
        ["refresh"] => match method {
            Method::POST => login::refresh(app, req).await,
            _ => post_only(),
        },
        ["logout"] => match method {
            Method::POST => login::logout(app, req).await,
            _ => post_only(),
        },
        ["verify"] => match method {
            Method::POST => login::verify(app, req).await,
            _ => post_only(),
        },
        _ => Err(ApiError::not_found("No such resource.")),
    }
}
