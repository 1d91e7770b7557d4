//! Every `/ccadmin/v1` route: one entry each (see `crate::routes` for what the dispatcher does).

use hyper::Method;
use hyper::header::HeaderMap;

use super::{admin_profiles, applications, authenticator, login, password_reset, roles};
use crate::auth::Privilege::*;
use crate::error::{ApiError, Dialect};
use crate::routes::Access::{Privileged, Public, SignedIn};
use crate::routes::{Route, Table, buffered};

pub static TABLE: Table = Table {
    dialect: Dialect::Occ,
    // The admin UI's prefix serves the same API (occ-tools and the Design Code Utility sign in
    // there).
    prefixes: &["/ccadmin/v1", "/ccadminui/v1"],
    routes: ROUTES,
    precheck,
    not_found: "No such resource.",
    unmatched: "occ.unmatched",
    on_error: super::login::oauth_error,
};

const ROUTES: &[Route] = &[
    Route::new(
        Method::POST,
        "login",
        "occ.login",
        Public(|cx| buffered(login::login(cx))),
    ),
    Route::new(
        Method::POST,
        "login/",
        "occ.login_slash",
        Public(|cx| buffered(login::login(cx))),
    ),
    Route::new(
        Method::POST,
        "mfalogin",
        "occ.mfalogin",
        Public(|cx| buffered(login::mfa_login(cx))),
    ),
    Route::new(
        Method::POST,
        "mfalogin/",
        "occ.mfalogin_slash",
        Public(|cx| buffered(login::mfa_login(cx))),
    ),
    Route::new(
        Method::POST,
        "adminProfiles/getAuthenticatorInfo",
        "occ.admin_profiles.get_authenticator_info",
        Public(|cx| buffered(authenticator::get_info(cx))),
    ),
    Route::new(
        Method::POST,
        "adminProfiles/resetAuthenticatorKey",
        "occ.admin_profiles.reset_authenticator_key",
        Privileged(ResetAuthenticators, |cx, who| {
            buffered(authenticator::reset_key(cx, who))
        }),
    ),
    Route::new(
        Method::POST,
        "refresh",
        "occ.refresh",
        SignedIn(|cx, who| buffered(login::refresh(cx, who))),
    ),
    Route::new(
        Method::POST,
        "logout",
        "occ.logout",
        SignedIn(|cx, who| buffered(login::logout(cx, who))),
    ),
    Route::new(
        Method::POST,
        "verify",
        "occ.verify",
        SignedIn(|cx, who| buffered(login::verify(cx, who))),
    ),
    Route::new(
        Method::GET,
        "adminProfiles",
        "occ.admin_profiles.list",
        Privileged(ListAdminProfiles, |cx, who| {
            buffered(admin_profiles::list(cx, who))
        }),
    ),
    Route::new(
        Method::POST,
        "adminProfiles",
        "occ.admin_profiles.create",
        Privileged(CreateAdminProfiles, |cx, who| {
            buffered(admin_profiles::create(cx, who))
        }),
    ),
    // Oracle's documentation shows the create call with the slash; anything else here names
    // an empty profile id.
    Route::new(
        Method::POST,
        "adminProfiles/",
        "occ.admin_profiles.create_slash",
        Privileged(CreateAdminProfiles, |cx, who| {
            buffered(admin_profiles::create(cx, who))
        }),
    ),
    Route::new(
        Method::GET,
        "adminProfiles/",
        "occ.admin_profiles.get_empty_id",
        SignedIn(|cx, who| buffered(admin_profiles::empty_id(cx, who))),
    ),
    Route::new(
        Method::PUT,
        "adminProfiles/",
        "occ.admin_profiles.update_empty_id",
        SignedIn(|cx, who| buffered(admin_profiles::empty_id(cx, who))),
    ),
    Route::new(
        Method::GET,
        "adminProfiles/current",
        "occ.admin_profiles.current.get",
        SignedIn(|cx, who| buffered(admin_profiles::get_current(cx, who))),
    ),
    Route::new(
        Method::PUT,
        "adminProfiles/current",
        "occ.admin_profiles.current.update",
        SignedIn(|cx, who| buffered(admin_profiles::update_current(cx, who))),
    ),
    Route::new(
        Method::GET,
        "adminProfiles/{id}",
        "occ.admin_profiles.get",
        Privileged(ViewAdminProfiles, |cx, who| {
            buffered(admin_profiles::get(cx, who))
        }),
    ),
    Route::new(
        Method::PUT,
        "adminProfiles/{id}",
        "occ.admin_profiles.update",
        Privileged(UpdateAdminProfiles, |cx, who| {
            buffered(admin_profiles::update(cx, who))
        }),
    ),
    // Public: the answer never says whether the account exists (see `password_reset`).
    Route::new(
        Method::POST,
        "adminProfiles/requestPasswordReset",
        "occ.admin_profiles.request_password_reset",
        Public(|cx| buffered(password_reset::request(cx))),
    ),
    Route::new(
        Method::POST,
        "adminProfiles/sendPasswordReset",
        "occ.admin_profiles.send_password_reset",
        Public(|cx| buffered(password_reset::send(cx))),
    ),
    Route::new(
        Method::GET,
        "applicationIds",
        "occ.applications.list",
        Privileged(ManageApplications, |cx, who| {
            buffered(applications::list(cx, who))
        }),
    ),
    Route::new(
        Method::POST,
        "applicationIds",
        "occ.applications.create",
        Privileged(ManageApplications, |cx, who| {
            buffered(applications::create(cx, who))
        }),
    ),
    Route::new(
        Method::GET,
        "applicationIds/{id}",
        "occ.applications.get",
        Privileged(ManageApplications, |cx, who| {
            buffered(applications::get(cx, who))
        }),
    ),
    Route::new(
        Method::PUT,
        "applicationIds/{id}",
        "occ.applications.update",
        Privileged(ManageApplications, |cx, who| {
            buffered(applications::update(cx, who))
        }),
    ),
    Route::new(
        Method::DELETE,
        "applicationIds/{id}",
        "occ.applications.delete",
        Privileged(ManageApplications, |cx, who| {
            buffered(applications::delete(cx, who))
        }),
    ),
    // Oracle's appIdOperation: `{"op": "genAuthToken"}` issues a new key.
    Route::new(
        Method::POST,
        "applicationIds/{id}",
        "occ.applications.operation",
        Privileged(ManageApplications, |cx, who| {
            buffered(applications::operation(cx, who))
        }),
    ),
    // The catalogue is the same for everyone and holds nothing secret; a client needs it to
    // show what a role grants.
    Route::new(
        Method::GET,
        "adminRoles",
        "occ.admin_roles.list",
        SignedIn(|cx, who| buffered(roles::list(cx, who))),
    ),
];

/// Oracle's API checks nothing before authentication.
fn precheck(_rest: &str, _headers: &HeaderMap) -> Result<(), ApiError> {
    Ok(())
}
