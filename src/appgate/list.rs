//! `GET /admin/client-profiles`: Appgate's list with `query`, `range`, `orderBy`,
//! `descending` and bare-key filters. The common case (no query or filter, ordered by name)
//! walks the name index and stops at the end of the range; everything else asks the store's
//! search index, which picks the page without reading any record. Items are written into the
//! envelope as stored, never decoded.

use serde_json::{Value, json};

use super::client_profiles::ok_raw;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::http::{self, Resp};
use crate::routes::Cx;
use crate::store::{Direction, ProfileField, ProfileQuery};

/// Fields a list can be ordered by; anything else falls back to `name` (and says so).
const ORDER_FIELDS: &[(&str, ProfileField)] = &[
    ("name", ProfileField::Name),
    ("id", ProfileField::Id),
    ("notes", ProfileField::Notes),
    ("created", ProfileField::Created),
    ("updated", ProfileField::Updated),
    ("exported", ProfileField::Exported),
    ("type", ProfileField::Type),
    ("spaKeyName", ProfileField::SpaKeyName),
    ("identityProviderName", ProfileField::IdentityProviderName),
    ("hostname", ProfileField::Hostname),
];

/// Fields a bare query key filters on; other keys are ignored, as Appgate does.
const FILTER_FIELDS: &[(&str, ProfileField)] = &[
    ("id", ProfileField::Id),
    ("name", ProfileField::Name),
    ("notes", ProfileField::Notes),
    ("tags", ProfileField::Tags),
    ("type", ProfileField::Type),
    ("spaKeyName", ProfileField::SpaKeyName),
    ("identityProviderName", ProfileField::IdentityProviderName),
    ("hostname", ProfileField::Hostname),
];

struct Params {
    queries: Vec<String>,
    /// `(start, end)`, end exclusive; `None` lists everything.
    range: Option<(usize, usize)>,
    order_by: (&'static str, ProfileField),
    descending: bool,
    filters: Vec<(&'static str, ProfileField, String)>,
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
            order_by: ORDER_FIELDS[0],
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
                        .find(|(f, _)| *f == value)
                        .copied()
                        .unwrap_or(ORDER_FIELDS[0])
                }
                "descending" => p.descending = value.eq_ignore_ascii_case("true"),
                other => {
                    if let Some((name, field)) = FILTER_FIELDS.iter().find(|(f, _)| *f == other) {
                        p.filters.push((name, *field, value));
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

pub async fn list(cx: Cx, _caller: Caller) -> Result<Resp, ApiError> {
    let app = &cx.app;
    let params = Params::parse(http::query_pairs(&cx.head));
    let total = app.store.client_profile_count() as usize;
    let global = app.store.settings()?.profile_hostname;
    let mut out = Vec::with_capacity(16 * 1024);
    out.extend_from_slice(b"{\"data\":[");
    let (start, listed, matched) = if !params.narrows() && params.order_by.1 == ProfileField::Name {
        let (start, end) = params.range.unwrap_or((0, total));
        let (start, end) = (start.min(total), end.min(total));
        let direction = if params.descending {
            Direction::Descending
        } else {
            Direction::Ascending
        };
        let listed =
            app.store
                .client_profiles_by_name(direction, start, end - start, &global, &mut out)?;
        (start, listed, total)
    } else {
        let found = app
            .store
            .search_client_profiles(ProfileQuery {
                queries: params.queries.clone(),
                filters: params
                    .filters
                    .iter()
                    .map(|(_, f, v)| (*f, v.clone()))
                    .collect(),
                order: params.order_by.1,
                descending: params.descending,
                range: params.range,
            })
            .await?;
        let start = params.range.map_or(0, |(s, _)| s).min(found.matched);
        let listed = app
            .store
            .client_profiles_by_id(&found.ids, &global, &mut out)?;
        (start, listed, found.matched)
    };
    out.push(b']');
    let filter_by: Vec<Value> = params
        .filters
        .iter()
        .map(|(name, _, value)| json!({"name": name, "value": value}))
        .collect();
    let rest = serde_json::to_vec(&json!({
        "range": format!("{start}-{}/{matched}", start + listed),
        "orderBy": params.order_by.0,
        "descending": params.descending,
        "queries": params.queries,
        "totalCount": total,
        "filterBy": filter_by,
    }))
    .expect("plain JSON");
    // `rest` is an object: continue the envelope with its members.
    out.push(b',');
    out.extend_from_slice(&rest[1..]);
    Ok(ok_raw(out))
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
