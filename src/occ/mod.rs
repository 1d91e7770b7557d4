//! The Oracle Commerce Cloud Admin API dialect, under `/ccadmin/v1`.

mod admin_profiles;
mod list;
mod login;
mod profile_input;
mod roles;
mod scim;

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
        ["adminProfiles"] => match method {
            Method::GET => admin_profiles::list(app, req).await,
            Method::POST => admin_profiles::create(app, req).await,
            _ => Err(ApiError::method_not_allowed("GET, POST")),
        },
        // Oracle's documentation shows the create call with the slash; anything else here
        // names an empty profile id.
        ["adminProfiles", ""] => match method {
            Method::POST => admin_profiles::create(app, req).await,
            Method::GET | Method::PUT => {
                app.auth.authenticate(req.headers())?;
                Err(admin_profiles::empty_id())
            }
            _ => Err(ApiError::method_not_allowed("GET, POST, PUT")),
        },
        ["adminProfiles", "current"] => match method {
            Method::GET => admin_profiles::get_current(app, req).await,
            Method::PUT => admin_profiles::update_current(app, req).await,
            _ => Err(ApiError::method_not_allowed("GET, PUT")),
        },
        ["adminProfiles", id] => match method {
            Method::GET => admin_profiles::get(app, req, id).await,
            Method::PUT => admin_profiles::update(app, req, id).await,
            _ => Err(ApiError::method_not_allowed("GET, PUT")),
        },
        ["adminRoles"] => match method {
            Method::GET => roles::list(app, req).await,
            _ => Err(ApiError::method_not_allowed("GET")),
        },
        _ => Err(ApiError::not_found("No such resource.")),
    }
}
