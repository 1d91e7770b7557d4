//! `GET /admin/client-profiles`: Appgate's list with `query`, `range`, `orderBy`,
//! `descending` and bare-key filters. The common case (no query or filter, ordered by name)
//! walks the name index and stops at the end of the range; everything else scans.

use serde_json::{Value, json};
use time::OffsetDateTime;

use super::client_profiles::to_json;
use super::ok;
use crate::app::App;
use crate::auth::Privilege;
use crate::error::ApiError;
use crate::http::{self, Req, Resp};
use crate::store::{ClientProfile, Direction, Store, StoreError};

/// Fields a list can be ordered by; anything else falls back to `name` (and says so).
const ORDER_FIELDS: &[&str] = &[
    "name",
    "id",
    "notes",
    "created",
    "updated",
    "exported",
    "type",
    "spaKeyName",
    "identityProviderName",
    "hostname",
];

/// Fields a bare query key filters on; other keys are ignored, as Appgate does.
const FILTER_FIELDS: &[&str] = &[
    "id",
    "name",
    "notes",
    "tags",
    "type",
    "spaKeyName",
    "identityProviderName",
    "hostname",
];

struct Params {
    queries: Vec<String>,
    /// `(start, end)`, end exclusive; `None` lists everything.
    range: Option<(usize, usize)>,
    order_by: &'static str,
    descending: bool,
    filters: Vec<(&'static str, String)>,
}

/// `a-b` with `a <= b`; anything else is ignored like an unknown parameter, so a malformed
/// range lists everything rather than failing.
fn parse_range(s: &str) -> Option<(usize, usize)> {
    let (a, b) = s.trim().split_once('-')?;
    let digits = |t: &str| !t.is_empty() && t.bytes().all(|c| c.is_ascii_digit());
    if !digits(a) || !digits(b) {
        return None;
    }
    let (a, b) = (a.parse().ok()?, b.parse().ok()?);
    (a <= b).then_some((a, b))
}

impl Params {
    fn parse(pairs: Vec<(String, String)>) -> Params {
        let mut p = Params {
            queries: Vec::new(),
            range: None,
            order_by: "name",
            descending: false,
            filters: Vec::new(),
        };
        for (key, value) in pairs {
            match key.as_str() {
                "query" => p.queries.push(value),
                "range" => p.range = parse_range(&value),
                "orderBy" => {
                    p.order_by = ORDER_FIELDS
                        .iter()
                        .find(|f| **f == value)
                        .copied()
                        .unwrap_or("name")
                }
                "descending" => p.descending = value.eq_ignore_ascii_case("true"),
                other => {
                    if let Some(field) = FILTER_FIELDS.iter().find(|f| **f == other) {
                        p.filters.push((field, value));
                    }
                }
            }
        }
        p
    }

    /// Nothing narrows the list: its length is the live count.
    fn narrows(&self) -> bool {
        self.queries.iter().any(|q| !q.is_empty()) || !self.filters.is_empty()
    }
}

fn contains(haystack: &str, needle_lower: &str) -> bool {
    haystack.to_lowercase().contains(needle_lower)
}

fn field_matches(p: &ClientProfile, field: &str, needle: &str) -> bool {
    match field {
        "id" => contains(&p.id.to_string(), needle),
        "name" => contains(&p.name, needle),
        "notes" => contains(&p.notes, needle),
        "tags" => p.tags.iter().any(|t| contains(t, needle)),
        "type" => contains(p.kind.as_str(), needle),
        "spaKeyName" => contains(&p.spa_key_name, needle),
        "identityProviderName" => contains(&p.identity_provider_name, needle),
        "hostname" => contains(&p.hostname, needle),
        _ => false,
    }
}

/// Each query narrows: some searched field must contain it, case-insensitively.
fn query_matches(p: &ClientProfile, query: &str) -> bool {
    ["name", "notes", "tags", "identityProviderName", "hostname"]
        .iter()
        .any(|f| field_matches(p, f, query))
}

#[derive(PartialEq, Eq, PartialOrd, Ord)]
enum SortKey {
    Time(Option<OffsetDateTime>),
    Text(String),
}

fn sort_key(p: &ClientProfile, field: &str) -> SortKey {
    let text = |s: &str| SortKey::Text(s.to_lowercase());
    match field {
        "id" => SortKey::Text(p.id.to_string()),
        "notes" => text(&p.notes),
        "created" => SortKey::Time(Some(p.created)),
        "updated" => SortKey::Time(Some(p.updated)),
        "exported" => SortKey::Time(p.exported),
        "type" => text(p.kind.as_str()),
        "spaKeyName" => text(&p.spa_key_name),
        "identityProviderName" => text(&p.identity_provider_name),
        "hostname" => text(&p.hostname),
        // The name index's own order, so that both paths agree.
        _ => SortKey::Text(String::new()),
    }
}

/// Reads the whole store: every matching profile, sorted; ties go by name.
fn scan(store: &Store, p: &Params) -> Result<Vec<ClientProfile>, StoreError> {
    let queries: Vec<String> = p.queries.iter().map(|q| q.to_lowercase()).collect();
    let filters: Vec<(&str, String)> = p
        .filters
        .iter()
        .map(|(f, v)| (*f, v.to_lowercase()))
        .collect();
    let mut out = Vec::new();
    for profile in store.client_profiles() {
        let profile = profile?;
        if queries.iter().all(|q| query_matches(&profile, q))
            && filters.iter().all(|(f, v)| field_matches(&profile, f, v))
        {
            out.push(profile);
        }
    }
    out.sort_by_cached_key(|x| (sort_key(x, p.order_by), x.name_key()));
    if p.descending {
        out.reverse();
    }
    Ok(out)
}

pub async fn list(app: &App, req: Req) -> Result<Resp, ApiError> {
    let caller = app.auth.authenticate(req.headers())?;
    caller.require(Privilege::ViewClientProfiles)?;
    let params = Params::parse(http::query_pairs(&req));
    let total = app.store.client_profile_count() as usize;
    let (start, items, matched, params) = if !params.narrows() && params.order_by == "name" {
        let (start, end) = params.range.unwrap_or((0, total));
        let (start, end) = (start.min(total), end.min(total));
        let direction = if params.descending {
            Direction::Descending
        } else {
            Direction::Ascending
        };
        let items = app
            .store
            .client_profiles_by_name(direction, start, end - start)?;
        (start, items, total, params)
    } else {
        // A full scan must not hold up the runtime's worker threads.
        let store = app.store.clone();
        let (all, params) = tokio::task::spawn_blocking(move || {
            let all = scan(&store, &params);
            (all, params)
        })
        .await
        .map_err(ApiError::internal)?;
        let mut all = all?;
        let matched = all.len();
        let (start, end) = params.range.unwrap_or((0, matched));
        let (start, end) = (start.min(matched), end.min(matched));
        all.truncate(end);
        let items = all.split_off(start);
        (start, items, matched, params)
    };
    let global = app.store.settings()?.profile_hostname;
    let data: Vec<Value> = items.iter().map(|p| to_json(p, &global)).collect();
    let filter_by: Vec<Value> = params
        .filters
        .iter()
        .map(|(name, value)| json!({"name": name, "value": value}))
        .collect();
    Ok(ok(&json!({
        "data": data,
        "range": format!("{start}-{}/{matched}", start + data.len()),
        "orderBy": params.order_by,
        "descending": params.descending,
        "queries": params.queries,
        "totalCount": total,
        "filterBy": filter_by,
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_are_start_end_or_ignored() {
        assert_eq!(parse_range("0-2"), Some((0, 2)));
        assert_eq!(parse_range("3-3"), Some((3, 3)));
        for bad in [
            "",
            "2",
            "-3",
            "3-",
            "a-b",
            "4-2",
            "1-2-3",
            "0-99999999999999999999999",
        ] {
            assert_eq!(parse_range(bad), None, "{bad}");
        }
    }
}
