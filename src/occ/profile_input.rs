//! Checks the JSON body of an admin-profile create or update and turns it into typed input,
//! collecting every problem with Oracle's errorCode for it. Unknown members are ignored.

use serde_json::Value;

use crate::auth::{password, roles};
use crate::error::{ApiError, FieldError};

/// Longest first or last name, in characters.
pub const MAX_NAME_CHARS: usize = 255;
/// Longest e-mail address, in characters (RFC 5321's path limit).
pub const MAX_EMAIL_CHARS: usize = 254;

/// Which call the body belongs to: what is required and what is read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Create,
    /// `PUT /adminProfiles/{id}`: every member optional.
    Update,
    /// `PUT /adminProfiles/current`: names, e-mail and the password change only.
    Current,
}

#[derive(Debug, Default)]
pub struct ProfileInput {
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub email: Option<String>,
    pub active: Option<bool>,
    /// Role ids, known to the catalogue, without duplicates.
    pub roles: Option<Vec<String>>,
    pub password: Option<String>,
    pub current_password: Option<String>,
}

/// One `@`, a non-empty local part and domain, no white space or control characters, at
/// most `MAX_EMAIL_CHARS`. Deliberately loose: `admin@localhost` is valid.
pub fn valid_email(email: &str) -> bool {
    email.chars().count() <= MAX_EMAIL_CHARS
        && !email.chars().any(|c| c.is_whitespace() || c.is_control())
        && matches!(email.split_once('@'),
            Some((local, domain)) if !local.is_empty() && !domain.is_empty() && !domain.contains('@'))
}

pub fn current_password_required() -> FieldError {
    FieldError::new(
        "currentPassword",
        "currentPassword is required to change the password.",
    )
    .code("22005")
}

fn wrong_type(field: &str, what: &str) -> FieldError {
    FieldError::new(field, format!("{field} must be {what}.")).code("22007")
}

/// A required-on-create string: `empty_code` when missing, null or blank.
fn name(
    body: &Value,
    field: &str,
    empty_code: &'static str,
    mode: Mode,
    errors: &mut Vec<FieldError>,
) -> Option<String> {
    let empty = || FieldError::new(field, format!("{field} must not be empty.")).code(empty_code);
    match body.get(field) {
        None if mode == Mode::Create => errors.push(empty()),
        None => {}
        Some(Value::Null) => errors.push(empty()),
        Some(Value::String(s)) if s.trim().is_empty() => errors.push(empty()),
        Some(Value::String(s)) if let Some(problem) = crate::text::name_problem(s) => {
            errors.push(FieldError::new(field, format!("{field} {problem}.")).code("22007"))
        }
        Some(Value::String(s)) if s.trim().chars().count() > MAX_NAME_CHARS => errors.push(
            FieldError::new(
                field,
                format!("{field} must have at most {MAX_NAME_CHARS} characters."),
            )
            .code("22007"),
        ),
        Some(Value::String(s)) => return Some(s.trim().to_string()),
        Some(_) => errors.push(wrong_type(field, "a string")),
    }
    None
}

fn email(body: &Value, mode: Mode, errors: &mut Vec<FieldError>) -> Option<String> {
    let empty = || FieldError::new("email", "email must not be empty.").code("22003");
    match body.get("email") {
        None if mode == Mode::Create => errors.push(empty()),
        None => {}
        Some(Value::Null) => errors.push(empty()),
        Some(Value::String(s)) if s.trim().is_empty() => errors.push(empty()),
        Some(Value::String(s)) if let Some(problem) = crate::text::name_problem(s) => {
            errors.push(FieldError::new("email", format!("email {problem}.")).code("23006"))
        }
        Some(Value::String(s)) if valid_email(s.trim()) => return Some(s.trim().to_string()),
        Some(Value::String(_)) => errors
            .push(FieldError::new("email", "email is not a valid e-mail address.").code("23006")),
        Some(_) => errors.push(wrong_type("email", "a string")),
    }
    None
}

fn role_list(body: &Value, mode: Mode, errors: &mut Vec<FieldError>) -> Option<Vec<String>> {
    let missing = || FieldError::new("roles", "At least one role is required.").code("89002");
    let items = match body.get("roles") {
        None if mode == Mode::Update => return None,
        None | Some(Value::Null) => {
            errors.push(missing());
            return None;
        }
        Some(Value::Array(items)) if items.is_empty() => {
            errors.push(missing());
            return None;
        }
        Some(Value::Array(items)) => items,
        Some(_) => {
            errors.push(wrong_type("roles", "an array of role ids"));
            return None;
        }
    };
    let before = errors.len();
    let mut ids: Vec<String> = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let field = format!("roles.{i}");
        let id = match item {
            Value::String(s) => s.as_str(),
            Value::Object(o) => match o.get("repositoryId") {
                Some(Value::String(s)) => s.as_str(),
                _ => {
                    errors.push(wrong_type(
                        &field,
                        "a role id or {\"repositoryId\": <role id>}",
                    ));
                    continue;
                }
            },
            _ => {
                errors.push(wrong_type(
                    &field,
                    "a role id or {\"repositoryId\": <role id>}",
                ));
                continue;
            }
        };
        match roles::role(id) {
            Some(role) if !ids.iter().any(|r| r == role.id) => ids.push(role.id.to_string()),
            Some(_) => {}
            None => errors.push(
                FieldError::new(
                    field,
                    format!(
                        "There is no role '{}'.",
                        id.chars().take(64).collect::<String>()
                    ),
                )
                .code("89001"),
            ),
        }
    }
    (errors.len() == before).then_some(ids)
}

fn secret(body: &Value, field: &str, errors: &mut Vec<FieldError>) -> Option<String> {
    match body.get(field) {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => {
            errors.push(wrong_type(field, "a string"));
            None
        }
    }
}

impl ProfileInput {
    /// Checks `body` for `mode`; all problems at once, as Oracle's 400 with `errors`.
    pub fn parse(body: &Value, mode: Mode) -> Result<ProfileInput, ApiError> {
        if !body.is_object() {
            return Err(ApiError::validation(vec![
                FieldError::new("", "The request body must be a JSON object.").code("22007"),
            ]));
        }
        let mut errors = Vec::new();
        let mut input = ProfileInput {
            first_name: name(body, "firstName", "23013", mode, &mut errors),
            last_name: name(body, "lastName", "23012", mode, &mut errors),
            email: email(body, mode, &mut errors),
            ..ProfileInput::default()
        };
        input.active = match body.get("active") {
            None => None,
            Some(Value::Bool(b)) => Some(*b),
            Some(_) => {
                errors.push(wrong_type("active", "true or false"));
                None
            }
        };
        if mode != Mode::Current {
            input.roles = role_list(body, mode, &mut errors);
        }
        input.password = secret(body, "password", &mut errors);
        if let Some(p) = &input.password {
            let problem = if p.is_empty() {
                Err("password must not be empty.".to_string())
            } else {
                password::check_strength(p)
            };
            if let Err(message) = problem {
                errors.push(FieldError::new("password", message).code("22005"));
            }
        }
        if mode != Mode::Create {
            // Required for one's own password; the handler knows whose account it is.
            input.current_password = secret(body, "currentPassword", &mut errors);
        }
        if mode == Mode::Current && input.password.is_some() && input.current_password.is_none() {
            errors.push(current_password_required());
        }
        if errors.is_empty() {
            Ok(input)
        } else {
            Err(ApiError::validation(errors))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn email_rules() {
        for ok in ["admin@localhost", "a.b+c@example.com", "ü@bücher.de"] {
            assert!(valid_email(ok), "{ok}");
        }
        let long = format!("{}@example.com", "a".repeat(250));
        for bad in [
            "",
            "a",
            "@b",
            "a@",
            "a@b@c",
            "a b@c",
            "a@b\u{7}",
            long.as_str(),
        ] {
            assert!(!valid_email(bad), "{bad}");
        }
    }
}
