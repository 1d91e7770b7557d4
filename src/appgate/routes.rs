//! Every `/admin` route: one entry each (see `crate::routes` for what the dispatcher does).

use hyper::Method;
use hyper::header::HeaderMap;

use super::{
    backup, check_accept, client_profiles, global_settings, list, login, mfa_settings, signin,
};
use crate::auth::Privilege::*;
use crate::error::{ApiError, Dialect};
use crate::routes::Access::{Partial, Privileged, Public, SignedIn};
use crate::routes::{Route, Table, buffered};

pub static TABLE: Table = Table {
    dialect: Dialect::Appgate,
    prefixes: &["/admin"],
    routes: ROUTES,
    precheck,
    not_found: "The requested resource can not be found.",
    unmatched: "appgate.unmatched",
    on_error: |_, _| {},
};

const ROUTES: &[Route] = &[
    Route::new(
        Method::GET,
        "version",
        "appgate.version",
        Public(|cx| buffered(login::version(cx))),
    ),
    Route::new(
        Method::POST,
        "login",
        "appgate.login",
        Public(|cx| buffered(login::login(cx))),
    ),
    Route::new(
        Method::GET,
        "identity-providers/names",
        "appgate.identity_providers.names",
        Public(|cx| buffered(signin::provider_names(cx))),
    ),
    Route::new(
        Method::POST,
        "authentication",
        "appgate.authentication",
        Public(|cx| buffered(signin::authenticate(cx))),
    ),
    Route::new(
        Method::GET,
        "authorization",
        "appgate.authorization",
        Partial(|cx, p| buffered(signin::authorize(cx, p))),
    ),
    Route::new(
        Method::POST,
        "authentication/otp/initialize",
        "appgate.authentication.otp_initialize",
        Partial(|cx, p| buffered(signin::otp_initialize(cx, p))),
    ),
    Route::new(
        Method::POST,
        "authentication/otp",
        "appgate.authentication.otp",
        Partial(|cx, p| buffered(signin::otp(cx, p))),
    ),
    Route::new(
        Method::GET,
        "admin-mfa-settings",
        "appgate.admin_mfa_settings.get",
        Privileged(ViewMfaSettings, |cx, who| {
            buffered(mfa_settings::get(cx, who))
        }),
    ),
    Route::new(
        Method::PUT,
        "admin-mfa-settings",
        "appgate.admin_mfa_settings.update",
        Privileged(EditMfaSettings, |cx, who| {
            buffered(mfa_settings::put(cx, who))
        }),
    ),
    Route::new(
        Method::DELETE,
        "admin-mfa-settings",
        "appgate.admin_mfa_settings.reset",
        Privileged(EditMfaSettings, |cx, who| {
            buffered(mfa_settings::delete(cx, who))
        }),
    ),
    Route::new(
        Method::POST,
        "authentication/logout",
        "appgate.logout",
        SignedIn(|cx, who| buffered(login::logout(cx, who))),
    ),
    Route::new(
        Method::GET,
        "client-profiles",
        "appgate.client_profiles.list",
        Privileged(ViewClientProfiles, |cx, who| buffered(list::list(cx, who))),
    ),
    Route::new(
        Method::POST,
        "client-profiles",
        "appgate.client_profiles.create",
        Privileged(CreateClientProfiles, |cx, who| {
            buffered(client_profiles::create(cx, who))
        }),
    ),
    Route::new(
        Method::GET,
        "client-profiles/{id}",
        "appgate.client_profiles.get",
        Privileged(ViewClientProfiles, |cx, who| {
            buffered(client_profiles::get(cx, who))
        }),
    ),
    Route::new(
        Method::PUT,
        "client-profiles/{id}",
        "appgate.client_profiles.update",
        Privileged(EditClientProfiles, |cx, who| {
            buffered(client_profiles::update(cx, who))
        }),
    ),
    Route::new(
        Method::DELETE,
        "client-profiles/{id}",
        "appgate.client_profiles.delete",
        Privileged(DeleteClientProfiles, |cx, who| {
            buffered(client_profiles::delete(cx, who))
        }),
    ),
    Route::new(
        Method::GET,
        "client-profiles/{id}/url",
        "appgate.client_profiles.export_url",
        Privileged(ExportClientProfiles, |cx, who| {
            buffered(client_profiles::export_url(cx, who))
        }),
    ),
    Route::new(
        Method::GET,
        "client-profiles/{id}/barcode",
        "appgate.client_profiles.export_barcode",
        Privileged(ExportClientProfiles, |cx, who| {
            buffered(client_profiles::export_barcode(cx, who))
        }),
    ),
    Route::new(
        Method::GET,
        "global-settings",
        "appgate.global_settings.get",
        Privileged(ViewGlobalSettings, |cx, who| {
            buffered(global_settings::get(cx, who))
        }),
    ),
    Route::new(
        Method::PUT,
        "global-settings",
        "appgate.global_settings.update",
        Privileged(EditGlobalSettings, |cx, who| {
            buffered(global_settings::put(cx, who))
        }),
    ),
    Route::new(
        Method::DELETE,
        "global-settings",
        "appgate.global_settings.reset",
        Privileged(EditGlobalSettings, |cx, who| {
            buffered(global_settings::delete(cx, who))
        }),
    ),
    Route::new(
        Method::GET,
        "backup",
        "appgate.backup",
        Privileged(Backup, |cx, who| Box::pin(backup::backup(cx, who))),
    ),
];

/// Paths answered without a vendor `Accept` header: clients discover the version there.
const UNNEGOTIATED: &[&str] = &["/version"];

/// Appgate negotiates the API version before anything else, on every path but the version
/// probe, and also where the answer is 404 or 405: clients learn the version from the 406.
fn precheck(rest: &str, headers: &HeaderMap) -> Result<(), ApiError> {
    if UNNEGOTIATED.contains(&rest) {
        return Ok(());
    }
    check_accept(headers).map(|_| ())
}
