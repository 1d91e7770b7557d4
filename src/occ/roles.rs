//! `GET /ccadmin/v1/adminRoles`: the role catalogue with each role's privileges.

use std::cmp::Ordering;

use serde_json::{Value, json};

use super::DIALECT;
use super::list::ListQuery;
use crate::auth::Caller;
use crate::auth::roles::{CATALOGUE, Role};
use crate::error::ApiError;
use crate::http::{self, Resp};
use crate::routes::Cx;

/// Properties `sort` accepts; the first is the default.
const SORTABLE: &[&str] = &["id", "name"];

fn render(role: &&Role) -> Value {
    let privileges: Vec<&str> = role.privileges.iter().map(|p| p.name()).collect();
    json!({
        "id": role.id,
        "repositoryId": role.id,
        "name": role.name,
        "description": role.description,
        "privileges": privileges,
    })
}

fn compare(a: &&Role, b: &&Role, property: &str) -> Ordering {
    match property {
        "name" => a.name.to_lowercase().cmp(&b.name.to_lowercase()),
        _ => a.id.cmp(b.id),
    }
}

pub async fn list(cx: Cx, _caller: Caller) -> Result<Resp, ApiError> {
    let query = ListQuery::parse(&cx.head, SORTABLE)?;
    let mut roles: Vec<&Role> = CATALOGUE.iter().collect();
    query.sort(&mut roles, compare);
    Ok(http::ok_json(&query.envelope(&roles, render), DIALECT))
}
