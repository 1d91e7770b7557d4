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

use serde_json::Value;

use crate::error::{ApiError, Dialect, FieldError};

pub(crate) const DIALECT: Dialect = Dialect::Occ;

/// 400 (22007) unless the body is a JSON object.
pub(crate) fn object(body: &Value) -> Result<(), ApiError> {
    if body.is_object() {
        Ok(())
    } else {
        Err(ApiError::validation(vec![
            FieldError::new("", "The request body must be a JSON object.").code("22007"),
        ]))
    }
}
