//! The Oracle Commerce Cloud Admin API dialect, under `/ccadmin/v1`.

mod admin_profiles;
mod authenticator;
mod list;
mod login;
mod profile_input;
mod roles;
pub mod routes;
mod scim;

use crate::error::Dialect;

pub(crate) const DIALECT: Dialect = Dialect::Occ;
