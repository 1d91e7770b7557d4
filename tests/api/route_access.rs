//! Every route of the table, called by every role over real HTTP: the status says whether the
//! dispatcher let the caller through. The expected access of each route is written down here,
//! independently of the table, so loosening a route's declared access fails this test.

use hyper::Method;
use profiled::auth::roles;
use profiled::routes::{Access, tables};
use serde_json::json;

use crate::helpers::*;

/// What each route must demand. A route missing here fails the test: a new route has to say
/// who may call it.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Expect {
    Public,
    SignedIn,
    /// The name of the privilege (`Privilege::name`).
    Privilege(&'static str),
    /// Any token, also one of an unfinished multi-step sign-in.
    AnyToken,
}
use Expect::*;

const EXPECTED: &[(&str, Expect)] = &[
    ("ops.healthz", Public),
    ("ops.readyz", Public),
    ("ops.metrics", Public),
    ("console.index", Public),
    ("console.index.head", Public),
    ("console.asset", Public),
    ("console.asset.head", Public),
    ("appgate.version", Public),
    ("appgate.login", Public),
    ("appgate.logout", SignedIn),
    ("appgate.identity_providers.names", Public),
    ("appgate.authentication", Public),
    ("appgate.authorization", AnyToken),
    ("appgate.authentication.otp_initialize", AnyToken),
    ("appgate.authentication.otp", AnyToken),
    (
        "appgate.admin_mfa_settings.get",
        Privilege("adminMfaSettings.view"),
    ),
    (
        "appgate.admin_mfa_settings.update",
        Privilege("adminMfaSettings.edit"),
    ),
    (
        "appgate.admin_mfa_settings.reset",
        Privilege("adminMfaSettings.edit"),
    ),
    (
        "appgate.client_profiles.list",
        Privilege("clientProfiles.view"),
    ),
    (
        "appgate.client_profiles.create",
        Privilege("clientProfiles.create"),
    ),
    (
        "appgate.client_profiles.get",
        Privilege("clientProfiles.view"),
    ),
    (
        "appgate.client_profiles.update",
        Privilege("clientProfiles.edit"),
    ),
    (
        "appgate.client_profiles.delete",
        Privilege("clientProfiles.delete"),
    ),
    (
        "appgate.client_profiles.export_url",
        Privilege("clientProfiles.export"),
    ),
    (
        "appgate.client_profiles.export_barcode",
        Privilege("clientProfiles.export"),
    ),
    (
        "appgate.global_settings.get",
        Privilege("globalSettings.view"),
    ),
    (
        "appgate.global_settings.update",
        Privilege("globalSettings.edit"),
    ),
    (
        "appgate.global_settings.reset",
        Privilege("globalSettings.edit"),
    ),
    ("appgate.backup", Privilege("backup")),
    ("occ.login", Public),
    ("occ.login_slash", Public),
    ("occ.mfalogin", Public),
    ("occ.mfalogin_slash", Public),
    ("occ.admin_profiles.get_authenticator_info", Public),
    (
        "occ.admin_profiles.reset_authenticator_key",
        Privilege("adminProfiles.resetAuthenticator"),
    ),
    ("occ.refresh", SignedIn),
    ("occ.logout", SignedIn),
    ("occ.verify", SignedIn),
    ("occ.admin_profiles.list", Privilege("adminProfiles.list")),
    (
        "occ.admin_profiles.create",
        Privilege("adminProfiles.create"),
    ),
    (
        "occ.admin_profiles.create_slash",
        Privilege("adminProfiles.create"),
    ),
    ("occ.admin_profiles.get_empty_id", SignedIn),
    ("occ.admin_profiles.update_empty_id", SignedIn),
    ("occ.admin_profiles.current.get", SignedIn),
    ("occ.admin_profiles.current.update", SignedIn),
    ("occ.admin_profiles.get", Privilege("adminProfiles.view")),
    (
        "occ.admin_profiles.update",
        Privilege("adminProfiles.update"),
    ),
    ("occ.admin_roles.list", SignedIn),
    ("occ.admin_profiles.request_password_reset", Public),
    ("occ.admin_profiles.send_password_reset", Public),
    ("occ.applications.list", Privilege("applications.manage")),
    ("occ.applications.create", Privilege("applications.manage")),
    ("occ.applications.get", Privilege("applications.manage")),
    ("occ.applications.update", Privilege("applications.manage")),
    ("occ.applications.delete", Privilege("applications.manage")),
    (
        "occ.applications.operation",
        Privilege("applications.manage"),
    ),
];

/// The roles tried, besides no token at all; `catalogRole` is an Oracle role that grants
/// nothing here.
const ROLES: &[&str] = &[
    "adminRole",
    "clientProfileManagerRole",
    "clientProfileExporterRole",
    "clientProfileViewerRole",
    "catalogRole",
];

fn declared(access: &Access) -> Expect {
    match access {
        Access::Public(_) => Public,
        Access::SignedIn(_) => SignedIn,
        Access::Privileged(p, _) => Privilege(p.name()),
        Access::Partial(_) => AnyToken,
    }
}

fn grants(role: &str, privilege: &str) -> bool {
    roles::role(role)
        .expect("a catalogued role")
        .privileges
        .iter()
        .any(|p| p.name() == privilege)
}

#[test]
fn every_route_declares_the_access_written_down_here() {
    let mut seen = Vec::new();
    for table in tables() {
        for route in table.routes {
            let expected = EXPECTED
                .iter()
                .find(|(name, _)| *name == route.name)
                .unwrap_or_else(|| panic!("{} is not in EXPECTED: say who may call it", route.name))
                .1;
            assert_eq!(declared(&route.access), expected, "{}", route.name);
            seen.push(route.name);
        }
    }
    for (name, _) in EXPECTED {
        assert!(seen.contains(name), "{name} is expected but not routed");
    }
}

#[tokio::test]
async fn every_route_answers_every_role_as_its_access_says() {
    let s = TestServer::start().await;
    let admin = s.admin_token().await;
    let password = "route-access-password-1";
    let mut who: Vec<(&str, Option<String>)> = vec![("anonymous", None)];
    for (i, role) in ROLES.iter().enumerate() {
        let email = format!("role{i}@example.com");
        let r = s
            .occ(
                Method::POST,
                "/ccadmin/v1/adminProfiles",
                Some(&admin),
                Some(json!({"firstName": "R", "lastName": "A", "email": email,
                            "roles": [{"repositoryId": role}], "password": password})),
            )
            .await;
        assert_eq!(r.status, 200, "{:?}", r.json());
        who.push((role, Some(s.login(&email, password).await)));
    }
    let emails: Vec<String> = (0..ROLES.len())
        .map(|i| format!("role{i}@example.com"))
        .collect();
    let unknown_id = "6f1e2a7c-1111-4c5d-9e8f-0123456789ab";
    let mut checked = 0;
    let mut expected_checks = 0;
    for table in tables() {
        expected_checks += table.prefixes.len() * table.routes.len() * who.len();
        for (prefix, route) in table
            .prefixes
            .iter()
            .flat_map(|p| table.routes.iter().map(move |r| (p, r)))
        {
            let path = format!("{prefix}/{}", route.path.replace("{id}", unknown_id));
            let expected = declared(&route.access);
            for (role_index, (role, token)) in who.iter_mut().enumerate() {
                let allowed = match (expected, token.as_deref()) {
                    (Public, _) => true,
                    (_, None) => false,
                    (SignedIn | AnyToken, Some(_)) => true,
                    (Privilege(p), Some(_)) => grants(role, p),
                };
                let mut headers = vec![("accept", ACCEPT_V23)];
                let auth = token.as_ref().map(|t| format!("Bearer {t}"));
                if let Some(a) = &auth {
                    headers.push(("authorization", a));
                }
                let r = s
                    .request(route.method.clone(), &path, &headers, Vec::new())
                    .await;
                let denied = match token {
                    None => 401,
                    Some(_) => 403,
                };
                if allowed {
                    assert!(
                        r.status != 401 && r.status != 403,
                        "{} as {role}: {} {:?}",
                        route.name,
                        r.status,
                        String::from_utf8_lossy(&r.body)
                    );
                } else {
                    assert_eq!(r.status, denied, "{} as {role}", route.name);
                }
                checked += 1;
                // Logging out or refreshing ends the token: sign in again for the next route.
                if allowed
                    && token.is_some()
                    && (route.name.ends_with(".logout") || route.name.ends_with(".refresh"))
                {
                    let email = &emails[role_index - 1];
                    *token = Some(s.login(email, password).await);
                }
            }
        }
    }
    assert_eq!(checked, expected_checks);
}
