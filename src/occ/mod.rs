//! The Oracle Commerce Cloud Admin API dialect, under `/ccadmin/v1`.

mod admin_profiles;
mod applications;
mod authenticator;
mod list;
mod login;
mod password_reset;
mod profile_input;
mod roles;
pub mod routes;
mod scim;

use crate::error::Dialect;

pub(crate) const DIALECT: Dialect = Dialect::Occ;
