//! The role catalogue shared by both dialects, and what each role may do.

/// Everything a caller can be allowed to do. Handlers ask `Caller::require` for one of these.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Privilege {
    ViewClientProfiles,
    CreateClientProfiles,
    EditClientProfiles,
    DeleteClientProfiles,
    ExportClientProfiles,
    ViewGlobalSettings,
    EditGlobalSettings,
    ListAdminProfiles,
    ViewAdminProfiles,
    CreateAdminProfiles,
    UpdateAdminProfiles,
    /// Streaming a full backup (administrators only).
    Backup,
    /// Registering applications and issuing their keys (administrators only).
    ManageApplications,
    /// Administrator MFA settings (administrators only).
    ViewMfaSettings,
    EditMfaSettings,
    /// Resetting another account's authenticator (administrators only).
    ResetAuthenticators,
}

impl Privilege {
    /// Appgate's `{type, target}` for this privilege, where Appgate has one.
    pub fn appgate(self) -> Option<(&'static str, &'static str)> {
        use Privilege::*;
        Some(match self {
            ViewClientProfiles => ("View", "ClientProfile"),
            CreateClientProfiles => ("Create", "ClientProfile"),
            EditClientProfiles => ("Edit", "ClientProfile"),
            DeleteClientProfiles => ("Delete", "ClientProfile"),
            ExportClientProfiles => ("Export", "ClientProfile"),
            ViewGlobalSettings => ("View", "GlobalSetting"),
            EditGlobalSettings => ("Edit", "GlobalSetting"),
            ViewMfaSettings => ("View", "AdminMfaSettings"),
            EditMfaSettings => ("Edit", "AdminMfaSettings"),
            ListAdminProfiles | ViewAdminProfiles | CreateAdminProfiles | UpdateAdminProfiles
            | Backup | ManageApplications | ResetAuthenticators => return None,
        })
    }

    /// A stable name for Oracle's role listing.
    pub fn name(self) -> &'static str {
        use Privilege::*;
        match self {
            ViewClientProfiles => "clientProfiles.view",
            CreateClientProfiles => "clientProfiles.create",
            EditClientProfiles => "clientProfiles.edit",
            DeleteClientProfiles => "clientProfiles.delete",
            ExportClientProfiles => "clientProfiles.export",
            ViewGlobalSettings => "globalSettings.view",
            EditGlobalSettings => "globalSettings.edit",
            ListAdminProfiles => "adminProfiles.list",
            ViewAdminProfiles => "adminProfiles.view",
            CreateAdminProfiles => "adminProfiles.create",
            UpdateAdminProfiles => "adminProfiles.update",
            Backup => "backup",
            ManageApplications => "applications.manage",
            ViewMfaSettings => "adminMfaSettings.view",
            EditMfaSettings => "adminMfaSettings.edit",
            ResetAuthenticators => "adminProfiles.resetAuthenticator",
        }
    }
}

pub struct Role {
    pub id: &'static str,
    pub name: &'static str,
    pub description: &'static str,
    pub privileges: &'static [Privilege],
}

use Privilege::*;

pub const ADMIN_ROLE: &str = "adminRole";

/// The catalogue: profiled's roles first, then Oracle's built-in ids, accepted for
/// compatibility and granting nothing here.
pub const CATALOGUE: &[Role] = &[
    Role {
        id: ADMIN_ROLE,
        name: "Administrator",
        description: "Everything: client profiles, global settings and admin profiles.",
        privileges: &[
            ViewClientProfiles,
            CreateClientProfiles,
            EditClientProfiles,
            DeleteClientProfiles,
            ExportClientProfiles,
            ViewGlobalSettings,
            EditGlobalSettings,
            ListAdminProfiles,
            ViewAdminProfiles,
            CreateAdminProfiles,
            UpdateAdminProfiles,
            Backup,
            ManageApplications,
            ViewMfaSettings,
            EditMfaSettings,
            ResetAuthenticators,
        ],
    },
    Role {
        id: "clientProfileManagerRole",
        name: "Client Profile Manager",
        description: "Client profiles: view, create, edit, delete, export; global settings: view.",
        privileges: &[
            ViewClientProfiles,
            CreateClientProfiles,
            EditClientProfiles,
            DeleteClientProfiles,
            ExportClientProfiles,
            ViewGlobalSettings,
        ],
    },
    Role {
        id: "clientProfileExporterRole",
        name: "Client Profile Exporter",
        description: "Client profiles: view and export (onboarding links and QR codes).",
        privileges: &[ViewClientProfiles, ExportClientProfiles],
    },
    Role {
        id: "clientProfileViewerRole",
        name: "Client Profile Viewer",
        description: "Client profiles: view.",
        privileges: &[ViewClientProfiles],
    },
    oracle("catalogRole", "Catalog"),
    oracle("settingsRole", "Settings"),
    oracle("marketingRole", "Marketing"),
    oracle("dashboardRole", "Dashboard"),
    oracle("reportingRole", "Reporting"),
    oracle("designRole", "Design"),
    oracle("mediaRole", "Media"),
    oracle("previewRole", "Preview"),
    oracle("accountManagerRole", "Account Manager"),
    oracle("searchRole", "Search"),
    oracle("publishingRole", "Publishing"),
];

const fn oracle(id: &'static str, name: &'static str) -> Role {
    Role {
        id,
        name,
        description: "Oracle Commerce built-in role; accepted for compatibility, grants nothing here.",
        privileges: &[],
    }
}

pub fn role(id: &str) -> Option<&'static Role> {
    CATALOGUE.iter().find(|r| r.id == id)
}
